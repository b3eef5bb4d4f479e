//! `tagward gateway`: an OCI distribution registry's front door that enforces tag immutability
//! (DESIGN.md §4). Manifest PUTs and DELETEs are decided by the same [`Enforcer`] as the decision
//! API; everything else streams through untouched.

mod upstream;

use crate::config::DatabaseConfig;
use crate::enforcement::{Check, Enforcer, Verdict};
use crate::metrics::GatewayOutcome;
use crate::ops::OpsState;
use anyhow::Context;
use app::policy::{Digest, RepositoryName, Tag};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header;
use axum::http::{Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use clap::Args;
use sha2::Digest as _;
use sqlx::PgPool;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use upstream::{LookupError, Upstream};

/// The largest manifest accepted (distribution's own limit is 4 MiB too).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, Args)]
pub struct GatewayConfig {
    #[command(flatten)]
    pub database: DatabaseConfig,

    /// Address registry clients connect to.
    #[arg(long = "listen", env = "TAGWARD_GATEWAY_LISTEN", default_value = "127.0.0.1:5001")]
    pub listen: SocketAddr,

    /// The registry behind the gateway, e.g. `http://127.0.0.1:5000`.
    #[arg(long = "upstream", env = "TAGWARD_GATEWAY_UPSTREAM")]
    pub upstream: Uri,
}

/// An OCI distribution error response.
pub(crate) fn oci_error(status: StatusCode, code: &str, message: String, detail: serde_json::Value) -> Response {
    let body = crate::enforcement::api::OciErrors::one(code, message, detail);
    let json = serde_json::to_vec(&body).unwrap_or_default();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

#[derive(Clone)]
struct Gateway {
    upstream: Upstream,
    enforcer: Enforcer,
    pool: PgPool,
    /// Serialises manifest PUTs per repository:tag within this process, also while the database
    /// (whose advisory locks serialise them across processes) is away.
    local_locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

/// A built, bound, not yet serving gateway.
pub struct GatewayServer {
    listener: TcpListener,
    router: Router,
    address: SocketAddr,
}

impl GatewayServer {
    pub async fn build(config: GatewayConfig) -> anyhow::Result<Self> {
        let pool = app::store::connect(&config.database.database_url).await?;
        app::store::migrate(&pool).await.context("applying migrations")?;
        let enforcer = Enforcer::start(&pool).await?;
        let ops = crate::ops::router(OpsState::new(pool.clone(), &enforcer));
        let gateway =
            Gateway { upstream: Upstream::new(&config.upstream)?, enforcer, pool, local_locks: Arc::default() };
        let router = Router::new().fallback(handle).with_state(gateway).merge(ops);
        let listener =
            TcpListener::bind(config.listen).await.with_context(|| format!("cannot listen on {}", config.listen))?;
        let address = listener.local_addr()?;
        tracing::info!(%address, upstream = %config.upstream, "tagward gateway listening");
        Ok(Self { listener, router, address })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        use axum::serve::ListenerExt;
        // The same reason as the upstream connector's: many small requests, each answered at once.
        let listener = self.listener.tap_io(|tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
        });
        axum::serve(listener, self.router).with_graceful_shutdown(crate::startup::shutdown_signal()).await?;
        Ok(())
    }
}

/// `/v2/<name>/manifests/<reference>` split into name and reference.
fn manifest_path(path: &str) -> Option<(&str, &str)> {
    path.strip_prefix("/v2/")?
        .rsplit_once("/manifests/")
        .filter(|(name, reference)| !name.is_empty() && !reference.is_empty() && !reference.contains('/'))
}

async fn handle(State(gateway): State<Gateway>, request: Request) -> Response {
    let target = manifest_path(request.uri().path()).map(|(name, reference)| (name.to_owned(), reference.to_owned()));
    let (name, reference) = match (request.method(), target) {
        (&Method::PUT | &Method::DELETE, Some(target)) => target,
        _ => {
            gateway.enforcer.metrics.record_gateway(GatewayOutcome::PassedThrough);
            return gateway.upstream.forward(request).await;
        }
    };
    // A name tagward cannot read (no project segment) belongs to no project, so no rule covers it.
    let Some(repository) = RepositoryName::parse(&name).ok().filter(|r| gateway.protects(r)) else {
        gateway.enforcer.metrics.record_gateway(GatewayOutcome::PassedThrough);
        return gateway.upstream.forward(request).await;
    };
    let outcome = if request.method() == Method::PUT {
        gateway.put_manifest(repository, &reference, request).await
    } else {
        gateway.delete_manifest(repository, &reference, request).await
    };
    let (label, response) = match outcome {
        Ok(response) => (GatewayOutcome::Allowed, response),
        Err(Refusal::Denied(response)) => (GatewayOutcome::Denied, response),
        Err(Refusal::Refused(response)) => (GatewayOutcome::Refused, response),
    };
    gateway.enforcer.metrics.record_gateway(label);
    response
}

/// Why a manifest request was answered by the gateway itself.
enum Refusal {
    Denied(Response),
    Refused(Response),
}

impl From<LookupError> for Refusal {
    fn from(error: LookupError) -> Self {
        Refusal::Refused(match error {
            LookupError::Refused { status, challenge } => {
                let mut response = oci_error(
                    status,
                    if status == StatusCode::UNAUTHORIZED { "UNAUTHORIZED" } else { "DENIED" },
                    format!("the registry refused tagward's look-up ({status}), so the change is not let through"),
                    serde_json::Value::Null,
                );
                if let Some(challenge) = challenge {
                    response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
                }
                response
            }
            LookupError::Failed(why) => oci_error(
                StatusCode::BAD_GATEWAY,
                "UNKNOWN",
                format!("tagward could not look up the registry's current state: {why}"),
                serde_json::Value::Null,
            ),
        })
    }
}

fn denied(verdict: &Verdict, repository: &RepositoryName) -> Refusal {
    let detail = serde_json::json!({
        "repository": repository.as_str(),
        "immutable_tags": verdict.immutable_tags,
        "rules": verdict.rules,
    });
    Refusal::Denied(oci_error(StatusCode::FORBIDDEN, "DENIED", verdict.message.clone(), detail))
}

impl Gateway {
    /// Whether any enabled rule could apply in the repository's project (if none, no look-ups).
    fn protects(&self, repository: &RepositoryName) -> bool {
        self.enforcer.policies.project(repository.project()).is_some_and(|p| p.rule_count() > 0)
    }

    fn is_immutable(&self, repository: &RepositoryName, tag: &Tag) -> bool {
        self.enforcer
            .policies
            .project(repository.project())
            .is_some_and(|project| !project.policy().immutable_rules(repository.path(), tag.as_str()).is_empty())
    }

    /// `PUT /v2/<name>/manifests/<tag>`, or `<digest>?tag=a&tag=b`: the pushed digest is the
    /// body's SHA-256, the current one the upstream's; immutable tags are locked while that is
    /// looked up and the PUT goes through, so concurrent first pushes cannot both win.
    async fn put_manifest(
        &self,
        repository: RepositoryName,
        reference: &str,
        request: Request,
    ) -> Result<Response, Refusal> {
        let tags: Vec<Tag> = if reference.contains(':') {
            query_tags(request.uri())
        } else {
            Tag::parse(reference).into_iter().collect()
        };
        let immutable: Vec<Tag> = tags.into_iter().filter(|tag| self.is_immutable(&repository, tag)).collect();
        if immutable.is_empty() {
            return Ok(self.upstream.forward(request).await);
        }
        let (parts, body) = request.into_parts();
        let body = read_manifest(&parts.headers, body).await?;
        let pushed = Digest::parse(&format!("sha256:{}", hex::encode(sha2::Sha256::digest(&body)))).map_err(|e| {
            Refusal::Refused(oci_error(
                StatusCode::BAD_REQUEST,
                "DIGEST_INVALID",
                e.to_string(),
                serde_json::Value::Null,
            ))
        })?;
        let authorization = parts.headers.get(header::AUTHORIZATION).cloned();

        // Both kinds of lock are taken in this one order, so two pushes never wait on each other crosswise.
        let mut keys: Vec<String> = immutable.iter().map(|tag| format!("{repository}:{tag}")).collect();
        keys.sort();
        let _local = self.lock_locally(&keys).await;
        let _shared = self.lock_shared(&keys).await;
        for tag in &immutable {
            let current =
                self.upstream.current_digest(repository.as_str(), tag.as_str(), authorization.as_ref()).await?;
            let check =
                Check::Push { repository: repository.clone(), tag: tag.clone(), digest: pushed.clone(), current };
            let verdict = self.enforcer.check("gateway", &check);
            if !verdict.allowed {
                return Err(denied(&verdict, &repository));
            }
        }
        let request = Request::from_parts(parts, Body::from(body));
        Ok(self.upstream.forward(request).await)
    }

    /// `DELETE /v2/<name>/manifests/<tag|digest>`. For a digest, only the tags the policy makes
    /// immutable are looked up at the upstream, to see whether one points at it.
    async fn delete_manifest(
        &self,
        repository: RepositoryName,
        reference: &str,
        request: Request,
    ) -> Result<Response, Refusal> {
        let check = if let Ok(digest) = Digest::parse(reference) {
            let authorization = request.headers().get(header::AUTHORIZATION);
            let mut locking = Vec::new();
            for tag in self.upstream.tags(repository.as_str(), authorization).await? {
                let Ok(tag) = Tag::parse(&tag) else { continue };
                if !self.is_immutable(&repository, &tag) {
                    continue;
                }
                let current = self.upstream.current_digest(repository.as_str(), tag.as_str(), authorization).await?;
                if current.as_ref() == Some(&digest) {
                    locking.push(tag);
                }
            }
            Check::DeleteManifest { repository: repository.clone(), digest, tags: locking }
        } else if let Ok(tag) = Tag::parse(reference) {
            Check::DeleteTag { repository: repository.clone(), tag }
        } else {
            return Ok(self.upstream.forward(request).await);
        };
        let verdict = self.enforcer.check("gateway", &check);
        if !verdict.allowed {
            return Err(denied(&verdict, &repository));
        }
        Ok(self.upstream.forward(request).await)
    }

    /// Holds this process's locks on `keys` (sorted by the caller).
    async fn lock_locally(&self, keys: &[String]) -> Vec<tokio::sync::OwnedMutexGuard<()>> {
        let mutexes: Vec<_> = {
            let mut locks = self.local_locks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            // Forget the locks nobody holds or waits for, so the map stays as small as the traffic.
            locks.retain(|_, mutex| Arc::strong_count(mutex) > 1);
            keys.iter().map(|key| locks.entry(key.clone()).or_default().clone()).collect()
        };
        let mut guards = Vec::with_capacity(mutexes.len());
        for mutex in mutexes {
            guards.push(mutex.lock_owned().await);
        }
        guards
    }

    /// Takes PostgreSQL advisory locks on `keys`, held until the returned transaction ends, so
    /// gateways sharing the database serialise too. Without the database, the local locks are all
    /// there is (logged).
    async fn lock_shared(&self, keys: &[String]) -> Option<sqlx::Transaction<'static, sqlx::Postgres>> {
        let lock = async {
            let mut tx = self.pool.begin().await?;
            for key in keys {
                sqlx::query("select pg_advisory_xact_lock(hashtextextended($1, 0))")
                    .bind(format!("tagward:{key}"))
                    .execute(&mut *tx)
                    .await?;
            }
            Ok::<_, sqlx::Error>(tx)
        };
        match tokio::time::timeout(std::time::Duration::from_secs(10), lock).await {
            Ok(Ok(tx)) => Some(tx),
            Ok(Err(error)) => {
                tracing::warn!(%error, "no shared lock (database unavailable); serialising in this process only");
                None
            }
            Err(_) => {
                tracing::warn!("no shared lock within 10 s; serialising in this process only");
                None
            }
        }
    }
}

/// The `tag` query parameters of an OCI multi-tag manifest PUT; invalid ones are left to the
/// registry to refuse.
fn query_tags(uri: &Uri) -> Vec<Tag> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.strip_prefix("tag="))
        .filter_map(|tag| Tag::parse(tag).ok())
        .collect()
}

/// The manifest body, at most [`MAX_MANIFEST_BYTES`] (413 above).
async fn read_manifest(headers: &axum::http::HeaderMap, body: Body) -> Result<Bytes, Refusal> {
    let too_large = || {
        Refusal::Refused(oci_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "SIZE_INVALID",
            format!("a manifest may be at most {MAX_MANIFEST_BYTES} bytes"),
            serde_json::Value::Null,
        ))
    };
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > MAX_MANIFEST_BYTES) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, MAX_MANIFEST_BYTES).await.map_err(|_| too_large())
}

//! `tagward gateway`: an OCI distribution registry's front door that enforces tag immutability.
//! Every request is first read the way the registry will read it ([`route::classify`]): manifest
//! PUTs and DELETEs and blob DELETEs are decided on that canonical form by the same [`Enforcer`]
//! as the decision API, and the canonical form is what is forwarded; what cannot be read is
//! refused; everything else streams through untouched. A delete of anything an immutable tag
//! holds (its manifest, an index's children, layers, configs, attached referrers) is refused
//! ([`held`]).

mod attachments;
mod conditional;
pub mod held;
pub mod locks;

use crate::config::{DatabaseConfig, ListenerConfig};
use crate::enforcement::{Check, Enforcer, Protection, Verdict};
use crate::metrics::GatewayOutcome;
use crate::registry::{LookupError, Registry};
use anyhow::Context;
use app::artifact::{ManifestRefs, Sha256};
use app::policy::route::{self, BlobDelete, ChangeKind, ManifestChange, Reference, Route, RouteError};
use app::policy::{AttachmentList, Digest, Holder, ListDelete, RepositoryName, Tag, Target};
use app::principal::{Principal, Service};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use bytes::BytesMut;
use clap::Args;
use conditional::Preconditions;
use held::{HeldLimits, ManifestCache, Walk, WalkError, WalkTurn, WalkTurns};
use http_body_util::BodyExt;
use sha2::Digest as _;
use sqlx::PgPool;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Who the gateway's decisions are made for, as the trail names the caller (`gateway`).
const GATEWAY: Principal = Principal::Tagward(Service::Gateway);

pub use crate::registry::MAX_MANIFEST_BYTES;

#[derive(Debug, Clone, Args)]
pub struct GatewayConfig {
    #[command(flatten)]
    pub database: DatabaseConfig,

    /// Address registry clients connect to.
    #[arg(long = "listen", env = "TAGWARD_GATEWAY_LISTEN", default_value = "127.0.0.1:5001")]
    pub listen: SocketAddr,

    /// The registry behind the gateway, e.g. `http://127.0.0.1:5000` or `https://registry.example`.
    #[arg(long = "upstream", env = "TAGWARD_GATEWAY_UPSTREAM")]
    pub upstream: Uri,

    /// PEM certificates to trust for an `https://` upstream besides the system's and webpki's
    /// roots (a private CA).
    #[arg(long = "upstream-ca", env = "TAGWARD_GATEWAY_UPSTREAM_CA")]
    pub upstream_ca: Option<std::path::PathBuf>,

    #[command(flatten)]
    pub listener: ListenerConfig,

    #[command(flatten)]
    pub manifests: ManifestLimits,

    #[command(flatten)]
    pub held: HeldLimits,

    #[command(flatten)]
    pub registry: crate::inventory::RegistrySyncConfig,

    #[command(flatten)]
    pub exceptions: crate::config::ExceptionsConfig,

    #[command(flatten)]
    pub locks: locks::LockConfig,
}

/// Bounds on the manifest bodies the gateway buffers (to hash them before deciding).
#[derive(Debug, Clone, Args)]
pub struct ManifestLimits {
    /// Manifest bytes held in memory at once across all connections; past it a push is answered
    /// 429 (a client sending a large body slowly holds what it has sent so far).
    #[arg(long = "manifest-buffer-bytes", env = "TAGWARD_GATEWAY_MANIFEST_BUFFER_BYTES", default_value_t = Self::BUFFER_BYTES)]
    pub buffer_bytes: usize,

    /// Seconds a manifest body may take to arrive, in all (408 after).
    #[arg(long = "manifest-body-timeout", env = "TAGWARD_GATEWAY_MANIFEST_BODY_TIMEOUT", default_value_t = Self::BODY_TIMEOUT_SECONDS)]
    pub body_timeout_seconds: u64,
}

impl ManifestLimits {
    const BUFFER_BYTES: usize = 16 * 1024 * 1024;
    const BODY_TIMEOUT_SECONDS: u64 = 30;
}

impl Default for ManifestLimits {
    fn default() -> Self {
        Self { buffer_bytes: Self::BUFFER_BYTES, body_timeout_seconds: Self::BODY_TIMEOUT_SECONDS }
    }
}

#[derive(Clone)]
struct Gateway {
    upstream: Registry,
    enforcer: Enforcer,
    pool: PgPool,
    /// Manifest bytes buffered across all connections, at most `limits.buffer_bytes`.
    buffered: Arc<Semaphore>,
    limits: ManifestLimits,
    /// What each manifest read references (shared by every request of the process).
    manifests: Arc<ManifestCache>,
    held: HeldLimits,
    /// The shared locks, on their own few connections.
    locks: Arc<locks::Locks>,
    /// How long a request may hold them.
    hold: Duration,
    /// Deletes by digest under way, per client.
    walks: Arc<WalkTurns>,
}

/// How long recording an accepted change in the tag inventory may take.
const RECORD_TIMEOUT: Duration = Duration::from_secs(2);
/// What a client is told to wait before retrying after a 429 or 503.
const RETRY_AFTER_SECONDS: &str = "5";

/// A built, bound, not yet serving gateway.
pub struct GatewayServer {
    listener: TcpListener,
    router: Router,
    address: SocketAddr,
    limits: ListenerConfig,
}

impl GatewayServer {
    pub async fn build(config: GatewayConfig) -> anyhow::Result<Self> {
        let core = crate::core::Core::start(&config.database, config.exceptions).await?;
        let ops = core.ops();
        config.registry.start(&core.pool, &core.enforcer, Some((&config.upstream, config.upstream_ca.as_deref())))?;
        // The registry behind the gateway can send its notifications to the gateway itself.
        let events = crate::inventory::events::router(crate::inventory::events::EventsState {
            pool: core.pool.clone(),
            enforcer: core.enforcer.clone(),
        });
        let locks = locks::Locks::new(&config.database.database_url, &config.locks, core.enforcer.metrics.clone())?;
        let gateway = Gateway {
            upstream: Registry::new(&config.upstream, config.upstream_ca.as_deref())?,
            enforcer: core.enforcer,
            pool: core.pool,
            buffered: Arc::new(Semaphore::new(config.manifests.buffer_bytes.min(Semaphore::MAX_PERMITS))),
            limits: config.manifests.clone(),
            manifests: Arc::new(ManifestCache::new(config.held.cache_entries)),
            held: config.held.clone(),
            locks,
            hold: config.locks.hold_timeout(),
            walks: Arc::default(),
        };
        let router = Router::new().fallback(handle).with_state(gateway).merge(events).merge(ops);
        let listener =
            TcpListener::bind(config.listen).await.with_context(|| format!("cannot listen on {}", config.listen))?;
        let address = listener.local_addr()?;
        tracing::info!(%address, upstream = %config.upstream, "tagward gateway listening");
        Ok(Self { listener, router, address, limits: config.listener })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        crate::listener::serve(self.listener, self.router, &self.limits).await
    }
}

async fn handle(State(gateway): State<Gateway>, request: Request) -> Response {
    let (label, response) = match gateway.route(request).await {
        Ok((label, response)) => (label, response),
        Err(Refusal::Denied(response)) => (GatewayOutcome::Denied, response),
        Err(Refusal::Refused(response)) => (GatewayOutcome::Refused, response),
    };
    gateway.enforcer.metrics.record_gateway(label);
    response
}

/// Why a request was answered by the gateway itself.
enum Refusal {
    Denied(Response),
    Refused(Response),
}

impl Refusal {
    fn new(status: StatusCode, code: &str, message: String, detail: serde_json::Value) -> Self {
        Refusal::Refused(crate::oci_error::response(status, code, message, detail))
    }

    /// 429 or 503 with `Retry-After`: nothing wrong with the request, try again shortly.
    fn retry_later(status: StatusCode, code: &str, message: String) -> Self {
        let mut response = crate::oci_error::response(status, code, message, serde_json::Value::Null);
        response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static(RETRY_AFTER_SECONDS));
        Refusal::Refused(response)
    }
}

impl From<RouteError> for Refusal {
    fn from(error: RouteError) -> Self {
        let status = if matches!(error, RouteError::Method(_)) {
            StatusCode::METHOD_NOT_ALLOWED
        } else {
            StatusCode::BAD_REQUEST
        };
        let (field, value) = error.field();
        let detail = serde_json::json!({ "field": field, "value": value });
        Refusal::new(status, error.code(), error.to_string(), detail)
    }
}

impl From<LookupError> for Refusal {
    fn from(error: LookupError) -> Self {
        match error {
            LookupError::Refused { status, .. } if status.is_server_error() => Refusal::new(
                StatusCode::BAD_GATEWAY,
                "UNKNOWN",
                format!("the registry failed tagward's look-up ({status}), so the change is not let through"),
                serde_json::Value::Null,
            ),
            LookupError::Refused { status, challenge } => {
                let mut response = crate::oci_error::response(
                    status,
                    if status == StatusCode::UNAUTHORIZED { "UNAUTHORIZED" } else { "DENIED" },
                    format!("the registry refused tagward's look-up ({status}), so the change is not let through"),
                    serde_json::Value::Null,
                );
                if let Some(challenge) = challenge {
                    response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
                }
                Refusal::Refused(response)
            }
            LookupError::TooManyTags(limit) => Refusal::retry_later(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                format!(
                    "the repository has more than {limit} tags, more than tagward reads to find the immutable ones \
                     pointing at this manifest, so it cannot be deleted through the gateway"
                ),
            ),
            LookupError::Failed(why) => Refusal::new(
                StatusCode::BAD_GATEWAY,
                "UNKNOWN",
                format!("tagward could not look up the registry's current state: {why}"),
                serde_json::Value::Null,
            ),
        }
    }
}

impl From<WalkError> for Refusal {
    fn from(error: WalkError) -> Self {
        match error {
            WalkError::Lookup(error) => error.into(),
            WalkError::Manifest(error) => Refusal::new(
                StatusCode::BAD_GATEWAY,
                "UNKNOWN",
                format!("tagward cannot tell what the immutable tags hold, so nothing is deleted: {error}"),
                serde_json::Value::Null,
            ),
            WalkError::Bounded(why) => Refusal::retry_later(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                format!("{why}, so nothing is changed"),
            ),
        }
    }
}

fn denied(verdict: &Verdict, repository: &RepositoryName) -> Refusal {
    denied_with(verdict, repository, serde_json::Map::new())
}

/// 403 `DENIED` with the verdict's message, and `extra` in the detail besides what every denial says.
fn denied_with(
    verdict: &Verdict,
    repository: &RepositoryName,
    extra: serde_json::Map<String, serde_json::Value>,
) -> Refusal {
    let mut detail = serde_json::json!({
        "repository": repository.as_str(),
        "immutable_tags": verdict.immutable_tags,
        "rules": verdict.rules,
    });
    if let Some(detail) = detail.as_object_mut() {
        detail.extend(extra);
    }
    Refusal::Denied(crate::oci_error::response(StatusCode::FORBIDDEN, "DENIED", verdict.message.clone(), detail))
}

/// A push refused: as [`denied`], and for an attachment list its subject and the entries it would drop.
fn denied_push(verdict: &Verdict, repository: &RepositoryName, check: &Check) -> Refusal {
    let Check::Push { list: Some(list), .. } = check else { return denied(verdict, repository) };
    let dropped: Vec<&str> = list
        .update
        .as_ref()
        .map(|update| update.dropped().into_iter().map(Digest::as_str).collect())
        .unwrap_or_default();
    let mut extra = serde_json::Map::new();
    extra.insert("subject".into(), list.list.subject().as_str().into());
    extra.insert("dropped".into(), dropped.into());
    denied_with(verdict, repository, extra)
}

fn walk_timeout(repository: &RepositoryName, limit: Duration) -> Refusal {
    WalkError::Bounded(format!(
        "working out what the immutable tags of \"{repository}\" hold takes more than {} s (--held-timeout)",
        limit.as_secs()
    ))
    .into()
}

/// The shared lock keys: one per repository (pushes of its immutable tags share it, a delete by
/// digest takes it alone) and one per repository:tag (pushes of that tag take it alone).
fn repository_key(repository: &RepositoryName) -> String {
    format!("tagward:repository:{repository}")
}

fn tag_key(repository: &RepositoryName, tag: &Tag) -> String {
    format!("tagward:tag:{repository}:{tag}")
}

impl Gateway {
    /// Classifies the request as the registry will read it; decides manifest changes on their
    /// canonical form and forwards that form.
    async fn route(&self, mut request: Request) -> Result<(GatewayOutcome, Response), Refusal> {
        let uri = request.uri();
        let change = match route::classify(request.method().as_str(), uri.path(), uri.query())? {
            Route::Change(change) => change,
            Route::DeleteBlob(delete) => return self.delete_blob(delete, request).await,
            Route::PassThrough => return Ok((GatewayOutcome::PassedThrough, self.upstream.forward(request).await)),
        };
        *request.uri_mut() = change.path_and_query.parse().map_err(|error| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                "NAME_INVALID",
                format!("cannot forward `{}`: {error}", change.path_and_query),
                serde_json::Value::Null,
            )
        })?;
        // A name no project can own is covered by no rule.
        let Some(repository) = change.repository.clone() else {
            return Ok((GatewayOutcome::PassedThrough, self.upstream.forward(request).await));
        };
        let protection = self.enforcer.protection(repository.project()).await;
        // A conditional PUT is checked whatever the rules say: registries ignore its headers.
        let conditional = change.kind == ChangeKind::Put && Preconditions::of(request.headers()).any();
        let (outcome, response) = if !protection.protects_anything() && !conditional {
            (GatewayOutcome::PassedThrough, self.upstream.forward(request).await)
        } else {
            let response = match (change.kind, &change.reference) {
                (ChangeKind::Put, _) => self.put_manifest(&protection, &repository, &change, request).await?,
                (ChangeKind::Delete, Reference::Tag(tag)) => {
                    // An attachment list's subject may be held: worked out under the repository's
                    // lock taken alone, as for any delete of what an immutable tag may hold.
                    let list = AttachmentList::of(tag);
                    let locks = match list {
                        Some(_) => Some(self.lock(&[], &[repository_key(&repository)]).await?),
                        None => None,
                    };
                    self.holding(async {
                        let list = match list {
                            Some(list) => {
                                let authorization = request.headers().get(header::AUTHORIZATION);
                                let subject_held_by = self
                                    .subject_holders(&repository, &protection, authorization, list.subject())
                                    .await?;
                                Some(ListDelete { list, subject_held_by })
                            }
                            None => None,
                        };
                        let check = Check::DeleteTag { repository: repository.clone(), tag: tag.clone(), list };
                        self.decide_then_forward(&protection, &check, &repository, locks.as_ref(), request).await
                    })
                    .await?
                }
                (ChangeKind::Delete, Reference::Digest(digest)) => {
                    self.delete_manifest(&protection, &repository, digest, request).await?
                }
            };
            (GatewayOutcome::Allowed, response)
        };
        if response.status().is_success() {
            let digest = response
                .headers()
                .get("docker-content-digest")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| Digest::parse(value).ok());
            self.record(&repository, &change, digest).await;
        }
        Ok((outcome, response))
    }

    /// Writes a change the registry accepted into the tag inventory (what the portal shows). Best
    /// effort and bounded in time: the change has happened whatever the inventory says, and the
    /// next sync corrects a record that failed.
    /// `digest` is the registry's answer to a PUT (`Docker-Content-Digest`).
    async fn record(&self, repository: &RepositoryName, change: &ManifestChange, digest: Option<Digest>) {
        let record = async {
            match change.kind {
                ChangeKind::Put => {
                    let tags = change.tags();
                    match digest {
                        Some(digest) if !tags.is_empty() => {
                            app::store::record_push(&self.pool, repository, &tags, &digest).await
                        }
                        _ => Ok(()),
                    }
                }
                ChangeKind::Delete => app::store::record_delete(&self.pool, repository, &change.reference).await,
            }
        };
        if let Err(failure) = within_record_timeout(record).await {
            tracing::warn!(%repository, reference = %change.reference, %failure, "the tag inventory missed a change");
        }
    }

    /// Writes what these manifests reference into the inventory (what the Tags tab says immutable
    /// tags hold). Best effort and bounded in time, like [`Self::record`].
    async fn record_manifests(&self, repository: &RepositoryName, manifests: &[(Sha256, &ManifestRefs)]) {
        let record = app::store::record_manifests(&self.pool, repository.as_str(), manifests);
        if let Err(failure) = within_record_timeout(record).await {
            tracing::warn!(%repository, %failure, "the inventory missed what manifests reference");
        }
    }

    /// `PUT /v2/<name>/manifests/<tag>`, or `<digest>?tag=a&tag=b`: the pushed digest is the
    /// body's SHA-256, the current one the upstream's, read under the shared locks that are held
    /// until the upstream has answered the PUT, so concurrent first pushes cannot both win. The
    /// tags decided are those a rule may cover, the attachment lists (whose subject may be held),
    /// and with `If-Match` / `If-None-Match` every tag, whose precondition is checked under the lock.
    async fn put_manifest(
        &self,
        protection: &Protection,
        repository: &RepositoryName,
        change: &ManifestChange,
        request: Request,
    ) -> Result<Response, Refusal> {
        let preconditions = Preconditions::of(request.headers());
        let lists_matter = protection.protects_anything();
        let decided: Vec<(Tag, Option<AttachmentList>)> = change
            .tags()
            .into_iter()
            .map(|tag| {
                let list = AttachmentList::of(&tag).filter(|_| lists_matter);
                (tag, list)
            })
            .filter(|(tag, list)| list.is_some() || preconditions.any() || protection.needs_decision(repository, tag))
            .collect();
        if decided.is_empty() {
            return Ok(self.upstream.forward(request).await);
        }
        let (mut parts, body) = request.into_parts();
        let (body, _budget) = self.read_manifest(&parts.headers, body).await?;
        let pushed = Digest::parse(&format!("sha256:{}", hex::encode(sha2::Sha256::digest(&body)))).map_err(|e| {
            Refusal::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", e.to_string(), serde_json::Value::Null)
        })?;
        // A list is pushed as a list of its kind, or not at all (read before any lock is taken).
        let pushed_lists = decided
            .iter()
            .filter_map(|(tag, list)| Some((tag, list.as_ref()?)))
            .map(|(tag, list)| attachments::pushed_entries(tag, list, &body))
            .collect::<Result<Vec<_>, _>>()?;
        let authorization = parts.headers.get(header::AUTHORIZATION).cloned();

        let tag_keys: Vec<String> = decided.iter().map(|(tag, _)| tag_key(repository, tag)).collect();
        let locks = self.lock(&[repository_key(repository)], &tag_keys).await?;
        self.holding(async move {
            let mut checks = Vec::with_capacity(decided.len());
            let mut pushed_lists = pushed_lists.into_iter();
            for (tag, list) in &decided {
                let (current, list) = match list {
                    Some(list) => {
                        let read =
                            attachments::current_list(&self.upstream, repository, tag, list, authorization.as_ref());
                        let (current, current_entries) = read.await?;
                        let pushed_entries = pushed_lists.next().unwrap_or_default();
                        (current, Some((list, current_entries, pushed_entries)))
                    }
                    None => (
                        self.upstream.current_digest(repository.as_str(), tag.as_str(), authorization.as_ref()).await?,
                        None,
                    ),
                };
                preconditions.check(tag, current.as_ref()).map_err(|why| {
                    let detail =
                        serde_json::json!({ "tag": tag.as_str(), "current": current.as_ref().map(Digest::as_str) });
                    Refusal::new(StatusCode::PRECONDITION_FAILED, "PRECONDITION_FAILED", why, detail)
                })?;
                let list = match list {
                    Some((list, current_entries, pushed_entries)) => {
                        let update = attachments::Update { list, current: current_entries, pushed: pushed_entries };
                        Some(Box::new(
                            self.list_push(protection, repository, tag, update, authorization.as_ref()).await?,
                        ))
                    }
                    None => None,
                };
                if list.is_some() || protection.needs_decision(repository, tag) {
                    checks.push(Check::Push {
                        repository: repository.clone(),
                        tag: tag.clone(),
                        digest: pushed.clone(),
                        current,
                        list,
                    });
                }
            }
            let verdicts = self.enforcer.decide_together(&GATEWAY, protection, &checks).await;
            if let Some((check, refused)) = checks.iter().zip(&verdicts).find(|(_, verdict)| !verdict.allowed) {
                return Err(denied_push(refused, repository, check));
            }
            self.confirm(&locks).await?;
            parts.headers.insert(header::CONTENT_LENGTH, body.len().into());
            parts.headers.remove(header::TRANSFER_ENCODING);
            let response = self.upstream.forward(Request::from_parts(parts, Body::from(body.clone()))).await;
            if response.status().is_success() {
                let digest = Sha256::from(&pushed);
                // A body the registry took but tagward cannot read is simply not described.
                if let Ok(refs) = ManifestRefs::parse(digest, &body) {
                    self.record_manifests(repository, &[(digest, &refs)]).await;
                }
            }
            Ok(response)
        })
        .await
    }

    /// What a push to an attachment list brings to its decision: the entries before and after,
    /// whether its new referrers really are referrers of the subject, and, only when that makes
    /// a difference (the push is more than an append and no rule covers the list's own tag), what
    /// holds the subject.
    async fn list_push(
        &self,
        protection: &Protection,
        repository: &RepositoryName,
        tag: &Tag,
        update: attachments::Update<'_>,
        authorization: Option<&axum::http::HeaderValue>,
    ) -> Result<app::policy::ListPush, Refusal> {
        let limit = Duration::from_secs(self.held.timeout_seconds);
        let checked =
            attachments::check_update(&self.upstream, &self.manifests, repository, update, authorization, &self.held);
        let mut list_push = match tokio::time::timeout(limit, checked).await {
            Ok(checked) => checked?,
            Err(_) => return Err(walk_timeout(repository, limit)),
        };
        if list_push.problem().is_some() && !protection.may_protect(repository, tag) {
            list_push.subject_held_by =
                self.subject_holders(repository, protection, authorization, list_push.list.subject()).await?;
        }
        Ok(list_push)
    }

    /// `DELETE /v2/<name>/manifests/<digest>`: under the repository's lock taken alone (so no push
    /// of an immutable tag is in flight), the immutable tags pointing at it, or holding it as a
    /// child or a referrer, are looked up at the upstream.
    async fn delete_manifest(
        &self,
        protection: &Protection,
        repository: &RepositoryName,
        digest: &Digest,
        request: Request,
    ) -> Result<Response, Refusal> {
        let _turn = self.walk_turn(&request)?;
        let locks = self.lock(&[], &[repository_key(repository)]).await?;
        self.holding(async {
            let authorization = request.headers().get(header::AUTHORIZATION);
            let check = self.held_check(repository, protection, authorization, Target::Manifest(digest)).await?;
            self.decide_then_forward(protection, &check, repository, Some(&locks), request).await
        })
        .await
    }

    /// `DELETE /v2/<name>/blobs/<digest>`: refused when an immutable tag holds the blob, worked
    /// out under the repository's lock taken alone, as for a manifest; forwarded canonically.
    async fn delete_blob(
        &self,
        delete: BlobDelete,
        mut request: Request,
    ) -> Result<(GatewayOutcome, Response), Refusal> {
        *request.uri_mut() = Uri::try_from(delete.path.as_str()).map_err(|error| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                "NAME_INVALID",
                format!("cannot forward `{}`: {error}", delete.path),
                serde_json::Value::Null,
            )
        })?;
        let Some(repository) = &delete.repository else {
            return Ok((GatewayOutcome::PassedThrough, self.upstream.forward(request).await));
        };
        let protection = self.enforcer.protection(repository.project()).await;
        if !protection.protects_anything() {
            return Ok((GatewayOutcome::PassedThrough, self.upstream.forward(request).await));
        }
        let _turn = self.walk_turn(&request)?;
        let locks = self.lock(&[], &[repository_key(repository)]).await?;
        self.holding(async {
            let authorization = request.headers().get(header::AUTHORIZATION);
            let check = self.held_check(repository, &protection, authorization, Target::Blob(&delete.digest)).await?;
            let response = self.decide_then_forward(&protection, &check, repository, Some(&locks), request).await?;
            Ok((GatewayOutcome::Allowed, response))
        })
        .await
    }

    /// The check deleting `target` asks: which immutable tags point at it or hold it.
    async fn held_check(
        &self,
        repository: &RepositoryName,
        protection: &Protection,
        authorization: Option<&axum::http::HeaderValue>,
        target: Target<'_>,
    ) -> Result<Check, Refusal> {
        let (tags, held_by) = self.held(repository, protection, authorization, target).await?;
        let repository = repository.clone();
        Ok(match target {
            Target::Manifest(digest) => Check::DeleteManifest { repository, digest: digest.clone(), tags, held_by },
            Target::Blob(digest) => Check::DeleteBlob { repository, digest: digest.clone(), held_by },
        })
    }

    /// What holds the subject of an attachment list: the manifest itself with the tags that may
    /// be immutable pointing at it, or the manifests holding it.
    async fn subject_holders(
        &self,
        repository: &RepositoryName,
        protection: &Protection,
        authorization: Option<&axum::http::HeaderValue>,
        subject: &Digest,
    ) -> Result<Vec<Holder>, Refusal> {
        let (tags, mut held_by) = self.held(repository, protection, authorization, Target::Manifest(subject)).await?;
        if !tags.is_empty() {
            held_by.insert(0, Holder { digest: subject.clone(), tags, relation: app::policy::Relation::Referrer });
        }
        Ok(held_by)
    }

    /// The tags that may be immutable pointing at `target` (a manifest) and the manifests holding
    /// it, worked out on a [`Walk`] of the repository, bounded in time by `--held-timeout`.
    async fn held(
        &self,
        repository: &RepositoryName,
        protection: &Protection,
        authorization: Option<&axum::http::HeaderValue>,
        target: Target<'_>,
    ) -> Result<(Vec<Tag>, Vec<Holder>), Refusal> {
        let limit = Duration::from_secs(self.held.timeout_seconds);
        let walked = tokio::time::timeout(limit, async {
            let walk = Walk::start(
                &self.upstream,
                &self.manifests,
                &self.pool,
                repository,
                protection,
                authorization,
                &self.held,
            )
            .await?;
            let held = match target {
                Target::Manifest(digest) => {
                    let tags = walk.tags_of(digest);
                    let held_by = if tags.is_empty() { walk.holders_of_manifest(digest).await? } else { Vec::new() };
                    (tags, held_by)
                }
                Target::Blob(digest) => (Vec::new(), walk.holders_of_blob(digest).await?),
            };
            self.enforcer.metrics.record_held_walk(walk.reads(), self.manifests.len());
            Ok::<_, WalkError>((held, walk.learned()))
        })
        .await;
        match walked {
            Ok(Ok((held, learned))) => {
                let learned: Vec<_> = learned.iter().map(|(digest, refs)| (*digest, refs.as_ref())).collect();
                self.record_manifests(repository, &learned).await;
                Ok(held)
            }
            Ok(Err(error)) => Err(error.into()),
            Err(_) => Err(walk_timeout(repository, limit)),
        }
    }

    /// Takes the shared locks (`shared` ones in shared mode, then `exclusive` ones alone; see
    /// [`locks`]), held until the returned guard is dropped. Gateways sharing the database
    /// serialise through them; when they cannot be had, the request is refused (503), never let
    /// through on a lock of this process alone.
    async fn lock(&self, shared: &[String], exclusive: &[String]) -> Result<locks::LockGuard, Refusal> {
        self.locks.acquire(shared, exclusive).await.map_err(|error| {
            tracing::warn!(%error, "refusing a manifest change: no shared lock");
            Refusal::retry_later(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                format!("tagward cannot serialise this change to immutable tags right now ({error}); try again"),
            )
        })
    }

    /// The requesting client's turn to walk what the immutable tags hold (429 when it has
    /// `--held-walks-per-client` under way): a client deleting in a loop neither queues without
    /// bound for the repository's exclusive lock, stalling its pushes, nor multiplies the
    /// registry reads. Taken before the lock.
    fn walk_turn(&self, request: &Request) -> Result<Option<WalkTurn<'_>>, Refusal> {
        let Some(axum::extract::ConnectInfo(peer)) =
            request.extensions().get::<axum::extract::ConnectInfo<SocketAddr>>()
        else {
            return Ok(None);
        };
        match self.walks.take(peer.ip(), self.held.walks_per_client) {
            Some(turn) => Ok(Some(turn)),
            None => Err(Refusal::retry_later(
                StatusCode::TOO_MANY_REQUESTS,
                "TOOMANYREQUESTS",
                format!(
                    "this client has {} deletes by digest under way, the most the gateway works on for one client \
                     (--held-walks-per-client); try again shortly",
                    self.held.walks_per_client
                ),
            )),
        }
    }

    /// Refuses (503) a guarded change whose locks were lost since they were taken.
    /// The one way a guarded change reaches the registry: the enforcer decides `check`; a refusal
    /// is answered with the OCI denial, and an allowed change is forwarded only once `locks` are
    /// confirmed still held (a lock lost meanwhile refuses it).
    async fn decide_then_forward(
        &self,
        protection: &Protection,
        check: &Check,
        repository: &RepositoryName,
        locks: Option<&locks::LockGuard>,
        request: Request,
    ) -> Result<Response, Refusal> {
        let verdict = self.enforcer.decide(&GATEWAY, protection, check).await;
        if !verdict.allowed {
            return Err(denied(&verdict, repository));
        }
        if let Some(locks) = locks {
            self.confirm(locks).await?;
        }
        Ok(self.upstream.forward(request).await)
    }

    async fn confirm(&self, locks: &locks::LockGuard) -> Result<(), Refusal> {
        locks.confirm().await.map_err(|error| {
            self.enforcer.metrics.record_lock_refused("lost");
            Refusal::retry_later(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                format!("tagward lost the lock serialising this change before forwarding it ({error}); try again"),
            )
        })
    }

    /// Runs what a request does under its locks for at most `--lock-hold-timeout` (504 after, the
    /// upstream call cut off): a lock lost with its connection is taken again only after that long.
    async fn holding<T>(&self, guarded: impl std::future::Future<Output = Result<T, Refusal>>) -> Result<T, Refusal> {
        tokio::time::timeout(self.hold, guarded).await.unwrap_or_else(|_| {
            Err(Refusal::new(
                StatusCode::GATEWAY_TIMEOUT,
                "UNAVAILABLE",
                format!(
                    "the change took more than {} s under its locks (--lock-hold-timeout) and was cut off; it may or \
                     may not have reached the registry: read the tag before trying again",
                    self.hold.as_secs()
                ),
                serde_json::Value::Null,
            ))
        })
    }

    /// The manifest body, at most [`MAX_MANIFEST_BYTES`] (413 above), within the body timeout
    /// (408), charged to the shared buffer budget as it arrives (429
    /// when that is spent). The permit returned holds the charge until the request is done.
    async fn read_manifest(
        &self,
        headers: &axum::http::HeaderMap,
        body: Body,
    ) -> Result<(Bytes, OwnedSemaphorePermit), Refusal> {
        let too_large = || {
            Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "SIZE_INVALID",
                format!("a manifest may be at most {MAX_MANIFEST_BYTES} bytes"),
                serde_json::Value::Null,
            )
        };
        let declared =
            headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|length| length > MAX_MANIFEST_BYTES) {
            return Err(too_large());
        }
        let read = async {
            let mut budget = self
                .buffered
                .clone()
                .try_acquire_many_owned(0)
                .map_err(|_| busy_buffering(self.limits.buffer_bytes))?;
            let mut buffer = BytesMut::with_capacity(declared.unwrap_or(0));
            let mut body = body;
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|error| {
                    Refusal::new(
                        StatusCode::BAD_REQUEST,
                        "MANIFEST_INVALID",
                        format!("the manifest body could not be read: {error}"),
                        serde_json::Value::Null,
                    )
                })?;
                let Ok(chunk) = frame.into_data() else { continue };
                if buffer.len() + chunk.len() > MAX_MANIFEST_BYTES {
                    return Err(too_large());
                }
                let charge = u32::try_from(chunk.len()).map_err(|_| too_large())?;
                let charged = self.buffered.clone().try_acquire_many_owned(charge);
                budget.merge(charged.map_err(|_| busy_buffering(self.limits.buffer_bytes))?);
                buffer.extend_from_slice(&chunk);
            }
            Ok((buffer.freeze(), budget))
        };
        let timeout = Duration::from_secs(self.limits.body_timeout_seconds);
        tokio::time::timeout(timeout, read).await.unwrap_or_else(|_| {
            Err(Refusal::new(
                StatusCode::REQUEST_TIMEOUT,
                "MANIFEST_INVALID",
                format!("the manifest body did not arrive within {} s", timeout.as_secs()),
                serde_json::Value::Null,
            ))
        })
    }
}

/// Runs an inventory write for at most [`RECORD_TIMEOUT`]; why it did not happen, if it did not.
async fn within_record_timeout(
    record: impl std::future::Future<Output = Result<(), app::store::StoreError>>,
) -> Result<(), String> {
    match tokio::time::timeout(RECORD_TIMEOUT, record).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {} s", RECORD_TIMEOUT.as_secs())),
    }
}

fn busy_buffering(budget: usize) -> Refusal {
    Refusal::retry_later(
        StatusCode::TOO_MANY_REQUESTS,
        "TOOMANYREQUESTS",
        format!("tagward is holding {budget} bytes of manifests being pushed, the most it holds; try again shortly"),
    )
}

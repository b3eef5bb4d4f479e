//! The background sync: reads the registry's catalog and every repository's tags (paged,
//! rate-limited, resumable), so the inventory also knows the pushes that did not go through the
//! gateway and whose events were lost; and for immutable tags and referrers tags, the manifests
//! they hold (read once: content-addressed), so the portal can say what immutable tags keep. One
//! process syncs at a time (a PostgreSQL advisory lock); a registry that cannot be reached is
//! recorded for the portal's notice and retried, and never touches decisions.

use crate::enforcement::Enforcer;
use crate::registry::{LookupError, Registry};
use app::artifact::{ManifestRefs, Sha256};
use app::locks::Locked;
use app::policy::{Digest, RepositoryName, Tag};
use app::store::FoundBy;
use axum::http::Uri;
use clap::Args;
use futures_util::{StreamExt, TryStreamExt};
use sqlx::PgPool;
use std::sync::Mutex;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::time::Instant;

#[derive(Debug, Clone, Args)]
pub struct RegistrySyncConfig {
    /// The registry the tag inventory is synced from, e.g. `http://registry:5000` (the gateway's
    /// upstream by default; `tagward serve` syncs only when this is set).
    #[arg(long = "registry-url", env = "TAGWARD_REGISTRY_URL")]
    pub url: Option<Uri>,

    /// PEM certificates to trust for an `https://` registry besides the system's and webpki's roots
    /// (a private CA). The gateway's `--upstream-ca` when the registry is its upstream.
    #[arg(long = "registry-ca", env = "TAGWARD_REGISTRY_CA")]
    pub ca_file: Option<std::path::PathBuf>,

    /// User name for the registry, if it asks for one: sent as HTTP Basic, or to the registry's
    /// token service when it answers with a `Bearer` challenge (distribution's token flow). It
    /// needs only to list the catalog and pull.
    #[arg(long = "registry-username", env = "TAGWARD_REGISTRY_USERNAME")]
    pub username: Option<String>,

    /// Password for the registry user.
    #[arg(long = "registry-password", env = "TAGWARD_REGISTRY_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,

    /// Seconds between sync passes (0: no sync; the inventory then knows only the gateway's pushes).
    #[arg(long = "registry-sync-interval", env = "TAGWARD_REGISTRY_SYNC_INTERVAL", default_value_t = Self::INTERVAL_SECONDS)]
    pub interval_seconds: u64,

    /// Requests per second the sync makes to the registry, at most (0: no limit).
    #[arg(long = "registry-sync-rate", env = "TAGWARD_REGISTRY_SYNC_RATE", default_value_t = Self::REQUESTS_PER_SECOND)]
    pub requests_per_second: u32,

    /// Seconds between full passes while the registry sends its events: the passes between list
    /// tags only and ask the digest of new tags alone (events report moves). Without events every
    /// pass is full.
    #[arg(long = "registry-full-sync-interval", env = "TAGWARD_REGISTRY_FULL_SYNC_INTERVAL", default_value_t = Self::FULL_INTERVAL_SECONDS)]
    pub full_interval_seconds: u64,
}

impl RegistrySyncConfig {
    const INTERVAL_SECONDS: u64 = 300;
    const REQUESTS_PER_SECOND: u32 = 100;
    const FULL_INTERVAL_SECONDS: u64 = 86_400;
}

impl Default for RegistrySyncConfig {
    fn default() -> Self {
        Self {
            url: None,
            ca_file: None,
            username: None,
            password: None,
            interval_seconds: Self::INTERVAL_SECONDS,
            requests_per_second: Self::REQUESTS_PER_SECOND,
            full_interval_seconds: Self::FULL_INTERVAL_SECONDS,
        }
    }
}

/// Tags stored (and the sync's place saved) at a time.
const TAGS_PER_STORE: usize = 250;
/// Manifests looked up at once within a page of tags.
const CONCURRENT_LOOKUPS: usize = 8;
/// The longest wait before a failed pass is tried again (sooner when the interval is shorter).
const MAX_RETRY_DELAY: Duration = Duration::from_secs(60);
/// The advisory lock the syncing process holds for a pass.
const SYNC_LOCK: &str = "tagward:inventory-sync";

impl RegistrySyncConfig {
    /// Starts the sync in the background if there is a registry to read (`fallback`: the gateway's
    /// upstream and its CA file) and an interval. `enforcer` says which tags are immutable (their
    /// graphs are read). Returns the registry with tagward's own credentials (for Restore), when
    /// there is one, whether or not it is synced.
    pub fn start(
        &self,
        pool: &PgPool,
        enforcer: &Enforcer,
        fallback: Option<(&Uri, Option<&std::path::Path>)>,
    ) -> anyhow::Result<Option<Registry>> {
        let (url, ca_file) = match (&self.url, fallback) {
            (Some(url), _) => (url, self.ca_file.as_deref()),
            (None, Some((url, ca_file))) => (url, self.ca_file.as_deref().or(ca_file)),
            (None, None) => return Ok(None),
        };
        let mut registry = Registry::new(url, ca_file)?;
        if let Some(username) = &self.username {
            registry = registry.with_credentials(username, self.password.as_deref().unwrap_or_default())?;
        }
        if self.interval_seconds == 0 {
            return Ok(Some(registry));
        }
        let sync = Sync {
            pool: pool.clone(),
            enforcer: enforcer.clone(),
            registry: registry.clone(),
            shown_as: url.to_string().trim_end_matches('/').to_owned(),
            throttle: Throttle::new(self.requests_per_second, enforcer.metrics.clone()),
            full_every: Duration::from_secs(self.full_interval_seconds),
        };
        let interval = Duration::from_secs(self.interval_seconds);
        tracing::info!(registry = %sync.shown_as, every = ?interval, "syncing the tag inventory");
        tokio::spawn(sync.run(interval));
        Ok(Some(registry))
    }
}

struct Sync {
    pool: PgPool,
    enforcer: Enforcer,
    registry: Registry,
    /// The registry's URL as the portal shows it.
    shown_as: String,
    throttle: Throttle,
    full_every: Duration,
}

/// Why a pass stopped.
type Failure = String;

impl Sync {
    async fn run(self, interval: Duration) {
        let mut retry = Duration::from_secs(1);
        loop {
            let wait = match self.pass().await {
                Ok(Some((repositories, tags))) => {
                    tracing::info!(repositories, tags, "tag inventory synced");
                    retry = Duration::from_secs(1);
                    interval
                }
                Ok(None) => interval,
                Err(failure) => {
                    tracing::warn!(%failure, registry = %self.shown_as, "tag inventory sync stopped; it resumes where it was");
                    if let Err(error) = app::store::record_sync_failure(&self.pool, &failure).await {
                        tracing::warn!(%error, "could not record the sync's failure");
                    }
                    let wait = retry.min(interval).min(MAX_RETRY_DELAY);
                    retry = (retry * 2).min(MAX_RETRY_DELAY);
                    wait
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// One pass over the catalog, resuming the one under way; `None` when another process holds
    /// the sync. The lock lives on a connection of its own, closed (and the lock released) when
    /// the pass ends however it ends.
    async fn pass(&self) -> Result<Option<(i64, i64)>, Failure> {
        let mut lock = self.pool.acquire().await.map_err(database)?.detach();
        let held: bool = sqlx::query_scalar("select pg_try_advisory_lock(hashtextextended($1, 0))")
            .bind(SYNC_LOCK)
            .fetch_one(&mut lock)
            .await
            .map_err(database)?;
        if !held {
            return Ok(None);
        }
        let state = app::store::begin_sync_pass(&self.pool, &self.shown_as, self.full_every).await.map_err(store)?;
        let light = state.pass_light;
        let requests_before = self.throttle.requests();
        if let (Some(repository), Some(started)) = (&state.resume_repository, state.repository_started_at) {
            self.sync_repository(repository, started, state.resume_tag.clone(), light).await?;
        }
        let mut last = state.resume_repository.clone();
        loop {
            self.throttle.wait().await;
            let path = self.registry.catalog_page_path(last.as_deref());
            let mut page = self.registry.list_page(&path, None).await.map_err(lookup)?;
            if let Some(last) = &last {
                page.names.retain(|name| name > last);
            }
            for repository in &page.names {
                let started = self.database_now().await?;
                self.sync_repository(repository, started, None, light).await?;
            }
            match (page.next, page.names.last()) {
                (Some(_), Some(name)) => last = Some(name.clone()),
                _ => break,
            }
        }
        let (counts, removed) = app::store::finish_sync_pass(&self.pool, state.pass_started_at).await.map_err(store)?;
        super::drift::report(&self.pool, &self.enforcer, &removed, FoundBy::Sync).await;
        let requests = self.throttle.requests() - requests_before;
        tracing::info!(light, requests, "sync pass complete");
        drop(lock);
        Ok(Some(counts))
    }

    /// Reads `name`'s tags after `last_tag`, page by page, storing each page with the digests
    /// looked up (in a `light` pass, only those of tags the inventory does not hold); then removes
    /// the tags the registry no longer lists.
    async fn sync_repository(
        &self,
        name: &str,
        started: OffsetDateTime,
        mut last_tag: Option<String>,
        light: bool,
    ) -> Result<(), Failure> {
        // A name tagward cannot read belongs to no project: nothing to store.
        if let Ok(repository) = RepositoryName::parse(name) {
            let protection = self.enforcer.protection(repository.project()).await;
            loop {
                self.throttle.wait().await;
                let path = self.registry.tags_page_path(name, last_tag.as_deref());
                let mut page = self.registry.list_page(&path, None).await.map_err(lookup)?;
                // Registries list tags in lexical order; some (distribution 2.8) ignore `last` and
                // answer the whole list, so what was stored before a resume is skipped here.
                if let Some(last) = &last_tag {
                    page.names.retain(|tag| tag > last);
                }
                for chunk in page.names.chunks(TAGS_PER_STORE) {
                    let Some(last) = chunk.last() else { break };
                    let held: std::collections::HashMap<Tag, Digest> = if light {
                        let keys: Vec<(String, String)> =
                            chunk.iter().map(|tag| (name.to_owned(), tag.clone())).collect();
                        let rows = app::store::inventory_tags(&self.pool, &keys).await.map_err(store)?;
                        rows.into_values().map(|row| (row.tag, row.digest)).collect()
                    } else {
                        std::collections::HashMap::new()
                    };
                    let held = &held;
                    // Tags a registry lists that are no OCI tag are left out.
                    let tags: Vec<Tag> = chunk.iter().filter_map(|tag| Tag::parse(tag).ok()).collect();
                    let found: Vec<Option<(Tag, Digest)>> = futures_util::stream::iter(tags)
                        .map(|tag| async move {
                            if let Some(digest) = held.get(&tag) {
                                return Ok(Some((tag, digest.clone())));
                            }
                            self.throttle.wait().await;
                            let digest = self.registry.current_digest(name, tag.as_str(), None).await?;
                            Ok::<_, LookupError>(digest.map(|digest| (tag, digest)))
                        })
                        .buffered(CONCURRENT_LOOKUPS)
                        .try_collect()
                        .await
                        .map_err(lookup)?;
                    let found: Vec<(Tag, Digest)> = found.into_iter().flatten().collect();
                    let moved = app::store::store_synced_tags(&self.pool, &repository, started, &found, last)
                        .await
                        .map_err(store)?;
                    super::drift::report(&self.pool, &self.enforcer, &moved, FoundBy::Sync).await;
                    if protection.protects_anything() {
                        // What immutable tags hold, and what referrers tags attach to anything.
                        let holding: Vec<String> = found
                            .iter()
                            .filter(|(tag, _)| {
                                is_referrers_tag(tag.as_str()) || protection.may_protect(&repository, tag)
                            })
                            .map(|(_, digest)| digest.to_string())
                            .collect();
                        self.learn_graphs(name, holding).await?;
                    }
                    last_tag = Some(last.clone());
                }
                if page.next.is_none() || page.names.is_empty() {
                    break;
                }
            }
        }
        let removed = app::store::finish_synced_repository(&self.pool, name, started).await.map_err(store)?;
        super::drift::report(&self.pool, &self.enforcer, &removed, FoundBy::Sync).await;
        Ok(())
    }

    /// Reads the manifests `digests` of `name` not read before, and their children at any depth, and
    /// records what each references. A manifest that cannot be read or believed is left out (the
    /// portal then counts it as not read).
    async fn learn_graphs(&self, name: &str, digests: Vec<String>) -> Result<(), Failure> {
        let mut level = app::store::unread_manifests(&self.pool, name, &digests).await.map_err(store)?;
        while !level.is_empty() {
            let read: Vec<Option<(Sha256, ManifestRefs)>> = futures_util::stream::iter(level)
                .map(|digest| async move {
                    let Ok(parsed) = Digest::parse(&digest) else { return Ok(None) };
                    self.throttle.wait().await;
                    let Some(bytes) = self.registry.manifest(name, &digest, None).await? else {
                        return Ok(None);
                    };
                    let hash = Sha256::from(&parsed);
                    match ManifestRefs::parse(hash, &bytes) {
                        Ok(refs) => Ok(Some((hash, refs))),
                        Err(error) => {
                            tracing::warn!(repository = name, %error, "a manifest the sync cannot describe");
                            Ok::<_, LookupError>(None)
                        }
                    }
                })
                .buffered(CONCURRENT_LOOKUPS)
                .try_collect()
                .await
                .map_err(lookup)?;
            let read: Vec<(Sha256, ManifestRefs)> = read.into_iter().flatten().collect();
            let records: Vec<(Sha256, &ManifestRefs)> = read.iter().map(|(digest, refs)| (*digest, refs)).collect();
            app::store::record_manifests(&self.pool, name, &records).await.map_err(store)?;
            let children: Vec<String> =
                read.iter().flat_map(|(_, refs)| refs.children.iter().map(|child| child.digest.to_string())).collect();
            level = app::store::unread_manifests(&self.pool, name, &children).await.map_err(store)?;
        }
        Ok(())
    }

    /// The database's clock (what the inventory's times are compared with).
    async fn database_now(&self) -> Result<OffsetDateTime, Failure> {
        sqlx::query_scalar("select now()").fetch_one(&self.pool).await.map_err(database)
    }
}

fn database(error: sqlx::Error) -> Failure {
    format!("the database is unavailable: {error}")
}

fn store(error: app::store::StoreError) -> Failure {
    format!("the inventory could not be written: {error}")
}

fn lookup(error: LookupError) -> Failure {
    match error {
        LookupError::Refused { status, .. } => {
            format!(
                "the registry refused the sync's request ({status}); check TAGWARD_REGISTRY_USERNAME and its password"
            )
        }
        LookupError::TooManyTags(limit) => format!("a repository lists more than {limit} tags"),
        LookupError::Failed(why) => format!("the registry could not be read: {why}"),
    }
}

/// A tag of the OCI referrers tag schema (`sha256-<hex>`): an index of what is attached to that digest.
fn is_referrers_tag(tag: &str) -> bool {
    tag.strip_prefix("sha256-").is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// At most `per_second` requests a second, spread evenly, across every task of the sync.
/// Counts them too (every request waits here first): `tagward_registry_sync_requests_total`.
struct Throttle {
    period: Option<Duration>,
    next: Mutex<Instant>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
}

impl Throttle {
    fn new(per_second: u32, metrics: std::sync::Arc<crate::metrics::Metrics>) -> Self {
        let period = (per_second > 0).then(|| Duration::from_secs(1) / per_second);
        Self { period, next: Mutex::new(Instant::now()), metrics }
    }

    /// Requests made so far.
    fn requests(&self) -> u64 {
        self.metrics.sync_requests()
    }

    async fn wait(&self) {
        self.metrics.record_sync_request();
        let Some(period) = self.period else { return };
        let at = {
            let mut next = self.next.locked();
            let at = (*next).max(Instant::now());
            *next = at + period;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

//! What decisions are made from: every project's compiled policy, every service token's hash and
//! every usable one-time exception, in memory, kept in step with the database by its notifications.
//!
//! Order matters for not missing a change: the listening connection subscribes first and the
//! full load comes after, so a change committed in between is both loaded and notified (applying
//! it twice is harmless). Notifications sent while the connection is down are lost, so every
//! reconnection is followed by a full reload.
//!
//! One file per cache: `policies.rs`, `tokens.rs`, `exceptions.rs`; here, what keeps them current.

mod exceptions;
mod policies;
mod tokens;

pub use exceptions::ExceptionCache;
pub use policies::{PolicyCache, ProjectPolicy, COMPILE_WAIT};
pub use tokens::{ServiceToken, TokenCache};

use crate::metrics::{Metrics, Reload};
use app::policy::ExceptionsSwitch;
use app::store::{self, EXCEPTIONS_CHANNEL, RULES_CHANNEL, TOKENS_CHANNEL};
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
/// Keeps a [`PolicyCache`], a [`TokenCache`] and an [`ExceptionCache`] in step with the database.
pub struct CacheSync {
    pool: PgPool,
    pub policies: Arc<PolicyCache>,
    pub tokens: Arc<TokenCache>,
    pub exceptions: Arc<ExceptionCache>,
    metrics: Arc<Metrics>,
}

impl CacheSync {
    /// Subscribes and loads everything once; fails when the database cannot be reached, since
    /// there would be nothing to decide from.
    pub async fn start(
        pool: PgPool,
        metrics: Arc<Metrics>,
        exceptions: ExceptionsSwitch,
    ) -> anyhow::Result<(Self, PgListener)> {
        let sync = Self {
            pool,
            policies: Arc::new(PolicyCache::new()),
            tokens: Arc::new(TokenCache::default()),
            exceptions: Arc::new(ExceptionCache::new(exceptions)),
            metrics,
        };
        let listener = sync.subscribe_and_load().await?;
        Ok((sync, listener))
    }

    async fn subscribe_and_load(&self) -> anyhow::Result<PgListener> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen_all([RULES_CHANNEL, TOKENS_CHANNEL, EXCEPTIONS_CHANNEL]).await?;
        let started = std::time::Instant::now();
        self.tokens.replace_all(store::active_tokens(&self.pool).await?);
        self.exceptions.replace_all(store::usable_exceptions(&self.pool, None).await?);
        self.metrics.set_usable_exceptions(self.exceptions.count());
        self.policies.load_all(&self.pool).await?;
        self.metrics.record_reload(Reload::Full, self.policies.project_count());
        tracing::info!(
            projects = self.policies.project_count(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "policy cache loaded"
        );
        Ok(listener)
    }

    /// Follows the notifications for good: on any failure the cache is marked not current, and
    /// once the database answers again everything is reloaded.
    pub async fn run(self, mut listener: PgListener) {
        loop {
            let error = self.follow(&mut listener).await;
            self.policies.mark_stale();
            self.metrics.set_database_up(false);
            tracing::warn!(%error, "lost the database's notifications; decisions come from the cache until it is back");
            let mut backoff = Duration::from_millis(100);
            listener = loop {
                tokio::time::sleep(backoff).await;
                match self.subscribe_and_load().await {
                    Ok(listener) => break listener,
                    Err(error) => {
                        tracing::debug!(%error, "database still unreachable");
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                    }
                }
            };
            self.metrics.set_database_up(true);
            tracing::info!("database back; policy cache reloaded");
        }
    }

    /// Applies notifications until the connection drops or a reload fails.
    async fn follow(&self, listener: &mut PgListener) -> anyhow::Error {
        loop {
            let notification = match listener.try_recv().await {
                Ok(Some(notification)) => notification,
                Ok(None) => return anyhow::anyhow!("the listening connection closed"),
                Err(error) => return error.into(),
            };
            let channel = notification.channel();
            // Every channel but the tokens' names the project whose rules or exceptions changed.
            let project = (channel != TOKENS_CHANNEL).then(|| notification.payload().parse::<i64>());
            let applied = match project {
                None => store::active_tokens(&self.pool).await.map(|active| self.tokens.replace_all(active)),
                Some(Ok(id)) if channel == EXCEPTIONS_CHANNEL => {
                    store::usable_exceptions(&self.pool, Some(id)).await.map(|usable| {
                        self.exceptions.replace_project(id, usable);
                        self.metrics.set_usable_exceptions(self.exceptions.count());
                    })
                }
                Some(Ok(id)) => store::project_policy(&self.pool, id).await.map(|project| {
                    self.policies.replace_one(id, project);
                    self.metrics.record_reload(Reload::Project, self.policies.project_count());
                }),
                Some(Err(_)) => {
                    tracing::warn!(channel, payload = notification.payload(), "ignoring a malformed notification");
                    Ok(())
                }
            };
            if let Err(error) = applied {
                return anyhow::Error::new(error).context("reloading after a notification");
            }
        }
    }
}

//! What decisions are made from: every project's compiled policy and every service token's hash,
//! in memory, kept in step with the database by its notifications.
//!
//! Order matters for not missing a change: the listening connection subscribes first and the
//! full load comes after, so a change committed in between is both loaded and notified (applying
//! it twice is harmless). Notifications sent while the connection is down are lost, so every
//! reconnection is followed by a full reload.

use crate::metrics::{Metrics, Reload};
use app::policy::{CompiledPolicy, PolicyRule};
use app::store::{self, ProjectRules, RULES_CHANNEL, TOKENS_CHANNEL};
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::Notify;

/// How long a decision waits for its project's policy to finish compiling before it is answered
/// as for a policy that cannot be evaluated (compiling a policy within the size budget takes
/// milliseconds; this only bites when the blocking pool is swamped).
pub const COMPILE_WAIT: Duration = Duration::from_secs(2);

/// One project's policy, as decisions use it. Compiled on a blocking thread, never on a request's:
/// on first use after a full load (a compiled 15-rule policy takes tens of kilobytes, and a
/// registry with thousands of projects decides for few of them at a time), and at once when a
/// notification brings the project's new rules.
#[derive(Debug)]
pub struct ProjectPolicy {
    pub id: i64,
    pub name: String,
    /// The enabled rules, parsed.
    rules: Vec<PolicyRule>,
    /// Set once: the compiled policy, or why it cannot be evaluated.
    compiled: OnceLock<Result<CompiledPolicy, String>>,
    compiling: AtomicBool,
    compiled_now: Notify,
}

impl ProjectPolicy {
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// The compiled policy, once it is there and sound.
    pub fn ready(&self) -> Option<&CompiledPolicy> {
        self.compiled.get().and_then(|compiled| compiled.as_ref().ok())
    }

    /// Why this policy cannot be evaluated, once that is known.
    pub fn problem(&self) -> Option<&str> {
        self.compiled.get().and_then(|compiled| compiled.as_ref().err()).map(String::as_str)
    }

    /// The compiled policy, compiling it if needed and waiting at most `wait`; else why not.
    pub async fn evaluate(self: &Arc<Self>, wait: Duration) -> Result<&CompiledPolicy, String> {
        if let Some(compiled) = self.compiled.get() {
            return compiled.as_ref().map_err(Clone::clone);
        }
        let compiled_now = self.compiled_now.notified();
        tokio::pin!(compiled_now);
        compiled_now.as_mut().enable();
        self.start_compiling();
        if self.compiled.get().is_none() {
            let _ = tokio::time::timeout(wait, compiled_now).await;
        }
        match self.compiled.get() {
            Some(compiled) => compiled.as_ref().map_err(Clone::clone),
            None => Err(format!("its policy is still being compiled after {} ms", wait.as_millis())),
        }
    }

    /// Compiles on the blocking pool, once.
    fn start_compiling(self: &Arc<Self>) {
        if self.compiled.get().is_some() || self.compiling.swap(true, Ordering::AcqRel) {
            return;
        }
        let project = self.clone();
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let compiled = CompiledPolicy::compile(&project.rules).map_err(|error| {
                tracing::error!(project = %project.name, %error, "policy does not compile; changes to existing tags are refused");
                format!("its rules do not compile: {error}")
            });
            tracing::debug!(project = %project.name, elapsed_us = started.elapsed().as_micros() as u64, "policy compiled");
            let _ = project.compiled.set(compiled);
            project.compiled_now.notify_waiters();
        });
    }
}

#[derive(Default)]
struct Projects {
    by_name: HashMap<String, Arc<ProjectPolicy>>,
    name_of: HashMap<i64, String>,
}

/// Every project's policy, by project name.
pub struct PolicyCache {
    projects: RwLock<Projects>,
    /// Whether the notifying connection is up, i.e. whether the cache is known to be current.
    current: AtomicBool,
    /// When the cache was last fully loaded (Unix seconds).
    loaded_at: AtomicI64,
}

impl PolicyCache {
    fn new() -> Self {
        Self { projects: RwLock::default(), current: AtomicBool::new(false), loaded_at: AtomicI64::new(0) }
    }

    pub fn project(&self, name: &str) -> Option<Arc<ProjectPolicy>> {
        self.projects.read().unwrap_or_else(|poisoned| poisoned.into_inner()).by_name.get(name).cloned()
    }

    pub fn project_count(&self) -> usize {
        self.projects.read().unwrap_or_else(|poisoned| poisoned.into_inner()).by_name.len()
    }

    /// Whether every change made so far has reached this cache (the notifying connection is up).
    pub fn is_current(&self) -> bool {
        self.current.load(Ordering::Acquire)
    }

    pub fn loaded_at(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.loaded_at.load(Ordering::Acquire))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// Parses a project's stored rules. A stored rule this engine refuses, or rules past the size
    /// budget (both only written outside tagward), make the policy one that cannot be evaluated,
    /// never one that silently enforces less.
    fn parse(project: ProjectRules) -> ProjectPolicy {
        let compiled = OnceLock::new();
        let rules = store::enforceable_rules(&project.rules).unwrap_or_else(|problem| {
            tracing::error!(project = %project.name, %problem, "policy cannot be evaluated; changes to existing tags are refused");
            let _ = compiled.set(Err(problem));
            Vec::new()
        });
        ProjectPolicy {
            id: project.id,
            name: project.name,
            rules,
            compiled,
            compiling: AtomicBool::new(false),
            compiled_now: Notify::new(),
        }
    }

    /// Every project whose policy cannot be evaluated, with why (by name).
    pub fn problems(&self) -> Vec<(String, String)> {
        let projects = self.projects.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut problems: Vec<(String, String)> = projects
            .by_name
            .values()
            .filter_map(|project| Some((project.name.clone(), project.problem()?.to_owned())))
            .collect();
        problems.sort();
        problems
    }

    fn replace_all(&self, projects: Vec<ProjectRules>) {
        let mut loaded = Projects::default();
        for project in projects {
            let compiled = Self::parse(project);
            loaded.name_of.insert(compiled.id, compiled.name.clone());
            loaded.by_name.insert(compiled.name.clone(), Arc::new(compiled));
        }
        *self.projects.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = loaded;
        self.loaded_at.store(OffsetDateTime::now_utc().unix_timestamp(), Ordering::Release);
    }

    /// Puts in the project's current state: `None` when it no longer exists.
    fn replace_one(&self, id: i64, project: Option<ProjectRules>) {
        let compiled = project.map(|project| Arc::new(Self::parse(project)));
        if let Some(compiled) = &compiled {
            compiled.start_compiling();
        }
        let mut projects = self.projects.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(old_name) = projects.name_of.remove(&id) {
            projects.by_name.remove(&old_name);
        }
        if let Some(compiled) = compiled {
            projects.name_of.insert(id, compiled.name.clone());
            projects.by_name.insert(compiled.name.clone(), compiled);
        }
    }
}

/// A service token as requests present it.
#[derive(Debug)]
pub struct ServiceToken {
    pub id: i64,
    pub name: String,
    /// What it may do.
    pub grant: app::account::TokenGrant,
    /// When it was last presented (Unix seconds), written to the database in batches.
    pub last_used: AtomicI64,
}

impl ServiceToken {
    /// The token as a caller.
    pub fn principal(&self) -> app::principal::Principal {
        let (id, name, grant) = (self.id, self.name.clone(), self.grant.clone());
        app::principal::Principal::Token(app::principal::ServiceToken { id, name, grant })
    }
}

/// Every unrevoked service token, by the SHA-256 of its secret.
#[derive(Default)]
pub struct TokenCache {
    tokens: RwLock<HashMap<[u8; 32], Arc<ServiceToken>>>,
}

impl TokenCache {
    /// The token whose secret is `presented`, if it is valid and not revoked.
    pub fn find(&self, presented: &str) -> Option<Arc<ServiceToken>> {
        let hash = app::account::token_sha256(presented);
        self.tokens.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(&hash).cloned()
    }

    pub fn all(&self) -> Vec<Arc<ServiceToken>> {
        self.tokens.read().unwrap_or_else(|poisoned| poisoned.into_inner()).values().cloned().collect()
    }

    fn replace_all(&self, active: Vec<store::ActiveToken>) {
        let mut tokens = self.tokens.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        let last_used: HashMap<i64, i64> =
            tokens.values().map(|token| (token.id, token.last_used.load(Ordering::Relaxed))).collect();
        *tokens = active
            .into_iter()
            .filter_map(|token| {
                let hash: [u8; 32] = token.sha256.as_slice().try_into().ok()?;
                let last_used = AtomicI64::new(last_used.get(&token.id).copied().unwrap_or(0));
                Some((hash, Arc::new(ServiceToken { id: token.id, name: token.name, grant: token.grant, last_used })))
            })
            .collect();
    }
}

/// Keeps a [`PolicyCache`] and a [`TokenCache`] in step with the database.
pub struct CacheSync {
    pool: PgPool,
    pub policies: Arc<PolicyCache>,
    pub tokens: Arc<TokenCache>,
    metrics: Arc<Metrics>,
}

impl CacheSync {
    /// Subscribes and loads everything once; fails when the database cannot be reached, since
    /// there would be nothing to decide from.
    pub async fn start(pool: PgPool, metrics: Arc<Metrics>) -> anyhow::Result<(Self, PgListener)> {
        let sync =
            Self { pool, policies: Arc::new(PolicyCache::new()), tokens: Arc::new(TokenCache::default()), metrics };
        let listener = sync.subscribe_and_load().await?;
        Ok((sync, listener))
    }

    async fn subscribe_and_load(&self) -> anyhow::Result<PgListener> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen_all([RULES_CHANNEL, TOKENS_CHANNEL]).await?;
        let started = std::time::Instant::now();
        self.tokens.replace_all(store::active_tokens(&self.pool).await?);
        self.policies.replace_all(store::all_project_rules(&self.pool).await?);
        self.policies.current.store(true, Ordering::Release);
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
            self.policies.current.store(false, Ordering::Release);
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
            let applied = if notification.channel() == TOKENS_CHANNEL {
                store::active_tokens(&self.pool).await.map(|active| self.tokens.replace_all(active))
            } else {
                match notification.payload().parse::<i64>() {
                    Ok(id) => store::project_rules_by_id(&self.pool, id).await.map(|project| {
                        self.policies.replace_one(id, project);
                        self.metrics.record_reload(Reload::Project, self.policies.project_count());
                    }),
                    Err(_) => {
                        tracing::warn!(payload = notification.payload(), "ignoring a malformed rules notification");
                        Ok(())
                    }
                }
            };
            if let Err(error) = applied {
                return anyhow::Error::new(error).context("reloading after a notification");
            }
        }
    }
}

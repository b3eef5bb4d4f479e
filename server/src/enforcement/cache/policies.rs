//! Every project's compiled policy, shared between projects whose active rules read the same.

use app::locks::{Locked, ReadWrite};
use app::policy::{check_stored_size, CompiledPolicy, PolicyRule, PolicyVersion, RuleInput, RuleState};
use app::store::ProjectPolicySource;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::Notify;

/// How long a decision waits for its project's policy to finish compiling before it is answered
/// as for a policy that cannot be evaluated (compiling a policy within the size budget takes
/// milliseconds; this only bites when the blocking pool is swamped).
pub const COMPILE_WAIT: Duration = Duration::from_secs(2);

/// A rule as the cache keeps it until compiled: its state and text.
type RuleText = (RuleState, RuleInput);

/// A compiled policy as several projects may share it: the same active rules (by state and text, in the
/// same order; common when projects are made from one template) are compiled once.
///
/// Compiled on a blocking thread, never on a request's: all of them in the background after a
/// full load (the cache answers before that is done), and at once when a notification brings a
/// project's new rules or a decision needs one not compiled yet. The server keeps the interpreted
/// matcher (a 15-rule policy in a few kilobytes; the regex one takes about 80) and drops the
/// rules' text once compiled.
struct SharedPolicy {
    /// The rules' states and text, until compiled.
    source: Mutex<Option<Box<[RuleText]>>>,
    /// Set once: the compiled policy (with rule positions for ids), or why it cannot be evaluated.
    compiled: OnceLock<Result<CompiledPolicy, Problem>>,
    compiling: AtomicBool,
    compiled_now: Notify,
}

/// Why a shared policy cannot be evaluated.
#[derive(Debug)]
struct Problem {
    /// The position of the rule at fault, if one is.
    rule: Option<usize>,
    reason: String,
}

impl SharedPolicy {
    fn new(source: Box<[RuleText]>) -> Self {
        let source = Mutex::new(Some(source));
        Self { source, compiled: OnceLock::new(), compiling: AtomicBool::new(false), compiled_now: Notify::new() }
    }

    /// Compiles here and now unless another thread is at it or it is done.
    fn compile_now(&self) {
        if self.compiled.get().is_some() || self.compiling.swap(true, Ordering::AcqRel) {
            return;
        }
        let source = self.source.locked().take();
        let _ = self.compiled.set(Self::compile(&source.unwrap_or_default()));
        self.compiled_now.notify_waiters();
    }

    /// Parses, checks against the size budget and compiles. A stored rule this engine refuses,
    /// or rules past the budget (both only written outside tagward), make a policy that cannot be
    /// evaluated, never one that silently enforces less.
    fn compile(source: &[RuleText]) -> Result<CompiledPolicy, Problem> {
        let rules = source
            .iter()
            .enumerate()
            .map(|(position, (state, input))| {
                PolicyRule::parse(position as i64, *state, input)
                    .map_err(|error| Problem { rule: Some(position), reason: format!("does not parse: {error}") })
            })
            .collect::<Result<Vec<_>, Problem>>()?;
        check_stored_size(&rules).map_err(|error| Problem { rule: None, reason: error.to_string() })?;
        CompiledPolicy::interpreted(&rules)
            .map_err(|error| Problem { rule: None, reason: format!("its rules do not compile: {error}") })
    }
}

/// One project's policy, as decisions use it.
pub struct ProjectPolicy {
    pub id: i64,
    pub name: String,
    /// The active rules' ids, in order, and their states' and text's fingerprint.
    version: PolicyVersion,
    shared: Arc<SharedPolicy>,
    /// The shared policy with this project's rule ids (or why it cannot be evaluated), once there.
    own: OnceLock<Result<CompiledPolicy, String>>,
}

impl ProjectPolicy {
    pub fn rule_count(&self) -> usize {
        self.version.rule_ids.len()
    }

    /// Which rules this policy is made of.
    pub fn version(&self) -> &PolicyVersion {
        &self.version
    }

    fn own(&self) -> Option<&Result<CompiledPolicy, String>> {
        if let Some(own) = self.own.get() {
            return Some(own);
        }
        let shared = self.shared.compiled.get()?;
        let own = match shared {
            Ok(policy) => policy.sharing(self.version.rule_ids.clone()).ok_or_else(|| "its rules changed".to_owned()),
            Err(Problem { rule: Some(position), reason }) => {
                let id = self.version.rule_ids.get(*position).copied().unwrap_or_default();
                Err(format!("its rule {id} {reason}"))
            }
            Err(Problem { rule: None, reason }) => Err(reason.clone()),
        };
        if let Err(reason) = &own {
            tracing::error!(project = %self.name, %reason, "policy cannot be evaluated; changes to existing tags are refused");
        }
        Some(self.own.get_or_init(|| own))
    }

    /// The compiled policy, once it is there and sound.
    pub fn ready(&self) -> Option<&CompiledPolicy> {
        self.own().and_then(|own| own.as_ref().ok())
    }

    /// Why this policy cannot be evaluated, once that is known.
    pub fn problem(&self) -> Option<&str> {
        self.own().and_then(|own| own.as_ref().err()).map(String::as_str)
    }

    /// The compiled policy, compiling it if needed and waiting at most `wait`; else why not.
    pub async fn evaluate(&self, wait: Duration) -> Result<&CompiledPolicy, String> {
        if self.own().is_none() {
            let compiled_now = self.shared.compiled_now.notified();
            tokio::pin!(compiled_now);
            compiled_now.as_mut().enable();
            self.start_compiling();
            if self.shared.compiled.get().is_none() {
                let _ = tokio::time::timeout(wait, compiled_now).await;
            }
        }
        match self.own() {
            Some(own) => own.as_ref().map_err(Clone::clone),
            None => Err(format!("its policy is still being compiled after {} ms", wait.as_millis())),
        }
    }

    /// Compiles on the blocking pool, once.
    fn start_compiling(&self) {
        let shared = &self.shared;
        if shared.compiled.get().is_some() || shared.compiling.load(Ordering::Acquire) {
            return;
        }
        let shared = shared.clone();
        tokio::task::spawn_blocking(move || shared.compile_now());
    }
}

#[derive(Default)]
struct Projects {
    by_name: HashMap<String, Arc<ProjectPolicy>>,
    name_of: HashMap<i64, String>,
    /// Every shared policy by its key (entries whose projects are all gone are swept now and then).
    shared: HashMap<[u8; 32], Weak<SharedPolicy>>,
}

impl Projects {
    /// The project's policy, sharing a compiled one with any project whose rules read the same.
    fn policy(&mut self, source: ProjectPolicySource) -> Arc<ProjectPolicy> {
        let version = PolicyVersion::of(source.rules.iter().map(|(id, state, input)| (*id, *state, input)));
        let key = version.text;
        let shared = match self.shared.get(&key).and_then(Weak::upgrade) {
            Some(shared) => shared,
            None => {
                let rules = source.rules.into_iter().map(|(_, state, input)| (state, input)).collect();
                let shared = Arc::new(SharedPolicy::new(rules));
                self.shared.insert(key, Arc::downgrade(&shared));
                shared
            }
        };
        Arc::new(ProjectPolicy { id: source.id, name: source.name, version, shared, own: OnceLock::new() })
    }

    fn insert(&mut self, policy: Arc<ProjectPolicy>) {
        self.name_of.insert(policy.id, policy.name.clone());
        self.by_name.insert(policy.name.clone(), policy);
    }

    fn remove(&mut self, id: i64) -> Option<Arc<ProjectPolicy>> {
        let name = self.name_of.remove(&id)?;
        self.by_name.remove(&name)
    }

    /// Forgets shared policies no project uses, once they outnumber the projects.
    fn sweep(&mut self) {
        if self.shared.len() > 2 * self.by_name.len() + 64 {
            self.shared.retain(|_, shared| shared.strong_count() > 0);
        }
    }
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
    pub(super) fn new() -> Self {
        Self { projects: RwLock::default(), current: AtomicBool::new(false), loaded_at: AtomicI64::new(0) }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Projects> {
        self.projects.reading()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Projects> {
        self.projects.writing()
    }

    pub fn project(&self, name: &str) -> Option<Arc<ProjectPolicy>> {
        self.read().by_name.get(name).cloned()
    }

    pub fn project_count(&self) -> usize {
        self.read().by_name.len()
    }

    /// How many distinct compiled policies the projects share.
    pub fn shared_count(&self) -> usize {
        self.read().shared.values().filter(|shared| shared.strong_count() > 0).count()
    }

    /// Whether every change made so far has reached this cache (the notifying connection is up).
    pub fn is_current(&self) -> bool {
        self.current.load(Ordering::Acquire)
    }

    pub fn loaded_at(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(self.loaded_at.load(Ordering::Acquire))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// Every project whose policy cannot be evaluated, with why (by name).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems: Vec<(String, String)> = self
            .read()
            .by_name
            .values()
            .filter_map(|project| Some((project.name.clone(), project.problem()?.to_owned())))
            .collect();
        problems.sort();
        problems
    }

    /// Loads every project's policy and marks the cache current. Policies compiled before (a
    /// reload after a reconnection) are kept where the rules did not change.
    pub(super) async fn load_all(&self, pool: &sqlx::PgPool) -> Result<(), app::store::StoreError> {
        let mut loaded = Projects { shared: self.read().shared.clone(), ..Projects::default() };
        app::store::each_project_policy(pool, |source| {
            let policy = loaded.policy(source);
            loaded.insert(policy);
        })
        .await?;
        self.replace_all(loaded);
        self.current.store(true, Ordering::Release);
        Ok(())
    }

    /// The notifications were lost: what the cache holds may be out of date until it is reloaded.
    pub(super) fn mark_stale(&self) {
        self.current.store(false, Ordering::Release);
    }

    fn replace_all(&self, projects: Projects) {
        *self.write() = projects;
        self.loaded_at.store(OffsetDateTime::now_utc().unix_timestamp(), Ordering::Release);
        // Compile everything in the background, one policy at a time, so the memory of the rules'
        // text is given back and problems show in /readyz without waiting for a decision.
        let uncompiled: Vec<Arc<SharedPolicy>> = self
            .read()
            .shared
            .values()
            .filter_map(Weak::upgrade)
            .filter(|shared| shared.compiled.get().is_none())
            .collect();
        if !uncompiled.is_empty() {
            tokio::task::spawn_blocking(move || {
                let started = std::time::Instant::now();
                let count = uncompiled.len();
                for shared in uncompiled {
                    shared.compile_now();
                }
                tracing::info!(
                    policies = count,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "policies compiled"
                );
            });
        }
    }

    /// Puts in the project's current state: `None` when it no longer exists.
    pub(super) fn replace_one(&self, id: i64, source: Option<ProjectPolicySource>) {
        let mut projects = self.write();
        let old = projects.remove(id);
        if let Some(source) = source {
            let policy = projects.policy(source);
            policy.start_compiling();
            projects.insert(policy);
        }
        drop(old);
        projects.sweep();
    }
}

impl app::state::EnforcedPolicies for PolicyCache {
    fn policy<'a>(&'a self, project: &'a str, version: &'a PolicyVersion) -> app::state::EnforcedPolicy<'a> {
        Box::pin(async move {
            let policy = self.project(project).filter(|policy| policy.version() == version)?;
            Some(policy.evaluate(COMPILE_WAIT).await.cloned())
        })
    }
}

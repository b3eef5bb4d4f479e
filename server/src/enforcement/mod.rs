//! Enforcement: the decisions the registry's push path asks for, answered from memory.
//!
//! Every process keeps each project's rules compiled ([`cache`]), kept current by the database's
//! notifications and fully reloaded whenever the notifying connection comes back, so decisions go
//! on while PostgreSQL is away. Denials and token use are written off the request path
//! ([`recorder`]). The decision API ([`api`]) and the gateway both decide through [`Enforcer`].
//!
//! A one-time exception is the one thing a decision reads the database for: only when the rules
//! refuse a change and the cached exceptions hold one that lets it through, that exception is used
//! in a transaction (so exactly one request gets it, across every process). If that fails, the
//! change stays refused: an exception never fails open.

pub mod api;
pub mod cache;
pub mod recorder;
pub mod schema;

use crate::metrics::{Metrics, Operation};
use anyhow::Context;
use app::policy::{
    AppendOnly, CompiledPolicy, Decision, Digest, ExceptionsSwitch, Holder, ListDelete, ListPush, Outcome,
    RefusedChange, RepositoryName, RuleInfo, Tag,
};
use app::principal::Principal;
use app::store::{ExceptionUse, ExceptionsTaken};
use cache::{CacheSync, ExceptionCache, PolicyCache, ProjectPolicy, ServiceToken, TokenCache};
use recorder::Recorder;
use serde::Serialize;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One question of the registry, parsed.
#[derive(Debug, Clone)]
pub enum Check {
    /// Pushing the manifest `digest` to `tag`, which points at `current` now (or at nothing).
    /// `list`: when `tag` is an attachment list, its entries before and after and what holds
    /// its subject (`None` for any other tag).
    Push { repository: RepositoryName, tag: Tag, digest: Digest, current: Option<Digest>, list: Option<Box<ListPush>> },
    /// Deleting `tag`; `list`, when it is an attachment list, what holds its subject.
    DeleteTag { repository: RepositoryName, tag: Tag, list: Option<ListDelete> },
    /// Deleting the manifest `digest`, which `tags` point at now and the manifests `held_by`
    /// reference (indexes above it, the subject it is attached to).
    DeleteManifest { repository: RepositoryName, digest: Digest, tags: Vec<Tag>, held_by: Vec<Holder> },
    /// Deleting the blob `digest`, which the manifests `held_by` reference.
    DeleteBlob { repository: RepositoryName, digest: Digest, held_by: Vec<Holder> },
}

impl Check {
    pub fn operation(&self) -> Operation {
        match self {
            Check::Push { .. } => Operation::Push,
            Check::DeleteTag { .. } => Operation::DeleteTag,
            Check::DeleteManifest { .. } => Operation::DeleteManifest,
            Check::DeleteBlob { .. } => Operation::DeleteBlob,
        }
    }
    pub fn repository(&self) -> &RepositoryName {
        match self {
            Check::Push { repository, .. }
            | Check::DeleteTag { repository, .. }
            | Check::DeleteManifest { repository, .. }
            | Check::DeleteBlob { repository, .. } => repository,
        }
    }

    /// The change in a few words, as an exception's use records it: `push of sha256:… to
    /// shop/api:v1`, `delete of shop/api:v1`, `delete of manifest shop/api@sha256:…`.
    pub fn describe(&self) -> String {
        match self {
            Check::Push { repository, tag, digest, current, .. } => match current {
                Some(current) => format!("push of {digest} to {repository}:{tag} (was {current})"),
                None => format!("push of {digest} to {repository}:{tag}"),
            },
            Check::DeleteTag { repository, tag, .. } => format!("delete of {repository}:{tag}"),
            Check::DeleteManifest { repository, digest, .. } => format!("delete of manifest {repository}@{digest}"),
            Check::DeleteBlob { repository, digest, .. } => format!("delete of blob {repository}@{digest}"),
        }
    }

    /// The change as an exception is asked about it, given what refused it.
    fn refused<'a>(&'a self, immutable_tags: &'a [String]) -> RefusedChange<'a> {
        match self {
            Check::Push { repository, tag, digest, .. } => RefusedChange::Overwrite { repository, tag, digest },
            Check::DeleteTag { repository, .. } => RefusedChange::Delete { repository, digest: None, immutable_tags },
            Check::DeleteManifest { repository, digest, .. } | Check::DeleteBlob { repository, digest, .. } => {
                RefusedChange::Delete { repository, digest: Some(digest), immutable_tags }
            }
        }
    }
}

/// The answer to a [`Check`].
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Verdict {
    /// Whether the registry may go ahead.
    pub allowed: bool,
    /// One line fit to show the user of `docker push`.
    pub message: String,
    /// The rules that make the tag(s) concerned immutable (also on allowed first pushes).
    #[schema(value_type = Vec<RuleRef>)]
    pub rules: Vec<RuleInfo>,
    /// Of the tags the check names, the immutable ones.
    pub immutable_tags: Vec<String>,
    /// False when the repository's project is not known to tagward: no rule can protect it, so
    /// everything is allowed, and this says why.
    pub project_known: bool,
    /// The project's evaluating rules that would have refused this, were they enforced (they deny
    /// nothing: the answer is `allowed`, and the would-be denial is recorded). Empty otherwise.
    #[schema(value_type = Vec<EvaluatedRuleRef>)]
    pub evaluated: Vec<EvaluatedRule>,
    /// With `evaluated`: the message the client would have been given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would_have_been: Option<String>,
    /// The one-time exception that let this otherwise refused change through (now used up).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exception: Option<ExceptionRef>,
}

/// A one-time exception as a decision names it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ExceptionRef {
    pub id: i64,
    /// Who granted it.
    pub granted_by: String,
    /// Why, as they wrote it.
    pub reason: String,
}

/// An evaluating rule a decision ran.
#[derive(Debug, Clone, Serialize)]
pub struct EvaluatedRule {
    #[serde(flatten)]
    pub rule: RuleInfo,
    /// Whether it would have denied the request (always, for the rules listed).
    pub would_deny: bool,
}

/// An evaluating rule as a decision names it.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // describes `EvaluatedRule`'s JSON for the OpenAPI document
pub struct EvaluatedRuleRef {
    pub id: i64,
    /// e.g. `repositories matching **, tags matching v*.*.*`
    pub summary: String,
    pub would_deny: bool,
}

/// A rule as a decision names it.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // describes `RuleInfo`'s JSON for the OpenAPI document
pub struct RuleRef {
    pub id: i64,
    /// e.g. `repositories matching **, tags matching v*.*.*`
    pub summary: String,
}

impl Verdict {
    fn from_decision(decision: Decision<'_>, immutable_tags: Vec<String>) -> Self {
        Verdict {
            allowed: decision.allowed(),
            message: decision.to_string(),
            rules: decision.rules().collect(),
            immutable_tags,
            project_known: true,
            evaluated: decision.evaluated_rules().map(|rule| EvaluatedRule { rule, would_deny: true }).collect(),
            would_have_been: decision.would_have_denied().map(|as_if| as_if.to_string()),
            exception: None,
        }
    }

    /// The answer while the project's policy cannot be evaluated: nothing that changes an existing
    /// tag is allowed (first pushes and same-digest re-pushes change nothing protected).
    fn unevaluable(check: &Check, project: &str, reason: &str) -> Self {
        let (allowed, tags): (bool, Vec<String>) = match check {
            Check::Push { tag, digest, current, .. } => {
                (current.as_ref().is_none_or(|current| current == digest), vec![tag.to_string()])
            }
            Check::DeleteTag { tag, .. } => (false, vec![tag.to_string()]),
            Check::DeleteManifest { tags, held_by, .. } => {
                let tags: Vec<String> = tags.iter().chain(holding_tags(held_by)).map(ToString::to_string).collect();
                (tags.is_empty(), tags)
            }
            Check::DeleteBlob { held_by, .. } => {
                let tags: Vec<String> = holding_tags(held_by).map(ToString::to_string).collect();
                (tags.is_empty(), tags)
            }
        };
        let consequence = if allowed {
            "this request changes no existing tag, so it is let through"
        } else {
            "changes to existing tags are refused until it is fixed"
        };
        Verdict {
            allowed,
            message: format!(
                "the tag immutability policy of project \"{project}\" cannot be evaluated ({reason}); {consequence}"
            ),
            rules: Vec::new(),
            immutable_tags: tags,
            project_known: true,
            evaluated: Vec::new(),
            would_have_been: None,
            exception: None,
        }
    }

    fn unknown_project(repository: &RepositoryName) -> Self {
        Verdict {
            allowed: true,
            message: format!(
                "project \"{}\" is not known to tagward, so no rule protects \"{repository}\"",
                repository.project()
            ),
            rules: Vec::new(),
            immutable_tags: Vec::new(),
            project_known: false,
            evaluated: Vec::new(),
            would_have_been: None,
            exception: None,
        }
    }
}

/// Answers checks from the compiled policies, counting and recording as it goes. A handle: every
/// request's extractors clone it, so it is one shared allocation (one reference count to touch,
/// where its four parts would be four, each a cache line both cores write).
#[derive(Clone)]
pub struct Enforcer(Arc<EnforcerParts>);

pub struct EnforcerParts {
    pub policies: Arc<PolicyCache>,
    pub tokens: Arc<TokenCache>,
    pub exceptions: Arc<ExceptionCache>,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// Where an exception is used (nothing else on the decision path touches it).
    pool: PgPool,
}

/// How long using an exception may take before the change is refused as if there were none (the
/// database is slow or away: never fail open, never hang the push).
const EXCEPTION_USE_TIMEOUT: Duration = Duration::from_secs(5);

/// How many exceptions one decision tries before giving up, when the ones it finds in memory turn
/// out to be used already (by concurrent requests, before this process heard of it).
const MAX_EXCEPTION_ATTEMPTS: usize = 4;

impl std::ops::Deref for Enforcer {
    type Target = EnforcerParts;
    fn deref(&self) -> &EnforcerParts {
        &self.0
    }
}

impl Enforcer {
    /// Loads the caches and starts what keeps them current and what writes denials: what both
    /// the portal process and the gateway decide with.
    pub async fn start(pool: &PgPool, exceptions: ExceptionsSwitch) -> anyhow::Result<Self> {
        let metrics = Arc::new(Metrics::default());
        let (sync, notifications) =
            CacheSync::start(pool.clone(), metrics.clone(), exceptions).await.context("loading the policy cache")?;
        let enforcer = Enforcer(Arc::new(EnforcerParts {
            policies: sync.policies.clone(),
            tokens: sync.tokens.clone(),
            exceptions: sync.exceptions.clone(),
            recorder: Recorder::start(pool.clone(), sync.tokens.clone(), metrics.clone()),
            metrics,
            pool: pool.clone(),
        }));
        tokio::spawn(sync.run(notifications));
        Ok(enforcer)
    }

    /// The unrevoked service token whose secret is `presented` (from memory), noting its use.
    pub fn token(&self, presented: &str) -> Option<Arc<ServiceToken>> {
        let token = self.tokens.find(presented.trim())?;
        self.recorder.used(&token);
        Some(token)
    }

    /// What protects the repositories of `project`, waiting (bounded) for its policy to compile.
    pub async fn protection(&self, project: &str) -> Protection {
        let Some(policy) = self.policies.project(project) else {
            return Protection::UnknownProject;
        };
        match policy.evaluate(cache::COMPILE_WAIT).await {
            Ok(_) => Protection::Policy(policy),
            Err(reason) => Protection::Unevaluable(policy, reason),
        }
    }

    /// Decides `check` for `caller` (a service token, or the gateway); a denial is queued for the
    /// audit trail.
    pub async fn check(&self, caller: &Principal, check: &Check) -> Verdict {
        let protection = self.protection(check.repository().project()).await;
        self.decide(caller, &protection, check).await
    }

    /// Decides `check` under a protection already looked up (the gateway asks once per request).
    pub async fn decide(&self, caller: &Principal, protection: &Protection, check: &Check) -> Verdict {
        // One verdict per check, always.
        self.decide_together(caller, protection, std::slice::from_ref(check)).await.swap_remove(0)
    }

    /// Decides `checks`, the parts of one request (a push naming several tags), together: the
    /// rules decide each from memory; refused ones are let through only if an exception releases
    /// every one of them, and then all those exceptions are used in one transaction (so none is
    /// spent on a request that is refused anyway). Denials and would-be denials are queued for the
    /// audit trail; uses are written by the transaction.
    pub async fn decide_together(&self, caller: &Principal, protection: &Protection, checks: &[Check]) -> Vec<Verdict> {
        let mut verdicts: Vec<Verdict> = checks
            .iter()
            .map(|check| {
                let started = Instant::now();
                let verdict = match protection {
                    Protection::UnknownProject => Verdict::unknown_project(check.repository()),
                    Protection::Policy(project) => match project.ready() {
                        Some(policy) => decide(policy, check),
                        None => Verdict::unevaluable(check, &project.name, "its policy is not compiled"),
                    },
                    Protection::Unevaluable(project, reason) => Verdict::unevaluable(check, &project.name, reason),
                };
                self.metrics.record_decision(check.operation(), verdict.allowed, started.elapsed());
                verdict
            })
            .collect();
        let Some(project) = protection.project() else { return verdicts };
        if verdicts.iter().any(|verdict| !verdict.allowed) {
            self.release_by_exceptions(caller, protection, checks, &mut verdicts).await;
        }
        for (check, verdict) in checks.iter().zip(&verdicts) {
            if !verdict.allowed {
                self.recorder.denied(caller, project.id, check, verdict);
            } else if !verdict.evaluated.is_empty() {
                self.recorder.would_have_denied(caller, project.id, check, verdict);
            }
        }
        verdicts
    }

    /// Lets the refused `verdicts` through if cached exceptions release all of them and using
    /// those succeeds; otherwise leaves them refused (saying why, when an exception was there).
    /// Only a policy that was evaluated can be excepted from: an unevaluable one refuses.
    ///
    /// The cache can hold an exception another request (here or in another process) has just
    /// used: the database says so, this process forgets it, and the next one that fits is tried.
    async fn release_by_exceptions(
        &self,
        caller: &Principal,
        protection: &Protection,
        checks: &[Check],
        verdicts: &mut [Verdict],
    ) {
        let Protection::Policy(project) = protection else { return };
        if project.ready().is_none() {
            return;
        }
        let mut gone: Vec<i64> = Vec::new();
        let outcome = loop {
            let Some(releases) = self.releases(project.id, checks, verdicts, &gone) else {
                if gone.is_empty() {
                    return;
                }
                break Err(("gone", "was used, revoked or expired meanwhile".to_owned()));
            };
            let uses: Vec<ExceptionUse> = releases
                .iter()
                .filter_map(|(index, id)| {
                    let check = checks.get(*index)?;
                    Some(ExceptionUse { id: *id, used_by: caller.clone(), used_for: check.describe() })
                })
                .collect();
            let ids: Vec<i64> = releases.iter().map(|(_, id)| *id).collect();
            match tokio::time::timeout(EXCEPTION_USE_TIMEOUT, app::store::use_exceptions(&self.pool, &uses)).await {
                Ok(Ok(ExceptionsTaken::Used(used))) => {
                    // Not to be offered again while the notification of this use is on its way.
                    self.exceptions.forget(project.id, &ids);
                    break Ok(releases.into_iter().map(|(index, _)| index).zip(used).collect::<Vec<_>>());
                }
                Ok(Ok(ExceptionsTaken::Gone(id))) => {
                    self.exceptions.forget(project.id, &[id]);
                    gone.push(id);
                    if gone.len() >= MAX_EXCEPTION_ATTEMPTS {
                        break Err(("gone", "was used, revoked or expired meanwhile".to_owned()));
                    }
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, exceptions = ?ids, "an exception could not be used; the change is refused");
                    gone = ids;
                    break Err(("database-unavailable", "could not be used: the database is unreachable".to_owned()));
                }
                Err(_) => {
                    gone = ids;
                    let waited = EXCEPTION_USE_TIMEOUT.as_secs();
                    break Err((
                        "database-unavailable",
                        format!("could not be used: the database did not answer within {waited} s"),
                    ));
                }
            }
        };
        match outcome {
            Ok(used) => {
                for (index, exception) in used {
                    if let Some(verdict) = verdicts.get_mut(index) {
                        verdict.allowed = true;
                        verdict.message = format!(
                            "allowed once by exception {} (granted by {}: {}); the rules say: {}",
                            exception.id, exception.granted_by, exception.reason, verdict.message
                        );
                        verdict.exception = Some(ExceptionRef {
                            id: exception.id,
                            granted_by: exception.granted_by,
                            reason: exception.reason,
                        });
                    }
                }
                self.metrics.record_exception_use("used");
            }
            Err((outcome, why_not)) => {
                self.metrics.record_exception_use(outcome);
                let ids = gone.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
                for verdict in verdicts.iter_mut().filter(|verdict| !verdict.allowed) {
                    verdict.message = format!("{} (exception {ids} {why_not})", verdict.message);
                }
            }
        }
    }

    /// For every refused verdict, an exception (a different one each, none of `excluded`) that
    /// releases it: (the verdict's index, the exception's id); `None` unless all are released.
    fn releases(
        &self,
        project_id: i64,
        checks: &[Check],
        verdicts: &[Verdict],
        excluded: &[i64],
    ) -> Option<Vec<(usize, i64)>> {
        let mut taken: Vec<i64> = excluded.to_vec();
        let mut releases = Vec::new();
        for (index, (check, verdict)) in checks.iter().zip(verdicts).enumerate() {
            if verdict.allowed {
                continue;
            }
            let id = self.exceptions.releasing(project_id, &check.refused(&verdict.immutable_tags), &taken)?;
            taken.push(id);
            releases.push((index, id));
        }
        Some(releases)
    }
}

/// What protects one project's repositories.
pub enum Protection {
    /// tagward does not know the project: no rule can protect it.
    UnknownProject,
    /// Its compiled policy.
    Policy(Arc<ProjectPolicy>),
    /// Its policy cannot be evaluated (and why): every tag counts as immutable.
    Unevaluable(Arc<ProjectPolicy>, String),
}

impl Protection {
    pub fn project(&self) -> Option<&Arc<ProjectPolicy>> {
        match self {
            Protection::UnknownProject => None,
            Protection::Policy(project) | Protection::Unevaluable(project, _) => Some(project),
        }
    }

    /// Whether any tag of the project could be immutable (if not, nothing needs looking up).
    pub fn protects_anything(&self) -> bool {
        match self {
            Protection::UnknownProject => false,
            Protection::Policy(project) => project.rule_count() > 0,
            Protection::Unevaluable(..) => true,
        }
    }

    /// Whether `tag` of `repository` is immutable; when that cannot be known, it counts as immutable.
    pub fn may_protect(&self, repository: &RepositoryName, tag: &Tag) -> bool {
        self.assuming_protected(|policy| !policy.immutable_rules(repository.path(), tag.as_str()).is_empty())
    }

    /// Whether a change to `tag` of `repository` needs a decision: an enforced rule may protect
    /// it, or an evaluating one would (its would-be denial is recorded).
    pub fn needs_decision(&self, repository: &RepositoryName, tag: &Tag) -> bool {
        self.assuming_protected(|policy| policy.is_ruled(repository.path(), tag.as_str()))
    }

    /// What `asked` says of the compiled policy; true while that cannot be known (not compiled
    /// yet, or unevaluable), false for a project tagward does not know.
    fn assuming_protected(&self, asked: impl FnOnce(&CompiledPolicy) -> bool) -> bool {
        match self {
            Protection::UnknownProject => false,
            Protection::Policy(project) => project.ready().is_none_or(asked),
            Protection::Unevaluable(..) => true,
        }
    }
}

/// What one compiled policy says of one check.
fn decide(policy: &CompiledPolicy, check: &Check) -> Verdict {
    let own_tag = |decision: &Decision<'_>, tag: &Tag| {
        if decision.rules().next().is_some() {
            vec![tag.to_string()]
        } else {
            Vec::new()
        }
    };
    match check {
        Check::Push { repository, tag, digest, current, list: None } => {
            let decision = policy.check_push(repository, tag, digest, current.as_ref());
            let immutable = own_tag(&decision, tag);
            Verdict::from_decision(decision, immutable)
        }
        Check::Push { repository, tag, digest, current, list: Some(list) } => {
            let decision = policy.check_list_push(repository, tag, digest, current.as_ref(), list);
            let immutable = append_only_by(&decision, tag);
            Verdict::from_decision(decision, immutable)
        }
        Check::DeleteTag { repository, tag, list } => {
            let decision = policy.check_delete_tag(repository, tag);
            match list {
                Some(list) if decision.allowed() => {
                    let decision = policy.check_delete_list(repository, tag, list);
                    let immutable = append_only_by(&decision, tag);
                    Verdict::from_decision(decision, immutable)
                }
                _ => {
                    let immutable = own_tag(&decision, tag);
                    Verdict::from_decision(decision, immutable)
                }
            }
        }
        Check::DeleteManifest { repository, digest, tags, held_by } => {
            let immutable = immutable_holding_tags(policy, repository, tags, held_by);
            Verdict::from_decision(policy.check_delete_manifest(repository, digest, tags, held_by), immutable)
        }
        Check::DeleteBlob { repository, digest, held_by } => {
            let immutable = immutable_holding_tags(policy, repository, &[], held_by);
            Verdict::from_decision(policy.check_delete_blob(repository, digest, held_by), immutable)
        }
    }
}

/// The tag that makes an attachment list append-only: the list's own (a rule covers it), or the
/// immutable tag holding its subject (what an exception for that tag releases).
fn append_only_by(decision: &Decision<'_>, list_tag: &Tag) -> Vec<String> {
    let why = match decision.outcome {
        Outcome::ListGrows { why, .. } | Outcome::ListRefused { why, .. } | Outcome::DeleteList { why, .. } => why,
        _ => return Vec::new(),
    };
    match why {
        AppendOnly::Rules(_) => vec![list_tag.to_string()],
        AppendOnly::HeldSubject { tag, .. } => vec![tag.to_string()],
    }
}

/// Every tag of the manifests that hold a target.
fn holding_tags(held_by: &[Holder]) -> impl Iterator<Item = &Tag> {
    held_by.iter().flat_map(|holder| &holder.tags)
}

/// The immutable ones of `tags` and of the holders' tags, each once.
fn immutable_holding_tags(
    policy: &CompiledPolicy,
    repository: &RepositoryName,
    tags: &[Tag],
    held_by: &[Holder],
) -> Vec<String> {
    let mut immutable: Vec<String> = policy
        .immutable_tags(repository, tags)
        .chain(held_by.iter().flat_map(|holder| policy.immutable_tags(repository, &holder.tags)))
        .map(Tag::to_string)
        .collect();
    immutable.sort();
    immutable.dedup();
    immutable
}

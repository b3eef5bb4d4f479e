//! Writes what decisions leave behind (denials for the audit trail, when each token was last used)
//! off the request path. Denials wait in a bounded set where identical ones (same token,
//! operation, project, repository, tag and digests) fold into one entry with a count and its first
//! and last time: a client retrying a refused push in a loop costs one row per write, not one per
//! attempt. When the database is slow or away and the set fills with distinct denials, further
//! ones are dropped and counted rather than held, so a flood cannot exhaust memory.

use super::cache::{ServiceToken, TokenCache};
use super::{Check, Verdict};
use crate::metrics::Metrics;
use app::locks::Locked;
use app::policy::Digest;
use app::principal::Principal;
use app::store::{self, Denial};
use hashbrown::HashTable;
use sqlx::PgPool;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::Notify;

/// Distinct denials waiting to be written, at most.
pub const QUEUE_CAPACITY: usize = 10_000;
/// How long the writer lets denials gather (and identical ones fold) before it writes them.
const GATHER: Duration = Duration::from_millis(200);
/// Denials written per statement, at most.
const BATCH: usize = 500;
/// How often token use is written.
const TOKEN_USE_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Recorder {
    pending: Arc<Pending>,
    metrics: Arc<Metrics>,
}

/// What makes two denials the same for folding, borrowed (from a check being decided, or from a
/// denial already waiting), so that a repeated denial is folded without a copy of any of it.
#[derive(PartialEq, Eq, Hash)]
struct Identity<'a> {
    token: &'a str,
    operation: &'static str,
    project_id: Option<i64>,
    repository: &'a str,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
    current_digest: Option<&'a str>,
    evaluated: bool,
}

impl<'a> Identity<'a> {
    fn of(denial: &'a Denial) -> Self {
        Identity {
            token: &denial.token,
            operation: denial.operation,
            project_id: denial.project_id,
            repository: &denial.repository,
            tag: denial.tag.as_deref(),
            digest: denial.digest.as_deref(),
            current_digest: denial.current_digest.as_deref(),
            evaluated: denial.evaluated,
        }
    }
}

/// Denials not yet written, identical ones folded, and a bell for the writer.
#[derive(Default)]
struct Pending {
    denials: Mutex<HashTable<Denial>>,
    hasher: RandomState,
    arrived: Notify,
}

impl Pending {
    /// Counts one more denial `identity` at `at`, folding it into an identical one waiting, else
    /// adding the one `denial` makes; `false` when the set is full.
    fn add(&self, identity: &Identity<'_>, at: OffsetDateTime, denial: impl FnOnce() -> Denial) -> bool {
        let hash = self.hasher.hash_one(identity);
        let mut denials = self.denials.locked();
        if let Some(same) = denials.find_mut(hash, |waiting| Identity::of(waiting) == *identity) {
            same.count += 1;
            same.last_at = same.last_at.max(at);
            // The writer was rung when this entry arrived, and has not taken it yet.
            return true;
        }
        if denials.len() >= QUEUE_CAPACITY {
            return false;
        }
        denials.insert_unique(hash, denial(), |waiting| self.hasher.hash_one(Identity::of(waiting)));
        drop(denials);
        self.arrived.notify_one();
        true
    }

    fn take(&self) -> Vec<Denial> {
        let mut denials = self.denials.locked();
        let mut taken: Vec<Denial> = std::mem::take(&mut *denials).into_iter().collect();
        taken.sort_by_key(|denial| denial.at);
        taken
    }
}

impl Recorder {
    /// Starts the writers on the current runtime.
    pub fn start(pool: PgPool, tokens: Arc<TokenCache>, metrics: Arc<Metrics>) -> Self {
        let pending = Arc::new(Pending::default());
        tokio::spawn(write_denials(pool.clone(), pending.clone(), metrics.clone()));
        tokio::spawn(write_token_use(pool, tokens));
        Self { pending, metrics }
    }

    /// Notes that `token` was presented just now.
    pub fn used(&self, token: &ServiceToken) {
        token.last_used.store(OffsetDateTime::now_utc().unix_timestamp(), Ordering::Relaxed);
    }

    /// Queues a denial for the audit trail.
    pub fn denied(&self, caller: &Principal, project_id: i64, check: &Check, verdict: &Verdict) {
        let rules = verdict.rules.iter().map(|rule| rule.id).collect();
        self.queue(caller, project_id, check, verdict, None, rules);
    }

    /// Queues what evaluating rules would have denied (the request was allowed).
    pub fn would_have_denied(&self, caller: &Principal, project_id: i64, check: &Check, verdict: &Verdict) {
        let message = format!("would have been denied: {}", verdict.would_have_been.as_deref().unwrap_or_default());
        let rules = verdict.evaluated.iter().map(|evaluated| evaluated.rule.id).collect();
        self.queue(caller, project_id, check, verdict, Some(message), rules);
    }

    /// Queues one entry: a denial, or (with `evaluation`, its message) a would-be denial.
    fn queue(
        &self,
        caller: &Principal,
        project_id: i64,
        check: &Check,
        verdict: &Verdict,
        evaluation: Option<String>,
        rule_ids: Vec<i64>,
    ) {
        let (tag, digest, current_digest) = match check {
            Check::Push { tag, digest, current, .. } => {
                (Some(tag.as_str()), Some(digest.as_str()), current.as_ref().map(Digest::as_str))
            }
            Check::DeleteTag { tag, .. } => (Some(tag.as_str()), None, None),
            Check::DeleteManifest { digest, .. } | Check::DeleteBlob { digest, .. } => {
                (verdict.immutable_tags.first().map(String::as_str), Some(digest.as_str()), None)
            }
        };
        let caller = caller.caller();
        let identity = Identity {
            token: &caller,
            operation: check.operation().as_str(),
            project_id: Some(project_id),
            repository: check.repository().as_str(),
            tag,
            digest,
            current_digest,
            evaluated: evaluation.is_some(),
        };
        let now = OffsetDateTime::now_utc();
        let added = self.pending.add(&identity, now, || Denial {
            at: now,
            last_at: now,
            count: 1,
            token: caller.clone().into_owned(),
            operation: identity.operation,
            project_id: identity.project_id,
            repository: identity.repository.to_owned(),
            tag: tag.map(str::to_owned),
            digest: digest.map(str::to_owned),
            current_digest: current_digest.map(str::to_owned),
            rule_ids,
            evaluated: identity.evaluated,
            message: evaluation.unwrap_or_else(|| verdict.message.clone()),
        });
        if !added {
            self.metrics.record_dropped_denial();
        }
    }
}

async fn write_denials(pool: PgPool, pending: Arc<Pending>, metrics: Arc<Metrics>) {
    loop {
        pending.arrived.notified().await;
        // Denials arriving meanwhile gather, and identical ones fold, while this one waits and
        // while the previous batch is being written.
        tokio::time::sleep(GATHER).await;
        let denials = pending.take();
        for batch in denials.chunks(BATCH) {
            if let Err(error) = insert_retrying(&pool, batch).await {
                // One row the database refuses for good must not take the others with it.
                tracing::warn!(
                    error = format!("{error:#}"),
                    denials = batch.len(),
                    "a batch of denials was refused; writing them one at a time"
                );
                for denial in batch {
                    write_one(&pool, denial.clone(), &metrics).await;
                }
            }
        }
    }
}

/// Writes one denial; when its project is gone meanwhile, without the project. What the database
/// still refuses is dropped, logged and counted.
async fn write_one(pool: &PgPool, mut denial: Denial, metrics: &Metrics) {
    let mut result = insert_retrying(pool, std::slice::from_ref(&denial)).await;
    if result.as_ref().is_err_and(|error| error.database_code().as_deref() == Some(store::FOREIGN_KEY_VIOLATION)) {
        denial.project_id = None;
        result = insert_retrying(pool, std::slice::from_ref(&denial)).await;
    }
    if let Err(error) = result {
        tracing::error!(error = format!("{error:#}"), ?denial, "a denial cannot be recorded; dropped");
        metrics.record_dropped_denial();
    }
}

/// Inserts `denials`, retrying failures that may pass later (the database away, the pool
/// exhausted) for as long as they last (the queue in front fills meanwhile and counts its drops);
/// a permanent refusal is returned at once.
async fn insert_retrying(pool: &PgPool, denials: &[Denial]) -> Result<(), store::StoreError> {
    let mut backoff = Duration::from_millis(100);
    loop {
        match store::insert_denials(pool, denials).await {
            Ok(()) => return Ok(()),
            Err(error) if error.is_permanent() => return Err(error),
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    denials = denials.len(),
                    "cannot write denials yet; retrying"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn write_token_use(pool: PgPool, tokens: Arc<TokenCache>) {
    // Uses up to this time (Unix seconds) are written.
    let mut written = 0i64;
    let mut interval = tokio::time::interval(TOKEN_USE_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let uses: Vec<(i64, i64)> = tokens
            .all()
            .iter()
            .map(|token| (token.id, token.last_used.load(Ordering::Relaxed)))
            .filter(|(_, used)| *used > written)
            .collect();
        let Some(latest) = uses.iter().map(|(_, used)| *used).max() else {
            continue;
        };
        let uses: Vec<(i64, OffsetDateTime)> = uses
            .into_iter()
            .filter_map(|(id, used)| Some((id, OffsetDateTime::from_unix_timestamp(used).ok()?)))
            .collect();
        match store::record_token_use(&pool, &uses).await {
            Ok(()) => written = latest,
            Err(error) => tracing::debug!(%error, "cannot record token use yet"),
        }
    }
}

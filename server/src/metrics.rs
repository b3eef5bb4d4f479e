//! Prometheus metrics, one registry per process (not a global one: the tests run many servers in
//! one process), served at `/metrics`.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::fmt::Write as _;
use std::time::Duration;

/// What the registry asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Push,
    DeleteTag,
    DeleteManifest,
    DeleteBlob,
}

/// How much of the policy cache a reload replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reload {
    Full,
    Project,
}

/// Label values are the lower-case names the API uses.
macro_rules! label_value {
    ($ty:ty, $($variant:ident => $text:literal),+) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }
        impl EncodeLabelValue for $ty {
            fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> std::fmt::Result {
                encoder.write_str(self.as_str())
            }
        }
    };
}
label_value!(
    Operation,
    Push => "push",
    DeleteTag => "delete_tag",
    DeleteManifest => "delete_manifest",
    DeleteBlob => "delete_blob"
);
label_value!(Reload, Full => "full", Project => "project");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Outcome {
    Allowed,
    Denied,
}
label_value!(Outcome, Allowed => "allowed", Denied => "denied");

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DecisionLabels {
    operation: Operation,
    outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OperationLabels {
    operation: Operation,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReloadLabels {
    scope: Reload,
}

/// What the gateway did with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GatewayOutcome {
    /// Passed to the upstream untouched (blobs, uploads, reads, ...).
    PassedThrough,
    /// A manifest PUT or DELETE that was checked and then forwarded.
    Allowed,
    Denied,
    /// Refused without a decision: too large, or the upstream refused or failed a look-up.
    Refused,
}
label_value!(GatewayOutcome, PassedThrough => "passed_through", Allowed => "allowed", Denied => "denied", Refused => "refused");

/// What became of one event the registry sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventOutcome {
    /// It set, confirmed or removed what it names.
    Applied,
    /// Older than what the inventory knows: left out.
    Outdated,
    /// It reports nothing the inventory keeps (a pull, a blob, another webhook type).
    Ignored,
}
label_value!(EventOutcome, Applied => "applied", Outdated => "outdated", Ignored => "ignored");

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EventLabels {
    sender: &'static str,
    outcome: EventOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DriftLabels {
    found_by: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct GatewayLabels {
    outcome: GatewayOutcome,
}

type HistogramFamily = Family<OperationLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    decision_seconds: HistogramFamily,
    reloads: Family<ReloadLabels, Counter>,
    cached_projects: Gauge,
    database_up: Gauge,
    dropped_denials: Counter,
    gateway_requests: Family<GatewayLabels, Counter>,
    unevaluable_policies: Gauge,
    compiled_policies: Gauge,
    held_walks: Counter,
    held_walk_reads: Counter,
    cached_manifests: Gauge,
    registry_events: Family<EventLabels, Counter>,
    tag_drift: Family<DriftLabels, Counter>,
    sync_requests: Counter,
    sign_ins: Family<OutcomeLabels, Counter>,
    exception_uses: Family<OutcomeLabels, Counter>,
    usable_exceptions: Gauge,
    lock_wait_seconds: Histogram,
    lock_waiting: Gauge,
    lock_refusals: Family<OutcomeLabels, Counter>,
    db_connections: Family<OutcomeLabels, Gauge>,
    webhook_deliveries: Family<OutcomeLabels, Counter>,
    webhook_oldest_pending: Gauge<f64, std::sync::atomic::AtomicU64>,
    webhook_pending: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tagward");
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register("decisions", "Decisions made, by operation and outcome", decisions.clone());
        // From 1 µs to about 33 ms: decisions take around a microsecond.
        let decision_seconds: HistogramFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.000_001, 2.0, 16)));
        registry.register(
            "decision_duration_seconds",
            "Time to decide one check, from parsed request to answer",
            decision_seconds.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "policy_cache_reloads",
            "Policy cache reloads: full (start, reconnection) or of one project (a notification)",
            reloads.clone(),
        );
        let cached_projects = Gauge::default();
        registry.register("policy_cache_projects", "Projects in the policy cache", cached_projects.clone());
        let database_up = Gauge::default();
        registry.register(
            "database_notifications_up",
            "1 while the connection that keeps the caches current is up",
            database_up.clone(),
        );
        let dropped_denials = Counter::default();
        registry.register(
            "audit_denials_dropped",
            "Denials not recorded: the audit queue was full, or the database refused the row for good",
            dropped_denials.clone(),
        );
        let gateway_requests = Family::<GatewayLabels, Counter>::default();
        registry.register(
            "gateway_requests",
            "Requests through the gateway, by what it did with them",
            gateway_requests.clone(),
        );
        let unevaluable_policies = Gauge::default();
        registry.register(
            "policy_unevaluable_projects",
            "Projects whose policy cannot be evaluated (changes to their existing tags are refused)",
            unevaluable_policies.clone(),
        );
        let compiled_policies = Gauge::default();
        registry.register(
            "policy_cache_compiled_policies",
            "Distinct compiled policies in the cache (projects whose enabled rules read the same share one)",
            compiled_policies.clone(),
        );
        let held_walks = Counter::default();
        registry.register(
            "gateway_held_walks",
            "Deletes by digest (manifest or blob) for which the gateway worked out what the immutable tags hold",
            held_walks.clone(),
        );
        let held_walk_reads = Counter::default();
        registry.register(
            "gateway_held_walk_registry_reads",
            "Registry reads those walks made (tag look-ups, manifests not yet cached, referrer lists)",
            held_walk_reads.clone(),
        );
        let cached_manifests = Gauge::default();
        registry.register(
            "gateway_manifest_cache_entries",
            "Manifests whose references the gateway remembers",
            cached_manifests.clone(),
        );
        let registry_events = Family::<EventLabels, Counter>::default();
        registry.register(
            "registry_events",
            "Events the registry sent (POST /api/v1/registry/events), by sender and what became of them",
            registry_events.clone(),
        );
        let tag_drift = Family::<DriftLabels, Counter>::default();
        registry.register(
            "tag_drift",
            "Immutable tags found moved or deleted behind tagward's back, by how they were found (event, sync)",
            tag_drift.clone(),
        );
        let sync_requests = Counter::default();
        registry.register(
            "registry_sync_requests",
            "Requests the inventory sync made to the registry (catalog and tag list pages, tag look-ups, manifests)",
            sync_requests.clone(),
        );
        let sign_ins = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "sign_ins",
            "Sign-ins through the identity provider, by outcome (`signed-in`, or why not, e.g. `sign-in-failed`)",
            sign_ins.clone(),
        );
        let exception_uses = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "exception_uses",
            "Refused requests a one-time exception was found for, by outcome: `used` (let through), `gone` (used, \
             revoked or expired meanwhile: refused), `database-unavailable` (refused)",
            exception_uses.clone(),
        );
        let usable_exceptions = Gauge::default();
        registry.register(
            "usable_exceptions",
            "One-time exceptions this process holds ready to use (granted, approved, not used, revoked or expired)",
            usable_exceptions.clone(),
        );
        // From 100 µs to about 26 s: an uncontended lock takes a round trip, a contended one up to
        // `--lock-timeout`.
        let lock_wait_seconds = Histogram::new(exponential_buckets(0.000_1, 2.0, 19));
        registry.register(
            "gateway_lock_wait_seconds",
            "Time a guarded push or delete waited for its shared locks",
            lock_wait_seconds.clone(),
        );
        let lock_waiting = Gauge::default();
        registry.register("gateway_lock_waiters", "Requests waiting for shared locks now", lock_waiting.clone());
        let lock_refusals = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "gateway_lock_refusals",
            "Pushes and deletes refused (503) for want of a lock, by why: `timeout`, `database-unavailable`, `lost`, \
             `recovering`",
            lock_refusals.clone(),
        );
        let db_connections = Family::<OutcomeLabels, Gauge>::default();
        registry.register(
            "database_pool_connections",
            "The process's pooled database connections, by state (`in-use`, `idle`; at most \
             --db-max-connections), sampled every second",
            db_connections.clone(),
        );
        let webhook_deliveries = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "webhook_deliveries",
            "Webhook delivery attempts this process made, by outcome: `delivered`, `retry` (failed, tried again \
             later), `gave-up` (failed for 24 hours), `paused` (failed and paused its endpoint)",
            webhook_deliveries.clone(),
        );
        let webhook_oldest_pending = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "webhook_outbox_oldest_pending_seconds",
            "How long the oldest undelivered webhook notification has waited (0: none waits), sampled every 5 s",
            webhook_oldest_pending.clone(),
        );
        let webhook_pending = Gauge::default();
        registry.register(
            "webhook_outbox_pending",
            "Webhook notifications waiting to be delivered (of paused endpoints too), sampled every 5 s",
            webhook_pending.clone(),
        );
        database_up.set(1);
        Self {
            registry,
            decisions,
            decision_seconds,
            reloads,
            cached_projects,
            database_up,
            dropped_denials,
            gateway_requests,
            unevaluable_policies,
            compiled_policies,
            held_walks,
            held_walk_reads,
            cached_manifests,
            registry_events,
            tag_drift,
            sync_requests,
            sign_ins,
            exception_uses,
            usable_exceptions,
            lock_wait_seconds,
            lock_waiting,
            lock_refusals,
            db_connections,
            webhook_deliveries,
            webhook_oldest_pending,
            webhook_pending,
        }
    }
}

/// Counts a request as waiting for locks while it lives.
pub struct Waiting<'a>(&'a Gauge);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    pub fn record_webhook_delivery(&self, outcome: &'static str) {
        self.webhook_deliveries.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    pub fn record_outbox(&self, oldest_pending_seconds: f64, pending: i64) {
        self.webhook_oldest_pending.set(oldest_pending_seconds);
        self.webhook_pending.set(pending);
    }

    pub fn record_lock_wait(&self, took: Duration) {
        self.lock_wait_seconds.observe(took.as_secs_f64());
    }

    pub fn record_lock_refused(&self, why: &'static str) {
        self.lock_refusals.get_or_create(&OutcomeLabels { outcome: why }).inc();
    }

    pub fn lock_waiting(&self) -> Waiting<'_> {
        self.lock_waiting.inc();
        Waiting(&self.lock_waiting)
    }

    /// The pool's connections now.
    pub fn record_pool(&self, size: u32, idle: usize) {
        let idle = i64::try_from(idle).unwrap_or(i64::MAX);
        self.db_connections.get_or_create(&OutcomeLabels { outcome: "in-use" }).set(i64::from(size) - idle);
        self.db_connections.get_or_create(&OutcomeLabels { outcome: "idle" }).set(idle);
    }

    pub fn record_decision(&self, operation: Operation, allowed: bool, took: Duration) {
        let outcome = if allowed { Outcome::Allowed } else { Outcome::Denied };
        self.decisions.get_or_create(&DecisionLabels { operation, outcome }).inc();
        self.decision_seconds.get_or_create(&OperationLabels { operation }).observe(took.as_secs_f64());
    }

    pub fn record_reload(&self, scope: Reload, projects: usize) {
        self.reloads.get_or_create(&ReloadLabels { scope }).inc();
        self.cached_projects.set(i64::try_from(projects).unwrap_or(i64::MAX));
    }

    pub fn set_database_up(&self, up: bool) {
        self.database_up.set(i64::from(up));
    }

    pub fn record_dropped_denial(&self) {
        self.dropped_denials.inc();
    }

    /// The gauges read from the policy cache when metrics are scraped.
    pub fn set_policy_gauges(&self, unevaluable: usize, compiled: usize) {
        self.unevaluable_policies.set(i64::try_from(unevaluable).unwrap_or(i64::MAX));
        self.compiled_policies.set(i64::try_from(compiled).unwrap_or(i64::MAX));
    }

    /// One delete's walk of what the immutable tags hold: the registry reads it made, and the
    /// manifests cached after it.
    pub fn record_held_walk(&self, reads: usize, cached: usize) {
        self.held_walks.inc();
        self.held_walk_reads.inc_by(reads as u64);
        self.cached_manifests.set(i64::try_from(cached).unwrap_or(i64::MAX));
    }

    pub fn record_gateway(&self, outcome: GatewayOutcome) {
        self.gateway_requests.get_or_create(&GatewayLabels { outcome }).inc();
    }

    /// `count` events from `sender` (`distribution`, `harbor`) that came to `outcome`.
    pub fn record_registry_events(&self, sender: &'static str, outcome: EventOutcome, count: usize) {
        if count > 0 {
            self.registry_events.get_or_create(&EventLabels { sender, outcome }).inc_by(count as u64);
        }
    }

    /// `count` immutable tags found changed behind tagward's back, by `found_by` (`event`, `sync`).
    pub fn record_drift(&self, found_by: &'static str, count: usize) {
        // Created at zero too, so an alert on its increase has a series from the start.
        self.tag_drift.get_or_create(&DriftLabels { found_by }).inc_by(count as u64);
    }

    /// A sign-in through the identity provider that ended with `outcome`.
    pub fn record_sign_in(&self, outcome: &'static str) {
        self.sign_ins.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    pub fn record_exception_use(&self, outcome: &'static str) {
        self.exception_uses.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    pub fn set_usable_exceptions(&self, count: usize) {
        self.usable_exceptions.set(count as i64);
    }

    pub fn record_sync_request(&self) {
        self.sync_requests.inc();
    }

    pub fn sync_requests(&self) -> u64 {
        self.sync_requests.get()
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            let _ = writeln!(text, "# encoding failed: {error}");
        }
        text
    }
}

//! Delivering project webhooks from the outbox. Every `tagward serve` instance runs a deliverer:
//! woken by the database when notifications are committed (and every second anyway), it claims
//! due ones (`FOR UPDATE SKIP LOCKED`, with a lease), sends each signed, and records the answer.
//! A failure is retried with exponential backoff and jitter (or after the receiver's
//! `Retry-After`) for 24 hours; an endpoint failing `--webhook-pause-after` times in a row is
//! paused. A scheduler queues what time makes happen (exceptions running out), once across
//! instances.

mod body;
mod client;

pub use body::{DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};

use crate::metrics::Metrics;
use app::store::{self, AfterFailure, DueDelivery, WEBHOOKS_CHANNEL};
use clap::Args;
use client::WebhookClient;
use rand::Rng;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};

#[derive(Debug, Clone, Args)]
pub struct WebhookConfig {
    /// Let webhooks reach loopback, private, link-local and other internal addresses (a receiver
    /// inside your own network). Off by default: otherwise whoever configures a project's webhook
    /// could make tagward call its own database or the cloud's metadata service.
    #[arg(long = "webhook-allow-private", env = "TAGWARD_WEBHOOK_ALLOW_PRIVATE", default_value_t = false, action = clap::ArgAction::Set)]
    pub allow_private: bool,

    /// Seconds one delivery attempt may take, from connecting to the end of the answer.
    #[arg(long = "webhook-timeout", env = "TAGWARD_WEBHOOK_TIMEOUT", default_value_t = 10)]
    pub attempt_timeout_seconds: u64,

    /// Seconds before the first retry of a failed delivery; each next one waits twice as long
    /// (±25 % jitter, at most an hour), for 24 hours in all.
    #[arg(long = "webhook-first-retry", env = "TAGWARD_WEBHOOK_FIRST_RETRY", default_value_t = 10.0)]
    pub first_retry_seconds: f64,

    /// Failed attempts in a row after which an endpoint is paused (until someone resumes it).
    #[arg(long = "webhook-pause-after", env = "TAGWARD_WEBHOOK_PAUSE_AFTER", default_value_t = 20)]
    pub pause_after: i32,

    /// Minutes before an unused exception runs out that `exception.expiring` is sent.
    #[arg(long = "webhook-expiry-lead", env = "TAGWARD_WEBHOOK_EXPIRY_LEAD", default_value_t = 15)]
    pub expiry_lead_minutes: u64,

    /// PEM certificates to trust for `https://` receivers besides the system's and webpki's roots
    /// (the registry's `--registry-ca` when not set).
    #[arg(long = "webhook-ca", env = "TAGWARD_WEBHOOK_CA")]
    pub receiver_ca_file: Option<PathBuf>,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            allow_private: false,
            attempt_timeout_seconds: 10,
            first_retry_seconds: 10.0,
            pause_after: 20,
            expiry_lead_minutes: 15,
            receiver_ca_file: None,
        }
    }
}

/// Deliveries in flight at once, per instance.
const IN_FLIGHT: usize = 32;
/// How often the outbox is looked at without being woken (retries come due this way).
const POLL: Duration = Duration::from_secs(1);
/// How often time-based events are queued and the backlog is sampled.
const SCHEDULE: Duration = Duration::from_secs(5);
/// How often closed denial windows and old deliveries are forgotten.
const PRUNE: Duration = Duration::from_secs(3600);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// How long a notification is tried.
const GIVE_UP_AFTER: time::Duration = time::Duration::hours(24);

struct Deliverer {
    pool: PgPool,
    client: WebhookClient,
    config: WebhookConfig,
    metrics: Arc<Metrics>,
    wake: Notify,
    slots: Arc<Semaphore>,
}

/// Starts delivering (and scheduling) in the background; fails only when the HTTP client cannot
/// be built (a CA file that does not read).
pub fn start(
    pool: PgPool,
    config: WebhookConfig,
    fallback_ca: Option<&std::path::Path>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(config.attempt_timeout_seconds.max(1));
    let ca = config.receiver_ca_file.as_deref().or(fallback_ca);
    let client = WebhookClient::new(timeout, ca, config.allow_private)?;
    let deliverer = Arc::new(Deliverer {
        pool,
        client,
        config,
        metrics,
        wake: Notify::new(),
        slots: Arc::new(Semaphore::new(IN_FLIGHT)),
    });
    tokio::spawn(deliverer.clone().listen());
    tokio::spawn(deliverer.clone().schedule());
    tokio::spawn(deliverer.deliver());
    Ok(())
}

impl Deliverer {
    /// A claim outlives the longest attempt, so only a dead instance's claim is taken over.
    fn lease(&self) -> Duration {
        Duration::from_secs(self.config.attempt_timeout_seconds.max(1) * 2 + 10)
    }

    /// Wakes the deliverer whenever notifications are committed; reconnects when the connection drops.
    async fn listen(self: Arc<Self>) {
        loop {
            let Err(error) = self.wake_on_notifications().await;
            tracing::debug!(%error, "webhook notifications: listening again in a second");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Wakes the deliverer at every notification until the listening connection fails.
    async fn wake_on_notifications(&self) -> Result<std::convert::Infallible, sqlx::Error> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(WEBHOOKS_CHANNEL).await?;
        // Whatever was committed while not listening is picked up now.
        self.wake.notify_one();
        loop {
            listener.recv().await?;
            self.wake.notify_one();
        }
    }

    async fn schedule(self: Arc<Self>) {
        let lead = Duration::from_secs(self.config.expiry_lead_minutes * 60);
        let mut every = tokio::time::interval(SCHEDULE);
        let mut last_pruned: Option<std::time::Instant> = None;
        loop {
            every.tick().await;
            if let Err(error) = store::queue_timed_events(&self.pool, lead).await {
                tracing::warn!(%error, "queueing time-based webhook events failed; trying again");
            }
            // Forgetting what is old reads the whole history: hourly, not at every tick.
            if last_pruned.is_none_or(|at| at.elapsed() >= PRUNE) {
                match store::forget_old_deliveries(&self.pool).await {
                    Ok(()) => last_pruned = Some(std::time::Instant::now()),
                    Err(error) => tracing::warn!(%error, "forgetting old webhook deliveries failed; trying again"),
                }
            }
            match store::outbox_backlog(&self.pool).await {
                Ok((oldest, pending)) => self.metrics.record_outbox(oldest.unwrap_or(0.0), pending),
                Err(error) => tracing::debug!(%error, "sampling the webhook outbox failed"),
            }
        }
    }

    /// Claims as many due notifications as there are free slots, sends each in a task of its own,
    /// and waits to be woken (or for the next poll) when none is due.
    async fn deliver(self: Arc<Self>) {
        loop {
            let free = self.slots.available_permits();
            // A claim is one query however many it takes: under a backlog, claim a batch once a
            // quarter of the slots are free rather than one notification per finished delivery.
            let claimed = if free < IN_FLIGHT / 4 {
                Ok(Vec::new())
            } else {
                store::claim_deliveries(&self.pool, free as i64, self.lease()).await
            };
            match claimed {
                Ok(due) if !due.is_empty() => {
                    let full = due.len() == free;
                    for delivery in due {
                        let Ok(slot) = self.slots.clone().try_acquire_owned() else { break };
                        let deliverer = self.clone();
                        tokio::spawn(async move {
                            deliverer.attempt(delivery).await;
                            drop(slot);
                            deliverer.wake.notify_one();
                        });
                    }
                    if full {
                        continue;
                    }
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "claiming webhook deliveries failed; trying again"),
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// One attempt at one notification, and its outcome recorded.
    async fn attempt(&self, delivery: DueDelivery) {
        let body = body::body(&delivery);
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(body.content_type));
        let mut put = |name: &'static str, value: String| {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(HeaderName::from_static(name), value);
            }
        };
        put(SIGNATURE_HEADER, body::signature(&delivery.secret, timestamp, &body.bytes));
        put(TIMESTAMP_HEADER, timestamp.to_string());
        put(EVENT_HEADER, delivery.event.as_str().to_owned());
        put(DELIVERY_HEADER, delivery.id.to_string());
        if let Some(value) = delivery.authorization_value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(AUTHORIZATION, value);
        }
        let answer = self.client.post(&delivery.url, headers, body.bytes).await;
        let recorded = match answer {
            Ok(answer) if (200..300).contains(&answer.status) => {
                self.metrics.record_webhook_delivery("delivered");
                store::delivery_succeeded(&self.pool, &delivery, answer.status).await
            }
            Ok(answer) => {
                let why = format!("answered {}: {}", answer.status, answer.excerpt);
                self.failed(&delivery, Some(answer.status), &why, answer.retry_after).await
            }
            Err(why) => self.failed(&delivery, None, &why, None).await,
        };
        if let Err(error) = recorded {
            // The lease runs out and the notification is sent again: at least once.
            tracing::warn!(%error, delivery = delivery.id, "recording a webhook delivery's outcome failed");
        }
    }

    async fn failed(
        &self,
        delivery: &DueDelivery,
        status: Option<u16>,
        why: &str,
        retry_after: Option<Duration>,
    ) -> Result<(), store::StoreError> {
        let next = self.after_failure(delivery, retry_after);
        let paused = store::delivery_failed(&self.pool, delivery, status, why, next, self.config.pause_after).await?;
        let outcome = match (next, paused) {
            (AfterFailure::GiveUp, _) => "gave-up",
            (_, true) => "paused",
            _ => "retry",
        };
        self.metrics.record_webhook_delivery(outcome);
        tracing::info!(delivery = delivery.id, url = %delivery.url, attempt = delivery.attempts, outcome, why, "webhook delivery failed");
        Ok(())
    }

    /// When to try again: twice as long after each attempt (±25 %), or as the receiver asked if
    /// later; never past 24 hours after the notification was made.
    fn after_failure(&self, delivery: &DueDelivery, retry_after: Option<Duration>) -> AfterFailure {
        let doubling = 2f64.powi(delivery.attempts.clamp(1, 30) - 1);
        let jitter = rand::thread_rng().gen_range(0.75..1.25);
        let backoff = Duration::from_secs_f64(
            (self.config.first_retry_seconds.max(0.01) * doubling * jitter).min(MAX_BACKOFF.as_secs_f64()),
        );
        let wait = retry_after.map_or(backoff, |asked| asked.min(MAX_BACKOFF).max(backoff));
        let at = time::OffsetDateTime::now_utc() + wait;
        if at > delivery.created_at + GIVE_UP_AFTER {
            AfterFailure::GiveUp
        } else {
            AfterFailure::RetryAt(at)
        }
    }
}

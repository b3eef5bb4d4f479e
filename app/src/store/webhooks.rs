//! Project webhooks: the endpoints a project's admins configure (each change audited), and the
//! outbox their notifications wait in. A notification is written by the statement that writes
//! what it reports (the audit row in [`super::audit`], a batch of denials), so it exists exactly
//! when that does; whichever instance claims it first delivers it.

use super::audit::{AuditEntry, AuditKind};
use super::projects::role_of;
use super::{on_constraint, StoreError};
use crate::policy::{WebhookEvent, WebhookFormat, WebhookSecret, WebhookUrl};
use crate::principal::Principal;
use serde_json::{json, Value};
use sqlx::{PgExecutor, PgPool};
use std::time::Duration;
use time::OffsetDateTime;

/// Committed notifications are announced here (by a trigger), so deliverers wake at once.
pub const WEBHOOKS_CHANNEL: &str = "tagward_webhooks";
/// Denials are told at most once per endpoint, rule and repository within this many seconds.
pub const DENIAL_WINDOW_SECONDS: i64 = 600;
/// Delivered and failed notifications are kept this many days (the Webhooks tab's history).
const KEPT_DAYS: i32 = 30;

/// The webhook event an audited change is told as, if any.
pub(super) fn event_of(kind: AuditKind, after: Option<&Value>) -> Option<WebhookEvent> {
    Some(match kind {
        AuditKind::DriftFound => WebhookEvent::DriftFound,
        AuditKind::DriftRestore => WebhookEvent::DriftRestored,
        AuditKind::DriftAcknowledge => WebhookEvent::DriftAcknowledged,
        AuditKind::ExceptionGrant => {
            let waits = after.and_then(|after| after.get("needs_approval")).and_then(Value::as_bool);
            if waits == Some(true) {
                WebhookEvent::ExceptionAwaitingApproval
            } else {
                WebhookEvent::ExceptionGranted
            }
        }
        AuditKind::ExceptionApprove => WebhookEvent::ExceptionApproved,
        AuditKind::ExceptionUse => WebhookEvent::ExceptionUsed,
        AuditKind::ExceptionRevoke => WebhookEvent::ExceptionRevoked,
        AuditKind::RuleCreate => WebhookEvent::RuleCreated,
        AuditKind::RuleUpdate => WebhookEvent::RuleChanged,
        AuditKind::RuleDelete => WebhookEvent::RuleDeleted,
        AuditKind::RuleEnable | AuditKind::RuleDisable | AuditKind::RuleEvaluate | AuditKind::RulePromote => {
            WebhookEvent::RuleStateChanged
        }
        _ => return None,
    })
}

/// An endpoint as configured: where, what, how (the secret apart: it is never read back).
#[derive(Debug, Clone)]
pub struct WebhookSpec {
    pub url: WebhookUrl,
    pub events: Vec<WebhookEvent>,
    pub format: WebhookFormat,
    /// Sent as the `Authorization` header (write-only, like the secret).
    pub authorization: Option<String>,
}

impl WebhookSpec {
    /// As the audit trail records it: never the secret or the `Authorization` value.
    fn json(&self, id: i64) -> Value {
        json!({
            "id": id,
            "url": self.url.as_str(),
            "events": self.events.iter().map(|event| event.as_str()).collect::<Vec<_>>(),
            "format": self.format.as_str(),
            "authorization": self.authorization.is_some(),
        })
    }
}

async fn may_manage(db: impl PgExecutor<'_>, by: &Principal, project_id: i64) -> Result<(), StoreError> {
    let role = role_of(db, by, project_id).await?;
    Ok(by.may_manage_webhooks(role)?)
}

/// Adds an endpoint to the project (its admins, system administrators, the operator).
pub async fn add_webhook(
    pool: &PgPool,
    by: &Principal,
    project_id: i64,
    spec: &WebhookSpec,
    secret: &WebhookSecret,
) -> Result<i64, StoreError> {
    let mut tx = pool.begin().await?;
    may_manage(&mut *tx, by, project_id).await?;
    let (id,): (i64,) = sqlx::query_as(
        r"insert into webhook_endpoints (project_id, url, events, format, secret, authorization_value, created_by)
          values ($1, $2, $3, $4, $5, $6, $7) returning id",
    )
    .bind(project_id)
    .bind(spec.url.as_str())
    .bind(&spec.events)
    .bind(spec.format)
    .bind(secret.expose())
    .bind(spec.authorization.as_deref())
    .bind(by.actor())
    .fetch_one(&mut *tx)
    .await
    .map_err(on_constraint("webhook_endpoints_project_id_url_key", "url", || {
        format!("url: `{}` already has a webhook in this project", spec.url.as_str())
    }))?;
    AuditEntry::new(AuditKind::WebhookCreate).project(project_id).after(spec.json(id)).record(&mut *tx, by).await?;
    tx.commit().await?;
    Ok(id)
}

/// An endpoint as the trail shows it (no secret, no `Authorization` value).
#[derive(sqlx::FromRow)]
struct EndpointRecord {
    url: String,
    events: Vec<String>,
    format: String,
    authorization: bool,
    paused_at: Option<OffsetDateTime>,
}

/// The endpoint `id` of the project, locked, as the trail shows it; not found otherwise.
async fn lock_endpoint(
    tx: &mut sqlx::PgConnection,
    project_id: i64,
    id: i64,
) -> Result<(Value, Option<OffsetDateTime>), StoreError> {
    let row: Option<EndpointRecord> = sqlx::query_as(
        r"select url, events, format, authorization_value is not null as authorization, paused_at
          from webhook_endpoints where id = $1 and project_id = $2 for update",
    )
    .bind(id)
    .bind(project_id)
    .fetch_optional(&mut *tx)
    .await?;
    let EndpointRecord { url, events, format, authorization, paused_at } =
        row.ok_or_else(|| StoreError::NotFound(format!("webhook {id} is not one of this project's")))?;
    Ok((json!({ "id": id, "url": url, "events": events, "format": format, "authorization": authorization }), paused_at))
}

/// Changes an endpoint (the policy file's way); the secret and `Authorization` value are kept
/// unless new ones are given.
pub async fn change_webhook(
    pool: &PgPool,
    by: &Principal,
    project_id: i64,
    id: i64,
    spec: &WebhookSpec,
    secret: Option<&WebhookSecret>,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    may_manage(&mut *tx, by, project_id).await?;
    let (before, _) = lock_endpoint(&mut tx, project_id, id).await?;
    sqlx::query(
        r"update webhook_endpoints
          set url = $2, events = $3, format = $4, secret = coalesce($5, secret),
              authorization_value = coalesce($6, authorization_value)
          where id = $1",
    )
    .bind(id)
    .bind(spec.url.as_str())
    .bind(&spec.events)
    .bind(spec.format)
    .bind(secret.map(WebhookSecret::expose))
    .bind(spec.authorization.as_deref())
    .execute(&mut *tx)
    .await
    .map_err(on_constraint("webhook_endpoints_project_id_url_key", "url", || {
        format!("url: `{}` already has a webhook in this project", spec.url.as_str())
    }))?;
    // As stored now: a kept `Authorization` value is still there although the spec names none.
    let (after, _) = lock_endpoint(&mut tx, project_id, id).await?;
    // A new secret or `Authorization` value is a change too, though the trail never shows either.
    if before != after || secret.is_some() || spec.authorization.is_some() {
        AuditEntry::new(AuditKind::WebhookChange)
            .project(project_id)
            .before(before)
            .after(after)
            .record(&mut *tx, by)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Removes an endpoint and its undelivered notifications.
pub async fn remove_webhook(pool: &PgPool, by: &Principal, project_id: i64, id: i64) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    may_manage(&mut *tx, by, project_id).await?;
    let (before, _) = lock_endpoint(&mut tx, project_id, id).await?;
    sqlx::query(r"delete from webhook_endpoints where id = $1").bind(id).execute(&mut *tx).await?;
    AuditEntry::new(AuditKind::WebhookRemove).project(project_id).before(before).record(&mut *tx, by).await?;
    tx.commit().await?;
    Ok(())
}

/// Resumes a paused endpoint: what waited is delivered again from now.
pub async fn resume_webhook(pool: &PgPool, by: &Principal, project_id: i64, id: i64) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    may_manage(&mut *tx, by, project_id).await?;
    let (before, paused_at) = lock_endpoint(&mut tx, project_id, id).await?;
    if paused_at.is_none() {
        return Err(StoreError::Refused(format!("webhook {id} is not paused")));
    }
    sqlx::query(r"update webhook_endpoints set paused_at = null, consecutive_failures = 0 where id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(r"update webhook_deliveries set next_attempt_at = now() where endpoint_id = $1 and state = 'pending'")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    AuditEntry::new(AuditKind::WebhookResume).project(project_id).after(before).record(&mut *tx, by).await?;
    tx.commit().await?;
    Ok(())
}

/// Queues a `test` event for the endpoint; the delivery's id.
pub async fn send_test_event(pool: &PgPool, by: &Principal, project_id: i64, id: i64) -> Result<i64, StoreError> {
    let mut tx = pool.begin().await?;
    may_manage(&mut *tx, by, project_id).await?;
    lock_endpoint(&mut tx, project_id, id).await?;
    let (delivery,): (i64,) = sqlx::query_as(
        r"insert into webhook_deliveries (endpoint_id, event, payload)
          select $1, $2, jsonb_build_object('at', now(), 'actor', $3::text, 'project', p.name,
                 'message', 'A test event, sent from tagward on request.')
          from webhook_endpoints w join projects p on p.id = w.project_id where w.id = $1
          returning id",
    )
    .bind(id)
    .bind(WebhookEvent::Test.as_str())
    .bind(by.actor())
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(delivery)
}

/// Sends a delivered or failed notification again, from now.
pub async fn redeliver(pool: &PgPool, by: &Principal, project_id: i64, delivery: i64) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    may_manage(&mut *tx, by, project_id).await?;
    let updated = sqlx::query(
        r"update webhook_deliveries d
          set state = 'pending', next_attempt_at = now(), lease_until = null, created_at = now()
          from webhook_endpoints w
          where d.id = $1 and w.id = d.endpoint_id and w.project_id = $2 and d.state <> 'pending'",
    )
    .bind(delivery)
    .bind(project_id)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!(
            "delivery {delivery} is not a finished delivery of this project's webhooks"
        )));
    }
    tx.commit().await?;
    Ok(())
}

/// An endpoint as the Webhooks tab and `tagward webhook list` show it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookListing {
    pub id: i64,
    pub url: String,
    pub events: Vec<WebhookEvent>,
    pub format: WebhookFormat,
    pub has_authorization: bool,
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub consecutive_failures: i32,
    pub paused_at: Option<OffsetDateTime>,
    /// Notifications waiting for it.
    pub pending: i64,
}

pub async fn project_webhooks(db: impl PgExecutor<'_>, project_id: i64) -> Result<Vec<WebhookListing>, StoreError> {
    Ok(sqlx::query_as(
        r"select w.id, w.url, w.events, w.format, w.authorization_value is not null as has_authorization,
                 w.created_by, w.created_at, w.consecutive_failures, w.paused_at,
                 (select count(*) from webhook_deliveries d where d.endpoint_id = w.id and d.state = 'pending') as pending
          from webhook_endpoints w where w.project_id = $1 order by w.id",
    )
    .bind(project_id)
    .fetch_all(db)
    .await?)
}

/// One notification to one endpoint, and what became of it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryListing {
    pub id: i64,
    pub endpoint_id: i64,
    pub event: WebhookEvent,
    pub created_at: OffsetDateTime,
    /// pending, delivered, failed
    pub state: String,
    pub attempts: i32,
    pub last_attempt_at: Option<OffsetDateTime>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<OffsetDateTime>,
    pub next_attempt_at: OffsetDateTime,
}

/// The latest `per_endpoint` deliveries of each of the project's endpoints, newest first.
pub async fn recent_deliveries(
    db: impl PgExecutor<'_>,
    project_id: i64,
    per_endpoint: i64,
) -> Result<Vec<DeliveryListing>, StoreError> {
    Ok(sqlx::query_as(
        r"select d.id, d.endpoint_id, d.event, d.created_at, d.state, d.attempts, d.last_attempt_at, d.last_status,
                 d.last_error, d.delivered_at, d.next_attempt_at
          from webhook_endpoints w
          cross join lateral (select * from webhook_deliveries d where d.endpoint_id = w.id
                              order by d.id desc limit $2) d
          where w.project_id = $1
          order by d.endpoint_id, d.id desc",
    )
    .bind(project_id)
    .bind(per_endpoint)
    .fetch_all(db)
    .await?)
}

/// A notification claimed for delivery, with what sending it takes.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueDelivery {
    pub id: i64,
    pub endpoint_id: i64,
    pub url: String,
    pub format: WebhookFormat,
    pub secret: String,
    pub authorization_value: Option<String>,
    pub event: WebhookEvent,
    pub payload: Value,
    /// This attempt's number (1 for the first).
    pub attempts: i32,
    pub created_at: OffsetDateTime,
    pub project: String,
}

/// Claims up to `limit` due notifications of endpoints that are not paused, for `lease`: no other
/// instance takes them until then (rows another claim is taking are skipped, not waited for). A
/// claim whose instance died is taken over once its lease has run out.
pub async fn claim_deliveries(
    db: impl PgExecutor<'_>,
    limit: i64,
    lease: Duration,
) -> Result<Vec<DueDelivery>, StoreError> {
    Ok(sqlx::query_as(
        r"with due as (
            select d.id from webhook_deliveries d join webhook_endpoints w on w.id = d.endpoint_id
            where d.state = 'pending' and d.next_attempt_at <= now()
              and (d.lease_until is null or d.lease_until < now()) and w.paused_at is null
            order by d.next_attempt_at, d.id
            limit $1
            for update of d skip locked
          )
          update webhook_deliveries d
          set lease_until = now() + make_interval(secs => $2), attempts = d.attempts + 1, last_attempt_at = now()
          from due, webhook_endpoints w, projects p
          where d.id = due.id and w.id = d.endpoint_id and p.id = w.project_id
          returning d.id, d.endpoint_id, w.url, w.format, w.secret, w.authorization_value, d.event, d.payload,
                    d.attempts, d.created_at, p.name as project",
    )
    .bind(limit)
    .bind(lease.as_secs_f64())
    .fetch_all(db)
    .await?)
}

/// The receiver took it (a 2xx): delivered, and its endpoint's run of failures ends.
pub async fn delivery_succeeded(
    db: impl PgExecutor<'_>,
    delivery: &DueDelivery,
    status: u16,
) -> Result<(), StoreError> {
    sqlx::query(
        r"with done as (
            update webhook_deliveries
            set state = 'delivered', delivered_at = now(), last_status = $3, last_error = null, lease_until = null
            where id = $1
          )
          -- Only when it had failed: every delivery to an endpoint locking its row would serialise them.
          update webhook_endpoints set consecutive_failures = 0 where id = $2 and consecutive_failures <> 0",
    )
    .bind(delivery.id)
    .bind(delivery.endpoint_id)
    .bind(i32::from(status))
    .execute(db)
    .await?;
    Ok(())
}

/// What a failed attempt leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Tried again at this time.
    RetryAt(OffsetDateTime),
    /// Not tried again: its time to be delivered (24 hours) is up.
    GiveUp,
}

/// An attempt failed (`status` if the receiver answered, and why): the notification waits for
/// its retry or is given up, and its endpoint is paused once `pause_after` attempts in a row
/// failed. Whether the endpoint is paused now.
pub async fn delivery_failed(
    db: impl PgExecutor<'_>,
    delivery: &DueDelivery,
    status: Option<u16>,
    error: &str,
    next: AfterFailure,
    pause_after: i32,
) -> Result<bool, StoreError> {
    let retry_at = match next {
        AfterFailure::RetryAt(at) => Some(at),
        AfterFailure::GiveUp => None,
    };
    let (paused,): (bool,) = sqlx::query_as(
        r"with failed as (
            update webhook_deliveries
            set state = case when $5::timestamptz is null then 'failed' else 'pending' end,
                next_attempt_at = coalesce($5, next_attempt_at), lease_until = null, last_status = $3, last_error = $4
            where id = $1
          )
          update webhook_endpoints
          set consecutive_failures = consecutive_failures + 1,
              paused_at = case when paused_at is null and consecutive_failures + 1 >= $6 then now() else paused_at end
          where id = $2
          returning paused_at is not null",
    )
    .bind(delivery.id)
    .bind(delivery.endpoint_id)
    .bind(status.map(i32::from))
    .bind(error)
    .bind(retry_at)
    .bind(pause_after)
    .fetch_one(db)
    .await?;
    Ok(paused)
}

/// Queues what time, not a transaction, makes happen: an unused exception running out within
/// `lead` (`exception.expiring`) and one that ran out (`exception.expired`). Each is queued once
/// per endpoint however many instances run this (the outbox's unique key takes the first). How
/// many notifications it queued.
pub async fn queue_timed_events(db: &PgPool, lead: Duration) -> Result<u64, StoreError> {
    let queued = sqlx::query(
        r"insert into webhook_deliveries (endpoint_id, event, payload, once_key)
          select w.id, ev.event,
                 jsonb_build_object('at', now(), 'project', p.name, 'actor', 'tagward',
                     'after', jsonb_build_object('id', e.id, 'granted_by', e.granted_by, 'reason', e.reason,
                         'expires_at', e.expires_at, 'repository', e.repository, 'tag', e.tag, 'digest', e.digest,
                         'operation', e.operation, 'approved', e.approved_by is not null)),
                 ev.event || ':' || e.id
          from tag_exceptions e
          join projects p on p.id = e.project_id
          join webhook_endpoints w on w.project_id = e.project_id
          cross join (values ($1::text), ($2::text)) ev(event)
          where ev.event = any(w.events) and e.used_at is null and e.revoked_at is null
            and case when ev.event = $1
                     then e.expires_at > now() and e.expires_at <= now() + make_interval(secs => $3)
                     else e.expires_at <= now() and e.expires_at > w.created_at and e.expires_at > now() - interval '1 day'
                end
          on conflict (endpoint_id, once_key) do nothing",
    )
    .bind(WebhookEvent::ExceptionExpiring.as_str())
    .bind(WebhookEvent::ExceptionExpired.as_str())
    .bind(lead.as_secs_f64())
    .execute(db)
    .await?
    .rows_affected();
    Ok(queued)
}

/// Forgets closed denial windows and deliveries finished more than [`KEPT_DAYS`] ago.
pub async fn forget_old_deliveries(db: &PgPool) -> Result<(), StoreError> {
    sqlx::query(r"delete from webhook_folds where until < now() - interval '1 hour'").execute(db).await?;
    sqlx::query(
        r"delete from webhook_deliveries
          where state <> 'pending' and created_at < now() - make_interval(days => $1)",
    )
    .bind(KEPT_DAYS)
    .execute(db)
    .await?;
    Ok(())
}

/// How long the oldest undelivered notification has waited (none waiting: `None`), and how many wait.
pub async fn outbox_backlog(db: impl PgExecutor<'_>) -> Result<(Option<f64>, i64), StoreError> {
    Ok(sqlx::query_as(
        r"select extract(epoch from now() - min(created_at))::float8, count(*)
          from webhook_deliveries where state = 'pending'",
    )
    .fetch_one(db)
    .await?)
}

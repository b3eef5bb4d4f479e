//! What a receiver is sent: the body in the endpoint's format, and the headers that sign it.
//!
//! The signature is HMAC-SHA256, keyed with the endpoint's secret, over `<timestamp>.<body>`
//! (the timestamp is the `X-Tagward-Timestamp` header, Unix seconds): a receiver recomputes it,
//! compares in constant time, and refuses timestamps more than a few minutes old (a replay).

use app::policy::{WebhookEvent, WebhookFormat};
use app::store::DueDelivery;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// The headers every delivery carries besides `Content-Type`.
pub const SIGNATURE_HEADER: &str = "x-tagward-signature";
pub const TIMESTAMP_HEADER: &str = "x-tagward-timestamp";
/// The event kind (`drift.found`), and the delivery's id (the same on every retry: receivers
/// drop repeats by it).
pub const EVENT_HEADER: &str = "x-tagward-event";
pub const DELIVERY_HEADER: &str = "x-tagward-delivery";

/// A body and its content type.
pub struct Body {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
}

/// The body `delivery` is sent as, in its endpoint's format.
pub fn body(delivery: &DueDelivery) -> Body {
    match delivery.format {
        WebhookFormat::CloudEvents => {
            let mut event = json!({
                "specversion": "1.0",
                "id": format!("tagward-delivery-{}", delivery.id),
                "source": format!("tagward/projects/{}", delivery.project),
                "type": format!("dev.tagward.{}", delivery.event),
                "time": delivery.created_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
                "datacontenttype": "application/json",
                "data": delivery.payload,
            });
            if let Some(subject) = subject(&delivery.payload) {
                event["subject"] = Value::String(subject);
            }
            Body { bytes: event.to_string().into_bytes(), content_type: "application/cloudevents+json" }
        }
        WebhookFormat::Slack => {
            Body { bytes: json!({ "text": text(delivery) }).to_string().into_bytes(), content_type: "application/json" }
        }
    }
}

/// The signature header's value for `body` sent at `timestamp`: `sha256=<hex>`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// What the event is about, as a CloudEvents `subject`: a repository (and tag), or a rule.
fn subject(payload: &Value) -> Option<String> {
    let field = |value: &Value, name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
    let after = payload.get("after").or_else(|| payload.get("before"));
    let repository = field(payload, "repository").or_else(|| after.and_then(|after| field(after, "repository")));
    let tag = field(payload, "tag").or_else(|| after.and_then(|after| field(after, "tag")));
    match (repository, tag) {
        (Some(repository), Some(tag)) => Some(format!("{repository}:{tag}")),
        (Some(repository), None) => Some(repository),
        _ => payload.get("rule_id").and_then(Value::as_i64).map(|id| format!("rule/{id}")),
    }
}

/// One line for a chat channel: `[tagward] shop · Drift found: found shop/api:v1 moved … (by …)`.
fn text(delivery: &DueDelivery) -> String {
    let event = delivery.event;
    let title = event.title();
    let payload = &delivery.payload;
    let field = |name: &str| payload.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
    let what = match event {
        WebhookEvent::Denial | WebhookEvent::WouldDeny => {
            format!(
                "{} (by {}; told once per rule and repository every {} minutes)",
                field("message"),
                field("caller"),
                app::store::DENIAL_WINDOW_SECONDS / 60
            )
        }
        WebhookEvent::ExceptionExpiring | WebhookEvent::ExceptionExpired => {
            let after = payload.get("after");
            let of = |name: &str| after.and_then(|a| a.get(name)).and_then(Value::as_str).unwrap_or("?").to_owned();
            let target = match after.and_then(|a| a.get("tag")).and_then(Value::as_str) {
                Some(tag) => format!("{}:{tag}", of("repository")),
                None => format!("{}@{}", of("repository"), of("digest")),
            };
            let when = if event == WebhookEvent::ExceptionExpiring { "runs out" } else { "ran out" };
            format!(
                "exception {} ({} of {target}, granted by {}: “{}”) {when} unused at {}",
                after.and_then(|a| a.get("id")).and_then(Value::as_i64).unwrap_or_default(),
                of("operation"),
                of("granted_by"),
                of("reason"),
                of("expires_at")
            )
        }
        WebhookEvent::Test => field("message"),
        _ => match audit_entry(delivery) {
            Some(entry) => format!("{} (by {})", app::activity::summary(&entry), entry.actor),
            None => String::new(),
        },
    };
    format!("[tagward] {} · {title}: {what}", delivery.project)
}

/// The audit entry a notification of a change carries, as the Activity tab reads it.
fn audit_entry(delivery: &DueDelivery) -> Option<app::store::ActivityEntry> {
    let payload = &delivery.payload;
    let at = payload
        .get("at")
        .and_then(Value::as_str)
        .and_then(|at| time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok())
        .unwrap_or(delivery.created_at);
    Some(app::store::ActivityEntry {
        at,
        actor: payload.get("actor")?.as_str()?.to_owned(),
        kind: payload.get("kind")?.as_str()?.to_owned(),
        rule_id: payload.get("rule_id").and_then(Value::as_i64),
        before: payload.get("before").filter(|v| !v.is_null()).cloned(),
        after: payload.get("after").filter(|v| !v.is_null()).cloned(),
        message: None,
        count: 1,
        first_at: at,
        project: Some(delivery.project.clone()),
        total: 1,
    })
}

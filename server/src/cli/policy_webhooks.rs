//! The `webhooks:` of a policy file: the steps that make a project's webhooks what the file says
//! (by URL: added, changed, removed), every entry checked before anything is changed.

use super::operator;
use crate::policy_file::WebhookEntry;
use app::policy::{FieldError, WebhookEvent, WebhookFormat, WebhookSecret};
use app::store::{WebhookListing, WebhookSpec};
use sqlx::PgPool;

pub enum WebhookStep {
    Add(WebhookSpec, WebhookSecret),
    Change(i64, WebhookSpec, Option<WebhookSecret>),
    Remove(i64, String),
}

/// A secret (or `Authorization` value) from the variable `field` names.
fn from_env(field: String, name: &str) -> Result<String, FieldError> {
    std::env::var(name).map_err(|_| FieldError::new(field, name, "names an environment variable that is not set"))
}

/// Checks every entry and plans the steps from `stored` to them.
pub async fn plan(
    entries: &[WebhookEntry],
    stored: &[WebhookListing],
    allow_private: bool,
) -> Result<Vec<WebhookStep>, FieldError> {
    let mut steps = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let field = |name: &str| format!("webhooks[{index}].{name}");
        let url = app::webhooks::reachable(&field("url"), &entry.url, allow_private).await?;
        let events = WebhookEvent::parse_list(&field("events"), &entry.events.join(","))?;
        let format = WebhookFormat::parse(&field("format"), entry.format.as_deref().unwrap_or("cloudevents"))?;
        // A variable that is not set keeps an existing webhook's secret; a new one needs it.
        let secret_env = entry.secret_env.as_deref().map(|name| (name, std::env::var(name).ok()));
        let secret = match &secret_env {
            Some((_, Some(value))) => Some(WebhookSecret::parse(&field("secret_env"), value)?),
            _ => None,
        };
        let authorization = match entry.authorization_env.as_deref() {
            Some(name) => {
                let value = from_env(field("authorization_env"), name)?;
                app::policy::parse_authorization(&field("authorization_env"), &value)?
            }
            None => None,
        };
        let spec = WebhookSpec { url, events, format, authorization };
        match stored.iter().find(|webhook| webhook.url == spec.url.as_str()) {
            None => {
                let secret = match (secret, secret_env) {
                    (Some(secret), _) => secret,
                    (None, Some((name, None))) => {
                        return Err(from_env(field("secret_env"), name).map(|_| ()).unwrap_err());
                    }
                    (None, _) => {
                        let why = "is needed to add a webhook (the variable holding the secret it signs with)";
                        return Err(FieldError::without_value(field("secret_env"), why));
                    }
                };
                steps.push(WebhookStep::Add(spec, secret));
            }
            Some(webhook) => {
                let same = webhook.events == spec.events && webhook.format == spec.format;
                if !same || secret.is_some() || spec.authorization.is_some() {
                    steps.push(WebhookStep::Change(webhook.id, spec, secret));
                }
            }
        }
    }
    for webhook in stored {
        if !entries.iter().any(|entry| entry.url.trim() == webhook.url) {
            steps.push(WebhookStep::Remove(webhook.id, webhook.url.clone()));
        }
    }
    Ok(steps)
}

pub fn describe(steps: &[WebhookStep]) -> String {
    let events = |spec: &WebhookSpec| spec.events.iter().map(|event| event.as_str()).collect::<Vec<_>>().join(", ");
    steps
        .iter()
        .map(|step| match step {
            WebhookStep::Add(spec, _) => {
                format!("+ add      webhook to {} ({}: {})\n", spec.url.as_str(), spec.format.as_str(), events(spec))
            }
            WebhookStep::Change(id, spec, _) => {
                format!(
                    "~ change   webhook {id} to {} ({}: {})\n",
                    spec.url.as_str(),
                    spec.format.as_str(),
                    events(spec)
                )
            }
            WebhookStep::Remove(id, url) => format!("- remove   webhook {id} to {url}\n"),
        })
        .collect()
}

pub async fn apply(pool: &PgPool, project_id: i64, steps: &[WebhookStep]) -> anyhow::Result<()> {
    let me = operator();
    for step in steps {
        match step {
            WebhookStep::Add(spec, secret) => {
                app::store::add_webhook(pool, &me, project_id, spec, secret).await?;
            }
            WebhookStep::Change(id, spec, secret) => {
                app::store::change_webhook(pool, &me, project_id, *id, spec, secret.as_ref()).await?;
            }
            WebhookStep::Remove(id, _) => app::store::remove_webhook(pool, &me, project_id, *id).await?,
        }
    }
    Ok(())
}

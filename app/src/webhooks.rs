//! Server functions for a project's webhooks: the list with the last deliveries, adding and
//! removing an endpoint, resuming a paused one, a test event, and sending a delivery again. Plain
//! forms: the Webhooks tab works without JavaScript.

use crate::account::ProjectAccess;
use crate::error::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// Deliveries shown per endpoint (newest first).
pub const SHOWN_DELIVERIES: i64 = 10;

/// One delivery as the tab shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRow {
    pub id: i64,
    pub event: String,
    pub created_at: String,
    /// pending, delivered, failed
    pub state: String,
    pub attempts: i32,
    /// `200 at 2026-12-07 10:02 UTC`, `no answer at …`, or nothing before the first attempt.
    pub last_attempt: Option<String>,
    pub last_error: Option<String>,
    /// When a pending one is tried next.
    pub next_attempt: Option<String>,
    pub can_redeliver: bool,
}

/// One endpoint as the tab shows it (never its secret or `Authorization` value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookRow {
    pub id: i64,
    pub url: String,
    pub events: Vec<String>,
    pub format: String,
    pub has_authorization: bool,
    pub created: String,
    /// `paused since …` after too many failures in a row, else `None`.
    pub paused: Option<String>,
    pub consecutive_failures: i32,
    pub pending: i64,
    pub deliveries: Vec<DeliveryRow>,
}

/// The Webhooks tab's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhooksView {
    pub project: ProjectAccess,
    /// Whether the viewer may configure them (project admins, system administrators).
    pub can_manage: bool,
    pub webhooks: Vec<WebhookRow>,
}

#[cfg(feature = "ssr")]
pub use ssr::{reachable, resolve_allowed};

#[cfg(feature = "ssr")]
mod ssr {
    use super::*;
    use crate::policy::{forbidden_address, FieldError, WebhookUrl};
    use crate::store::{DeliveryListing, WebhookListing};
    use std::net::IpAddr;

    /// The addresses `host` resolves to (itself, when it is an address), if every one of them may
    /// be reached by a webhook; else why not. Saving a webhook checks it, and so does every
    /// connection (a name may point elsewhere by then).
    pub async fn resolve_allowed(host: &str, allow_private: bool) -> Result<Vec<IpAddr>, String> {
        let addresses: Vec<IpAddr> = match host.trim_matches(['[', ']']).parse::<IpAddr>() {
            Ok(address) => vec![address],
            Err(_) => tokio::net::lookup_host((host, 0))
                .await
                .map_err(|error| format!("`{host}` does not resolve: {error}"))?
                .map(|address| address.ip())
                .collect(),
        };
        if addresses.is_empty() {
            return Err(format!("`{host}` resolves to no address"));
        }
        if !allow_private {
            if let Some((address, why)) =
                addresses.iter().find_map(|address| forbidden_address(*address).map(|why| (address, why)))
            {
                return Err(format!(
                    "`{host}` resolves to {address}, {why}: webhooks may not reach the network tagward runs in \
                     (an operator allows it with TAGWARD_WEBHOOK_ALLOW_PRIVATE)"
                ));
            }
        }
        Ok(addresses)
    }

    /// The URL, if a webhook may be sent there: the portal, `tagward webhook add` and policy files
    /// check it alike.
    pub async fn reachable(field: &str, url: &str, allow_private: bool) -> Result<WebhookUrl, FieldError> {
        let parsed = WebhookUrl::parse(field, url)?;
        resolve_allowed(parsed.host(), allow_private).await.map_err(|why| FieldError::new(field, url, why))?;
        Ok(parsed)
    }

    pub fn row(listing: WebhookListing, deliveries: &[DeliveryListing], can_manage: bool) -> WebhookRow {
        let shown = crate::shown_time;
        WebhookRow {
            id: listing.id,
            url: listing.url,
            events: listing.events.iter().map(|event| event.as_str().to_owned()).collect(),
            format: listing.format.as_str().to_owned(),
            has_authorization: listing.has_authorization,
            created: format!("{} by {}", shown(listing.created_at), listing.created_by),
            paused: listing.paused_at.map(|at| format!("paused since {}", shown(at))),
            consecutive_failures: listing.consecutive_failures,
            pending: listing.pending,
            deliveries: deliveries
                .iter()
                .filter(|delivery| delivery.endpoint_id == listing.id)
                .map(|delivery| DeliveryRow {
                    id: delivery.id,
                    event: delivery.event.as_str().to_owned(),
                    created_at: shown(delivery.created_at),
                    state: delivery.state.clone(),
                    attempts: delivery.attempts,
                    last_attempt: delivery.last_attempt_at.map(|at| match delivery.last_status {
                        Some(status) => format!("{status} at {}", shown(at)),
                        None => format!("no answer at {}", shown(at)),
                    }),
                    last_error: delivery.last_error.clone(),
                    next_attempt: (delivery.state == "pending" && delivery.attempts > 0)
                        .then(|| shown(delivery.next_attempt_at)),
                    can_redeliver: can_manage && delivery.state != "pending",
                })
                .collect(),
        }
    }

    /// The project as the signed-in user sees it, the pool, and the user.
    pub async fn context(
        project: &str,
    ) -> Result<(ProjectAccess, sqlx::PgPool, crate::principal::Principal), AppError> {
        let state = crate::auth::ssr::state()?;
        let access = crate::projects::ssr::visible(project).await?;
        let me = crate::auth::ssr::principal().await?;
        Ok((access, state.pool.clone(), me))
    }

    /// Runs a change, then sends the browser back to the tab.
    pub async fn then_back(
        project: &str,
        change: impl std::future::Future<Output = Result<(), AppError>>,
    ) -> Result<(), AppError> {
        crate::auth::ssr::answered(change.await)?;
        leptos_axum::redirect(&format!("/projects/{project}/webhooks"));
        Ok(())
    }
}

/// The project's webhooks (any member may look; its admins change them).
#[server(prefix = "/portal", endpoint = "webhooks")]
pub async fn list_webhooks(project: String) -> Result<WebhooksView, AppError> {
    crate::auth::ssr::answered(
        async {
            let (access, pool, me) = ssr::context(&project).await?;
            let can_manage = me.may_manage_webhooks(access.role).is_ok();
            let listings = crate::store::project_webhooks(&pool, access.id).await?;
            let deliveries = crate::store::recent_deliveries(&pool, access.id, SHOWN_DELIVERIES).await?;
            Ok(WebhooksView {
                webhooks: listings.into_iter().map(|listing| ssr::row(listing, &deliveries, can_manage)).collect(),
                project: access,
                can_manage,
            })
        }
        .await,
    )
}

/// Adds a webhook: the URL (checked: it may not point inside tagward's network), the events
/// ticked, the format, the secret bodies are signed with, and an optional `Authorization` value.
#[server(prefix = "/portal", endpoint = "add_webhook")]
pub async fn add_webhook(
    project: String,
    url: String,
    #[server(default)] events: Vec<String>,
    format: String,
    secret: String,
    #[server(default)] authorization: String,
) -> Result<(), AppError> {
    use crate::policy::{FieldError, WebhookEvent, WebhookFormat, WebhookSecret};
    ssr::then_back(&project, async {
        let (access, pool, me) = ssr::context(&project).await?;
        // Who may not add one is told so before anything they typed is looked at (or resolved).
        me.may_manage_webhooks(access.role).map_err(|denied| AppError::Forbidden(denied.0))?;
        let allow_private = crate::auth::ssr::state()?.webhooks_allow_private;
        let events = WebhookEvent::parse_list("events", &events.join(","))
            .map_err(|_| FieldError::without_value("events", "tick at least one event"))?;
        let format = WebhookFormat::parse("format", &format)?;
        let secret = WebhookSecret::parse("secret", &secret)?;
        let authorization = crate::policy::parse_authorization("authorization", &authorization)?;
        let url = ssr::reachable("url", &url, allow_private).await?;
        let spec = crate::store::WebhookSpec { url, events, format, authorization };
        crate::store::add_webhook(&pool, &me, access.id, &spec, &secret).await?;
        Ok(())
    })
    .await
}

/// Removes a webhook (and what waits to be sent to it).
#[server(prefix = "/portal", endpoint = "remove_webhook")]
pub async fn remove_webhook(project: String, id: i64) -> Result<(), AppError> {
    ssr::then_back(&project, async {
        let (access, pool, me) = ssr::context(&project).await?;
        Ok(crate::store::remove_webhook(&pool, &me, access.id, id).await?)
    })
    .await
}

/// Resumes a webhook paused after failing too often.
#[server(prefix = "/portal", endpoint = "resume_webhook")]
pub async fn resume_webhook(project: String, id: i64) -> Result<(), AppError> {
    ssr::then_back(&project, async {
        let (access, pool, me) = ssr::context(&project).await?;
        Ok(crate::store::resume_webhook(&pool, &me, access.id, id).await?)
    })
    .await
}

/// Queues a test event for a webhook.
#[server(prefix = "/portal", endpoint = "test_webhook")]
pub async fn test_webhook(project: String, id: i64) -> Result<(), AppError> {
    ssr::then_back(&project, async {
        let (access, pool, me) = ssr::context(&project).await?;
        crate::store::send_test_event(&pool, &me, access.id, id).await?;
        Ok(())
    })
    .await
}

/// Sends a delivered or failed notification again.
#[server(prefix = "/portal", endpoint = "redeliver_webhook")]
pub async fn redeliver_webhook(project: String, delivery: i64) -> Result<(), AppError> {
    ssr::then_back(&project, async {
        let (access, pool, me) = ssr::context(&project).await?;
        Ok(crate::store::redeliver(&pool, &me, access.id, delivery).await?)
    })
    .await
}

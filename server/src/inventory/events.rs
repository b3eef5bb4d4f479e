//! `POST /api/v1/registry/events`: the registry's notifications (distribution's envelope,
//! Harbor's webhook), sent with a service token of scope `events`, applied to the inventory at
//! once. Delivery is at least once and in any order, which the store's changes are made for: a
//! repeated event only confirms, an older one never undoes a newer state. Errors use the OCI
//! distribution format, like every answer on the registry's path.

use crate::enforcement::api::{ApiError, Caller, TokenNeeds};
use crate::enforcement::Enforcer;
use crate::metrics::EventOutcome;
use app::registry_events::{parse_notification, Sender};
use axum::extract::{FromRef, State};
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;
use sqlx::PgPool;

/// The largest notification read: distribution sends events in small batches, Harbor one
/// artifact's resources.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Clone, FromRef)]
pub struct EventsState {
    pub pool: PgPool,
    pub enforcer: Enforcer,
}

pub fn router(state: EventsState) -> Router {
    Router::new()
        .route("/api/v1/registry/events", post(receive))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Registry events: the scope `events`.
pub struct SendEvents;

impl TokenNeeds for SendEvents {
    fn check(principal: &app::principal::Principal) -> Result<(), app::principal::Denied> {
        principal.may_send_events()
    }
}

/// What became of a notification's events.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventsTaken {
    /// `distribution` or `harbor`.
    pub sender: &'static str,
    /// Pushes and deletes that set, confirmed or removed what they name.
    pub applied: usize,
    /// Pushes and deletes older than what the inventory knows, left out.
    pub outdated: usize,
    /// Events that report nothing the inventory keeps (pulls, blobs, other webhook types).
    pub ignored: usize,
}

/// Applies a notification's pushes and deletes to the inventory (all of them or, when the
/// database fails, none: the sender then sends it again).
#[utoipa::path(post, path = "/api/v1/registry/events", tag = "inventory",
    request_body(content = Object, description = "distribution's notification envelope \
        (`{\"events\": [...]}`, `application/vnd.docker.distribution.events.v1+json`) or Harbor's webhook \
        payload (`PUSH_ARTIFACT`, `DELETE_ARTIFACT`)"),
    responses(
        (status = 200, description = "Taken", body = EventsTaken),
        (status = 400, description = "Not a notification tagward reads; names the field", body = crate::oci_error::OciErrors),
        (status = 401, description = "No valid service token", body = crate::oci_error::OciErrors),
        (status = 403, description = "The token lacks the scope `events`", body = crate::oci_error::OciErrors),
        (status = 422, description = "The database refuses what it reports (sending it again cannot help)", body = crate::oci_error::OciErrors),
        (status = 503, description = "The database is unavailable; send again", body = crate::oci_error::OciErrors),
    ),
    security(("bearer" = ["events"])))]
async fn receive(
    State(state): State<EventsState>,
    _sender: Caller<SendEvents>,
    crate::extract::Body(body, _): crate::extract::Body<ApiError>,
) -> Result<Json<EventsTaken>, ApiError> {
    let notification = parse_notification(&body).map_err(ApiError::invalid)?;
    let sender = match notification.sender {
        Sender::Distribution => "distribution",
        Sender::Harbor => "harbor",
    };
    let taken = app::store::apply_registry_changes(&state.pool, sender, &notification.changes).await?;
    super::drift::report(&state.pool, &state.enforcer, &taken.moved, app::store::FoundBy::Event).await;
    let metrics = &state.enforcer.metrics;
    metrics.record_registry_events(sender, EventOutcome::Applied, taken.applied);
    metrics.record_registry_events(sender, EventOutcome::Outdated, taken.outdated);
    metrics.record_registry_events(sender, EventOutcome::Ignored, notification.ignored);
    Ok(Json(EventsTaken { sender, applied: taken.applied, outdated: taken.outdated, ignored: notification.ignored }))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(receive), components(schemas(EventsTaken)), tags((name = "inventory", description = "The registry's events")))]
pub struct EventsApi;

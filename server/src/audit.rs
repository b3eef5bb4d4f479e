//! `GET /api/v1/audit`: the audit trail as NDJSON, oldest first, for a SIEM's collector. Each line
//! carries its `cursor`; asking again with `after=<the last line's cursor>` returns exactly what
//! came after, so polling neither loses nor repeats an entry (entries appear once every older
//! transaction has finished). A service token with `audit:read` reads the projects it reaches.

use crate::enforcement::api::{ApiError, Caller, TokenNeeds};
use crate::enforcement::Enforcer;
use app::policy::{FieldError, ProjectName};
use app::store::{StreamCursor, StreamFilter};
use axum::extract::{FromRef, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use sqlx::PgPool;

/// Entries one answer holds unless fewer are asked for.
const MAX_LIMIT: i64 = 1000;
/// The header naming where to resume (the last line's cursor, or the one asked with when none).
pub const NEXT_CURSOR_HEADER: &str = "tagward-next-cursor";

#[derive(Clone, FromRef)]
pub struct AuditState {
    pub pool: PgPool,
    pub enforcer: Enforcer,
}

pub fn router(state: AuditState) -> Router {
    Router::new().route("/api/v1/audit", get(stream)).with_state(state)
}

/// The audit stream: the scope `audit:read`.
pub struct ReadAudit;

impl TokenNeeds for ReadAudit {
    fn check(principal: &app::principal::Principal) -> Result<(), app::principal::Denied> {
        principal.may_read_audit(None)
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Resume after this entry (a line's `cursor`); from the start without it.
    #[param(schema_with = cursor)]
    after: Option<String>,
    /// Only this project's entries.
    #[param(schema_with = crate::enforcement::schema::project)]
    project: Option<String>,
    /// Entries at most (1 to 1000; 1000 by default).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// A cursor as lines carry it: `<transaction>-<0|1>-<id>`.
fn cursor() -> utoipa::openapi::schema::Schema {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(r"^[0-9]{1,19}-[01]-[0-9]{1,18}$"))
        .description(Some("A line's `cursor`"))
        .examples([serde_json::json!("1234-0-56")])
        .into()
}

/// The trail after a cursor, as NDJSON: one JSON object per line.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(StreamQuery),
    responses(
        (status = 200, description = "Entries, one JSON object per line (`application/x-ndjson`), oldest first; \
            the `Tagward-Next-Cursor` header says where to resume", content_type = "application/x-ndjson", body = String),
        (status = 400, description = "A cursor, project or limit that does not parse; names the field", body = crate::oci_error::OciErrors),
        (status = 401, description = "No valid service token", body = crate::oci_error::OciErrors),
        (status = 403, description = "The token lacks `audit:read`, or does not reach the project", body = crate::oci_error::OciErrors),
        (status = 503, description = "The database is unavailable; ask again", body = crate::oci_error::OciErrors),
    ),
    security(("bearer" = ["audit:read"])))]
async fn stream(
    State(state): State<AuditState>,
    caller: Caller<ReadAudit>,
    crate::extract::Checked(axum::extract::Query(query), _): crate::extract::Checked<
        axum::extract::Query<StreamQuery>,
        ApiError,
    >,
) -> Result<Response, ApiError> {
    let token = &caller.0;
    let after = query.after.as_deref().map(StreamCursor::parse).transpose().map_err(ApiError::invalid)?;
    let limit = query.limit.unwrap_or(MAX_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(FieldError::new("limit", &limit.to_string(), "must be from 1 to 1000")));
    }
    let projects = match query.project.as_deref() {
        Some(project) => {
            let name =
                ProjectName::parse(project).map_err(|error| ApiError::invalid(FieldError::name("project", error)))?;
            token.principal.may_read_audit(Some(name.as_str())).map_err(|denied| ApiError::Forbidden(denied.0))?;
            Some(vec![name.as_str().to_owned()])
        }
        // A token limited to some projects reads only theirs.
        None => match &token.principal {
            app::principal::Principal::Token(token) => token
                .grant
                .projects
                .as_ref()
                .map(|projects| projects.iter().map(|project| project.as_str().to_owned()).collect()),
            _ => None,
        },
    };
    let filter = StreamFilter { projects, since: None };
    let entries = app::store::audit_stream(&state.pool, after, &filter, limit).await?;
    let mut body = Vec::new();
    for entry in &entries {
        serde_json::to_writer(&mut body, entry).map_err(|error| ApiError::Unavailable(error.to_string()))?;
        body.push(b'\n');
    }
    let next = entries.last().map(|entry| entry.cursor.clone()).or(query.after).unwrap_or_default();
    let mut response =
        ([(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"))], body).into_response();
    if let Ok(next) = HeaderValue::from_str(&next) {
        response.headers_mut().insert(NEXT_CURSOR_HEADER, next);
    }
    Ok(response)
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(stream), tags((name = "audit", description = "The audit trail as a stream, for a SIEM")))]
pub struct AuditApi;

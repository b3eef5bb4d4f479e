//! Endpoints for operators: liveness, readiness and metrics.

use crate::enforcement::cache::PolicyCache;
use crate::enforcement::Enforcer;
use crate::metrics::Metrics;
use axum::extract::{FromRef, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, FromRef)]
pub struct OpsState {
    pub pool: PgPool,
    pub policies: Arc<PolicyCache>,
    pub metrics: Arc<Metrics>,
}

impl OpsState {
    pub fn new(pool: PgPool, enforcer: &Enforcer) -> Self {
        Self { pool, policies: enforcer.policies.clone(), metrics: enforcer.metrics.clone() }
    }
}

pub fn router(state: OpsState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// The process is up and answering.
async fn healthz() -> &'static str {
    "ok\n"
}

/// `ready` when the database answers within a second and the policy cache is current. Without the
/// database the answer is still 200 but says `degraded`: decisions go on from the cache (a load
/// balancer should keep sending them), while the portal and rule changes wait for the database.
async fn readyz(State(state): State<OpsState>) -> (StatusCode, String) {
    let ping = sqlx::query("select 1").execute(&state.pool);
    let database_up = matches!(tokio::time::timeout(Duration::from_secs(1), ping).await, Ok(Ok(_)));
    let cache_current = state.policies.is_current();
    // A project whose policy cannot be evaluated refuses changes to its existing tags: the
    // process is still fit to decide, but an operator has to look.
    let unenforceable: String = state
        .policies
        .problems()
        .iter()
        .map(|(project, problem)| {
            format!("degraded: the policy of project \"{project}\" cannot be evaluated: {problem}\n")
        })
        .collect();
    if database_up && cache_current {
        let status = if unenforceable.is_empty() { "ready\n".to_owned() } else { unenforceable };
        return (StatusCode::OK, status);
    }
    let loaded = state.policies.loaded_at();
    let age = (time::OffsetDateTime::now_utc() - loaded).whole_seconds();
    let why = if database_up { "policy cache resynchronising" } else { "database unreachable" };
    (
        StatusCode::OK,
        format!(
            "degraded: {why}; decisions come from the policy cache loaded {age} s ago ({} projects)\n{unenforceable}",
            state.policies.project_count()
        ),
    )
}

async fn metrics(State(state): State<OpsState>) -> impl IntoResponse {
    state.metrics.set_policy_gauges(state.policies.problems().len(), state.policies.shared_count());
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.render())
}

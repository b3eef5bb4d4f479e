//! What every serving tagward process starts with, `serve` and `gateway` alike: the database pool
//! (migrated), the enforcer (policy and token caches, kept current by notifications, and the
//! denial recorder), and the operations endpoints over both.

use crate::config::{DatabaseConfig, ExceptionsConfig};
use crate::enforcement::Enforcer;
use crate::ops::OpsState;
use anyhow::Context;
use axum::Router;
use sqlx::PgPool;

pub struct Core {
    pub pool: PgPool,
    pub enforcer: Enforcer,
}

impl Core {
    /// Connects, applies pending migrations, and loads the caches.
    pub async fn start(database: &DatabaseConfig, exceptions: ExceptionsConfig) -> anyhow::Result<Self> {
        let pool = app::store::connect(&database.database_url).await?;
        app::store::migrate(&pool).await.context("applying migrations")?;
        let enforcer = Enforcer::start(&pool, exceptions.exceptions).await?;
        Ok(Self { pool, enforcer })
    }

    /// `/healthz`, `/readyz` and `/metrics`.
    pub fn ops(&self) -> Router {
        crate::ops::router(OpsState::new(self.pool.clone(), &self.enforcer))
    }
}

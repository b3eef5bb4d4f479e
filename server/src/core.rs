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
        let pool = database.connect().await?;
        app::store::migrate(&pool).await.context("applying migrations")?;
        let enforcer = Enforcer::start(&pool, exceptions.exceptions).await?;
        // The pool's connections, for /metrics (sampled: the pool does not tell when they change).
        let (sampled, metrics) = (pool.clone(), enforcer.metrics.clone());
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                every.tick().await;
                metrics.record_pool(sampled.size(), sampled.num_idle());
            }
        });
        Ok(Self { pool, enforcer })
    }

    /// `/healthz`, `/readyz` and `/metrics`.
    pub fn ops(&self) -> Router {
        crate::ops::router(OpsState::new(self.pool.clone(), &self.enforcer))
    }
}

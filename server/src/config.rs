//! Configuration, from flags or the environment variables of the same names.

use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where the database is; every subcommand needs it.
#[derive(Debug, Clone, Args)]
pub struct DatabaseConfig {
    /// PostgreSQL connection URL.
    #[arg(long = "database-url", env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,

    /// Pooled database connections this process opens at most (the gateway's locks take
    /// `--lock-connections` more). N processes need N × (this + their lock connections) + the
    /// sync's and notifications' one each within PostgreSQL's `max_connections`.
    #[arg(long = "db-max-connections", env = "TAGWARD_DB_MAX_CONNECTIONS", default_value_t = Self::MAX_CONNECTIONS)]
    pub pool_max_connections: u32,

    /// Seconds a request waits for a pooled connection before it fails (503 where it decides a
    /// change, naming this setting).
    #[arg(long = "db-acquire-timeout", env = "TAGWARD_DB_ACQUIRE_TIMEOUT", default_value_t = Self::ACQUIRE_TIMEOUT_SECONDS)]
    pub pool_acquire_timeout_seconds: u64,
}

impl DatabaseConfig {
    const MAX_CONNECTIONS: u32 = app::store::MAX_CONNECTIONS;
    const ACQUIRE_TIMEOUT_SECONDS: u64 = app::store::ACQUIRE_TIMEOUT_SECONDS;

    /// The settings' defaults for `database_url`.
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            pool_max_connections: Self::MAX_CONNECTIONS,
            pool_acquire_timeout_seconds: Self::ACQUIRE_TIMEOUT_SECONDS,
        }
    }

    /// A pool with these settings.
    pub async fn connect(&self) -> anyhow::Result<sqlx::PgPool> {
        let timeout = std::time::Duration::from_secs(self.pool_acquire_timeout_seconds);
        app::store::connect_with(&self.database_url, self.pool_max_connections, timeout).await
    }
}

/// Whether this tagward takes one-time exceptions at all; every process that decides or grants
/// reads it.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct ExceptionsConfig {
    /// `off`: no exception can be granted and none is used, whatever a project's own setting says
    /// (for organisations that never want a protected tag changed).
    #[arg(long = "exceptions", env = "TAGWARD_EXCEPTIONS", default_value = "on")]
    pub exceptions: app::policy::ExceptionsSwitch,
}

/// Bounds on what a client can make a listener spend (see `listener.rs`).
#[derive(Debug, Clone, Args)]
pub struct ListenerConfig {
    /// Connections served at once; further ones wait in the kernel's backlog.
    #[arg(long = "max-connections", env = "TAGWARD_MAX_CONNECTIONS", default_value_t = Self::MAX_CONNECTIONS)]
    pub max_connections: usize,

    /// Seconds a request's headers may take to arrive (an idle keep-alive connection is closed then too).
    #[arg(long = "header-read-timeout", env = "TAGWARD_HEADER_READ_TIMEOUT", default_value_t = Self::HEADER_READ_TIMEOUT_SECONDS)]
    pub header_read_timeout_seconds: u64,
}

impl ListenerConfig {
    const MAX_CONNECTIONS: usize = 2048;
    const HEADER_READ_TIMEOUT_SECONDS: u64 = 20;
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self { max_connections: Self::MAX_CONNECTIONS, header_read_timeout_seconds: Self::HEADER_READ_TIMEOUT_SECONDS }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    #[command(flatten)]
    pub database: DatabaseConfig,

    #[command(flatten)]
    pub listener: ListenerConfig,

    #[command(flatten)]
    pub exceptions: ExceptionsConfig,

    /// Address the portal listens on (port 0 picks a free one).
    #[arg(long = "addr", env = "TAGWARD_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// Mark the session cookie `Secure`. Turn off only for plain-HTTP use on loopback.
    #[arg(long = "cookie-secure", env = "TAGWARD_COOKIE_SECURE", default_value_t = true, action = clap::ArgAction::Set)]
    pub cookie_secure: bool,

    /// Where the built site (the `pkg/` directory with the WASM, JS and CSS) is served from.
    #[arg(long = "site-root", env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,

    /// Password attempts allowed per account within a minute (portal logins, Harbor API Basic
    /// auth and password changes together; a client address may make four times as many).
    #[arg(long = "login-attempts-per-minute", env = "TAGWARD_LOGIN_ATTEMPTS_PER_MINUTE", default_value_t = 5)]
    pub login_attempts_per_minute: usize,

    /// Proxies (CIDRs, comma-separated) whose `X-Forwarded-For` / `Forwarded` names the client; from
    /// anyone else those headers are ignored. E.g. `10.0.0.0/8,127.0.0.1/32`.
    #[arg(long = "trusted-proxies", env = "TAGWARD_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    #[command(flatten)]
    pub registry: crate::inventory::RegistrySyncConfig,

    #[command(flatten)]
    pub sign_in: crate::sign_in::SignInConfig,

    #[command(flatten)]
    pub directory: crate::directory::DirectoryConfig,

    #[command(flatten)]
    pub webhooks: crate::webhooks::WebhookConfig,

    /// While the database has no users, start by creating the system administrator `admin` with
    /// this password (what `scripts/dev serve` does on a fresh database).
    #[arg(long = "bootstrap-admin-password", env = "TAGWARD_BOOTSTRAP_ADMIN_PASSWORD", hide_env_values = true)]
    pub bootstrap_admin_password: Option<String>,
}

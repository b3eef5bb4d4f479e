//! The one data-access module: every SQL query of tagward, used by the portal, the APIs and the
//! CLI alike. Every change is one operation here: it takes the acting [`Principal`], asks it
//! whether it may, checks its invariants under the row lock that makes them hold, and writes its
//! audit row in the same transaction. Surfaces call these and nothing else to change anything.
//!
//! [`Principal`]: crate::principal::Principal

mod audit;
mod columns;
mod drift;
mod exceptions;
mod identity;
mod inventory;
mod manifests;
mod projects;
mod rules;
mod tokens;
mod users;
mod webhooks;

pub use audit::{
    activity, audit_stream, denial_counts, insert_denials, would_have_denied, ActivityEntry, AuditKind, Denial,
    DenialCounts, StreamCursor, StreamEntry, StreamFilter, WouldHaveDenied,
};
pub use drift::{close_drift, open_drift, open_drift_by_id, record_drift, Drift, DriftRecord, FoundBy};
pub use exceptions::{
    approve_exception, grant_exception, project_exceptions, project_exceptions_mode, revoke_exception,
    set_project_exceptions, usable_exceptions, use_exceptions, ExceptionListing, ExceptionRecord, ExceptionStatus,
    ExceptionUse, ExceptionsTaken, GrantedException, UsableException, UsedException,
};
pub use identity::{
    add_group_mapping, group_mappings, provider_groups_actor, remove_group_mapping, save_sign_in_flow,
    sign_in_from_provider, take_sign_in_flow, SignInFlow, SIGN_IN_FLOW_MINUTES,
};
pub use inventory::{
    apply_registry_changes, attachment_lists, begin_sync_pass, each_project_repository, event_stream, finish_sync_pass,
    finish_synced_repository, inventory_tags, inventory_version, put_tags, record_delete, record_push,
    record_sync_failure, store_synced_tags, sync_state, AttachmentListTag, ChangesApplied, EventStream, InventoryTag,
    Sighting, SyncState, TagMoved, TagSource, TagsPut,
};
pub use manifests::{
    held_bytes, read_manifests, record_manifests, tag_attachments, tag_holdings, unread_manifests, HeldBytes,
    TagAttachments, TagHolding,
};
pub use projects::{
    change_member, create_project, delete_project, members, project_id, project_name, projects, visible_project,
    visible_projects, ProjectListing,
};
pub use rules::{
    change_rules, change_rules_together, each_project_policy, enforceable_rules, project_policy, project_rules,
    ProjectPolicySource, RuleChange, StoredRule,
};
pub use tokens::{active_tokens, create_token, record_token_use, revoke_token, tokens, ActiveToken, TokenListing};
pub use users::{
    active_user, check_credentials, count_users, create_first_administrator, create_user, has_password, record_sign_in,
    set_password, set_system_admin, set_user_active, users, UserListing,
};
pub use webhooks::{
    add_webhook, change_webhook, claim_deliveries, delivery_failed, delivery_succeeded, forget_old_deliveries,
    outbox_backlog, project_webhooks, queue_timed_events, recent_deliveries, redeliver, remove_webhook, resume_webhook,
    send_test_event, AfterFailure, DeliveryListing, DueDelivery, WebhookListing, WebhookSpec, DENIAL_WINDOW_SECONDS,
    WEBHOOKS_CHANNEL,
};

use sqlx::postgres::{PgPool, PgPoolOptions};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    NotFound(String),
    /// The principal may not do this; the message says why.
    #[error("{0}")]
    Forbidden(String),
    /// A unique constraint refused the value; `field` is the input it concerns.
    #[error("{message}")]
    Conflict { field: &'static str, message: String },
    /// A change the rules forbid (the 15-rule limit, an identical rule); the message says which.
    #[error("{0}")]
    Refused(String),
    /// Not now: too many attempts, or too much password hashing under way; try again after
    /// `retry_after` seconds.
    #[error("{message}; try again in {retry_after} seconds")]
    TryLater { message: String, retry_after: u64 },
    /// A service the operation needs (the directory) cannot answer now; the message says which, in
    /// words for the person asking.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl StoreError {
    /// Whether the database refused the statement for what it is (a constraint, a bad value), so
    /// that trying it again can never succeed; otherwise (connection lost, pool exhausted,
    /// deadlock, server shutting down) it may.
    pub fn is_permanent(&self) -> bool {
        self.database_code().is_some_and(|code| ["22", "23", "42"].iter().any(|class| code.starts_with(class)))
    }

    /// The SQLSTATE of a failed statement, if the database answered with one.
    pub fn database_code(&self) -> Option<String> {
        match self {
            StoreError::Unexpected(error) => match error.downcast_ref::<sqlx::Error>() {
                Some(sqlx::Error::Database(db)) => db.code().map(|code| code.into_owned()),
                _ => None,
            },
            _ => None,
        }
    }
}

impl From<crate::principal::Denied> for StoreError {
    fn from(denied: crate::principal::Denied) -> Self {
        StoreError::Forbidden(denied.0)
    }
}

/// SQLSTATE of a foreign key violation.
pub const FOREIGN_KEY_VIOLATION: &str = "23503";

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        StoreError::Unexpected(anyhow::Error::new(error).context("database query failed"))
    }
}

/// Maps the violation of the named unique constraint to a conflict on `field`.
fn on_constraint(
    constraint: &'static str,
    field: &'static str,
    message: impl FnOnce() -> String,
) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |error| match &error {
        sqlx::Error::Database(db) if db.constraint() == Some(constraint) => {
            StoreError::Conflict { field, message: message() }
        }
        _ => error.into(),
    }
}

/// The pool's size and acquire timeout unless configured (`--db-max-connections`,
/// `--db-acquire-timeout`).
pub const MAX_CONNECTIONS: u32 = 16;
pub const ACQUIRE_TIMEOUT_SECONDS: u64 = 5;

pub async fn connect(database_url: &str) -> anyhow::Result<PgPool> {
    connect_with(database_url, MAX_CONNECTIONS, Duration::from_secs(ACQUIRE_TIMEOUT_SECONDS)).await
}

pub async fn connect_with(
    database_url: &str,
    max_connections: u32,
    acquire_timeout: Duration,
) -> anyhow::Result<PgPool> {
    use anyhow::Context;
    PgPoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(acquire_timeout)
        .connect(database_url)
        .await
        .with_context(|| format!("cannot connect to the database at `{}`", redact(database_url)))
}

/// The database URL without its password, for messages.
pub fn redact(database_url: &str) -> String {
    match (database_url.find("://"), database_url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &database_url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &database_url[..scheme + 3], &database_url[at..]),
                None => database_url.to_owned(),
            }
        }
        _ => database_url.to_owned(),
    }
}

/// The schema's migrations, compiled in.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// The channel every change to a project or its rules is announced on (by triggers), with the
/// project id as payload.
pub const RULES_CHANNEL: &str = "tagward_rules";
/// The channel every change to the service tokens is announced on (by a trigger).
pub const TOKENS_CHANNEL: &str = "tagward_tokens";
/// The channel every change to a project's exceptions (or its exceptions setting) is announced on
/// (by triggers), with the project id as payload.
pub const EXCEPTIONS_CHANNEL: &str = "tagward_exceptions";

impl From<crate::password::PasswordError> for StoreError {
    fn from(error: crate::password::PasswordError) -> Self {
        use crate::password::PasswordError;
        match error {
            PasswordError::TryLater { message, retry_after } => StoreError::TryLater { message, retry_after },
            PasswordError::Unexpected(error) => StoreError::Unexpected(error),
        }
    }
}

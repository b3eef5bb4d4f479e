//! Server functions for a project's one-time exceptions: the list, granting one (the Tags tab's
//! "Allow one change…"), approving (four-eyes), revoking, and the project's setting.

use crate::account::ProjectAccess;
use crate::error::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// The most exceptions the list shows (newest first).
pub const LISTED: i64 = 200;

/// The lifetimes the grant form offers (the CLI takes any up to 24 h).
pub const LIFETIMES: [(&str, &str); 5] =
    [("15m", "15 minutes"), ("1h", "1 hour"), ("4h", "4 hours"), ("8h", "8 hours"), ("24h", "24 hours")];

/// One exception as the list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionRow {
    pub id: i64,
    /// e.g. `overwrite of shop/api:v1`
    pub change: String,
    /// pending, active, used, expired, revoked
    pub status: String,
    pub reason: String,
    pub granted_by: String,
    pub granted_at: String,
    pub expires_at: String,
    /// What became of it: `used 2026-12-03 10:02 UTC by gateway for push of …`, `revoked by ann`,
    /// `approved by bob`.
    pub outcome: Option<String>,
    /// Whether the viewer may revoke it (it is pending or active, and they may grant).
    pub can_revoke: bool,
    /// Whether the viewer may approve it (pending, and they did not grant it).
    pub can_approve: bool,
}

/// The Exceptions tab's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionsView {
    pub project: ProjectAccess,
    /// `allowed`, `four-eyes` or `off`.
    pub mode: String,
    /// Exceptions are switched off for the whole tagward (`TAGWARD_EXCEPTIONS=off`).
    pub switched_off: bool,
    /// Whether the viewer may grant, approve and revoke (project admins, system administrators).
    pub can_grant: bool,
    pub exceptions: Vec<ExceptionRow>,
}

#[cfg(feature = "ssr")]
mod ssr {
    use super::*;
    use crate::policy::ExceptionsSwitch;
    use crate::store::{ExceptionListing, ExceptionStatus};

    /// The project as the signed-in user sees it, the pool, the user, and the organisation's switch.
    pub async fn context(
        project: &str,
    ) -> Result<(ProjectAccess, sqlx::PgPool, crate::principal::Principal, ExceptionsSwitch), AppError> {
        let state = crate::auth::ssr::state()?;
        let access = crate::projects::ssr::visible(project).await?;
        let me = crate::auth::ssr::principal().await?;
        Ok((access, state.pool.clone(), me, state.exceptions))
    }

    pub fn row(listing: &ExceptionListing, me: &str, can_grant: bool) -> ExceptionRow {
        let status = listing.status(time::OffsetDateTime::now_utc());
        let outcome = match (&listing.used_at, &listing.revoked_at, &listing.approved_by) {
            (Some(at), _, _) => Some(format!(
                "used {} by {} for {}",
                crate::shown_time(*at),
                listing.used_by.as_deref().unwrap_or("?"),
                listing.used_for.as_deref().unwrap_or("?")
            )),
            (None, Some(at), _) => {
                Some(format!("revoked {} by {}", crate::shown_time(*at), listing.revoked_by.as_deref().unwrap_or("?")))
            }
            (None, None, Some(approver)) if approver != &listing.granted_by => Some(format!("approved by {approver}")),
            _ => None,
        };
        let open = matches!(status, ExceptionStatus::Active | ExceptionStatus::Pending);
        ExceptionRow {
            id: listing.id,
            change: listing.change(),
            status: status.as_str().to_owned(),
            reason: listing.reason.clone(),
            granted_by: listing.granted_by.clone(),
            granted_at: crate::shown_time(listing.granted_at),
            expires_at: crate::shown_time(listing.expires_at),
            outcome,
            can_revoke: can_grant && open,
            can_approve: can_grant && status == ExceptionStatus::Pending && listing.granted_by != me,
        }
    }
}

/// The project's exceptions (any member may look; admins act on them).
#[server(prefix = "/portal", endpoint = "exceptions")]
pub async fn list_exceptions(project: String) -> Result<ExceptionsView, AppError> {
    crate::auth::ssr::answered(
        async {
            let (access, pool, me, switch) = ssr::context(&project).await?;
            let can_grant = me.may_grant_exceptions(access.role).is_ok();
            let mode = crate::store::project_exceptions_mode(&pool, access.id).await?;
            let listings = crate::store::project_exceptions(&pool, access.id, LISTED).await?;
            let actor = me.actor();
            Ok(ExceptionsView {
                exceptions: listings.iter().map(|listing| ssr::row(listing, &actor, can_grant)).collect(),
                project: access,
                mode: mode.as_str().to_owned(),
                switched_off: switch == crate::policy::ExceptionsSwitch::Off,
                can_grant,
            })
        }
        .await,
    )
}

/// Grants an exception; on success, back to the project's Exceptions list.
#[server(prefix = "/portal", endpoint = "grant_exception")]
pub async fn grant_exception(
    project: String,
    repository: String,
    target: String,
    operation: String,
    #[server(default)] to_digest: String,
    reason: String,
    #[server(default)] expires_in: String,
) -> Result<(), AppError> {
    let id = crate::auth::ssr::answered(
        async {
            let (access, pool, me, switch) = ssr::context(&project).await?;
            let input = crate::policy::ExceptionInput { repository, target, operation, to_digest, reason, expires_in };
            let grant = crate::policy::ExceptionGrant::parse(&access.name, &input)?;
            Ok(crate::store::grant_exception(&pool, &me, access.id, switch, &grant).await?.id)
        }
        .await,
    )?;
    leptos_axum::redirect(&format!("/projects/{project}/exceptions#exception-{id}"));
    Ok(())
}

/// Revokes an exception not used yet.
#[server(prefix = "/portal", endpoint = "revoke_exception")]
pub async fn revoke_exception(project: String, id: i64) -> Result<(), AppError> {
    crate::auth::ssr::answered(
        async {
            let (access, pool, me, _) = ssr::context(&project).await?;
            Ok(crate::store::revoke_exception(&pool, &me, access.id, id).await?)
        }
        .await,
    )?;
    leptos_axum::redirect(&format!("/projects/{project}/exceptions"));
    Ok(())
}

/// Approves a pending exception (four-eyes).
#[server(prefix = "/portal", endpoint = "approve_exception")]
pub async fn approve_exception(project: String, id: i64) -> Result<(), AppError> {
    crate::auth::ssr::answered(
        async {
            let (access, pool, me, switch) = ssr::context(&project).await?;
            Ok(crate::store::approve_exception(&pool, &me, access.id, switch, id).await?)
        }
        .await,
    )?;
    leptos_axum::redirect(&format!("/projects/{project}/exceptions"));
    Ok(())
}

/// Sets whether the project takes exceptions: `allowed`, `four-eyes` or `off`.
#[server(prefix = "/portal", endpoint = "set_exceptions_mode")]
pub async fn set_exceptions_mode(project: String, mode: String) -> Result<(), AppError> {
    crate::auth::ssr::answered(
        async {
            let mode = crate::policy::ExceptionsMode::parse(&mode)?;
            let (access, pool, me, _) = ssr::context(&project).await?;
            Ok(crate::store::set_project_exceptions(&pool, &me, access.id, mode).await?)
        }
        .await,
    )?;
    leptos_axum::redirect(&format!("/projects/{project}/exceptions"));
    Ok(())
}

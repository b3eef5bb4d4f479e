//! Immutable tags changed behind tagward's back, as the project's pages show them: what the
//! inventory held, what a registry event or a sync found instead, and the two ways to close it —
//! acknowledge it as it is, or Restore (put the held manifest back on the tag).

use crate::error::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// One open drift, for the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftRow {
    pub id: i64,
    /// The repository inside the project, e.g. `web`, and the tag.
    pub repository: String,
    pub tag: String,
    pub held: String,
    /// `None`: the tag was gone.
    pub found: Option<String>,
    /// "a registry event", "the inventory sync".
    pub found_by: String,
    pub found_at: String,
}

/// What the project's pages show of its drift.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftView {
    pub rows: Vec<DriftRow>,
    /// Whether the viewer may acknowledge and restore (project admins and maintainers).
    pub can_manage: bool,
    /// Whether tagward can reach the registry to restore (a registry is configured).
    pub can_restore: bool,
}

#[cfg(feature = "ssr")]
pub(crate) mod ssr {
    use super::*;
    use crate::account::ProjectAccess;

    /// The open drift of `project`, as its pages show it.
    pub async fn drift_view(project: &ProjectAccess) -> Result<DriftView, AppError> {
        let state = crate::auth::ssr::state()?;
        let rows = crate::store::open_drift(&state.pool, project.id).await?;
        let rows = rows
            .into_iter()
            .map(|drift| DriftRow {
                id: drift.id,
                repository: drift.repository.path().to_owned(),
                tag: drift.tag.to_string(),
                held: drift.held_digest.to_string(),
                found: drift.found_digest.map(|digest| digest.to_string()),
                found_by: drift.found_by.described().to_owned(),
                found_at: crate::shown_time(drift.found_at),
            })
            .collect();
        Ok(DriftView { rows, can_manage: project.can_manage_rules, can_restore: state.registry.is_some() })
    }
}

/// The tab a drift form returns to: `tags` or `policy` (anything else: `policy`).
#[cfg(feature = "ssr")]
fn back_to(project: &str, back: &str) -> String {
    let tab = if back == "tags" { "tags" } else { "policy" };
    format!("/projects/{project}/{tab}")
}

/// Acknowledges drift `drift_id` of `project` as it is (it leaves the pages; the trail keeps it).
#[server(prefix = "/portal", endpoint = "acknowledge_drift")]
pub async fn acknowledge_drift(project: String, drift_id: i64, back: String) -> Result<(), AppError> {
    close(&project, drift_id, false).await?;
    leptos_axum::redirect(&back_to(&project, &back));
    Ok(())
}

/// Puts the manifest drift `drift_id` held back on its tag (with tagward's own registry
/// credentials, which then need push), and closes it.
#[server(prefix = "/portal", endpoint = "restore_drift")]
pub async fn restore_drift(project: String, drift_id: i64, back: String) -> Result<(), AppError> {
    close(&project, drift_id, true).await?;
    leptos_axum::redirect(&back_to(&project, &back));
    Ok(())
}

#[cfg(feature = "ssr")]
async fn close(project: &str, drift_id: i64, restore: bool) -> Result<(), AppError> {
    let state = crate::auth::ssr::state()?;
    crate::auth::ssr::answered(
        async {
            let me = crate::auth::ssr::principal().await?;
            let access = crate::projects::ssr::visible(project).await?;
            me.may_change_rules(&access.name, access.role).map_err(|denied| AppError::Forbidden(denied.0))?;
            let drift = crate::store::open_drift_by_id(&state.pool, access.id, drift_id).await?.ok_or_else(|| {
                AppError::NotFound(format!("drift_id: `{drift_id}` is not an open drift of `{project}`"))
            })?;
            if restore {
                let registry = state.registry.as_ref().ok_or_else(|| {
                    AppError::Registry(
                        "no registry is configured (TAGWARD_REGISTRY_URL), so tagward cannot put the manifest back"
                            .into(),
                    )
                })?;
                registry
                    .put_back(&drift.repository, &drift.tag, &drift.held_digest)
                    .await
                    .map_err(AppError::Registry)?;
            }
            crate::store::close_drift(&state.pool, &me, &drift, restore).await?;
            Ok(())
        }
        .await,
    )
}

//! Server functions about projects: the ones a user may see, and one project's members.

use crate::account::{ProjectAccess, Role};
use crate::error::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// A member of a project, as the Members tab lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub role: Role,
}

/// The projects the signed-in user belongs to (every project, for a system admin).
#[server(prefix = "/portal", endpoint = "projects")]
pub async fn list_projects() -> Result<Vec<ProjectAccess>, AppError> {
    let pool = crate::auth::ssr::state().pool;
    crate::auth::ssr::answered(
        async {
            let user = crate::auth::ssr::require_user().await?;
            Ok(crate::store::visible_projects(&pool, &user).await?)
        }
        .await,
    )
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use crate::account::ProjectAccess;
    use crate::error::AppError;

    /// The project as the signed-in user may see it; not a member and does not exist are both 404.
    pub async fn visible(project: &str) -> Result<ProjectAccess, AppError> {
        let pool = crate::auth::ssr::state().pool;
        let user = crate::auth::ssr::require_user().await?;
        crate::store::visible_project(&pool, &user, project)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("project `{project}` does not exist, or you are not a member")))
    }
}

/// One project, if the signed-in user may see it.
#[server(prefix = "/portal", endpoint = "project")]
pub async fn get_project(project: String) -> Result<ProjectAccess, AppError> {
    crate::auth::ssr::answered(ssr::visible(&project).await)
}

/// The members of a project the signed-in user may see.
#[server(prefix = "/portal", endpoint = "members")]
pub async fn list_members(project: String) -> Result<Vec<Member>, AppError> {
    let pool = crate::auth::ssr::state().pool;
    crate::auth::ssr::answered(
        async {
            let access = ssr::visible(&project).await?;
            let rows = crate::store::members(&pool, access.id).await?;
            Ok(rows.into_iter().map(|(name, role)| Member { name, role }).collect())
        }
        .await,
    )
}

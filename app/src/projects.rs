//! Server functions about projects: the ones a user may see.

use crate::account::ProjectAccess;
use crate::error::AppError;
use leptos::prelude::*;

/// The projects the signed-in user belongs to (every project, for a system admin).
#[server(prefix = "/portal", endpoint = "projects")]
pub async fn list_projects() -> Result<Vec<ProjectAccess>, AppError> {
    let pool = crate::auth::ssr::state()?.pool.clone();
    crate::auth::ssr::answered(
        async {
            let me = crate::auth::ssr::principal().await?;
            Ok(crate::store::visible_projects(&pool, &me).await?)
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
        let pool = crate::auth::ssr::state()?.pool.clone();
        let me = crate::auth::ssr::principal().await?;
        crate::store::visible_project(&pool, &me, project)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("project `{project}` does not exist, or you are not a member")))
    }
}

/// One project, if the signed-in user may see it.
#[server(prefix = "/portal", endpoint = "project")]
pub async fn get_project(project: String) -> Result<ProjectAccess, AppError> {
    crate::auth::ssr::answered(ssr::visible(&project).await)
}

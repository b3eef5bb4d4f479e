//! Server functions for administration: users, projects and service tokens (system admins), a
//! project's members (its admins), and one's own password (everyone). Every change is audited in
//! the same transaction that makes it.

use crate::account::Role;
use crate::error::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRow {
    pub name: String,
    pub source: crate::account::UserSource,
    pub is_system_admin: bool,
    pub is_active: bool,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectRow {
    pub name: String,
    pub rules: i64,
    pub members: i64,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRow {
    pub name: String,
    /// What it may do, e.g. `decisions, rules:write (projects shop)`.
    pub scopes: String,
    /// Made before tokens had scopes, so it kept all of them.
    pub migrated_full_access: bool,
    pub created_by: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

/// The tokens page: the list, and a token just created (shown this once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokensView {
    pub tokens: Vec<TokenRow>,
    pub created: Option<CreatedToken>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedToken {
    pub name: String,
    pub secret: String,
}

/// A project's Members tab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersView {
    pub project: String,
    pub members: Vec<Member>,
    /// Whether the signed-in user may add, change and remove members (project admins, system admins).
    pub can_manage: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub role: Role,
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use crate::error::AppError;
    use crate::principal::Principal;

    /// The session key of a token created but not yet shown.
    pub const CREATED_TOKEN: &str = "created_token";

    /// The signed-in system administrator (to read what only they may; changes are checked by
    /// the store itself).
    pub async fn require_admin() -> Result<Principal, AppError> {
        let me = crate::auth::ssr::principal().await?;
        me.may_administer().map_err(|denied| AppError::Forbidden(denied.0))?;
        Ok(me)
    }

    pub fn invalid(field: &str, message: String) -> AppError {
        AppError::Invalid(format!("{field}: {message}"))
    }
}

/// Runs a mutating server function: its errors get their status, its success sends a plain form
/// back to `back`.
#[cfg(feature = "ssr")]
async fn mutate(back: &str, change: impl std::future::Future<Output = Result<(), AppError>>) -> Result<(), AppError> {
    crate::auth::ssr::answered(change.await)?;
    leptos_axum::redirect(back);
    Ok(())
}

#[server(prefix = "/portal", endpoint = "admin_users")]
pub async fn admin_users() -> Result<Vec<UserRow>, AppError> {
    let pool = crate::auth::ssr::state()?.pool.clone();
    crate::auth::ssr::answered(
        async {
            ssr::require_admin().await?;
            Ok(crate::store::users(&pool)
                .await?
                .into_iter()
                .map(|u| UserRow {
                    name: u.name,
                    source: u.source,
                    is_system_admin: u.is_system_admin,
                    is_active: u.is_active,
                    created_at: crate::shown_time(u.created_at),
                })
                .collect())
        }
        .await,
    )
}

/// Creates a user with an initial password. `system_admin` is a checkbox (`on` when ticked).
#[server(prefix = "/portal", endpoint = "create_user")]
pub async fn create_user(name: String, password: String, system_admin: Option<String>) -> Result<(), AppError> {
    use crate::account::{NewPassword, UserName};
    let pool = crate::auth::ssr::state()?.pool.clone();
    mutate("/admin/users", async {
        // Asked before a password hash is spent on it.
        let me = ssr::require_admin().await?;
        let name = UserName::parse(name.trim()).map_err(|e| ssr::invalid("name", e))?;
        let password = NewPassword::parse(&password).map_err(|e| ssr::invalid("password", e))?;
        let hash = crate::password::hash_password(password).await?;
        crate::store::create_user(&pool, &me, &name, &hash, system_admin.is_some()).await?;
        Ok(())
    })
    .await
}

/// Sets a user's password; every session they have ends (except the admin's own, if it is theirs).
#[server(prefix = "/portal", endpoint = "reset_password")]
pub async fn reset_password(name: String, password: String) -> Result<(), AppError> {
    use crate::account::{NewPassword, UserName};
    let pool = crate::auth::ssr::state()?.pool.clone();
    mutate("/admin/users", async {
        let me = ssr::require_admin().await?;
        let name = UserName::parse(&name).map_err(|e| ssr::invalid("name", e))?;
        let password = NewPassword::parse(&password).map_err(|e| ssr::invalid("new password", e))?;
        let hash = crate::password::hash_password(password).await?;
        let epoch = crate::store::set_password(&pool, &me, &name, &hash).await?;
        if me.user().is_some_and(|user| user.name == name.as_str()) {
            keep_this_session(epoch).await?;
        }
        Ok(())
    })
    .await
}

/// Keeps the current session alive across a password change (every other one ends).
#[cfg(feature = "ssr")]
async fn keep_this_session(epoch: i32) -> Result<(), AppError> {
    let session = crate::auth::ssr::session().await?;
    session.insert(crate::auth::ssr::EPOCH, epoch).await.map_err(AppError::internal)
}

/// Deactivates a user (their sessions stop working at once; they cannot log in) or reactivates one.
#[server(prefix = "/portal", endpoint = "set_user_active")]
pub async fn set_user_active(name: String, active: bool) -> Result<(), AppError> {
    use crate::account::UserName;
    let pool = crate::auth::ssr::state()?.pool.clone();
    mutate("/admin/users", async {
        let me = crate::auth::ssr::principal().await?;
        let name = UserName::parse(&name).map_err(|e| ssr::invalid("name", e))?;
        Ok(crate::store::set_user_active(&pool, &me, &name, active).await?)
    })
    .await
}

#[server(prefix = "/portal", endpoint = "admin_projects")]
pub async fn admin_projects() -> Result<Vec<ProjectRow>, AppError> {
    let pool = crate::auth::ssr::state()?.pool.clone();
    crate::auth::ssr::answered(
        async {
            ssr::require_admin().await?;
            Ok(crate::store::projects(&pool)
                .await?
                .into_iter()
                .map(|p| ProjectRow {
                    name: p.name,
                    rules: p.rules,
                    members: p.members,
                    created_at: crate::shown_time(p.created_at),
                })
                .collect())
        }
        .await,
    )
}

#[server(prefix = "/portal", endpoint = "create_project")]
pub async fn create_project(name: String) -> Result<(), AppError> {
    use crate::policy::ProjectName;
    let pool = crate::auth::ssr::state()?.pool.clone();
    mutate("/admin/projects", async {
        let me = crate::auth::ssr::principal().await?;
        let name = ProjectName::parse(name.trim()).map_err(|e| ssr::invalid("name", e.to_string()))?;
        crate::store::create_project(&pool, &me, &name).await?;
        Ok(())
    })
    .await
}

/// Deletes a project; refused while it has rules, saying so.
#[server(prefix = "/portal", endpoint = "delete_project")]
pub async fn delete_project(name: String) -> Result<(), AppError> {
    use crate::policy::ProjectName;
    let pool = crate::auth::ssr::state()?.pool.clone();
    mutate("/admin/projects", async {
        let me = crate::auth::ssr::principal().await?;
        let name = ProjectName::parse(&name).map_err(|e| ssr::invalid("name", e.to_string()))?;
        Ok(crate::store::delete_project(&pool, &me, &name).await?)
    })
    .await
}

/// The service tokens, and the one just created if this is the first look since.
#[server(prefix = "/portal", endpoint = "admin_tokens")]
pub async fn admin_tokens() -> Result<TokensView, AppError> {
    let pool = crate::auth::ssr::state()?.pool.clone();
    crate::auth::ssr::answered(
        async {
            ssr::require_admin().await?;
            let session = crate::auth::ssr::session().await?;
            let created: Option<CreatedToken> = session.remove(ssr::CREATED_TOKEN).await.map_err(AppError::internal)?;
            let tokens = crate::store::tokens(&pool)
                .await?
                .into_iter()
                .map(|t| TokenRow {
                    scopes: t.grant.describe(),
                    migrated_full_access: t.migrated_full_access,
                    name: t.name,
                    created_by: t.created_by,
                    created_at: crate::shown_time(t.created_at),
                    last_used_at: t.last_used_at.map(crate::shown_time),
                    revoked_at: t.revoked_at.map(crate::shown_time),
                })
                .collect();
            Ok(TokensView { tokens, created })
        }
        .await,
    )
}

/// Creates a token. Its secret is kept in the session until the tokens page shows it, once
/// (so it is never in a URL, and the page works without JavaScript).
/// Scopes come as checkboxes (`rules_read=on`), projects as a comma list, so the form works
/// without JavaScript; no scope ticked means decisions only.
#[server(prefix = "/portal", endpoint = "create_token")]
pub async fn create_token(
    name: String,
    #[server(default)] decisions: Option<String>,
    #[server(default)] rules_read: Option<String>,
    #[server(default)] rules_write: Option<String>,
    #[server(default)] events: Option<String>,
    #[server(default)] audit_read: Option<String>,
    #[server(default)] projects: Option<String>,
) -> Result<(), AppError> {
    use crate::account::{TokenGrant, TokenName, TokenScope, TokenSecret};
    let pool = crate::auth::ssr::state()?.pool.clone();
    mutate("/admin/tokens", async {
        let me = crate::auth::ssr::principal().await?;
        let name = TokenName::parse(name.trim()).map_err(|e| ssr::invalid("name", e))?;
        let scopes: Vec<&str> = [
            (decisions, TokenScope::Decisions),
            (rules_read, TokenScope::RulesRead),
            (rules_write, TokenScope::RulesWrite),
            (events, TokenScope::Events),
            (audit_read, TokenScope::AuditRead),
        ]
        .into_iter()
        .filter(|(ticked, _)| ticked.is_some())
        .map(|(_, scope)| scope.as_str())
        .collect();
        let projects = projects.unwrap_or_default();
        let projects: Vec<&str> = projects.split(',').collect();
        let grant = TokenGrant::parse(&scopes, &projects).map_err(AppError::Invalid)?;
        let secret = TokenSecret::generate();
        crate::store::create_token(&pool, &me, &name, &secret, &grant).await?;
        let session = crate::auth::ssr::session().await?;
        let created = CreatedToken { name: name.as_str().to_owned(), secret: secret.expose().to_owned() };
        session.insert(ssr::CREATED_TOKEN, created).await.map_err(AppError::internal)
    })
    .await
}

/// Revokes a token: every tagward process refuses it within moments.
#[server(prefix = "/portal", endpoint = "revoke_token")]
pub async fn revoke_token(name: String) -> Result<(), AppError> {
    use crate::account::TokenName;
    let pool = crate::auth::ssr::state()?.pool.clone();
    mutate("/admin/tokens", async {
        let me = crate::auth::ssr::principal().await?;
        let name = TokenName::parse(&name).map_err(|e| ssr::invalid("name", e))?;
        Ok(crate::store::revoke_token(&pool, &me, &name).await?)
    })
    .await
}

/// One group → role mapping, as Administration lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMappingRow {
    pub id: i64,
    pub group: String,
    /// e.g. `developer of project `shop``
    pub grants: String,
}

/// Administration's Sign-in groups section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMappingsView {
    pub mappings: Vec<GroupMappingRow>,
    /// The identity provider's name, when one is configured (mappings do nothing without one).
    pub provider: Option<String>,
    /// The projects a mapping can name.
    pub projects: Vec<String>,
}

#[server(prefix = "/portal", endpoint = "admin_group_mappings")]
pub async fn admin_group_mappings() -> Result<GroupMappingsView, AppError> {
    let state = crate::auth::ssr::state()?;
    crate::auth::ssr::answered(
        async {
            ssr::require_admin().await?;
            let (mappings, projects) =
                tokio::try_join!(crate::store::group_mappings(&state.pool), crate::store::projects(&state.pool))?;
            Ok(GroupMappingsView {
                mappings: mappings
                    .into_iter()
                    .map(|m| GroupMappingRow { id: m.id, group: m.group.to_string(), grants: m.grant.to_string() })
                    .collect(),
                provider: state.sign_in.provider_name.clone(),
                projects: projects.into_iter().map(|p| p.name).collect(),
            })
        }
        .await,
    )
}

/// Members of `group` get `role` (`system-admin`, or a role in `project`) from their next sign-in.
#[server(prefix = "/portal", endpoint = "add_group_mapping")]
pub async fn add_group_mapping(group: String, role: String, project: Option<String>) -> Result<(), AppError> {
    use crate::identity::{GroupGrant, GroupName};
    let pool = crate::auth::ssr::state()?.pool.clone();
    mutate("/admin/groups", async {
        let me = crate::auth::ssr::principal().await?;
        let group = GroupName::parse(group.trim()).map_err(|e| ssr::invalid("group", e))?;
        let grant = GroupGrant::parse(project.as_deref(), &role).map_err(|e| ssr::invalid("role", e))?;
        crate::store::add_group_mapping(&pool, &me, &group, &grant).await?;
        Ok(())
    })
    .await
}

#[server(prefix = "/portal", endpoint = "remove_group_mapping")]
pub async fn remove_group_mapping(id: i64) -> Result<(), AppError> {
    let pool = crate::auth::ssr::state()?.pool.clone();
    mutate("/admin/groups", async {
        let me = crate::auth::ssr::principal().await?;
        Ok(crate::store::remove_group_mapping(&pool, &me, id).await?)
    })
    .await
}

/// The members of a project the signed-in user may see.
#[server(prefix = "/portal", endpoint = "members")]
pub async fn list_members(project: String) -> Result<MembersView, AppError> {
    let pool = crate::auth::ssr::state()?.pool.clone();
    crate::auth::ssr::answered(
        async {
            let access = crate::projects::ssr::visible(&project).await?;
            let rows = crate::store::members(&pool, access.id).await?;
            Ok(MembersView {
                project: access.name,
                members: rows.into_iter().map(|(name, role)| Member { name, role }).collect(),
                can_manage: access.can_manage_members,
            })
        }
        .await,
    )
}

/// Adds a member or changes their role (`role` is admin, maintainer, developer or guest), or
/// removes them (`role` is `remove`). A project keeps at least one admin.
#[server(prefix = "/portal", endpoint = "set_member")]
pub async fn set_member(project: String, user: String, role: String) -> Result<(), AppError> {
    use crate::account::UserName;
    let pool = crate::auth::ssr::state()?.pool.clone();
    let back = format!("/projects/{project}/members");
    mutate(&back, async {
        use crate::policy::ProjectName;
        let me = crate::auth::ssr::principal().await?;
        // Out of sight and does not exist are both 404, before anything else is said.
        let access = crate::projects::ssr::visible(&project).await?;
        // Asked before the input is looked at (the store asks again, under its lock).
        me.may_manage_members(access.role).map_err(|denied| AppError::Forbidden(denied.0))?;
        let project = ProjectName::parse(&access.name).map_err(|e| ssr::invalid("project", e.to_string()))?;
        let user = UserName::parse(user.trim()).map_err(|e| ssr::invalid("user", e))?;
        let role = match role.as_str() {
            "remove" => None,
            role => Some(Role::parse(role).map_err(|e| ssr::invalid("role", e))?),
        };
        Ok(crate::store::change_member(&pool, &me, &project, &user, role).await?)
    })
    .await
}

/// Changes the signed-in user's own password: the current one is required, and every other
/// session of theirs ends.
#[server(prefix = "/portal", endpoint = "change_password")]
pub async fn change_password(current: String, new: String, confirm: String) -> Result<(), AppError> {
    use crate::account::{NewPassword, UserName};
    let state = crate::auth::ssr::state()?;
    let pool = state.pool.clone();
    mutate("/account?changed=1", async {
        let me = crate::auth::ssr::require_user().await?;
        let address = crate::auth::ssr::client_address().await?;
        // Counted like a login: a stolen session must not become a password oracle.
        if state.login_throttle.check_credentials(&pool, None, &me.name, current, address).await?.is_none() {
            return Err(AppError::Invalid("current password: it is not your current password".into()));
        }
        if new != confirm {
            return Err(AppError::Invalid("confirm new password: it differs from the new password".into()));
        }
        let password = NewPassword::parse(&new).map_err(|e| ssr::invalid("new password", e))?;
        let hash = crate::password::hash_password(password).await?;
        let name = UserName::parse(&me.name).map_err(AppError::Invalid)?;
        let epoch = crate::store::set_password(&pool, &crate::principal::Principal::User(me), &name, &hash).await?;
        keep_this_session(epoch).await
    })
    .await
}

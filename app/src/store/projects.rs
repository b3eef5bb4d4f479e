//! Projects and their members, and which of them a principal may see.

use super::audit::AuditEntry;
use super::AuditKind;
use super::{on_constraint, StoreError};
use crate::account::{ProjectAccess, Role, UserName};
use crate::policy::ProjectName;
use crate::principal::Principal;
use sqlx::{PgExecutor, PgPool};

/// A project as the administration page lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProjectListing {
    pub name: String,
    pub rules: i64,
    pub members: i64,
    pub created_at: time::OffsetDateTime,
}

pub async fn projects(db: impl PgExecutor<'_>) -> Result<Vec<ProjectListing>, StoreError> {
    Ok(sqlx::query_as(
        r"select p.name, p.created_at,
                 (select count(*) from immutability_rules r where r.project_id = p.id) as rules,
                 (select count(*) from project_members m where m.project_id = p.id) as members
          from projects p order by p.name",
    )
    .fetch_all(db)
    .await?)
}

pub async fn create_project(pool: &PgPool, by: &Principal, name: &ProjectName) -> Result<i64, StoreError> {
    by.may_administer()?;
    let mut tx = pool.begin().await?;
    let (id,): (i64,) = sqlx::query_as(r"insert into projects (name) values ($1) returning id")
        .bind(name.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(on_constraint("projects_name_key", "name", || format!("project `{name}` already exists")))?;
    AuditEntry::new(AuditKind::ProjectCreate)
        .project(id)
        .after(serde_json::json!({ "project": name.as_str() }))
        .record(&mut *tx, by)
        .await?;
    tx.commit().await?;
    Ok(id)
}

/// Deletes a project without rules (its rules must be deleted first, deliberately, since deleting
/// them makes tags mutable).
pub async fn delete_project(pool: &PgPool, by: &Principal, name: &ProjectName) -> Result<(), StoreError> {
    by.may_administer()?;
    let mut tx = pool.begin().await?;
    let row: Option<(i64, i64)> = sqlx::query_as(
        r"select p.id, (select count(*) from immutability_rules r where r.project_id = p.id)
          from projects p where p.name = $1 for update",
    )
    .bind(name.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let (id, rules) = row.ok_or_else(|| StoreError::NotFound(format!("project `{name}` does not exist")))?;
    if rules > 0 {
        return Err(StoreError::Refused(format!(
            "project `{name}` still has {rules} tag immutability rule(s); delete them first (that makes its tags mutable, so it is not done for you)"
        )));
    }
    sqlx::query(r"delete from projects where id = $1").bind(id).execute(&mut *tx).await?;
    // The project is gone, so the entry names it rather than pointing at it.
    AuditEntry::new(AuditKind::ProjectDelete)
        .before(serde_json::json!({ "project": name.as_str() }))
        .record(&mut *tx, by)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Gives `user` the role `role` in `project`, or removes them (`None`): the one membership
/// operation of every surface. The project row is locked first, so the rule that a project with
/// admins keeps at least one holds under concurrent changes.
pub async fn change_member(
    pool: &PgPool,
    by: &Principal,
    project: &ProjectName,
    user: &UserName,
    role: Option<Role>,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    let row: Option<(i64,)> = sqlx::query_as(r"select id from projects where name = $1 for update")
        .bind(project.as_str())
        .fetch_optional(&mut *tx)
        .await?;
    let not_found = || StoreError::NotFound(format!("project `{project}` does not exist"));
    let (project_id,) = row.ok_or_else(not_found)?;
    let own_role = role_of(&mut *tx, by, project_id).await?;
    if !by.may_see(project.as_str(), own_role) {
        return Err(not_found());
    }
    by.may_manage_members(own_role)?;
    let user_id: Option<(i64,)> =
        sqlx::query_as(r"select id from users where name = $1").bind(user.as_str()).fetch_optional(&mut *tx).await?;
    let (user_id,) = user_id.ok_or_else(|| StoreError::NotFound(format!("user `{user}` does not exist")))?;
    let before: Option<(String,)> =
        sqlx::query_as(r"select role from project_members where project_id = $1 and user_id = $2")
            .bind(project_id)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
    let before = before.and_then(|(role,)| Role::parse(&role).ok());
    if before == Some(Role::Admin) && role != Some(Role::Admin) {
        let (admins,): (i64,) =
            sqlx::query_as(r"select count(*) from project_members where project_id = $1 and role = 'admin'")
                .bind(project_id)
                .fetch_one(&mut *tx)
                .await?;
        if admins <= 1 {
            return Err(StoreError::Refused(format!(
                "`{user}` is the last admin of project `{project}`; make another member admin first"
            )));
        }
    }
    let kind = match (before, role) {
        (None, None) => return Err(StoreError::NotFound(format!("`{user}` is not a member of project `{project}`"))),
        (None, Some(_)) => AuditKind::MemberAdd,
        (Some(_), None) => AuditKind::MemberRemove,
        (Some(_), Some(_)) => AuditKind::MemberRole,
    };
    match role {
        Some(role) => {
            sqlx::query(
                r"insert into project_members (project_id, user_id, role) values ($1, $2, $3)
                  on conflict (project_id, user_id) do update set role = excluded.role",
            )
            .bind(project_id)
            .bind(user_id)
            .bind(role.as_str())
            .execute(&mut *tx)
            .await?;
        }
        None => {
            sqlx::query(r"delete from project_members where project_id = $1 and user_id = $2")
                .bind(project_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
    }
    let snapshot = |role: Role| serde_json::json!({ "user": user.as_str(), "role": role });
    AuditEntry {
        project_id: Some(project_id),
        kind,
        rule_id: None,
        before: before.map(snapshot),
        after: role.map(snapshot),
    }
    .record(&mut *tx, by)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// `by`'s role in the project, if `by` is a person and a member.
pub(super) async fn role_of(
    db: impl PgExecutor<'_>,
    by: &Principal,
    project_id: i64,
) -> Result<Option<Role>, StoreError> {
    let Some(user) = by.user() else { return Ok(None) };
    let row: Option<(String,)> =
        sqlx::query_as(r"select role from project_members where project_id = $1 and user_id = $2")
            .bind(project_id)
            .bind(user.id)
            .fetch_optional(db)
            .await?;
    Ok(row.and_then(|(role,)| Role::parse(&role).ok()))
}

/// The projects `by` may see: a person's memberships (every project for a system administrator),
/// a token's granted projects, every project for the operator.
pub async fn visible_projects(db: impl PgExecutor<'_>, by: &Principal) -> Result<Vec<ProjectAccess>, StoreError> {
    let rows: Vec<(i64, String, Option<String>)> = sqlx::query_as(
        r"select p.id, p.name, m.role
          from projects p
          left join project_members m on m.project_id = p.id and m.user_id = $1
          order by p.name",
    )
    .bind(by.user().map(|user| user.id))
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().filter_map(|(id, name, role)| access(by, id, name, role)).collect())
}

/// One project as `by` may see it; `None` when it does not exist or is out of sight, which
/// callers answer alike (404), so that project names do not leak.
pub async fn visible_project(
    db: impl PgExecutor<'_>,
    by: &Principal,
    project: &str,
) -> Result<Option<ProjectAccess>, StoreError> {
    let row: Option<(i64, String, Option<String>)> = sqlx::query_as(
        r"select p.id, p.name, m.role
          from projects p
          left join project_members m on m.project_id = p.id and m.user_id = $1
          where p.name = $2",
    )
    .bind(by.user().map(|user| user.id))
    .bind(project)
    .fetch_optional(db)
    .await?;
    Ok(row.and_then(|(id, name, role)| access(by, id, name, role)))
}

fn access(by: &Principal, id: i64, name: String, role: Option<String>) -> Option<ProjectAccess> {
    let role = role.and_then(|role| Role::parse(&role).ok());
    by.may_see(&name, role).then(|| ProjectAccess {
        can_manage_rules: by.may_change_rules(&name, role).is_ok(),
        can_manage_members: by.may_manage_members(role).is_ok(),
        id,
        name,
        role,
    })
}

/// A project's members and their roles, admins first.
pub async fn members(db: impl PgExecutor<'_>, project_id: i64) -> Result<Vec<(String, Role)>, StoreError> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        r"select u.name, m.role from project_members m join users u on u.id = m.user_id
          where m.project_id = $1
          order by array_position(array['admin','maintainer','developer','guest'], m.role), u.name",
    )
    .bind(project_id)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().filter_map(|(name, role)| Role::parse(&role).ok().map(|role| (name, role))).collect())
}

/// The name of a project by id.
pub async fn project_name(db: impl PgExecutor<'_>, id: i64) -> Result<Option<String>, StoreError> {
    let row: Option<(String,)> =
        sqlx::query_as(r"select name from projects where id = $1").bind(id).fetch_optional(db).await?;
    Ok(row.map(|(name,)| name))
}

/// The id of a project by name.
pub async fn project_id(db: impl PgExecutor<'_>, project: &ProjectName) -> Result<i64, StoreError> {
    let row: Option<(i64,)> =
        sqlx::query_as(r"select id from projects where name = $1").bind(project.as_str()).fetch_optional(db).await?;
    row.map(|(id,)| id).ok_or_else(|| StoreError::NotFound(format!("project `{project}` does not exist")))
}

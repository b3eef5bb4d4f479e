//! Signing in through the identity provider: the group → role mappings, the sign-in that creates
//! a provider's user and applies their groups, and the flows between leaving for the provider and
//! coming back.

use super::audit::AuditEntry;
use super::{on_constraint, AuditKind, StoreError};
use crate::account::{Role, User};
use crate::identity::{granted_roles, GroupGrant, GroupMapping, GroupName, ProviderIdentity};
use crate::policy::ProjectName;
use crate::principal::Principal;
use sqlx::{PgExecutor, PgPool};

/// The mappings, by group.
pub async fn group_mappings(db: impl PgExecutor<'_>) -> Result<Vec<GroupMapping>, StoreError> {
    let rows: Vec<(i64, String, Option<String>, String)> = sqlx::query_as(
        r"select m.id, m.group_name, p.name, m.role
          from group_role_mappings m left join projects p on p.id = m.project_id
          order by m.group_name, p.name nulls first",
    )
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|(id, group, project, role)| {
            let group = GroupName::parse(&group).map_err(anyhow::Error::msg)?;
            let grant = GroupGrant::parse(project.as_deref(), &role).map_err(anyhow::Error::msg)?;
            Ok(GroupMapping { id, group, grant })
        })
        .collect()
}

/// Members of `group` get `grant` from their next sign-in on. System administrators only.
pub async fn add_group_mapping(
    pool: &PgPool,
    by: &Principal,
    group: &GroupName,
    grant: &GroupGrant,
) -> Result<i64, StoreError> {
    by.may_administer()?;
    let mut tx = pool.begin().await?;
    let project_id = match grant {
        GroupGrant::SystemAdmin => None,
        GroupGrant::Project { project, .. } => Some(super::project_id(&mut *tx, project).await?),
    };
    let (id,): (i64,) = sqlx::query_as(
        r"insert into group_role_mappings (group_name, project_id, role, created_by) values ($1, $2, $3, $4)
          returning id",
    )
    .bind(group.as_str())
    .bind(project_id)
    .bind(grant.role_str())
    .bind(by.actor())
    .fetch_one(&mut *tx)
    .await
    .map_err(on_constraint("group_role_mappings_key", "group", || match grant {
        GroupGrant::SystemAdmin => format!("group `{group}` already grants system administrator"),
        GroupGrant::Project { project, .. } => {
            format!("group `{group}` already grants a role in project `{project}`; remove that mapping first")
        }
    }))?;
    let mut entry = AuditEntry::new(AuditKind::GroupMappingAdd).after(mapping_snapshot(group, grant));
    if let Some(project_id) = project_id {
        entry = entry.project(project_id);
    }
    entry.record(&mut *tx, by).await?;
    tx.commit().await?;
    Ok(id)
}

/// Removes mapping `id`; its members lose what it granted at their next sign-in.
pub async fn remove_group_mapping(pool: &PgPool, by: &Principal, id: i64) -> Result<(), StoreError> {
    by.may_administer()?;
    let mut tx = pool.begin().await?;
    let row: Option<(String, Option<i64>, Option<String>, String)> = sqlx::query_as(
        r"delete from group_role_mappings m where m.id = $1
          returning m.group_name, m.project_id, (select name from projects where id = m.project_id), m.role",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let (group, project_id, project, role) =
        row.ok_or_else(|| StoreError::NotFound(format!("group mapping `{id}` does not exist")))?;
    let group = GroupName::parse(&group).map_err(anyhow::Error::msg)?;
    let grant = GroupGrant::parse(project.as_deref(), &role).map_err(anyhow::Error::msg)?;
    let mut entry = AuditEntry::new(AuditKind::GroupMappingRemove).before(mapping_snapshot(&group, &grant));
    if let Some(project_id) = project_id {
        entry = entry.project(project_id);
    }
    entry.record(&mut *tx, by).await?;
    tx.commit().await?;
    Ok(())
}

fn mapping_snapshot(group: &GroupName, grant: &GroupGrant) -> serde_json::Value {
    match grant {
        GroupGrant::SystemAdmin => serde_json::json!({ "group": group.as_str(), "role": "system-admin" }),
        GroupGrant::Project { project, role } => {
            serde_json::json!({ "group": group.as_str(), "project": project.as_str(), "role": role })
        }
    }
}

/// Who made the changes a sign-in makes from the provider's groups, in the audit trail.
pub fn provider_groups_actor() -> Principal {
    Principal::Tagward(crate::principal::Service::ProviderGroups)
}

/// A sign-in through the provider, its ID token verified (or with a password the directory
/// verified): the user `identity` names (created at
/// their first sign-in, under the name the provider gives), with the roles their groups grant now
/// applied, and their session epoch. Roles granted by hand are left alone; roles granted by groups
/// the user is no longer in are taken away. A deactivated user stays out whatever the provider says.
pub async fn sign_in_from_provider(pool: &PgPool, identity: &ProviderIdentity) -> Result<(User, i32), StoreError> {
    let actor = provider_groups_actor();
    let mut tx = pool.begin().await?;
    let known = find_or_create_provider_user(&mut tx, &actor, identity).await?;
    if !known.active {
        return Err(StoreError::Forbidden(format!("your tagward account `{}` is deactivated", known.name)));
    }
    // As the provider or directory has it now; an address no mail system takes is not kept.
    let email = identity.email.as_deref().filter(|email| email.len() <= 320);
    sqlx::query(r"update users set email = $2 where id = $1 and email is distinct from $2")
        .bind(known.id)
        .bind(email)
        .execute(&mut *tx)
        .await?;
    let mappings = group_mappings(&mut *tx).await?;
    let granted = granted_roles(&mappings, identity.groups.iter().map(String::as_str));
    let is_system_admin = apply_system_admin(&mut tx, &actor, &known, granted.system_admin).await?;
    apply_project_roles(&mut tx, &actor, &known, granted.projects).await?;
    tx.commit().await?;
    Ok((User { id: known.id, name: known.name, is_system_admin, from_provider: true }, known.epoch))
}

/// A provider's (or the directory's) user as a sign-in finds them, locked for its changes.
struct ProviderUser {
    id: i64,
    name: String,
    was_admin: bool,
    admin_from_groups: bool,
    active: bool,
    epoch: i32,
}

/// The user `identity` names, created (under the name it gives, audited) at their first sign-in.
async fn find_or_create_provider_user(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    actor: &Principal,
    identity: &ProviderIdentity,
) -> Result<ProviderUser, StoreError> {
    let found: Option<(i64, String, bool, bool, bool, i32)> = sqlx::query_as(
        r"select id, name, is_system_admin, system_admin_from_groups, is_active, session_epoch
          from users where provider_issuer = $1 and provider_subject = $2 for update",
    )
    .bind(&identity.issuer)
    .bind(&identity.subject)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some((id, name, was_admin, admin_from_groups, active, epoch)) = found {
        return Ok(ProviderUser { id, name, was_admin, admin_from_groups, active, epoch });
    }
    let (id,): (i64,) =
        sqlx::query_as(r"insert into users (name, provider_issuer, provider_subject) values ($1, $2, $3) returning id")
            .bind(identity.name.as_str())
            .bind(&identity.issuer)
            .bind(&identity.subject)
            .fetch_one(&mut **tx)
            .await
            .map_err(on_constraint("users_name_key", "name", || {
                format!(
                    "the identity provider names you `{}`, which is already another tagward user's name; \
                     ask a system administrator",
                    identity.name
                )
            }))?;
    AuditEntry::new(AuditKind::UserCreate)
        .after(
            serde_json::json!({ "user": identity.name.as_str(), "system_admin": false, "provider": identity.issuer }),
        )
        .record(&mut **tx, actor)
        .await?;
    let name = identity.name.as_str().to_owned();
    Ok(ProviderUser { id, name, was_admin: false, admin_from_groups: false, active: true, epoch: 0 })
}

/// System administrator from groups (`granted`), unless it was granted by hand (then left alone);
/// whether the user is one now.
async fn apply_system_admin(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    actor: &Principal,
    user: &ProviderUser,
    granted: bool,
) -> Result<bool, StoreError> {
    let granted_by_hand = user.was_admin && !user.admin_from_groups;
    if !granted_by_hand && granted != user.was_admin {
        sqlx::query(r"update users set is_system_admin = $2, system_admin_from_groups = $2 where id = $1")
            .bind(user.id)
            .bind(granted)
            .execute(&mut **tx)
            .await?;
        let snapshot =
            |admin: bool| serde_json::json!({ "user": user.name, "system_admin": admin, "from_groups": true });
        AuditEntry::new(AuditKind::UserSystemAdmin)
            .before(snapshot(user.was_admin))
            .after(snapshot(granted))
            .record(&mut **tx, actor)
            .await?;
    }
    Ok(granted_by_hand || granted)
}

/// The project roles groups grant (`wanted`, each project's highest), applied: memberships groups
/// gave are changed or taken away, new ones added; memberships given by hand are left alone.
async fn apply_project_roles(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    actor: &Principal,
    user: &ProviderUser,
    mut wanted: std::collections::BTreeMap<ProjectName, Role>,
) -> Result<(), StoreError> {
    let held: Vec<(i64, String, String, bool)> = sqlx::query_as(
        r"select m.project_id, p.name, m.role, m.from_groups
          from project_members m join projects p on p.id = m.project_id
          where m.user_id = $1 for update of m",
    )
    .bind(user.id)
    .fetch_all(&mut **tx)
    .await?;
    for (project_id, project, role, from_groups) in held {
        let wanted_role = ProjectName::parse(&project).ok().and_then(|p| wanted.remove(&p));
        let role = Role::parse(&role).map_err(anyhow::Error::msg)?;
        if !from_groups || wanted_role == Some(role) {
            continue;
        }
        set_group_membership(tx, actor, project_id, user.id, &user.name, Some(role), wanted_role).await?;
    }
    // The projects groups grant a role in that the user is not yet a member of, in one look-up.
    let names: Vec<&str> = wanted.keys().map(ProjectName::as_str).collect();
    let new_projects: Vec<(i64, String)> =
        sqlx::query_as(r"select id, name from projects where name = any($1) order by name")
            .bind(&names)
            .fetch_all(&mut **tx)
            .await?;
    for (project_id, project) in new_projects {
        if let Some(role) = ProjectName::parse(&project).ok().and_then(|project| wanted.get(&project).copied()) {
            set_group_membership(tx, actor, project_id, user.id, &user.name, None, Some(role)).await?;
        }
    }
    Ok(())
}

/// Changes a membership that groups grant (`before` → `after`), audited in the project's trail.
async fn set_group_membership(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    actor: &Principal,
    project_id: i64,
    user_id: i64,
    name: &str,
    before: Option<Role>,
    after: Option<Role>,
) -> Result<(), StoreError> {
    match after {
        Some(role) => {
            sqlx::query(
                r"insert into project_members (project_id, user_id, role, from_groups) values ($1, $2, $3, true)
                  on conflict (project_id, user_id) do update set role = excluded.role",
            )
            .bind(project_id)
            .bind(user_id)
            .bind(role.as_str())
            .execute(&mut **tx)
            .await?;
        }
        None => {
            sqlx::query(r"delete from project_members where project_id = $1 and user_id = $2")
                .bind(project_id)
                .bind(user_id)
                .execute(&mut **tx)
                .await?;
        }
    }
    let kind = match (before, after) {
        (None, _) => AuditKind::MemberAdd,
        (Some(_), None) => AuditKind::MemberRemove,
        (Some(_), Some(_)) => AuditKind::MemberRole,
    };
    let snapshot = |role: Role| serde_json::json!({ "user": name, "role": role, "from_groups": true });
    AuditEntry {
        project_id: Some(project_id),
        kind,
        rule_id: None,
        before: before.map(snapshot),
        after: after.map(snapshot),
    }
    .record(&mut **tx, actor)
    .await
}

/// A sign-in under way: what was sent to the provider, kept until the browser comes back.
#[derive(Debug, Clone)]
pub struct SignInFlow {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub next: String,
}

/// How long a browser may take at the provider.
pub const SIGN_IN_FLOW_MINUTES: i32 = 10;

/// Keeps `flow` under the SHA-256 of the browser's secret (and forgets flows left unfinished).
pub async fn save_sign_in_flow(pool: &PgPool, secret_sha256: &[u8; 32], flow: &SignInFlow) -> Result<(), StoreError> {
    sqlx::query(r"delete from sign_in_flows where created_at < now() - make_interval(mins => $1)")
        .bind(SIGN_IN_FLOW_MINUTES)
        .execute(pool)
        .await?;
    sqlx::query(
        r"insert into sign_in_flows (secret_sha256, state, nonce, pkce_verifier, next) values ($1, $2, $3, $4, $5)",
    )
    .bind(&secret_sha256[..])
    .bind(&flow.state)
    .bind(&flow.nonce)
    .bind(&flow.pkce_verifier)
    .bind(&flow.next)
    .execute(pool)
    .await?;
    Ok(())
}

/// Takes the flow of the browser's secret: at most once, and only within its time.
pub async fn take_sign_in_flow(
    db: impl PgExecutor<'_>,
    secret_sha256: &[u8; 32],
) -> Result<Option<SignInFlow>, StoreError> {
    // Deleted whether or not it is still fresh: a flow is worth one try at most.
    let row: Option<(String, String, String, String, bool)> = sqlx::query_as(
        r"delete from sign_in_flows where secret_sha256 = $1
          returning state, nonce, pkce_verifier, next, created_at > now() - make_interval(mins => $2) as fresh",
    )
    .bind(&secret_sha256[..])
    .bind(SIGN_IN_FLOW_MINUTES)
    .fetch_optional(db)
    .await?;
    Ok(row.filter(|(.., fresh)| *fresh).map(|(state, nonce, pkce_verifier, next, _)| SignInFlow {
        state,
        nonce,
        pkce_verifier,
        next,
    }))
}

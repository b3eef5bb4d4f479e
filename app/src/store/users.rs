//! Users: creating them, their passwords, deactivation; the credentials check logins use.

use super::audit::AuditEntry;
use super::AuditKind;
use super::{on_constraint, StoreError};
use crate::account::{User, UserName};
use crate::password::{verify_password, PasswordHash};
use crate::principal::Principal;
use sqlx::{PgExecutor, PgPool};

/// Creates a user with a password hashed by [`crate::password::hash_password`].
pub async fn create_user(
    pool: &PgPool,
    by: &Principal,
    name: &UserName,
    hash: &PasswordHash,
    is_system_admin: bool,
) -> Result<User, StoreError> {
    by.may_administer()?;
    let mut tx = pool.begin().await?;
    let user = insert_user(&mut *tx, name, hash, is_system_admin).await?;
    AuditEntry::new(AuditKind::UserCreate)
        .after(serde_json::json!({ "user": name.as_str(), "system_admin": is_system_admin }))
        .record(&mut *tx, by)
        .await?;
    tx.commit().await?;
    Ok(user)
}

/// Creates the system administrator `name` if there are no users at all (a server's first start,
/// `--bootstrap-admin-password`); `None` when there are. Instances starting together over one
/// database agree: the users table is locked while it is counted.
pub async fn create_first_administrator(
    pool: &PgPool,
    name: &UserName,
    hash: &PasswordHash,
) -> Result<Option<User>, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("lock table users in share row exclusive mode").execute(&mut *tx).await?;
    if count_users(&mut *tx).await? > 0 {
        return Ok(None);
    }
    let user = insert_user(&mut *tx, name, hash, true).await?;
    AuditEntry::new(AuditKind::UserCreate)
        .after(serde_json::json!({ "user": name.as_str(), "system_admin": true }))
        .record(&mut *tx, &Principal::bootstrap())
        .await?;
    tx.commit().await?;
    Ok(Some(user))
}

async fn insert_user(
    db: impl PgExecutor<'_>,
    name: &UserName,
    hash: &PasswordHash,
    is_system_admin: bool,
) -> Result<User, StoreError> {
    let (id,): (i64,) =
        sqlx::query_as(r"insert into users (name, password_hash, is_system_admin) values ($1, $2, $3) returning id")
            .bind(name.as_str())
            .bind(&hash.0)
            .bind(is_system_admin)
            .fetch_one(db)
            .await
            .map_err(on_constraint("users_name_key", "name", || format!("user `{name}` already exists")))?;
    Ok(User { id, name: name.as_str().to_owned(), is_system_admin, from_provider: false })
}

/// The active user `name` and their session epoch, if `password` is theirs. An unknown name costs
/// the same argon2 verification (against a dummy hash), so timing does not tell names apart.
pub async fn check_credentials(
    db: impl PgExecutor<'_>,
    name: &str,
    password: String,
) -> Result<Option<(User, i32)>, StoreError> {
    let row: Option<(i64, String, bool, String, i32)> = sqlx::query_as(
        r"select id, name, is_system_admin, password_hash, session_epoch from users
          where name = $1 and is_active and password_hash is not null",
    )
    .bind(name)
    .fetch_optional(db)
    .await?;
    let (user, hash) = match row {
        Some((id, name, is_system_admin, hash, epoch)) => {
            (Some((User { id, name, is_system_admin, from_provider: false }, epoch)), Some(PasswordHash(hash)))
        }
        None => (None, None),
    };
    let verified = verify_password(hash, password).await?;
    Ok(user.filter(|_| verified))
}

/// Whether `name` is a user with a tagward password (active or not): they are checked against it,
/// never against the directory.
pub async fn has_password(db: impl PgExecutor<'_>, name: &str) -> Result<bool, StoreError> {
    let (found,): (bool,) =
        sqlx::query_as(r"select exists (select 1 from users where name = $1 and password_hash is not null)")
            .bind(name)
            .fetch_one(db)
            .await?;
    Ok(found)
}

/// The user behind a session and their session epoch, if they still exist and are active.
pub async fn active_user(db: impl PgExecutor<'_>, id: i64) -> Result<Option<(User, i32)>, StoreError> {
    let row: Option<(i64, String, bool, bool, i32)> = sqlx::query_as(
        r"select id, name, is_system_admin, provider_subject is not null, session_epoch
          from users where id = $1 and is_active",
    )
    .bind(id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|(id, name, is_system_admin, from_provider, epoch)| {
        (User { id, name, is_system_admin, from_provider }, epoch)
    }))
}

/// Sets `name`'s password: their own (the caller checked the current one), or anyone's for an
/// administrator. Every session made before ends (the epoch moves on); returns the new epoch, for
/// the one session that should live on.
pub async fn set_password(
    pool: &PgPool,
    by: &Principal,
    name: &UserName,
    hash: &PasswordHash,
) -> Result<i32, StoreError> {
    let own = by.user().is_some_and(|user| user.name == name.as_str());
    if !own {
        by.may_administer()?;
    }
    let mut tx = pool.begin().await?;
    let row: Option<(i32,)> = sqlx::query_as(
        r"update users set password_hash = $2, session_epoch = session_epoch + 1
          where name = $1 and provider_subject is null returning session_epoch",
    )
    .bind(name.as_str())
    .bind(&hash.0)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((epoch,)) = row else {
        let exists: Option<(i64,)> = sqlx::query_as(r"select id from users where name = $1")
            .bind(name.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        return Err(match exists {
            Some(_) => StoreError::Refused(format!(
                "`{name}` signs in through the identity provider and has no tagward password"
            )),
            None => StoreError::NotFound(format!("user `{name}` does not exist")),
        });
    };
    let kind = if own { AuditKind::UserPasswordChange } else { AuditKind::UserPasswordReset };
    AuditEntry::new(kind).after(serde_json::json!({ "user": name.as_str() })).record(&mut *tx, by).await?;
    tx.commit().await?;
    Ok(epoch)
}

/// Deactivates (their sessions stop working at once) or reactivates a user. Nobody deactivates
/// themselves: the last administrator could lock everyone out.
pub async fn set_user_active(pool: &PgPool, by: &Principal, name: &UserName, active: bool) -> Result<(), StoreError> {
    by.may_administer()?;
    if !active && by.user().is_some_and(|user| user.name == name.as_str()) {
        return Err(StoreError::Refused("you cannot deactivate yourself; ask another system administrator".into()));
    }
    let mut tx = pool.begin().await?;
    if !active {
        keep_an_administrator(&mut tx, name).await?;
    }
    let updated = sqlx::query(r"update users set is_active = $2 where name = $1")
        .bind(name.as_str())
        .bind(active)
        .execute(&mut *tx)
        .await?;
    if updated.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("user `{name}` does not exist")));
    }
    let kind = if active { AuditKind::UserActivate } else { AuditKind::UserDeactivate };
    AuditEntry::new(kind)
        .after(serde_json::json!({ "user": name.as_str(), "active": active }))
        .record(&mut *tx, by)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Notes that `user_id` signed in now (the login form, or through the identity provider).
pub async fn record_sign_in(db: impl PgExecutor<'_>, user_id: i64) -> Result<(), StoreError> {
    sqlx::query(r"update users set last_sign_in_at = now() where id = $1").bind(user_id).execute(db).await?;
    Ok(())
}

/// Refuses a change that would leave no active system administrator (nobody could administer
/// tagward from the portal any more). Called with the users table locked, in the change's
/// transaction, before the change.
async fn keep_an_administrator(tx: &mut sqlx::PgConnection, name: &UserName) -> Result<(), StoreError> {
    sqlx::query("lock table users in share row exclusive mode").execute(&mut *tx).await?;
    let (others,): (i64,) =
        sqlx::query_as(r"select count(*) from users where is_system_admin and is_active and name <> $1")
            .bind(name.as_str())
            .fetch_one(&mut *tx)
            .await?;
    let (is_one,): (bool,) =
        sqlx::query_as(r"select exists (select 1 from users where name = $1 and is_system_admin and is_active)")
            .bind(name.as_str())
            .fetch_one(&mut *tx)
            .await?;
    if is_one && others == 0 {
        return Err(StoreError::Refused(format!(
            "`{name}` is the last active system administrator; make someone else one first"
        )));
    }
    Ok(())
}

/// Makes `name` a system administrator or takes it from them (keeping at least one active).
pub async fn set_system_admin(pool: &PgPool, by: &Principal, name: &UserName, admin: bool) -> Result<(), StoreError> {
    by.may_administer()?;
    let mut tx = pool.begin().await?;
    if !admin {
        keep_an_administrator(&mut tx, name).await?;
    }
    let updated = sqlx::query(r"update users set is_system_admin = $2 where name = $1 and is_system_admin <> $2")
        .bind(name.as_str())
        .bind(admin)
        .execute(&mut *tx)
        .await?;
    if updated.rows_affected() == 0 {
        let exists: Option<(i64,)> = sqlx::query_as(r"select id from users where name = $1")
            .bind(name.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        return match exists {
            Some(_) => Ok(()),
            None => Err(StoreError::NotFound(format!("user `{name}` does not exist"))),
        };
    }
    AuditEntry::new(AuditKind::UserSystemAdmin)
        .after(serde_json::json!({ "user": name.as_str(), "system_admin": admin }))
        .record(&mut *tx, by)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// A user as the administration page lists them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserListing {
    pub name: String,
    pub source: crate::account::UserSource,
    pub email: Option<String>,
    pub is_system_admin: bool,
    pub is_active: bool,
    pub created_at: time::OffsetDateTime,
    pub last_sign_in_at: Option<time::OffsetDateTime>,
}

pub async fn users(db: impl PgExecutor<'_>) -> Result<Vec<UserListing>, StoreError> {
    Ok(sqlx::query_as(
        r"select name,
                 case when provider_issuer is null then 'local'
                      when provider_issuer = $1 then 'directory'
                      else 'provider' end as source,
                 email, is_system_admin, is_active, created_at, last_sign_in_at
          from users order by name",
    )
    .bind(crate::identity::DIRECTORY_ISSUER)
    .fetch_all(db)
    .await?)
}

pub async fn count_users(db: impl PgExecutor<'_>) -> Result<i64, StoreError> {
    let (count,): (i64,) = sqlx::query_as(r"select count(*) from users").fetch_one(db).await?;
    Ok(count)
}

//! The one data-access module: every SQL query of tagward, used by server functions, the REST APIs
//! and the CLI alike.

use crate::account::{NewPassword, ProjectAccess, Role, TokenGrant, TokenName, TokenSecret, User, UserName};
use crate::policy::{PolicyRule, ProjectName, RuleErrors, RuleInput, RuleSpec, MAX_RULES};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::PgExecutor;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    NotFound(String),
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

pub async fn connect(database_url: &str) -> anyhow::Result<PgPool> {
    use anyhow::Context;
    PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(5))
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

pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::migrate!("../migrations").run(pool).await?;
    Ok(())
}

/// A stored argon2id hash. Deliberately neither `Serialize` nor `Display`.
pub struct PasswordHash(pub String);

pub async fn create_user(
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
    Ok(User { id, name: name.as_str().to_owned(), is_system_admin })
}

/// The active user `name` and their session epoch, if `password` is theirs. An unknown name costs
/// the same argon2 verification (against a dummy hash), so timing does not tell names apart.
pub async fn check_credentials(
    db: impl PgExecutor<'_>,
    name: &str,
    password: String,
) -> Result<Option<(User, i32)>, StoreError> {
    let row: Option<(i64, String, bool, String, i32)> = sqlx::query_as(
        r"select id, name, is_system_admin, password_hash, session_epoch from users where name = $1 and is_active",
    )
    .bind(name)
    .fetch_optional(db)
    .await?;
    let (user, hash) = match row {
        Some((id, name, is_system_admin, hash, epoch)) => {
            (Some((User { id, name, is_system_admin }, epoch)), Some(PasswordHash(hash)))
        }
        None => (None, None),
    };
    let verified = verify_password(hash, password).await?;
    Ok(user.filter(|_| verified))
}

/// The user behind a session and their session epoch, if they still exist and are active.
pub async fn active_user(db: impl PgExecutor<'_>, id: i64) -> Result<Option<(User, i32)>, StoreError> {
    let row: Option<(i64, String, bool, i32)> =
        sqlx::query_as(r"select id, name, is_system_admin, session_epoch from users where id = $1 and is_active")
            .bind(id)
            .fetch_optional(db)
            .await?;
    Ok(row.map(|(id, name, is_system_admin, epoch)| (User { id, name, is_system_admin }, epoch)))
}

/// A user's password hash, by id (to check the current password before changing it).
pub async fn password_hash(db: impl PgExecutor<'_>, id: i64) -> Result<Option<PasswordHash>, StoreError> {
    let row: Option<(String,)> =
        sqlx::query_as(r"select password_hash from users where id = $1").bind(id).fetch_optional(db).await?;
    Ok(row.map(|(hash,)| PasswordHash(hash)))
}

/// Sets a user's password and ends every session made before (by bumping the epoch); returns the
/// new epoch, for the one session that should live on.
pub async fn set_password(db: impl PgExecutor<'_>, name: &UserName, hash: &PasswordHash) -> Result<i32, StoreError> {
    let row: Option<(i32,)> = sqlx::query_as(
        r"update users set password_hash = $2, session_epoch = session_epoch + 1 where name = $1 returning session_epoch",
    )
    .bind(name.as_str())
    .bind(&hash.0)
    .fetch_optional(db)
    .await?;
    row.map(|(epoch,)| epoch).ok_or_else(|| StoreError::NotFound(format!("user `{name}` does not exist")))
}

/// Deactivates (their sessions stop working at once) or reactivates a user.
pub async fn set_user_active(db: impl PgExecutor<'_>, name: &UserName, active: bool) -> Result<(), StoreError> {
    let updated = sqlx::query(r"update users set is_active = $2 where name = $1")
        .bind(name.as_str())
        .bind(active)
        .execute(db)
        .await?;
    if updated.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("user `{name}` does not exist")));
    }
    Ok(())
}

/// A user as the administration page lists them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserListing {
    pub name: String,
    pub is_system_admin: bool,
    pub is_active: bool,
    pub created_at: time::OffsetDateTime,
}

pub async fn users(db: impl PgExecutor<'_>) -> Result<Vec<UserListing>, StoreError> {
    Ok(sqlx::query_as(r"select name, is_system_admin, is_active, created_at from users order by name")
        .fetch_all(db)
        .await?)
}

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

/// Deletes a project without rules (its rules must be deleted first, deliberately, since deleting
/// them makes tags mutable); returns its id.
pub async fn delete_project(db: &mut sqlx::PgConnection, name: &ProjectName) -> Result<i64, StoreError> {
    let row: Option<(i64, i64)> = sqlx::query_as(
        r"select p.id, (select count(*) from immutability_rules r where r.project_id = p.id)
          from projects p where p.name = $1 for update",
    )
    .bind(name.as_str())
    .fetch_optional(&mut *db)
    .await?;
    let (id, rules) = row.ok_or_else(|| StoreError::NotFound(format!("project `{name}` does not exist")))?;
    if rules > 0 {
        return Err(StoreError::Refused(format!(
            "project `{name}` still has {rules} tag immutability rule(s); delete them first (that makes its tags mutable, so it is not done for you)"
        )));
    }
    sqlx::query(r"delete from projects where id = $1").bind(id).execute(&mut *db).await?;
    Ok(id)
}

/// Gives `user` the role `role` in the project, or removes them (`None`). The project row is
/// locked first, so the rule that a project with admins keeps at least one holds under
/// concurrent changes. Returns the role they had before.
pub async fn change_member(
    db: &mut sqlx::PgConnection,
    project_id: i64,
    user: &UserName,
    role: Option<Role>,
) -> Result<Option<Role>, StoreError> {
    sqlx::query(r"select id from projects where id = $1 for update").bind(project_id).execute(&mut *db).await?;
    let user_id: Option<(i64,)> =
        sqlx::query_as(r"select id from users where name = $1").bind(user.as_str()).fetch_optional(&mut *db).await?;
    let (user_id,) = user_id.ok_or_else(|| StoreError::NotFound(format!("user `{user}` does not exist")))?;
    let before: Option<(String,)> =
        sqlx::query_as(r"select role from project_members where project_id = $1 and user_id = $2")
            .bind(project_id)
            .bind(user_id)
            .fetch_optional(&mut *db)
            .await?;
    let before = before.and_then(|(role,)| Role::parse(&role).ok());
    if before == Some(Role::Admin) && role != Some(Role::Admin) {
        let (admins,): (i64,) =
            sqlx::query_as(r"select count(*) from project_members where project_id = $1 and role = 'admin'")
                .bind(project_id)
                .fetch_one(&mut *db)
                .await?;
        if admins <= 1 {
            return Err(StoreError::Refused(format!(
                "`{user}` is the project's last admin; make another member admin first"
            )));
        }
    }
    match role {
        Some(role) => {
            sqlx::query(
                r"insert into project_members (project_id, user_id, role) values ($1, $2, $3)
                  on conflict (project_id, user_id) do update set role = excluded.role",
            )
            .bind(project_id)
            .bind(user_id)
            .bind(role.as_str())
            .execute(&mut *db)
            .await?;
        }
        None if before.is_none() => {
            return Err(StoreError::NotFound(format!("`{user}` is not a member of this project")));
        }
        None => {
            sqlx::query(r"delete from project_members where project_id = $1 and user_id = $2")
                .bind(project_id)
                .bind(user_id)
                .execute(&mut *db)
                .await?;
        }
    }
    Ok(before)
}

/// One change, as the audit trail records it.
#[derive(Debug, Default)]
pub struct AuditEntry<'a> {
    pub project_id: Option<i64>,
    /// e.g. `rule.create`, `user.deactivate`, `member.remove`, `token.revoke`
    pub kind: &'a str,
    pub rule_id: Option<i64>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// Records a change in the audit trail (in the caller's transaction, so both land or neither).
pub async fn audit(db: impl PgExecutor<'_>, actor: &Actor, entry: AuditEntry<'_>) -> Result<(), StoreError> {
    sqlx::query(
        r"insert into audit_events (actor, project_id, kind, rule_id, before, after) values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&actor.0)
    .bind(entry.project_id)
    .bind(entry.kind)
    .bind(entry.rule_id)
    .bind(entry.before)
    .bind(entry.after)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn count_users(db: impl PgExecutor<'_>) -> Result<i64, StoreError> {
    let (count,): (i64,) = sqlx::query_as(r"select count(*) from users").fetch_one(db).await?;
    Ok(count)
}

pub async fn create_project(db: impl PgExecutor<'_>, name: &ProjectName) -> Result<i64, StoreError> {
    let (id,): (i64,) = sqlx::query_as(r"insert into projects (name) values ($1) returning id")
        .bind(name.as_str())
        .fetch_one(db)
        .await
        .map_err(on_constraint("projects_name_key", "name", || format!("project `{name}` already exists")))?;
    Ok(id)
}

/// Adds `user` to `project` with `role`, or changes their role if they are a member already.
pub async fn set_member(pool: &PgPool, project: &ProjectName, user: &UserName, role: Role) -> Result<(), StoreError> {
    let project_id: Option<(i64,)> =
        sqlx::query_as(r"select id from projects where name = $1").bind(project.as_str()).fetch_optional(pool).await?;
    let (project_id,) =
        project_id.ok_or_else(|| StoreError::NotFound(format!("project `{project}` does not exist")))?;
    let user_id: Option<(i64,)> =
        sqlx::query_as(r"select id from users where name = $1").bind(user.as_str()).fetch_optional(pool).await?;
    let (user_id,) = user_id.ok_or_else(|| StoreError::NotFound(format!("user `{user}` does not exist")))?;
    sqlx::query(
        r"insert into project_members (project_id, user_id, role) values ($1, $2, $3)
          on conflict (project_id, user_id) do update set role = excluded.role",
    )
    .bind(project_id)
    .bind(user_id)
    .bind(role.as_str())
    .execute(pool)
    .await?;
    Ok(())
}

/// The projects `user` may see: their memberships, or every project for a system admin.
pub async fn visible_projects(db: impl PgExecutor<'_>, user: &User) -> Result<Vec<ProjectAccess>, StoreError> {
    let rows: Vec<(i64, String, Option<String>)> = sqlx::query_as(
        r"select p.id, p.name, m.role
          from projects p
          left join project_members m on m.project_id = p.id and m.user_id = $1
          where m.user_id is not null or $2
          order by p.name",
    )
    .bind(user.id)
    .bind(user.is_system_admin)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|(id, name, role)| access(user, id, name, role)).collect())
}

/// One project as `user` may see it; `None` when it does not exist or they are not a member,
/// which callers answer alike (404), so that project names do not leak.
pub async fn visible_project(
    db: impl PgExecutor<'_>,
    user: &User,
    project: &str,
) -> Result<Option<ProjectAccess>, StoreError> {
    let row: Option<(i64, String, Option<String>)> = sqlx::query_as(
        r"select p.id, p.name, m.role
          from projects p
          left join project_members m on m.project_id = p.id and m.user_id = $1
          where p.name = $3 and (m.user_id is not null or $2)",
    )
    .bind(user.id)
    .bind(user.is_system_admin)
    .bind(project)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|(id, name, role)| access(user, id, name, role)))
}

fn access(user: &User, id: i64, name: String, role: Option<String>) -> ProjectAccess {
    let role = role.and_then(|role| Role::parse(&role).ok());
    ProjectAccess { id, name, can_manage_rules: user.is_system_admin || role.is_some_and(Role::manages_rules), role }
}

/// Password hashing is slow and big on purpose (argon2id's defaults: tens of milliseconds of CPU and
/// 19 MiB each), so a flood of login attempts must not run them all at once: at most one per core
/// runs, at most [`MAX_WAITING_HASHES`] wait, and further attempts are answered "try again later"
/// at once. The same process answers the registry's decisions; they must not starve.
struct HashingGate {
    running: tokio::sync::Semaphore,
    waiting: std::sync::atomic::AtomicUsize,
}

/// Password hashes waiting for a core, at most.
pub const MAX_WAITING_HASHES: usize = 16;

static HASHING: std::sync::LazyLock<HashingGate> = std::sync::LazyLock::new(|| HashingGate {
    running: tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())),
    waiting: std::sync::atomic::AtomicUsize::new(0),
});

/// Runs `work` (a hash or a verification) on the blocking pool once the gate lets it.
async fn through_hashing_gate<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, StoreError> {
    use std::sync::atomic::Ordering;
    /// Counts a waiter for as long as it waits, also when its request is dropped meanwhile.
    struct Waiting;
    impl Drop for Waiting {
        fn drop(&mut self) {
            HASHING.waiting.fetch_sub(1, Ordering::AcqRel);
        }
    }
    if HASHING.waiting.fetch_add(1, Ordering::AcqRel) >= MAX_WAITING_HASHES {
        HASHING.waiting.fetch_sub(1, Ordering::AcqRel);
        return Err(StoreError::TryLater { message: "too many password checks under way".into(), retry_after: 1 });
    }
    let waiting = Waiting;
    let permit = HASHING.running.acquire().await.map_err(|e| StoreError::Unexpected(e.into()))?;
    drop(waiting);
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let _permit = permit;
        work()
    })
    .await
    .map_err(|e| StoreError::Unexpected(e.into()))
}

/// Runs `work` with argon2's working memory (19 MiB at the default parameters). The buffers are
/// kept and reused, one per hash that may run at once: allocated afresh each time, freed 19 MiB
/// blocks stay with the allocator's per-thread arenas, and the process grew by hundreds of MiB
/// under a storm of guesses and never gave them back.
fn with_argon2_memory<T>(blocks: usize, work: impl FnOnce(&mut [argon2::Block]) -> T) -> T {
    static FREE: std::sync::Mutex<Vec<Vec<argon2::Block>>> = std::sync::Mutex::new(Vec::new());
    let reused = FREE.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop();
    let mut memory =
        reused.filter(|memory| memory.len() >= blocks).unwrap_or_else(|| vec![argon2::Block::default(); blocks]);
    let result = work(memory.get_mut(..blocks).unwrap_or_default());
    FREE.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(memory);
    result
}

fn argon2_error<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> StoreError + '_ {
    move |e| StoreError::Unexpected(anyhow::anyhow!("{what}: {e}"))
}

/// Hashes a password with argon2id at its default parameters (tens of milliseconds on purpose),
/// as a PHC string.
pub async fn hash_password(password: NewPassword) -> Result<PasswordHash, StoreError> {
    through_hashing_gate(move || {
        use argon2::password_hash::{rand_core::OsRng, Output, ParamsString, SaltString};
        let salt = SaltString::generate(&mut OsRng);
        let params = argon2::Params::default();
        let mut salt_bytes = [0u8; 64];
        let raw_salt = salt.decode_b64(&mut salt_bytes).map_err(argon2_error("salt"))?;
        let mut out = [0u8; argon2::Params::DEFAULT_OUTPUT_LEN];
        with_argon2_memory(params.block_count(), |memory| {
            argon2::Argon2::default().hash_password_into_with_memory(
                password.expose().as_bytes(),
                raw_salt,
                &mut out,
                memory,
            )
        })
        .map_err(|e| StoreError::Unexpected(anyhow::anyhow!("hashing the password failed: {e}")))?;
        let phc = argon2::password_hash::PasswordHash {
            algorithm: argon2::Algorithm::Argon2id.ident(),
            version: Some(argon2::Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(argon2_error("parameters"))?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&out).map_err(argon2_error("output"))?),
        };
        Ok(PasswordHash(phc.to_string()))
    })
    .await?
}

/// A hash of a random password no one knows, made once with the same parameters as real hashes:
/// checked when the user does not exist, so that a wrong user name takes as long as a wrong password.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
        let salt = SaltString::generate(&mut OsRng);
        argon2::Argon2::default()
            .hash_password(salt.as_str().as_bytes(), &salt)
            .map(|hash| hash.to_string())
            .unwrap_or_default()
    })
}

/// Verifies `password` against `hash` (or the dummy hash), through the hashing gate, in reused
/// memory; the comparison is constant-time.
pub async fn verify_password(hash: Option<PasswordHash>, password: String) -> Result<bool, StoreError> {
    through_hashing_gate(move || {
        use argon2::password_hash::{Output, PasswordHash as Phc};
        let real = hash.is_some();
        let stored = hash.map_or_else(|| dummy_hash().to_owned(), |h| h.0);
        let parsed = Phc::new(&stored).map_err(argon2_error("stored hash is malformed"))?;
        let params = argon2::Params::try_from(&parsed).map_err(argon2_error("stored hash parameters"))?;
        let algorithm = argon2::Algorithm::try_from(parsed.algorithm).map_err(argon2_error("stored hash algorithm"))?;
        let version = match parsed.version {
            Some(version) => argon2::Version::try_from(version).map_err(argon2_error("stored hash version"))?,
            None => argon2::Version::default(),
        };
        let expected =
            parsed.hash.ok_or_else(|| StoreError::Unexpected(anyhow::anyhow!("stored hash has no output")))?;
        let salt = parsed.salt.ok_or_else(|| StoreError::Unexpected(anyhow::anyhow!("stored hash has no salt")))?;
        let mut salt_bytes = [0u8; 64];
        let raw_salt = salt.decode_b64(&mut salt_bytes).map_err(argon2_error("stored salt"))?;
        let mut out = vec![0u8; expected.len()];
        let blocks = params.block_count();
        with_argon2_memory(blocks, |memory| {
            argon2::Argon2::new(algorithm, version, params).hash_password_into_with_memory(
                password.as_bytes(),
                raw_salt,
                &mut out,
                memory,
            )
        })
        .map_err(|e| StoreError::Unexpected(anyhow::anyhow!("verifying the password failed: {e}")))?;
        let matches = Output::new(&out).is_ok_and(|out| out == expected);
        Ok(real && matches)
    })
    .await?
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

/// Who makes a change, as the audit trail and the `*_by` columns record it.
#[derive(Debug, Clone)]
pub struct Actor(pub String);

/// A stored rule with its history.
#[derive(Debug, Clone)]
pub struct StoredRule {
    pub id: i64,
    pub enabled: bool,
    pub input: RuleInput,
    pub created_by: String,
    pub created_at: time::OffsetDateTime,
    pub updated_by: String,
    pub updated_at: time::OffsetDateTime,
}

impl StoredRule {
    /// The rule as the engine sees it. Stored rules were validated on save; one that no longer
    /// parses (a future, stricter engine) is reported, never silently dropped.
    pub fn to_policy_rule(&self) -> Result<PolicyRule, RuleErrors> {
        Ok(PolicyRule { id: self.id, enabled: self.enabled, spec: RuleSpec::parse(&self.input)? })
    }
    fn snapshot(&self) -> serde_json::Value {
        serde_json::json!({
            "repositories_action": self.input.repositories_action,
            "repositories": self.input.repositories,
            "tags_action": self.input.tags_action,
            "tags": self.input.tags,
            "enabled": self.enabled,
        })
    }
}

/// A project's enabled stored rules as the engine enforces them, or why they cannot be: a stored
/// rule the engine refuses, or rules past the size budget (both only written outside tagward).
/// One judgement for the decision caches and the portal, which shows it.
pub fn enforceable_rules(stored: &[StoredRule]) -> Result<Vec<PolicyRule>, String> {
    let rules = stored
        .iter()
        .filter(|rule| rule.enabled)
        .map(|rule| rule.to_policy_rule().map_err(|errors| format!("its rule {} does not parse: {errors}", rule.id)))
        .collect::<Result<Vec<_>, _>>()?;
    crate::policy::check_stored_size(&rules).map_err(|error| error.to_string())?;
    Ok(rules)
}

#[derive(sqlx::FromRow)]
struct RuleRow {
    id: i64,
    project_id: i64,
    enabled: bool,
    repositories_action: String,
    repositories: String,
    tags_action: String,
    tags: String,
    created_by: String,
    created_at: time::OffsetDateTime,
    updated_by: String,
    updated_at: time::OffsetDateTime,
}

impl From<RuleRow> for StoredRule {
    fn from(row: RuleRow) -> Self {
        StoredRule {
            id: row.id,
            enabled: row.enabled,
            input: RuleInput {
                repositories_action: row.repositories_action,
                repositories: row.repositories,
                tags_action: row.tags_action,
                tags: row.tags,
            },
            created_by: row.created_by,
            created_at: row.created_at,
            updated_by: row.updated_by,
            updated_at: row.updated_at,
        }
    }
}

/// A project's rules, oldest first.
pub async fn project_rules(db: impl PgExecutor<'_>, project_id: i64) -> Result<Vec<StoredRule>, StoreError> {
    let rows: Vec<RuleRow> =
        sqlx::query_as(&format!("select {RULE_COLUMNS} from immutability_rules where project_id = $1 order by id"))
            .bind(project_id)
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().map(StoredRule::from).collect())
}

/// One rule by id, if it exists.
async fn rule(db: impl PgExecutor<'_>, id: i64) -> Result<Option<StoredRule>, StoreError> {
    let row: Option<RuleRow> = sqlx::query_as(&format!("select {RULE_COLUMNS} from immutability_rules where id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?;
    Ok(row.map(StoredRule::from))
}

/// The columns of a `RuleRow`.
const RULE_COLUMNS: &str = "id, project_id, enabled, repositories_action, repositories, tags_action, tags, \
                            created_by, created_at, updated_by, updated_at";

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

/// The channel every change to a project or its rules is announced on (by triggers), with the
/// project id as payload.
pub const RULES_CHANNEL: &str = "tagward_rules";
/// The channel every change to the service tokens is announced on (by a trigger).
pub const TOKENS_CHANNEL: &str = "tagward_tokens";

/// What a rule change does.
pub enum RuleChange<'a> {
    Create(&'a RuleSpec),
    /// Created disabled, in the same transaction (never enforced, not even for a moment).
    CreateDisabled(&'a RuleSpec),
    Update(i64, &'a RuleSpec),
    SetEnabled(i64, bool),
    Delete(i64),
}

/// Applies one change to a project's rules in one transaction: the project row is locked first, so
/// concurrent changes to one project queue up and the limit of 15 and the ban on identical rules
/// hold whatever the timing. Records the change in the audit trail (a trigger announces it on
/// [`RULES_CHANNEL`] at commit). Returns the id of the rule changed.
pub async fn change_rules(
    pool: &PgPool,
    project_id: i64,
    change: RuleChange<'_>,
    actor: &Actor,
) -> Result<i64, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query(r"select id from projects where id = $1 for update").bind(project_id).execute(&mut *tx).await?;
    let rules = project_rules(&mut *tx, project_id).await?;
    let find = |id: i64| {
        rules.iter().find(|r| r.id == id).ok_or_else(|| StoreError::NotFound(format!("rule {id} does not exist")))
    };
    let refuse_duplicate = |spec: &RuleSpec, except: Option<i64>| -> Result<(), StoreError> {
        for other in rules.iter().filter(|r| Some(r.id) != except) {
            if other.to_policy_rule().is_ok_and(|o| o.spec.same_as(spec)) {
                return Err(StoreError::Conflict {
                    field: "rule",
                    message: format!("an identical rule already exists: rule {} ({})", other.id, spec.summary()),
                });
            }
        }
        Ok(())
    };
    // The rule set as it would be stored must stay enforceable (size budget, compiles), checked
    // under the project lock so concurrent changes cannot together pass it.
    let resulting = match &change {
        RuleChange::Create(spec) | RuleChange::CreateDisabled(spec) => Some((None, (*spec).clone())),
        RuleChange::Update(id, spec) => Some((Some(*id), (*spec).clone())),
        RuleChange::SetEnabled(..) | RuleChange::Delete(_) => None,
    };
    if let Some((replaced, changed)) = resulting {
        let mut specs: Vec<RuleSpec> = rules
            .iter()
            .filter(|rule| Some(rule.id) != replaced)
            .filter_map(|rule| rule.to_policy_rule().ok())
            .map(|rule| rule.spec)
            .collect();
        specs.push(changed.clone());
        tokio::task::spawn_blocking(move || crate::policy::check_rule_set(&specs, Some(&changed)))
            .await
            .map_err(|e| StoreError::Unexpected(e.into()))?
            .map_err(|error| StoreError::Refused(error.to_string()))?;
    }
    let (kind, rule_id, before) = match &change {
        RuleChange::Create(spec) | RuleChange::CreateDisabled(spec) => {
            if rules.len() >= MAX_RULES {
                return Err(StoreError::Refused(format!(
                    "this project has {} rules, the most allowed; edit or delete one to add another",
                    rules.len()
                )));
            }
            refuse_duplicate(spec, None)?;
            let input = spec.to_input();
            let (id,): (i64,) = sqlx::query_as(
                r"insert into immutability_rules
                    (project_id, repositories_action, repositories, tags_action, tags, created_by, updated_by, enabled)
                  values ($1, $2, $3, $4, $5, $6, $6, $7) returning id",
            )
            .bind(project_id)
            .bind(&input.repositories_action)
            .bind(&input.repositories)
            .bind(&input.tags_action)
            .bind(&input.tags)
            .bind(&actor.0)
            .bind(matches!(change, RuleChange::Create(_)))
            .fetch_one(&mut *tx)
            .await?;
            ("rule.create", id, None)
        }
        RuleChange::Update(id, spec) => {
            let before = find(*id)?.snapshot();
            refuse_duplicate(spec, Some(*id))?;
            let input = spec.to_input();
            sqlx::query(
                r"update immutability_rules
                  set repositories_action = $2, repositories = $3, tags_action = $4, tags = $5,
                      updated_by = $6, updated_at = now()
                  where id = $1",
            )
            .bind(id)
            .bind(&input.repositories_action)
            .bind(&input.repositories)
            .bind(&input.tags_action)
            .bind(&input.tags)
            .bind(&actor.0)
            .execute(&mut *tx)
            .await?;
            ("rule.update", *id, Some(before))
        }
        RuleChange::SetEnabled(id, enabled) => {
            let before = find(*id)?.snapshot();
            sqlx::query(
                r"update immutability_rules set enabled = $2, updated_by = $3, updated_at = now() where id = $1",
            )
            .bind(id)
            .bind(enabled)
            .bind(&actor.0)
            .execute(&mut *tx)
            .await?;
            (if *enabled { "rule.enable" } else { "rule.disable" }, *id, Some(before))
        }
        RuleChange::Delete(id) => {
            let before = find(*id)?.snapshot();
            sqlx::query(r"delete from immutability_rules where id = $1").bind(id).execute(&mut *tx).await?;
            ("rule.delete", *id, Some(before))
        }
    };
    let after = rule(&mut *tx, rule_id).await?.map(|r| r.snapshot());
    let entry = AuditEntry { project_id: Some(project_id), kind, rule_id: Some(rule_id), before, after };
    audit(&mut *tx, actor, entry).await?;
    tx.commit().await?;
    Ok(rule_id)
}

/// A project and all its rules, as the decision cache loads them.
pub struct ProjectRules {
    pub id: i64,
    pub name: String,
    pub rules: Vec<StoredRule>,
}

/// Every project with its rules, in two queries whatever the number of projects.
pub async fn all_project_rules(db: &PgPool) -> Result<Vec<ProjectRules>, StoreError> {
    // One snapshot for both queries, so no rule is seen without its project.
    let mut tx = db.begin().await?;
    sqlx::query("set transaction isolation level repeatable read, read only").execute(&mut *tx).await?;
    let projects: Vec<(i64, String)> =
        sqlx::query_as(r"select id, name from projects order by id").fetch_all(&mut *tx).await?;
    let mut rows =
        sqlx::query_as::<_, RuleRow>(&format!("select {RULE_COLUMNS} from immutability_rules order by project_id, id"))
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .peekable();
    tx.commit().await?;
    let mut loaded = Vec::with_capacity(projects.len());
    for (id, name) in projects {
        let mut rules = Vec::new();
        while let Some(row) = rows.next_if(|row| row.project_id <= id) {
            if row.project_id == id {
                rules.push(row.into());
            }
        }
        loaded.push(ProjectRules { id, name, rules });
    }
    Ok(loaded)
}

/// One project with its rules, by id; `None` once it is deleted.
pub async fn project_rules_by_id(db: &PgPool, id: i64) -> Result<Option<ProjectRules>, StoreError> {
    let mut tx = db.begin().await?;
    let project: Option<(String,)> =
        sqlx::query_as(r"select name from projects where id = $1").bind(id).fetch_optional(&mut *tx).await?;
    let Some((name,)) = project else {
        return Ok(None);
    };
    let rules = project_rules(&mut *tx, id).await?;
    tx.commit().await?;
    Ok(Some(ProjectRules { id, name, rules }))
}

/// A service token as the decision cache holds it.
pub struct ActiveToken {
    pub id: i64,
    pub name: String,
    pub sha256: Vec<u8>,
    pub grant: TokenGrant,
}

/// Stores a new token's hash under `name`; refused while an unrevoked token has that name.
pub async fn create_token(
    db: impl PgExecutor<'_>,
    name: &TokenName,
    secret: &TokenSecret,
    grant: &TokenGrant,
    actor: &Actor,
) -> Result<i64, StoreError> {
    let (scopes, projects) = grant_columns(grant);
    let (id,): (i64,) = sqlx::query_as(
        r"insert into service_tokens (name, token_sha256, created_by, scopes, projects)
          values ($1, $2, $3, $4, $5) returning id",
    )
    .bind(name.as_str())
    .bind(secret.sha256().as_slice())
    .bind(&actor.0)
    .bind(scopes)
    .bind(projects)
    .fetch_one(db)
    .await
    .map_err(on_constraint("service_tokens_active_name", "name", || {
        format!("a token named `{name}` already exists; revoke it first or choose another name")
    }))?;
    Ok(id)
}

/// Revokes the token named `name`: every process refuses it once the change is announced.
pub async fn revoke_token(db: impl PgExecutor<'_>, name: &TokenName, actor: &Actor) -> Result<(), StoreError> {
    let revoked = sqlx::query(
        r"update service_tokens set revoked_at = now(), revoked_by = $2 where name = $1 and revoked_at is null",
    )
    .bind(name.as_str())
    .bind(&actor.0)
    .execute(db)
    .await?;
    if revoked.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("there is no token named `{name}` (or it is already revoked)")));
    }
    Ok(())
}

fn grant_columns(grant: &TokenGrant) -> (Vec<&'static str>, Option<Vec<String>>) {
    let scopes = grant.scopes.iter().map(|scope| scope.as_str()).collect();
    let projects = grant.projects.as_ref().map(|projects| projects.iter().map(|p| p.as_str().to_owned()).collect());
    (scopes, projects)
}

/// A grant as stored; what the database's check let in always parses.
fn stored_grant(scopes: &[String], projects: Option<Vec<String>>) -> TokenGrant {
    TokenGrant::parse(scopes, &projects.unwrap_or_default()).unwrap_or_else(|error| {
        tracing::error!(%error, "a stored token grant does not parse; the token may only ask for decisions");
        TokenGrant::default()
    })
}

/// The tokens not revoked.
pub async fn active_tokens(db: impl PgExecutor<'_>) -> Result<Vec<ActiveToken>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Row {
        id: i64,
        name: String,
        token_sha256: Vec<u8>,
        scopes: Vec<String>,
        projects: Option<Vec<String>>,
    }
    let rows: Vec<Row> =
        sqlx::query_as(r"select id, name, token_sha256, scopes, projects from service_tokens where revoked_at is null")
            .fetch_all(db)
            .await?;
    Ok(rows
        .into_iter()
        .map(|row| ActiveToken {
            grant: stored_grant(&row.scopes, row.projects),
            id: row.id,
            name: row.name,
            sha256: row.token_sha256,
        })
        .collect())
}

/// A service token as lists show it.
#[derive(Debug, Clone)]
pub struct TokenListing {
    pub id: i64,
    pub name: String,
    pub created_by: String,
    pub created_at: time::OffsetDateTime,
    pub last_used_at: Option<time::OffsetDateTime>,
    pub revoked_at: Option<time::OffsetDateTime>,
    pub grant: TokenGrant,
    /// Made before tokens had scopes: it kept every scope.
    pub migrated_full_access: bool,
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: i64,
    name: String,
    created_by: String,
    created_at: time::OffsetDateTime,
    last_used_at: Option<time::OffsetDateTime>,
    revoked_at: Option<time::OffsetDateTime>,
    scopes: Vec<String>,
    projects: Option<Vec<String>>,
    migrated_full_access: bool,
}

/// Every token, unrevoked first, newest first.
pub async fn tokens(db: impl PgExecutor<'_>) -> Result<Vec<TokenListing>, StoreError> {
    let rows: Vec<TokenRow> = sqlx::query_as(
        r"select id, name, created_by, created_at, last_used_at, revoked_at, scopes, projects, migrated_full_access
          from service_tokens
          order by revoked_at is not null, created_at desc",
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| TokenListing {
            grant: stored_grant(&row.scopes, row.projects),
            id: row.id,
            name: row.name,
            created_by: row.created_by,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            revoked_at: row.revoked_at,
            migrated_full_access: row.migrated_full_access,
        })
        .collect())
}

/// Records when tokens were last used: `(token id, when)` pairs.
pub async fn record_token_use(db: impl PgExecutor<'_>, uses: &[(i64, time::OffsetDateTime)]) -> Result<(), StoreError> {
    sqlx::query(
        r"update service_tokens t set last_used_at = greatest(t.last_used_at, u.at)
          from unnest($1::bigint[], $2::timestamptz[]) as u(id, at) where t.id = u.id",
    )
    .bind(uses.iter().map(|(id, _)| *id).collect::<Vec<_>>())
    .bind(uses.iter().map(|(_, at)| *at).collect::<Vec<_>>())
    .execute(db)
    .await?;
    Ok(())
}

/// A denied push or delete, for the audit trail.
#[derive(Debug, Clone)]
pub struct Denial {
    pub at: time::OffsetDateTime,
    pub token: String,
    pub operation: &'static str,
    /// `None` once the project is gone (it may be deleted between the decision and the write).
    pub project_id: Option<i64>,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
    pub current_digest: Option<String>,
    pub rule_ids: Vec<i64>,
    pub message: String,
}

/// Writes a batch of denials in one statement.
pub async fn insert_denials(db: impl PgExecutor<'_>, denials: &[Denial]) -> Result<(), StoreError> {
    let column = |f: fn(&Denial) -> Option<String>| denials.iter().map(f).collect::<Vec<_>>();
    // Postgres arrays cannot be ragged, so the rule ids travel as JSON arrays.
    let rule_ids: Vec<serde_json::Value> = denials.iter().map(|d| serde_json::json!(d.rule_ids)).collect();
    sqlx::query(
        r"insert into enforcement_denials
            (at, token, operation, project_id, repository, tag, digest, current_digest, rule_ids, message)
          select at, token, operation, project_id, repository, tag, digest, current_digest,
                 array(select jsonb_array_elements_text(rule_ids)::bigint), message
          from unnest($1::timestamptz[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[],
                      $7::text[], $8::text[], $9::jsonb[], $10::text[])
            as d(at, token, operation, project_id, repository, tag, digest, current_digest, rule_ids, message)",
    )
    .bind(denials.iter().map(|d| d.at).collect::<Vec<_>>())
    .bind(denials.iter().map(|d| d.token.clone()).collect::<Vec<_>>())
    .bind(denials.iter().map(|d| d.operation).collect::<Vec<_>>())
    .bind(denials.iter().map(|d| d.project_id).collect::<Vec<_>>())
    .bind(denials.iter().map(|d| d.repository.clone()).collect::<Vec<_>>())
    .bind(column(|d| d.tag.clone()))
    .bind(column(|d| d.digest.clone()))
    .bind(column(|d| d.current_digest.clone()))
    .bind(rule_ids)
    .bind(denials.iter().map(|d| d.message.clone()).collect::<Vec<_>>())
    .execute(db)
    .await?;
    Ok(())
}

/// One entry of the audit trail: a change (rule, member, user, project, token) or a denial.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActivityEntry {
    pub at: time::OffsetDateTime,
    pub actor: String,
    pub kind: String,
    pub rule_id: Option<i64>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    /// A denial's message.
    pub message: Option<String>,
    pub project: Option<String>,
    /// How many entries match in all (the same on every row).
    pub total: i64,
}

/// The audit trail, newest first: changes and denials of one project (or of all, for `None`),
/// those whose kind starts with `kind.` if given, one page of them.
pub async fn activity(
    db: impl PgExecutor<'_>,
    project_id: Option<i64>,
    kind: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<ActivityEntry>, StoreError> {
    Ok(sqlx::query_as(
        r"with entries as (
            select a.at, a.id, a.actor, a.kind, a.rule_id, a.before, a.after, null::text as message, p.name as project
            from audit_events a left join projects p on p.id = a.project_id
            where $1::bigint is null or a.project_id = $1
            union all
            select d.at, d.id, d.token, 'denial.' || d.operation, null, null, null, d.message, p.name
            from enforcement_denials d left join projects p on p.id = d.project_id
            where $1::bigint is null or d.project_id = $1
          )
          select *, count(*) over () as total from entries
          where $2::text is null or kind like $2 || '.%'
          -- Within one instant, later rows first (ids only break ties).
          order by at desc, id desc
          limit $3 offset $4",
    )
    .bind(project_id)
    .bind(kind)
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await?)
}

//! One-time exceptions: granting, approving (four-eyes), revoking and listing them (audited), what
//! the decision caches load, and the one atomic use.

use super::audit::AuditEntry;
use super::projects::role_of;
use super::{AuditKind, StoreError};
use crate::policy::{
    Digest, ExceptionGrant, ExceptionScope, ExceptionTarget, ExceptionsMode, ExceptionsSwitch, RepositoryName, Tag,
};
use crate::principal::Principal;
use serde_json::json;
use sqlx::{PgExecutor, PgPool, Postgres, Transaction};
use time::OffsetDateTime;

/// An exception the decision caches hold: granted, approved, not used, revoked or expired, in a
/// project that takes exceptions.
#[derive(Debug, Clone)]
pub struct UsableException {
    pub id: i64,
    pub project_id: i64,
    pub scope: ExceptionScope,
    pub expires_at: OffsetDateTime,
}

/// Where an exception stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExceptionStatus {
    /// Waiting for a second admin's approval (four-eyes).
    Pending,
    Active,
    Used,
    Expired,
    Revoked,
}

impl ExceptionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExceptionStatus::Pending => "pending",
            ExceptionStatus::Active => "active",
            ExceptionStatus::Used => "used",
            ExceptionStatus::Expired => "expired",
            ExceptionStatus::Revoked => "revoked",
        }
    }
}

/// One exception as the list shows it, its scope parsed once here.
#[derive(Debug, Clone)]
pub struct ExceptionListing {
    pub id: i64,
    /// What it answers for, as the engine reads it; for a row written outside tagward that does
    /// not parse (it lets nothing through), what the row says, for the page to show.
    pub scope: Result<ExceptionScope, String>,
    pub reason: String,
    pub granted_by: String,
    pub granted_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub approved_by: Option<String>,
    pub used_at: Option<OffsetDateTime>,
    pub used_by: Option<String>,
    pub used_for: Option<String>,
    pub revoked_by: Option<String>,
    pub revoked_at: Option<OffsetDateTime>,
}

impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for ExceptionListing {
    fn from_row(row: &'r sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row;
        let repository: String = row.try_get("repository")?;
        let operation: String = row.try_get("operation")?;
        let scope = parse_scope(
            &repository,
            row.try_get("tag")?,
            row.try_get("digest")?,
            &operation,
            row.try_get("to_digest")?,
        )
        .ok_or_else(|| format!("{operation} in {repository} (unreadable)"));
        Ok(Self {
            id: row.try_get("id")?,
            scope,
            reason: row.try_get("reason")?,
            granted_by: row.try_get("granted_by")?,
            granted_at: row.try_get("granted_at")?,
            expires_at: row.try_get("expires_at")?,
            approved_by: row.try_get("approved_by")?,
            used_at: row.try_get("used_at")?,
            used_by: row.try_get("used_by")?,
            used_for: row.try_get("used_for")?,
            revoked_by: row.try_get("revoked_by")?,
            revoked_at: row.try_get("revoked_at")?,
        })
    }
}

/// The scope a stored row describes, or `None` when it does not parse.
fn parse_scope(
    repository: &str,
    tag: Option<String>,
    digest: Option<String>,
    operation: &str,
    to_digest: Option<String>,
) -> Option<ExceptionScope> {
    let target = match (tag, digest) {
        (Some(tag), None) => ExceptionTarget::Tag(Tag::parse(&tag).ok()?),
        (None, Some(digest)) => ExceptionTarget::Digest(Digest::parse(&digest).ok()?),
        _ => return None,
    };
    let to_digest = match to_digest {
        Some(digest) => Some(Digest::parse(&digest).ok()?),
        None => None,
    };
    Some(ExceptionScope {
        repository: RepositoryName::parse(repository).ok()?,
        target,
        operation: crate::policy::ExceptionOperation::parse(operation).ok()?,
        to_digest,
    })
}

impl ExceptionListing {
    pub fn status(&self, now: OffsetDateTime) -> ExceptionStatus {
        if self.used_at.is_some() {
            ExceptionStatus::Used
        } else if self.revoked_at.is_some() {
            ExceptionStatus::Revoked
        } else if self.expires_at <= now {
            ExceptionStatus::Expired
        } else if self.approved_by.is_none() {
            ExceptionStatus::Pending
        } else {
            ExceptionStatus::Active
        }
    }

    /// The change it allows in words: `overwrite of shop/api:v1`, `delete of shop/api@sha256:…`.
    pub fn change(&self) -> String {
        match &self.scope {
            Ok(scope) => scope.summary(),
            Err(unreadable) => unreadable.clone(),
        }
    }
}

/// A use to record: the exception, who asked (a service token, the gateway), what it let through.
#[derive(Debug, Clone)]
pub struct ExceptionUse {
    pub id: i64,
    pub used_by: Principal,
    pub used_for: String,
}

/// An exception as a use took it: who granted it and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedException {
    pub id: i64,
    pub granted_by: String,
    pub reason: String,
}

/// The project's name and setting, under its row lock, once `by` may act on its exceptions.
async fn lock_project(
    tx: &mut Transaction<'_, Postgres>,
    by: &Principal,
    project_id: i64,
) -> Result<(String, ExceptionsMode), StoreError> {
    let row: Option<(String, String)> =
        sqlx::query_as(r"select name, exceptions from projects where id = $1 for update")
            .bind(project_id)
            .fetch_optional(&mut **tx)
            .await?;
    let not_found = || StoreError::NotFound(format!("project {project_id} does not exist"));
    let (name, mode) = row.ok_or_else(not_found)?;
    let role = role_of(&mut **tx, by, project_id).await?;
    if !by.may_see(&name, role) {
        return Err(not_found());
    }
    by.may_grant_exceptions(role)?;
    Ok((name, ExceptionsMode::parse(&mode).unwrap_or(ExceptionsMode::Off)))
}

/// Like [`lock_project`], refused when exceptions are off in the project or everywhere (granting
/// and approving; revoking is always possible).
async fn lock_taking_project(
    tx: &mut Transaction<'_, Postgres>,
    by: &Principal,
    project_id: i64,
    switch: ExceptionsSwitch,
) -> Result<ExceptionsMode, StoreError> {
    let (name, mode) = lock_project(tx, by, project_id).await?;
    if switch == ExceptionsSwitch::Off {
        return Err(StoreError::Refused(
            "exceptions are switched off for this tagward (TAGWARD_EXCEPTIONS=off)".into(),
        ));
    }
    if mode == ExceptionsMode::Off {
        return Err(StoreError::Refused(format!("project `{name}` takes no exceptions (its setting is off)")));
    }
    Ok(mode)
}

/// An exception just granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantedException {
    pub id: i64,
    /// The project uses four-eyes: another admin must approve it before it can be used.
    pub needs_approval: bool,
}

/// Grants an exception in `project_id` (its admins and system administrators only). Under
/// four-eyes it waits for another admin's approval; otherwise it is usable at once.
pub async fn grant_exception(
    pool: &PgPool,
    by: &Principal,
    project_id: i64,
    switch: ExceptionsSwitch,
    grant: &ExceptionGrant,
) -> Result<GrantedException, StoreError> {
    let mut tx = pool.begin().await?;
    let mode = lock_taking_project(&mut tx, by, project_id, switch).await?;
    let scope = &grant.scope;
    let (tag, digest) = match &scope.target {
        ExceptionTarget::Tag(tag) => (Some(tag.as_str()), None),
        ExceptionTarget::Digest(digest) => (None, Some(digest.as_str())),
    };
    let approved_by = (mode != ExceptionsMode::FourEyes).then(|| by.actor());
    let (id, expires_at): (i64, OffsetDateTime) = sqlx::query_as(
        r"insert into tag_exceptions
            (project_id, repository, tag, digest, operation, to_digest, reason, granted_by, expires_at,
             approved_by, approved_at)
          values ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(mins => $9), $10,
                  case when $10::text is null then null else now() end)
          returning id, expires_at",
    )
    .bind(project_id)
    .bind(scope.repository.as_str())
    .bind(tag)
    .bind(digest)
    .bind(scope.operation.as_str())
    .bind(scope.to_digest.as_ref().map(Digest::as_str))
    .bind(&grant.reason)
    .bind(by.actor())
    .bind(grant.lifetime_minutes as i32)
    .bind(&approved_by)
    .fetch_one(&mut *tx)
    .await?;
    let snapshot = ExceptionRecord {
        change: Some(scope.summary()),
        reason: Some(grant.reason.clone()),
        expires_at: Some(expires_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()),
        needs_approval: Some(approved_by.is_none()),
        ..ExceptionRecord::of(id)
    };
    AuditEntry::new(AuditKind::ExceptionGrant).project(project_id).after(snapshot.json()).record(&mut *tx, by).await?;
    tx.commit().await?;
    Ok(GrantedException { id, needs_approval: approved_by.is_none() })
}

/// An exception as the audit trail keeps it (`exception.grant`, `.approve`, `.revoke`, `.use`, and
/// the derived `.expire`): written here, read back by the Activity tab. Each kind fills what it
/// says; the rest is left out of the JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExceptionRecord {
    pub id: i64,
    /// What it allows once, e.g. `overwrite of shop/api:v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Granted under four-eyes: it waits for another admin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs_approval: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granted_by: Option<String>,
    /// The request it let through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_for: Option<String>,
}

impl ExceptionRecord {
    fn of(id: i64) -> Self {
        ExceptionRecord { id, ..ExceptionRecord::default() }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// The exception `id` of the project, under lock, or why it cannot be acted on.
async fn open_exception(
    tx: &mut Transaction<'_, Postgres>,
    project_id: i64,
    id: i64,
) -> Result<ExceptionListing, StoreError> {
    let listing: Option<ExceptionListing> = sqlx::query_as(&format!(
        "select {LISTING_COLUMNS} from tag_exceptions where id = $1 and project_id = $2 for update"
    ))
    .bind(id)
    .bind(project_id)
    .fetch_optional(&mut **tx)
    .await?;
    let listing = listing.ok_or_else(|| StoreError::NotFound(format!("exception {id} does not exist")))?;
    match listing.status(OffsetDateTime::now_utc()) {
        ExceptionStatus::Active | ExceptionStatus::Pending => Ok(listing),
        status => Err(StoreError::Refused(format!("exception {id} is {}: nothing to change", status.as_str()))),
    }
}

/// A second admin approves a pending exception (four-eyes): not the one who granted it.
pub async fn approve_exception(
    pool: &PgPool,
    by: &Principal,
    project_id: i64,
    switch: ExceptionsSwitch,
    id: i64,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    lock_taking_project(&mut tx, by, project_id, switch).await?;
    let listing = open_exception(&mut tx, project_id, id).await?;
    if listing.approved_by.is_some() {
        return Err(StoreError::Refused(format!("exception {id} is approved already")));
    }
    if listing.granted_by == by.actor() {
        return Err(StoreError::Forbidden(format!(
            "exception {id} was granted by you: another admin must approve it (four-eyes)"
        )));
    }
    sqlx::query(r"update tag_exceptions set approved_by = $2, approved_at = now() where id = $1")
        .bind(id)
        .bind(by.actor())
        .execute(&mut *tx)
        .await?;
    AuditEntry::new(AuditKind::ExceptionApprove)
        .project(project_id)
        .after(ExceptionRecord { granted_by: Some(listing.granted_by), ..ExceptionRecord::of(id) }.json())
        .record(&mut *tx, by)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Revokes an exception not used yet (whatever the project's setting: taking one back is always
/// possible for those who may grant).
pub async fn revoke_exception(pool: &PgPool, by: &Principal, project_id: i64, id: i64) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    lock_project(&mut tx, by, project_id).await?;
    open_exception(&mut tx, project_id, id).await?;
    sqlx::query(r"update tag_exceptions set revoked_by = $2, revoked_at = now() where id = $1")
        .bind(id)
        .bind(by.actor())
        .execute(&mut *tx)
        .await?;
    AuditEntry::new(AuditKind::ExceptionRevoke)
        .project(project_id)
        .after(ExceptionRecord::of(id).json())
        .record(&mut *tx, by)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Sets whether the project takes exceptions (its admins, system administrators). Switching to
/// `off` leaves granted ones stored but unusable.
pub async fn set_project_exceptions(
    pool: &PgPool,
    by: &Principal,
    project_id: i64,
    mode: ExceptionsMode,
) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    let (_, before) = lock_project(&mut tx, by, project_id).await?;
    if before == mode {
        return Ok(());
    }
    sqlx::query(r"update projects set exceptions = $2 where id = $1")
        .bind(project_id)
        .bind(mode.as_str())
        .execute(&mut *tx)
        .await?;
    AuditEntry::new(AuditKind::ProjectExceptions)
        .project(project_id)
        .before(json!({ "exceptions": before.as_str() }))
        .after(json!({ "exceptions": mode.as_str() }))
        .record(&mut *tx, by)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The project's setting.
pub async fn project_exceptions_mode(db: impl PgExecutor<'_>, project_id: i64) -> Result<ExceptionsMode, StoreError> {
    let (mode,): (String,) =
        sqlx::query_as(r"select exceptions from projects where id = $1").bind(project_id).fetch_one(db).await?;
    Ok(ExceptionsMode::parse(&mode).unwrap_or(ExceptionsMode::Off))
}

const LISTING_COLUMNS: &str = "id, repository, tag, digest, operation, to_digest, reason, granted_by, granted_at, \
     expires_at, approved_by, used_at, used_by, used_for, revoked_by, revoked_at";

/// The project's exceptions, newest first, at most `limit`.
pub async fn project_exceptions(
    db: impl PgExecutor<'_>,
    project_id: i64,
    limit: i64,
) -> Result<Vec<ExceptionListing>, StoreError> {
    Ok(sqlx::query_as(&format!(
        "select {LISTING_COLUMNS} from tag_exceptions where project_id = $1 order by granted_at desc, id desc limit $2"
    ))
    .bind(project_id)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// When an exception `e` of project `p` can be used: not used, revoked or expired, approved, and
/// the project takes exceptions. The one definition both the caches' load and the use go by.
const USABLE: &str = "e.used_at is null and e.revoked_at is null and e.approved_at is not null \
     and e.expires_at > now() and p.exceptions <> 'off'";

/// The usable exceptions of one project (or of all): what the decision caches hold. A row that
/// does not parse (written outside tagward) is left out: it lets nothing through.
pub async fn usable_exceptions(
    db: impl PgExecutor<'_>,
    project_id: Option<i64>,
) -> Result<Vec<UsableException>, StoreError> {
    #[derive(sqlx::FromRow)]
    struct Usable {
        project_id: i64,
        #[sqlx(flatten)]
        listing: ExceptionListing,
    }
    let rows: Vec<Usable> = sqlx::query_as(&format!(
        "select e.project_id, {} from tag_exceptions e join projects p on p.id = e.project_id
         where {USABLE} and ($1::bigint is null or e.project_id = $1)",
        LISTING_COLUMNS.split(", ").map(|column| format!("e.{column}")).collect::<Vec<_>>().join(", ")
    ))
    .bind(project_id)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|Usable { project_id, listing }| {
            Some(UsableException {
                id: listing.id,
                project_id,
                scope: listing.scope.ok()?,
                expires_at: listing.expires_at,
            })
        })
        .collect())
}

/// What [`use_exceptions`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExceptionsTaken {
    /// Every one was used, in order.
    Used(Vec<UsedException>),
    /// None was: this one is used, revoked, expired or no longer approved (or its project takes
    /// no exceptions).
    Gone(i64),
}

/// Uses the exceptions named, all or none, in one transaction: each only if it is still unused,
/// unrevoked, approved, unexpired and its project still takes exceptions (the row lock makes a
/// concurrent use of the same one wait, then find it used). Each use is written to the audit trail
/// as made by its caller.
pub async fn use_exceptions(pool: &PgPool, uses: &[ExceptionUse]) -> Result<ExceptionsTaken, StoreError> {
    let mut tx = pool.begin().await?;
    let mut used = Vec::with_capacity(uses.len());
    for one in uses {
        let row: Option<(i64, String, String)> = sqlx::query_as(&format!(
            "update tag_exceptions e set used_at = now(), used_by = $2, used_for = $3
             from projects p
             where e.id = $1 and p.id = e.project_id and {USABLE}
             returning e.project_id, e.granted_by, e.reason"
        ))
        .bind(one.id)
        .bind(one.used_by.caller())
        .bind(&one.used_for)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((project_id, granted_by, reason)) = row else {
            return Ok(ExceptionsTaken::Gone(one.id));
        };
        AuditEntry::new(AuditKind::ExceptionUse)
            .project(project_id)
            .after(
                ExceptionRecord {
                    used_for: Some(one.used_for.clone()),
                    granted_by: Some(granted_by.clone()),
                    reason: Some(reason.clone()),
                    ..ExceptionRecord::of(one.id)
                }
                .json(),
            )
            .record(&mut *tx, &one.used_by)
            .await?;
        used.push(UsedException { id: one.id, granted_by, reason });
    }
    tx.commit().await?;
    Ok(ExceptionsTaken::Used(used))
}

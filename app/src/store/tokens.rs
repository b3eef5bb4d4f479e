//! Service tokens: creating and revoking them (audited), and what the decision caches load.

use super::audit::AuditEntry;
use super::AuditKind;
use super::{on_constraint, StoreError};
use crate::account::{TokenGrant, TokenName, TokenSecret};
use crate::principal::Principal;
use sqlx::{PgExecutor, PgPool};

/// A service token as the decision cache holds it.
pub struct ActiveToken {
    pub id: i64,
    pub name: String,
    pub sha256: Vec<u8>,
    pub grant: TokenGrant,
}

/// Stores a new token's hash under `name`; refused while an unrevoked token has that name.
pub async fn create_token(
    pool: &PgPool,
    by: &Principal,
    name: &TokenName,
    secret: &TokenSecret,
    grant: &TokenGrant,
) -> Result<i64, StoreError> {
    by.may_administer()?;
    let (scopes, projects) = grant_columns(grant);
    let mut tx = pool.begin().await?;
    let (id,): (i64,) = sqlx::query_as(
        r"insert into service_tokens (name, token_sha256, created_by, scopes, projects)
          values ($1, $2, $3, $4, $5) returning id",
    )
    .bind(name.as_str())
    .bind(secret.sha256().as_slice())
    .bind(by.actor())
    .bind(scopes)
    .bind(projects)
    .fetch_one(&mut *tx)
    .await
    .map_err(on_constraint("service_tokens_active_name", "name", || {
        format!("a token named `{name}` already exists; revoke it first or choose another name")
    }))?;
    AuditEntry::new(AuditKind::TokenCreate)
        .after(serde_json::json!({ "token": name.as_str(), "scopes": grant.describe() }))
        .record(&mut *tx, by)
        .await?;
    tx.commit().await?;
    Ok(id)
}

/// Revokes the token named `name`: every process refuses it once the change is announced.
pub async fn revoke_token(pool: &PgPool, by: &Principal, name: &TokenName) -> Result<(), StoreError> {
    by.may_administer()?;
    let mut tx = pool.begin().await?;
    let revoked = sqlx::query(
        r"update service_tokens set revoked_at = now(), revoked_by = $2 where name = $1 and revoked_at is null",
    )
    .bind(name.as_str())
    .bind(by.actor())
    .execute(&mut *tx)
    .await?;
    if revoked.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("there is no token named `{name}` (or it is already revoked)")));
    }
    AuditEntry::new(AuditKind::TokenRevoke)
        .before(serde_json::json!({ "token": name.as_str() }))
        .record(&mut *tx, by)
        .await?;
    tx.commit().await?;
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

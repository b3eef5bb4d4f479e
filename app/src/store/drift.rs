//! Drift: immutable tags a registry event or a sync pass found moved or gone, changes that
//! bypassed enforcement. Recorded with the audit trail's `drift.found`, shown until acknowledged
//! (`drift.acknowledge`) or restored (`drift.restore`).

use super::audit::{AuditEntry, AuditKind};
use super::inventory::{put_tags, Sighting, TagMoved};
use super::StoreError;
use crate::policy::{Digest, RepositoryName, Tag};
use crate::principal::{Principal, Service};
use sqlx::PgPool;
use time::OffsetDateTime;

/// How a drift was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FoundBy {
    Event,
    Sync,
}

impl FoundBy {
    pub fn as_str(self) -> &'static str {
        match self {
            FoundBy::Event => "event",
            FoundBy::Sync => "sync",
        }
    }

    pub fn parse(value: &str) -> Result<Self, String> {
        [FoundBy::Event, FoundBy::Sync]
            .into_iter()
            .find(|found_by| found_by.as_str() == value)
            .ok_or_else(|| format!("`{value}` is not how a drift is found"))
    }

    /// How pages say it.
    pub fn described(self) -> &'static str {
        match self {
            FoundBy::Event => "a registry event",
            FoundBy::Sync => "the inventory sync",
        }
    }

    /// Who the audit trail names for it.
    fn actor(self) -> Principal {
        Principal::Tagward(match self {
            FoundBy::Event => Service::RegistryEvents,
            FoundBy::Sync => Service::InventorySync,
        })
    }
}

/// One immutable tag found moved or gone.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Drift {
    pub id: i64,
    pub project_id: i64,
    pub repository: RepositoryName,
    pub tag: Tag,
    pub held_digest: Digest,
    /// `None`: the tag was gone.
    pub found_digest: Option<Digest>,
    pub found_by: FoundBy,
    pub found_at: OffsetDateTime,
}

/// A drift as the audit trail keeps it (`drift.found`, `.acknowledge`, `.restore`): written here,
/// read back by the Activity tab.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DriftRecord {
    pub drift: i64,
    pub repository: RepositoryName,
    pub tag: Tag,
    pub held: Digest,
    /// `None`: the tag was gone.
    pub found: Option<Digest>,
    pub found_by: FoundBy,
}

impl Drift {
    fn described(&self) -> serde_json::Value {
        let record = DriftRecord {
            drift: self.id,
            repository: self.repository.clone(),
            tag: self.tag.clone(),
            held: self.held_digest.clone(),
            found: self.found_digest.clone(),
            found_by: self.found_by,
        };
        serde_json::to_value(record).unwrap_or_default()
    }
}

/// Records the immutable tags of project `project_id` that `moved` (each with its audit entry),
/// in one transaction. A move already open (same tag, same digests) is not recorded twice, and a
/// move back to the digest an open drift held (Restore, or someone putting it right at the
/// registry) is no drift.
/// Returns how many were recorded.
pub async fn record_drift(
    pool: &PgPool,
    project_id: i64,
    moved: &[&TagMoved],
    found_by: FoundBy,
) -> Result<usize, StoreError> {
    let mut tx = pool.begin().await?;
    let mut recorded = 0;
    for change in moved {
        let drift: Option<Drift> = sqlx::query_as(
            r"insert into tag_drift (project_id, repository, tag, held_digest, found_digest, found_by)
              select $1, $2, $3, $4, $5, $6
              where not exists (
                select 1 from tag_drift where project_id = $1 and repository = $2 and tag = $3 and (
                  -- Found already.
                  (acknowledged_at is null and held_digest = $4 and found_digest is not distinct from $5)
                  -- A move back to what an open drift held: put right at the registry, not a new drift.
                  or (acknowledged_at is null and held_digest = $5)
                  -- The registry's echo of a Restore, however late it is reported (its event may be
                  -- applied before the Restore closed the drift, and reported after).
                  or (restored and held_digest = $5 and found_digest is not distinct from $4)))
              returning id, project_id, repository, tag, held_digest, found_digest, found_by, found_at",
        )
        .bind(project_id)
        .bind(&change.repository)
        .bind(&change.tag)
        .bind(&change.before)
        .bind(&change.after)
        .bind(found_by)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(drift) = drift {
            AuditEntry::new(AuditKind::DriftFound)
                .project(project_id)
                .after(drift.described())
                .record(&mut *tx, &found_by.actor())
                .await?;
            recorded += 1;
        }
    }
    tx.commit().await?;
    Ok(recorded)
}

/// The drift of `project_id` not acknowledged yet, newest first.
pub async fn open_drift(pool: &PgPool, project_id: i64) -> Result<Vec<Drift>, StoreError> {
    Ok(sqlx::query_as(
        r"select id, project_id, repository, tag, held_digest, found_digest, found_by, found_at from tag_drift
          where project_id = $1 and acknowledged_at is null order by found_at desc, id desc limit 100",
    )
    .bind(project_id)
    .fetch_all(pool)
    .await?)
}

/// The open drift `id` of `project_id`, if there is one.
pub async fn open_drift_by_id(pool: &PgPool, project_id: i64, id: i64) -> Result<Option<Drift>, StoreError> {
    Ok(sqlx::query_as(
        r"select id, project_id, repository, tag, held_digest, found_digest, found_by, found_at from tag_drift
          where project_id = $1 and id = $2 and acknowledged_at is null",
    )
    .bind(project_id)
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// Closes the open drift `drift` for `by`: acknowledged as it is, or `restored` (the held
/// manifest was put back on the tag, which the inventory then holds again). `false` when
/// someone closed it first.
pub async fn close_drift(pool: &PgPool, by: &Principal, drift: &Drift, restored: bool) -> Result<bool, StoreError> {
    let mut tx = pool.begin().await?;
    let closed = sqlx::query(
        r"update tag_drift set acknowledged_at = now(), acknowledged_by = $2, restored = $3
          where id = $1 and acknowledged_at is null",
    )
    .bind(drift.id)
    .bind(by.actor())
    .bind(restored)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !closed {
        return Ok(false);
    }
    if restored {
        // Written as the gateway writes a push it let through: the registry's own event for the
        // restore then only confirms it (rather than being taken for another move).
        let tags = [(drift.tag.clone(), drift.held_digest.clone())];
        put_tags(&mut *tx, &drift.repository, &tags, Sighting::Gateway).await?;
    }
    let kind = if restored { AuditKind::DriftRestore } else { AuditKind::DriftAcknowledge };
    AuditEntry::new(kind).project(drift.project_id).after(drift.described()).record(&mut *tx, by).await?;
    tx.commit().await?;
    Ok(true)
}

//! The tag inventory: what the registry holds as far as tagward knows, written by the gateway as
//! changes pass through it and by the background sync, read by the Tags tab and the impact preview.
//! Never read by enforcement (it asks the registry itself): a stale inventory costs a wrong number
//! on a page, never a wrong decision.

use super::StoreError;
use crate::policy::route::Reference;
use crate::policy::{Digest, RepositoryName, Tag};
use crate::registry_events::RegistryChange;
use futures_util::TryStreamExt;
use sqlx::PgPool;
use time::OffsetDateTime;

/// One tag as the inventory holds it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InventoryTag {
    pub repository: String,
    pub tag: String,
    pub digest: String,
    pub pushed_at: OffsetDateTime,
    pub source: String,
}

/// Records what the gateway let through: `tags` of `repository` now point at `digest`.
pub async fn record_push(
    pool: &PgPool,
    repository: &RepositoryName,
    tags: &[Tag],
    digest: &Digest,
) -> Result<(), StoreError> {
    let tags: Vec<(&str, &str)> = tags.iter().map(|tag| (tag.as_str(), digest.as_str())).collect();
    // A push the gateway let through moved no immutable tag: nothing to report.
    upsert_tags(pool, repository, &tags, Source::Gateway).await.map(drop)
}

/// Who saw a tag at its digest.
enum Source {
    Gateway,
    /// A sync that started reading the repository at this time: rows confirmed since (by the
    /// gateway) are newer than what it read, and are kept.
    Sync(OffsetDateTime),
}

/// Stores (tag, digest) pairs of `repository`: a tag already at that digest keeps its time and
/// source and is only confirmed; one at another digest takes the new one, now.
async fn upsert_tags(
    db: impl sqlx::PgExecutor<'_>,
    repository: &RepositoryName,
    tags: &[(&str, &str)],
    source: Source,
) -> Result<Vec<TagMoved>, StoreError> {
    let (names, digests): (Vec<&str>, Vec<&str>) = tags.iter().copied().unzip();
    let (source, unless_seen_since) = match source {
        Source::Gateway => ("gateway", None),
        Source::Sync(started) => ("sync", Some(started)),
    };
    // `before` is read from the statement's snapshot: what the rows held before it wrote them.
    let written: Vec<(String, String, Option<String>, String)> = sqlx::query_as(
        r"with before as (select tag, digest from registry_tags where repository = $2 and tag = any($3))
          insert into registry_tags (project, repository, tag, digest, pushed_at, seen_at, source)
          select $1, $2, tag, digest, now(), now(), $5 from unnest($3::text[], $4::text[]) as t(tag, digest)
          -- A sync's read may predate a delete an event reported since: that tag stays deleted.
          where $6::timestamptz is null or not exists (
            select 1 from registry_deletions d
            where d.repository = $2 and d.reference in (t.tag, t.digest) and d.deleted_at > $6)
          on conflict (repository, tag) do update set
            pushed_at = case when registry_tags.digest = excluded.digest then registry_tags.pushed_at else now() end,
            source = case when registry_tags.digest = excluded.digest then registry_tags.source else excluded.source end,
            digest = excluded.digest, seen_at = now()
          where $6::timestamptz is null or registry_tags.seen_at < $6
          returning repository, tag, (select b.digest from before b where b.tag = registry_tags.tag) as before,
                    digest as after",
    )
    .bind(repository.project())
    .bind(repository.as_str())
    .bind(&names)
    .bind(&digests)
    .bind(source)
    .bind(unless_seen_since)
    .fetch_all(db)
    .await?;
    Ok(written
        .into_iter()
        .filter_map(|(repository, tag, before, after)| {
            let before = before.filter(|before| *before != after)?;
            Some(TagMoved { repository, tag, before, after: Some(after) })
        })
        .collect())
}

/// Records a delete the gateway let through: the tag, or every tag pointing at the manifest.
pub async fn record_delete(
    pool: &PgPool,
    repository: &RepositoryName,
    reference: &Reference,
) -> Result<(), StoreError> {
    delete_rows(pool, repository, reference, None).await.map(drop)
}

/// Removes the rows of `repository` that `reference` names (the tag, or every tag on the
/// manifest), but not those known since `unless_seen_after`; returns what it removed.
async fn delete_rows(
    db: impl sqlx::PgExecutor<'_>,
    repository: &RepositoryName,
    reference: &Reference,
    unless_seen_after: Option<OffsetDateTime>,
) -> Result<Vec<TagMoved>, StoreError> {
    let (column, value) = match reference {
        Reference::Tag(tag) => ("tag", tag.as_str()),
        Reference::Digest(digest) => ("digest", digest.as_str()),
    };
    Ok(sqlx::query_as(&format!(
        r"delete from registry_tags
          where repository = $1 and {column} = $2 and ($3::timestamptz is null or seen_at <= $3)
          returning repository, tag, digest as before, null::text as after"
    ))
    .bind(repository.as_str())
    .bind(value)
    .bind(unless_seen_after)
    .fetch_all(db)
    .await?)
}

/// A tag the inventory held at `before` that a change moved to `after` (`None`: removed).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TagMoved {
    pub repository: String,
    pub tag: String,
    pub before: String,
    pub after: Option<String>,
}

/// How [`apply_registry_changes`] took a batch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ChangesApplied {
    /// Changes that set or confirmed a tag, or removed what they name.
    pub applied: usize,
    /// Changes older than what the inventory knows (a newer push, delete or read): left out.
    pub outdated: usize,
    /// The tags the inventory held that the changes moved or removed.
    pub moved: Vec<TagMoved>,
}

/// Applies the registry's reported changes in one transaction (all or none), in order. Order-safe
/// and idempotent: a change older than the row's latest evidence (`seen_at`: a push, a delete, a
/// gateway write, a sync read) or than a recorded delete leaves it alone, and a repeated change
/// only confirms. Deletes are remembered for a day, so a late push cannot undo them.
pub async fn apply_registry_changes(
    pool: &PgPool,
    sender: &str,
    changes: &[RegistryChange],
) -> Result<ChangesApplied, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        r"insert into registry_event_stream (sender, last_at, notifications) values ($1, now(), 1)
          on conflict (singleton) do update
            set sender = excluded.sender, last_at = now(), notifications = registry_event_stream.notifications + 1",
    )
    .bind(sender)
    .execute(&mut *tx)
    .await?;
    let mut outcome = ChangesApplied::default();
    for change in changes {
        let (applied, moved) = match change {
            RegistryChange::Pushed { repository, tag, digest, at } => {
                let (applied, before): (bool, Option<String>) = sqlx::query_as(
                    r"with before as (select digest from registry_tags where repository = $2 and tag = $3),
                     written as (
                       insert into registry_tags as t (project, repository, tag, digest, pushed_at, seen_at, source)
                       select $1, $2, $3, $4, $5, $5, 'event'
                       where not exists (
                         select 1 from registry_deletions d
                         where d.repository = $2 and d.reference in ($3, $4) and d.deleted_at >= $5)
                       on conflict (repository, tag) do update set
                         pushed_at = case when t.digest = excluded.digest then least(t.pushed_at, excluded.pushed_at)
                                     else excluded.pushed_at end,
                         source = case when t.digest = excluded.digest then t.source else 'event' end,
                         seen_at = greatest(t.seen_at, excluded.seen_at),
                         digest = excluded.digest
                       where t.digest = excluded.digest or t.seen_at <= excluded.seen_at
                       returning 1)
                     select exists (select 1 from written), (select digest from before)",
                )
                .bind(repository.project())
                .bind(repository.as_str())
                .bind(tag.as_str())
                .bind(digest.as_str())
                .bind(at)
                .fetch_one(&mut *tx)
                .await?;
                let moved = before.filter(|before| applied && before != digest.as_str()).map(|before| TagMoved {
                    repository: repository.to_string(),
                    tag: tag.to_string(),
                    before,
                    after: Some(digest.to_string()),
                });
                (applied, moved.into_iter().collect())
            }
            RegistryChange::Deleted { repository, reference, at } => {
                remember_delete(&mut tx, repository, reference, *at).await?;
                (true, delete_rows(&mut *tx, repository, reference, Some(*at)).await?)
            }
        };
        if applied {
            outcome.applied += 1;
        } else {
            outcome.outdated += 1;
        }
        outcome.moved.extend(moved);
    }
    tx.commit().await?;
    Ok(outcome)
}

/// Notes that `reference` (a tag or a digest) of `repository` was deleted at `at`.
async fn remember_delete(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    repository: &RepositoryName,
    reference: &Reference,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    sqlx::query(
        r"insert into registry_deletions (repository, reference, deleted_at) values ($1, $2, $3)
          on conflict (repository, reference) do update
            set deleted_at = greatest(registry_deletions.deleted_at, excluded.deleted_at)",
    )
    .bind(repository.as_str())
    .bind(reference.to_string())
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The inventory's rows for these (repository, tag) pairs, by pair.
pub async fn inventory_tags(
    pool: &PgPool,
    keys: &[(String, String)],
) -> Result<std::collections::HashMap<(String, String), InventoryTag>, StoreError> {
    let (repositories, tags): (Vec<&str>, Vec<&str>) = keys.iter().map(|(r, t)| (r.as_str(), t.as_str())).unzip();
    let rows = sqlx::query_as::<_, InventoryTag>(
        r"select repository, tag, digest, pushed_at, source from registry_tags
          where (repository, tag) in (select * from unnest($1::text[], $2::text[]))",
    )
    .bind(&repositories)
    .bind(&tags)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|row| ((row.repository.clone(), row.tag.clone()), row)).collect())
}

/// The number that changes whenever the inventory of `project` does (0 before its first change).
pub async fn inventory_version(pool: &PgPool, project: &str) -> Result<i64, StoreError> {
    let version = sqlx::query_scalar("select version from inventory_versions where project = $1")
        .bind(project)
        .fetch_optional(pool)
        .await?;
    Ok(version.unwrap_or(0))
}

/// Every repository of `project` with its tags (in order), streamed to `each`: what counting
/// needs, one row a repository (a project may have hundreds of thousands of tags; none is held
/// here beyond one repository's).
pub async fn each_project_repository(
    pool: &PgPool,
    project: &str,
    mut each: impl FnMut(&str, &[String]),
) -> Result<(), StoreError> {
    let mut rows = sqlx::query_as::<_, (String, Vec<String>)>(
        r"select repository, array_agg(tag order by tag) from registry_tags
          where project = $1 group by repository order by repository",
    )
    .bind(project)
    .fetch(pool);
    while let Some((repository, tags)) = rows.try_next().await? {
        each(&repository, &tags);
    }
    Ok(())
}

/// An attachment list tag of a project (`sha256-<hex>`, cosign's `.sig`, `.att`, `.sbom`) and
/// the tags pointing at its subject, as the inventory holds them.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AttachmentListTag {
    pub repository: String,
    pub tag: String,
    pub subject_tags: Vec<String>,
}

/// Every attachment list tag of `project`, with the tags pointing at its subject.
pub async fn attachment_lists(pool: &PgPool, project: &str) -> Result<Vec<AttachmentListTag>, StoreError> {
    Ok(sqlx::query_as(
        r"select l.repository, l.tag,
                 coalesce(array_agg(t.tag order by t.tag) filter (where t.tag is not null), '{}') as subject_tags
          from registry_tags l
          left join registry_tags t on t.repository = l.repository and t.digest = 'sha256:' || substr(l.tag, 8, 64)
          where l.project = $1 and l.tag ~ '^sha256-[0-9a-f]{64}(\.(sig|att|sbom))?$'
          group by l.repository, l.tag
          order by l.repository, l.tag",
    )
    .bind(project)
    .fetch_all(pool)
    .await?)
}

/// The sync's progress and health.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SyncState {
    pub registry: String,
    pub pass_started_at: OffsetDateTime,
    /// The pass lists tags only, asking the digests of the tags the inventory does not hold.
    pub pass_light: bool,
    pub full_started_at: Option<OffsetDateTime>,
    pub resume_repository: Option<String>,
    pub resume_tag: Option<String>,
    pub repository_started_at: Option<OffsetDateTime>,
    pub completed_started_at: Option<OffsetDateTime>,
    pub completed_at: Option<OffsetDateTime>,
    pub repositories: Option<i64>,
    pub tags: Option<i64>,
    pub failed_at: Option<OffsetDateTime>,
    pub failure: Option<String>,
}

impl SyncState {
    /// Whether a pass is under way (started and not completed).
    pub fn in_progress(&self) -> bool {
        self.completed_started_at != Some(self.pass_started_at)
    }
}

/// The registry's notifications as the inventory last heard of them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventStream {
    pub sender: String,
    pub last_at: OffsetDateTime,
    pub notifications: i64,
}

pub async fn event_stream(pool: &PgPool) -> Result<Option<EventStream>, StoreError> {
    Ok(sqlx::query_as::<_, EventStream>("select sender, last_at, notifications from registry_event_stream")
        .fetch_optional(pool)
        .await?)
}

pub async fn sync_state(pool: &PgPool) -> Result<Option<SyncState>, StoreError> {
    Ok(sqlx::query_as::<_, SyncState>("select * from registry_sync").fetch_optional(pool).await?)
}

/// The pass to run: the one under way if there is one (to resume), else a new one from the
/// start of the catalog (a completed pass left no place to resume from: [`finish_sync_pass`]
/// clears it). A new pass is light when the last full one started less than `full_every` ago and
/// the registry has sent an event since it started (so events report what a light pass skips).
pub async fn begin_sync_pass(
    pool: &PgPool,
    registry: &str,
    full_every: std::time::Duration,
) -> Result<SyncState, StoreError> {
    Ok(sqlx::query_as::<_, SyncState>(
        r"with light as (
            select coalesce((
              select s.full_started_at > now() - make_interval(secs => $2)
                     and exists (select 1 from registry_event_stream e where e.last_at > s.full_started_at)
              from registry_sync s), false) as light)
          insert into registry_sync (registry, pass_started_at) values ($1, now())
          on conflict (singleton) do update set
            registry = excluded.registry,
            pass_light = case when registry_sync.completed_started_at is not distinct from registry_sync.pass_started_at
                         then (select light from light) else registry_sync.pass_light end,
            pass_started_at = case when registry_sync.completed_started_at is not distinct from registry_sync.pass_started_at
                              then now() else registry_sync.pass_started_at end
          returning *",
    )
    .bind(registry)
    .bind(full_every.as_secs_f64())
    .fetch_one(pool)
    .await?)
}

/// Stores one page of a repository's tags as read since `started` (the time the repository
/// started to be read), and the sync's place after it (`last_tag`, the page's last). A row the
/// gateway or an event wrote since `started` is newer than what was read and is kept. Returns the
/// tags it found at another digest than the inventory held.
pub async fn store_synced_tags(
    pool: &PgPool,
    repository: &RepositoryName,
    started: OffsetDateTime,
    tags: &[(String, String)],
    last_tag: &str,
) -> Result<Vec<TagMoved>, StoreError> {
    let tags: Vec<(&str, &str)> = tags.iter().map(|(tag, digest)| (tag.as_str(), digest.as_str())).collect();
    let mut tx = pool.begin().await?;
    let moved = upsert_tags(&mut *tx, repository, &tags, Source::Sync(started)).await?;
    sqlx::query(
        r"update registry_sync set resume_repository = $1, resume_tag = $2, repository_started_at = $3,
            failed_at = null, failure = null",
    )
    .bind(repository.as_str())
    .bind(last_tag)
    .bind(started)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(moved)
}

/// A repository read to its last tag: its rows not confirmed since `started` are tags deleted
/// from the registry. `repository` is the catalog's name (read even when tagward cannot parse
/// it, so the pass moves on). Returns the tags removed.
pub async fn finish_synced_repository(
    pool: &PgPool,
    repository: &str,
    started: OffsetDateTime,
) -> Result<Vec<TagMoved>, StoreError> {
    let mut tx = pool.begin().await?;
    let removed = sqlx::query_as(
        r"delete from registry_tags where repository = $1 and seen_at < $2
          returning repository, tag, digest as before, null::text as after",
    )
    .bind(repository)
    .bind(started)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query(
        r"update registry_sync set resume_repository = $1, resume_tag = null, repository_started_at = null,
            failed_at = null, failure = null",
    )
    .bind(repository)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(removed)
}

/// The whole catalog read: rows not confirmed during the pass belong to repositories gone from
/// it. Returns the counts stored, and the tags removed.
pub async fn finish_sync_pass(
    pool: &PgPool,
    pass_started_at: OffsetDateTime,
) -> Result<((i64, i64), Vec<TagMoved>), StoreError> {
    let mut tx = pool.begin().await?;
    let removed = sqlx::query_as(
        r"delete from registry_tags where seen_at < $1
          returning repository, tag, digest as before, null::text as after",
    )
    .bind(pass_started_at)
    .fetch_all(&mut *tx)
    .await?;
    // Deletes from before the pass are in what it read; kept a day for events still under way.
    sqlx::query("delete from registry_deletions where deleted_at < least($1, now() - interval '1 day')")
        .bind(pass_started_at)
        .execute(&mut *tx)
        .await?;
    let (repositories, tags): (i64, i64) =
        sqlx::query_as("select count(distinct repository), count(*) from registry_tags").fetch_one(&mut *tx).await?;
    sqlx::query(
        r"update registry_sync set completed_started_at = pass_started_at, completed_at = now(),
            full_started_at = case when pass_light then full_started_at else pass_started_at end,
            resume_repository = null, resume_tag = null, repository_started_at = null,
            repositories = $1, tags = $2, failed_at = null, failure = null",
    )
    .bind(repositories)
    .bind(tags)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(((repositories, tags), removed))
}

/// Why the pass stopped where it did (it resumes there).
pub async fn record_sync_failure(pool: &PgPool, failure: &str) -> Result<(), StoreError> {
    sqlx::query("update registry_sync set failed_at = now(), failure = $1").bind(failure).execute(pool).await?;
    Ok(())
}

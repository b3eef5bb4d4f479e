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

/// Who wrote a tag's row: the source column, shown on the Tags tab.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TagSource {
    Gateway,
    Sync,
    Event,
}

impl TagSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TagSource::Gateway => "gateway",
            TagSource::Sync => "sync",
            TagSource::Event => "event",
        }
    }

    pub fn parse(value: &str) -> Result<Self, String> {
        [TagSource::Gateway, TagSource::Sync, TagSource::Event]
            .into_iter()
            .find(|source| source.as_str() == value)
            .ok_or_else(|| format!("`{value}` is not a tag source"))
    }
}

/// One tag as the inventory holds it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InventoryTag {
    pub repository: RepositoryName,
    pub tag: Tag,
    pub digest: Digest,
    pub pushed_at: OffsetDateTime,
    pub source: TagSource,
}

/// How tagward came to see tags at their digests, which says how new that sighting is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sighting {
    /// The gateway let the push through (or a Restore put the tag back): the newest there is, now.
    Gateway,
    /// A sync that started reading the repository at `started`: a row confirmed since, or a delete
    /// reported since, is newer than what it read and is kept.
    Sync { started: OffsetDateTime },
    /// The registry reported the push at `at`, its own time: a row with later evidence, or a delete
    /// reported at or after it, is newer and is kept.
    Event { at: OffsetDateTime },
}

/// What [`put_tags`] wrote.
#[derive(Debug, Default)]
pub struct TagsPut {
    /// Rows inserted, moved or confirmed (the others were newer than the sighting).
    pub written: usize,
    /// Tags the inventory held at another digest, now moved.
    pub moved: Vec<TagMoved>,
}

/// The one way tags enter the inventory (gateway, sync, events, Restore): `tags` of `repository`
/// were seen at their digests. A tag already at that digest keeps its time and source and is only
/// confirmed; one at another digest takes the new one, at the sighting's time. What a sighting is
/// older than (see [`Sighting`]) is left alone.
pub async fn put_tags(
    db: impl sqlx::PgExecutor<'_>,
    repository: &RepositoryName,
    tags: &[(Tag, Digest)],
    sighting: Sighting,
) -> Result<TagsPut, StoreError> {
    let (names, digests): (Vec<&Tag>, Vec<&Digest>) = tags.iter().map(|(tag, digest)| (tag, digest)).unzip();
    // `at`: the sighting's time (none: the statement's now); `newer_than`: evidence after this
    // time wins over the sighting.
    let (source, at, newer_than) = match sighting {
        Sighting::Gateway => (TagSource::Gateway, None, None),
        Sighting::Sync { started } => (TagSource::Sync, None, Some(started)),
        Sighting::Event { at } => (TagSource::Event, Some(at), Some(at)),
    };
    // `before` is read from the statement's snapshot: what the rows held before it wrote them.
    let written: Vec<(Tag, Option<Digest>, Digest)> = sqlx::query_as(
        r"with before as (select tag, digest from registry_tags where repository = $2 and tag = any($3))
          insert into registry_tags as t (project, repository, tag, digest, pushed_at, seen_at, source)
          select $1, $2, n.tag, n.digest, coalesce($6, now()), coalesce($6, now()), $5
          from unnest($3::text[], $4::text[]) as n(tag, digest)
          -- A delete reported since stays deleted.
          where $7::timestamptz is null or not exists (
            select 1 from registry_deletions d
            where d.repository = $2 and d.reference in (n.tag, n.digest) and d.deleted_at >= $7)
          on conflict (repository, tag) do update set
            pushed_at = case when t.digest = excluded.digest then least(t.pushed_at, excluded.pushed_at)
                        else excluded.pushed_at end,
            source = case when t.digest = excluded.digest then t.source else excluded.source end,
            seen_at = greatest(t.seen_at, excluded.seen_at),
            digest = excluded.digest
          where $7::timestamptz is null or t.digest = excluded.digest or t.seen_at <= $7
          returning tag, (select b.digest from before b where b.tag = t.tag) as before, digest as after",
    )
    .bind(repository.project())
    .bind(repository)
    .bind(&names)
    .bind(&digests)
    .bind(source)
    .bind(at)
    .bind(newer_than)
    .fetch_all(db)
    .await?;
    let mut put = TagsPut { written: written.len(), moved: Vec::new() };
    for (tag, before, after) in written {
        if let Some(before) = before.filter(|before| *before != after) {
            put.moved.push(TagMoved { repository: repository.clone(), tag, before, after: Some(after) });
        }
    }
    Ok(put)
}

/// Records what the gateway let through: `tags` of `repository` now point at `digest`.
pub async fn record_push(
    pool: &PgPool,
    repository: &RepositoryName,
    tags: &[Tag],
    digest: &Digest,
) -> Result<(), StoreError> {
    let tags: Vec<(Tag, Digest)> = tags.iter().map(|tag| (tag.clone(), digest.clone())).collect();
    // A push the gateway let through moved no immutable tag: nothing to report.
    put_tags(pool, repository, &tags, Sighting::Gateway).await.map(drop)
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
    pub repository: RepositoryName,
    pub tag: Tag,
    pub before: Digest,
    pub after: Option<Digest>,
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
                let tags = [(tag.clone(), digest.clone())];
                let put = put_tags(&mut *tx, repository, &tags, Sighting::Event { at: *at }).await?;
                (put.written > 0, put.moved)
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
    Ok(rows.into_iter().map(|row| ((row.repository.to_string(), row.tag.to_string()), row)).collect())
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
    tags: &[(Tag, Digest)],
    last_tag: &str,
) -> Result<Vec<TagMoved>, StoreError> {
    let mut tx = pool.begin().await?;
    let moved = put_tags(&mut *tx, repository, tags, Sighting::Sync { started }).await?.moved;
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

//! What the registry's manifests reference, as tagward has read them (the gateway while deciding
//! deletes and letting immutable pushes through, the sync for immutable tags and referrers tags):
//! what tells the portal what each immutable tag holds and keeps from garbage collection. Written
//! once per manifest (content-addressed); never read by enforcement.

use super::StoreError;
use crate::artifact::{BlobRef, BlobRole, Child, ManifestRefs, Sha256};
use crate::policy::Digest;
use sqlx::PgPool;

/// Records what these manifests of `repository` reference (a manifest already recorded is left
/// as it is: its digest fixes what it references).
pub async fn record_manifests(
    pool: &PgPool,
    repository: &str,
    manifests: &[(Sha256, &ManifestRefs)],
) -> Result<(), StoreError> {
    if manifests.is_empty() {
        return Ok(());
    }
    let rows: Vec<serde_json::Value> = manifests
        .iter()
        .map(|(digest, refs)| {
            serde_json::json!({
                "digest": digest.to_string(),
                "children": refs.children.iter().map(|child| child.digest.to_string()).collect::<Vec<_>>(),
                "platforms": refs.children.iter().map(|child| child.platform.as_deref()).collect::<Vec<_>>(),
                "blobs": refs.blobs.iter().map(|blob| {
                    let role = match blob.role { BlobRole::Config => "config", BlobRole::Layer => "layer" };
                    serde_json::json!({"digest": blob.digest.to_string(), "size": blob.size, "role": role})
                }).collect::<Vec<_>>(),
                "subject": refs.subject.map(|subject| subject.to_string()),
                "artifact_type": refs.artifact_type.as_deref(),
            })
        })
        .collect();
    sqlx::query(
        r"insert into registry_manifests (repository, digest, children, platforms, blobs, subject, artifact_type)
          select $1, r.digest, r.children, r.platforms, r.blobs, r.subject, r.artifact_type
          from jsonb_to_recordset($2) as r(digest text, children jsonb, platforms jsonb, blobs jsonb, subject text,
                                           artifact_type text)
          on conflict (repository, digest) do nothing",
    )
    .bind(repository)
    .bind(serde_json::Value::Array(rows))
    .execute(pool)
    .await?;
    Ok(())
}

/// What these manifests of `repository` reference, for those recorded (every row was written from
/// bytes that hashed to its digest, so a gateway starting cold need not read them again).
pub async fn read_manifests(
    pool: &PgPool,
    repository: &str,
    digests: &[Sha256],
) -> Result<Vec<(Sha256, ManifestRefs)>, StoreError> {
    #[derive(serde::Deserialize)]
    struct Blob {
        digest: String,
        size: u64,
        role: Option<String>,
    }
    let hash = |text: &str| Digest::parse(text).ok().map(|digest| Sha256::from(&digest));
    let digests: Vec<String> = digests.iter().map(ToString::to_string).collect();
    /// digest, children, platforms, blobs, subject, artifact_type
    type Row = (String, serde_json::Value, serde_json::Value, serde_json::Value, Option<String>, Option<String>);
    let rows: Vec<Row> = sqlx::query_as(
        r"select digest, children, platforms, blobs, subject, artifact_type from registry_manifests
              where repository = $1 and digest = any($2)",
    )
    .bind(repository)
    .bind(&digests)
    .fetch_all(pool)
    .await?;
    let mut read = Vec::with_capacity(rows.len());
    for (digest, children, platforms, blobs, subject, artifact_type) in rows {
        let (children, platforms, blobs): (Vec<String>, Vec<Option<String>>, Vec<Blob>) = (
            serde_json::from_value(children).map_err(|e| StoreError::Unexpected(e.into()))?,
            serde_json::from_value(platforms).map_err(|e| StoreError::Unexpected(e.into()))?,
            serde_json::from_value(blobs).map_err(|e| StoreError::Unexpected(e.into()))?,
        );
        // A row that does not read back whole (written by hand) is left to the registry.
        let children: Option<Vec<Child>> = children
            .iter()
            .zip(platforms.into_iter().chain(std::iter::repeat(None)))
            .map(|(child, platform)| {
                Some(Child { digest: hash(child)?, platform: platform.map(String::into_boxed_str) })
            })
            .collect();
        let blobs: Option<Vec<BlobRef>> = blobs
            .iter()
            .map(|blob| {
                let role = if blob.role.as_deref() == Some("config") { BlobRole::Config } else { BlobRole::Layer };
                Some(BlobRef { digest: hash(&blob.digest)?, size: blob.size, role })
            })
            .collect();
        let subject = subject.as_deref().map(hash);
        let (Some(digest), Some(children), Some(blobs), None | Some(Some(_))) =
            (hash(&digest), children, blobs, subject)
        else {
            continue;
        };
        read.push((
            digest,
            ManifestRefs {
                children: children.into(),
                blobs: blobs.into(),
                subject: subject.flatten(),
                artifact_type: artifact_type.map(String::into_boxed_str),
            },
        ));
    }
    Ok(read)
}

/// Of `digests` of `repository`, those not recorded yet.
pub async fn unread_manifests(pool: &PgPool, repository: &str, digests: &[String]) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        r"select d from unnest($2::text[]) as d
          where not exists (select 1 from registry_manifests m where m.repository = $1 and m.digest = d)",
    )
    .bind(repository)
    .bind(digests)
    .fetch_all(pool)
    .await?)
}

/// What one tag holds, as far as its manifests have been read.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct TagHolding {
    pub repository: String,
    pub tag: String,
    /// The platforms of its index (empty for an image).
    pub platforms: Vec<String>,
    /// Manifests it holds: itself, its children at any depth, referrers and theirs.
    pub manifests: i64,
    /// Of those, manifests not read yet (their blobs are not counted).
    pub unread: i64,
    /// Referrers attached to what it holds (signatures, SBOMs, attestations).
    pub referrers: i64,
    /// The sizes of the distinct blobs it holds.
    pub bytes: i64,
}

/// The tags' manifests (from the inventory) and everything reachable from them: children,
/// and referrers (manifests whose `subject` is reached). `$1`, `$2`: repositories and tags.
const HELD: &str = r"
    with recursive roots as (
        select t.repository, t.tag, t.digest
        from unnest($1::text[], $2::text[]) as k(repository, tag)
        join registry_tags t on t.repository = k.repository and t.tag = k.tag
    ), held(repository, root, digest) as (
        select distinct repository, digest, digest from roots
      union
        select h.repository, h.root, n.digest
        from held h
        cross join lateral (
            select jsonb_array_elements_text(m.children) as digest
              from registry_manifests m where m.repository = h.repository and m.digest = h.digest
            union all
            select r.digest from registry_manifests r where r.repository = h.repository and r.subject = h.digest
        ) n
    ), blobs as (
        select distinct h.repository, h.root, b ->> 'digest' as blob, (b ->> 'size')::bigint as size
        from held h
        join registry_manifests m on m.repository = h.repository and m.digest = h.digest
        cross join jsonb_array_elements(m.blobs) b
    )";

/// What each of these (repository, tag) pairs holds (pairs the inventory does not know are left out).
pub async fn tag_holdings(pool: &PgPool, tags: &[(String, String)]) -> Result<Vec<TagHolding>, StoreError> {
    let (repositories, names): (Vec<&str>, Vec<&str>) = tags.iter().map(|(r, t)| (r.as_str(), t.as_str())).unzip();
    let query = format!(
        r"{HELD}, per_root as (
            select h.repository, h.root, count(*) as manifests,
                   count(*) filter (where m.digest is null) as unread,
                   count(*) filter (where m.subject is not null) as referrers
            from held h left join registry_manifests m on m.repository = h.repository and m.digest = h.digest
            group by h.repository, h.root
        )
        select r.repository, r.tag, p.manifests, p.unread, p.referrers,
               coalesce((select sum(b.size) from blobs b where b.repository = r.repository and b.root = r.digest), 0)::bigint
                   as bytes,
               coalesce((select array_agg(x order by x) from registry_manifests m, jsonb_array_elements_text(m.platforms) x
                         where m.repository = r.repository and m.digest = r.digest and x is not null), '{{}}') as platforms
        from roots r join per_root p on p.repository = r.repository and p.root = r.digest"
    );
    let mut tx = without_jit(pool).await?;
    let holdings = sqlx::query_as(&query).bind(&repositories).bind(&names).fetch_all(&mut *tx).await?;
    tx.commit().await?;
    Ok(holdings)
}

/// What is attached to what one tag holds, by kind: the `artifact_type` of each referrer (a
/// manifest whose `subject` it holds), or `cosign.sig` / `cosign.att` / `cosign.sbom` for cosign's
/// list tags of what it holds (counted by their layers, each one signature, attestation or SBOM).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TagAttachments {
    pub repository: String,
    pub tag: String,
    /// The referrer's `artifactType` (empty when it has none), or `cosign.<suffix>`.
    pub kind: String,
    pub count: i64,
}

/// What is attached to what each of these (repository, tag) pairs holds.
pub async fn tag_attachments(pool: &PgPool, tags: &[(String, String)]) -> Result<Vec<TagAttachments>, StoreError> {
    let (repositories, names): (Vec<&str>, Vec<&str>) = tags.iter().map(|(r, t)| (r.as_str(), t.as_str())).unzip();
    // `sha256-` and 64 hex digits are 71 characters: what follows is cosign's suffix.
    let query = format!(
        r"{HELD}
        select r.repository, r.tag, coalesce(m.artifact_type, '') as kind, count(*)::bigint as count
        from roots r
        join held h on h.repository = r.repository and h.root = r.digest
        join registry_manifests m on m.repository = h.repository and m.digest = h.digest
        where m.subject is not null
        group by 1, 2, 3
        union all
        select r.repository, r.tag, 'cosign' || substr(l.tag, 72) as kind,
               greatest((select count(*) from jsonb_array_elements(m.blobs) b where b ->> 'role' = 'layer'), 1)::bigint
        from roots r
        join held h on h.repository = r.repository and h.root = r.digest
        join registry_tags l on l.repository = h.repository
             and l.tag in (replace(h.digest, ':', '-') || '.sig', replace(h.digest, ':', '-') || '.att',
                           replace(h.digest, ':', '-') || '.sbom')
        left join registry_manifests m on m.repository = l.repository and m.digest = l.digest"
    );
    let mut tx = without_jit(pool).await?;
    let attachments = sqlx::query_as(&query).bind(&repositories).bind(&names).fetch_all(&mut *tx).await?;
    tx.commit().await?;
    Ok(attachments)
}

/// A read-only transaction in which PostgreSQL does not JIT-compile: the planner cannot know that
/// a graph is a few manifests deep, estimates the recursive walk at hundreds of thousands of rows,
/// and would spend half a second compiling a query that runs in milliseconds (measured: 506 ms of
/// JIT for a 6 ms query).
async fn without_jit(pool: &PgPool) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("set local jit = off").execute(&mut *tx).await?;
    Ok(tx)
}

/// What these tags hold together: the bytes of the distinct blobs (a blob several of them hold,
/// in any repository, counts once: the registry stores it once), and how many manifests are not
/// read yet.
pub async fn held_bytes(pool: &PgPool, tags: &[(String, String)]) -> Result<HeldBytes, StoreError> {
    let (repositories, names): (Vec<&str>, Vec<&str>) = tags.iter().map(|(r, t)| (r.as_str(), t.as_str())).unzip();
    let query = format!(
        r"{HELD}
        select coalesce((select sum(size) from (select distinct blob, size from blobs) d), 0)::bigint as bytes,
               (select count(*) from (select distinct h.repository, h.digest from held h) h
                where not exists (select 1 from registry_manifests m
                                  where m.repository = h.repository and m.digest = h.digest)) as unread"
    );
    let mut tx = without_jit(pool).await?;
    let held = sqlx::query_as(&query).bind(&repositories).bind(&names).fetch_one(&mut *tx).await?;
    tx.commit().await?;
    Ok(held)
}

/// The blobs a set of tags holds, in bytes, and the manifests whose blobs are not counted yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct HeldBytes {
    pub bytes: i64,
    pub unread: i64,
}

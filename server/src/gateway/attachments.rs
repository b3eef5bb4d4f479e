//! Pushes to attachment lists (`sha256-<hex>`, cosign's `.sig`, `.att`, `.sbom`), read for their
//! decision: the pushed body must be a list of its kind (400 otherwise, never passed through);
//! the current list is read from the registry under the tag's lock; every new entry of a
//! referrers list is read (bounded, checked against its digest, remembered like the held-walk's
//! manifests) to see that it really is a referrer of the subject. What the engine makes of it is
//! [`app::policy::CompiledPolicy::check_list_push`]'s to say.

use super::held::{HeldLimits, ManifestCache, WalkError};
use super::Refusal;
use crate::registry::Registry;
use app::artifact::{ManifestError, ManifestRefs, Sha256};
use app::policy::attachment::ForeignEntry;
use app::policy::{AttachmentList, Digest, ListEntries, ListKind, ListPush, ListUpdate, RepositoryName, Tag};
use axum::http::{HeaderValue, StatusCode};
use futures_util::{StreamExt, TryStreamExt};
use std::sync::Arc;

/// Registry reads made side by side when checking new entries.
const CONCURRENCY: usize = 8;

/// A list before and after a push, as read.
pub struct Update<'a> {
    pub list: &'a AttachmentList,
    /// `None` when the list does not exist yet; `Some(Err(why))` when it exists but is not a list
    /// of its kind (then an append cannot be told from a rewrite).
    pub current: Option<Result<ListEntries, String>>,
    pub pushed: ListEntries,
}

/// The pushed body read as a list of `list`'s kind; 400 `MANIFEST_INVALID` when it is none.
pub fn pushed_entries(tag: &Tag, list: &AttachmentList, body: &[u8]) -> Result<ListEntries, Refusal> {
    ListEntries::parse(list.kind(), body).map_err(|why| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "MANIFEST_INVALID",
            format!(
                "tag \"{tag}\" is an attachment list ({}), but the manifest pushed to it is none: {why}",
                list.kind().as_str()
            ),
            serde_json::json!({ "tag": tag.as_str() }),
        )
    })
}

/// The digest the list tag points at now and what it lists (`None`, `None` when it does not
/// exist). One GET: the bytes give both.
pub async fn current_list(
    registry: &Registry,
    repository: &RepositoryName,
    tag: &Tag,
    list: &AttachmentList,
    authorization: Option<&HeaderValue>,
) -> Result<(Option<Digest>, Option<Result<ListEntries, String>>), Refusal> {
    match registry.manifest(repository.as_str(), tag.as_str(), authorization).await? {
        None => Ok((None, None)),
        Some(bytes) => Ok((Some(Sha256::of(&bytes).digest()), Some(ListEntries::parse(list.kind(), &bytes)))),
    }
}

/// The list push with its entries compared and its new referrers checked (holders of the subject
/// are not looked for here).
pub async fn check_update(
    registry: &Registry,
    cache: &ManifestCache,
    repository: &RepositoryName,
    update: Update<'_>,
    authorization: Option<&HeaderValue>,
    limits: &HeldLimits,
) -> Result<ListPush, Refusal> {
    let list = update.list.clone();
    let current = match update.current {
        None => None,
        Some(Ok(entries)) => Some(entries),
        Some(Err(_)) => return Ok(ListPush { list, update: None, subject_held_by: Vec::new() }),
    };
    let mut update = ListUpdate { current, pushed: update.pushed, foreign: Vec::new() };
    if list.kind() == ListKind::Referrers {
        let added: Vec<Digest> = update.added().into_iter().cloned().collect();
        if added.len() > limits.max_reads {
            return Err(WalkError::Bounded(format!(
                "the list adds {} entries, more than tagward reads to check them (--held-max-reads {})",
                added.len(),
                limits.max_reads
            ))
            .into());
        }
        let subject = Sha256::from(list.subject());
        update.foreign = futures_util::stream::iter(added)
            .map(|entry| async move {
                let why = foreign(registry, cache, repository, subject, &entry, authorization).await?;
                Ok::<_, Refusal>(why.map(|why| ForeignEntry { digest: entry, why }))
            })
            .buffered(CONCURRENCY)
            .try_filter_map(|foreign| async move { Ok(foreign) })
            .try_collect()
            .await?;
    }
    Ok(ListPush { list, update: Some(update), subject_held_by: Vec::new() })
}

/// Why `entry` is not a referrer of `subject` in `repository`, if it is not.
async fn foreign(
    registry: &Registry,
    cache: &ManifestCache,
    repository: &RepositoryName,
    subject: Sha256,
    entry: &Digest,
    authorization: Option<&HeaderValue>,
) -> Result<Option<String>, Refusal> {
    let digest = Sha256::from(entry);
    let refs = match cache.get(&digest) {
        Some(refs) => refs,
        None => {
            let Some(bytes) = registry.manifest(repository.as_str(), entry.as_str(), authorization).await? else {
                return Ok(Some(format!("\"{repository}\" has no such manifest (push it before listing it)")));
            };
            match ManifestRefs::parse(digest, &bytes) {
                Ok(refs) => {
                    let refs = Arc::new(refs);
                    cache.insert(digest, refs.clone());
                    refs
                }
                Err(error @ ManifestError::DigestMismatch { .. }) => return Err(WalkError::Manifest(error).into()),
                Err(ManifestError::Unreadable { why, .. }) => return Ok(Some(format!("it cannot be read: {why}"))),
            }
        }
    };
    Ok(match refs.subject {
        Some(own) if own == subject => None,
        Some(other) => Some(format!("its subject is {other}")),
        None => Some("it has no subject".to_owned()),
    })
}

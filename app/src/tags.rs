//! The Tags tab's server function: a project's tags as the inventory holds them, filtered and
//! paged, with the rules that make each immutable and what the immutable ones hold.

use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::inventory::{AttachmentKind, Holding, TAGS_PER_PAGE};
use crate::inventory::{Counted, Freshness, Locked, TagRow};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// The Tags tab's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagsView {
    pub project: crate::account::ProjectAccess,
    pub freshness: Freshness,
    pub rows: Vec<TagRow>,
    /// Tags and repositories matching the filter, and of the project.
    pub matched: Counted,
    pub total: Counted,
    /// Immutable tags among those matching.
    pub immutable: u64,
    pub page: usize,
    pub pages: usize,
    /// What is wrong with the filter (it is then not applied), naming the field and value.
    pub filter_error: Option<String>,
    /// Why the policy cannot be evaluated (then no tag is shown as immutable or mutable).
    pub policy_problem: Option<String>,
    /// What the project's immutable tags keep from garbage collection (`None`: more than
    /// [`crate::inventory::MAX_WEIGHED_TAGS`] immutable tags, not weighed here).
    pub locked: Option<Locked>,
    /// Immutable tags changed behind tagward's back, until someone deals with them.
    pub drift: crate::drift::DriftView,
    /// The project's attachment list tags (`sha256-<hex>`, `.sig`, …), left out of the rows: what
    /// they list is shown with the tags whose images they belong to.
    pub attachment_lists: u64,
}

#[cfg(feature = "ssr")]
mod ssr {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    /// The rows of `tags` (repository path inside `project`, tag, rules): each as the inventory
    /// holds it, and for an immutable one what it holds and has attached. A tag gone between the
    /// reads (a delete just now) is left out.
    pub async fn tag_rows(
        pool: &sqlx::PgPool,
        project: &str,
        tags: Vec<(String, String, Vec<i64>)>,
    ) -> Result<Vec<TagRow>, AppError> {
        let on_page: Vec<(String, String, Vec<i64>)> =
            tags.into_iter().map(|(path, tag, rules)| (format!("{project}/{path}"), tag, rules)).collect();
        let keys: Vec<(String, String)> =
            on_page.iter().map(|(repository, tag, _)| (repository.clone(), tag.clone())).collect();
        let immutable_keys: Vec<(String, String)> = on_page
            .iter()
            .filter(|(_, _, ids)| !ids.is_empty())
            .map(|(repository, tag, _)| (repository.clone(), tag.clone()))
            .collect();
        let (mut found, held, attached) = tokio::try_join!(
            crate::store::inventory_tags(pool, &keys),
            crate::store::tag_holdings(pool, &immutable_keys),
            crate::store::tag_attachments(pool, &immutable_keys),
        )?;
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        // Each tag's attachments by kind, in the kinds' order.
        let mut attachments: HashMap<(String, String), BTreeMap<AttachmentKind, u64>> = HashMap::new();
        for attachment in attached {
            let kinds = attachments.entry((attachment.repository, attachment.tag)).or_default();
            *kinds.entry(AttachmentKind::of(&attachment.kind)).or_default() += count(attachment.count);
        }
        let mut holdings: HashMap<(String, String), Holding> = held
            .into_iter()
            .map(|held| {
                let key = (held.repository, held.tag);
                let holding = Holding {
                    platforms: held.platforms,
                    referrers: count(held.referrers),
                    attachments: attachments.remove(&key).map(|kinds| kinds.into_iter().collect()).unwrap_or_default(),
                    manifests: count(held.manifests),
                    unread: count(held.unread),
                    bytes: count(held.bytes),
                };
                (key, holding)
            })
            .collect();
        let prefix = format!("{project}/");
        Ok(on_page
            .into_iter()
            .filter_map(|(repository, tag, immutable_by)| {
                let key = (repository, tag);
                let row = found.remove(&key)?;
                let holds = holdings.remove(&key);
                let (repository, tag) = key;
                Some(TagRow {
                    holds,
                    repository: repository.strip_prefix(&prefix).unwrap_or(&repository).to_owned(),
                    tag,
                    digest: row.digest.to_string(),
                    pushed_at: crate::shown_time(row.pushed_at),
                    source: row.source.as_str().to_owned(),
                    immutable_by,
                })
            })
            .collect())
    }
}

/// A project's tags (filtered by repository and tag patterns, paged) with what protects each.
#[server(prefix = "/portal", endpoint = "project_tags")]
pub async fn project_tags(
    project: String,
    repositories: String,
    tags: String,
    page: usize,
) -> Result<TagsView, AppError> {
    let state = crate::auth::ssr::state()?;
    let pool = state.pool.clone();
    let (access, stored) = crate::rules::ssr::visible_rules(&project).await?;
    let (version, policy) = crate::rules::ssr::compiled_policy(&access.name, &stored).await?;
    let (policy, policy_problem) = match policy {
        Ok(policy) => (Some(policy), None),
        Err(problem) => (None, Some(problem)),
    };
    // No filter given, or one that is wrong (it is then not applied): every tag.
    let (filter, filter_error) = if repositories.trim().is_empty() && tags.trim().is_empty() {
        (None, None)
    } else {
        match crate::inventory::counting::filter(&repositories, &tags) {
            Ok(filter) => (Some(filter), None),
            Err(error) => (None, Some(error)),
        }
    };
    // The project's tags with what protects each, read once per policy and inventory state (not
    // per page: at 100,000 tags a read takes a third of a second).
    let (kept, freshness, drift) = tokio::try_join!(
        crate::inventory::counting::listing(&pool, &state.inventory_counts, &access.name, &version, policy),
        crate::inventory::freshness::freshness(&pool),
        crate::drift::ssr::drift_view(&access),
    )?;
    let Some(kept) = kept else {
        return Err(AppError::Throttled {
            message: "tagward is still reading this project's tags; try again in a moment".into(),
            retry_after: 2,
        });
    };
    let listing = kept.value;
    let page = page.max(1);
    // Saturating: `page` is any number a URL can carry.
    let skip = (page - 1).saturating_mul(TAGS_PER_PAGE);
    let found = listing.page(filter.as_ref(), skip, TAGS_PER_PAGE);
    let rows = ssr::tag_rows(&pool, &access.name, found.tags).await?;
    let pages = usize::try_from(found.matched.tags).unwrap_or(usize::MAX).div_ceil(TAGS_PER_PAGE).max(1);
    Ok(TagsView {
        drift,
        project: access,
        freshness: crate::inventory::freshness::kept_freshness(freshness, kept.current),
        rows,
        matched: found.matched,
        total: found.total,
        immutable: found.immutable,
        page,
        pages,
        filter_error,
        policy_problem,
        locked: listing.locked,
        attachment_lists: listing.attachment_lists,
    })
}

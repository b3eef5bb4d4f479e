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
    let (filter, filter_error) = match crate::inventory::counting::filter(&repositories, &tags) {
        Ok(filter) => (filter, None),
        Err(error) => (
            crate::inventory::counting::filter("", "").map_err(anyhow::Error::msg).map_err(AppError::internal)?,
            Some(error),
        ),
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
    let (mut matched, mut total) =
        (crate::inventory::counting::Counter::default(), crate::inventory::counting::Counter::default());
    let mut immutable = 0;
    // The page's tags (full name, tag, rules) found by counting, then their digests read.
    let mut on_page: Vec<(String, String, Vec<i64>)> = Vec::new();
    let prefix = format!("{}/", access.name);
    let unfiltered = filter_error.is_some() || (repositories.trim().is_empty() && tags.trim().is_empty());
    if unfiltered {
        // Every tag matches: the counts are the listing's, and the page is found by skipping whole
        // repositories (a render reads one page of tags, not 100,000).
        let tags_in_all = listing.repositories.iter().map(|(_, tags)| tags.len() as u64).sum();
        total.counted =
            Counted { tags: tags_in_all, repositories: listing.repositories.len() as u64, examples: Vec::new() };
        matched.counted = total.counted.clone();
        immutable = listing.immutable;
        let mut before = 0;
        for (path, tags) in &listing.repositories {
            if before + tags.len() <= skip {
                before += tags.len();
                continue;
            }
            let from = skip.saturating_sub(before);
            for (tag, immutable_by) in tags.iter().skip(from).take(TAGS_PER_PAGE - on_page.len()) {
                on_page.push((format!("{prefix}{path}"), tag.clone(), immutable_by.to_vec()));
            }
            before += tags.len();
            if on_page.len() == TAGS_PER_PAGE {
                break;
            }
        }
    } else {
        for (path, tags) in &listing.repositories {
            let filter = filter.in_repository(path);
            for (tag, immutable_by) in tags {
                total.add(path, tag);
                if filter.immutable_rules(tag).is_empty() {
                    continue;
                }
                if !immutable_by.is_empty() {
                    immutable += 1;
                }
                let index = usize::try_from(matched.counted.tags).unwrap_or(usize::MAX);
                matched.add(path, tag);
                if (skip..skip.saturating_add(TAGS_PER_PAGE)).contains(&index) {
                    on_page.push((format!("{prefix}{path}"), tag.clone(), immutable_by.to_vec()));
                }
            }
        }
    }
    let keys: Vec<(String, String)> =
        on_page.iter().map(|(repository, tag, _)| (repository.clone(), tag.clone())).collect();
    let mut found = crate::store::inventory_tags(&pool, &keys).await?;
    let immutable_keys: Vec<(String, String)> = on_page
        .iter()
        .filter(|(_, _, ids)| !ids.is_empty())
        .map(|(repository, tag, _)| (repository.clone(), tag.clone()))
        .collect();
    let (held, attached) = tokio::try_join!(
        crate::store::tag_holdings(&pool, &immutable_keys),
        crate::store::tag_attachments(&pool, &immutable_keys),
    )?;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    // Each tag's attachments by kind, in the kinds' order.
    let mut attachments: std::collections::HashMap<(String, String), std::collections::BTreeMap<AttachmentKind, u64>> =
        std::collections::HashMap::new();
    for attachment in attached {
        let kinds = attachments.entry((attachment.repository, attachment.tag)).or_default();
        *kinds.entry(AttachmentKind::of(&attachment.kind)).or_default() += count(attachment.count);
    }
    let mut holdings: std::collections::HashMap<(String, String), Holding> = held
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
    let rows = on_page
        .into_iter()
        .filter_map(|(repository, tag, immutable_by)| {
            // Gone between the two reads (a delete just now): left off the page.
            let row = found.remove(&(repository.clone(), tag.clone()))?;
            let holds = holdings.remove(&(repository.clone(), tag.clone()));
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
        .collect();
    let pages = usize::try_from(matched.counted.tags).unwrap_or(usize::MAX).div_ceil(TAGS_PER_PAGE).max(1);
    Ok(TagsView {
        drift,
        project: access,
        freshness: crate::inventory::freshness::kept_freshness(freshness, kept.current),
        rows,
        matched: Counted { examples: Vec::new(), ..matched.counted },
        total: Counted { examples: Vec::new(), ..total.counted },
        immutable,
        page,
        pages,
        filter_error,
        policy_problem,
        locked: listing.locked,
        attachment_lists: listing.attachment_lists,
    })
}

//! What a policy makes of a project's tags: counted by the rule engine's compiled policy over the
//! inventory, streamed from the database one repository at a time.

use super::freshness::freshness;
use super::recounted::{Kept, Recounted};
use super::{Counted, Freshness, Impact, Locked, IMPACT_EXAMPLES, MAX_WEIGHED_TAGS};
use crate::error::AppError;
use crate::policy::{AttachmentList, CompiledPolicy, PolicyRule, PolicyVersion, RuleInput, RuleSpec};
use crate::store;
use sqlx::PgPool;

/// Counts tags into a [`Counted`], given in repository order.
#[derive(Default)]
pub struct Counter {
    pub counted: Counted,
    last_repository: Option<String>,
}

impl Counter {
    pub fn add(&mut self, repository: &str, tag: &str) {
        self.counted.tags += 1;
        if self.last_repository.as_deref() != Some(repository) {
            self.counted.repositories += 1;
            self.last_repository = Some(repository.to_owned());
        }
        if self.counted.examples.len() < IMPACT_EXAMPLES {
            self.counted.examples.push(format!("{repository}:{tag}"));
        }
    }
}

/// Compares the policy before and after a change over a project's tags, fed in repository
/// order (as the inventory streams them).
pub struct ImpactCounter {
    before: CompiledPolicy,
    after: CompiledPolicy,
    rule: Option<CompiledPolicy>,
    total: Counter,
    by_rule: Counter,
    becoming: Counter,
    ceasing: Counter,
    immutable_after: Counter,
    /// The tags the changed rule makes immutable, as (path, tag), while few enough to weigh.
    weighed: Vec<(String, String)>,
    lists_becoming: u64,
    lists_after: u64,
}

impl ImpactCounter {
    /// `rule`: the changed rule on its own, when it exists after the change.
    pub fn new(before: CompiledPolicy, after: CompiledPolicy, rule: Option<CompiledPolicy>) -> Self {
        Self {
            before,
            after,
            rule,
            total: Counter::default(),
            by_rule: Counter::default(),
            becoming: Counter::default(),
            ceasing: Counter::default(),
            immutable_after: Counter::default(),
            weighed: Vec::new(),
            lists_becoming: 0,
            lists_after: 0,
        }
    }

    /// The project's attachment lists (`prefix`: `<project>/`): which only grow before and
    /// after the change.
    pub fn add_attachment_lists(&mut self, prefix: &str, lists: &[store::AttachmentListTag]) {
        let append_only = |policy: &CompiledPolicy, list: &store::AttachmentListTag| {
            let in_repository = policy.in_repository(list.repository.strip_prefix(prefix).unwrap_or(&list.repository));
            std::iter::once(&list.tag)
                .chain(&list.subject_tags)
                .any(|tag| !in_repository.immutable_rules(tag).is_empty())
        };
        for list in lists {
            let (was, will) = (append_only(&self.before, list), append_only(&self.after, list));
            self.lists_after += u64::from(will);
            self.lists_becoming += u64::from(will && !was);
        }
    }

    /// The tags of the repository at `path` inside the project.
    pub fn add_repository(&mut self, path: &str, tags: &[String]) {
        let (before, after) = (self.before.in_repository(path), self.after.in_repository(path));
        let rule = self.rule.as_ref().map(|rule| rule.in_repository(path));
        for tag in tags {
            self.total.add(path, tag);
            let (was, will) = (!before.immutable_rules(tag).is_empty(), !after.immutable_rules(tag).is_empty());
            if will {
                self.immutable_after.add(path, tag);
            }
            match (was, will) {
                (false, true) => self.becoming.add(path, tag),
                (true, false) => self.ceasing.add(path, tag),
                _ => {}
            }
            if rule.as_ref().is_some_and(|rule| !rule.immutable_rules(tag).is_empty()) {
                self.by_rule.add(path, tag);
                if self.weighed.len() <= MAX_WEIGHED_TAGS {
                    self.weighed.push((path.to_owned(), tag.clone()));
                }
            }
        }
    }

    /// The tags the changed rule makes immutable, as (path, tag); `None` when there are too
    /// many to weigh, or no rule.
    pub fn weighed(&self) -> Option<&[(String, String)]> {
        (self.rule.is_some() && self.weighed.len() <= MAX_WEIGHED_TAGS).then_some(self.weighed.as_slice())
    }

    pub fn finish(self, freshness: Freshness, locked: Option<Locked>, started: std::time::Instant) -> Impact {
        Impact {
            freshness,
            locked_by_rule: locked,
            by_rule: self.rule.is_some().then_some(self.by_rule.counted),
            total: self.total.counted,
            becoming_immutable: self.becoming.counted,
            ceasing_immutable: self.ceasing.counted,
            immutable_after: self.immutable_after.counted,
            lists_becoming_append_only: self.lists_becoming,
            lists_append_only_after: self.lists_after,
            millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// How long a read of a whole project's inventory waits for its turn before it is refused.
const SCAN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// What the portal counts over projects' inventories and keeps between pages: one per process,
/// in [`crate::state::AppState`].
pub struct InventoryCounts {
    /// What each rule protects, per project (a few numbers each: many projects).
    protection: Recounted<Protection>,
    /// The Tags tab's listing, per project (every tag name: a few projects).
    listing: Recounted<std::sync::Arc<Listing>>,
    /// Reads of a whole project's inventory under way at once; more wait up to [`SCAN_WAIT`],
    /// then are refused. A read of 100,000 tags takes a core for a tenth of a second or so: this
    /// keeps anyone who may see a project from taking every core with them.
    scans: tokio::sync::Semaphore,
}

impl Default for InventoryCounts {
    fn default() -> Self {
        Self { protection: Recounted::new(10_000), listing: Recounted::new(16), scans: tokio::sync::Semaphore::new(2) }
    }
}

/// A turn to read a whole project's inventory, or why not now.
async fn scan_turn(counts: &InventoryCounts) -> Result<tokio::sync::SemaphorePermit<'_>, AppError> {
    match tokio::time::timeout(SCAN_WAIT, counts.scans.acquire()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(AppError::Throttled {
            message: "tagward is busy counting other projects' tags".into(),
            retry_after: SCAN_WAIT.as_secs(),
        }),
    }
}

/// Feeds every repository of `project` to `each` as (path inside the project, its tags),
/// leaving out attachment lists (`sha256-<hex>`, `.sig`, …: not releases, but lists of what is
/// attached to them); returns how many were left out. The portal's readers take turns
/// (`counts`); the command line (one operator, one read) has none to take.
pub async fn each_repository(
    pool: &PgPool,
    counts: Option<&InventoryCounts>,
    project: &str,
    mut each: impl FnMut(&str, &[String]),
) -> Result<u64, AppError> {
    let _turn = match counts {
        Some(counts) => Some(scan_turn(counts).await?),
        None => None,
    };
    let prefix = format!("{project}/");
    let mut lists = 0;
    store::each_project_repository(pool, project, |repository, tags| {
        let path = repository.strip_prefix(&prefix).unwrap_or(repository);
        if tags.iter().any(|tag| is_attachment_list(tag)) {
            let releases: Vec<String> = tags.iter().filter(|tag| !is_attachment_list(tag)).cloned().collect();
            lists += (tags.len() - releases.len()) as u64;
            each(path, &releases);
        } else {
            each(path, tags);
        }
    })
    .await?;
    Ok(lists)
}

/// Whether `tag` names an attachment list.
fn is_attachment_list(tag: &str) -> bool {
    tag.starts_with("sha256-") && crate::policy::Tag::parse(tag).ok().as_ref().and_then(AttachmentList::of).is_some()
}

/// The impact of changing the project's stored rules to `after` over its inventory. Both
/// policies compile with the server's matcher (what enforcement answers with).
pub async fn impact(
    pool: &PgPool,
    counts: Option<&InventoryCounts>,
    project: &str,
    before: &[PolicyRule],
    after: &[PolicyRule],
    rule: Option<&PolicyRule>,
) -> Result<Impact, AppError> {
    let started = std::time::Instant::now();
    let (before, after, rule) = (before.to_vec(), after.to_vec(), rule.cloned());
    // Compiled off the async threads, as the rule list compiles its policy.
    let (before, after, rule) = tokio::task::spawn_blocking(move || {
        let compile = |rules: &[PolicyRule]| {
            CompiledPolicy::compile(rules)
                .map_err(|error| AppError::Invalid(format!("the rules do not compile: {error}")))
        };
        let rule = rule.map(|rule| compile(std::slice::from_ref(&rule))).transpose()?;
        Ok::<_, AppError>((compile(&before)?, compile(&after)?, rule))
    })
    .await
    .map_err(AppError::internal)??;
    let mut counter = ImpactCounter::new(before, after, rule);
    let lists = each_repository(pool, counts, project, |path, tags| counter.add_repository(path, tags)).await?;
    if lists > 0 {
        counter.add_attachment_lists(&format!("{project}/"), &store::attachment_lists(pool, project).await?);
    }
    let locked = match counter.weighed() {
        Some(tags) => Some(locked(pool, project, tags).await?),
        None => None,
    };
    Ok(counter.finish(freshness(pool).await?, locked, started))
}

/// What the tags of `project` (as (path inside the project, tag)) hold together.
pub async fn locked(pool: &PgPool, project: &str, tags: &[(String, String)]) -> Result<Locked, AppError> {
    let tags: Vec<(String, String)> =
        tags.iter().map(|(path, tag)| (format!("{project}/{path}"), tag.clone())).collect();
    let held = store::held_bytes(pool, &tags).await?;
    Ok(Locked { bytes: u64::try_from(held.bytes).unwrap_or(0), unread: u64::try_from(held.unread).unwrap_or(0) })
}

/// For each enabled rule: the project's tags it makes immutable, and how many of them no
/// other rule does.
pub type Protection = std::sync::Arc<std::collections::HashMap<i64, (u64, u64)>>;

/// What each rule protects, as last counted for this policy (`current` false while a count
/// at the inventory's newer state is under way); `None` while the first count for this policy
/// is still running after a short wait.
pub async fn protection(
    pool: &PgPool,
    counts: &'static InventoryCounts,
    project: &str,
    version: &PolicyVersion,
    policy: &CompiledPolicy,
) -> Result<Option<Kept<Protection>>, AppError> {
    let inventory = store::inventory_version(pool, project).await?;
    let (pool, project_name, policy) = (pool.clone(), project.to_owned(), policy.clone());
    Ok(counts
        .protection
        .get(project, version, inventory, async move {
            let mut protected = std::collections::HashMap::<i64, (u64, u64)>::new();
            each_repository(&pool, Some(counts), &project_name, |path, tags| {
                let in_repository = policy.in_repository(path);
                for tag in tags {
                    let mask = in_repository.immutable_rules(tag);
                    let alone = mask.len() == 1;
                    for id in policy.rule_ids(mask) {
                        let count = protected.entry(id).or_default();
                        count.0 += 1;
                        if alone {
                            count.1 += 1;
                        }
                    }
                }
            })
            .await?;
            Ok(std::sync::Arc::new(protected))
        })
        .await)
}

/// A project's tags as the Tags tab lists them: each repository (its path inside the project)
/// with its tags in order and the rules that make each immutable, and what the immutable ones
/// hold together (`None` past [`MAX_WEIGHED_TAGS`]).
#[derive(Debug, Default)]
pub struct Listing {
    pub repositories: Vec<(String, Vec<ListedTag>)>,
    pub locked: Option<Locked>,
    /// The immutable tags: the unfiltered tab's count, kept with the listing so that rendering
    /// it reads one page of tags, not all of them.
    pub immutable: u64,
    /// Attachment list tags, left out of `repositories`.
    pub attachment_lists: u64,
}

/// A tag and the ids of the rules that make it immutable (none: mutable).
pub type ListedTag = (String, Box<[i64]>);

/// One page of a [`Listing`] under a filter: its tags (repository path, tag, rules), and the counts
/// of all the filter matches.
#[derive(Debug, Default)]
pub struct ListingPage {
    pub tags: Vec<(String, String, Vec<i64>)>,
    pub matched: Counted,
    pub total: Counted,
    /// Immutable tags among those matching.
    pub immutable: u64,
}

impl Listing {
    /// The `per_page` tags after the first `skip` that `filter` matches (`None`: every tag).
    pub fn page(&self, filter: Option<&CompiledPolicy>, skip: usize, per_page: usize) -> ListingPage {
        let mut page = ListingPage::default();
        let Some(filter) = filter else {
            // Every tag matches: the counts are the listing's, and the page is found by skipping
            // whole repositories (a render reads one page of tags, not 100,000).
            let tags_in_all = self.repositories.iter().map(|(_, tags)| tags.len() as u64).sum();
            page.total =
                Counted { tags: tags_in_all, repositories: self.repositories.len() as u64, examples: Vec::new() };
            page.matched = page.total.clone();
            page.immutable = self.immutable;
            let mut before = 0;
            for (path, tags) in &self.repositories {
                if before + tags.len() > skip {
                    let from = skip.saturating_sub(before);
                    for (tag, immutable_by) in tags.iter().skip(from).take(per_page - page.tags.len()) {
                        page.tags.push((path.clone(), tag.clone(), immutable_by.to_vec()));
                    }
                }
                before += tags.len();
                if page.tags.len() == per_page {
                    break;
                }
            }
            return page;
        };
        let (mut matched, mut total) = (Counter::default(), Counter::default());
        for (path, tags) in &self.repositories {
            let filter = filter.in_repository(path);
            for (tag, immutable_by) in tags {
                total.add(path, tag);
                if filter.immutable_rules(tag).is_empty() {
                    continue;
                }
                if !immutable_by.is_empty() {
                    page.immutable += 1;
                }
                let index = usize::try_from(matched.counted.tags).unwrap_or(usize::MAX);
                matched.add(path, tag);
                if (skip..skip.saturating_add(per_page)).contains(&index) {
                    page.tags.push((path.clone(), tag.clone(), immutable_by.to_vec()));
                }
            }
        }
        page.matched = Counted { examples: Vec::new(), ..matched.counted };
        page.total = Counted { examples: Vec::new(), ..total.counted };
        page
    }
}

/// The project's [`Listing`] under `policy` (none: every tag mutable), read once per policy and
/// inventory version and kept for a few projects at a time (it holds every tag name).
pub async fn listing(
    pool: &PgPool,
    counts: &'static InventoryCounts,
    project: &str,
    version: &PolicyVersion,
    policy: Option<CompiledPolicy>,
) -> Result<Option<Kept<std::sync::Arc<Listing>>>, AppError> {
    let inventory = store::inventory_version(pool, project).await?;
    let (pool, project_name) = (pool.clone(), project.to_owned());
    Ok(counts
        .listing
        .get(project, version, inventory, async move {
            let mut listing = Listing::default();
            let mut immutable: Vec<(String, String)> = Vec::new();
            listing.attachment_lists = each_repository(&pool, Some(counts), &project_name, |path, tags| {
                let by = policy.as_ref().map(|policy| (policy, policy.in_repository(path)));
                let tags: Vec<ListedTag> = tags
                    .iter()
                    .map(|tag| {
                        let ids: Box<[i64]> = match &by {
                            Some((policy, in_repository)) => {
                                policy.rule_ids(in_repository.immutable_rules(tag)).collect()
                            }
                            None => Box::default(),
                        };
                        if !ids.is_empty() {
                            listing.immutable += 1;
                            if immutable.len() <= MAX_WEIGHED_TAGS {
                                immutable.push((path.to_owned(), tag.clone()));
                            }
                        }
                        (tag.clone(), ids)
                    })
                    .collect();
                listing.repositories.push((path.to_owned(), tags));
            })
            .await?;
            if immutable.len() <= MAX_WEIGHED_TAGS {
                listing.locked = Some(locked(&pool, &project_name, &immutable).await?);
            }
            Ok(std::sync::Arc::new(listing))
        })
        .await)
}

/// A filter of the Tags tab: repository and tag patterns as a rule takes them (empty: all).
pub fn filter(repositories: &str, tags: &str) -> Result<CompiledPolicy, String> {
    let or_all = |text: &str| if text.trim().is_empty() { "**".to_owned() } else { text.to_owned() };
    let input = RuleInput {
        repositories_action: "matching".into(),
        repositories: or_all(repositories),
        tags_action: "matching".into(),
        tags: or_all(tags),
    };
    let spec = RuleSpec::parse(&input).map_err(|errors| {
        let mut problems = Vec::new();
        if let Some(error) = errors.repositories {
            problems.push(format!("repository filter `{repositories}`: {error}"));
        }
        if let Some(error) = errors.tags {
            problems.push(format!("tag filter `{tags}`: {error}"));
        }
        problems.join("; ")
    })?;
    CompiledPolicy::compile([&PolicyRule { id: 1, state: crate::policy::RuleState::Enforced, spec }])
        .map_err(|error| error.to_string())
}

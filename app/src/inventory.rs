//! The registry as it is, seen through the tag inventory: what pages show of it (a project's tags,
//! what immutable tags hold, the impact of a rule change) and the counting behind them, decided by
//! the rule engine's compiled policy, the one enforcement uses. The server functions that serve it
//! are the Tags tab's (`tags.rs`) and the rule dialog's (`rules.rs`).

use crate::account::ProjectAccess;
use serde::{Deserialize, Serialize};

/// Tags a page of the Tags tab lists.
pub const TAGS_PER_PAGE: usize = 50;
/// References an impact lists by name, per count.
pub const IMPACT_EXAMPLES: usize = 5;
/// The most tags whose blobs are weighed together for one figure (what a set of immutable tags
/// keeps from garbage collection); past it the figure is not given rather than slow every page.
pub const MAX_WEIGHED_TAGS: usize = 20_000;

/// How current the inventory is, in words for the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freshness {
    /// e.g. "As of 3 min ago (2026-11-27 14:02 UTC), synced with http://registry:5000; pushes
    /// through the gateway are recorded as they happen."
    pub summary: String,
    /// The registry could not be read: since when and why (the figures may be out of date).
    pub problem: Option<String>,
}

/// One tag as the Tags tab shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagRow {
    /// The repository inside the project (`team/app`).
    pub repository: String,
    pub tag: String,
    pub digest: String,
    /// When it came to point at `digest`, as far as tagward knows.
    pub pushed_at: String,
    /// How tagward knows: `gateway` (it let the push through, `pushed_at` is the push) or `sync`
    /// (a sync found it, `pushed_at` is when it was first seen there).
    pub source: String,
    /// The enabled rules that make it immutable (empty: mutable).
    pub immutable_by: Vec<i64>,
    /// What it holds (for an immutable tag whose manifest tagward has read).
    pub holds: Option<Holding>,
}

/// What an immutable tag holds, as far as tagward has read its manifests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holding {
    /// The platforms of its index (empty for a single image).
    pub platforms: Vec<String>,
    /// Signatures, SBOMs and other referrers attached to what it holds.
    pub referrers: u64,
    /// What is attached, by kind (signatures, SBOMs, attestations, other), each with its count;
    /// cosign's list tags count by their entries.
    pub attachments: Vec<(AttachmentKind, u64)>,
    /// Manifests it holds (itself, children, referrers).
    pub manifests: u64,
    /// Of those, not read yet: their blobs are not counted.
    pub unread: u64,
    /// The distinct blobs it holds, in bytes.
    pub bytes: u64,
}

/// What a set of immutable tags keeps from garbage collection, together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Locked {
    /// The distinct blobs they hold, in bytes (each counted once, as the registry stores it once).
    pub bytes: u64,
    /// Manifests they hold that tagward has not read yet (their blobs are not counted).
    pub unread: u64,
}

impl Locked {
    /// "1.2 GiB of blobs" or "1.2 GiB of blobs (3 manifests not read yet)".
    pub fn phrase(&self) -> String {
        let manifests = |n: u64| if n == 1 { "1 manifest".to_owned() } else { format!("{} manifests", thousands(n)) };
        match (self.bytes, self.unread) {
            (_, 0) => format!("{} of blobs", bytes(self.bytes)),
            (0, unread) => format!("blobs not read yet ({})", manifests(unread)),
            (held, unread) => format!("{} of blobs ({} not read yet)", bytes(held), manifests(unread)),
        }
    }
}

/// 1536 → "1.5 KiB".
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = UNITS[0];
    for next in &UNITS[1..] {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

/// The Tags tab's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagsView {
    pub project: ProjectAccess,
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
    /// [`MAX_WEIGHED_TAGS`] immutable tags, not weighed here).
    pub locked: Option<Locked>,
    /// Immutable tags changed behind tagward's back, until someone deals with them.
    pub drift: crate::drift::DriftView,
    /// The project's attachment list tags (`sha256-<hex>`, `.sig`, …), left out of the rows: what
    /// they list is shown with the tags whose images they belong to.
    pub attachment_lists: u64,
}

/// How many tags in how many repositories, with the first few (`repository:tag`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counted {
    pub tags: u64,
    pub repositories: u64,
    pub examples: Vec<String>,
}

impl Counted {
    /// "1,204 tags in 37 repositories".
    pub fn phrase(&self) -> String {
        let plural = |n: u64, one: &str, many: &str| format!("{} {}", thousands(n), if n == 1 { one } else { many });
        format!("{} in {}", plural(self.tags, "tag", "tags"), plural(self.repositories, "repository", "repositories"))
    }
}

/// What a change to the rules does to the project's existing tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Impact {
    pub freshness: Freshness,
    /// Every tag the inventory holds for the project.
    pub total: Counted,
    /// Immutable under the changed rule alone (`None` when it is removed or disabled).
    pub by_rule: Option<Counted>,
    /// Mutable now, immutable after the change.
    pub becoming_immutable: Counted,
    /// Immutable now, mutable after the change.
    pub ceasing_immutable: Counted,
    /// Immutable under the whole policy after the change.
    pub immutable_after: Counted,
    /// What the tags the changed rule makes immutable hold, together (`None`: the rule is removed,
    /// or makes more than [`MAX_WEIGHED_TAGS`] immutable).
    pub locked_by_rule: Option<Locked>,
    /// Attachment lists (`sha256-<hex>`, `.sig`, …) that only grow after the change and not now
    /// (a rule covers them, or an immutable tag points at their subject), and in all after it.
    pub lists_becoming_append_only: u64,
    pub lists_append_only_after: u64,
    /// Server time spent, in milliseconds (for the curious and the benchmark).
    pub millis: u64,
}

/// What an attachment is, as its `artifactType` (or cosign's list tag) says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AttachmentKind {
    Signature,
    Sbom,
    /// Provenance and other in-toto attestations, Sigstore bundles.
    Attestation,
    Other,
}

impl AttachmentKind {
    /// Reads an `artifactType` (`application/vnd.dev.cosign.artifact.sig.v1+json`,
    /// `application/vnd.cncf.notary.signature`, `application/spdx+json`,
    /// `application/vnd.in-toto+json`, `application/vnd.dev.sigstore.bundle.v0.3+json`, …) or a
    /// cosign list's `cosign.sig` / `cosign.att` / `cosign.sbom`.
    pub fn of(artifact_type: &str) -> Self {
        let kind = artifact_type.to_ascii_lowercase();
        let has = |words: &[&str]| words.iter().any(|word| kind.contains(word));
        if kind == "cosign.sig" || has(&["signature", ".sig.", "simplesigning"]) {
            AttachmentKind::Signature
        } else if kind == "cosign.sbom" || has(&["spdx", "cyclonedx", "sbom", "syft"]) {
            AttachmentKind::Sbom
        } else if kind == "cosign.att"
            || has(&["in-toto", "intoto", "slsa", "provenance", "attestation", "sigstore.bundle"])
        {
            AttachmentKind::Attestation
        } else {
            AttachmentKind::Other
        }
    }

    /// "2 signatures", "1 SBOM".
    pub fn counted(self, n: u64) -> String {
        let (one, many) = match self {
            AttachmentKind::Signature => ("signature", "signatures"),
            AttachmentKind::Sbom => ("SBOM", "SBOMs"),
            AttachmentKind::Attestation => ("attestation", "attestations"),
            AttachmentKind::Other => ("other attachment", "other attachments"),
        };
        format!("{} {}", thousands(n), if n == 1 { one } else { many })
    }
}

/// A digest as pages show it: `sha256:` and its first 12 hex digits, then `…`.
pub fn short_digest(digest: &str) -> String {
    digest.strip_prefix("sha256:").map_or(digest.to_owned(), |hex| format!("sha256:{}…", hex.get(..12).unwrap_or(hex)))
}

/// 1204 → "1,204".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(feature = "ssr")]
pub mod ssr {
    use super::*;
    use crate::error::AppError;
    use crate::policy::{AttachmentList, CompiledPolicy, PolicyRule, PolicyVersion, RuleInput, RuleSpec};
    use crate::store::{self, EventStream, SyncState};
    use sqlx::PgPool;
    use time::OffsetDateTime;

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
                let in_repository =
                    policy.in_repository(list.repository.strip_prefix(prefix).unwrap_or(&list.repository));
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

    /// Reads of a whole project's inventory under way at once, per process; more wait up to
    /// [`SCAN_WAIT`], then are refused. A read of 100,000 tags takes a core for a tenth of a
    /// second or so: this keeps anyone who may see a project from taking every core with them.
    static SCANS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
    const SCAN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

    /// A turn to read a whole project's inventory, or why not now.
    async fn scan_turn() -> Result<tokio::sync::SemaphorePermit<'static>, AppError> {
        match tokio::time::timeout(SCAN_WAIT, SCANS.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(AppError::Throttled {
                message: "tagward is busy counting other projects' tags".into(),
                retry_after: SCAN_WAIT.as_secs(),
            }),
        }
    }

    /// Feeds every repository of `project` to `each` as (path inside the project, its tags),
    /// leaving out attachment lists (`sha256-<hex>`, `.sig`, …: not releases, but lists of what is
    /// attached to them); returns how many were left out.
    pub async fn each_repository(
        pool: &PgPool,
        project: &str,
        mut each: impl FnMut(&str, &[String]),
    ) -> Result<u64, AppError> {
        let _turn = scan_turn().await?;
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
        tag.starts_with("sha256-")
            && crate::policy::Tag::parse(tag).ok().as_ref().and_then(AttachmentList::of).is_some()
    }

    /// The impact of changing the project's stored rules to `after` over its inventory. Both
    /// policies compile with the server's matcher (what enforcement answers with).
    pub async fn impact(
        pool: &PgPool,
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
        let lists = each_repository(pool, project, |path, tags| counter.add_repository(path, tags)).await?;
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
        project: &str,
        version: &PolicyVersion,
        policy: &CompiledPolicy,
    ) -> Result<Option<Kept<Protection>>, AppError> {
        static KEPT: Recounted<Protection> = Recounted::new(10_000);
        let inventory = store::inventory_version(pool, project).await?;
        let (pool, project_name, policy) = (pool.clone(), project.to_owned(), policy.clone());
        Ok(KEPT
            .get(project, version, inventory, async move {
                let mut counts = std::collections::HashMap::<i64, (u64, u64)>::new();
                each_repository(&pool, &project_name, |path, tags| {
                    let in_repository = policy.in_repository(path);
                    for tag in tags {
                        let mask = in_repository.immutable_rules(tag);
                        let alone = mask.len() == 1;
                        for id in policy.rule_ids(mask) {
                            let count = counts.entry(id).or_default();
                            count.0 += 1;
                            if alone {
                                count.1 += 1;
                            }
                        }
                    }
                })
                .await?;
                Ok(std::sync::Arc::new(counts))
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

    /// The project's [`Listing`] under `policy` (none: every tag mutable), read once per policy and
    /// inventory version and kept for a few projects at a time (it holds every tag name).
    pub async fn listing(
        pool: &PgPool,
        project: &str,
        version: &PolicyVersion,
        policy: Option<CompiledPolicy>,
    ) -> Result<Option<Kept<std::sync::Arc<Listing>>>, AppError> {
        static KEPT: Recounted<std::sync::Arc<Listing>> = Recounted::new(16);
        let inventory = store::inventory_version(pool, project).await?;
        let (pool, project_name) = (pool.clone(), project.to_owned());
        Ok(KEPT
            .get(project, version, inventory, async move {
                let mut listing = Listing::default();
                let mut immutable: Vec<(String, String)> = Vec::new();
                listing.attachment_lists = each_repository(&pool, &project_name, |path, tags| {
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

    /// A value counted over a project's inventory, and whether it is the inventory's current state.
    #[derive(Debug, Clone)]
    pub struct Kept<T> {
        pub value: T,
        pub current: bool,
    }

    /// How long a page waits for a count of a policy nothing has been counted for yet (a rule just
    /// changed): 100,000 tags take about a tenth of a second.
    const FIRST_COUNT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

    /// Values counted over projects' inventories, kept per project for the policy version and the
    /// inventory version they were counted at, so a page shows them without counting. When either
    /// moves, one count runs in the background (however many pages ask meanwhile); pages get the
    /// last value of the same policy until it is done, marked as not current. A policy with
    /// nothing counted yet waits for its count, a bounded time.
    pub struct Recounted<T> {
        slots: std::sync::Mutex<Option<std::collections::HashMap<String, std::sync::Arc<Slot<T>>>>>,
        /// Projects kept at most; past it, those no page is reading are forgotten.
        projects: usize,
    }

    pub struct Slot<T> {
        state: std::sync::Mutex<SlotState<T>>,
        counted: tokio::sync::Notify,
    }

    struct SlotState<T> {
        last: Option<(PolicyVersion, i64, T)>,
        counting: bool,
    }

    impl<T> Recounted<T> {
        pub const fn new(projects: usize) -> Self {
            Self { slots: std::sync::Mutex::new(None), projects }
        }
    }

    impl<T: Clone + Send + 'static> Recounted<T> {
        fn slot(&self, project: &str) -> std::sync::Arc<Slot<T>> {
            let mut slots = self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let slots = slots.get_or_insert_with(Default::default);
            if slots.len() >= self.projects && !slots.contains_key(project) {
                slots.retain(|_, slot| std::sync::Arc::strong_count(slot) > 1);
            }
            slots
                .entry(project.to_owned())
                .or_insert_with(|| {
                    std::sync::Arc::new(Slot {
                        state: std::sync::Mutex::new(SlotState { last: None, counting: false }),
                        counted: tokio::sync::Notify::new(),
                    })
                })
                .clone()
        }

        /// The value for `policy` at `inventory`, counting it with `count` if it is not kept.
        pub async fn get(
            &self,
            project: &str,
            policy: &PolicyVersion,
            inventory: i64,
            count: impl std::future::Future<Output = Result<T, AppError>> + Send + 'static,
        ) -> Option<Kept<T>> {
            let slot = self.slot(project);
            let counted = slot.counted.notified();
            tokio::pin!(counted);
            counted.as_mut().enable();
            {
                let mut state = slot.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if let Some((kept_policy, kept_inventory, value)) = &state.last {
                    if kept_policy == policy && *kept_inventory == inventory {
                        return Some(Kept { value: value.clone(), current: true });
                    }
                }
                if !state.counting {
                    state.counting = true;
                    tokio::spawn(Self::recount(slot.clone(), policy.clone(), inventory, count));
                }
                if let Some((kept_policy, _, value)) = &state.last {
                    if kept_policy == policy {
                        return Some(Kept { value: value.clone(), current: false });
                    }
                }
            }
            let _ = tokio::time::timeout(FIRST_COUNT_WAIT, counted).await;
            let state = slot.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let (kept_policy, kept_inventory, value) = state.last.as_ref()?;
            (kept_policy == policy).then(|| Kept { value: value.clone(), current: *kept_inventory == inventory })
        }

        async fn recount(
            slot: std::sync::Arc<Slot<T>>,
            policy: PolicyVersion,
            inventory: i64,
            count: impl std::future::Future<Output = Result<T, AppError>>,
        ) {
            let result = count.await;
            {
                let mut state = slot.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                state.counting = false;
                match result {
                    Ok(value) => state.last = Some((policy, inventory, value)),
                    Err(error) => {
                        tracing::warn!(%error, "counting over the inventory failed; pages show the last count")
                    }
                }
            }
            slot.counted.notify_waiters();
        }
    }

    /// The inventory's freshness in words.
    pub async fn freshness(pool: &PgPool) -> Result<Freshness, AppError> {
        let (sync, events) = tokio::try_join!(store::sync_state(pool), store::event_stream(pool))?;
        Ok(describe(sync.as_ref(), events.as_ref(), OffsetDateTime::now_utc()))
    }

    /// The freshness of something kept over the inventory: said to be counted again when it is
    /// not `current` (the inventory moved since; the new count is under way).
    pub fn kept_freshness(mut freshness: Freshness, current: bool) -> Freshness {
        if !current {
            freshness.summary = format!("being counted again (the inventory changed); {}", freshness.summary);
        }
        freshness
    }

    pub fn describe(state: Option<&SyncState>, events: Option<&EventStream>, now: OffsetDateTime) -> Freshness {
        let gateway = match events {
            None => "pushes through tagward's gateway are recorded as they happen".to_owned(),
            Some(events) => format!(
                "pushes through tagward's gateway, and those the registry's events report (the last {}), are \
                 recorded as they happen",
                ago(events.last_at, now)
            ),
        };
        let Some(state) = state else {
            let summary = match events {
                None => "Only tags pushed through tagward's gateway, recorded as they happen: no sync with the \
                         registry has run, so pushes made straight to it are missing (set TAGWARD_REGISTRY_URL)."
                    .to_owned(),
                Some(_) => format!(
                    "Only what happened since the registry started sending events: {gateway}; no sync with the \
                     registry has run, so tags pushed before are missing (set TAGWARD_REGISTRY_URL)."
                ),
            };
            return Freshness { summary, problem: None };
        };
        let summary = match state.completed_started_at {
            Some(as_of) => {
                let under_way = if state.in_progress() { "; the next sync is under way" } else { "" };
                format!(
                    "As of {} ({}), synced with {}{under_way}; {gateway}.",
                    ago(as_of, now),
                    crate::shown_time(as_of),
                    state.registry
                )
            }
            None => format!(
                "The first sync with {} is under way (started {}): tags it has not reached yet are missing; {gateway}.",
                state.registry,
                ago(state.pass_started_at, now)
            ),
        };
        let problem = state.failed_at.map(|failed_at| {
            format!(
                "The registry at {} could not be read {}: {}. What is shown may be out of date; the sync retries \
                 and resumes where it stopped. Rules and decisions are not affected.",
                state.registry,
                ago(failed_at, now),
                state.failure.as_deref().unwrap_or("no reason recorded")
            )
        });
        Freshness { summary, problem }
    }

    /// "just now", "5 min ago", "3 h ago", "2 days ago".
    pub fn ago(at: OffsetDateTime, now: OffsetDateTime) -> String {
        let seconds = (now - at).whole_seconds().max(0);
        match seconds {
            0..60 => "less than a minute ago".to_owned(),
            60..7200 => format!("{} min ago", seconds / 60),
            7200..172_800 => format!("{} h ago", seconds / 3600),
            _ => format!("{} days ago", seconds / 86_400),
        }
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
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::ssr::Recounted;
    use crate::policy::{PolicyVersion, RuleInput};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    fn version(tags: &str) -> PolicyVersion {
        PolicyVersion::of([(
            1,
            crate::policy::RuleState::Enforced,
            &RuleInput { tags: tags.into(), ..RuleInput::default() },
        )])
    }

    /// A count that says how often it ran and answers `value` once `go` lets it.
    fn count(
        runs: &Arc<AtomicUsize>,
        value: u64,
        go: tokio::sync::oneshot::Receiver<()>,
    ) -> impl std::future::Future<Output = Result<u64, crate::error::AppError>> + Send + 'static {
        let runs = runs.clone();
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            let _ = go.await;
            Ok(value)
        }
    }

    fn now() -> tokio::sync::oneshot::Receiver<()> {
        let (tell, go) = tokio::sync::oneshot::channel();
        let _ = tell.send(());
        go
    }

    #[tokio::test]
    async fn counted_once_per_policy_and_inventory_and_recounted_in_the_background() {
        let kept = Recounted::<u64>::new(10);
        let runs = Arc::new(AtomicUsize::new(0));
        let (v, w) = (version("v*"), version("w*"));

        // Nothing kept: the page waits for the first count.
        let first = kept.get("shop", &v, 1, count(&runs, 10, now())).await.unwrap();
        assert_eq!((first.value, first.current), (10, true));
        // Kept: answered without counting.
        let again = kept.get("shop", &v, 1, count(&runs, 99, now())).await.unwrap();
        assert_eq!((again.value, again.current, runs.load(Ordering::SeqCst)), (10, true, 1));

        // The inventory moved: the kept value at once, marked, while one count runs for everyone.
        let (tell, go) = tokio::sync::oneshot::channel();
        let stale = kept.get("shop", &v, 2, count(&runs, 11, go)).await.unwrap();
        assert_eq!((stale.value, stale.current), (10, false));
        let meanwhile = kept.get("shop", &v, 2, count(&runs, 77, now())).await.unwrap();
        assert_eq!((meanwhile.value, meanwhile.current), (10, false));
        tell.send(()).unwrap();
        let mut fresh = kept.get("shop", &v, 2, count(&runs, 77, now())).await.unwrap();
        for _ in 0..100 {
            if fresh.current {
                break;
            }
            tokio::task::yield_now().await;
            fresh = kept.get("shop", &v, 2, count(&runs, 77, now())).await.unwrap();
        }
        assert_eq!((fresh.value, fresh.current, runs.load(Ordering::SeqCst)), (11, true, 2));

        // Another policy: what was counted for the old one is never shown for it.
        let other = kept.get("shop", &w, 2, count(&runs, 5, now())).await.unwrap();
        assert_eq!((other.value, other.current), (5, true));
        // Each project keeps its own.
        let web = kept.get("web", &v, 2, count(&runs, 3, now())).await.unwrap();
        assert_eq!((web.value, web.current, runs.load(Ordering::SeqCst)), (3, true, 4));
    }
}

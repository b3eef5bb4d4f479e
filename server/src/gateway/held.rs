//! What an immutable tag holds: the manifest it points at, an index's children at any depth, an
//! image's config and layers, and the referrers attached to any of these (signatures, SBOMs,
//! attestations) with their own blobs. A delete of anything held is refused like a delete of the
//! tagged manifest itself.
//!
//! Worked out per delete, under the repository's exclusive lock, from the registry itself (with
//! the client's credentials): its tags now, the manifests they point at, and what those reference.
//! What a manifest references is read once per process ([`ManifestCache`]; a manifest is believed
//! only when its bytes hash to its digest) and recorded in the inventory, which a process starting
//! cold reads before asking the registry. Referrers change as signatures are pushed, so they are
//! asked every time: the referrers API where the registry has one, the `sha256-<hex>` tag schema
//! and cosign's `sha256-<hex>.sig`, `.att`, `.sbom` tags besides (whose manifests, the lists
//! themselves, are held too). Every walk is bounded in registry reads and time; past a bound nothing is deleted.

use crate::enforcement::Protection;
use crate::registry::{LookupError, Registry};
use app::artifact::{BlobRole, ManifestError, ManifestRefs, Sha256};
use app::locks::Locked;
use app::policy::{AttachmentList, Digest, Holder, ListKind, Relation, RepositoryName, Tag};
use axum::http::HeaderValue;
use clap::Args;
use futures_util::{StreamExt, TryStreamExt};
use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Registry requests made side by side within one walk.
const CONCURRENCY: usize = 8;
/// How long a walk waits for the inventory's record of manifests before asking the registry.
const INVENTORY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// How far a manifest delete follows `subject` (a signature of an SBOM of an image is two).
const MAX_SUBJECT_DEPTH: usize = 16;

/// Bounds on working out what a delete's target is held by.
#[derive(Debug, Clone, Args)]
pub struct HeldLimits {
    /// Registry reads (tag look-ups, manifests not yet cached, referrer lists) one delete may
    /// make to work out whether an immutable tag holds its target; past it the delete is
    /// refused (503) and nothing is deleted.
    #[arg(long = "held-max-reads", env = "TAGWARD_GATEWAY_HELD_MAX_READS", default_value_t = Self::MAX_READS)]
    pub max_reads: usize,

    /// Seconds one delete may spend on it (503 after; nothing is deleted).
    #[arg(long = "held-timeout", env = "TAGWARD_GATEWAY_HELD_TIMEOUT", default_value_t = Self::TIMEOUT_SECONDS)]
    pub timeout_seconds: u64,

    /// Manifests whose references the gateway remembers (what a digest references never
    /// changes); the least recently used are read again when needed.
    #[arg(long = "manifest-cache-entries", env = "TAGWARD_GATEWAY_MANIFEST_CACHE_ENTRIES", default_value_t = ManifestCache::DEFAULT_CAPACITY)]
    pub cache_entries: usize,

    /// Deletes by digest one client (the peer address the gateway sees) may have under way at
    /// once in projects with rules, each a walk of what the immutable tags hold under the
    /// repository's exclusive lock; more are answered 429 before they queue for the lock.
    #[arg(long = "held-walks-per-client", env = "TAGWARD_GATEWAY_HELD_WALKS_PER_CLIENT", default_value_t = Self::WALKS_PER_CLIENT)]
    pub walks_per_client: usize,
}

/// How many deletes by digest each client has under way.
#[derive(Default)]
pub struct WalkTurns {
    under_way: std::sync::Mutex<HashMap<std::net::IpAddr, usize>>,
}

/// A client's turn to walk, given back when dropped.
pub struct WalkTurn<'a> {
    turns: &'a WalkTurns,
    client: std::net::IpAddr,
}

impl WalkTurns {
    /// A turn for `client`, unless it already has `limit` under way.
    pub fn take(&self, client: std::net::IpAddr, limit: usize) -> Option<WalkTurn<'_>> {
        let mut under_way = self.under_way.locked();
        let count = under_way.entry(client).or_default();
        if *count >= limit.max(1) {
            return None;
        }
        *count += 1;
        Some(WalkTurn { turns: self, client })
    }
}

impl Drop for WalkTurn<'_> {
    fn drop(&mut self) {
        let mut under_way = self.turns.under_way.locked();
        if let Some(count) = under_way.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                under_way.remove(&self.client);
            }
        }
    }
}

impl HeldLimits {
    const MAX_READS: usize = 20_000;
    const TIMEOUT_SECONDS: u64 = 30;
    const WALKS_PER_CLIENT: usize = 4;
}

impl Default for HeldLimits {
    fn default() -> Self {
        Self {
            max_reads: Self::MAX_READS,
            timeout_seconds: Self::TIMEOUT_SECONDS,
            cache_entries: ManifestCache::DEFAULT_CAPACITY,
            walks_per_client: Self::WALKS_PER_CLIENT,
        }
    }
}

/// What each manifest read so far references, by digest, for every delete of the process. At most
/// `capacity` manifests; past it the least recently used go.
pub struct ManifestCache {
    entries: quick_cache::sync::Cache<Sha256, Arc<ManifestRefs>>,
}

impl ManifestCache {
    /// Every manifest of 10,000 immutable tags of 2-platform images with a signature each.
    pub const DEFAULT_CAPACITY: usize = 100_000;

    pub fn new(capacity: usize) -> Self {
        Self { entries: quick_cache::sync::Cache::new(capacity.max(1)) }
    }

    /// What `digest` references, if remembered.
    pub fn get(&self, digest: &Sha256) -> Option<Arc<ManifestRefs>> {
        self.entries.get(digest)
    }

    /// Remembers what `digest` references (only ever what its checked bytes say).
    pub fn insert(&self, digest: Sha256, refs: Arc<ManifestRefs>) {
        self.entries.insert(digest, refs);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Why a walk gave no answer; nothing is deleted.
#[derive(Debug)]
pub enum WalkError {
    Lookup(LookupError),
    Manifest(ManifestError),
    /// A bound was reached (which, and what it is).
    Bounded(String),
}

impl From<LookupError> for WalkError {
    fn from(error: LookupError) -> Self {
        WalkError::Lookup(error)
    }
}

/// A manifest an immutable tag points at, and those tags.
struct Root {
    digest: Sha256,
    tags: Vec<Tag>,
}

/// One delete's view of a repository: its tags, and the manifests its immutable tags point at.
pub struct Walk<'a> {
    registry: &'a Registry,
    cache: &'a ManifestCache,
    /// Where the inventory keeps what manifests reference (read before asking the registry).
    pool: &'a PgPool,
    name: &'a str,
    authorization: Option<&'a HeaderValue>,
    max_reads: usize,
    reads: AtomicUsize,
    /// Every tag of the repository (the referrers tag schema's tags among them).
    tags: HashSet<String>,
    roots: Vec<Root>,
    /// Manifests read from the registry during this walk (for the inventory).
    learned: std::sync::Mutex<Vec<(Sha256, Arc<ManifestRefs>)>>,
}

impl<'a> Walk<'a> {
    /// Lists the repository's tags and looks up the manifest of each that `protection` may make
    /// immutable.
    pub async fn start(
        registry: &'a Registry,
        cache: &'a ManifestCache,
        pool: &'a PgPool,
        repository: &'a RepositoryName,
        protection: &Protection,
        authorization: Option<&'a HeaderValue>,
        limits: &HeldLimits,
    ) -> Result<Walk<'a>, WalkError> {
        let name = repository.as_str();
        let tags: HashSet<String> = registry.tags(name, authorization).await?.into_iter().collect();
        let mut walk = Walk {
            registry,
            cache,
            pool,
            name,
            authorization,
            max_reads: limits.max_reads,
            reads: AtomicUsize::new(1),
            tags,
            roots: Vec::new(),
            learned: Default::default(),
        };
        let immutable: Vec<Tag> = walk
            .tags
            .iter()
            .filter_map(|tag| Tag::parse(tag).ok())
            .filter(|tag| protection.needs_decision(repository, tag))
            .collect();
        let walk_ref = &walk;
        let current: Vec<(Tag, Option<Digest>)> = futures_util::stream::iter(immutable)
            .map(|tag| async move {
                walk_ref.count_read()?;
                let digest = registry.current_digest(name, tag.as_str(), authorization).await?;
                Ok::<_, WalkError>((tag, digest))
            })
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        let mut roots: HashMap<Sha256, Vec<Tag>> = HashMap::new();
        for (tag, digest) in current {
            if let Some(digest) = digest {
                roots.entry(Sha256::from(&digest)).or_default().push(tag);
            }
        }
        walk.roots = roots
            .into_iter()
            .map(|(digest, mut tags)| {
                tags.sort();
                Root { digest, tags }
            })
            .collect();
        walk.roots.sort_by_key(|root| root.digest);
        Ok(walk)
    }

    /// The immutable tags pointing at `digest` itself.
    pub fn tags_of(&self, digest: &Digest) -> Vec<Tag> {
        let digest = Sha256::from(digest);
        self.roots.iter().find(|root| root.digest == digest).map(|root| root.tags.clone()).unwrap_or_default()
    }

    /// The manifests this walk read from the registry (not those it found cached).
    pub fn learned(self) -> Vec<(Sha256, Arc<ManifestRefs>)> {
        self.learned.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registry reads made so far.
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::Relaxed)
    }

    fn count_read(&self) -> Result<(), WalkError> {
        let reads = self.reads.fetch_add(1, Ordering::Relaxed) + 1;
        if reads > self.max_reads {
            return Err(WalkError::Bounded(format!(
                "working out what the immutable tags of \"{}\" hold takes more than {} registry reads \
                 (--held-max-reads)",
                self.name, self.max_reads
            )));
        }
        Ok(())
    }

    fn holder(&self, root: usize, relation: Relation) -> Vec<Holder> {
        self.roots
            .get(root)
            .map(|root| Holder { digest: root.digest.digest(), tags: root.tags.clone(), relation })
            .into_iter()
            .collect()
    }

    /// What `digest` references, from the cache or read from the registry (and then checked
    /// against the digest); `None` when the registry does not have it.
    async fn refs(&self, digest: Sha256) -> Result<Option<Arc<ManifestRefs>>, WalkError> {
        if let Some(refs) = self.cache.get(&digest) {
            return Ok(Some(refs));
        }
        self.count_read()?;
        let reference = digest.to_string();
        let Some(bytes) = self.registry.manifest(self.name, &reference, self.authorization).await? else {
            return Ok(None);
        };
        let refs = Arc::new(ManifestRefs::parse(digest, &bytes).map_err(WalkError::Manifest)?);
        self.cache.insert(digest, refs.clone());
        self.learned.locked().push((digest, refs.clone()));
        Ok(Some(refs))
    }

    /// [`Self::refs`] of each, side by side. Those not cached are first asked of the inventory in one
    /// query (a process starting cold then reads from the registry only what nobody has read).
    async fn refs_of(&self, digests: &[Sha256]) -> Result<Vec<(Sha256, Arc<ManifestRefs>)>, WalkError> {
        let missing: Vec<Sha256> = digests.iter().copied().filter(|digest| self.cache.get(digest).is_none()).collect();
        if !missing.is_empty() {
            // Best effort: without the database, the registry is asked.
            let known = app::store::read_manifests(self.pool, self.name, &missing);
            if let Ok(Ok(known)) = tokio::time::timeout(INVENTORY_WAIT, known).await {
                for (digest, refs) in known {
                    self.cache.insert(digest, Arc::new(refs));
                }
            }
        }
        let read: Vec<_> = futures_util::stream::iter(digests.iter().copied())
            .map(|digest| async move { Ok::<_, WalkError>((digest, self.refs(digest).await?)) })
            .buffered(CONCURRENCY)
            .try_collect()
            .await?;
        Ok(read.into_iter().filter_map(|(digest, refs)| Some((digest, refs?))).collect())
    }

    /// The manifests whose `subject` is `digest`: the registry's referrers API (`api`: whether it
    /// has one; `None` until asked) and the referrers tag schema's `sha256-<hex>` tag.
    async fn referrers(&self, digest: Sha256, api: Option<bool>) -> Result<(Vec<Sha256>, bool), WalkError> {
        let mut found = Vec::new();
        let mut has_api = api.unwrap_or(true);
        if has_api {
            self.count_read()?;
            match self.registry.referrers(self.name, &digest.digest(), self.authorization).await? {
                None => has_api = false,
                Some(pages) => {
                    for page in pages {
                        found.extend(self.listed(&page)?);
                    }
                }
            }
        }
        let subject = digest.digest();
        for list in AttachmentList::all_of(&subject) {
            let tag = list.tag();
            if !self.tags.contains(&tag) {
                continue;
            }
            self.count_read()?;
            let Some(bytes) = self.registry.manifest(self.name, &tag, self.authorization).await? else { continue };
            match list.kind() {
                ListKind::Referrers => found.extend(self.listed(&bytes)?),
                // cosign's list is itself the one manifest attached: its layers are the signatures.
                ListKind::Signatures | ListKind::Attestations | ListKind::Sboms => {
                    let manifest = Sha256::of(&bytes);
                    if self.cache.get(&manifest).is_none() {
                        let refs = Arc::new(ManifestRefs::parse(manifest, &bytes).map_err(WalkError::Manifest)?);
                        self.cache.insert(manifest, refs.clone());
                        self.learned.locked().push((manifest, refs));
                    }
                    found.push(manifest);
                }
            }
        }
        Ok((found, has_api))
    }

    /// The held manifest whose attachment list (`sha256-<hex>`, cosign's `.sig`, `.att`, `.sbom`)
    /// points at `target`, among the manifests reached from the immutable tags (`owner`): deleting
    /// that list's manifest would detach everything it lists.
    async fn list_holding(&self, target: Sha256, owner: &HashMap<Sha256, usize>) -> Result<Option<usize>, WalkError> {
        // Owned: a stream of futures borrowing from the closure's argument is not `Send` for
        // every lifetime, which the gateway's handler needs.
        let lists: Vec<(String, usize)> = self
            .tags
            .iter()
            .filter_map(|tag| {
                let list = Tag::parse(tag).ok().as_ref().and_then(AttachmentList::of)?;
                Some((tag.clone(), *owner.get(&Sha256::from(list.subject()))?))
            })
            .collect();
        let mut pointing = futures_util::stream::iter(lists)
            .map(|(tag, root)| async move {
                self.count_read()?;
                let current = self.registry.current_digest(self.name, &tag, self.authorization).await?;
                Ok::<_, WalkError>(current.is_some_and(|current| Sha256::from(&current) == target).then_some(root))
            })
            .buffer_unordered(CONCURRENCY);
        while let Some(found) = pointing.try_next().await? {
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// The manifests an index lists (a referrers list is one).
    fn listed(&self, bytes: &[u8]) -> Result<Vec<Sha256>, WalkError> {
        let index = ManifestRefs::parse_unchecked(bytes).map_err(|why| {
            WalkError::Lookup(LookupError::Failed(format!(
                "a referrers list of \"{}\" cannot be read: {why}",
                self.name
            )))
        })?;
        Ok(index.children.iter().map(|child| child.digest).collect())
    }

    /// The immutable tags holding the manifest `target` (not counting tags pointing at it, which
    /// [`Self::tags_of`] gives): as a child of an index they point at (any depth), or as a referrer
    /// of something they hold (its `subject`, followed up).
    pub async fn holders_of_manifest(&self, target: &Digest) -> Result<Vec<Holder>, WalkError> {
        let target = Sha256::from(target);
        let mut owner: HashMap<Sha256, usize> =
            self.roots.iter().enumerate().map(|(i, root)| (root.digest, i)).collect();
        let mut level: Vec<Sha256> = self.roots.iter().map(|root| root.digest).collect();
        while !level.is_empty() {
            let mut next = Vec::new();
            for (digest, refs) in self.refs_of(&level).await? {
                let root = owner.get(&digest).copied().unwrap_or_default();
                reach(&mut owner, &mut next, refs.children.iter().map(|child| child.digest), root);
            }
            level = next;
        }
        if let Some(&root) = owner.get(&target) {
            if self.roots.get(root).is_some_and(|root| root.digest != target) {
                return Ok(self.holder(root, Relation::Child));
            }
        }
        let mut current = target;
        for _ in 0..MAX_SUBJECT_DEPTH {
            let Some(subject) = self.refs(current).await?.and_then(|refs| refs.subject) else { break };
            if let Some(&root) = owner.get(&subject) {
                return Ok(self.holder(root, Relation::Referrer));
            }
            current = subject;
        }
        if let Some(root) = self.list_holding(target, &owner).await? {
            return Ok(self.holder(root, Relation::Referrer));
        }
        Ok(Vec::new())
    }

    /// The immutable tags holding the blob `target`: as config or layer of an image they point at,
    /// of an index's child (any depth), or of a referrer attached to any of these.
    pub async fn holders_of_blob(&self, target: &Digest) -> Result<Vec<Holder>, WalkError> {
        let target = Sha256::from(target);
        // Each manifest reached: the root it was reached from, and whether through a referrer.
        let mut owner: HashMap<Sha256, (usize, bool)> =
            self.roots.iter().enumerate().map(|(i, root)| (root.digest, (i, false))).collect();
        let mut level: Vec<Sha256> = self.roots.iter().map(|root| root.digest).collect();
        let mut api = None;
        while !level.is_empty() {
            let mut next = Vec::new();
            for (digest, refs) in self.refs_of(&level).await? {
                let (root, through_referrer) = owner.get(&digest).copied().unwrap_or_default();
                if let Some(blob) = refs.blobs.iter().find(|blob| blob.digest == target) {
                    let relation = match (through_referrer, blob.role) {
                        (true, _) => Relation::Referrer,
                        (false, BlobRole::Config) => Relation::Config,
                        (false, BlobRole::Layer) => Relation::Layer,
                    };
                    return Ok(self.holder(root, relation));
                }
                let children = refs.children.iter().map(|child| child.digest);
                reach(&mut owner, &mut next, children, (root, through_referrer));
            }
            // Whether the registry has a referrers API is asked once, then the rest side by side.
            let (first, rest) = match (api, level.split_first()) {
                (None, Some((first, rest))) => {
                    let (found, has_api) = self.referrers(*first, None).await?;
                    api = Some(has_api);
                    (vec![(*first, found)], rest)
                }
                _ => (Vec::new(), level.as_slice()),
            };
            let rest: Vec<(Sha256, Vec<Sha256>)> = futures_util::stream::iter(rest.iter().copied())
                .map(|digest| async move { Ok::<_, WalkError>((digest, self.referrers(digest, api).await?.0)) })
                .buffered(CONCURRENCY)
                .try_collect()
                .await?;
            for (subject, referrers) in first.into_iter().chain(rest) {
                let (root, _) = owner.get(&subject).copied().unwrap_or_default();
                reach(&mut owner, &mut next, referrers, (root, true));
            }
            level = next;
        }
        Ok(Vec::new())
    }
}

/// Marks each of `found` not reached before as reached with `how` (the root it is held through, and
/// for blobs whether through a referrer), and queues it for the walk's next level.
fn reach<How: Copy>(
    owner: &mut HashMap<Sha256, How>,
    next: &mut Vec<Sha256>,
    found: impl IntoIterator<Item = Sha256>,
    how: How,
) {
    for digest in found {
        if let std::collections::hash_map::Entry::Vacant(entry) = owner.entry(digest) {
            entry.insert(how);
            next.push(digest);
        }
    }
}

//! Attachment lists: the tags in which registries without a referrers API keep what is attached
//! to a manifest. The OCI referrers tag schema's `sha256-<hex of the subject>` holds an image index
//! of the referrers (signatures, SBOMs, provenance); cosign's `sha256-<hex>.sig`, `.att` and
//! `.sbom` hold one image whose layers are the signatures, attestations or SBOMs.
//!
//! Signers add to such a list after the release was pushed, so freezing it breaks signing, and
//! leaving it mutable lets a client drop a signature (after which nothing holds its blobs). So a
//! list is *append-only* whenever a rule makes it immutable or its subject is held by an immutable
//! tag: a new list must keep every entry of the current one. Which entries a list has is read here,
//! from the bytes; whether new entries really are referrers of the subject is found by whoever can
//! read them (the gateway), and brought to the decision as [`ForeignEntry`]s.

use super::decision::Holder;
use super::names::{Digest, Tag};
use std::fmt;

/// Which kind of list a tag names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    /// `sha256-<hex>`: an image index of the manifests whose `subject` is the digest.
    Referrers,
    /// cosign's `sha256-<hex>.sig`: an image whose layers are signatures.
    Signatures,
    /// cosign's `sha256-<hex>.att`: an image whose layers are attestations.
    Attestations,
    /// cosign's `sha256-<hex>.sbom`: an image whose layers are SBOMs.
    Sboms,
}

impl ListKind {
    pub const ALL: [ListKind; 4] = [ListKind::Referrers, ListKind::Signatures, ListKind::Attestations, ListKind::Sboms];

    /// What follows `sha256-<hex>` in the tag.
    fn suffix(self) -> &'static str {
        match self {
            ListKind::Referrers => "",
            ListKind::Signatures => ".sig",
            ListKind::Attestations => ".att",
            ListKind::Sboms => ".sbom",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ListKind::Referrers => "referrers",
            ListKind::Signatures => "cosign signatures",
            ListKind::Attestations => "cosign attestations",
            ListKind::Sboms => "cosign SBOMs",
        }
    }
}

/// A tag that is an attachment list: of which subject, and of which kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttachmentList {
    subject: Digest,
    kind: ListKind,
}

impl AttachmentList {
    /// The list `tag` names, if it names one: `sha256-` and 64 lowercase hex digits (the referrers
    /// tag schema takes the digest's own spelling), optionally `.sig`, `.att` or `.sbom`.
    pub fn of(tag: &Tag) -> Option<Self> {
        let rest = tag.as_str().strip_prefix("sha256-")?;
        let hex = rest.get(..64)?;
        if !hex.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let suffix = rest.get(64..)?;
        let kind = ListKind::ALL.into_iter().find(|kind| kind.suffix() == suffix)?;
        let subject = Digest::parse(&format!("sha256:{hex}")).ok()?;
        Some(Self { subject, kind })
    }

    /// Every list tag `subject` can have.
    pub fn all_of(subject: &Digest) -> impl Iterator<Item = AttachmentList> + '_ {
        ListKind::ALL.into_iter().map(|kind| AttachmentList { subject: subject.clone(), kind })
    }

    pub fn subject(&self) -> &Digest {
        &self.subject
    }

    pub fn kind(&self) -> ListKind {
        self.kind
    }

    /// The tag naming this list.
    pub fn tag(&self) -> String {
        let hex = self.subject.as_str().strip_prefix("sha256:").unwrap_or_default();
        format!("sha256-{hex}{}", self.kind.suffix())
    }
}

/// What a list manifest lists: a referrers index's `manifests[].digest`, or a cosign image's layer
/// digests with its config's media type (which says what the layers are).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListEntries {
    entries: Vec<Digest>,
    config_type: Option<String>,
}

impl ListEntries {
    /// Entries as a registry reports them (the decision API), without a config type.
    pub fn from_entries(entries: Vec<Digest>) -> Self {
        Self { entries, config_type: None }
    }

    /// Reads a manifest as a list of `kind`; why not, when it is none.
    #[cfg(feature = "server-matcher")]
    pub fn parse(kind: ListKind, bytes: &[u8]) -> Result<Self, String> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Raw {
            schema_version: Option<u32>,
            media_type: Option<String>,
            config: Option<Descriptor>,
            layers: Option<Vec<Descriptor>>,
            manifests: Option<Vec<Descriptor>>,
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Descriptor {
            media_type: Option<String>,
            digest: String,
        }
        const INDEX_TYPES: [&str; 2] =
            ["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"];
        const IMAGE_TYPES: [&str; 2] =
            ["application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"];
        let raw: Raw = serde_json::from_slice(bytes).map_err(|error| format!("it is not a manifest: {error}"))?;
        if raw.schema_version != Some(2) {
            return Err("its `schemaVersion` is not 2".into());
        }
        let digests = |descriptors: &[Descriptor], what: &str| -> Result<Vec<Digest>, String> {
            descriptors
                .iter()
                .map(|descriptor| {
                    Digest::parse(&descriptor.digest)
                        .map_err(|_| format!("its {what} `{}` is no sha256 digest", descriptor.digest))
                })
                .collect()
        };
        match kind {
            ListKind::Referrers => {
                if raw.media_type.as_deref().is_some_and(|media_type| !INDEX_TYPES.contains(&media_type)) {
                    return Err(format!(
                        "a referrers list is an image index, not `{}`",
                        raw.media_type.unwrap_or_default()
                    ));
                }
                let manifests = raw.manifests.ok_or("a referrers list is an image index: it has no `manifests`")?;
                if raw.config.is_some() || raw.layers.is_some() {
                    return Err("a referrers list is an image index: it has a `config` or `layers`".into());
                }
                Ok(Self { entries: digests(&manifests, "entry")?, config_type: None })
            }
            ListKind::Signatures | ListKind::Attestations | ListKind::Sboms => {
                if raw.media_type.as_deref().is_some_and(|media_type| !IMAGE_TYPES.contains(&media_type)) {
                    return Err(format!(
                        "a cosign list is an image manifest, not `{}`",
                        raw.media_type.unwrap_or_default()
                    ));
                }
                if raw.manifests.is_some() {
                    return Err("a cosign list is an image manifest: it has `manifests`".into());
                }
                let config = raw.config.ok_or("a cosign list is an image manifest: it has no `config`")?;
                let layers = raw.layers.ok_or("a cosign list is an image manifest: it has no `layers`")?;
                digests(std::slice::from_ref(&config), "config")?;
                Ok(Self { entries: digests(&layers, "layer")?, config_type: config.media_type })
            }
        }
    }

    pub fn entries(&self) -> &[Digest] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A new entry of a referrers list that is not a referrer of the list's subject, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignEntry {
    pub digest: Digest,
    /// e.g. `its subject is sha256:…`, `it has no subject`, `the repository has no such manifest`.
    pub why: String,
}

/// A list before and after a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListUpdate {
    /// What the list holds now; `None` when it does not exist yet.
    pub current: Option<ListEntries>,
    pub pushed: ListEntries,
    /// New entries found not to be referrers of the subject.
    pub foreign: Vec<ForeignEntry>,
}

impl ListUpdate {
    /// Entries of the current list the pushed one leaves out, each once, in the current order.
    pub fn dropped(&self) -> Vec<&Digest> {
        let current = self.current.iter().flat_map(|current| &current.entries);
        only_in(current, &self.pushed.entries)
    }

    /// Entries of the pushed list the current one does not have, each once.
    pub fn added(&self) -> Vec<&Digest> {
        let current = self.current.as_ref().map_or(&[][..], |current| &current.entries);
        only_in(&self.pushed.entries, current)
    }

    /// A cosign list's config type changed (what its layers are said to be): from, to.
    fn retyped(&self) -> Option<(&str, &str)> {
        let before = self.current.as_ref()?.config_type.as_deref()?;
        let after = self.pushed.config_type.as_deref().unwrap_or("none");
        (before != after).then_some((before, after))
    }

    /// What makes this push more than an append, if anything.
    pub fn problem(&self) -> Option<ListProblem<'_>> {
        if let Some((from, to)) = self.retyped() {
            return Some(ListProblem::Retyped { from, to });
        }
        let dropped = self.dropped();
        if !dropped.is_empty() {
            return Some(ListProblem::Drops(dropped));
        }
        self.foreign.first().map(ListProblem::Foreign)
    }
}

/// The entries of `these` not in `others`, each once, in order. Hashed: a list of 4 MiB holds tens
/// of thousands of entries, and comparing two such lists pairwise would take seconds under the tag's
/// lock.
fn only_in<'a>(these: impl IntoIterator<Item = &'a Digest>, others: &[Digest]) -> Vec<&'a Digest> {
    let others: std::collections::HashSet<&Digest> = others.iter().collect();
    let mut seen = std::collections::HashSet::new();
    these.into_iter().filter(|entry| !others.contains(entry) && seen.insert(*entry)).collect()
}

/// Why a push to an append-only list is more than an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListProblem<'a> {
    /// It leaves out these entries of the current list.
    Drops(Vec<&'a Digest>),
    /// A cosign list whose config type changed.
    Retyped { from: &'a str, to: &'a str },
    /// A new entry that is not a referrer of the subject.
    Foreign(&'a ForeignEntry),
    /// The entries are not known (a decision API caller that did not send them), or the current
    /// list cannot be read: a push that changes the list cannot be told from a rewrite.
    Unknown,
}

/// What a push to an attachment list brings to its decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPush {
    pub list: AttachmentList,
    /// The entries before and after; `None` when they are not known.
    pub update: Option<ListUpdate>,
    /// The manifests holding the list's subject, with their tags (the subject itself with the tags
    /// pointing at it, an index above it, ...): an immutable tag among them makes the list
    /// append-only. Whoever decides may leave this empty when the push is an append anyway
    /// ([`ListUpdate::problem`] is `None`): it cannot change the answer then.
    pub subject_held_by: Vec<Holder>,
}

/// What deleting an attachment list brings to its decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListDelete {
    pub list: AttachmentList,
    /// As for [`ListPush::subject_held_by`] (not to be left out).
    pub subject_held_by: Vec<Holder>,
}

impl ListPush {
    /// What makes the push more than an append (`None`: it keeps every entry and adds only
    /// referrers of the subject).
    pub fn problem(&self) -> Option<ListProblem<'_>> {
        match &self.update {
            Some(update) => update.problem(),
            None => Some(ListProblem::Unknown),
        }
    }
}

impl fmt::Display for ListProblem<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListProblem::Drops(dropped) => {
                f.write_str("this push drops ")?;
                for (i, digest) in dropped.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{digest}")?;
                }
                Ok(())
            }
            ListProblem::Retyped { from, to } => write!(f, "this push changes what its layers are from `{from}` to `{to}`"),
            ListProblem::Foreign(entry) => write!(f, "the new entry {} is not a referrer of the list's subject: {}", entry.digest, entry.why),
            ListProblem::Unknown => {
                f.write_str("the entries of the current and the pushed list are not known, so an append cannot be told from a rewrite")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(seed: char) -> Digest {
        Digest::parse(&format!("sha256:{}", seed.to_string().repeat(64))).unwrap()
    }

    fn tag(value: &str) -> Tag {
        Tag::parse(value).unwrap()
    }

    #[test]
    fn list_tags_are_recognised_and_nothing_else() {
        let hex = "a".repeat(64);
        let list = AttachmentList::of(&tag(&format!("sha256-{hex}"))).unwrap();
        assert_eq!((list.subject(), list.kind()), (&digest('a'), ListKind::Referrers));
        for (suffix, kind) in
            [(".sig", ListKind::Signatures), (".att", ListKind::Attestations), (".sbom", ListKind::Sboms)]
        {
            let list = AttachmentList::of(&tag(&format!("sha256-{hex}{suffix}"))).unwrap();
            assert_eq!(list.kind(), kind);
            assert_eq!(list.tag(), format!("sha256-{hex}{suffix}"));
        }
        for other in [
            format!("sha256-{}", "a".repeat(63)),
            format!("sha256-{}", "A".repeat(64)),
            format!("sha256-{hex}a"),
            format!("sha256-{hex}.sig2"),
            format!("sha512-{hex}"),
            "v1".into(),
            "sha256-".into(),
        ] {
            assert_eq!(AttachmentList::of(&tag(&other)), None, "{other}");
        }
        let tags: Vec<String> = AttachmentList::all_of(&digest('b')).map(|list| list.tag()).collect();
        assert_eq!(tags.len(), 4);
        assert!(tags.iter().all(|tag| AttachmentList::of(&Tag::parse(tag).unwrap()).is_some()));
    }

    #[cfg(feature = "server-matcher")]
    fn index(entries: &[Digest]) -> Vec<u8> {
        let manifests: Vec<_> = entries.iter().map(|d| serde_json::json!({"digest": d.as_str(), "size": 1})).collect();
        serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests})
            .to_string()
            .into_bytes()
    }

    #[cfg(feature = "server-matcher")]
    #[test]
    fn lists_are_read_for_their_kind() {
        let entries = ListEntries::parse(ListKind::Referrers, &index(&[digest('1'), digest('2')])).unwrap();
        assert_eq!(entries.entries(), [digest('1'), digest('2')]);
        let image = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest('c').as_str(), "size": 2},
            "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": digest('3').as_str(), "size": 1}]})
        .to_string();
        let cosign = ListEntries::parse(ListKind::Signatures, image.as_bytes()).unwrap();
        assert_eq!(cosign.entries(), [digest('3')]);
        assert_eq!(cosign.config_type.as_deref(), Some("application/vnd.oci.image.config.v1+json"));

        let wrong_kind = ListEntries::parse(ListKind::Referrers, image.as_bytes()).unwrap_err();
        assert!(wrong_kind.contains("image index"), "{wrong_kind}");
        let wrong_kind = ListEntries::parse(ListKind::Signatures, &index(&[])).unwrap_err();
        assert!(wrong_kind.contains("image manifest"), "{wrong_kind}");
        for junk in
            [&b"nope"[..], br#"{"schemaVersion":1}"#, br#"{"schemaVersion":2,"manifests":[{"digest":"md5:1"}]}"#]
        {
            assert!(ListEntries::parse(ListKind::Referrers, junk).is_err());
        }
    }

    fn update(current: Option<Vec<Digest>>, pushed: Vec<Digest>) -> ListUpdate {
        ListUpdate {
            current: current.map(ListEntries::from_entries),
            pushed: ListEntries::from_entries(pushed),
            foreign: Vec::new(),
        }
    }

    #[test]
    fn an_append_keeps_every_entry() {
        let (a, b, c) = (digest('a'), digest('b'), digest('c'));
        assert_eq!(update(None, vec![a.clone()]).problem(), None, "the first list");
        assert_eq!(update(Some(vec![a.clone()]), vec![a.clone()]).problem(), None, "the same list");
        let append = update(Some(vec![a.clone()]), vec![b.clone(), a.clone()]);
        assert_eq!((append.problem(), append.added()), (None, vec![&b]), "order does not matter");
        let drop = update(Some(vec![a.clone(), b.clone(), c.clone()]), vec![b.clone()]);
        assert_eq!(drop.problem(), Some(ListProblem::Drops(vec![&a, &c])));
        assert_eq!(drop.problem().unwrap().to_string(), format!("this push drops {a}, {c}"),);
        let mut foreign = update(Some(vec![a.clone()]), vec![a.clone(), b.clone()]);
        foreign.foreign.push(ForeignEntry { digest: b.clone(), why: "it has no subject".into() });
        assert!(matches!(foreign.problem(), Some(ListProblem::Foreign(_))));
        let mut retyped = update(Some(vec![a.clone()]), vec![a.clone()]);
        retyped.current = Some(ListEntries { entries: vec![a.clone()], config_type: Some("x".into()) });
        assert_eq!(retyped.problem(), Some(ListProblem::Retyped { from: "x", to: "none" }));
    }

    proptest::proptest! {
        /// Whatever two lists are, the push is an append exactly when every current entry is kept.
        #[test]
        fn append_is_keeping_every_entry(current in proptest::collection::vec(0u8..6, 0..6), pushed in proptest::collection::vec(0u8..6, 0..6)) {
            let digests = |seeds: &[u8]| -> Vec<Digest> { seeds.iter().map(|s| digest(char::from(b'0' + s))).collect() };
            let (current, pushed) = (digests(&current), digests(&pushed));
            let update = update(Some(current.clone()), pushed.clone());
            let keeps = current.iter().all(|entry| pushed.contains(entry));
            proptest::prop_assert_eq!(update.problem().is_none(), keeps);
            for added in update.added() {
                proptest::prop_assert!(!current.contains(added) && pushed.contains(added));
            }
        }
    }
}

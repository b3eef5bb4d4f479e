//! The registry as it is, seen through the tag inventory: what pages show of it (a project's tags,
//! what immutable tags hold, the impact of a rule change) and the counting behind them, decided by
//! the rule engine's compiled policy, the one enforcement uses. The server functions that serve it
//! are the Tags tab's (`tags.rs`) and the rule dialog's (`rules.rs`).
//!
//! Here: the view types pages are sent. Server side: `counting` (what a policy makes of a
//! project's tags), `recounted` (counts kept between pages, recounted when the policy or the
//! inventory moves), `freshness` (how current the inventory is, in words).

use crate::format::{bytes, thousands};
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
pub mod counting;
#[cfg(feature = "ssr")]
pub mod freshness;
#[cfg(feature = "ssr")]
pub mod recounted;

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

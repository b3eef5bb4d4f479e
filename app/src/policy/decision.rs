//! The questions a registry asks (a push, a tag delete, a manifest or blob delete) and the
//! answers: a [`Decision`] names the rules involved, and its `Display` is the one-line message a
//! `docker push` user sees.

use super::attachment::{AttachmentList, ListDelete, ListProblem, ListPush};
use super::compiled::{CompiledPolicy, RuleInfo, RuleMask};
use super::names::{Digest, RepositoryName, Tag};
use std::fmt;

/// Which rules a decision counts: the enforced ones (what is decided), or the evaluating ones too
/// (what would be decided were they enforced).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Enforced,
    WithEvaluating,
}

impl CompiledPolicy {
    fn immutable(&self, scope: Scope, repository: &RepositoryName, tag: &Tag) -> RuleMask {
        match scope {
            Scope::Enforced => self.immutable_rules(repository.path(), tag.as_str()),
            Scope::WithEvaluating => self.matching_rules(repository.path(), tag.as_str()),
        }
    }

    /// The decision under the enforced rules and, when it allows what the evaluating rules would
    /// have refused, what they would have said.
    fn decide<'a>(&'a self, repository: &'a RepositoryName, outcome: impl Fn(Scope) -> Outcome<'a>) -> Decision<'a> {
        let mut decision = Decision { policy: self, repository, outcome: outcome(Scope::Enforced), would_have: None };
        if decision.allowed() && self.has_evaluating_rules() {
            let as_if =
                Decision { policy: self, repository, outcome: outcome(Scope::WithEvaluating), would_have: None };
            if !as_if.allowed() {
                decision.would_have = Some(as_if.outcome);
            }
        }
        decision
    }

    /// A push of `pushed` to `tag`, which points at `current` now (or at nothing).
    pub fn check_push<'a>(
        &'a self,
        repository: &'a RepositoryName,
        tag: &'a Tag,
        pushed: &'a Digest,
        current: Option<&'a Digest>,
    ) -> Decision<'a> {
        self.decide(repository, |scope| {
            let rules = self.immutable(scope, repository, tag);
            match current {
                _ if rules.is_empty() => Outcome::MutableTag { tag },
                None => Outcome::FirstPush { tag, rules },
                Some(current) if current == pushed => Outcome::SameDigest { tag, rules },
                Some(current) => Outcome::Overwrite { tag, rules, current, pushed },
            }
        })
    }

    /// A push of `pushed` to the attachment list `tag` (see [`super::attachment`]), which points
    /// at `current` now (or at nothing). The list is append-only when a rule makes it immutable or
    /// an immutable tag holds its subject; then only a push that keeps every entry (adding only
    /// referrers of the subject) is allowed, besides re-pushing it unchanged and creating it.
    /// Otherwise it is a mutable tag like any other.
    pub fn check_list_push<'a>(
        &'a self,
        repository: &'a RepositoryName,
        tag: &'a Tag,
        pushed: &'a Digest,
        current: Option<&'a Digest>,
        list: &'a ListPush,
    ) -> Decision<'a> {
        self.decide(repository, |scope| {
            let Some(why) = self.append_only(scope, repository, tag, &list.subject_held_by) else {
                return Outcome::MutableTag { tag };
            };
            // A re-push changes nothing; a first list has nothing to drop, but what it lists must
            // be referrers of the subject as much as what is appended later (when that is known).
            match (current, list.problem()) {
                (Some(current), _) if current == pushed => Outcome::ListGrows { tag, list, why },
                (_, None) | (None, Some(ListProblem::Unknown)) => Outcome::ListGrows { tag, list, why },
                (_, Some(_)) => Outcome::ListRefused { tag, list, why },
            }
        })
    }

    /// Why the attachment list `tag` is append-only, if it is: a rule makes it immutable, or an
    /// immutable tag holds its subject.
    fn append_only<'a>(
        &'a self,
        scope: Scope,
        repository: &'a RepositoryName,
        tag: &'a Tag,
        subject_held_by: &'a [Holder],
    ) -> Option<AppendOnly<'a>> {
        let rules = self.immutable(scope, repository, tag);
        if !rules.is_empty() {
            return Some(AppendOnly::Rules(rules));
        }
        subject_held_by
            .iter()
            .flat_map(|holder| holder.tags.iter().map(move |tag| (holder, tag)))
            .map(|(holder, tag)| (holder, tag, self.immutable(scope, repository, tag)))
            .find(|(_, _, rules)| !rules.is_empty())
            .map(|(holder, tag, rules)| AppendOnly::HeldSubject { holder, tag, rules })
    }

    /// Deleting `tag` (the manifest stays).
    pub fn check_delete_tag<'a>(&'a self, repository: &'a RepositoryName, tag: &'a Tag) -> Decision<'a> {
        self.decide(repository, |scope| {
            let rules = self.immutable(scope, repository, tag);
            if rules.is_empty() {
                Outcome::MutableTag { tag }
            } else {
                Outcome::DeleteImmutableTag { tag, rules }
            }
        })
    }

    /// Deleting the attachment list `tag`: refused while it is append-only (a rule makes it
    /// immutable, or an immutable tag holds its subject).
    pub fn check_delete_list<'a>(
        &'a self,
        repository: &'a RepositoryName,
        tag: &'a Tag,
        list: &'a ListDelete,
    ) -> Decision<'a> {
        self.decide(repository, |scope| match self.append_only(scope, repository, tag, &list.subject_held_by) {
            Some(why) => Outcome::DeleteList { tag, list: &list.list, why },
            None => Outcome::MutableTag { tag },
        })
    }

    /// Deleting the manifest `digest`, which the `tags` point at now and the manifests `held_by`
    /// reference (indexes it is a child of, at any depth, and the subject it is a referrer of):
    /// locked by any immutable tag among them.
    pub fn check_delete_manifest<'a>(
        &'a self,
        repository: &'a RepositoryName,
        digest: &'a Digest,
        tags: &'a [Tag],
        held_by: &'a [Holder],
    ) -> Decision<'a> {
        self.decide(repository, |scope| {
            let locked = tags
                .iter()
                .map(|tag| (tag, self.immutable(scope, repository, tag)))
                .find(|(_, rules)| !rules.is_empty());
            match locked {
                Some((tag, rules)) => Outcome::LockedManifest { digest, tag, rules },
                None => self.held(scope, repository, Target::Manifest(digest), held_by),
            }
        })
    }

    /// Deleting the blob `digest`, which the manifests `held_by` reference (as config or layer, of
    /// themselves or of their children and referrers): locked by any immutable tag among them.
    pub fn check_delete_blob<'a>(
        &'a self,
        repository: &'a RepositoryName,
        digest: &'a Digest,
        held_by: &'a [Holder],
    ) -> Decision<'a> {
        self.decide(repository, |scope| self.held(scope, repository, Target::Blob(digest), held_by))
    }

    fn held<'a>(
        &'a self,
        scope: Scope,
        repository: &'a RepositoryName,
        target: Target<'a>,
        held_by: &'a [Holder],
    ) -> Outcome<'a> {
        held_by
            .iter()
            .flat_map(|holder| holder.tags.iter().map(move |tag| (holder, tag)))
            .map(|(holder, tag)| (holder, tag, self.immutable(scope, repository, tag)))
            .find(|(_, _, rules)| !rules.is_empty())
            .map_or(Outcome::Unlocked { target }, |(holder, tag, rules)| Outcome::Held { target, holder, tag, rules })
    }

    /// Of `tags`, those that are immutable.
    pub fn immutable_tags<'a>(
        &'a self,
        repository: &'a RepositoryName,
        tags: &'a [Tag],
    ) -> impl Iterator<Item = &'a Tag> + 'a {
        tags.iter().filter(move |tag| !self.immutable(Scope::Enforced, repository, tag).is_empty())
    }
}

/// Why a decision came out as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome<'a> {
    MutableTag {
        tag: &'a Tag,
    },
    FirstPush {
        tag: &'a Tag,
        rules: RuleMask,
    },
    SameDigest {
        tag: &'a Tag,
        rules: RuleMask,
    },
    Overwrite {
        tag: &'a Tag,
        rules: RuleMask,
        current: &'a Digest,
        pushed: &'a Digest,
    },
    DeleteImmutableTag {
        tag: &'a Tag,
        rules: RuleMask,
    },
    LockedManifest {
        digest: &'a Digest,
        tag: &'a Tag,
        rules: RuleMask,
    },
    /// The target is part of what an immutable tag holds: `tag` of `holder` is immutable.
    Held {
        target: Target<'a>,
        holder: &'a Holder,
        tag: &'a Tag,
        rules: RuleMask,
    },
    /// No immutable tag points at the target or holds it.
    Unlocked {
        target: Target<'a>,
    },
    /// A push to an append-only attachment list that keeps every entry (or creates the list, or
    /// re-pushes it unchanged).
    ListGrows {
        tag: &'a Tag,
        list: &'a ListPush,
        why: AppendOnly<'a>,
    },
    /// A push to an append-only attachment list that is more than an append (what more:
    /// [`ListPush::problem`]).
    ListRefused {
        tag: &'a Tag,
        list: &'a ListPush,
        why: AppendOnly<'a>,
    },
    /// Deleting an append-only attachment list.
    DeleteList {
        tag: &'a Tag,
        list: &'a AttachmentList,
        why: AppendOnly<'a>,
    },
}

/// Why an attachment list only grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOnly<'a> {
    /// These rules make the list's own tag immutable.
    Rules(RuleMask),
    /// Immutable tag `tag` (by `rules`) of `holder` holds the list's subject.
    HeldSubject { holder: &'a Holder, tag: &'a Tag, rules: RuleMask },
}

impl AppendOnly<'_> {
    pub fn rules(&self) -> RuleMask {
        match self {
            AppendOnly::Rules(rules) | AppendOnly::HeldSubject { rules, .. } => *rules,
        }
    }

    /// The immutable tag holding the subject, when that is why.
    pub fn holding_tag(&self) -> Option<&Tag> {
        match self {
            AppendOnly::Rules(_) => None,
            AppendOnly::HeldSubject { tag, .. } => Some(tag),
        }
    }
}

/// What a delete removes: a manifest or a blob, by digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    Manifest(&'a Digest),
    Blob(&'a Digest),
}

impl fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Manifest(digest) => write!(f, "manifest {digest}"),
            Target::Blob(digest) => write!(f, "blob {digest}"),
        }
    }
}

/// What the target of a delete is to a manifest that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// A manifest an index lists (at any depth below the holder).
    Child,
    /// The config blob of the holder's image (or of an image below it).
    Config,
    /// A layer blob of the holder's image (or of an image below it).
    Layer,
    /// A manifest whose `subject` is the holder (a signature, SBOM, attestation), or a blob of one.
    Referrer,
}

impl Relation {
    pub fn as_str(self) -> &'static str {
        match self {
            Relation::Child => "child",
            Relation::Config => "config",
            Relation::Layer => "layer",
            Relation::Referrer => "referrer",
        }
    }

    /// How a message says it: "layer of sha256:…".
    fn phrase(self) -> &'static str {
        match self {
            Relation::Child => "child of",
            Relation::Config => "config of",
            Relation::Layer => "layer of",
            Relation::Referrer => "signature/referrer of",
        }
    }
}

/// A manifest that holds the target of a delete, directly or through others, with its tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub digest: Digest,
    pub tags: Vec<Tag>,
    /// What the target is to this manifest.
    pub relation: Relation,
}

/// The answer to one question of the registry; its `Display` is the one-line message.
#[derive(Debug, Clone, Copy)]
pub struct Decision<'a> {
    policy: &'a CompiledPolicy,
    repository: &'a RepositoryName,
    pub outcome: Outcome<'a>,
    /// When the decision allows what evaluating rules would have refused: the outcome had they
    /// been enforced.
    would_have: Option<Outcome<'a>>,
}

impl<'a> Decision<'a> {
    /// What the decision would have been had the project's evaluating rules been enforced, when
    /// that is a denial this one is not: its `Display` is the message the client would have seen,
    /// and [`Decision::rules`] names the evaluating rules that would have refused.
    pub fn would_have_denied(&self) -> Option<Decision<'a>> {
        self.would_have.map(|outcome| Decision {
            policy: self.policy,
            repository: self.repository,
            outcome,
            would_have: None,
        })
    }

    /// The evaluating rules that would have refused this (empty when none would).
    pub fn evaluated_rules(&self) -> impl Iterator<Item = RuleInfo> + 'a {
        let mask =
            self.would_have_denied().map_or(RuleMask::default(), |as_if| self.policy.evaluating_of(as_if.mask()));
        self.policy.rules(mask)
    }

    pub fn allowed(&self) -> bool {
        !matches!(
            self.outcome,
            Outcome::Overwrite { .. }
                | Outcome::DeleteImmutableTag { .. }
                | Outcome::LockedManifest { .. }
                | Outcome::Held { .. }
                | Outcome::ListRefused { .. }
                | Outcome::DeleteList { .. }
        )
    }
    /// The rules that made the tag immutable (empty for a mutable tag or an unlocked manifest).
    pub fn rules(&self) -> impl Iterator<Item = RuleInfo> + 'a {
        self.policy.rules(self.mask())
    }

    fn mask(&self) -> RuleMask {
        match self.outcome {
            Outcome::FirstPush { rules, .. }
            | Outcome::SameDigest { rules, .. }
            | Outcome::Overwrite { rules, .. }
            | Outcome::DeleteImmutableTag { rules, .. }
            | Outcome::LockedManifest { rules, .. }
            | Outcome::Held { rules, .. } => rules,
            Outcome::ListGrows { why, .. } | Outcome::ListRefused { why, .. } | Outcome::DeleteList { why, .. } => {
                why.rules()
            }
            Outcome::MutableTag { .. } | Outcome::Unlocked { .. } => RuleMask::default(),
        }
    }

    /// `(rule 3: …)` when a rule makes the list immutable; `(its subject sha256:… is held by
    /// immutable tag "v1" (rule 3: …))` when a tag holding its subject does.
    fn write_append_only(&self, f: &mut fmt::Formatter<'_>, list: &AttachmentList, why: AppendOnly<'_>) -> fmt::Result {
        match why {
            AppendOnly::Rules(_) => self.write_rules(f),
            AppendOnly::HeldSubject { tag, .. } => {
                write!(f, "(its subject {} is held by immutable tag \"{tag}\" ", list.subject())?;
                self.write_rules(f)?;
                f.write_str(")")
            }
        }
    }

    fn write_rules(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(")?;
        for (i, (id, summary)) in self.policy.rule_summaries(self.mask()).enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "rule {id}: {summary}")?;
        }
        f.write_str(")")
    }
}

impl fmt::Display for Decision<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let repository = self.repository;
        match self.outcome {
            Outcome::MutableTag { tag } => {
                write!(f, "tag \"{tag}\" of \"{repository}\" is not immutable")
            }
            Outcome::FirstPush { tag, .. } => {
                write!(f, "first push of immutable tag \"{tag}\" of \"{repository}\" ")?;
                self.write_rules(f)
            }
            Outcome::SameDigest { tag, .. } => {
                write!(f, "tag \"{tag}\" of \"{repository}\" already points at this digest ")?;
                self.write_rules(f)
            }
            Outcome::Overwrite { tag, .. } => {
                write!(f, "tag \"{tag}\" of \"{repository}\" is immutable ")?;
                self.write_rules(f)?;
                f.write_str("; push a new tag instead")
            }
            Outcome::DeleteImmutableTag { tag, .. } => {
                write!(f, "tag \"{tag}\" of \"{repository}\" is immutable ")?;
                self.write_rules(f)?;
                f.write_str("; it cannot be deleted")
            }
            Outcome::LockedManifest { digest, tag, .. } => {
                write!(f, "manifest {digest} of \"{repository}\" is locked by its immutable tag \"{tag}\" ")?;
                self.write_rules(f)?;
                f.write_str("; it cannot be deleted")
            }
            Outcome::Held { target, holder, tag, .. } => {
                write!(f, "{target} of \"{repository}\" is held by immutable tag \"{tag}\" ")?;
                self.write_rules(f)?;
                write!(f, " as {} {}; it cannot be deleted", holder.relation.phrase(), holder.digest)
            }
            Outcome::Unlocked { target: target @ Target::Manifest(_) } => {
                write!(f, "{target} of \"{repository}\" has no immutable tag")
            }
            Outcome::Unlocked { target: target @ Target::Blob(_) } => {
                write!(f, "{target} of \"{repository}\" is held by no immutable tag")
            }
            Outcome::ListGrows { tag, list, why } => {
                let added = list.update.as_ref().map_or(0, |update| update.added().len());
                write!(f, "attachment list \"{tag}\" of \"{repository}\" keeps every entry and adds {added} ")?;
                self.write_append_only(f, &list.list, why)
            }
            Outcome::ListRefused { tag, list, why } => {
                write!(f, "attachment list \"{tag}\" of \"{repository}\" only grows ")?;
                self.write_append_only(f, &list.list, why)?;
                match list.problem() {
                    Some(problem @ ListProblem::Drops(_)) => write!(f, ": {problem}; push a list that keeps them"),
                    Some(problem) => write!(f, ": {problem}"),
                    None => Ok(()),
                }
            }
            Outcome::DeleteList { tag, list, why } => {
                write!(f, "attachment list \"{tag}\" of \"{repository}\" only grows ")?;
                self.write_append_only(f, list, why)?;
                f.write_str("; it cannot be deleted")
            }
        }
    }
}

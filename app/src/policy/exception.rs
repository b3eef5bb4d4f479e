//! One-time exceptions ("break glass"): what one lets through, parsed once where it is granted,
//! and whether it lets a refused change through. An exception never widens a rule: it is asked
//! only about a change the enforced rules refused, and answers for one repository and one tag (or
//! one digest), one operation.

use super::{Digest, FieldError, RepositoryName, Tag};
use serde::{Deserialize, Serialize};
use std::fmt;

/// How long an exception lasts unless told otherwise, and at most (minutes).
pub const DEFAULT_LIFETIME_MINUTES: u32 = 60;
pub const MAX_LIFETIME_MINUTES: u32 = 24 * 60;
/// The longest reason kept (a sentence or a ticket link, not a document).
pub const MAX_REASON_CHARS: usize = 500;

/// Whether a project takes exceptions: `allowed` (a project admin's grant is usable at once),
/// `four-eyes` (a second admin approves it first) or `off`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ExceptionsMode {
    #[default]
    Allowed,
    FourEyes,
    Off,
}

impl ExceptionsMode {
    pub const ALL: [ExceptionsMode; 3] = [ExceptionsMode::Allowed, ExceptionsMode::FourEyes, ExceptionsMode::Off];

    pub fn as_str(self) -> &'static str {
        match self {
            ExceptionsMode::Allowed => "allowed",
            ExceptionsMode::FourEyes => "four-eyes",
            ExceptionsMode::Off => "off",
        }
    }

    pub fn parse(value: &str) -> Result<Self, FieldError> {
        Self::ALL
            .into_iter()
            .find(|mode| mode.as_str() == value.trim())
            .ok_or_else(|| FieldError::new("exceptions", value, "is not one of allowed, four-eyes, off"))
    }
}

/// Whether this tagward takes exceptions at all (`TAGWARD_EXCEPTIONS`): off, no project can grant
/// or use one, whatever its own setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExceptionsSwitch {
    #[default]
    On,
    Off,
}

impl std::str::FromStr for ExceptionsSwitch {
    type Err = String;
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim() {
            "on" => Ok(ExceptionsSwitch::On),
            "off" => Ok(ExceptionsSwitch::Off),
            other => Err(format!("exceptions `{other}` is not one of on, off")),
        }
    }
}

/// What the exception allows once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExceptionOperation {
    /// Pushing another digest to the immutable tag.
    Overwrite,
    /// Deleting the tag, the manifest it points at, or something it holds; or the digest named.
    Delete,
}

impl ExceptionOperation {
    pub fn as_str(self) -> &'static str {
        match self {
            ExceptionOperation::Overwrite => "overwrite",
            ExceptionOperation::Delete => "delete",
        }
    }

    pub fn parse(value: &str) -> Result<Self, FieldError> {
        match value.trim() {
            "overwrite" => Ok(ExceptionOperation::Overwrite),
            "delete" => Ok(ExceptionOperation::Delete),
            _ => Err(FieldError::new("operation", value, "is not one of overwrite, delete")),
        }
    }
}

impl fmt::Display for ExceptionOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the exception is for: one tag of the repository, or one digest in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExceptionTarget {
    Tag(Tag),
    Digest(Digest),
}

/// Everything an exception answers for: repository, target, operation, and for an overwrite the
/// one digest it may bring (none: any).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionScope {
    pub repository: RepositoryName,
    pub target: ExceptionTarget,
    pub operation: ExceptionOperation,
    pub to_digest: Option<Digest>,
}

/// A change the enforced rules refused, as an exception is asked about it.
#[derive(Debug, Clone, Copy)]
pub enum RefusedChange<'a> {
    /// Pushing `digest` to the immutable `tag`, which points at another digest.
    Overwrite { repository: &'a RepositoryName, tag: &'a Tag, digest: &'a Digest },
    /// Deleting a tag, a manifest (`digest`) or a blob (`digest`), refused because of
    /// `immutable_tags`: the tag itself, the tags pointing at the manifest, the tags holding it.
    Delete { repository: &'a RepositoryName, digest: Option<&'a Digest>, immutable_tags: &'a [String] },
}

impl ExceptionScope {
    /// Whether this exception lets `change` through. A tag's delete exception releases whatever
    /// only that tag holds (its manifest, the platforms and blobs under it); a digest's releases
    /// deleting that digest. An overwrite exception releases pushing to its tag (only its digest,
    /// when it names one).
    pub fn releases(&self, change: &RefusedChange<'_>) -> bool {
        match (change, self.operation, &self.target) {
            (
                RefusedChange::Overwrite { repository, tag, digest },
                ExceptionOperation::Overwrite,
                ExceptionTarget::Tag(own),
            ) => {
                *repository == &self.repository && *tag == own && self.to_digest.as_ref().is_none_or(|to| to == *digest)
            }
            (
                RefusedChange::Delete { repository, immutable_tags, .. },
                ExceptionOperation::Delete,
                ExceptionTarget::Tag(own),
            ) => {
                *repository == &self.repository
                    && !immutable_tags.is_empty()
                    && immutable_tags.iter().all(|tag| tag == own.as_str())
            }
            (
                RefusedChange::Delete { repository, digest: Some(digest), .. },
                ExceptionOperation::Delete,
                ExceptionTarget::Digest(own),
            ) => *repository == &self.repository && *digest == own,
            _ => false,
        }
    }

    /// e.g. `overwrite of shop/api:v1 (with sha256:…)`, `delete of shop/api@sha256:…`.
    pub fn summary(&self) -> String {
        let target = match &self.target {
            ExceptionTarget::Tag(tag) => format!("{}:{tag}", self.repository),
            ExceptionTarget::Digest(digest) => format!("{}@{digest}", self.repository),
        };
        match &self.to_digest {
            Some(to) => format!("{} of {target} with {to}", self.operation),
            None => format!("{} of {target}", self.operation),
        }
    }
}

/// An exception as a form, the CLI or a test asks for it: text, to be parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionInput {
    pub repository: String,
    /// A tag, or a digest (`sha256:…`).
    pub target: String,
    pub operation: String,
    /// For an overwrite: the only digest it may bring (empty: any).
    pub to_digest: String,
    pub reason: String,
    /// `30m`, `1h`, `24h`, or minutes; empty: [`DEFAULT_LIFETIME_MINUTES`].
    pub expires_in: String,
}

/// A grant, parsed: scope, reason, lifetime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExceptionGrant {
    pub scope: ExceptionScope,
    pub reason: String,
    pub lifetime_minutes: u32,
}

impl ExceptionGrant {
    /// Parses `input` for a repository of `project`.
    pub fn parse(project: &str, input: &ExceptionInput) -> Result<Self, FieldError> {
        let repository = RepositoryName::parse(input.repository.trim()).map_err(|error| {
            FieldError::new("repository", &input.repository, format!("is not valid: {}", error.why))
        })?;
        if repository.project() != project {
            return Err(FieldError::new("repository", &input.repository, format!("is not in project `{project}`")));
        }
        let operation = ExceptionOperation::parse(&input.operation)?;
        let target_text = input.target.trim();
        let target = if target_text.starts_with("sha256:") {
            let digest = Digest::parse(target_text)
                .map_err(|error| FieldError::new("target", &input.target, format!("is not valid: {}", error.why)))?;
            if operation == ExceptionOperation::Overwrite {
                return Err(FieldError::new(
                    "target",
                    &input.target,
                    "is a digest: an overwrite exception is for a tag (a digest can only be deleted)",
                ));
            }
            ExceptionTarget::Digest(digest)
        } else {
            ExceptionTarget::Tag(Tag::parse(target_text).map_err(|error| {
                FieldError::new("target", &input.target, format!("is not a tag or a digest: {}", error.why))
            })?)
        };
        let to_digest = match input.to_digest.trim() {
            "" => None,
            _ if operation == ExceptionOperation::Delete => {
                return Err(FieldError::new("to_digest", &input.to_digest, "is only for an overwrite"))
            }
            text => Some(Digest::parse(text).map_err(|error| {
                FieldError::new("to_digest", &input.to_digest, format!("is not valid: {}", error.why))
            })?),
        };
        let reason = input.reason.trim();
        if reason.is_empty() {
            return Err(FieldError::new("reason", &input.reason, "is required: say why this change must happen"));
        }
        if reason.chars().count() > MAX_REASON_CHARS {
            return Err(FieldError::new(
                "reason",
                &format!("{}…", reason.chars().take(40).collect::<String>()),
                format!("is longer than {MAX_REASON_CHARS} characters"),
            ));
        }
        let lifetime_minutes = parse_lifetime(&input.expires_in)?;
        Ok(Self {
            scope: ExceptionScope { repository, target, operation, to_digest },
            reason: reason.to_owned(),
            lifetime_minutes,
        })
    }
}

/// `30m`, `1h`, `90` (minutes); empty for the default; at most a day.
fn parse_lifetime(text: &str) -> Result<u32, FieldError> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Ok(DEFAULT_LIFETIME_MINUTES);
    }
    let (number, unit) = match trimmed.strip_suffix('h') {
        Some(hours) => (hours, 60),
        None => (trimmed.strip_suffix('m').unwrap_or(trimmed), 1),
    };
    let minutes = number.trim().parse::<u32>().ok().and_then(|n| n.checked_mul(unit));
    match minutes {
        Some(minutes) if (1..=MAX_LIFETIME_MINUTES).contains(&minutes) => Ok(minutes),
        Some(_) => Err(FieldError::new("expires_in", text, "must be between 1 minute and 24 hours")),
        None => Err(FieldError::new("expires_in", text, "is not a duration such as 30m, 1h or 24h")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(target: &str, operation: &str) -> ExceptionInput {
        ExceptionInput {
            repository: "shop/api".into(),
            target: target.into(),
            operation: operation.into(),
            reason: "INC-42: wrong image released".into(),
            ..ExceptionInput::default()
        }
    }

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn a_grant_names_the_field_and_value_it_refuses() {
        let ok = ExceptionGrant::parse("shop", &input("v1", "overwrite")).unwrap();
        assert_eq!(ok.lifetime_minutes, 60);
        assert_eq!(ok.scope.summary(), "overwrite of shop/api:v1");
        let refused = |input: ExceptionInput| ExceptionGrant::parse("shop", &input).unwrap_err().to_string();
        assert_eq!(refused(input("v1", "move")), "operation: `move` is not one of overwrite, delete");
        assert!(refused(ExceptionInput { repository: "web/api".into(), ..input("v1", "delete") })
            .starts_with("repository: `web/api` is not in project `shop`"));
        assert!(refused(input(A, "overwrite")).starts_with(&format!("target: `{A}` is a digest")));
        assert!(refused(input("v1!", "delete")).starts_with("target: `v1!` is not a tag or a digest"));
        assert!(refused(ExceptionInput { reason: "  ".into(), ..input("v1", "delete") })
            .starts_with("reason: `  ` is required"));
        assert!(
            refused(ExceptionInput { to_digest: A.into(), ..input("v1", "delete") }).starts_with("to_digest: `sha256:")
        );
        assert_eq!(
            refused(ExceptionInput { expires_in: "25h".into(), ..input("v1", "delete") }),
            "expires_in: `25h` must be between 1 minute and 24 hours"
        );
        assert_eq!(
            refused(ExceptionInput { expires_in: "soon".into(), ..input("v1", "delete") }),
            "expires_in: `soon` is not a duration such as 30m, 1h or 24h"
        );
        for (text, minutes) in [("30m", 30), ("4h", 240), ("24h", 1440), ("90", 90)] {
            let grant =
                ExceptionGrant::parse("shop", &ExceptionInput { expires_in: text.into(), ..input("v1", "delete") });
            assert_eq!(grant.unwrap().lifetime_minutes, minutes, "{text}");
        }
    }

    #[test]
    fn an_exception_releases_only_the_change_it_names() {
        let repository = RepositoryName::parse("shop/api").unwrap();
        let other = RepositoryName::parse("shop/web").unwrap();
        let (v1, v2) = (Tag::parse("v1").unwrap(), Tag::parse("v2").unwrap());
        let (a, b) = (Digest::parse(A).unwrap(), Digest::parse(B).unwrap());
        let grant = |target: &str, operation: &str, to: &str| {
            ExceptionGrant::parse("shop", &ExceptionInput { to_digest: to.into(), ..input(target, operation) })
                .unwrap()
                .scope
        };
        let overwrite = |repository, tag, digest| RefusedChange::Overwrite { repository, tag, digest };

        let any = grant("v1", "overwrite", "");
        assert!(any.releases(&overwrite(&repository, &v1, &b)));
        assert!(!any.releases(&overwrite(&repository, &v2, &b)), "another tag");
        assert!(!any.releases(&overwrite(&other, &v1, &b)), "another repository");
        let only_b = grant("v1", "overwrite", B);
        assert!(only_b.releases(&overwrite(&repository, &v1, &b)));
        assert!(!only_b.releases(&overwrite(&repository, &v1, &a)), "another digest");

        let v1_only = ["v1".to_owned()];
        let v1_and_v2 = ["v1".to_owned(), "v2".to_owned()];
        let delete = |digest, tags| RefusedChange::Delete { repository: &repository, digest, immutable_tags: tags };
        assert!(!any.releases(&delete(None, &v1_only)), "an overwrite exception deletes nothing");
        let delete_v1 = grant("v1", "delete", "");
        assert!(delete_v1.releases(&delete(None, &v1_only)), "the tag");
        assert!(delete_v1.releases(&delete(Some(&a), &v1_only)), "what only v1 holds");
        assert!(!delete_v1.releases(&delete(Some(&a), &v1_and_v2)), "v2 holds it too");
        assert!(!delete_v1.releases(&overwrite(&repository, &v1, &b)), "a delete exception overwrites nothing");
        let delete_a = grant(A, "delete", "");
        assert!(delete_a.releases(&delete(Some(&a), &v1_and_v2)), "the digest named, whoever holds it");
        assert!(!delete_a.releases(&delete(Some(&b), &v1_only)));
        assert!(!delete_a.releases(&delete(None, &v1_only)));
    }
}

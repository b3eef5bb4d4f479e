//! The names a registry speaks in: project, repository, tag, digest. Each is parsed once at the
//! boundary (HTTP, CLI, form) and carried as its own type from there on.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a name was refused; the message names the value and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} `{value}` is not valid: {why}")]
pub struct NameError {
    pub what: &'static str,
    pub value: String,
    pub why: &'static str,
}

impl NameError {
    fn new(what: &'static str, value: &str, why: &'static str) -> Self {
        Self { what, value: value.to_owned(), why }
    }
}

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// One path component of an OCI repository name: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
pub(crate) fn is_path_component(s: &str) -> bool {
    let bytes = s.as_bytes();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !is_lower_alnum(first as char) || !is_lower_alnum(last as char) {
        return false;
    }
    let mut separator = String::new();
    for c in s.chars() {
        if is_lower_alnum(c) {
            if !(separator.is_empty()
                || separator == "."
                || separator == "_"
                || separator == "__"
                || separator.chars().all(|c| c == '-'))
            {
                return false;
            }
            separator.clear();
        } else if matches!(c, '.' | '_' | '-') {
            separator.push(c);
        } else {
            return false;
        }
    }
    true
}

/// An OCI tag: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub(crate) fn is_tag(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    s.len() <= 128
        && (first.is_ascii_alphanumeric() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A project name, Harbor's rule: `[a-z0-9]+([._-][a-z0-9]+)*`, at most 255 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProjectName(String);

impl ProjectName {
    pub fn parse(value: &str) -> Result<Self, NameError> {
        const WHY: &str =
            "use lowercase letters and digits, separated by single `.`, `_` or `-` (at most 255 characters)";
        let ok = !value.is_empty()
            && value.len() <= 255
            && value.split(['.', '_', '-']).all(|part| !part.is_empty() && part.chars().all(is_lower_alnum));
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(NameError::new("project name", value, WHY))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A repository name as the registry knows it: `<project>/<path>`, e.g. `shop/api/web`.
/// Rules match the path inside the project (`api/web`), as Harbor does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepositoryName(String);

impl RepositoryName {
    pub fn parse(value: &str) -> Result<Self, NameError> {
        let what = "repository name";
        if value.len() > 255 {
            return Err(NameError::new(what, value, "it is longer than 255 characters"));
        }
        let Some((project, path)) = value.split_once('/') else {
            return Err(NameError::new(what, value, "it must be `<project>/<repository>`, e.g. `shop/api`"));
        };
        if ProjectName::parse(project).is_err() {
            return Err(NameError::new(what, value, "its first segment is not a valid project name"));
        }
        if !path.split('/').all(is_path_component) {
            return Err(NameError::new(
                what,
                value,
                "each `/`-separated segment must be lowercase letters and digits, separated by `.`, `_`, `__` or `-`",
            ));
        }
        Ok(Self(value.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn project(&self) -> &str {
        self.0.split_once('/').map_or(self.0.as_str(), |(project, _)| project)
    }
    /// The path inside the project, which rules are matched against.
    pub fn path(&self) -> &str {
        self.0.split_once('/').map_or("", |(_, path)| path)
    }
}

/// An OCI tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Tag(String);

impl Tag {
    pub fn parse(value: &str) -> Result<Self, NameError> {
        if is_tag(value) {
            Ok(Self(value.to_owned()))
        } else {
            Err(NameError::new(
                "tag",
                value,
                "a tag is 1 to 128 of `A-Z a-z 0-9 _ . -` and does not start with `.` or `-`",
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A content digest, `sha256:` followed by 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

impl Digest {
    pub fn parse(value: &str) -> Result<Self, NameError> {
        let ok = value.strip_prefix("sha256:").is_some_and(|hex| {
            hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(NameError::new("digest", value, "a digest is `sha256:` followed by 64 lowercase hex digits"))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! string_newtype_impls {
    ($($ty:ident),*) => {$(
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl TryFrom<String> for $ty {
            type Error = NameError;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }
        impl From<$ty> for String {
            fn from(value: $ty) -> String {
                value.as_str().to_owned()
            }
        }
    )*};
}
string_newtype_impls!(ProjectName, RepositoryName, Tag, Digest);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_components_follow_the_oci_grammar() {
        for ok in ["a", "api", "a.b", "a_b", "a__b", "a---b", "v1-2"] {
            assert!(is_path_component(ok), "{ok}");
        }
        for bad in ["", "A", "a..b", "a___b", "-a", "a-", "a_", ".a", "a b"] {
            assert!(!is_path_component(bad), "{bad}");
        }
    }

    #[test]
    fn repository_names_split_into_project_and_path() {
        let name = RepositoryName::parse("shop/api/web").unwrap();
        assert_eq!(name.project(), "shop");
        assert_eq!(name.path(), "api/web");
        assert!(RepositoryName::parse("shop").is_err());
        assert!(RepositoryName::parse("shop/Api").is_err());
        assert!(RepositoryName::parse("shop//api").is_err());
    }

    #[test]
    fn tags_and_digests() {
        assert!(Tag::parse("v1.2.3").is_ok());
        assert!(Tag::parse("_x").is_ok());
        assert!(Tag::parse(".x").is_err());
        assert!(Tag::parse(&"a".repeat(129)).is_err());
        assert!(Digest::parse(&format!("sha256:{}", "a".repeat(64))).is_ok());
        assert!(Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(Digest::parse("sha256:abc").is_err());
    }

    #[test]
    fn project_names_follow_harbor() {
        assert!(ProjectName::parse("shop").is_ok());
        assert!(ProjectName::parse("my-shop.eu_1").is_ok());
        for bad in ["", "Shop", "-shop", "shop-", "sh--op", "sh op"] {
            assert!(ProjectName::parse(bad).is_err(), "{bad}");
        }
        let err = ProjectName::parse("Shop").unwrap_err().to_string();
        assert!(err.contains("`Shop`"), "{err}");
    }
}

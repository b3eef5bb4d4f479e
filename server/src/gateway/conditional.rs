//! Conditional manifest PUTs (`If-Match`, `If-None-Match`), which registries ignore: checked by
//! the gateway under the tag's lock against the digest the tag points at now, so a client that
//! read a list (a signer appending to `sha256-<hex>`) and writes it back never overwrites what
//! another wrote meanwhile. ETags of manifests are their digests: distribution and Harbor send
//! `"sha256:…"`.

use app::policy::{Digest, Tag};
use axum::http::{header, HeaderMap};

/// What a request's precondition headers ask.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preconditions {
    if_match: Option<EntityTags>,
    if_none_match: Option<EntityTags>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum EntityTags {
    /// `*`: any current representation.
    Any,
    /// The listed tags, without quotes or `W/` (a manifest has one representation, so weak and
    /// strong compare alike).
    Listed(Vec<String>),
}

impl EntityTags {
    fn parse(values: header::GetAll<'_, header::HeaderValue>) -> Option<Self> {
        let mut listed = Vec::new();
        let mut any = false;
        for value in values {
            for item in value.to_str().unwrap_or_default().split(',') {
                let item = item.trim();
                match item {
                    "" => {}
                    "*" => any = true,
                    _ => {
                        let item = item.strip_prefix("W/").unwrap_or(item);
                        listed.push(item.trim_matches('"').to_owned());
                    }
                }
            }
        }
        match (any, listed.is_empty()) {
            (true, _) => Some(EntityTags::Any),
            (false, false) => Some(EntityTags::Listed(listed)),
            (false, true) => None,
        }
    }

    fn matches(&self, current: Option<&Digest>) -> bool {
        match (self, current) {
            (_, None) => false,
            (EntityTags::Any, Some(_)) => true,
            (EntityTags::Listed(listed), Some(current)) => listed.iter().any(|tag| tag == current.as_str()),
        }
    }

    fn describe(&self) -> String {
        match self {
            EntityTags::Any => "*".to_owned(),
            EntityTags::Listed(listed) => listed.iter().map(|tag| format!("\"{tag}\"")).collect::<Vec<_>>().join(", "),
        }
    }
}

impl Preconditions {
    pub fn of(headers: &HeaderMap) -> Self {
        Self {
            if_match: EntityTags::parse(headers.get_all(header::IF_MATCH)),
            if_none_match: EntityTags::parse(headers.get_all(header::IF_NONE_MATCH)),
        }
    }

    /// Whether the request has any precondition.
    pub fn any(&self) -> bool {
        self.if_match.is_some() || self.if_none_match.is_some()
    }

    /// Whether a PUT to `tag`, which points at `current` now (or at nothing), may go ahead; why
    /// not, when it may not.
    pub fn check(&self, tag: &Tag, current: Option<&Digest>) -> Result<(), String> {
        let now = || current.map_or("does not exist".to_owned(), |digest| format!("points at {digest}"));
        if let Some(expected) = &self.if_match {
            if !expected.matches(current) {
                return Err(format!(
                    "tag \"{tag}\" {} now, not If-Match {}: it changed since it was read; read it again and retry",
                    now(),
                    expected.describe()
                ));
            }
        }
        if let Some(unexpected) = &self.if_none_match {
            if unexpected.matches(current) {
                return Err(format!(
                    "tag \"{tag}\" {} now, which If-None-Match {} excludes",
                    now(),
                    unexpected.describe()
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn if_match_compares_the_current_digest() {
        let (a, b) = (
            Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap(),
            Digest::parse(&format!("sha256:{}", "b".repeat(64))).unwrap(),
        );
        let tag = Tag::parse("sha256-x").unwrap();
        assert!(!Preconditions::of(&HeaderMap::new()).any());
        let quoted = Preconditions::of(&headers(&[("if-match", &format!("\"{a}\""))]));
        assert!(quoted.check(&tag, Some(&a)).is_ok());
        let refused = quoted.check(&tag, Some(&b)).unwrap_err();
        assert!(refused.contains(&format!("points at {b} now, not If-Match \"{a}\"")), "{refused}");
        assert!(quoted.check(&tag, None).is_err(), "If-Match needs the tag to exist");
        let listed = Preconditions::of(&headers(&[("if-match", &format!("W/\"{b}\", \"{a}\""))]));
        assert!(listed.check(&tag, Some(&a)).is_ok());
        let any = Preconditions::of(&headers(&[("if-match", "*")]));
        assert!(any.check(&tag, Some(&b)).is_ok() && any.check(&tag, None).is_err());
        let absent = Preconditions::of(&headers(&[("if-none-match", "*")]));
        assert!(absent.check(&tag, None).is_ok());
        assert!(absent.check(&tag, Some(&a)).unwrap_err().contains("If-None-Match *"));
    }
}

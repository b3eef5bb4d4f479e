//! What a registry will act on, read from a raw HTTP request line the way CNCF distribution reads
//! it: Go's `net/url` percent-decodes the whole path (`%2F` included) before the router sees it,
//! gorilla/mux cleans dot segments and doubled slashes (answering a redirect, not acting), and
//! the manifest route is `/v2/<name>/manifests/<reference>` with the OCI name grammar (a name may
//! itself contain `manifests`, so the reference is what follows the *last* `/manifests/`).
//!
//! The gateway decides on [`ManifestChange`] and forwards its canonical path, so what was decided
//! is exactly what the registry receives. Anything that could change a manifest or tag and does not
//! parse is an error, never "not a manifest request".

use super::names::{is_path_component, Digest, NameError, RepositoryName, Tag};
use std::fmt;

/// A repository name's length limit in distribution (`NameTotalLengthMax`).
const MAX_NAME_LEN: usize = 255;

/// What a request to the registry is, as far as tags are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A PUT or DELETE on a manifest: decide, then forward [`ManifestChange::path_and_query`].
    Change(ManifestChange),
    /// A DELETE of a blob: decide (is it part of what an immutable tag holds?), then forward
    /// [`BlobDelete::path`].
    DeleteBlob(BlobDelete),
    /// Anything else (reads, uploads, catalog, tag lists): changes no tag and removes nothing a
    /// tag holds; forwarded as received.
    PassThrough,
}

/// `DELETE /v2/<name>/blobs/<digest>`, decoded and parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobDelete {
    /// The OCI repository name, e.g. `shop/api/web`.
    pub name: String,
    /// The name read as tagward's `<project>/<path>` (`None`: no project can own it).
    pub repository: Option<RepositoryName>,
    pub digest: Digest,
    /// The canonical `/v2/<name>/blobs/<digest>` to forward (a query is dropped: the registry
    /// reads none on this route).
    pub path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Put,
    Delete,
}

/// The reference of a manifest route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(tag) => tag.fmt(f),
            Reference::Digest(digest) => digest.fmt(f),
        }
    }
}

/// A manifest PUT or DELETE, decoded and parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestChange {
    pub kind: ChangeKind,
    /// The OCI repository name, e.g. `shop/api/web`.
    pub name: String,
    /// The name read as tagward's `<project>/<path>`; `None` for a name no project can own
    /// (one segment, or a first segment that is no valid project name), which no rule covers.
    pub repository: Option<RepositoryName>,
    pub reference: Reference,
    /// The decoded `?tag=` values (OCI's multi-tag PUT by digest).
    pub query_tags: Vec<Tag>,
    /// The canonical `/v2/<name>/manifests/<reference>[?query]` to forward.
    pub path_and_query: String,
}

impl ManifestChange {
    /// Every tag this request writes (PUT) or removes (DELETE by tag).
    pub fn tags(&self) -> Vec<Tag> {
        let mut tags = self.query_tags.clone();
        if let Reference::Tag(tag) = &self.reference {
            tags.push(tag.clone());
        }
        tags.sort();
        tags.dedup();
        tags
    }
}

/// Why a request that could change a manifest or tag was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("the request path `{0}` is not valid percent-encoding")]
    Encoding(String),
    #[error("{0}")]
    Name(NameError),
    #[error("{0}")]
    Tag(NameError),
    /// A `?tag=` value that is no tag.
    #[error("tag query parameter `{}` is not valid: {}", .0.value, .0.why)]
    QueryTag(NameError),
    #[error("{0}")]
    Digest(NameError),
    #[error("the method {0} is not supported on manifests")]
    Method(String),
}

impl RouteError {
    /// The OCI distribution error code.
    pub fn code(&self) -> &'static str {
        match self {
            RouteError::Encoding(_) | RouteError::Name(_) => "NAME_INVALID",
            RouteError::Tag(_) | RouteError::QueryTag(_) => "TAG_INVALID",
            RouteError::Digest(_) => "DIGEST_INVALID",
            RouteError::Method(_) => "UNSUPPORTED",
        }
    }

    /// The request field the error is about, and its value.
    pub fn field(&self) -> (&'static str, &str) {
        match self {
            RouteError::Encoding(path) => ("path", path),
            RouteError::Name(e) => ("name", &e.value),
            RouteError::QueryTag(e) => ("tag", &e.value),
            RouteError::Tag(e) | RouteError::Digest(e) => ("reference", &e.value),
            RouteError::Method(method) => ("method", method),
        }
    }
}

/// Reads `method path?query` as the registry will. `path` and `query` are as received (raw).
pub fn classify(method: &str, path: &str, query: Option<&str>) -> Result<Route, RouteError> {
    let decoded = percent_decode(path).ok_or_else(|| RouteError::Encoding(path.to_owned()))?;
    let cleaned = clean(&decoded);
    let Some((name, reference)) = target(&cleaned, b"/manifests/") else {
        return match target(&cleaned, b"/blobs/") {
            Some((name, reference)) if method == "DELETE" => delete_blob(name, reference),
            _ => Ok(Route::PassThrough),
        };
    };
    let kind = match method {
        "GET" | "HEAD" => return Ok(Route::PassThrough),
        "PUT" => ChangeKind::Put,
        "DELETE" => ChangeKind::Delete,
        other => return Err(RouteError::Method(other.to_owned())),
    };
    let name = parse_name(name)?;
    let reference = parse_reference(reference)?;
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut query_tags = Vec::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if key == "tag" {
            let tag = Tag::parse(&value).map_err(RouteError::QueryTag)?;
            query_tags.push(tag);
        }
        pairs.push((key.into_owned(), value.into_owned()));
    }
    let mut path_and_query = format!("/v2/{name}/manifests/{reference}");
    if !pairs.is_empty() {
        path_and_query.push('?');
        path_and_query.push_str(&form_urlencoded::Serializer::new(String::new()).extend_pairs(&pairs).finish());
    }
    Ok(Route::Change(ManifestChange {
        kind,
        repository: RepositoryName::parse(&name).ok(),
        name,
        reference,
        query_tags,
        path_and_query,
    }))
}

/// A blob DELETE's name and digest; a digest that does not parse is refused (the registry would
/// not route it as a blob, but nothing that reaches the blob route unread is safe to pass).
fn delete_blob(name: &[u8], reference: &[u8]) -> Result<Route, RouteError> {
    let name = parse_name(name)?;
    let digest = Digest::parse(&String::from_utf8_lossy(reference)).map_err(RouteError::Digest)?;
    Ok(Route::DeleteBlob(BlobDelete {
        repository: RepositoryName::parse(&name).ok(),
        path: format!("/v2/{name}/blobs/{digest}"),
        name,
        digest,
    }))
}

fn parse_name(name: &[u8]) -> Result<String, RouteError> {
    String::from_utf8(name.to_vec())
        .ok()
        .filter(|name| name.len() <= MAX_NAME_LEN && name.split('/').all(is_path_component))
        .ok_or_else(|| {
            RouteError::Name(NameError {
                what: "repository name",
                value: String::from_utf8_lossy(name).into_owned(),
                why: "each `/`-separated segment must be lowercase letters and digits, separated by `.`, `_`, `__` or `-` (at most 255 characters in all)",
            })
        })
}

fn parse_reference(reference: &[u8]) -> Result<Reference, RouteError> {
    let text = String::from_utf8_lossy(reference);
    if text.contains(':') {
        Digest::parse(&text).map(Reference::Digest).map_err(RouteError::Digest)
    } else {
        Tag::parse(&text).map(Reference::Tag).map_err(RouteError::Tag)
    }
}

/// Go's path unescaping: every `%XX` is decoded (`%2F` too); a `%` without two hex digits is an error.
fn percent_decode(raw: &str) -> Option<Vec<u8>> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok().filter(|_| hex.bytes().all(|b| b.is_ascii_hexdigit()))?);
            i += 3;
        } else {
            out.push(byte);
            i += 1;
        }
    }
    Some(out)
}

/// gorilla/mux's `cleanPath`: Go's `path.Clean`, keeping a trailing slash. A path that changes here
/// is redirected by the registry; the gateway decides on (and forwards) the cleaned form instead.
fn clean(path: &[u8]) -> Vec<u8> {
    let mut segments: Vec<&[u8]> = Vec::new();
    for segment in path.split(|&b| b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => {
                segments.pop();
            }
            segment => segments.push(segment),
        }
    }
    let mut cleaned = Vec::with_capacity(path.len() + 1);
    for segment in &segments {
        cleaned.push(b'/');
        cleaned.extend_from_slice(segment);
    }
    if cleaned.is_empty() || (path.ends_with(b"/") && !segments.is_empty()) {
        cleaned.push(b'/');
    }
    cleaned
}

/// `/v2/<name><marker><reference>` (`marker` is `/manifests/` or `/blobs/`; a trailing slash,
/// which distribution redirects away, is ignored) split into name and reference. A name may
/// itself hold the marker, so the reference is what follows the last one; a reference holding
/// `/` is another route (`/blobs/uploads/<id>`).
fn target<'p>(path: &'p [u8], marker: &[u8]) -> Option<(&'p [u8], &'p [u8])> {
    let rest = path.strip_prefix(b"/v2/")?;
    let rest = rest.strip_suffix(b"/").unwrap_or(rest);
    let at = rest.windows(marker.len()).rposition(|window| window == marker)?;
    let (name, reference) = (rest.get(..at)?, rest.get(at + marker.len()..)?);
    (!name.is_empty() && !reference.is_empty() && !reference.contains(&b'/')).then_some((name, reference))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn change(method: &str, path: &str, query: Option<&str>) -> ManifestChange {
        match classify(method, path, query) {
            Ok(Route::Change(change)) => change,
            other => panic!("{method} {path}: {other:?}"),
        }
    }

    #[test]
    fn encodings_decode_to_what_the_registry_routes() {
        for path in [
            "/v2/shop/api/manifests/v1.2.3",
            "/v2/shop%2Fapi/manifests/v1.2.3",
            "/v2/%73hop/api/manifests/v1.2.3",
            "/v2/shop/%61pi/manifests/%761.2.3",
            "/v2/shop/api/%6danifests/v1.2.3",
            "/v2/shop/api%2Fmanifests%2Fv1.2.3",
            "/v2/shop/x/../api/manifests/v1.2.3",
            "/v2/shop/x/%2e%2e/api/manifests/v1.2.3",
            "//v2//shop/./api/manifests/v1.2.3/",
        ] {
            let change = change("PUT", path, None);
            assert_eq!(change.name, "shop/api", "{path}");
            assert_eq!(change.tags(), [Tag::parse("v1.2.3").unwrap()], "{path}");
            assert_eq!(change.path_and_query, "/v2/shop/api/manifests/v1.2.3", "{path}");
            assert_eq!(change.repository.as_ref().map(|r| r.project()), Some("shop"));
        }
        let delete = change("DELETE", &format!("/v2/shop/api/manifests/{}", DIGEST.replace(':', "%3A")), None);
        assert_eq!(delete.reference, Reference::Digest(Digest::parse(DIGEST).unwrap()));
    }

    #[test]
    fn names_may_contain_manifests() {
        let change = change("PUT", "/v2/shop/manifests/x/manifests/v1", None);
        assert_eq!(change.name, "shop/manifests/x");
    }

    #[test]
    fn query_tags_are_decoded_and_checked() {
        let path = format!("/v2/shop/api/manifests/{DIGEST}");
        let change = change("PUT", &path, Some("t%61g=%761&tag=rc&other=x+y"));
        assert_eq!(change.tags(), [Tag::parse("rc").unwrap(), Tag::parse("v1").unwrap()]);
        assert_eq!(change.path_and_query, format!("{path}?tag=v1&tag=rc&other=x+y"));
        let error = classify("PUT", &path, Some("tag=v1%2Fx")).unwrap_err();
        assert_eq!((error.code(), error.field()), ("TAG_INVALID", ("tag", "v1/x")));
    }

    #[test]
    fn what_cannot_be_read_is_refused() {
        let refused = |method: &str, path: &str| classify(method, path, None).unwrap_err();
        assert_eq!(refused("PUT", "/v2/Shop/api/manifests/v1").code(), "NAME_INVALID");
        assert_eq!(refused("PUT", "/v2/shop/api/manifests/-v1").code(), "TAG_INVALID");
        assert_eq!(refused("DELETE", "/v2/shop/api/manifests/sha256:AB").code(), "DIGEST_INVALID");
        assert_eq!(refused("DELETE", "/v2/shop/api/manifests/sha512:ab").code(), "DIGEST_INVALID");
        assert_eq!(refused("PATCH", "/v2/shop/api/manifests/v1").code(), "UNSUPPORTED");
        assert_eq!(refused("put", "/v2/shop/api/manifests/v1").code(), "UNSUPPORTED");
        assert_eq!(refused("GET", "/v2/shop/api/manifests/%zz").code(), "NAME_INVALID");
        assert_eq!(refused("PUT", "/v2/shop/api%00/manifests/v1").code(), "NAME_INVALID");
    }

    #[test]
    fn blob_deletes_are_read_like_manifest_paths() {
        for path in [
            format!("/v2/shop/app/blobs/{DIGEST}"),
            format!("/v2/shop%2Fapp/blobs/{DIGEST}"),
            format!("/v2/shop/app/%62lobs/{}", DIGEST.replace(':', "%3A")),
            format!("/v2/shop/x/../app/blobs/{DIGEST}"),
            format!("//v2//shop/./app/blobs/{DIGEST}/"),
        ] {
            let Ok(Route::DeleteBlob(delete)) = classify("DELETE", &path, Some("x=1")) else {
                panic!("{path}: {:?}", classify("DELETE", &path, None));
            };
            assert_eq!(delete.name, "shop/app", "{path}");
            assert_eq!(delete.path, format!("/v2/shop/app/blobs/{DIGEST}"), "{path}");
            assert_eq!(delete.digest.as_str(), DIGEST);
            assert_eq!(delete.repository.as_ref().map(|r| r.project()), Some("shop"));
        }
        let refused = |path: &str| classify("DELETE", path, None).unwrap_err();
        assert_eq!(refused("/v2/shop/app/blobs/sha256:aa").code(), "DIGEST_INVALID");
        assert_eq!(refused("/v2/shop/app/blobs/sha512:aa").code(), "DIGEST_INVALID");
        assert_eq!(refused("/v2/shop/app/blobs/uploads").code(), "DIGEST_INVALID");
        assert_eq!(refused(&format!("/v2/Shop/app/blobs/{DIGEST}")).code(), "NAME_INVALID");
        assert_eq!(refused(&format!("/v2/shop/app%00/blobs/{DIGEST}")).code(), "NAME_INVALID");
        // A name holding `blobs` or `manifests`: the reference follows the last marker.
        let Ok(Route::DeleteBlob(delete)) = classify("DELETE", &format!("/v2/shop/manifests/x/blobs/{DIGEST}"), None)
        else {
            panic!("a blob of shop/manifests/x");
        };
        assert_eq!(delete.name, "shop/manifests/x");
    }

    #[test]
    fn everything_else_passes_through() {
        for (method, path) in [
            ("GET", "/v2/shop/api/manifests/v1"),
            ("HEAD", "/v2/shop/api/manifests/v1"),
            ("PUT", "/v2/shop/api/blobs/uploads/abc"),
            ("DELETE", "/v2/shop/api/blobs/uploads/abc"),
            ("DELETE", "/v2/shop/blobs/blobs/uploads/abc"),
            ("GET", "/v2/shop/api/blobs/sha256:aa"),
            ("HEAD", "/v2/shop/api/blobs/sha256:aa"),
            ("PUT", "/v2/shop/api/blobs/sha256:aa"),
            ("GET", "/v2/_catalog"),
            ("PUT", "/v2/shop/api/manifests/"),
            ("PUT", "/v2/shop/api/manifests/v1/.."),
            ("PUT", "/v3/shop/api/manifests/v1"),
        ] {
            assert_eq!(classify(method, path, None), Ok(Route::PassThrough), "{method} {path}");
        }
        // A valid name without a project segment: forwarded canonically, no rule can cover it.
        assert_eq!(change("PUT", "/v2/alpine/manifests/3", None).repository, None);
    }

    /// A small model of distribution 2.8's routing, written from its sources independently of the
    /// code above: Go's strict unescaping, mux's clean-or-redirect, and the manifest route's regex.
    mod registry_model {
        use regex::Regex;
        use std::sync::LazyLock;

        static MANIFEST_ROUTE: LazyLock<Regex> = LazyLock::new(|| {
            let component = r"[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*";
            let name = format!(r"{component}(?:/{component})*");
            let tag = r"[\w][\w.-]{0,127}";
            let digest = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}";
            Regex::new(&format!(r"^/v2/(?P<name>{name})/manifests/(?P<reference>{tag}|{digest})$")).unwrap()
        });

        static BLOB_ROUTE: LazyLock<Regex> = LazyLock::new(|| {
            let component = r"[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*";
            let name = format!(r"{component}(?:/{component})*");
            let digest = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}";
            Regex::new(&format!(r"^/v2/(?P<name>{name})/blobs/(?P<digest>{digest})$")).unwrap()
        });

        /// The (name, digest) a DELETE of `raw` removes a blob of, if any (redirects followed once).
        pub fn deletes_blob(raw: &str) -> Option<(String, String)> {
            let route = |path: &str| {
                let captures = BLOB_ROUTE.captures(path)?;
                Some((captures["name"].to_owned(), captures["digest"].to_owned()))
            };
            let decoded = routable(raw)?;
            let cleaned = clean(&decoded, true);
            if cleaned == decoded {
                route(&decoded)
            } else {
                route(&clean(&decoded, false))
            }
        }

        /// Go's strict unescaping (`None`: Go answers 400).
        fn routable(raw: &str) -> Option<String> {
            if raw
                .match_indices('%')
                .any(|(i, _)| raw.get(i + 1..i + 3).is_none_or(|hex| !hex.chars().all(|c| c.is_ascii_hexdigit())))
            {
                return None;
            }
            Some(percent_encoding::percent_decode_str(raw).decode_utf8().ok()?.into_owned())
        }

        /// The (name, reference) a PUT or DELETE of `raw` changes in the registry, if any.
        pub fn acts_on(raw: &str) -> Option<(String, String)> {
            let decoded = routable(raw)?;
            let cleaned = clean(&decoded, true);
            if cleaned != decoded || decoded.is_empty() {
                return None; // mux redirects
            }
            let captures = MANIFEST_ROUTE.captures(&decoded)?;
            Some((captures["name"].to_owned(), captures["reference"].to_owned()))
        }

        /// Like [`acts_on`], after following the registry's redirect once (what a client may do).
        pub fn acts_on_after_redirect(raw: &str) -> Option<(String, String)> {
            let decoded = percent_encoding::percent_decode_str(raw).decode_utf8().ok()?.into_owned();
            acts_on(&clean(&decoded, false))
        }

        /// Go's `path.Clean`; mux keeps a trailing slash (and then redirects it away: `keep` false).
        fn clean(decoded: &str, keep_trailing_slash: bool) -> String {
            let mut out: Vec<&str> = Vec::new();
            for segment in decoded.split('/') {
                match segment {
                    "" | "." => {}
                    ".." => {
                        out.pop();
                    }
                    s => out.push(s),
                }
            }
            let mut path = format!("/{}", out.join("/"));
            if keep_trailing_slash && decoded.ends_with('/') && path != "/" {
                path.push('/');
            }
            path
        }
    }

    fn path_strategy() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let fragment = prop_oneof![
            Just("shop"),
            Just("api"),
            Just("manifests"),
            Just("%6danifests"),
            Just("v1"),
            Just("%76"),
            Just("/"),
            Just("%2F"),
            Just("%2f"),
            Just("."),
            Just(".."),
            Just("%2e"),
            Just("A"),
            Just("-"),
            Just("%73"),
            Just(":"),
            Just("%3A"),
            Just("sha256"),
            Just("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
            Just("%zz"),
            Just("%"),
            Just("%00"),
            Just("__"),
            Just("_"),
            Just("x"),
            Just("blobs"),
            Just("%62lobs"),
            Just("uploads"),
        ];
        prop::collection::vec(fragment, 0..14).prop_map(|parts| format!("/v2/{}", parts.concat()))
    }

    proptest::proptest! {
        /// A PUT to an attachment list, by tag or by digest with `?tag=`, is a change of exactly
        /// that list; a tag with anything more is an ordinary tag.
        #[test]
        fn list_puts_are_changes_of_that_list(
            hex in "[0-9a-f]{64}",
            suffix in proptest::prop_oneof![
                proptest::strategy::Just(""), proptest::strategy::Just(".sig"), proptest::strategy::Just(".att"), proptest::strategy::Just(".sbom")
            ],
            by_digest in proptest::bool::ANY,
            noise in "[A-Za-z0-9._-]{1,3}",
        ) {
            let tag = format!("sha256-{hex}{suffix}");
            let (path, query) = if by_digest {
                (format!("/v2/shop/api/manifests/sha256:{}", "e".repeat(64)), Some(format!("tag={tag}")))
            } else {
                (format!("/v2/shop/api/manifests/{tag}"), None)
            };
            let Ok(Route::Change(change)) = classify("PUT", &path, query.as_deref()) else {
                return Err(proptest::test_runner::TestCaseError::fail(format!("PUT {path} is no change")));
            };
            let lists: Vec<_> = change.tags().iter().filter_map(crate::policy::AttachmentList::of).collect();
            proptest::prop_assert_eq!(lists.len(), 1);
            proptest::prop_assert_eq!(lists[0].tag(), tag.clone());
            proptest::prop_assert_eq!(lists[0].subject().as_str(), format!("sha256:{hex}"));
            if let Ok(longer) = Tag::parse(&format!("{tag}{noise}")) {
                proptest::prop_assert_eq!(crate::policy::AttachmentList::of(&longer), None, "{}", longer);
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]
        #[test]
        fn classification_agrees_with_the_registry_model(
            path in path_strategy(),
            method in proptest::prop_oneof![
                proptest::strategy::Just("PUT"), proptest::strategy::Just("DELETE"), proptest::strategy::Just("GET"), proptest::strategy::Just("POST")
            ],
        ) {
            let acts = registry_model::acts_on(&path).or_else(|| registry_model::acts_on_after_redirect(&path));
            match classify(method, &path, None) {
                Ok(Route::PassThrough) => {
                    // Passing through is only safe when the registry would change nothing.
                    proptest::prop_assert!(
                        matches!(method, "GET") || acts.is_none(),
                        "{method} {path} passed through, but the registry changes {acts:?}"
                    );
                    let blob = registry_model::deletes_blob(&path);
                    proptest::prop_assert!(
                        method != "DELETE" || blob.is_none(),
                        "DELETE {path} passed through, but the registry deletes blob {blob:?}"
                    );
                }
                Ok(Route::DeleteBlob(delete)) => {
                    proptest::prop_assert_eq!(method, "DELETE");
                    // What is forwarded is what was decided, and the registry reads it the same way.
                    let forwarded = registry_model::deletes_blob(&delete.path);
                    proptest::prop_assert_eq!(&forwarded, &Some((delete.name.clone(), delete.digest.to_string())));
                    if let Some(deleted) = registry_model::deletes_blob(&path) {
                        proptest::prop_assert_eq!(Some(deleted), forwarded);
                    }
                }
                Ok(Route::Change(change)) => {
                    // What is forwarded is what was decided, and the registry reads it the same way.
                    let forwarded = registry_model::acts_on(change.path_and_query.split('?').next().unwrap_or(""));
                    proptest::prop_assert_eq!(forwarded, Some((change.name.clone(), change.reference.to_string())));
                    if let Some(acts) = acts {
                        proptest::prop_assert_eq!(acts, (change.name, change.reference.to_string()));
                    }
                }
                Err(_) => {} // refusing is always safe
            }
        }
    }
}

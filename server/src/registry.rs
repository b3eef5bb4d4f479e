//! A registry's HTTP API as tagward uses it, over plain HTTP or TLS (with a private CA where
//! needed): the gateway forwards requests to it as streams and
//! looks things up with the client's credentials (the digest a tag points at, a repository's
//! tags); the inventory sync reads its catalog and tag lists, page by page, with its own.

use anyhow::Context;
use app::locks::Locked;
use app::policy::Digest;
use axum::body::{Body, Bytes};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, Request, Response, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::path::Path;
use std::sync::Arc;

/// Every manifest type a registry may hold, so a HEAD answers the stored manifest's own digest
/// (without an index type in `Accept`, some registries answer an index's first image instead).
const MANIFEST_TYPES: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v1+prettyjws, \
    application/vnd.oci.artifact.manifest.v1+json";

/// The largest manifest read or accepted (distribution's own limit is 4 MiB too); also bounds a
/// referrers list.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// Tag list pages followed, at most (of 1,000 tags each); a longer list is an error, never
/// treated as complete.
const MAX_TAG_PAGES: usize = 100;
/// Tags asked for per page.
const TAGS_PER_PAGE: usize = 1000;
/// Tags of one repository read, at most.
const MAX_TAGS: usize = MAX_TAG_PAGES * TAGS_PER_PAGE;
/// Repositories asked for per catalog page.
const CATALOG_PER_PAGE: usize = 1000;
/// The largest list page read: registries that do not paginate tag lists (distribution 2.8)
/// answer a repository's whole list at once, and 100,000 tags of up to 128 characters fit.
const MAX_LIST_PAGE_BYTES: usize = 16 * 1024 * 1024;
/// Names one list page may hold: a whole repository's tags, for registries that do not paginate.
/// The byte limit alone would let 16 MiB of one-letter names (four million strings, over 200 MiB
/// once parsed) through.
const MAX_LIST_PAGE_NAMES: usize = MAX_TAGS;

/// Headers that belong to one connection, not to the request or response passed on (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Why a look-up at the registry did not give an answer.
#[derive(Debug)]
pub enum LookupError {
    /// The registry answered with this status (e.g. 401 with its challenge): the client is told so.
    Refused { status: StatusCode, challenge: Option<HeaderValue> },
    /// The repository has more tags than the gateway reads (this many).
    TooManyTags(usize),
    /// The registry could not be reached or answered nonsense.
    Failed(String),
}

#[derive(Clone)]
pub struct Registry {
    client: Client<HttpsConnector<HttpConnector>, Body>,
    /// `http(s)://host:port`, without a trailing slash.
    base: String,
    /// The `Host` forwarded requests carry to an `https://` registry: its own (a TLS endpoint in
    /// front of it routes on it, as on the SNI). A plain `http://` one gets the client's, so that the
    /// `Location`s it builds point at the gateway.
    tls_host: Option<HeaderValue>,
    /// tagward's own credentials for this registry (the sync's), used when a request carries no
    /// client's `Authorization`.
    own: Option<Arc<OwnCredentials>>,
}

/// tagward's own credentials for a registry: HTTP Basic, and the bearer tokens the registry's token
/// service issued for them (distribution's token flow), by scope, until they expire.
struct OwnCredentials {
    basic: HeaderValue,
    tokens: std::sync::Mutex<std::collections::HashMap<String, (HeaderValue, std::time::Instant)>>,
}

impl OwnCredentials {
    fn token(&self, scope: &str) -> Option<HeaderValue> {
        let tokens = self.tokens.locked();
        tokens.get(scope).filter(|(_, until)| *until > std::time::Instant::now()).map(|(token, _)| token.clone())
    }

    fn keep(&self, scope: &str, token: HeaderValue, for_seconds: u64) {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(for_seconds);
        let mut tokens = self.tokens.locked();
        // Scopes are a registry's repositories: bounded, but never let a long-lived process grow.
        if tokens.len() >= MAX_CACHED_TOKENS {
            tokens.retain(|_, (_, until)| *until > std::time::Instant::now());
            if tokens.len() >= MAX_CACHED_TOKENS {
                tokens.clear();
            }
        }
        tokens.insert(scope.to_owned(), (token, until));
    }
}

/// Bearer tokens kept at once (one per repository the sync reads, and the catalog).
const MAX_CACHED_TOKENS: usize = 10_000;
/// The largest token service answer read.
const MAX_TOKEN_ANSWER_BYTES: usize = 64 * 1024;

impl Registry {
    /// The registry at `base` (`http://` or `https://`, with a host). Over TLS its certificate is
    /// checked against webpki's roots, the system's, and the certificates of `ca_file` (PEM; a
    /// private CA).
    pub fn new(base: &Uri, ca_file: Option<&Path>) -> anyhow::Result<Self> {
        let tls = match base.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => anyhow::bail!("the registry must be an http:// or https:// URL with a host, got `{base}`"),
        };
        let authority = base
            .authority()
            .with_context(|| format!("the registry must be an http:// or https:// URL with a host, got `{base}`"))?;
        let mut http = HttpConnector::new();
        // Registry clients make many small requests (HEADs, upload starts, manifests): without this,
        // Nagle's algorithm holds a request's last segment back until the previous one is acknowledged.
        http.set_nodelay(true);
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(ca_file)?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        let tls_host = tls.then(|| HeaderValue::from_str(authority.as_str())).transpose()?;
        Ok(Self { client, base: base.to_string().trim_end_matches('/').to_owned(), tls_host, own: None })
    }

    /// The same registry, read with tagward's own `username` and `password` where a request carries
    /// no client's credentials: HTTP Basic, or bearer tokens from the registry's token service
    /// when it answers with a `Bearer` challenge.
    pub fn with_credentials(mut self, username: &str, password: &str) -> anyhow::Result<Self> {
        use base64::Engine as _;
        let pair = format!("{username}:{password}");
        let mut basic =
            HeaderValue::from_str(&format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)))?;
        basic.set_sensitive(true);
        self.own = Some(Arc::new(OwnCredentials { basic, tokens: Default::default() }));
        Ok(self)
    }

    fn uri(&self, path_and_query: &str) -> Result<Uri, String> {
        format!("{}{path_and_query}", self.base).parse().map_err(|e| format!("bad URL `{path_and_query}`: {e}"))
    }

    /// Sends the request on and streams the answer back. `Host` is kept, so the registry builds
    /// `Location`s that point at the gateway; any that still point at the upstream are made
    /// relative.
    pub async fn forward(&self, mut request: Request<Body>) -> Response<Body> {
        let path_and_query = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_owned();
        *request.uri_mut() = match self.uri(&path_and_query) {
            Ok(uri) => uri,
            Err(why) => return bad_gateway(&why),
        };
        strip_hop_by_hop(request.headers_mut());
        if let Some(host) = &self.tls_host {
            request.headers_mut().insert(header::HOST, host.clone());
        }
        match self.client.request(request).await {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                if let Some(location) = parts.headers.get(header::LOCATION).and_then(|l| l.to_str().ok()) {
                    if let Some(relative) = location.strip_prefix(&self.base) {
                        if let Ok(relative) = HeaderValue::from_str(relative) {
                            parts.headers.insert(header::LOCATION, relative);
                        }
                    }
                }
                Response::from_parts(parts, Body::new(body))
            }
            Err(error) => {
                let error = with_causes(&error);
                tracing::warn!(%error, "upstream request failed");
                bad_gateway(&format!("the registry behind the gateway did not answer: {error}"))
            }
        }
    }

    /// Asks the registry, with the client's `authorization` if given, else with tagward's own
    /// credentials: a token kept for the path's scope, else Basic, and on a `Bearer` challenge a
    /// token fetched from the realm it names, then once more.
    async fn look_up(
        &self,
        method: Method,
        path_and_query: &str,
        authorization: Option<&HeaderValue>,
        accept: &'static str,
    ) -> Result<Response<hyper::body::Incoming>, LookupError> {
        self.exchange(method, path_and_query, authorization, accept, None).await
    }

    /// [`Self::look_up`], sending `payload` (a body and its content type) if given.
    async fn exchange(
        &self,
        method: Method,
        path_and_query: &str,
        authorization: Option<&HeaderValue>,
        accept: &'static str,
        payload: Option<&(Bytes, HeaderValue)>,
    ) -> Result<Response<hyper::body::Incoming>, LookupError> {
        let (None, Some(own)) = (authorization, &self.own) else {
            return self.send(method, path_and_query, authorization, accept, payload).await;
        };
        let scope = scope_of(path_and_query);
        let first = own.token(&scope).unwrap_or_else(|| own.basic.clone());
        let response = self.send(method.clone(), path_and_query, Some(&first), accept, payload).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let Some(challenge) = response.headers().get(header::WWW_AUTHENTICATE).and_then(BearerChallenge::parse) else {
            return Ok(response);
        };
        let token = self.token(own, &challenge, &scope).await?;
        self.send(method, path_and_query, Some(&token), accept, payload).await
    }

    /// A bearer token for `scope` from the token service `challenge` names, asked with Basic.
    async fn token(
        &self,
        own: &OwnCredentials,
        challenge: &BearerChallenge,
        scope: &str,
    ) -> Result<HeaderValue, LookupError> {
        #[derive(serde::Deserialize)]
        struct Issued {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let scope = challenge.scope.as_deref().unwrap_or(scope);
        // Built in a block of its own: the serializer is not `Send`, and must not live across an await.
        let query = {
            let mut query = form_urlencoded::Serializer::new(String::new());
            if let Some(service) = &challenge.service {
                query.append_pair("service", service);
            }
            query.append_pair("scope", scope);
            query.finish()
        };
        let separator = if challenge.realm.contains('?') { '&' } else { '?' };
        let url = format!("{}{separator}{query}", challenge.realm);
        let request = Request::builder()
            .method(Method::GET)
            .uri(&url)
            .header(header::AUTHORIZATION, own.basic.clone())
            .body(Body::empty())
            .map_err(|e| LookupError::Failed(format!("the token service `{}`: {e}", challenge.realm)))?;
        let response = self.client.request(request).await.map_err(|e| {
            LookupError::Failed(format!("the token service `{}` did not answer: {}", challenge.realm, with_causes(&e)))
        })?;
        if !response.status().is_success() {
            return Err(LookupError::Refused { status: response.status(), challenge: None });
        }
        let body = read_limited(response, MAX_TOKEN_ANSWER_BYTES, &challenge.realm).await?;
        let issued: Issued = serde_json::from_slice(&body).map_err(|e| {
            LookupError::Failed(format!("the token service `{}` answered nonsense: {e}", challenge.realm))
        })?;
        let token = issued
            .token
            .or(issued.access_token)
            .ok_or_else(|| LookupError::Failed(format!("the token service `{}` answered no token", challenge.realm)))?;
        let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            LookupError::Failed(format!("the token service `{}` answered an unusable token", challenge.realm))
        })?;
        value.set_sensitive(true);
        // Kept until shortly before it expires (60 s when the service does not say, as the spec has it).
        own.keep(scope, value.clone(), issued.expires_in.unwrap_or(60).saturating_sub(10).max(1));
        Ok(value)
    }

    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        authorization: Option<&HeaderValue>,
        accept: &'static str,
        payload: Option<&(Bytes, HeaderValue)>,
    ) -> Result<Response<hyper::body::Incoming>, LookupError> {
        let mut request = Request::builder().method(method).uri(self.uri(path_and_query).map_err(LookupError::Failed)?);
        if let Some(authorization) = authorization {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        let body = match payload {
            Some((bytes, content_type)) => {
                request = request.header(header::CONTENT_TYPE, content_type);
                Body::from(bytes.clone())
            }
            None => Body::empty(),
        };
        let request =
            request.header(header::ACCEPT, accept).body(body).map_err(|e| LookupError::Failed(e.to_string()))?;
        self.client.request(request).await.map_err(|e| LookupError::Failed(with_causes(&e)))
    }

    /// The digest `reference` (a tag) of `name` points at now, or `None` when it does not exist.
    pub async fn current_digest(
        &self,
        name: &str,
        tag: &str,
        authorization: Option<&HeaderValue>,
    ) -> Result<Option<Digest>, LookupError> {
        let response =
            self.look_up(Method::HEAD, &format!("/v2/{name}/manifests/{tag}"), authorization, MANIFEST_TYPES).await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => {
                let digest = response
                    .headers()
                    .get("docker-content-digest")
                    .and_then(|value| value.to_str().ok())
                    .ok_or_else(|| LookupError::Failed(format!("no Docker-Content-Digest for {name}:{tag}")))?;
                Digest::parse(digest).map(Some).map_err(|e| LookupError::Failed(e.to_string()))
            }
            status => Err(refused(status, response.headers())),
        }
    }

    /// The manifest `reference` (a digest or a tag) of `name`, at most [`MAX_MANIFEST_BYTES`], or
    /// `None` when the registry has no such manifest.
    pub async fn manifest(
        &self,
        name: &str,
        reference: &str,
        authorization: Option<&HeaderValue>,
    ) -> Result<Option<Bytes>, LookupError> {
        let path = format!("/v2/{name}/manifests/{reference}");
        let response = self.look_up(Method::GET, &path, authorization, MANIFEST_TYPES).await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => read_limited(response, MAX_MANIFEST_BYTES, &path).await.map(Some),
            status => Err(refused(status, response.headers())),
        }
    }

    /// Tags the manifest `digest` of `name` (which the registry must still have) as `tag` again,
    /// with tagward's own credentials: the manifest is read by digest, checked against it, and
    /// put back with its media type.
    pub async fn put_back(&self, name: &str, tag: &str, digest: &Digest) -> Result<(), String> {
        let why = |error: LookupError| match error {
            LookupError::Refused { status, .. } => format!(
                "the registry refused ({status}); tagward's registry user (TAGWARD_REGISTRY_USERNAME) needs push \
                 on {name} to restore"
            ),
            LookupError::TooManyTags(_) => "the registry answered more than tagward reads".to_owned(),
            LookupError::Failed(why) => format!("the registry could not be reached: {why}"),
        };
        let path = format!("/v2/{name}/manifests/{digest}");
        let response = self.look_up(Method::GET, &path, None, MANIFEST_TYPES).await.map_err(why)?;
        match response.status() {
            StatusCode::NOT_FOUND => {
                return Err(format!("the registry no longer has {digest} in {name}, so it cannot be put back"))
            }
            status if !status.is_success() => return Err(why(refused(status, response.headers()))),
            _ => {}
        }
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .cloned()
            .ok_or_else(|| format!("the registry answered {digest} of {name} without a media type"))?;
        let bytes = read_limited(response, MAX_MANIFEST_BYTES, &path).await.map_err(why)?;
        if app::artifact::Sha256::of(&bytes) != app::artifact::Sha256::from(digest) {
            return Err(format!("the registry answered bytes for {digest} of {name} that do not hash to it"));
        }
        let put = format!("/v2/{name}/manifests/{tag}");
        let payload = (bytes, content_type);
        let response = self.exchange(Method::PUT, &put, None, MANIFEST_TYPES, Some(&payload)).await.map_err(why)?;
        match response.status() {
            StatusCode::CREATED => Ok(()),
            status => Err(why(refused(status, response.headers()))),
        }
    }

    /// The referrers API's index of the manifests whose `subject` is `digest` (a registry that
    /// pages it links the rest, which are read too, up to [`MAX_MANIFEST_BYTES`] in all), or `None`
    /// when the registry has no referrers API (distribution 2.8 answers 404).
    pub async fn referrers(
        &self,
        name: &str,
        digest: &Digest,
        authorization: Option<&HeaderValue>,
    ) -> Result<Option<Vec<Bytes>>, LookupError> {
        let mut pages = Vec::new();
        let mut path = Some(format!("/v2/{name}/referrers/{digest}"));
        let mut read = 0;
        while let Some(current) = path.take() {
            let response =
                self.look_up(Method::GET, &current, authorization, "application/vnd.oci.image.index.v1+json").await?;
            match response.status() {
                StatusCode::NOT_FOUND if pages.is_empty() => return Ok(None),
                status if status.is_success() => {}
                status => return Err(refused(status, response.headers())),
            }
            path = self.next_page(response.headers());
            let page = read_limited(response, MAX_MANIFEST_BYTES.saturating_sub(read), &current).await?;
            read += page.len();
            pages.push(page);
        }
        Ok(Some(pages))
    }

    /// Every tag of `name`, following the registry's pagination, at most [`MAX_TAGS`] of them.
    pub async fn tags(&self, name: &str, authorization: Option<&HeaderValue>) -> Result<Vec<String>, LookupError> {
        let mut tags = Vec::new();
        let mut page = Some(self.tags_page_path(name, None));
        for _ in 0..MAX_TAG_PAGES {
            let Some(path) = page.take() else { return Ok(tags) };
            let listed = self.list_page(&path, authorization).await?;
            tags.extend(listed.names);
            if tags.len() > MAX_TAGS {
                return Err(LookupError::TooManyTags(MAX_TAGS));
            }
            page = listed.next;
        }
        match page {
            None => Ok(tags),
            Some(_) => Err(LookupError::TooManyTags(MAX_TAGS)),
        }
    }

    /// The first page of `name`'s tags after `last` (in the registry's order).
    pub fn tags_page_path(&self, name: &str, last: Option<&str>) -> String {
        let last = last.map(|last| format!("&last={}", query_value(last))).unwrap_or_default();
        format!("/v2/{name}/tags/list?n={TAGS_PER_PAGE}{last}")
    }

    /// The first page of the catalog after repository `last`.
    pub fn catalog_page_path(&self, last: Option<&str>) -> String {
        let last = last.map(|last| format!("&last={}", query_value(last))).unwrap_or_default();
        format!("/v2/_catalog?n={CATALOG_PER_PAGE}{last}")
    }

    /// One page of a list (`/v2/_catalog` or `/v2/<name>/tags/list`): its names and the path of
    /// the next page, from the `Link` header. A repository that does not exist lists nothing.
    pub async fn list_page(&self, path: &str, authorization: Option<&HeaderValue>) -> Result<Listed, LookupError> {
        #[derive(serde::Deserialize)]
        struct Page {
            #[serde(alias = "repositories")]
            tags: Option<Names>,
        }
        let response = self.look_up(Method::GET, path, authorization, "application/json").await?;
        match response.status() {
            StatusCode::NOT_FOUND => return Ok(Listed { names: Vec::new(), next: None }),
            status if status.is_success() => {}
            status => return Err(refused(status, response.headers())),
        }
        let next = self.next_page(response.headers());
        let body = read_limited(response, MAX_LIST_PAGE_BYTES, path).await?;
        let page: Page =
            serde_json::from_slice(&body).map_err(|e| LookupError::Failed(format!("list page `{path}`: {e}")))?;
        Ok(Listed { names: page.tags.map(|names| names.0).unwrap_or_default(), next })
    }

    /// The path of the next page a `Link` header names (made relative to this registry).
    fn next_page(&self, headers: &HeaderMap) -> Option<String> {
        headers
            .get(header::LINK)
            .and_then(|link| link.to_str().ok())
            .and_then(|link| link.split_once('<'))
            .and_then(|(_, rest)| rest.split_once('>'))
            .map(|(target, _)| target.strip_prefix(&self.base).unwrap_or(target).to_owned())
    }
}

/// What a TLS registry's (or the identity provider's) certificate is checked against: webpki's roots (they work in a `FROM
/// scratch` image), the system's, and the certificates of `ca_file`.
pub(crate) fn tls_config(ca_file: Option<&Path>) -> anyhow::Result<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    // A system bundle entry rustls cannot use is skipped, as browsers do.
    let (_, _) = roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = ca_file {
        let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|certificates| certificates.collect())
            .with_context(|| format!("reading the CA certificates of `{}`", path.display()))?;
        anyhow::ensure!(!certificates.is_empty(), "`{}` holds no PEM certificate", path.display());
        for certificate in certificates {
            roots.add(certificate).with_context(|| format!("a certificate of `{}` is not usable", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The token scope a request path needs: the catalog, or pulling from one repository.
fn scope_of(path_and_query: &str) -> String {
    let path = path_and_query.split('?').next().unwrap_or_default();
    let name = path.strip_prefix("/v2/").and_then(|rest| {
        ["/manifests/", "/tags/", "/blobs/", "/referrers/"]
            .iter()
            .filter_map(|marker| rest.rfind(marker).map(|at| &rest[..at]))
            .max_by_key(|name| name.len())
    });
    match name {
        Some(name) => format!("repository:{name}:pull"),
        None => "registry:catalog:*".to_owned(),
    }
}

/// A `WWW-Authenticate: Bearer realm="…",service="…",scope="…"` challenge.
#[derive(Debug, PartialEq, Eq)]
struct BearerChallenge {
    realm: String,
    service: Option<String>,
    scope: Option<String>,
}

impl BearerChallenge {
    fn parse(value: &HeaderValue) -> Option<Self> {
        let text = value.to_str().ok()?;
        let (scheme, rest) = text.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let mut parameters = std::collections::HashMap::new();
        let mut rest = rest.trim();
        while let Some((key, after)) = rest.split_once('=') {
            let (value, after) = match after.strip_prefix('"') {
                Some(quoted) => {
                    let end = quoted.find('"')?;
                    (&quoted[..end], &quoted[end + 1..])
                }
                None => after.split_once(',').map_or((after, ""), |(value, after)| (value, after)),
            };
            parameters.insert(key.trim().to_ascii_lowercase(), value.to_owned());
            rest = after.trim_start_matches([',', ' ']);
        }
        Some(Self {
            realm: parameters.remove("realm")?,
            service: parameters.remove("service"),
            scope: parameters.remove("scope"),
        })
    }
}

/// An error with its causes (`client error (Connect): invalid peer certificate: UnknownIssuer`):
/// the client's own message alone does not say what went wrong.
pub(crate) fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        text.push_str(": ");
        text.push_str(&error.to_string());
        cause = error.source();
    }
    text
}

/// A response's body, refused past `limit` bytes.
async fn read_limited(
    response: Response<hyper::body::Incoming>,
    limit: usize,
    path: &str,
) -> Result<Bytes, LookupError> {
    let body = http_body_util::Limited::new(response.into_body(), limit);
    http_body_util::BodyExt::collect(body)
        .await
        .map(|collected| collected.to_bytes())
        .map_err(|e| LookupError::Failed(format!("`{path}`: {e}")))
}

/// A list page's names, refused past [`MAX_LIST_PAGE_NAMES`] while they are read.
struct Names(Vec<String>);

impl<'de> serde::Deserialize<'de> for Names {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Capped;
        impl<'de> serde::de::Visitor<'de> for Capped {
            type Value = Names;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "a list of at most {MAX_LIST_PAGE_NAMES} names")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Names, A::Error> {
                let mut names = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(TAGS_PER_PAGE));
                while let Some(name) = seq.next_element::<String>()? {
                    if names.len() == MAX_LIST_PAGE_NAMES {
                        return Err(serde::de::Error::custom(format_args!(
                            "the page lists more than {MAX_LIST_PAGE_NAMES} names"
                        )));
                    }
                    names.push(name);
                }
                Ok(Names(names))
            }
        }
        deserializer.deserialize_seq(Capped)
    }
}

/// One page of a registry list.
pub struct Listed {
    pub names: Vec<String>,
    /// The path and query of the next page, if the registry says there is one.
    pub next: Option<String>,
}

/// A name the registry listed, as a query value (it is the registry's word, not yet checked).
fn query_value(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn refused(status: StatusCode, headers: &HeaderMap) -> LookupError {
    LookupError::Refused { status, challenge: headers.get(header::WWW_AUTHENTICATE).cloned() }
}

fn bad_gateway(message: &str) -> Response<Body> {
    crate::oci_error::response(StatusCode::BAD_GATEWAY, "UNKNOWN", message.to_owned(), serde_json::Value::Null)
}

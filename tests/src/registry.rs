//! Real registry parts for the gateway tests: CNCF distribution (`docker-registry`) on a free
//! port, `skopeo` as the client, and small images written as OCI layouts.

use sha2::{Digest as _, Sha256};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(what: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("tagward-{what}-{}-{}", std::process::id(), rand::random::<u64>()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A CNCF distribution registry with deletes enabled, on a free loopback port.
pub struct Registry {
    pub address: SocketAddr,
    child: std::process::Child,
    _storage: TempDir,
}

impl Registry {
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// A registry serving TLS with a certificate `ca` signed (for 127.0.0.1 and localhost).
    pub async fn start_tls(ca: &TestCa) -> Self {
        Self::start_with(Some(ca)).await
    }

    /// A registry that takes only bearer tokens from `tokens` (distribution's `auth: token`).
    pub async fn start_with_tokens(tokens: &TokenService) -> Self {
        let auth = format!(
            "auth:\n  token:\n    realm: http://{}/token\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
            tokens.address,
            TokenService::SERVICE,
            TokenService::ISSUER,
            tokens.dir.0.join("token.pem").display()
        );
        Self::start_configured(None, &auth).await
    }

    /// A registry that sends its notifications (distribution's envelope) to `url` with `token`, on
    /// `port` if given (one reserved with [`free_port`], for a server that had to be told it first).
    pub async fn start_notifying(port: Option<u16>, url: &str, token: &str) -> Self {
        let notifications = format!(
            "notifications:\n  endpoints:\n    - name: tagward\n      url: {url}\n      headers:\n        \
             Authorization: [\"Bearer {token}\"]\n      timeout: 2s\n      threshold: 3\n      backoff: 100ms\n"
        );
        Self::start_on(port, None, &notifications).await
    }

    async fn start_with(tls: Option<&TestCa>) -> Self {
        Self::start_configured(tls, "").await
    }

    async fn start_configured(tls: Option<&TestCa>, extra: &str) -> Self {
        Self::start_on(None, tls, extra).await
    }

    /// `extra`: more of the configuration (`auth:`, `notifications:`), as YAML. Without `port`,
    /// the registry picks a free one itself and says which (`listening on …`), so no other test
    /// can take it in between.
    async fn start_on(port: Option<u16>, tls: Option<&TestCa>, extra: &str) -> Self {
        let storage = TempDir::new("registry");
        let asked: SocketAddr = format!("127.0.0.1:{}", port.unwrap_or(0)).parse().unwrap();
        let config = storage.0.join("config.yml");
        let tls_config = tls
            .map(|ca| {
                format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    ca.dir.0.join("server.pem").display(),
                    ca.dir.0.join("server.key").display()
                )
            })
            .unwrap_or_default();
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {asked}\n{tls_config}{extra}",
                storage.0.join("data").display()
            ),
        )
        .unwrap();
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("docker-registry is installed (scripts/dev test installs it)");
        // Its log (every request, at info) is read on a thread of its own to the end, so the
        // registry never blocks on a full pipe; the line saying where it listens is passed on.
        let (listening, heard) = tokio::sync::oneshot::channel::<SocketAddr>();
        let log = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut listening = Some(listening);
            for line in std::io::BufReader::new(log).lines().map_while(Result::ok) {
                let address = line.split("listening on ").nth(1).and_then(|rest| rest.split(['"', ',']).next());
                if let Some(address) = address.and_then(|address| address.parse().ok()) {
                    if let Some(listening) = listening.take() {
                        let _ = listening.send(address);
                    }
                }
            }
        });
        let address = match tokio::time::timeout(Duration::from_secs(20), heard).await {
            Ok(Ok(address)) => address,
            _ => panic!(
                "docker-registry did not say where it listens with:\n{}",
                std::fs::read_to_string(&config).unwrap_or_default()
            ),
        };
        let registry = Self { address, child, _storage: storage };
        let started = Instant::now();
        loop {
            // Over TLS the test's HTTP client cannot ask; the listening port is enough there. With
            // token auth `/v2/` answers 401 once it is up.
            let up = match tls {
                None => reqwest::get(format!("http://{address}/v2/"))
                    .await
                    .is_ok_and(|r| r.status() == 200 || (extra.starts_with("auth:") && r.status() == 401)),
                Some(_) => tokio::net::TcpStream::connect(address).await.is_ok(),
            };
            if up {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "docker-registry did not start with:\n{}",
                std::fs::read_to_string(&config).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        registry
    }

    /// The digest `repository:tag` points at, straight from the registry (not through a gateway).
    pub async fn digest(&self, repository: &str, tag: &str) -> Option<String> {
        let response = reqwest::Client::new()
            .head(format!("http://{}/v2/{repository}/manifests/{tag}", self.address))
            .header(
                "Accept",
                "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
                 application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json",
            )
            .send()
            .await
            .unwrap();
        (response.status() == 200).then(|| response.headers()["docker-content-digest"].to_str().unwrap().to_owned())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port free now (the next listener to ask may take it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// An OCI image layout on disk holding one image (or one multi-platform index) tagged `latest`.
pub struct OciLayout {
    pub dir: TempDir,
    /// The digest of the manifest (or index) `latest` names.
    pub digest: String,
}

impl OciLayout {
    fn blob(dir: &Path, bytes: &[u8]) -> (String, usize) {
        let digest = sha256(bytes);
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        std::fs::write(blobs.join(digest.trim_start_matches("sha256:")), bytes).unwrap();
        (digest, bytes.len())
    }

    /// One image manifest whose layer (`layer_bytes` of `seed`-derived content) and config differ per `seed`.
    fn image(dir: &Path, seed: &str, platform: (&str, &str), layer_bytes: usize) -> (String, usize) {
        let mut layer = Vec::with_capacity(layer_bytes);
        let mut block = Sha256::digest(seed.as_bytes()).to_vec();
        while layer.len() < layer_bytes {
            block = Sha256::digest(&block).to_vec();
            layer.extend_from_slice(&block);
        }
        layer.truncate(layer_bytes.max(1));
        let (layer_digest, layer_size) = Self::blob(dir, &layer);
        let config = serde_json::json!({
            "architecture": platform.0, "os": platform.1,
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
            "config": {"Labels": {"seed": seed}},
        });
        let (config_digest, config_size) = Self::blob(dir, config.to_string().as_bytes());
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size}],
        });
        Self::blob(dir, manifest.to_string().as_bytes())
    }

    fn finish(dir: TempDir, media_type: &str, digest: String, size: usize) -> Self {
        std::fs::write(dir.0.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let index = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": media_type, "digest": digest, "size": size,
                           "annotations": {"org.opencontainers.image.ref.name": "latest"}}],
        });
        std::fs::write(dir.0.join("index.json"), index.to_string()).unwrap();
        Self { dir, digest }
    }

    /// A single-platform image; different seeds give different digests.
    pub fn image_of(seed: &str) -> Self {
        Self::image_of_size(seed, 1024)
    }

    pub fn image_of_size(seed: &str, layer_bytes: usize) -> Self {
        let dir = TempDir::new("image");
        let (digest, size) = Self::image(&dir.0, seed, ("amd64", "linux"), layer_bytes);
        Self::finish(dir, "application/vnd.oci.image.manifest.v1+json", digest, size)
    }

    /// A multi-platform image: an index of linux/amd64 and linux/arm64 images.
    pub fn index_of(seed: &str) -> Self {
        let dir = TempDir::new("index");
        let manifests: Vec<_> = [("amd64", "linux"), ("arm64", "linux")]
            .into_iter()
            .map(|platform| {
                let (digest, size) = Self::image(&dir.0, &format!("{seed}-{}", platform.0), platform, 1024);
                serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": size,
                                   "platform": {"architecture": platform.0, "os": platform.1}})
            })
            .collect();
        let index = serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests,
        });
        let (digest, size) = Self::blob(&dir.0, index.to_string().as_bytes());
        Self::finish(dir, "application/vnd.oci.image.index.v1+json", digest, size)
    }

    /// `oci:<dir>:latest`, as skopeo names it.
    pub fn reference(&self) -> String {
        format!("oci:{}:latest", self.dir.0.display())
    }

    /// The manifest bytes of `latest`.
    pub fn manifest(&self) -> Vec<u8> {
        std::fs::read(self.dir.0.join("blobs/sha256").join(self.digest.trim_start_matches("sha256:"))).unwrap()
    }
}

/// Runs skopeo (plain HTTP, no signature policy) and returns its output.
pub async fn skopeo(args: &[&str]) -> Output {
    let mut command = tokio::process::Command::new("skopeo");
    command.arg("--insecure-policy").args(args).stdin(Stdio::null());
    command.output().await.expect("skopeo is installed (scripts/dev test installs it)")
}

/// `skopeo copy` of a layout to `docker://<address>/<target>`. An image keeps its digest; an index
/// (`all`: every platform) is converted by this skopeo to a Docker manifest list, so its digest in
/// the registry is not the layout's.
pub async fn push(layout: &OciLayout, address: SocketAddr, target: &str, all: bool) -> Output {
    let destination = format!("docker://{address}/{target}");
    let source = layout.reference();
    let mut args = vec!["copy", "--dest-tls-verify=false", "--retry-times=0"];
    args.push(if all { "--all" } else { "--preserve-digests" });
    args.extend([source.as_str(), destination.as_str()]);
    skopeo(&args).await
}

/// Sends `request` as raw bytes on a new connection (nothing normalised on the way) and returns
/// the status of every response read until the server closes the connection or 10 s pass.
pub async fn raw_http(address: SocketAddr, request: &[u8]) -> Vec<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split("\r\n")
        .filter_map(|line| line.strip_prefix("HTTP/1.1 "))
        .filter_map(|rest| rest.get(..3)?.parse().ok())
        .collect()
}

const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

impl Registry {
    /// The manifest `reference` of `repository`, straight from the registry, parsed.
    pub async fn manifest(&self, repository: &str, reference: &str) -> Option<serde_json::Value> {
        let response = reqwest::Client::new()
            .get(format!("http://{}/v2/{repository}/manifests/{reference}", self.address))
            .header("Accept", MANIFEST_ACCEPT)
            .send()
            .await
            .unwrap();
        (response.status() == 200).then_some(())?;
        Some(serde_json::from_slice(&response.bytes().await.unwrap()).unwrap())
    }

    /// Whether the registry still serves blob `digest` of `repository`.
    pub async fn has_blob(&self, repository: &str, digest: &str) -> bool {
        let url = format!("http://{}/v2/{repository}/blobs/{digest}", self.address);
        reqwest::Client::new().head(url).send().await.unwrap().status() == 200
    }

    /// Whether the registry still serves manifest `digest` of `repository`.
    pub async fn has_manifest(&self, repository: &str, digest: &str) -> bool {
        self.manifest(repository, digest).await.is_some()
    }
}

/// Uploads `bytes` as a blob of `repository` through `address` (a registry or a gateway):
/// POST, then PUT with the digest. Returns the digest.
pub async fn upload_blob(address: SocketAddr, repository: &str, bytes: &[u8]) -> String {
    let client = reqwest::Client::new();
    let started = client.post(format!("http://{address}/v2/{repository}/blobs/uploads/")).send().await.unwrap();
    assert_eq!(started.status(), 202, "upload start: {}", started.text().await.unwrap_or_default());
    let location = started.headers()["location"].to_str().unwrap().to_owned();
    let location = if location.starts_with('/') { format!("http://{address}{location}") } else { location.to_owned() };
    let digest = sha256(bytes);
    let separator = if location.contains('?') { '&' } else { '?' };
    let put = client
        .put(format!("{location}{separator}digest={digest}"))
        .header("Content-Type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201, "upload of {digest}: {}", put.text().await.unwrap_or_default());
    digest
}

/// PUTs `manifest` as `repository:reference` through `address`; returns the status and body.
pub async fn put_manifest(
    address: SocketAddr,
    repository: &str,
    reference: &str,
    manifest: &serde_json::Value,
) -> (u16, String) {
    let media_type = manifest["mediaType"].as_str().unwrap_or("application/vnd.oci.image.manifest.v1+json");
    let response = reqwest::Client::new()
        .put(format!("http://{address}/v2/{repository}/manifests/{reference}"))
        .header("Content-Type", media_type)
        .body(manifest.to_string())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// The manifest's digest as the registry will compute it (of the bytes `put_manifest` sends).
pub fn manifest_digest(manifest: &serde_json::Value) -> String {
    sha256(manifest.to_string().as_bytes())
}

/// An image pushed blob by blob over HTTP.
pub struct PushedImage {
    pub manifest: String,
    pub config: String,
    pub layers: Vec<String>,
}

/// Pushes an image of `layers` (and a config naming `seed`) to `repository` through `address`,
/// as `reference` (a tag, or its digest when `None`). With `subject` it is a referrer of that
/// manifest (a signature: its config's type says so).
pub async fn push_image(
    address: SocketAddr,
    repository: &str,
    reference: Option<&str>,
    seed: &str,
    layers: &[&[u8]],
    subject: Option<&str>,
) -> PushedImage {
    let config_type = if subject.is_some() {
        "application/vnd.dev.cosign.artifact.sig.v1+json"
    } else {
        "application/vnd.oci.image.config.v1+json"
    };
    let config_bytes = serde_json::json!({"architecture": "amd64", "os": "linux", "seed": seed}).to_string();
    let config = upload_blob(address, repository, config_bytes.as_bytes()).await;
    let mut descriptors = Vec::new();
    let mut layer_digests = Vec::new();
    for layer in layers {
        let digest = upload_blob(address, repository, layer).await;
        descriptors.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": layer.len()}));
        layer_digests.push(digest);
    }
    let mut manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": config_type, "digest": config, "size": config_bytes.len()},
        "layers": descriptors,
    });
    if let Some(subject) = subject {
        manifest["subject"] = serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject, "size": 1});
    }
    let digest = manifest_digest(&manifest);
    let (status, body) = put_manifest(address, repository, reference.unwrap_or(&digest), &manifest).await;
    assert_eq!(status, 201, "push of {repository}:{reference:?}: {body}");
    PushedImage { manifest: digest, config, layers: layer_digests }
}

/// Attaches `referrers` to `subject` the way registries without a referrers API are told: an
/// index tagged `sha256-<hex of subject>` listing them (the OCI referrers tag schema).
pub async fn tag_referrers(address: SocketAddr, repository: &str, subject: &str, referrers: &[&str]) {
    let manifests: Vec<_> = referrers
        .iter()
        .map(|digest| {
            serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": 1,
                                         "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json"})
        })
        .collect();
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests});
    let tag = subject.replace(':', "-");
    let (status, body) = put_manifest(address, repository, &tag, &index).await;
    assert_eq!(status, 201, "referrers tag {tag}: {body}");
}

/// How [`FaultyProxy`] answers manifest reads by digest (or of attachment lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    None = 0,
    /// 500, as a registry whose storage failed.
    Fail = 1,
    /// The stored bytes with one more byte: no longer what the digest names.
    Corrupt = 2,
    /// 500 for reads of attachment list tags (`/manifests/sha256-…`); digests are read as usual.
    FailLists = 3,
}

/// A registry's HTTP API passed on to a real registry, except that manifest reads by digest can be
/// made to fail or to answer other bytes, as a failing or hostile registry would.
pub struct FaultyProxy {
    pub address: SocketAddr,
    fault: std::sync::Arc<std::sync::atomic::AtomicU8>,
    /// Milliseconds each manifest PUT under `/v2/shop/` waits before it is passed on (a registry
    /// on slow object storage).
    put_delay: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Milliseconds each read (`GET`, `HEAD`) under `/v2/shop/` waits (a slow registry to walk).
    read_delay: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl FaultyProxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        use axum::body::Body;
        use axum::extract::Request;
        use std::sync::atomic::Ordering;
        let fault = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(Fault::None as u8));
        let put_delay = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let read_delay = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let (shared, delay, reads) = (fault.clone(), put_delay.clone(), read_delay.clone());
        let handler = move |request: Request| {
            let (client, fault, delay) = (client.clone(), shared.load(Ordering::SeqCst), delay.load(Ordering::SeqCst));
            let read_delay = reads.load(Ordering::SeqCst);
            async move {
                let (parts, body) = request.into_parts();
                if (parts.method == "GET" || parts.method == "HEAD") && parts.uri.path().starts_with("/v2/shop/") {
                    tokio::time::sleep(Duration::from_millis(read_delay)).await;
                }
                if parts.method == "PUT"
                    && parts.uri.path().starts_with("/v2/shop/")
                    && parts.uri.path().contains("/manifests/")
                {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
                let head = parts.method == "HEAD";
                let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
                let read_by_digest = parts.method == "GET" && path.contains("/manifests/sha256:");
                let read_list = parts.method == "GET" && path.contains("/manifests/sha256-");
                if (read_by_digest && fault == Fault::Fail as u8) || (read_list && fault == Fault::FailLists as u8) {
                    return axum::http::Response::builder()
                        .status(500)
                        .body(Body::from(r#"{"errors":[{"code":"UNKNOWN","message":"storage failed"}]}"#))
                        .unwrap();
                }
                let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
                let mut forwarded = client.request(parts.method, format!("http://{upstream}{path}")).body(body);
                for (name, value) in &parts.headers {
                    if name != "content-length" {
                        forwarded = forwarded.header(name, value);
                    }
                }
                let answer = forwarded.send().await.unwrap();
                let mut response = axum::http::Response::builder().status(answer.status());
                for (name, value) in answer.headers() {
                    if (head || name != "content-length") && name != "transfer-encoding" {
                        response = response.header(name, value);
                    }
                }
                let mut bytes = answer.bytes().await.unwrap().to_vec();
                if read_by_digest && fault == Fault::Corrupt as u8 {
                    bytes.push(b'\n');
                }
                response.body(Body::from(bytes)).unwrap()
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, axum::Router::new().fallback(handler)).await });
        Self { address, fault, put_delay, read_delay }
    }

    pub fn set(&self, fault: Fault) {
        self.fault.store(fault as u8, std::sync::atomic::Ordering::SeqCst);
    }

    /// Makes every read under `/v2/shop/` wait this long before it is passed on.
    pub fn delay_reads(&self, delay: Duration) {
        self.read_delay.store(delay.as_millis() as u64, std::sync::atomic::Ordering::SeqCst);
    }

    /// Makes every manifest PUT under `/v2/shop/` wait this long before it is passed on.
    pub fn delay_manifest_puts(&self, delay: Duration) {
        self.put_delay.store(delay.as_millis() as u64, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A certificate authority made for one test (openssl), and a server certificate it signed for
/// 127.0.0.1 and localhost: `ca.pem`, `server.pem`, `server.key` in `dir`.
pub struct TestCa {
    pub dir: TempDir,
}

impl TestCa {
    pub fn new() -> Self {
        let dir = TempDir::new("ca");
        let openssl = |args: &[&str]| {
            let output = Command::new("openssl").args(args).current_dir(&dir.0).output().expect("openssl is installed");
            assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=tagward test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        std::fs::write(
            dir.0.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ]);
        Self { dir }
    }

    /// The CA's certificate, for whoever must trust the server.
    pub fn certificate(&self) -> PathBuf {
        self.dir.0.join("ca.pem")
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

/// A registry's token service, as distribution's `auth: token` expects one: `GET /token?service=…&scope=…`
/// with HTTP Basic (user `sync`, password `sync password`) answers an RS256 JWT granting what was
/// asked, signed by a key made here whose certificate travels in the token's `x5c` header.
pub struct TokenService {
    pub address: SocketAddr,
    dir: TempDir,
    /// Tokens issued so far.
    pub issued: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl TokenService {
    pub const SERVICE: &'static str = "tagward-test-registry";
    pub const ISSUER: &'static str = "tagward-test-tokens";
    pub const USER: &'static str = "sync";
    pub const PASSWORD: &'static str = "sync password";

    pub async fn start() -> Self {
        use base64::Engine as _;
        use std::sync::atomic::Ordering;
        let dir = TempDir::new("tokens");
        let output = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "token.key", "-out", "token.pem"])
            .args(["-days", "2", "-subj", "/CN=tagward test tokens"])
            .current_dir(&dir.0)
            .output()
            .expect("openssl is installed");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let der = Command::new("openssl")
            .args(["x509", "-in", "token.pem", "-outform", "DER"])
            .current_dir(&dir.0)
            .output()
            .unwrap()
            .stdout;
        let x5c = base64::engine::general_purpose::STANDARD.encode(der);
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(&std::fs::read(dir.0.join("token.key")).unwrap()).unwrap();
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", Self::USER, Self::PASSWORD))
        );
        let issued = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = issued.clone();
        let handler = move |headers: axum::http::HeaderMap, query: axum::extract::RawQuery| {
            let (key, x5c, expected, counter) = (key.clone(), x5c.clone(), expected.clone(), counter.clone());
            async move {
                use axum::response::IntoResponse;
                if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
                    return (axum::http::StatusCode::UNAUTHORIZED, "wrong credentials").into_response();
                }
                let query = query.0.unwrap_or_default();
                let access: Vec<serde_json::Value> = url::form_urlencoded::parse(query.as_bytes())
                    .into_owned()
                    .filter(|(name, _)| name == "scope")
                    .filter_map(|(_, scope)| {
                        let (kind, rest) = scope.split_once(':')?;
                        let (name, actions) = rest.rsplit_once(':')?;
                        Some(serde_json::json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
                    })
                    .collect();
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
                let claims = serde_json::json!({
                    "iss": Self::ISSUER, "sub": Self::USER, "aud": Self::SERVICE,
                    "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{}", rand::random::<u64>()),
                    "access": access,
                });
                let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
                header.x5c = Some(vec![x5c]);
                let token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
                counter.fetch_add(1, Ordering::SeqCst);
                axum::Json(serde_json::json!({"token": token, "expires_in": 300})).into_response()
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let router = axum::Router::new().route("/token", axum::routing::get(handler));
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { address, dir, issued }
    }
}

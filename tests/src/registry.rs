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
        let storage = TempDir::new("registry");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let address: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let config = storage.0.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {address}\n",
                storage.0.join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry is installed (scripts/dev test installs it)");
        let registry = Self { address, child, _storage: storage };
        let started = Instant::now();
        while reqwest::get(format!("http://{address}/v2/")).await.map(|r| r.status().as_u16()).ok() != Some(200) {
            assert!(started.elapsed() < Duration::from_secs(20), "docker-registry did not start");
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

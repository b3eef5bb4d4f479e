//! The processes a benchmark drives: a fresh database, the tagward CLI, servers it waits for.

use anyhow::{bail, Context};
use sqlx::{Connection, PgConnection};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// The one database a benchmark uses, made afresh (and migrated) for each part.
pub struct BenchDatabase {
    admin_url: String,
    pub url: String,
}

impl BenchDatabase {
    const NAME: &'static str = "tagward_bench";

    pub async fn fresh(admin_url: &str, tagward: &Path) -> anyhow::Result<Self> {
        let mut admin = PgConnection::connect(admin_url).await.context("connecting to PostgreSQL")?;
        sqlx::query(&format!("drop database if exists {} with (force)", Self::NAME)).execute(&mut admin).await?;
        sqlx::query(&format!("create database {}", Self::NAME)).execute(&mut admin).await?;
        let base = admin_url.rsplit_once('/').map_or(admin_url, |(server, _)| server);
        let database = Self { admin_url: admin_url.to_owned(), url: format!("{base}/{}", Self::NAME) };
        database.cli(tagward, &["migrate"]).await?;
        Ok(database)
    }

    pub async fn connect(&self) -> anyhow::Result<PgConnection> {
        Ok(PgConnection::connect(&self.url).await?)
    }

    /// Runs a tagward subcommand against this database; its standard output.
    pub async fn cli(&self, tagward: &Path, args: &[&str]) -> anyhow::Result<String> {
        let output = Command::new(tagward).args(args).env("DATABASE_URL", &self.url).output().await?;
        if !output.status.success() {
            bail!("tagward {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
        }
        Ok(String::from_utf8(output.stdout)?)
    }

    /// A service token that may ask decisions (its secret).
    pub async fn token(&self, tagward: &Path) -> anyhow::Result<String> {
        self.token_with(tagward, "bench", "decisions").await
    }

    /// A service token `name` with `scopes` (comma-separated; its secret).
    pub async fn token_with(&self, tagward: &Path, name: &str, scopes: &str) -> anyhow::Result<String> {
        let output = self.cli(tagward, &["token", "create", name, "--scope", scopes]).await?;
        output.lines().last().map(str::to_owned).context("no token printed")
    }

    pub async fn drop(self) -> anyhow::Result<()> {
        let mut admin = PgConnection::connect(&self.admin_url).await?;
        sqlx::query(&format!("drop database if exists {} with (force)", Self::NAME)).execute(&mut admin).await?;
        Ok(())
    }
}

/// A child process killed when dropped.
pub struct Process {
    child: Child,
    pub pid: u32,
}

impl Process {
    pub fn spawn(command: &mut Command) -> anyhow::Result<Self> {
        let child = command.kill_on_drop(true).stdin(Stdio::null()).spawn()?;
        let pid = child.id().context("the process exited at once")?;
        Ok(Self { child, pid })
    }

    /// A `tagward` subcommand against `database_url`, logging warnings only.
    pub fn tagward(tagward: &Path, database_url: &str, args: &[&str]) -> anyhow::Result<Self> {
        Self::spawn(
            Command::new(tagward)
                .args(args)
                .env("DATABASE_URL", database_url)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null()),
        )
    }

    /// Waits until `url` answers 200 (at most `limit`); how long that took.
    pub async fn wait_ready(&mut self, url: &str, limit: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let client = reqwest::Client::new();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("the process exited ({status}) before {url} answered");
            }
            if let Ok(response) = client.get(url).timeout(Duration::from_secs(1)).send().await {
                if response.status().is_success() {
                    return Ok(started.elapsed());
                }
            }
            if started.elapsed() > limit {
                bail!("{url} did not answer within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Resident memory now and at its peak, in MiB.
    pub fn memory_mib(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(key))
                .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (kib("VmRSS:") / 1024.0, kib("VmHWM:") / 1024.0)
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }
}

/// A docker-registry (deletes enabled) listening on `address`, storing under `work`, answering.
pub async fn docker_registry(work: &Path, address: &str) -> anyhow::Result<Process> {
    let mut registry = spawn_registry(work, address, "")?;
    registry.wait_ready(&format!("http://{address}/v2/"), Duration::from_secs(30)).await?;
    Ok(registry)
}

/// A docker-registry on `address` that sends its notifications to `url` with the service token `token`.
pub async fn docker_registry_notifying(work: &Path, address: &str, url: &str, token: &str) -> anyhow::Result<Process> {
    let notifications = format!(
        "notifications:\n  endpoints:\n    - name: tagward\n      url: {url}\n      headers:\n        \
         Authorization: [\"Bearer {token}\"]\n      timeout: 2s\n      threshold: 3\n      backoff: 100ms\n"
    );
    let mut registry = spawn_registry(work, address, &notifications)?;
    registry.wait_ready(&format!("http://{address}/v2/"), Duration::from_secs(30)).await?;
    Ok(registry)
}

/// A docker-registry serving TLS on `address` with a certificate for 127.0.0.1 and localhost
/// from a CA made here; the CA's certificate alone is in `work/ca/ca.crt` (a directory skopeo's
/// `--dest-cert-dir` can read: a key there without its certificate would be an error).
pub async fn docker_registry_tls(work: &Path, address: &str) -> anyhow::Result<Process> {
    let certs = work.join("certs");
    std::fs::create_dir_all(&certs)?;
    let openssl = |args: &[&str]| -> anyhow::Result<()> {
        let output = std::process::Command::new("openssl").args(args).current_dir(&certs).output()?;
        anyhow::ensure!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        Ok(())
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
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=tagward bench CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ])?;
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
        "/CN=localhost",
    ])?;
    std::fs::write(
        certs.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ])?;
    let tls = format!(
        "  tls:\n    certificate: {}\n    key: {}\n",
        certs.join("server.pem").display(),
        certs.join("server.key").display()
    );
    std::fs::create_dir_all(work.join("ca"))?;
    std::fs::copy(certs.join("ca.crt"), work.join("ca/ca.crt"))?;
    let registry = spawn_registry(work, address, &tls)?;
    let started = Instant::now();
    while tokio::net::TcpStream::connect(address).await.is_err() {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(30), "docker-registry (TLS) did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(registry)
}

fn spawn_registry(work: &Path, address: &str, http_extra: &str) -> anyhow::Result<Process> {
    let config = work.join(format!("registry-{}.yml", address.replace(':', "-")));
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    \
             enabled: true\nhttp:\n  addr: {address}\n{http_extra}",
            work.join(format!("data-{}", address.replace(':', "-"))).display()
        ),
    )?;
    Process::spawn(Command::new("docker-registry").arg("serve").arg(&config).stdout(Stdio::null()))
}

/// `sha256:<hex>` of `bytes`: a manifest's or blob's digest.
pub fn digest_of(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// A value of tagward's `/metrics` (a counter's `_total` or a gauge), 0 when absent.
pub async fn metric(base: &str, name: &str) -> anyhow::Result<f64> {
    let text = reqwest::get(format!("{base}/metrics")).await?.text().await?;
    Ok(text
        .lines()
        .filter(|line| line.split([' ', '{']).next() == Some(name))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .fold(0.0, |total, value| total + value))
}

/// Uploads `bytes` as a blob of `repository` at the registry `base` (POST, then PUT with the
/// digest); returns the digest.
pub async fn upload_blob(
    client: &reqwest::Client,
    base: &str,
    repository: &str,
    bytes: &[u8],
) -> anyhow::Result<String> {
    use sha2::Digest as _;
    let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)));
    let started = client.post(format!("{base}/v2/{repository}/blobs/uploads/")).send().await?;
    anyhow::ensure!(started.status() == 202, "starting an upload: {}", started.status());
    let location = started.headers()["location"].to_str()?.to_owned();
    let location = if location.starts_with('/') { format!("{base}{location}") } else { location };
    let separator = if location.contains('?') { '&' } else { '?' };
    let put = client.put(format!("{location}{separator}digest={digest}")).body(bytes.to_vec()).send().await?;
    anyhow::ensure!(put.status() == 201, "uploading a blob: {}", put.status());
    Ok(digest)
}

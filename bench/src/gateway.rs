//! skopeo copies of a 100 MiB image straight to docker-registry and through the gateway (medians
//! of five, each a fresh image so no blob is skipped), then the gateway's peak memory while a
//! 1 GiB layer streams through it.

use crate::report::{median, Report};
use crate::run::{BenchDatabase, Process};
use crate::Args;
use anyhow::{ensure, Context};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::process::Command;

const REGISTRY: &str = "127.0.0.1:5900";
const GATEWAY: &str = "127.0.0.1:5901";
const TLS_REGISTRY: &str = "127.0.0.1:5902";

pub async fn run(args: &Args, report: &mut Report) -> anyhow::Result<()> {
    let section = "gateway (skopeo copy; docker-registry behind)";
    eprintln!("== {section}");
    let database = BenchDatabase::fresh(&args.database_url, &args.tagward).await?;
    database.cli(&args.tagward, &["project", "create", "shop"]).await?;
    database.cli(&args.tagward, &["rule", "add", "shop", "--repos", "matching:**", "--tags", "matching:v*"]).await?;
    // Not /tmp, which may be memory: the images take over a gigabyte.
    let work = Path::new("/var/tmp").join(format!("tagward-bench-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let registry = crate::run::docker_registry(&work, REGISTRY).await?;
    let upstream = format!("http://{REGISTRY}");
    let mut gateway =
        Process::tagward(&args.tagward, &database.url, &["gateway", "--listen", GATEWAY, "--upstream", &upstream])?;
    gateway.wait_ready(&format!("http://{GATEWAY}/v2/"), Duration::from_secs(30)).await?;

    let (mut direct, mut through) = (Vec::new(), Vec::new());
    for i in 0..5 {
        for (target, kind, times) in [(REGISTRY, "direct", &mut direct), (GATEWAY, "gateway", &mut through)] {
            let layout = work.join(format!("{kind}{i}"));
            oci_layout(&layout, 100 << 20)?;
            times.push(copy(&layout, &format!("{target}/shop/{kind}{i}:v1")).await?);
            std::fs::remove_dir_all(&layout)?;
        }
    }
    let (direct, through) = (median(direct), median(through));
    report.add(section, "100 MiB image straight to the registry (median of 5)", direct, "s");
    report.add(section, "100 MiB image through the gateway (median of 5)", through, "s");
    report.add(section, "through the gateway vs straight", through / direct, "x");

    let big = work.join("big");
    oci_layout(&big, 1 << 30)?;
    copy(&big, &format!("{GATEWAY}/shop/big:v1")).await?;
    report.add(section, "gateway peak RSS while a 1 GiB layer streams through", gateway.memory_mib().1, "MiB");
    gateway.stop().await?;
    registry.stop().await?;

    // The same through a gateway whose upstream speaks only TLS (a private CA), against skopeo
    // writing to that registry directly over TLS.
    let tls_section = "gateway to a TLS registry (private CA; skopeo copy)";
    eprintln!("== {tls_section}");
    let tls_registry = crate::run::docker_registry_tls(&work, TLS_REGISTRY).await?;
    let ca_dir = work.join("ca");
    let ca = ca_dir.join("ca.crt").display().to_string();
    let tls_upstream = format!("https://localhost:{}", TLS_REGISTRY.rsplit(':').next().unwrap_or_default());
    let mut tls_gateway = Process::tagward(
        &args.tagward,
        &database.url,
        &[
            "gateway",
            "--listen",
            GATEWAY,
            "--upstream",
            &tls_upstream,
            "--upstream-ca",
            &ca,
            "--registry-sync-interval",
            "0",
        ],
    )?;
    tls_gateway.wait_ready(&format!("http://{GATEWAY}/v2/"), Duration::from_secs(30)).await?;
    let (mut direct, mut through) = (Vec::new(), Vec::new());
    for i in 0..5 {
        for (target, kind, times, cert_dir) in
            // skopeo speaks TLS (trusting the CA) to the registry, plain HTTP to the gateway.
            [
                (tls_upstream.trim_start_matches("https://"), "direct", &mut direct, Some(ca_dir.as_path())),
                (GATEWAY, "gateway", &mut through, None),
            ]
        {
            let layout = work.join(format!("tls-{kind}{i}"));
            oci_layout(&layout, 100 << 20)?;
            times.push(copy_with(&layout, &format!("{target}/shop/tls-{kind}{i}:v1"), cert_dir).await?);
            std::fs::remove_dir_all(&layout)?;
        }
    }
    let (direct, through) = (median(direct), median(through));
    report.add(tls_section, "100 MiB image straight to the TLS registry (median of 5)", direct, "s");
    report.add(tls_section, "100 MiB image through the gateway to it (median of 5)", through, "s");
    report.add(tls_section, "through the gateway vs straight", through / direct, "x");
    copy(&big, &format!("{GATEWAY}/shop/tls-big:v1")).await?;
    report.add(
        tls_section,
        "gateway peak RSS while a 1 GiB layer streams through to TLS",
        tls_gateway.memory_mib().1,
        "MiB",
    );
    tls_gateway.stop().await?;
    tls_registry.stop().await?;
    std::fs::remove_dir_all(&work)?;
    database.drop().await
}

/// Seconds `skopeo copy` took from the layout to `docker://destination` (plain HTTP).
async fn copy(layout: &Path, destination: &str) -> anyhow::Result<f64> {
    copy_with(layout, destination, None).await
}

/// The same; with `cert_dir`, over TLS trusting the CA in it (`ca.crt`).
async fn copy_with(layout: &Path, destination: &str, cert_dir: Option<&Path>) -> anyhow::Result<f64> {
    let started = Instant::now();
    let tls = match cert_dir {
        Some(dir) => format!("--dest-cert-dir={}", dir.display()),
        None => "--dest-tls-verify=false".to_owned(),
    };
    let status = Command::new("skopeo")
        .args(["--insecure-policy", "copy", "-q", "--preserve-digests", &tls])
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(format!("docker://{destination}"))
        .status()
        .await
        .context("running skopeo")?;
    ensure!(status.success(), "skopeo copy to {destination} failed");
    Ok(started.elapsed().as_secs_f64())
}

/// Writes an OCI image layout at `dir` holding one image (tag `latest`) whose single layer is
/// `size` random bytes.
fn oci_layout(dir: &Path, size: usize) -> anyhow::Result<()> {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    let put = |bytes: &[u8]| -> anyhow::Result<String> {
        let digest = hex::encode(Sha256::digest(bytes));
        std::fs::write(blobs.join(&digest), bytes)?;
        Ok(digest)
    };
    // The layer is written in chunks and hashed as it goes: a 1 GiB layer is never in memory.
    let (layer, partial) = (blobs.join("layer.partial"), &mut Sha256::new());
    {
        let mut file = std::io::BufWriter::new(std::fs::File::create(&layer)?);
        let mut chunk = vec![0u8; 1 << 20];
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len());
            rand::thread_rng().fill_bytes(&mut chunk[..n]);
            partial.update(&chunk[..n]);
            file.write_all(&chunk[..n])?;
            left -= n;
        }
        file.flush()?;
    }
    let layer_digest = hex::encode(partial.clone().finalize());
    std::fs::rename(&layer, blobs.join(&layer_digest))?;
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_digest}")]},
    })
    .to_string();
    let config_digest = put(config.as_bytes())?;
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{config_digest}"), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": format!("sha256:{layer_digest}"), "size": size}],
    })
    .to_string();
    let manifest_digest = put(manifest.as_bytes())?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{manifest_digest}"), "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "latest"},
        }],
    });
    std::fs::write(dir.join("index.json"), index.to_string())?;
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)?;
    Ok(())
}

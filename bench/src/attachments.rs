//! What append-only attachment lists cost: a signature appended to a `sha256-<hex>` referrers list
//! through the gateway (under `**`: the list is append-only by rule) against the same PUT straight
//! to docker-registry, at 1 entry (50 images, each list 1 → 2) and at 200 (one list, 200 → 250);
//! then a blob delete that walks the immutable image whose list that is (250 attachments; the blob
//! is held by nothing, so every attachment is read), cold and warm.

use crate::report::{percentile, Report};
use crate::run::{digest_of, metric, upload_blob, BenchDatabase, Process};
use crate::Args;
use anyhow::ensure;
use std::path::Path;
use std::time::{Duration, Instant};

const REGISTRY: &str = "127.0.0.1:5930";
const GATEWAY: &str = "127.0.0.1:5931";
const SUBJECTS: usize = 50;
const LONG_LIST: usize = 200;
const APPENDS: usize = 50;

/// An artifact manifest attached to `subject` (a signature), told apart by `seed`.
fn signature(subject: &str, seed: &str, config: &str, layer: &str) -> String {
    serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": layer, "size": 16}],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject, "size": 1},
        "annotations": {"org.example.seed": seed},
    })
    .to_string()
}

fn image(seed: &str, config: &str, layer: &str) -> String {
    serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": 16}],
        "annotations": {"org.example.seed": seed},
    })
    .to_string()
}

fn list(entries: &[String]) -> String {
    let manifests: Vec<_> = entries
        .iter()
        .map(|digest| {
            serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": 1,
                                           "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json"})
        })
        .collect();
    serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests})
        .to_string()
}

async fn put(
    client: &reqwest::Client,
    base: &str,
    repository: &str,
    reference: &str,
    body: &str,
) -> anyhow::Result<f64> {
    let media_type = if body.contains("image.index") {
        "application/vnd.oci.image.index.v1+json"
    } else {
        "application/vnd.oci.image.manifest.v1+json"
    };
    let started = Instant::now();
    let response = client
        .put(format!("{base}/v2/{repository}/manifests/{reference}"))
        .header("Content-Type", media_type)
        .body(body.to_owned())
        .send()
        .await?;
    let took = started.elapsed().as_secs_f64() * 1000.0;
    ensure!(response.status() == 201, "PUT {reference}: {} {}", response.status(), response.text().await?);
    Ok(took)
}

/// A repository of `subjects` images, each with `entries` signatures listed, then one more
/// signature each; the PUTs appending it, in ms (to `base`, where the repository lives).
async fn appends(
    client: &reqwest::Client,
    direct: &str,
    base: &str,
    repository: &str,
    subjects: usize,
    entries: usize,
    appends_per_subject: usize,
) -> anyhow::Result<Vec<f64>> {
    let config = upload_blob(client, direct, repository, b"{}").await?;
    let layer = upload_blob(client, direct, repository, &[9u8; 16]).await?;
    let mut took = Vec::new();
    for s in 0..subjects {
        let subject = image(&format!("{repository} {s}"), &config, &layer);
        let digest = digest_of(subject.as_bytes());
        put(client, direct, repository, &format!("v{s}"), &subject).await?;
        let tag = digest.replace(':', "-");
        let mut listed = Vec::new();
        for i in 0..entries + appends_per_subject {
            let attached = signature(&digest, &format!("{i}"), &config, &layer);
            let attached_digest = digest_of(attached.as_bytes());
            put(client, direct, repository, &attached_digest, &attached).await?;
            listed.push(attached_digest);
            if listed.len() == entries {
                put(client, direct, repository, &tag, &list(&listed)).await?;
            } else if listed.len() > entries {
                took.push(put(client, base, repository, &tag, &list(&listed)).await?);
            }
        }
    }
    Ok(took)
}

pub async fn run(args: &Args, report: &mut Report) -> anyhow::Result<()> {
    let section = "attachments: appending to a referrers list (`**` rule; docker-registry behind)";
    eprintln!("== {section}");
    let database = BenchDatabase::fresh(&args.database_url, &args.tagward).await?;
    database.cli(&args.tagward, &["project", "create", "shop"]).await?;
    database.cli(&args.tagward, &["rule", "add", "shop", "--repos", "matching:**", "--tags", "matching:**"]).await?;
    let work = Path::new("/var/tmp").join(format!("tagward-bench-attachments-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let registry = crate::run::docker_registry(&work, REGISTRY).await?;
    let direct = format!("http://{REGISTRY}");
    let upstream = direct.clone();
    let flags = ["gateway", "--listen", GATEWAY, "--upstream", &upstream, "--registry-sync-interval", "0"];
    let base = format!("http://{GATEWAY}");
    let mut gateway = Process::tagward(&args.tagward, &database.url, &flags)?;
    gateway.wait_ready(&format!("{base}/v2/"), Duration::from_secs(30)).await?;
    let client = reqwest::Client::new();

    for (entries, subjects, each, what) in
        [(1, SUBJECTS, 1, "1 entry (50 lists, 1 → 2)"), (LONG_LIST, 1, APPENDS, "200 entries (one list, 200 → 250)")]
    {
        let straight =
            appends(&client, &direct, &direct, &format!("shop/direct{entries}"), subjects, entries, each).await?;
        let through =
            appends(&client, &direct, &base, &format!("shop/gateway{entries}"), subjects, entries, each).await?;
        for (name, p) in [("p50", 0.5), ("p99", 0.99)] {
            let (a, b) = (percentile(straight.clone(), p), percentile(through.clone(), p));
            report.add(section, &format!("append at {what}, straight to the registry, {name}"), a, "ms");
            report.add(section, &format!("append at {what}, through the gateway, {name}"), b, "ms");
            report.add(section, &format!("append at {what}, added by the gateway, {name}"), b - a, "ms");
        }
    }

    // A blob delete walking the immutable image with the long list (now 250 attachments): nothing
    // holds the blob, so every attachment is read (cold), then read from the cache (warm).
    let walk_section = "attachments: a blob delete walking an image with 250 attachments";
    eprintln!("== {walk_section}");
    let mut reads = metric(&base, "tagward_gateway_held_walk_registry_reads_total").await.unwrap_or(0.0);
    for measure in ["cold", "warm"] {
        let blob = upload_blob(&client, &direct, "shop/gateway200", measure.as_bytes()).await?;
        let started = Instant::now();
        let response = client.delete(format!("{base}/v2/shop/gateway200/blobs/{blob}")).send().await?;
        let took = started.elapsed().as_secs_f64() * 1000.0;
        ensure!(response.status() == 202, "{measure}: {} {}", response.status(), response.text().await?);
        let total = metric(&base, "tagward_gateway_held_walk_registry_reads_total").await?;
        report.add(walk_section, &format!("blob delete, {measure} cache"), took, "ms");
        report.add(walk_section, &format!("registry reads, {measure} cache"), total - reads, "");
        reads = total;
    }
    gateway.stop().await?;
    registry.stop().await?;
    std::fs::remove_dir_all(&work)?;
    database.drop().await?;
    Ok(())
}

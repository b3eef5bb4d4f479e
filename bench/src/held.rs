//! What a delete by digest costs when an immutable tag must keep its whole artifact: a repository
//! of 1,000 immutable tags, each a 2-platform index (3,000 manifests), behind the gateway; a blob
//! delete that walks all of it (the blob is held by nothing: the worst case) with the manifest
//! cache cold and warm, one refused early (a layer every image shares), the registry reads each
//! made, and the gateway's memory. Then the cache itself, filled in this process with 100,000
//! manifests of that shape, weighed by a counting allocator.

use crate::report::Report;
use crate::run::{digest_of, metric, upload_blob, BenchDatabase, Process};
use crate::Args;
use anyhow::{ensure, Context};
use futures::{StreamExt, TryStreamExt};
use std::path::Path;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

const REGISTRY: &str = "127.0.0.1:5920";
const GATEWAY: &str = "127.0.0.1:5921";
const INDEXES: usize = 1000;
const PLATFORMS: [&str; 2] = ["amd64", "arm64"];

/// Bytes the process holds from the allocator now (allocated minus freed).
pub static ALLOCATED: AtomicIsize = AtomicIsize::new(0);

/// The system allocator, counting what is held (to weigh the manifest cache).
pub struct Counting;

// SAFETY: every call is passed to the system allocator unchanged; only a counter is added.
#[expect(unsafe_code, reason = "a global allocator is an unsafe trait; this one only counts and delegates")]
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        ALLOCATED.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

/// A child image of index `i` for `platform`: the shared config and layer, told apart by an annotation.
fn child(i: usize, platform: &str, config: &str, layer: &str) -> String {
    serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 64},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": 4096}],
        "annotations": {"org.example.build": format!("{i}-{platform}")},
    })
    .to_string()
}

fn index(children: &[(String, &str)]) -> String {
    let manifests: Vec<_> = children
        .iter()
        .map(|(child, platform)| {
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest_of(child.as_bytes()),
                "size": child.len(), "platform": {"os": "linux", "architecture": platform},
            })
        })
        .collect();
    serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests})
        .to_string()
}

pub async fn run(args: &Args, report: &mut Report) -> anyhow::Result<()> {
    let section = "held: 1,000 immutable tags of 2-platform indexes (docker-registry behind the gateway)";
    eprintln!("== {section}");
    let database = BenchDatabase::fresh(&args.database_url, &args.tagward).await?;
    database.cli(&args.tagward, &["project", "create", "shop"]).await?;
    database.cli(&args.tagward, &["rule", "add", "shop", "--repos", "matching:**", "--tags", "matching:v*"]).await?;
    let work = Path::new("/var/tmp").join(format!("tagward-bench-held-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let registry = crate::run::docker_registry(&work, REGISTRY).await?;
    let client = reqwest::Client::new();
    let direct = format!("http://{REGISTRY}");

    // Straight to the registry (the gateway knows nothing of it: it reads the registry per delete).
    let config = upload_blob(&client, &direct, "shop/app", b"{\"architecture\":\"amd64\",\"os\":\"linux\"}").await?;
    let shared_layer = upload_blob(&client, &direct, "shop/app", &[7u8; 4096]).await?;
    let started = Instant::now();
    futures::stream::iter(0..INDEXES)
        .map(|i| {
            let (client, direct, config, layer) = (&client, &direct, &config, &shared_layer);
            async move {
                let children: Vec<(String, &str)> =
                    PLATFORMS.iter().map(|platform| (child(i, platform, config, layer), *platform)).collect();
                for (manifest, _) in &children {
                    put(
                        client,
                        direct,
                        &digest_of(manifest.as_bytes()),
                        manifest,
                        "application/vnd.oci.image.manifest.v1+json",
                    )
                    .await?;
                }
                put(client, direct, &format!("v{i}"), &index(&children), "application/vnd.oci.image.index.v1+json")
                    .await
            }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await?;
    eprintln!("  pushed {INDEXES} indexes in {:.1} s", started.elapsed().as_secs_f64());

    let upstream = format!("http://{REGISTRY}");
    // No sync: it would read the same graphs in the background while the walks are timed.
    let flags = ["gateway", "--listen", GATEWAY, "--upstream", &upstream, "--registry-sync-interval", "0"];
    let base = format!("http://{GATEWAY}");
    let mut gateway = Process::tagward(&args.tagward, &database.url, &flags)?;
    gateway.wait_ready(&format!("{base}/v2/"), Duration::from_secs(30)).await?;
    let before = gateway.memory_mib().0;
    let mut reads = 0.0;
    let cases = [
        ("cold: nothing read before", true),
        ("warm cache", true),
        ("held layer, refused, warm", false),
        ("a new gateway process: cold cache, graphs in the inventory", true),
    ];
    for (i, (measure, unheld)) in cases.into_iter().enumerate() {
        if i == 3 {
            let cached = metric(&base, "tagward_gateway_manifest_cache_entries").await?;
            report.add(section, "manifests cached after the walks", cached, "");
            report.add(section, "gateway RSS growth over the walks", gateway.memory_mib().0 - before, "MiB");
            gateway.stop().await?;
            gateway = Process::tagward(&args.tagward, &database.url, &flags)?;
            gateway.wait_ready(&format!("{base}/v2/"), Duration::from_secs(30)).await?;
            reads = 0.0;
        }
        let blob = if unheld {
            upload_blob(&client, &direct, "shop/app", measure.as_bytes()).await?
        } else {
            shared_layer.clone()
        };
        let started = Instant::now();
        let response = client.delete(format!("{base}/v2/shop/app/blobs/{blob}")).send().await?;
        let took = started.elapsed().as_secs_f64();
        let expected = if unheld { 202 } else { 403 };
        ensure!(response.status() == expected, "{measure}: {} {}", response.status(), response.text().await?);
        let total = metric(&base, "tagward_gateway_held_walk_registry_reads_total").await?;
        report.add(section, &format!("blob delete, {measure}"), took * 1000.0, "ms");
        report.add(section, &format!("registry reads, {measure}"), total - reads, "");
        reads = total;
    }
    gateway.stop().await?;
    registry.stop().await?;
    std::fs::remove_dir_all(&work)?;
    database.drop().await?;

    let cache_section = "held: the manifest cache";
    let entries = tagward::gateway::held::ManifestCache::DEFAULT_CAPACITY;
    let (bytes, cached) = weigh_cache(entries)?;
    report.add(
        cache_section,
        &format!("{cached} manifests (1 index : 2 images) cached"),
        bytes as f64 / (1 << 20) as f64,
        "MiB",
    );
    report.add(cache_section, "per manifest", bytes as f64 / cached as f64, "B");
    Ok(())
}

/// Fills a cache with `entries` manifests shaped as above (each index and its two images), parsed
/// from their bytes as the gateway parses them; what it holds afterwards, and how many.
fn weigh_cache(entries: usize) -> anyhow::Result<(isize, usize)> {
    use app::artifact::{ManifestRefs, Sha256 as Hash};
    let config = digest_of(b"config");
    let layer = digest_of(b"layer");
    let (before, cache) = (ALLOCATED.load(Ordering::Relaxed), tagward::gateway::held::ManifestCache::new(entries));
    for i in 0..entries / 3 {
        let children: Vec<(String, &str)> =
            PLATFORMS.iter().map(|platform| (child(i, platform, &config, &layer), *platform)).collect();
        let index = index(&children);
        for manifest in children.iter().map(|(child, _)| child).chain([&index]) {
            let digest = Hash::of(manifest.as_bytes());
            let refs = ManifestRefs::parse(digest, manifest.as_bytes()).context("a manifest of the bench")?;
            cache.insert(digest, std::sync::Arc::new(refs));
        }
    }
    Ok((ALLOCATED.load(Ordering::Relaxed) - before - std::mem::size_of_val(&cache) as isize, cache.len()))
}

async fn put(
    client: &reqwest::Client,
    base: &str,
    reference: &str,
    body: &str,
    media_type: &str,
) -> anyhow::Result<()> {
    let response = client
        .put(format!("{base}/v2/shop/app/manifests/{reference}"))
        .header("Content-Type", media_type)
        .body(body.to_owned())
        .send()
        .await?;
    ensure!(response.status() == 201, "PUT {reference}: {} {}", response.status(), response.text().await?);
    Ok(())
}

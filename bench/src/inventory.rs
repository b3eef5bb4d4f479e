//! The tag inventory at scale: a docker-registry holding `--inventory-tags` tags (one small image
//! under many tags, in 100 repositories), the first sync of `tagward serve` from it (time, rows,
//! peak memory), then the impact preview and the Tags tab over that project (server time).

use crate::portal::sign_in;
use crate::report::{median, Report};
use crate::run::{BenchDatabase, Process};
use crate::Args;
use anyhow::{ensure, Context};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::process::Command;

const REGISTRY: &str = "127.0.0.1:5910";
const ADDR: &str = "127.0.0.1:3910";
const REPOSITORIES: usize = 100;

pub async fn run(args: &Args, report: &mut Report) -> anyhow::Result<()> {
    let tags = args.inventory_tags;
    let section = format!("tag inventory ({tags} tags in {REPOSITORIES} repositories of one project)");
    eprintln!("== {section}");
    let database = BenchDatabase::fresh(&args.database_url, &args.tagward).await?;
    database.cli(&args.tagward, &["project", "create", "shop"]).await?;
    for (repositories, tags) in [("matching:**", "matching:v*"), ("matching:team1/**", "matching:**")] {
        database.cli(&args.tagward, &["rule", "add", "shop", "--repos", repositories, "--tags", tags]).await?;
    }
    let work = Path::new("/var/tmp").join(format!("tagward-bench-inventory-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let registry = crate::run::docker_registry(&work, REGISTRY).await?;
    let started = Instant::now();
    fill(tags).await?;
    report.add(&section, "writing the tags to docker-registry (setup)", started.elapsed().as_secs_f64(), "s");

    let base = format!("http://{ADDR}");
    let events_token = database.token_with(&args.tagward, "bench-events", "events").await?;
    let started = Instant::now();
    let mut server = serve(args, &database, "3600")?;
    server.wait_ready(&format!("{base}/readyz"), Duration::from_secs(60)).await?;
    let mut db = database.connect().await?;
    let stored = loop {
        let row: Option<(Option<i64>,)> =
            sqlx::query_as("select tags from registry_sync where completed_at is not null")
                .fetch_optional(&mut db)
                .await?;
        if let Some((stored,)) = row {
            break stored.unwrap_or(0);
        }
        ensure!(started.elapsed() < Duration::from_secs(1800), "the first sync did not complete in 30 min");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let synced = started.elapsed().as_secs_f64();
    ensure!(stored as usize == tags, "the sync stored {stored} tags, the registry holds {tags}");
    let full_requests = crate::run::metric(&base, "tagward_registry_sync_requests_total").await?;
    report.add(&section, "first sync (a full pass): requests to the registry", full_requests, "requests");
    let (rss, peak) = server.memory_mib();
    report.add(&section, "first sync, start to complete (no rate limit)", synced, "s");
    report.add(&section, "first sync: tags per second", tags as f64 / synced, "tags/s");
    report.add(&section, "tagward serve RSS after the sync", rss, "MiB");
    report.add(&section, "tagward serve peak RSS (whole run)", peak, "MiB");

    let cookie = sign_in(&base).await?;
    let client = reqwest::Client::new();
    let draft = [
        ("project", "shop"),
        ("draft[repositories_action]", "matching"),
        ("draft[repositories]", "**"),
        ("draft[tags_action]", "excluding"),
        ("draft[tags]", "build-*"),
        ("remove", "false"),
    ];
    let (mut server_ms, mut wall_ms) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        let asked = Instant::now();
        let response = client
            .post(format!("{base}/portal/rule_impact"))
            .header("Origin", &base)
            .header("Cookie", &cookie)
            .form(&draft)
            .send()
            .await?;
        ensure!(response.status().is_success(), "rule_impact: {}", response.status());
        let impact: serde_json::Value = response.json().await?;
        wall_ms.push(asked.elapsed().as_secs_f64() * 1000.0);
        server_ms.push(impact["millis"].as_f64().context("no millis")?);
        ensure!(impact["total"]["tags"].as_u64() == Some(tags as u64), "impact counted {}", impact["total"]);
    }
    report.add(&section, "impact preview, server time (median of 10)", median(server_ms), "ms");
    report.add(&section, "impact preview, request to answer (median of 10)", median(wall_ms), "ms");
    let mut page_ms = Vec::new();
    for _ in 0..5 {
        let asked = Instant::now();
        let response = client
            .get(format!("{base}/projects/shop/tags?repositories=team3/**&tags=v1.5*&page=2"))
            .header("Cookie", &cookie)
            .send()
            .await?;
        ensure!(response.status().is_success(), "tags page: {}", response.status());
        response.bytes().await?;
        page_ms.push(asked.elapsed().as_secs_f64() * 1000.0);
    }
    report.add(&section, "Tags tab, filtered, page 2 (median of 5)", median(page_ms), "ms");
    let (_, peak) = server.memory_mib();
    report.add(&section, "tagward serve peak RSS after the previews", peak, "MiB");

    // The registry sends an event: a new process's passes (a second apart) are light from then on.
    let event = serde_json::json!({"events": [{"timestamp": time_now(), "action": "push",
        "target": {"repository": "shop/team0/app0", "tag": "v1.0.0", "digest": held_digest(&mut db).await?}}]});
    let sent = client
        .post(format!("{base}/api/v1/registry/events"))
        .bearer_auth(&events_token)
        .header("Content-Type", "application/vnd.docker.distribution.events.v1+json")
        .body(event.to_string())
        .send()
        .await?;
    ensure!(sent.status().is_success(), "sending an event: {}", sent.status());
    server.stop().await?;
    let restarted: time::OffsetDateTime = sqlx::query_scalar("select now()").fetch_one(&mut db).await?;
    let mut server = serve(args, &database, "1")?;
    server.wait_ready(&format!("{base}/readyz"), Duration::from_secs(60)).await?;
    let light_seconds = loop {
        let row: Option<(f64,)> = sqlx::query_as(
            "select extract(epoch from completed_at - completed_started_at)::float8 from registry_sync
             where pass_light and completed_started_at = pass_started_at and completed_started_at > $1",
        )
        .bind(restarted)
        .fetch_optional(&mut db)
        .await?;
        if let Some((seconds,)) = row {
            break seconds;
        }
        ensure!(restarted_elapsed(&mut db, restarted).await? < 600.0, "no light pass completed in 10 min");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let light_requests = crate::run::metric(&base, "tagward_registry_sync_requests_total").await?;
    report.add(&section, "a light pass (events flowing): requests to the registry", light_requests, "requests");
    report.add(&section, "a light pass: start to complete", light_seconds, "s");

    server.stop().await?;
    registry.stop().await?;
    std::fs::remove_dir_all(&work)?;
    database.drop().await?;
    Ok(())
}

/// `tagward serve` syncing the bench registry every `interval` seconds, with no rate limit.
fn serve(args: &Args, database: &BenchDatabase, interval: &str) -> anyhow::Result<Process> {
    Process::spawn(
        Command::new(&args.tagward)
            .args(["serve", "--addr", ADDR])
            .env("DATABASE_URL", &database.url)
            .env("RUST_LOG", "warn")
            .env("TAGWARD_COOKIE_SECURE", "false")
            .env("TAGWARD_BOOTSTRAP_ADMIN_PASSWORD", crate::portal::PASSWORD)
            .env("TAGWARD_REGISTRY_URL", format!("http://{REGISTRY}"))
            .env("TAGWARD_REGISTRY_SYNC_RATE", "0")
            .env("TAGWARD_REGISTRY_SYNC_INTERVAL", interval),
    )
}

fn time_now() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// The digest of `shop/team0/app0:v1.0.0` as the inventory holds it (the event confirms it).
async fn held_digest(db: &mut sqlx::PgConnection) -> anyhow::Result<String> {
    Ok(sqlx::query_scalar("select digest from registry_tags where repository = 'shop/team0/app0' and tag = 'v1.0.0'")
        .fetch_one(db)
        .await?)
}

async fn restarted_elapsed(db: &mut sqlx::PgConnection, since: time::OffsetDateTime) -> anyhow::Result<f64> {
    Ok(sqlx::query_scalar("select extract(epoch from now() - $1)::float8").bind(since).fetch_one(db).await?)
}

/// Uploads a small image's layer and config to `repository` of the registry at `registry`;
/// its manifest (to put under any tag of that repository).
pub async fn small_image(client: &reqwest::Client, registry: &str, repository: &str) -> anyhow::Result<String> {
    let (manifest, blobs) = small_image_parts();
    for blob in &blobs {
        crate::run::upload_blob(client, registry, repository, blob).await?;
    }
    Ok(manifest)
}

/// A small image: its manifest, and its layer and config.
fn small_image_parts() -> (String, [Vec<u8>; 2]) {
    let layer = b"tagward bench layer".to_vec();
    let layer_digest = sha256(&layer);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    })
    .to_string()
    .into_bytes();
    let config_digest = sha256(&config);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
    })
    .to_string();
    (manifest, [layer, config])
}

/// Writes `tags` tags (`v1.<i>.0` and `build-<i>` alternately) of one small image into
/// `shop/team<r % 10>/app<r>`, spread evenly over the repositories.
async fn fill(tags: usize) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let registry = format!("http://{REGISTRY}");
    let repository = |r: usize| format!("shop/team{}/app{r}", r % 10);
    let mut manifest = String::new();
    for r in 0..REPOSITORIES {
        manifest = small_image(&client, &registry, &repository(r)).await?;
    }
    let puts = (0..tags).map(|i| {
        let url = format!(
            "{registry}/v2/{}/manifests/{}",
            repository(i % REPOSITORIES),
            if i % 2 == 0 { format!("v1.{i}.0") } else { format!("build-{i}") }
        );
        let request =
            client.put(url).header("Content-Type", "application/vnd.oci.image.manifest.v1+json").body(manifest.clone());
        async move { request.send().await.map(|response| response.status().as_u16()) }
    });
    let mut statuses = futures::stream::iter(puts).buffer_unordered(32);
    while let Some(status) = statuses.next().await {
        ensure!(status? == 201, "writing a tag failed");
    }
    Ok(())
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

//! The registry's events: how soon a push made straight to docker-registry shows on the Tags tab
//! (docker-registry's own notifications to `tagward serve`), and how many events a second one
//! process takes (wrk posting distribution envelopes of 10 pushes, each of new tags).

use crate::report::Report;
use crate::run::BenchDatabase;
use crate::wrk::Wrk;
use crate::Args;
use anyhow::{ensure, Context};
use std::path::Path;
use std::time::{Duration, Instant};

const REGISTRY: &str = "127.0.0.1:5920";
const ADDR: &str = "127.0.0.1:3920";
/// Direct pushes whose way to the Tags tab is timed.
const PUSHES: usize = 1000;
/// Pushes in each envelope wrk posts (`bench/events.lua`).
const EVENTS_PER_REQUEST: f64 = 10.0;

pub async fn run(args: &Args, report: &mut Report) -> anyhow::Result<()> {
    let section = "registry events (docker-registry notifications to tagward serve)".to_owned();
    eprintln!("== {section}");
    let database = BenchDatabase::fresh(&args.database_url, &args.tagward).await?;
    database.cli(&args.tagward, &["project", "create", "shop"]).await?;
    let token = database.token_with(&args.tagward, "bench-events", "events").await?;
    let base = format!("http://{ADDR}");
    // No registry to sync from: only the registry's events tell this portal of the pushes.
    let (server, cookie) = crate::portal::serve_signed_in(args, &database, ADDR).await?;
    let work = Path::new("/var/tmp").join(format!("tagward-bench-events-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let events_url = format!("{base}/api/v1/registry/events");
    let registry = crate::run::docker_registry_notifying(&work, REGISTRY, &events_url, &token).await?;

    // One image, pushed under new tags straight to the registry, one at a time; each waits until
    // the Tags tab (filtered to that tag) lists it, counted afresh.
    let client = reqwest::Client::new();
    let registry_base = format!("http://{REGISTRY}");
    let manifest = crate::inventory::small_image(&client, &registry_base, "shop/web").await?;
    let mut latencies = Vec::with_capacity(PUSHES);
    for i in 0..PUSHES {
        let tag = format!("e{i:04}");
        let put = client
            .put(format!("{registry_base}/v2/shop/web/manifests/{tag}"))
            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.clone())
            .send()
            .await?;
        ensure!(put.status() == 201, "pushing {tag}: {}", put.status());
        let pushed = Instant::now();
        loop {
            let page = client
                .get(format!("{base}/projects/shop/tags?tags={tag}"))
                .header("Cookie", &cookie)
                .send()
                .await?
                .text()
                .await?;
            if page.contains(&format!(">{tag}<")) && !page.contains("being counted again") {
                break;
            }
            ensure!(pushed.elapsed() < Duration::from_secs(30), "{tag} did not show on the Tags tab in 30 s");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        latencies.push(pushed.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    report.add(&section, &format!("direct push to the Tags tab listing it, p50 of {PUSHES}"), at(0.5), "ms");
    report.add(&section, &format!("direct push to the Tags tab listing it, p99 of {PUSHES}"), at(0.99), "ms");
    report.add(&section, &format!("direct push to the Tags tab listing it, max of {PUSHES}"), at(1.0), "ms");
    registry.stop().await?;

    // Envelopes posted as fast as one process takes them (8 connections), next to /healthz.
    let health = Wrk::new(&format!("{base}/healthz"), 8, Duration::from_secs(args.duration)).run().await?;
    let events = Wrk::new(&events_url, 8, Duration::from_secs(args.duration))
        .script("bench/events.lua", vec![("TOKEN", token.clone())])
        .run()
        .await?;
    ensure!(events.failures == 0, "{} event posts failed", events.failures);
    report.add(
        &section,
        "events taken a second (8 connections, 10 pushes an envelope)",
        events.requests_per_second * EVENTS_PER_REQUEST,
        "events/s",
    );
    report.add(&section, "envelope answer p50", events.p50_ms, "ms");
    report.add(&section, "envelope answer p99", events.p99_ms, "ms");
    report.add(&section, "/healthz of the same process, 8 connections", health.requests_per_second, "req/s");
    let stored: i64 = sqlx::query_scalar("select count(*) from registry_tags")
        .fetch_one(&mut database.connect().await?)
        .await
        .context("counting the tags the events wrote")?;
    report.add(&section, "tags the inventory holds after the run", stored as f64, "tags");
    let (_, peak) = server.memory_mib();
    report.add(&section, "tagward serve peak RSS", peak, "MiB");

    server.stop().await?;
    std::fs::remove_dir_all(&work)?;
    database.drop().await?;
    Ok(())
}

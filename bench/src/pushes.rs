//! Many protected pushes at once to a slow registry: 48, 200 and 1,000 first pushes of immutable
//! tags through the gateway, side by side, to a docker-registry behind a proxy that answers each
//! manifest PUT 4 s late (object storage on a bad day); their wall time, p50 / p99, statuses, and
//! the database connections in use at peak (sampled from `pg_stat_activity` every 50 ms). Then what
//! a protected push costs without contention: the same PUT through the gateway and straight to the
//! registry, one at a time, no delay.

use crate::report::{percentile, Report};
use crate::run::{upload_blob, BenchDatabase, Process};
use crate::Args;
use anyhow::ensure;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const REGISTRY: &str = "127.0.0.1:5940";
const PROXY: &str = "127.0.0.1:5941";
const GATEWAY: &str = "127.0.0.1:5942";
const DELAY: Duration = Duration::from_secs(4);

/// A proxy to the registry that holds every manifest PUT for `delay` milliseconds first.
async fn delaying_proxy(delay: Arc<AtomicU64>) -> anyhow::Result<()> {
    use axum::body::Body;
    use axum::extract::Request;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let handler = move |request: Request| {
        let (client, delay) = (client.clone(), delay.load(Ordering::SeqCst));
        async move {
            let (parts, body) = request.into_parts();
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
            if parts.method == "PUT" && path.contains("/manifests/") {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
            let mut forwarded = client.request(parts.method.clone(), format!("http://{REGISTRY}{path}")).body(body);
            for (name, value) in &parts.headers {
                if name != "content-length" {
                    forwarded = forwarded.header(name, value);
                }
            }
            let Ok(answer) = forwarded.send().await else {
                return axum::http::Response::builder().status(502).body(Body::empty()).unwrap_or_default();
            };
            let mut response = axum::http::Response::builder().status(answer.status());
            for (name, value) in answer.headers() {
                if (parts.method == "HEAD" || name != "content-length") && name != "transfer-encoding" {
                    response = response.header(name, value);
                }
            }
            let bytes = answer.bytes().await.unwrap_or_default();
            response.body(Body::from(bytes)).unwrap_or_default()
        }
    };
    let listener = tokio::net::TcpListener::bind(PROXY).await?;
    tokio::spawn(async move { axum::serve(listener, axum::Router::new().fallback(handler)).await });
    Ok(())
}

fn manifest(config: &str, layer: &str, seed: &str) -> String {
    serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": 16}],
        "annotations": {"org.example.seed": seed},
    })
    .to_string()
}

async fn put(client: &reqwest::Client, base: &str, tag: &str, body: String) -> anyhow::Result<(u16, f64)> {
    let started = Instant::now();
    let response = client
        .put(format!("{base}/v2/shop/app/manifests/{tag}"))
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(body)
        .send()
        .await?;
    Ok((response.status().as_u16(), started.elapsed().as_secs_f64() * 1000.0))
}

pub async fn run(args: &Args, report: &mut Report) -> anyhow::Result<()> {
    let section = "pushes: first pushes of immutable tags side by side, registry answering each manifest PUT 4 s late";
    eprintln!("== {section}");
    let database = BenchDatabase::fresh(&args.database_url, &args.tagward).await?;
    database.cli(&args.tagward, &["project", "create", "shop"]).await?;
    database.cli(&args.tagward, &["rule", "add", "shop", "--repos", "matching:**", "--tags", "matching:v*"]).await?;
    let work = Path::new("/var/tmp").join(format!("tagward-bench-pushes-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let registry = crate::run::docker_registry(&work, REGISTRY).await?;
    let delay = Arc::new(AtomicU64::new(DELAY.as_millis() as u64));
    delaying_proxy(delay.clone()).await?;
    let upstream = format!("http://{PROXY}");
    let flags = ["gateway", "--listen", GATEWAY, "--upstream", &upstream, "--registry-sync-interval", "0"];
    let base = format!("http://{GATEWAY}");
    let mut gateway = Process::tagward(&args.tagward, &database.url, &flags)?;
    gateway.wait_ready(&format!("{base}/v2/"), Duration::from_secs(30)).await?;
    let client = reqwest::Client::new();
    let direct = format!("http://{REGISTRY}");
    let config = upload_blob(&client, &direct, "shop/app", b"{}").await?;
    let layer = upload_blob(&client, &direct, "shop/app", &[5u8; 16]).await?;

    // The database's connections (the gateway's pool, its lock and notification connections, and
    // the sampler's own one, left out), sampled while the pushes run.
    let peak = Arc::new(AtomicI64::new(0));
    for count in [48usize, 200, 1000] {
        peak.store(0, Ordering::SeqCst);
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sampler = {
            let (peak, done) = (peak.clone(), done.clone());
            let connection = database.connect().await?;
            tokio::spawn(async move {
                let mut connection = connection;
                while !done.load(Ordering::SeqCst) {
                    let now: i64 =
                        sqlx::query_scalar("select count(*) from pg_stat_activity where datname = current_database()")
                            .fetch_one(&mut connection)
                            .await
                            .unwrap_or(0);
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        };
        let started = Instant::now();
        let pushes: Vec<_> = (0..count)
            .map(|i| {
                let (client, base) = (client.clone(), base.clone());
                let body = manifest(&config, &layer, &format!("{count}-{i}"));
                tokio::spawn(async move { put(&client, &base, &format!("v{count}-{i}"), body).await })
            })
            .collect();
        let mut took = Vec::new();
        let mut refused = 0;
        for push in pushes {
            let (status, ms) = push.await??;
            if status == 201 {
                took.push(ms);
            } else {
                refused += 1;
            }
        }
        let wall = started.elapsed().as_secs_f64();
        done.store(true, Ordering::SeqCst);
        sampler.await?;
        let what = format!("{count} pushes");
        report.add(section, &format!("{what}: answered 201"), took.len() as f64, "");
        report.add(section, &format!("{what}: refused"), f64::from(refused), "");
        report.add(section, &format!("{what}: wall time"), wall, "s");
        report.add(section, &format!("{what}: p50"), percentile(took.clone(), 0.5), "ms");
        report.add(section, &format!("{what}: p99"), percentile(took, 0.99), "ms");
        report.add(
            section,
            &format!("{what}: database connections at peak"),
            (peak.load(Ordering::SeqCst) - 1) as f64,
            "",
        );
    }

    let quiet = "pushes: one protected push at a time, no delay";
    eprintln!("== {quiet}");
    delay.store(0, Ordering::SeqCst);
    let (mut straight, mut through) = (Vec::new(), Vec::new());
    for i in 0..50 {
        let (status, ms) =
            put(&client, &direct, &format!("quiet-direct-{i}"), manifest(&config, &layer, &format!("d{i}"))).await?;
        ensure!(status == 201, "straight: {status}");
        straight.push(ms);
        let (status, ms) =
            put(&client, &base, &format!("v-quiet-{i}"), manifest(&config, &layer, &format!("g{i}"))).await?;
        ensure!(status == 201, "through: {status}");
        through.push(ms);
    }
    for (name, p) in [("p50", 0.5), ("p99", 0.99)] {
        let (a, b) = (percentile(straight.clone(), p), percentile(through.clone(), p));
        report.add(quiet, &format!("straight to the registry, {name}"), a, "ms");
        report.add(quiet, &format!("through the gateway, {name}"), b, "ms");
        report.add(quiet, &format!("added by the gateway, {name}"), b - a, "ms");
    }
    gateway.stop().await?;
    registry.stop().await?;
    std::fs::remove_dir_all(&work)?;
    database.drop().await?;
    Ok(())
}

//! Webhooks: how soon a change's notification reaches a receiver (from the audit row's time to
//! the request arriving, over 1,000 rule state changes made one after the other), and how many
//! notifications one `tagward serve` delivers a second to a receiver that answers at once.

use crate::report::{percentile, Report};
use crate::run::{BenchDatabase, Process};
use crate::Args;
use anyhow::ensure;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ADDR: &str = "127.0.0.1:3930";
/// Changes whose notification is timed.
const CHANGES: usize = 1000;
/// Notifications queued at once for the throughput run.
const QUEUED: i64 = 20_000;

/// Arrival times (wall clock) and the audit rows' times the bodies carry.
#[derive(Default)]
struct Arrivals(Mutex<Vec<(time::OffsetDateTime, Option<time::OffsetDateTime>)>>);

async fn receiver(arrivals: Arc<Arrivals>) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let router = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let arrivals = arrivals.clone();
        async move {
            let now = time::OffsetDateTime::now_utc();
            let at = serde_json::from_slice::<serde_json::Value>(&body).ok().and_then(|event| {
                let at = event["data"]["at"].as_str()?.to_owned();
                time::OffsetDateTime::parse(&at, &time::format_description::well_known::Rfc3339).ok()
            });
            arrivals.0.lock().unwrap().push((now, at));
            "ok"
        }
    });
    tokio::spawn(async move { axum::serve(listener, router).await.ok() });
    Ok(format!("http://{address}/hook"))
}

pub async fn run(args: &Args, report: &mut Report) -> anyhow::Result<()> {
    let section = "webhooks (outbox to a receiver answering at once)".to_owned();
    eprintln!("== {section}");
    let database = BenchDatabase::fresh(&args.database_url, &args.tagward).await?;
    database.cli(&args.tagward, &["project", "create", "shop"]).await?;
    database.cli(&args.tagward, &["rule", "add", "shop", "--repos", "matching:**", "--tags", "matching:v*"]).await?;
    let arrivals = Arc::new(Arrivals::default());
    let url = receiver(arrivals.clone()).await?;
    let secret = "a bench secret of some length";
    let added = tokio::process::Command::new(&args.tagward)
        .args(["webhook", "add", "shop", &url, "--events", "all", "--webhook-allow-private", "true"])
        .env("DATABASE_URL", &database.url)
        .env("TAGWARD_WEBHOOK_SECRET", secret)
        .output()
        .await?;
    ensure!(added.status.success(), "adding the webhook: {}", String::from_utf8_lossy(&added.stderr));
    let mut server = Process::tagward(
        &args.tagward,
        &database.url,
        &["serve", "--addr", ADDR, "--cookie-secure", "false", "--webhook-allow-private", "true"],
    )?;
    server.wait_ready(&format!("http://{ADDR}/healthz"), Duration::from_secs(30)).await?;

    // Latency: one state change at a time (disable, enable, …), each waited for at the receiver.
    let pool = app::store::connect(&database.url).await?;
    let project = app::store::project_id(&pool, &app::policy::ProjectName::parse("shop")?).await?;
    let (rule,): (i64,) = sqlx::query_as("select id from immutability_rules where project_id = $1")
        .bind(project)
        .fetch_one(&pool)
        .await?;
    let operator = app::principal::Principal::command_line();
    for i in 0..CHANGES {
        let state = if i % 2 == 0 { app::policy::RuleState::Disabled } else { app::policy::RuleState::Enforced };
        app::store::change_rules(&pool, &operator, project, app::store::RuleChange::SetState(rule, state)).await?;
        let started = Instant::now();
        while arrivals.0.lock().unwrap().len() <= i {
            ensure!(started.elapsed() < Duration::from_secs(30), "change {i} was not told within 30 s");
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    let latencies: Vec<f64> = arrivals
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(arrived, at)| Some((*arrived - (*at)?).as_seconds_f64() * 1000.0))
        .collect();
    ensure!(latencies.len() == CHANGES, "{} of {CHANGES} notifications carried their time", latencies.len());
    report.add(&section, &format!("audit row to receiver, p50 of {CHANGES}"), percentile(latencies.clone(), 0.5), "ms");
    report.add(&section, &format!("audit row to receiver, p99 of {CHANGES}"), percentile(latencies, 0.99), "ms");

    // Throughput: many notifications queued at once, delivered by one process.
    arrivals.0.lock().unwrap().clear();
    sqlx::query(
        "insert into webhook_deliveries (endpoint_id, event, payload)
         select w.id, 'test', jsonb_build_object('at', now(), 'project', 'shop', 'message', 'bench')
         from webhook_endpoints w, generate_series(1, $1)",
    )
    .bind(QUEUED)
    .execute(&pool)
    .await?;
    let started = Instant::now();
    while (arrivals.0.lock().unwrap().len() as i64) < QUEUED {
        ensure!(started.elapsed() < Duration::from_secs(600), "the queue was not delivered within 10 minutes");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed().as_secs_f64();
    report.add(
        &section,
        &format!("{QUEUED} queued notifications delivered by one process"),
        QUEUED as f64 / took,
        "/s",
    );
    let (_, peak) = server.memory_mib();
    report.add(&section, "tagward serve peak RSS", peak, "MiB");
    server.stop().await?;
    pool.close().await;
    database.drop().await?;
    Ok(())
}

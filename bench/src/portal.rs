//! Every portal page rendered for a signed-in administrator at 64 connections; then 1,000 parallel
//! password guesses while decisions are measured (password hashing is bounded: the guesses must
//! neither starve decisions nor grow memory without bound).

use crate::report::Report;
use crate::run::{BenchDatabase, Process};
use crate::wrk::Wrk;
use crate::Args;
use anyhow::Context;
use std::collections::BTreeMap;
use std::time::Duration;

const ADDR: &str = "127.0.0.1:3901";
pub const PASSWORD: &str = "bench password 123";
const PAGES: [&str; 10] = [
    "/",
    "/projects/shop/policy",
    "/projects/shop/policy/immutability/new",
    "/projects/shop/members",
    "/projects/shop/activity",
    "/admin/users",
    "/admin/projects",
    "/admin/tokens",
    "/admin/activity",
    "/account",
];

pub async fn run(args: &Args, report: &mut Report) -> anyhow::Result<()> {
    let section = "portal (one project, 5 rules; signed-in administrator)";
    eprintln!("== {section}");
    let database = BenchDatabase::fresh(&args.database_url, &args.tagward).await?;
    database.cli(&args.tagward, &["project", "create", "shop"]).await?;
    for tags in ["v*.*.*", "release-*", "prod,stable", "{rc,beta}-*", "[0-9]*"] {
        let tags = format!("matching:{tags}");
        database.cli(&args.tagward, &["rule", "add", "shop", "--repos", "matching:**", "--tags", &tags]).await?;
    }
    let token = database.token(&args.tagward).await?;
    let base = format!("http://{ADDR}");
    let (server, cookie) = serve_signed_in(args, &database, ADDR).await?;
    let duration = Duration::from_secs(args.duration);
    for page in PAGES {
        let url = format!("{base}{page}");
        let load = Wrk::new(&url, 64, duration)
            .header(format!("Cookie: {cookie}"))
            .header("Accept: text/html".into())
            .run()
            .await?;
        report.add(section, &format!("{page}: pages/s"), load.requests_per_second, "req/s");
        report.add(section, &format!("{page}: p99"), load.p99_ms, "ms");
        if load.failures > 0 {
            report.add(section, &format!("{page}: failed responses"), load.failures as f64, "");
        }
    }

    let section = "1,000 parallel password guesses while decisions are measured (16 connections)";
    eprintln!("== {section}");
    let rss_before = server.memory_mib().0;
    let check_url = format!("{base}/api/v1/enforcement/check");
    let env =
        vec![("TOKEN", token), ("REPOSITORY", "shop/api".to_owned()), ("CURRENT", crate::decisions::PUSHED.to_owned())];
    let decisions = Wrk::new(&check_url, 16, Duration::from_secs(15)).script("bench/check.lua", env);
    let guesses = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let client = reqwest::Client::new();
        let answers = futures::future::join_all((0..1000).map(|i| {
            client.get(format!("{base}/api/v2.0/projects")).basic_auth(format!("guess{i}"), Some("wrong")).send()
        }))
        .await;
        let mut by_status = BTreeMap::new();
        for answer in answers {
            let status = answer.map_or(0, |response| response.status().as_u16());
            *by_status.entry(status).or_insert(0usize) += 1;
        }
        by_status
    };
    let (decisions, by_status) = tokio::join!(decisions.run(), guesses);
    let decisions = decisions?;
    for (status, count) in by_status {
        report.add(section, &format!("guesses answered {status}"), count as f64, "");
    }
    let (rss, peak) = server.memory_mib();
    report.add(section, "RSS before", rss_before, "MiB");
    report.add(section, "peak RSS", peak, "MiB");
    report.add(section, "RSS after", rss, "MiB");
    report.add(section, "decisions meanwhile: requests/s", decisions.requests_per_second, "req/s");
    report.add(section, "decisions meanwhile: p99", decisions.p99_ms, "ms");
    server.stop().await?;
    database.drop().await
}

/// `tagward serve` at `addr` over `database`, ready, and the session cookie of its bootstrap
/// administrator (signed in; the password guesses of `run` are unknown users, so the login
/// throttle is set out of their way).
pub async fn serve_signed_in(args: &Args, database: &BenchDatabase, addr: &str) -> anyhow::Result<(Process, String)> {
    let base = format!("http://{addr}");
    let mut server = Process::spawn(
        tokio::process::Command::new(&args.tagward)
            .args(["serve", "--addr", addr])
            .env("DATABASE_URL", &database.url)
            .env("RUST_LOG", "warn")
            .env("TAGWARD_COOKIE_SECURE", "false")
            .env("TAGWARD_BOOTSTRAP_ADMIN_PASSWORD", PASSWORD)
            .env("TAGWARD_LOGIN_ATTEMPTS_PER_MINUTE", "1000000"),
    )?;
    server.wait_ready(&format!("{base}/readyz"), Duration::from_secs(60)).await?;
    let cookie = sign_in(&base).await?;
    Ok((server, cookie))
}

/// Signs in as the bootstrap administrator; the session cookie as `name=value`.
pub async fn sign_in(base: &str) -> anyhow::Result<String> {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let response = client
        .post(format!("{base}/portal/login"))
        .header("Origin", base)
        .form(&[("username", "admin"), ("password", PASSWORD)])
        .send()
        .await?;
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|cookie| cookie.starts_with("tagward_session="))
        .and_then(|cookie| cookie.split(';').next())
        .map(str::to_owned)
        .context("signing in gave no session cookie")
}

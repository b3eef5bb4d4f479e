//! The decision API at a number of projects: start-to-ready, memory once every policy has answered,
//! checks per second (allowed and denied) against `/healthz` of the same process, latency at 64 and
//! 8 connections, denials written to the audit trail versus dropped, and how soon a rule change made
//! with the CLI is enforced.

use crate::report::{median, Report};
use crate::run::{metric, BenchDatabase, Process};
use crate::wrk::{Load, Wrk};
use crate::Args;
use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use std::time::{Duration, Instant};

const ADDR: &str = "127.0.0.1:3900";
/// The digest every benchmarked check pushes (`CURRENT` equal to it: a same-digest re-push, allowed).
pub const PUSHED: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const CURRENT: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

/// Projects `p0`… with 15 rules each, of the shapes projects write (semver, brace lists,
/// `team-*/**`, classes, excludes), each pattern list ending in one distinct per rule and, unless
/// `$1` is false (projects made from one template), per project (so no two projects share a
/// policy); `p0/api/web` with tag `v1.2.3` is immutable.
const SEED_PROJECTS: &str = "insert into projects (name) select 'p' || n from generate_series(0, $1 - 1) n";
const SEED_RULES: &str = r"
insert into immutability_rules (project_id, repositories_action, repositories, tags_action, tags, created_by, updated_by)
select p.id, 'matching',
       (array['**', 'api/**', '{web,worker}', 'team-*/**', 'base/*'])[1 + r % 5] || ',svc' || r
         || case when $1 then '-' || p.id else '' end,
       case when r % 4 = 3 then 'excluding' else 'matching' end,
       (array['v*.*.*', 'release-*', 'prod,stable', '{rc,beta}-*', '[0-9]*'])[1 + r % 5] || ',t' || r
         || case when $1 then '-' || p.id else '' end,
       'bench', 'bench'
from projects p, generate_series(0, 14) r";

/// Whether each project's rules differ from every other's, or all come from one template.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Rules {
    Distinct,
    /// Only start-up and memory are measured (the load figures are those of distinct rules).
    Template,
    /// Distinct rules, 9 of each project's 15 evaluating (those with `v*.*.*` or `api/**` stay
    /// enforced, so the benchmarked overwrite is still denied): what evaluating rules cost beside
    /// enforced ones.
    HalfEvaluating,
    /// Distinct rules, and each project holds 15 usable one-time exceptions for other tags: every
    /// denied check looks through them (and finds none, so it never reaches the database). Then
    /// also what using an exception costs: a decision that marks one used in the database.
    WithExceptions,
}

/// Exceptions each project holds in the [`Rules::WithExceptions`] section (for tags no check asks about).
const HELD_EXCEPTIONS: &str = r"
    insert into tag_exceptions (project_id, repository, tag, operation, reason, granted_by, expires_at, approved_by, approved_at)
    select p.id, p.name || '/api/web', 'v9.9.' || k, 'overwrite', 'bench', 'bench', now() + interval '1 hour', 'bench', now()
    from projects p, generate_series(1, 15) k where p.name like 'p%'";

/// Exceptions used one by one at the end of the [`Rules::WithExceptions`] section.
const USED_EXCEPTIONS: i64 = 200;

pub async fn run(args: &Args, projects: usize, rules: Rules, report: &mut Report) -> anyhow::Result<()> {
    let section = match rules {
        Rules::Distinct => format!("decisions, {projects} project(s) x 15 distinct rules"),
        Rules::Template => format!("decisions, {projects} project(s) x the same 15 rules (one template)"),
        Rules::HalfEvaluating => format!("decisions, {projects} project(s) x 15 distinct rules, 9 of them evaluating"),
        Rules::WithExceptions => {
            format!("decisions, {projects} project(s) x 15 distinct rules and 15 one-time exceptions for other tags")
        }
    };
    eprintln!("== {section}");
    let database = BenchDatabase::fresh(&args.database_url, &args.tagward).await?;
    let seeded = Instant::now();
    {
        let mut db = database.connect().await?;
        sqlx::query(SEED_PROJECTS).bind(projects as i64).execute(&mut db).await.context("seeding projects")?;
        let distinct = rules != Rules::Template;
        sqlx::query(SEED_RULES).bind(distinct).execute(&mut db).await.context("seeding rules")?;
        if rules == Rules::HalfEvaluating {
            sqlx::query(
                "update immutability_rules set state = 'evaluating'
                 where tags not like 'v*.*.*,%' and repositories not like 'api/**,%'",
            )
            .execute(&mut db)
            .await
            .context("setting rules to evaluate")?;
        }
        if rules == Rules::WithExceptions {
            sqlx::query(HELD_EXCEPTIONS).execute(&mut db).await.context("seeding exceptions")?;
        }
    }
    report.add(&section, "seeding the database", seeded.elapsed().as_secs_f64(), "s");
    database.cli(&args.tagward, &["project", "create", "propagation"]).await?;
    let token = database.token(&args.tagward).await?;

    let base = format!("http://{ADDR}");
    let mut server = Process::tagward(&args.tagward, &database.url, &["serve", "--addr", ADDR])?;
    let ready = server.wait_ready(&format!("{base}/readyz"), Duration::from_secs(600)).await?;
    report.add(&section, "start to ready", ready.as_secs_f64(), "s");
    report.add(&section, "RSS when ready", server.memory_mib().0, "MiB");

    let touched = Instant::now();
    touch_every_policy(&base, &token, projects).await?;
    report.add(&section, "every policy's first decision (16 at a time)", touched.elapsed().as_secs_f64(), "s");
    report.add(&section, "RSS once every policy has answered", server.memory_mib().0, "MiB");
    let compiled = metric(&base, "tagward_policy_cache_compiled_policies").await?;
    report.add(&section, "distinct compiled policies", compiled, "");
    if rules == Rules::Template {
        server.stop().await?;
        return database.drop().await;
    }

    let duration = Duration::from_secs(args.duration);
    let check_url = format!("{base}/api/v1/enforcement/check");
    let check = |connections, current: &str| {
        Wrk::new(&check_url, connections, duration).script(
            "bench/check.lua",
            vec![("TOKEN", token.clone()), ("CURRENT", current.to_owned()), ("REPOSITORY", "p0/api/web".into())],
        )
    };
    let healthz_url = format!("{base}/healthz");
    let dropped_before = metric(&base, "tagward_audit_denials_dropped_total").await?;
    let mut rounds = Vec::new();
    for _ in 0..args.rounds.max(1) {
        let healthz = Wrk::new(&healthz_url, 64, duration).run().await?;
        let allowed = check(64, PUSHED).run().await?;
        let denied = check(64, CURRENT).run().await?;
        let healthz_8 = Wrk::new(&healthz_url, 8, duration).run().await?;
        let allowed_8 = check(8, PUSHED).run().await?;
        rounds.push(Round { healthz, allowed, denied, healthz_8, allowed_8 });
    }
    let median_load = |load: fn(&Round) -> Load| Load {
        requests_per_second: median(rounds.iter().map(|r| load(r).requests_per_second).collect()),
        p50_ms: median(rounds.iter().map(|r| load(r).p50_ms).collect()),
        p99_ms: median(rounds.iter().map(|r| load(r).p99_ms).collect()),
        failures: rounds.iter().map(|r| load(r).failures).sum(),
    };
    let of = format!("median of {} rounds", rounds.len());
    add_load(report, &section, &format!("/healthz, 64 connections ({of})"), median_load(|r| r.healthz));
    add_load(
        report,
        &section,
        &format!("checks allowed (same-digest re-push), 64 connections ({of})"),
        median_load(|r| r.allowed),
    );
    add_load(report, &section, &format!("checks denied (overwrite), 64 connections ({of})"), median_load(|r| r.denied));
    add_load(report, &section, &format!("/healthz, 8 connections ({of})"), median_load(|r| r.healthz_8));
    add_load(report, &section, &format!("checks allowed, 8 connections ({of})"), median_load(|r| r.allowed_8));
    let ratios = |ratio: fn(&Round) -> f64, what: &str, report: &mut Report| {
        let values: Vec<f64> = rounds.iter().map(ratio).collect();
        let lowest = values.iter().copied().fold(f64::INFINITY, f64::min);
        let highest = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        report.add(&section, &format!("{what} (median round)"), median(values), "x");
        report.add(&section, &format!("{what}, lowest round"), lowest, "x");
        report.add(&section, &format!("{what}, highest round"), highest, "x");
    };
    ratios(
        |r| r.allowed.requests_per_second / r.healthz.requests_per_second,
        "allowed checks/s vs /healthz req/s",
        report,
    );
    ratios(
        |r| r.denied.requests_per_second / r.healthz.requests_per_second,
        "denied checks/s vs /healthz req/s",
        report,
    );
    ratios(|r| r.allowed.p99_ms / r.healthz.p99_ms, "allowed check p99 vs /healthz p99 (64 conn)", report);
    ratios(|r| r.denied.p99_ms / r.healthz.p99_ms, "denied check p99 vs /healthz p99 (64 conn)", report);

    // The recorder writes what it gathered within a fraction of a second.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rows, recorded): (i64, i64) =
        sqlx::query_as("select count(*), coalesce(sum(count), 0)::bigint from enforcement_denials")
            .fetch_one(&mut database.connect().await?)
            .await?;
    let dropped = metric(&base, "tagward_audit_denials_dropped_total").await? - dropped_before;
    let answered: f64 = rounds.iter().map(|r| r.denied.requests_per_second * duration.as_secs_f64()).sum();
    report.add(&section, "denials answered (wrk, 64 conn, all rounds)", answered, "");
    report.add(&section, "denials recorded (sum of counts)", recorded as f64, "");
    report.add(&section, "audit rows written for them", rows as f64, "rows");
    report.add(&section, "denials dropped", dropped, "");

    if rules == Rules::WithExceptions {
        exception_use(&database, &base, &token, projects, &section, report).await?;
    }
    report.add(
        &section,
        "rule change visible after the CLI returns",
        propagation(&database, args, &base, &token).await?,
        "ms",
    );
    let (rss, peak) = server.memory_mib();
    report.add(&section, "RSS after the load", rss, "MiB");
    report.add(&section, "peak RSS", peak, "MiB");
    server.stop().await?;
    database.drop().await
}

/// One run of each kind of request, back to back.
struct Round {
    healthz: Load,
    allowed: Load,
    denied: Load,
    healthz_8: Load,
    allowed_8: Load,
}

fn add_load(report: &mut Report, section: &str, what: &str, load: Load) {
    report.add(section, &format!("{what}: requests/s"), load.requests_per_second, "req/s");
    report.add(section, &format!("{what}: p50"), load.p50_ms, "ms");
    report.add(section, &format!("{what}: p99"), load.p99_ms, "ms");
    if load.failures > 0 {
        report.add(section, &format!("{what}: failed responses"), load.failures as f64, "");
    }
}

fn check_body(repository: &str, tag: &str, current: &str) -> serde_json::Value {
    serde_json::json!({
        "operation": "push", "repository": repository, "tag": tag, "digest": PUSHED, "current_digest": current,
    })
}

/// One decision for every project (a re-push of the same image to an immutable tag of each).
async fn touch_every_policy(base: &str, token: &str, projects: usize) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let url = format!("{base}/api/v1/enforcement/check");
    futures::stream::iter(0..projects)
        .map(|n| {
            let request =
                client.post(&url).bearer_auth(token).json(&check_body(&format!("p{n}/api/web"), "v1.2.3", PUSHED));
            async move {
                let verdict: serde_json::Value = request.send().await?.error_for_status()?.json().await?;
                anyhow::ensure!(verdict["project_known"] == true, "p{n} unknown: {verdict}");
                Ok(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<()>()
        .await
}

/// What a decision that uses an exception costs (one transaction in the database), against a
/// denied decision of the same shape, each asked one at a time [`USED_EXCEPTIONS`] times.
async fn exception_use(
    database: &BenchDatabase,
    base: &str,
    token: &str,
    projects: usize,
    section: &str,
    report: &mut Report,
) -> anyhow::Result<()> {
    sqlx::query(
        r"insert into tag_exceptions (project_id, repository, tag, operation, reason, granted_by, expires_at, approved_by, approved_at)
          select id, 'p0/api/web', 'v1.2.3', 'overwrite', 'bench', 'bench', now() + interval '1 hour', 'bench', now()
          from projects, generate_series(1, $1) where name = 'p0'",
    )
    .bind(USED_EXCEPTIONS)
    .execute(&mut database.connect().await?)
    .await?;
    let expected = (projects * 15) as f64 + USED_EXCEPTIONS as f64;
    let started = Instant::now();
    while metric(base, "tagward_usable_exceptions").await? < expected {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(30), "the exceptions never reached the cache");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let client = reqwest::Client::new();
    let url = format!("{base}/api/v1/enforcement/check");
    let timed = |allowed: bool| {
        let (client, url) = (&client, &url);
        async move {
            let mut took = Vec::new();
            for _ in 0..USED_EXCEPTIONS {
                let asked = Instant::now();
                let verdict: serde_json::Value = client
                    .post(url)
                    .bearer_auth(token)
                    .json(&check_body("p0/api/web", "v1.2.3", CURRENT))
                    .send()
                    .await?
                    .json()
                    .await?;
                took.push(asked.elapsed().as_secs_f64() * 1000.0);
                anyhow::ensure!(verdict["allowed"] == allowed, "expected allowed = {allowed}: {verdict}");
            }
            took.sort_by(f64::total_cmp);
            anyhow::Ok(took)
        }
    };
    let used = timed(true).await?;
    let denied = timed(false).await?;
    let p99 = |took: &[f64]| took.get(took.len() * 99 / 100).copied().unwrap_or(f64::NAN);
    report.add(section, "check that uses an exception, one at a time: p50", median(used.clone()), "ms");
    report.add(section, "check that uses an exception, one at a time: p99", p99(&used), "ms");
    report.add(section, "the same check denied (none left), one at a time: p50", median(denied.clone()), "ms");
    report.add(section, "the same check denied (none left), one at a time: p99", p99(&denied), "ms");
    Ok(())
}

/// Milliseconds from `tagward rule add` returning to the first decision that applies the rule.
async fn propagation(database: &BenchDatabase, args: &Args, base: &str, token: &str) -> anyhow::Result<f64> {
    let client = reqwest::Client::new();
    let url = format!("{base}/api/v1/enforcement/check");
    let body = check_body("propagation/app", "x1", CURRENT);
    database
        .cli(&args.tagward, &["rule", "add", "propagation", "--repos", "matching:**", "--tags", "matching:x*"])
        .await?;
    let added = Instant::now();
    loop {
        let verdict: serde_json::Value = client.post(&url).bearer_auth(token).json(&body).send().await?.json().await?;
        if verdict["allowed"] == false {
            return Ok(added.elapsed().as_secs_f64() * 1000.0);
        }
        anyhow::ensure!(added.elapsed() < Duration::from_secs(30), "the new rule was not enforced within 30 s");
    }
}

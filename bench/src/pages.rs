//! The portal's pages over a large inventory: a project with 15 rules whose inventory holds one
//! tag, then `--inventory-tags` tags (written straight to the database, as a sync would), each page
//! rendered for a signed-in administrator over one connection (what one person waits for), and the
//! Policy and Tags tabs at 8 connections (a team opening them at once: counts are kept, never refused).

use crate::report::Report;
use crate::run::BenchDatabase;
use crate::wrk::Wrk;
use crate::Args;
use std::time::Duration;

const ADDR: &str = "127.0.0.1:3902";
const PAGES: [&str; 5] = [
    "/projects/shop/policy",
    "/projects/shop/tags",
    "/projects/shop/tags?repositories=team3/**&tags=v1.5*",
    "/projects/shop/members",
    "/projects/shop/activity",
];

pub async fn run(args: &Args, report: &mut Report) -> anyhow::Result<()> {
    let database = BenchDatabase::fresh(&args.database_url, &args.tagward).await?;
    database.cli(&args.tagward, &["project", "create", "shop"]).await?;
    for i in 0..15 {
        let tags = format!("matching:release-{i}.*,v{i}.*");
        database.cli(&args.tagward, &["rule", "add", "shop", "--repos", "matching:**", "--tags", &tags]).await?;
    }
    let base = format!("http://{ADDR}");
    let (server, cookie) = crate::portal::serve_signed_in(args, &database, ADDR).await?;
    let duration = Duration::from_secs(args.duration);
    let mut written = 0;
    for tags in [1, args.inventory_tags] {
        let section = format!("pages at {tags} tags (15 rules; one connection, then the Policy and Tags tabs at 8)");
        eprintln!("== {section}");
        write_tags(&database, written, tags).await?;
        written = tags;
        let client = reqwest::Client::new();
        for page in PAGES {
            // The first view after the inventory moved starts the count that later views reuse.
            let first = std::time::Instant::now();
            let response = client.get(format!("{base}{page}")).header("Cookie", &cookie).send().await?;
            anyhow::ensure!(response.status().is_success(), "{page}: {}", response.status());
            report.add(&section, &format!("{page}: first view"), first.elapsed().as_secs_f64() * 1000.0, "ms");
            let load = page_load(&base, page, &cookie, 1, duration).await?;
            report.add(&section, &format!("{page}: p50"), load.p50_ms, "ms");
            report.add(&section, &format!("{page}: p99"), load.p99_ms, "ms");
        }
        for (name, page) in [("Policy tab", PAGES[0]), ("Tags tab", PAGES[1])] {
            let team = page_load(&base, page, &cookie, 8, duration).await?;
            report.add(&section, &format!("{name} at 8 connections: p50"), team.p50_ms, "ms");
            report.add(&section, &format!("{name} at 8 connections: refused or failed"), team.failures as f64, "");
        }
    }
    server.stop().await?;
    database.drop().await
}

async fn page_load(
    base: &str,
    page: &str,
    cookie: &str,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<crate::wrk::Load> {
    let url = format!("{base}{page}");
    let load = Wrk::new(&url, connections, duration)
        .header(format!("Cookie: {cookie}"))
        .header("Accept: text/html".into())
        .run()
        .await?;
    anyhow::ensure!(load.failures == 0 || connections > 1, "{page}: {} failed responses", load.failures);
    Ok(load)
}

/// Adds tags `from..to` to the inventory (100 repositories, `v<i%15>.<i>.0` and `build-<i>`
/// alternately, so about half are immutable), in one statement as a sync page would.
async fn write_tags(database: &BenchDatabase, from: usize, to: usize) -> anyhow::Result<()> {
    let mut connection = database.connect().await?;
    sqlx::query(
        r"insert into registry_tags (project, repository, tag, digest, pushed_at, seen_at, source)
          select 'shop', 'shop/team' || (i % 100), case when i % 2 = 0 then 'v' || (i % 15) || '.' || i || '.0'
              else 'build-' || i end, 'sha256:' || repeat('a', 64), now(), now(), 'sync'
          from generate_series($1::bigint, $2::bigint - 1) as i",
    )
    .bind(from as i64)
    .bind(to as i64)
    .execute(&mut connection)
    .await?;
    // The steady state autovacuum reaches after such a write, reached now: otherwise its pass over
    // the new rows runs during the measurements that follow and is counted against the pages.
    sqlx::query("vacuum analyze registry_tags").execute(&mut connection).await?;
    Ok(())
}

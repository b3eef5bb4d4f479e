//! `scripts/dev bench`: measures a release build of tagward the way a registry uses it and prints
//! one table plus a JSON file with every figure. Numbers, not a test: nothing here passes or fails
//! on a figure. Throughput is always reported next to `/healthz` of the same process in the same
//! run (the machine's own ceiling for an HTTP answer), since absolute numbers depend on the box.

mod attachments;
mod decisions;
mod events;
mod gateway;
mod held;
mod inventory;
mod pages;
mod portal;
mod pushes;
mod report;
mod run;
mod webhooks;
mod wrk;

use clap::{Parser, ValueEnum};
use report::Report;
use std::path::PathBuf;

/// Counts what the bench itself holds (the manifest cache's weight, in `held`).
#[global_allocator]
static ALLOCATOR: held::Counting = held::Counting;

#[derive(Parser)]
#[command(name = "tagward-bench", about = "Benchmarks a release build of tagward (not a test)")]
pub struct Args {
    /// The tagward binary to measure (a release build).
    #[arg(long, env = "TAGWARD_BIN")]
    tagward: PathBuf,
    /// A PostgreSQL database URL of a role that may create databases; `tagward_bench` is made
    /// (and dropped) on that server.
    #[arg(long, env = "ADMIN_DATABASE_URL")]
    database_url: String,
    /// Numbers of projects (15 distinct rules each) to measure decisions at.
    #[arg(long, value_delimiter = ',', default_value = "1,10000,100000")]
    projects: Vec<usize>,
    /// Numbers of projects made from one template (the same 15 rules) to measure memory at.
    #[arg(long, value_delimiter = ',', default_value = "10000")]
    template_projects: Vec<usize>,
    /// Tags the registry holds for the inventory benchmark (and the inventory holds for the pages one).
    #[arg(long, default_value_t = 100_000)]
    inventory_tags: usize,
    /// Seconds of each wrk run.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Rounds of `/healthz`, allowed and denied checks (at 64, then 8 connections), one after the other:
    /// this machine's speed drifts by a third from one run to the next, so ratios are taken within
    /// a round and the median round is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Which parts to run (all by default).
    #[arg(long, value_delimiter = ',')]
    only: Vec<Part>,
    /// Where to write every figure as JSON.
    #[arg(long, default_value = "bench-results.json")]
    json: PathBuf,
    /// A name for this run, kept in the JSON (e.g. the commit).
    #[arg(long, default_value = "")]
    label: String,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Part {
    Decisions,
    Portal,
    Gateway,
    Held,
    Inventory,
    Pages,
    Events,
    Attachments,
    Pushes,
    Webhooks,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let wants = |part| args.only.is_empty() || args.only.contains(&part);
    let mut report = Report::new(&args.label);
    if wants(Part::Decisions) {
        for &projects in &args.projects {
            decisions::run(&args, projects, decisions::Rules::Distinct, &mut report).await?;
        }
        for &projects in &args.template_projects {
            decisions::run(&args, projects, decisions::Rules::Template, &mut report).await?;
        }
        if let Some(&projects) = args.projects.first() {
            decisions::run(&args, projects, decisions::Rules::HalfEvaluating, &mut report).await?;
            decisions::run(&args, projects, decisions::Rules::WithExceptions, &mut report).await?;
        }
    }
    if wants(Part::Portal) {
        portal::run(&args, &mut report).await?;
    }
    if wants(Part::Gateway) {
        gateway::run(&args, &mut report).await?;
    }
    if wants(Part::Held) {
        held::run(&args, &mut report).await?;
    }
    if wants(Part::Inventory) {
        inventory::run(&args, &mut report).await?;
    }
    if wants(Part::Pages) {
        pages::run(&args, &mut report).await?;
    }
    if wants(Part::Events) {
        events::run(&args, &mut report).await?;
    }
    if wants(Part::Attachments) {
        attachments::run(&args, &mut report).await?;
    }
    if wants(Part::Pushes) {
        pushes::run(&args, &mut report).await?;
    }
    if wants(Part::Webhooks) {
        webhooks::run(&args, &mut report).await?;
    }
    report.print();
    report.write(&args.json)?;
    eprintln!("every figure: {}", args.json.display());
    Ok(())
}

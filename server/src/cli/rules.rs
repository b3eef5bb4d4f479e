//! `tagward rule` and `tagward policy`: a project's tag immutability rules, one change at a time
//! or as a whole file.

use super::{operator, OpenProject, ProjectArgs};
use anyhow::Context;
use app::policy::RuleState;
use app::store::{change_rules, change_rules_together, project_rules, RuleChange};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Print the project's rules as YAML (rule order; each rule's sentence as a comment).
    Export {
        #[command(flatten)]
        project: ProjectArgs,
    },
    /// Make the project's rules what the file says: prints the difference, then applies it in one
    /// transaction (same validation, limit and audit as every other change), or nothing of it.
    Apply {
        #[command(flatten)]
        project: ProjectArgs,
        /// The policy file (`-` for standard input).
        #[arg(short = 'f', long = "file")]
        file: std::path::PathBuf,
        /// Only print the difference.
        #[arg(long)]
        dry_run: bool,
        /// Let the file's webhooks point at loopback, private or link-local addresses.
        #[arg(long = "webhook-allow-private", env = "TAGWARD_WEBHOOK_ALLOW_PRIVATE", default_value_t = false, action = clap::ArgAction::Set)]
        allow_private: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RuleCommand {
    /// Add a rule, e.g. `--repos 'matching:**' --tags 'excluding:rc,test,nightly'`.
    Add {
        #[command(flatten)]
        project: ProjectArgs,
        /// `<matching|excluding>:<comma-separated repository patterns>`
        #[arg(long = "repos")]
        repositories: String,
        /// `<matching|excluding>:<comma-separated tag patterns>`
        #[arg(long)]
        tags: String,
        /// Start it evaluating: it denies nothing, and what it would have denied is recorded
        /// (promote it with `rule promote`).
        #[arg(long)]
        evaluate: bool,
    },
    /// Set a rule to evaluate: it stops denying, and what it would have denied is recorded.
    Evaluate {
        #[command(flatten)]
        project: ProjectArgs,
        id: i64,
    },
    /// Make an evaluating rule enforced.
    Promote {
        #[command(flatten)]
        project: ProjectArgs,
        id: i64,
    },
    /// List a project's rules: id, state and sentence, one a line.
    List {
        #[command(flatten)]
        project: ProjectArgs,
    },
    /// Delete a rule.
    Remove {
        #[command(flatten)]
        project: ProjectArgs,
        id: i64,
    },
    /// Disable a rule (it stays, but no longer makes anything immutable).
    Disable {
        #[command(flatten)]
        project: ProjectArgs,
        id: i64,
    },
    /// Enable a disabled rule.
    Enable {
        #[command(flatten)]
        project: ProjectArgs,
        id: i64,
    },
}

pub async fn rule(command: RuleCommand) -> anyhow::Result<()> {
    let (RuleCommand::Add { project, .. }
    | RuleCommand::List { project }
    | RuleCommand::Remove { project, .. }
    | RuleCommand::Disable { project, .. }
    | RuleCommand::Enable { project, .. }
    | RuleCommand::Evaluate { project, .. }
    | RuleCommand::Promote { project, .. }) = &command;
    let OpenProject { pool, id: project_id, .. } = project.open().await?;
    let (change, done) = match command {
        RuleCommand::List { .. } => {
            for rule in project_rules(&pool, project_id).await? {
                println!("{}\t{}\t{}", rule.id, rule.state, rule.sentence());
            }
            return Ok(());
        }
        RuleCommand::Add { repositories, tags, evaluate, .. } => {
            let spec = parse_rule(&repositories, &tags)?;
            let state = if evaluate { RuleState::Evaluating } else { RuleState::Enforced };
            let id = change_rules(&pool, &operator(), project_id, RuleChange::Create(&spec, state)).await?;
            let evaluating = if evaluate { " (evaluating: it denies nothing until promoted)" } else { "" };
            println!("added rule {id}{evaluating}: {}", spec.sentence());
            return Ok(());
        }
        RuleCommand::Remove { id, .. } => (RuleChange::Delete(id), "removed"),
        RuleCommand::Disable { id, .. } => (RuleChange::SetState(id, RuleState::Disabled), "disabled"),
        RuleCommand::Enable { id, .. } => (RuleChange::SetState(id, RuleState::Enforced), "enabled"),
        RuleCommand::Evaluate { id, .. } => (RuleChange::SetState(id, RuleState::Evaluating), "set to evaluate"),
        RuleCommand::Promote { id, .. } => (RuleChange::Promote(id), "promoted (now enforced)"),
    };
    let id = change_rules(&pool, &operator(), project_id, change).await?;
    println!("{done} rule {id}");
    Ok(())
}

pub async fn policy(command: PolicyCommand) -> anyhow::Result<()> {
    let (PolicyCommand::Export { project } | PolicyCommand::Apply { project, .. }) = &command;
    let OpenProject { pool, id: project_id, name: project } = project.open().await?;
    let stored = project_rules(&pool, project_id).await?;
    let webhooks = app::store::project_webhooks(&pool, project_id).await?;
    let PolicyCommand::Apply { file, dry_run, allow_private, .. } = command else {
        print!("{}", crate::policy_file::export(project.as_str(), &stored, &webhooks));
        return Ok(());
    };
    let (name, text) = if file.as_os_str() == "-" {
        ("<stdin>".to_owned(), std::io::read_to_string(std::io::stdin())?)
    } else {
        let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        (file.display().to_string(), text)
    };
    let plan = crate::policy_file::plan(&name, &text, project.as_str(), &stored)?;
    // Every webhook entry is checked before anything changes.
    let webhook_steps = match &plan.webhooks {
        Some(entries) => super::policy_webhooks::plan(entries, &webhooks, allow_private).await?,
        None => Vec::new(),
    };
    print!("{}", plan.describe(project.as_str()));
    print!("{}", super::policy_webhooks::describe(&webhook_steps));
    let before = app::store::StoredRule::policy_rules(&stored);
    let impact =
        app::inventory::counting::impact(&pool, None, project.as_str(), &before, &plan.rules_after(&before), None)
            .await
            .map_err(|error| anyhow::anyhow!("counting the impact on existing tags: {error}"))?;
    println!("{}", crate::policy_file::describe_impact(&impact));
    if dry_run || (plan.steps.is_empty() && webhook_steps.is_empty()) {
        println!("{}", if dry_run { "dry run: nothing changed" } else { "nothing to change" });
        return Ok(());
    }
    if !plan.steps.is_empty() {
        change_rules_together(&pool, &operator(), project_id, Some(&stored), &plan.changes()).await?;
    }
    super::policy_webhooks::apply(&pool, project_id, &webhook_steps).await?;
    println!("applied {} change(s)", plan.steps.len() + webhook_steps.len());
    Ok(())
}

/// `--repos matching:**` and `--tags excluding:rc,test` into a validated rule.
fn parse_rule(repositories: &str, tags: &str) -> anyhow::Result<app::policy::RuleSpec> {
    let side = |flag: &str, value: &str| {
        value
            .split_once(':')
            .map(|(action, patterns)| (action.to_owned(), patterns.to_owned()))
            .ok_or_else(|| anyhow::anyhow!("`{flag}` must be `<matching|excluding>:<patterns>`, got `{value}`"))
    };
    let (repositories_action, repositories) = side("--repos", repositories)?;
    let (tags_action, tags) = side("--tags", tags)?;
    let input = app::policy::RuleInput { repositories_action, repositories, tags_action, tags };
    Ok(app::policy::RuleSpec::parse(&input)?)
}

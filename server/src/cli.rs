//! The `tagward` command line: serving, migrating and bootstrapping users and projects.

use crate::config::{DatabaseConfig, ServeConfig};
use anyhow::Context;
use app::account::{NewPassword, Role, UserName};
use app::policy::{ProjectName, RuleState};
use clap::{Parser, Subcommand};
use std::io::BufRead;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "tagward", version, about = "Tag immutability for container registries")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the portal (applies pending migrations first).
    Serve(Box<ServeConfig>),
    /// Stand in front of an OCI registry and refuse pushes and deletes that break tag immutability.
    Gateway(Box<crate::gateway::GatewayConfig>),
    /// Apply pending database migrations and exit.
    Migrate(DatabaseConfig),
    /// Manage portal users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage projects and their members.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Manage a project's tag immutability rules (same validation and limits as the portal).
    #[command(subcommand)]
    Rule(RuleCommand),
    /// Manage the service tokens registry backends present to the decision API.
    #[command(subcommand)]
    Token(TokenCommand),
    /// A project's rules as a YAML file: export them, or apply a file (all changes or none).
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Map the identity provider's groups to roles (applied at each member's next sign-in).
    #[command(subcommand)]
    Group(GroupCommand),
    /// One-time exceptions: let one refused overwrite or delete of a protected tag through, once.
    #[command(subcommand)]
    Exception(ExceptionCommand),
    /// Exit 0 when the tagward in this container answers `/healthz` with 200, else 1: the container
    /// image's HEALTHCHECK (the image has no shell and no curl).
    Healthcheck {
        /// What to ask; by default `/healthz` on loopback at the port of `TAGWARD_ADDR` (`serve`),
        /// or of `TAGWARD_GATEWAY_LISTEN` when only that is set (`gateway`).
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it once (its last line is the token); only its hash is stored.
    /// Without `--scope` it may only ask for decisions (what a registry backend needs).
    Create {
        /// Who holds it, e.g. `registry-eu`: lowercase letters, digits, `.`, `_`, `-`.
        name: String,
        /// What it may do: `decisions`, `rules:read`, `rules:write`, `events` (repeat or comma-separate).
        #[arg(long = "scope", value_delimiter = ',')]
        scopes: Vec<String>,
        /// Limit its rule scopes to these projects (repeat or comma-separate); default: every project.
        #[arg(long = "project", value_delimiter = ',')]
        projects: Vec<String>,
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// Revoke a token: every tagward process refuses it within moments.
    Revoke {
        name: String,
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// List the tokens: name, scopes, state, created, last used.
    List {
        #[command(flatten)]
        database: DatabaseConfig,
    },
}

#[derive(Debug, Subcommand)]
pub enum ExceptionCommand {
    /// Allow one change of REFERENCE (`shop/api:v1`, or `shop/api@sha256:…` for one digest) that the
    /// rules refuse: the first matching push or delete, through any gateway or the decision API,
    /// uses it up. Prints its id.
    Grant {
        reference: String,
        /// `overwrite` (push another digest to the tag) or `delete` (the tag, what only it holds,
        /// or the digest named).
        #[arg(long)]
        operation: String,
        /// For an overwrite: the only digest it may push (default: any).
        #[arg(long = "to-digest", default_value = "")]
        to_digest: String,
        /// Why (required; it is shown wherever the exception is).
        #[arg(long)]
        reason: String,
        /// How long it is usable: e.g. `30m`, `1h` (the default), at most `24h`.
        #[arg(long = "expires-in", default_value = "")]
        expires_in: String,
        #[command(flatten)]
        exceptions: crate::config::ExceptionsConfig,
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// List a project's exceptions, newest first: id, status, change, who granted it and why,
    /// until when, and its use.
    List {
        project: String,
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// Revoke exception ID before it is used.
    Revoke {
        project: String,
        id: i64,
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// Approve exception ID (four-eyes: someone other than who granted it).
    Approve {
        project: String,
        id: i64,
        #[command(flatten)]
        exceptions: crate::config::ExceptionsConfig,
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// Whether PROJECT takes exceptions: `allowed`, `four-eyes` (a second admin approves each) or
    /// `off`.
    Mode {
        project: String,
        mode: String,
        #[command(flatten)]
        database: DatabaseConfig,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Members of GROUP get ROLE: `system-admin`, or with `--project` a project role (admin,
    /// maintainer, developer, guest), e.g. `tagward group map shop-devs developer --project shop`.
    Map {
        /// The group as the provider's groups claim names it.
        group: String,
        role: String,
        #[arg(long)]
        project: Option<String>,
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// Remove mapping ID (as `group list` shows it).
    Unmap {
        id: i64,
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// List the mappings: id, group and what it grants, one a line.
    List {
        #[command(flatten)]
        database: DatabaseConfig,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Print the project's rules as YAML (rule order; each rule's sentence as a comment).
    Export {
        project: String,
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// Make the project's rules what the file says: prints the difference, then applies it in one
    /// transaction (same validation, limit and audit as every other change), or nothing of it.
    Apply {
        project: String,
        /// The policy file (`-` for standard input).
        #[arg(short = 'f', long = "file")]
        file: std::path::PathBuf,
        /// Only print the difference.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        database: DatabaseConfig,
    },
}

#[derive(Debug, Subcommand)]
pub enum RuleCommand {
    /// Add a rule, e.g. `--repos 'matching:**' --tags 'excluding:rc,test,nightly'`.
    Add {
        project: String,
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
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// Set a rule to evaluate: it stops denying, and what it would have denied is recorded.
    Evaluate {
        project: String,
        id: i64,
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// Make an evaluating rule enforced.
    Promote {
        project: String,
        id: i64,
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// List a project's rules: id, state and sentence, one a line.
    List {
        project: String,
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// Delete a rule.
    Remove {
        project: String,
        id: i64,
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// Disable a rule (it stays, but no longer makes anything immutable).
    Disable {
        project: String,
        id: i64,
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// Enable a disabled rule.
    Enable {
        project: String,
        id: i64,
        #[command(flatten)]
        database: DatabaseConfig,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password (at least 12 characters) is read from the first line of stdin.
    Create {
        /// User name: lowercase letters, digits, `.`, `_`, `-`.
        name: String,
        /// Make the user a system administrator.
        #[arg(long)]
        system_admin: bool,
        #[command(flatten)]
        database: DatabaseConfig,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project.
    Create {
        /// Project name: lowercase letters and digits separated by `.`, `_` or `-`.
        name: String,
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// Add a user to a project with a role (or change their role).
    AddMember {
        project: String,
        user: String,
        /// admin, maintainer, developer or guest.
        role: String,
        #[command(flatten)]
        database: DatabaseConfig,
    },
}

/// Parses the command line, runs it, and turns a failure into a message and exit code 1.
pub async fn run() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    match execute(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

pub async fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(config) => {
            let application = crate::Application::build(*config).await?;
            // On stdout, for whoever started it (with `--addr …:0` this is how the port is learnt).
            println!("tagward portal listening on http://{}", application.address());
            application.run_until_stopped().await
        }
        Command::Gateway(config) => {
            let gateway = crate::gateway::GatewayServer::build(*config).await?;
            println!("tagward gateway listening on http://{}", gateway.address());
            gateway.run_until_stopped().await
        }
        Command::Healthcheck { url } => healthcheck(url).await,
        Command::Migrate(database) => {
            let pool = database.connect().await?;
            app::store::migrate(&pool).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::User(UserCommand::Create { name, system_admin, database }) => {
            let name = UserName::parse(&name).map_err(anyhow::Error::msg)?;
            let password = read_password()?;
            let pool = database.connect().await?;
            let hash = app::password::hash_password(password).await?;
            app::store::create_user(&pool, &operator(), &name, &hash, system_admin).await?;
            let kind = if system_admin { "system administrator" } else { "user" };
            println!("created {kind} `{name}`");
            Ok(())
        }
        Command::Rule(command) => rule_command(command).await,
        Command::Policy(command) => policy_command(command).await,
        Command::Token(command) => token_command(command).await,
        Command::Group(command) => group_command(command).await,
        Command::Exception(command) => exception_command(command).await,
        Command::Project(ProjectCommand::Create { name, database }) => {
            let name = ProjectName::parse(&name)?;
            let pool = database.connect().await?;
            app::store::create_project(&pool, &operator(), &name).await?;
            println!("created project `{name}`");
            Ok(())
        }
        Command::Project(ProjectCommand::AddMember { project, user, role, database }) => {
            let project = ProjectName::parse(&project)?;
            let user = UserName::parse(&user).map_err(anyhow::Error::msg)?;
            let role = Role::parse(&role).map_err(anyhow::Error::msg)?;
            let pool = database.connect().await?;
            app::store::change_member(&pool, &operator(), &project, &user, Some(role)).await?;
            println!("`{user}` is now {role} of project `{project}`");
            Ok(())
        }
    }
}

/// Whoever runs a command: the operator, named in the audit trail by their login.
fn operator() -> app::principal::Principal {
    app::principal::Principal::command_line()
}

async fn token_command(command: TokenCommand) -> anyhow::Result<()> {
    use app::account::{TokenName, TokenSecret};
    match command {
        TokenCommand::Create { name, scopes, projects, database } => {
            let name = TokenName::parse(&name).map_err(anyhow::Error::msg)?;
            let grant = app::account::TokenGrant::parse(&scopes, &projects).map_err(anyhow::Error::msg)?;
            let pool = database.connect().await?;
            let secret = TokenSecret::generate();
            app::store::create_token(&pool, &operator(), &name, &secret, &grant).await?;
            println!("created token `{name}` ({}); it is shown this once, store it now:", grant.describe());
            println!("{}", secret.expose());
        }
        TokenCommand::Revoke { name, database } => {
            let name = TokenName::parse(&name).map_err(anyhow::Error::msg)?;
            let pool = database.connect().await?;
            app::store::revoke_token(&pool, &operator(), &name).await?;
            println!("revoked token `{name}`");
        }
        TokenCommand::List { database } => {
            let pool = database.connect().await?;
            let format = |at: Option<time::OffsetDateTime>| {
                at.and_then(|at| at.format(&time::format_description::well_known::Rfc3339).ok())
                    .unwrap_or_else(|| "-".to_owned())
            };
            for token in app::store::tokens(&pool).await? {
                let state = if token.revoked_at.is_some() { "revoked" } else { "active " };
                let migrated = if token.migrated_full_access { " [pre-scopes: full access]" } else { "" };
                println!(
                    "{}\t{}{migrated}\t{state}\tcreated {} by {}\tlast used {}",
                    token.name,
                    token.grant.describe(),
                    format(Some(token.created_at)),
                    token.created_by,
                    format(token.last_used_at)
                );
            }
        }
    }
    Ok(())
}

async fn exception_command(command: ExceptionCommand) -> anyhow::Result<()> {
    use app::policy::{ExceptionGrant, ExceptionInput, ExceptionsMode};
    match command {
        ExceptionCommand::Grant { reference, operation, to_digest, reason, expires_in, exceptions, database } => {
            let (repository, target) = match reference.split_once('@') {
                Some((repository, digest)) => (repository, digest),
                None => reference.rsplit_once(':').ok_or_else(|| {
                    anyhow::anyhow!("reference: `{reference}` is neither repository:tag nor repository@digest")
                })?,
            };
            let project = ProjectName::parse(repository.split('/').next().unwrap_or_default()).map_err(|error| {
                anyhow::anyhow!("reference: `{reference}` does not start with a project name ({error})")
            })?;
            let input = ExceptionInput {
                repository: repository.to_owned(),
                target: target.to_owned(),
                operation,
                to_digest,
                reason,
                expires_in,
            };
            let grant = ExceptionGrant::parse(project.as_str(), &input)?;
            let pool = database.connect().await?;
            let project_id = app::store::project_id(&pool, &project).await?;
            let granted =
                app::store::grant_exception(&pool, &operator(), project_id, exceptions.exceptions, &grant).await?;
            println!(
                "exception {}: one {}, usable for {} minutes{}",
                granted.id,
                grant.scope.summary(),
                grant.lifetime_minutes,
                if granted.needs_approval { " once another admin approves it (four-eyes)" } else { "" }
            );
        }
        ExceptionCommand::List { project, database } => {
            let project = ProjectName::parse(&project)?;
            let pool = database.connect().await?;
            let project_id = app::store::project_id(&pool, &project).await?;
            let now = time::OffsetDateTime::now_utc();
            let at = |when: time::OffsetDateTime| {
                when.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
            };
            for listing in app::store::project_exceptions(&pool, project_id, 1000).await? {
                let status = listing.status(now);
                let what = match (&listing.used_for, &listing.revoked_by) {
                    (Some(used_for), _) => format!(
                        "used {} by {} for {used_for}",
                        listing.used_at.map(at).unwrap_or_default(),
                        listing.used_by.as_deref().unwrap_or("?")
                    ),
                    (None, Some(revoked_by)) => format!("revoked by {revoked_by}"),
                    _ => format!("until {}", at(listing.expires_at)),
                };
                println!(
                    "{}\t{}\t{}\tgranted by {}: {}\t{what}",
                    listing.id,
                    status.as_str(),
                    listing.change(),
                    listing.granted_by,
                    listing.reason
                );
            }
        }
        ExceptionCommand::Revoke { project, id, database } => {
            let project = ProjectName::parse(&project)?;
            let pool = database.connect().await?;
            let project_id = app::store::project_id(&pool, &project).await?;
            app::store::revoke_exception(&pool, &operator(), project_id, id).await?;
            println!("revoked exception {id}; no process uses it from now on");
        }
        ExceptionCommand::Approve { project, id, exceptions, database } => {
            let project = ProjectName::parse(&project)?;
            let pool = database.connect().await?;
            let project_id = app::store::project_id(&pool, &project).await?;
            app::store::approve_exception(&pool, &operator(), project_id, exceptions.exceptions, id).await?;
            println!("approved exception {id}; it can be used now");
        }
        ExceptionCommand::Mode { project, mode, database } => {
            let project = ProjectName::parse(&project)?;
            let mode = ExceptionsMode::parse(&mode)?;
            let pool = database.connect().await?;
            let project_id = app::store::project_id(&pool, &project).await?;
            app::store::set_project_exceptions(&pool, &operator(), project_id, mode).await?;
            println!("project `{project}` exceptions: {}", mode.as_str());
        }
    }
    Ok(())
}

async fn group_command(command: GroupCommand) -> anyhow::Result<()> {
    use app::identity::{GroupGrant, GroupName};
    match command {
        GroupCommand::Map { group, role, project, database } => {
            let group = GroupName::parse(&group).map_err(anyhow::Error::msg)?;
            let grant = GroupGrant::parse(project.as_deref(), &role).map_err(anyhow::Error::msg)?;
            let pool = database.connect().await?;
            let id = app::store::add_group_mapping(&pool, &operator(), &group, &grant).await?;
            println!("mapping {id}: members of group `{group}` are {grant} from their next sign-in");
        }
        GroupCommand::Unmap { id, database } => {
            let pool = database.connect().await?;
            app::store::remove_group_mapping(&pool, &operator(), id).await?;
            println!("removed mapping {id}; its members lose what it granted at their next sign-in");
        }
        GroupCommand::List { database } => {
            let pool = database.connect().await?;
            for mapping in app::store::group_mappings(&pool).await? {
                println!("{}\t{}\t{}", mapping.id, mapping.group, mapping.grant);
            }
        }
    }
    Ok(())
}

async fn rule_command(command: RuleCommand) -> anyhow::Result<()> {
    use app::store::{change_rules, project_id, project_rules, RuleChange};
    let operator = operator();
    let (project, database) = match &command {
        RuleCommand::Add { project, database, .. }
        | RuleCommand::List { project, database }
        | RuleCommand::Remove { project, database, .. }
        | RuleCommand::Disable { project, database, .. }
        | RuleCommand::Enable { project, database, .. }
        | RuleCommand::Evaluate { project, database, .. }
        | RuleCommand::Promote { project, database, .. } => (ProjectName::parse(project)?, database),
    };
    let pool = database.connect().await?;
    let project_id = project_id(&pool, &project).await?;
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
            let id = change_rules(&pool, &operator, project_id, RuleChange::Create(&spec, state)).await?;
            let evaluating = if evaluate { " (evaluating: it denies nothing until promoted)" } else { "" };
            println!("added rule {id}{evaluating}: {}", spec.sentence());
            return Ok(());
        }
        RuleCommand::Remove { id, .. } => (RuleChange::Delete(id), "removed"),
        RuleCommand::Disable { id, .. } => (RuleChange::SetState(id, RuleState::Disabled), "disabled"),
        RuleCommand::Enable { id, .. } => (RuleChange::SetState(id, RuleState::Enforced), "enabled"),
        RuleCommand::Evaluate { id, .. } => (RuleChange::SetState(id, RuleState::Evaluating), "set to evaluate"),
        RuleCommand::Promote { id, .. } => {
            let rules = project_rules(&pool, project_id).await?;
            match rules.iter().find(|rule| rule.id == id) {
                Some(rule) if rule.state != RuleState::Evaluating => {
                    anyhow::bail!("rule {id} is {}, not evaluating; `rule enable` enables a disabled rule", rule.state)
                }
                _ => (RuleChange::SetState(id, RuleState::Enforced), "promoted (now enforced)"),
            }
        }
    };
    let id = change_rules(&pool, &operator, project_id, change).await?;
    println!("{done} rule {id}");
    Ok(())
}

async fn policy_command(command: PolicyCommand) -> anyhow::Result<()> {
    use app::store::{change_rules_together, project_id, project_rules};
    let (PolicyCommand::Export { project, database } | PolicyCommand::Apply { project, database, .. }) = &command;
    let project = ProjectName::parse(project)?;
    let pool = database.connect().await?;
    let project_id = project_id(&pool, &project).await?;
    let stored = project_rules(&pool, project_id).await?;
    let PolicyCommand::Apply { file, dry_run, .. } = command else {
        print!("{}", crate::policy_file::export(project.as_str(), &stored));
        return Ok(());
    };
    let (name, text) = if file.as_os_str() == "-" {
        ("<stdin>".to_owned(), std::io::read_to_string(std::io::stdin())?)
    } else {
        let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        (file.display().to_string(), text)
    };
    let plan = crate::policy_file::plan(&name, &text, project.as_str(), &stored)?;
    print!("{}", plan.describe(project.as_str()));
    let before = app::store::StoredRule::policy_rules(&stored);
    let impact = app::inventory::counting::impact(&pool, project.as_str(), &before, &plan.rules_after(&before), None)
        .await
        .map_err(|error| anyhow::anyhow!("counting the impact on existing tags: {error}"))?;
    println!("{}", crate::policy_file::describe_impact(&impact));
    if dry_run || plan.steps.is_empty() {
        println!("{}", if dry_run { "dry run: nothing changed" } else { "nothing to change" });
        return Ok(());
    }
    change_rules_together(&pool, &operator(), project_id, Some(&stored), &plan.changes()).await?;
    println!("applied {} change(s)", plan.steps.len());
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

/// The first line of stdin, without its line ending.
fn read_password() -> anyhow::Result<NewPassword> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("reading the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']);
    NewPassword::parse(password).map_err(anyhow::Error::msg)
}

/// `/healthz` of every listener this container may run: the gateway's (`TAGWARD_GATEWAY_LISTEN`)
/// when set, and the portal's (`TAGWARD_ADDR`, default `127.0.0.1:3000`), on loopback. One image
/// runs either, with both set in its environment; only the running one answers.
fn local_healthz() -> Vec<String> {
    let gateway = std::env::var("TAGWARD_GATEWAY_LISTEN").ok();
    let serve = std::env::var("TAGWARD_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    gateway
        .into_iter()
        .chain([serve])
        .filter_map(|listen| listen.parse::<std::net::SocketAddr>().ok())
        .map(|address| {
            let ip = if address.ip().is_unspecified() { std::net::Ipv4Addr::LOCALHOST.into() } else { address.ip() };
            format!("http://{}/healthz", std::net::SocketAddr::new(ip, address.port()))
        })
        .collect()
}

/// Succeeds when one of the URLs (`--url`, else [`local_healthz`]) answers 2xx within 3 s.
async fn healthcheck(url: Option<String>) -> anyhow::Result<()> {
    use hyper_util::client::legacy::Client;
    let client =
        Client::builder(hyper_util::rt::TokioExecutor::new()).build_http::<http_body_util::Empty<bytes::Bytes>>();
    let mut failures = Vec::new();
    for url in url.map_or_else(local_healthz, |url| vec![url]) {
        let Ok(uri) = url.parse::<hyper::Uri>() else {
            failures.push(format!("`{url}` is not a URL"));
            continue;
        };
        match tokio::time::timeout(std::time::Duration::from_secs(3), client.get(uri)).await {
            Ok(Ok(response)) if response.status().is_success() => return Ok(()),
            Ok(Ok(response)) => failures.push(format!("{url} answered {}", response.status())),
            Ok(Err(error)) => failures.push(format!("{url}: {error}")),
            Err(_) => failures.push(format!("{url} did not answer within 3 s")),
        }
    }
    anyhow::bail!("unhealthy: {}", failures.join("; "))
}

//! The `tagward` command line: serving, migrating, and managing users, projects, rules, tokens,
//! group mappings and exceptions (one file per command group), each through the same store
//! operation, checks and audit as the portal.

mod audit;
mod exceptions;
mod groups;
mod health;
mod policy_webhooks;
mod rules;
mod tokens;
mod users;
mod webhooks;

use crate::config::{DatabaseConfig, ServeConfig};
use anyhow::Context;
use app::account::NewPassword;
use app::policy::ProjectName;
use clap::{Args, Parser, Subcommand};
use exceptions::ExceptionCommand;
use groups::GroupCommand;
use rules::{PolicyCommand, RuleCommand};
use sqlx::PgPool;
use std::io::BufRead;
use std::process::ExitCode;
use tokens::TokenCommand;
use users::{ProjectCommand, UserCommand};

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
    /// A project's webhooks: where its events are sent, signed.
    #[command(subcommand)]
    Webhook(webhooks::WebhookCommand),
    /// The audit trail, for a SIEM: `tagward audit export`.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Exit 0 when the tagward in this container answers `/healthz` with 200, else 1: the container
    /// image's HEALTHCHECK (the image has no shell and no curl).
    Healthcheck {
        /// What to ask; by default `/healthz` on loopback at the port of `TAGWARD_ADDR` (`serve`),
        /// or of `TAGWARD_GATEWAY_LISTEN` when only that is set (`gateway`).
        #[arg(long)]
        url: Option<String>,
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
        Command::Healthcheck { url } => health::healthcheck(url).await,
        Command::Migrate(database) => {
            let pool = database.connect().await?;
            app::store::migrate(&pool).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::User(command) => users::user(command).await,
        Command::Project(command) => users::project(command).await,
        Command::Rule(command) => rules::rule(command).await,
        Command::Policy(command) => rules::policy(command).await,
        Command::Token(command) => tokens::run(command).await,
        Command::Group(command) => groups::run(command).await,
        Command::Exception(command) => exceptions::run(command).await,
        Command::Webhook(command) => webhooks::run(command).await,
        Command::Audit(command) => audit::run(command).await,
    }
}

/// Whoever runs a command: the operator, named in the audit trail by their login.
fn operator() -> app::principal::Principal {
    app::principal::Principal::command_line()
}

/// A command about one project: the project and the database it is in.
#[derive(Debug, Args)]
pub struct ProjectArgs {
    /// The project, e.g. `shop`.
    project: String,
    #[command(flatten)]
    database: DatabaseConfig,
}

/// A project a command acts on, found.
pub struct OpenProject {
    pub pool: PgPool,
    pub name: ProjectName,
    pub id: i64,
}

impl ProjectArgs {
    /// Parses the name, connects, and finds the project (or says it does not exist).
    pub async fn open(&self) -> anyhow::Result<OpenProject> {
        let name = ProjectName::parse(&self.project)?;
        let pool = self.database.connect().await?;
        let id = app::store::project_id(&pool, &name).await?;
        Ok(OpenProject { pool, name, id })
    }
}

/// The first line of stdin, without its line ending.
fn read_password() -> anyhow::Result<NewPassword> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("reading the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']);
    NewPassword::parse(password).map_err(anyhow::Error::msg)
}

//! `tagward token`: the service tokens registry backends and automation present.

use super::operator;
use crate::config::DatabaseConfig;
use clap::Subcommand;

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
        /// Limit its rule and audit scopes to these projects (repeat or comma-separate); default: every project.
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

pub async fn run(command: TokenCommand) -> anyhow::Result<()> {
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

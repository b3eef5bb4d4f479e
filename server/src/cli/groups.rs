//! `tagward group`: the identity provider's groups mapped to roles.

use super::operator;
use crate::config::DatabaseConfig;
use clap::Subcommand;

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

pub async fn run(command: GroupCommand) -> anyhow::Result<()> {
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

//! `tagward user` and `tagward project`: people, projects and who is what in them.

use super::{operator, read_password};
use crate::config::DatabaseConfig;
use app::account::{Role, UserName};
use app::policy::ProjectName;
use clap::Subcommand;

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

pub async fn user(command: UserCommand) -> anyhow::Result<()> {
    let UserCommand::Create { name, system_admin, database } = command;
    let name = UserName::parse(&name).map_err(anyhow::Error::msg)?;
    let password = read_password()?;
    let pool = database.connect().await?;
    let hash = app::password::hash_password(password).await?;
    app::store::create_user(&pool, &operator(), &name, &hash, system_admin).await?;
    let kind = if system_admin { "system administrator" } else { "user" };
    println!("created {kind} `{name}`");
    Ok(())
}

pub async fn project(command: ProjectCommand) -> anyhow::Result<()> {
    match command {
        ProjectCommand::Create { name, database } => {
            let name = ProjectName::parse(&name)?;
            let pool = database.connect().await?;
            app::store::create_project(&pool, &operator(), &name).await?;
            println!("created project `{name}`");
        }
        ProjectCommand::AddMember { project, user, role, database } => {
            let project = ProjectName::parse(&project)?;
            let user = UserName::parse(&user).map_err(anyhow::Error::msg)?;
            let role = Role::parse(&role).map_err(anyhow::Error::msg)?;
            let pool = database.connect().await?;
            app::store::change_member(&pool, &operator(), &project, &user, Some(role)).await?;
            println!("`{user}` is now {role} of project `{project}`");
        }
    }
    Ok(())
}

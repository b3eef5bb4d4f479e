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
    /// List the users: name, how they sign in (local or provider), system administrator, active,
    /// last sign-in.
    List {
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// Deactivate a user: their sessions end at once and they cannot sign in (the last active
    /// system administrator is kept).
    Deactivate {
        name: String,
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// Reactivate a deactivated user.
    Activate {
        name: String,
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// Set a local user's password (read from the first line of stdin, as `create` does); their
    /// sessions end.
    ResetPassword {
        name: String,
        #[command(flatten)]
        database: DatabaseConfig,
    },
    /// Make a user a system administrator (`true`) or take it (`false`; the last active one is kept).
    SetSystemAdmin {
        name: String,
        #[arg(action = clap::ArgAction::Set)]
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

fn user_name(name: &str) -> anyhow::Result<UserName> {
    UserName::parse(name).map_err(|why| anyhow::anyhow!("user name `{name}`: {why}"))
}

pub async fn user(command: UserCommand) -> anyhow::Result<()> {
    let me = operator();
    match command {
        UserCommand::Create { name, system_admin, database } => {
            let name = user_name(&name)?;
            let password = read_password()?;
            let pool = database.connect().await?;
            let hash = app::password::hash_password(password).await?;
            app::store::create_user(&pool, &me, &name, &hash, system_admin).await?;
            let kind = if system_admin { "system administrator" } else { "user" };
            println!("created {kind} `{name}`");
        }
        UserCommand::List { database } => {
            let pool = database.connect().await?;
            me.may_administer().map_err(anyhow::Error::msg)?;
            println!("NAME\tSOURCE\tE-MAIL\tSYSTEM ADMIN\tACTIVE\tLAST SIGN-IN");
            for user in app::store::users(&pool).await? {
                let yes = |flag: bool| if flag { "yes" } else { "no" };
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    user.name,
                    user.source,
                    user.email.as_deref().unwrap_or("-"),
                    yes(user.is_system_admin),
                    yes(user.is_active),
                    user.last_sign_in_at.map_or_else(|| "never".to_owned(), app::shown_time)
                );
            }
        }
        UserCommand::Deactivate { name, database } => {
            let name = user_name(&name)?;
            app::store::set_user_active(&database.connect().await?, &me, &name, false).await?;
            println!("deactivated `{name}`");
        }
        UserCommand::Activate { name, database } => {
            let name = user_name(&name)?;
            app::store::set_user_active(&database.connect().await?, &me, &name, true).await?;
            println!("reactivated `{name}`");
        }
        UserCommand::ResetPassword { name, database } => {
            let name = user_name(&name)?;
            let password = read_password()?;
            let pool = database.connect().await?;
            let hash = app::password::hash_password(password).await?;
            app::store::set_password(&pool, &me, &name, &hash).await?;
            println!("set the password of `{name}`; their sessions have ended");
        }
        UserCommand::SetSystemAdmin { name, system_admin, database } => {
            let name = user_name(&name)?;
            app::store::set_system_admin(&database.connect().await?, &me, &name, system_admin).await?;
            let now = if system_admin { "is a system administrator" } else { "is no system administrator" };
            println!("`{name}` {now}");
        }
    }
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

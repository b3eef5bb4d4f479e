//! `tagward exception`: one-time exceptions, granted, listed, approved, revoked, and a project's
//! setting for them.

use super::{operator, OpenProject, ProjectArgs};
use crate::config::DatabaseConfig;
use app::policy::ProjectName;
use clap::Subcommand;

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
        #[command(flatten)]
        project: ProjectArgs,
    },
    /// Revoke exception ID before it is used.
    Revoke {
        #[command(flatten)]
        project: ProjectArgs,
        id: i64,
    },
    /// Approve exception ID (four-eyes: someone other than who granted it).
    Approve {
        #[command(flatten)]
        project: ProjectArgs,
        id: i64,
        #[command(flatten)]
        exceptions: crate::config::ExceptionsConfig,
    },
    /// Whether PROJECT takes exceptions: `allowed`, `four-eyes` (a second admin approves each) or
    /// `off`.
    Mode {
        #[command(flatten)]
        project: ProjectArgs,
        mode: String,
    },
}

pub async fn run(command: ExceptionCommand) -> anyhow::Result<()> {
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
        ExceptionCommand::List { project } => {
            let OpenProject { pool, id: project_id, .. } = project.open().await?;
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
        ExceptionCommand::Revoke { project, id } => {
            let OpenProject { pool, id: project_id, .. } = project.open().await?;
            app::store::revoke_exception(&pool, &operator(), project_id, id).await?;
            println!("revoked exception {id}; no process uses it from now on");
        }
        ExceptionCommand::Approve { project, id, exceptions } => {
            let OpenProject { pool, id: project_id, .. } = project.open().await?;
            app::store::approve_exception(&pool, &operator(), project_id, exceptions.exceptions, id).await?;
            println!("approved exception {id}; it can be used now");
        }
        ExceptionCommand::Mode { project, mode } => {
            let mode = ExceptionsMode::parse(&mode)?;
            let OpenProject { pool, id: project_id, name } = project.open().await?;
            app::store::set_project_exceptions(&pool, &operator(), project_id, mode).await?;
            println!("project `{name}` exceptions: {}", mode.as_str());
        }
    }
    Ok(())
}

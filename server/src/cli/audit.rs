//! `tagward audit export`: the audit trail as NDJSON, as `GET /api/v1/audit` serves it, from the
//! start, a time, or a cursor; each line carries the cursor to resume after it.

use crate::config::DatabaseConfig;
use app::policy::ProjectName;
use app::store::{StreamCursor, StreamFilter};
use clap::Subcommand;
use std::io::Write;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Print the trail (changes and denials) as NDJSON, oldest first.
    Export {
        /// Only this project's entries.
        #[arg(long)]
        project: Option<String>,
        /// Only entries at or after this time (RFC 3339, e.g. `2026-12-01T00:00:00Z`).
        #[arg(long)]
        since: Option<String>,
        /// Only entries after this cursor (a line's `cursor`).
        #[arg(long)]
        after: Option<String>,
        #[command(flatten)]
        database: DatabaseConfig,
    },
}

/// Entries read per query.
const PAGE: i64 = 1000;

pub async fn run(command: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::Export { project, since, after, database } = command;
    let projects =
        project.map(|name| ProjectName::parse(&name).map(|name| vec![name.as_str().to_owned()])).transpose()?;
    let since = since
        .map(|since| {
            time::OffsetDateTime::parse(&since, &time::format_description::well_known::Rfc3339).map_err(|_| {
                app::policy::FieldError::new("--since", &since, "is not an RFC 3339 time such as 2026-12-01T00:00:00Z")
            })
        })
        .transpose()?;
    let mut cursor = after.map(|after| StreamCursor::parse(&after)).transpose()?;
    let pool = database.connect().await?;
    let filter = StreamFilter { projects, since };
    let mut out = std::io::stdout().lock();
    loop {
        let entries = app::store::audit_stream(&pool, cursor, &filter, PAGE).await?;
        for entry in &entries {
            serde_json::to_writer(&mut out, entry)?;
            out.write_all(b"\n")?;
        }
        match entries.last() {
            Some(last) if entries.len() as i64 == PAGE => cursor = Some(StreamCursor::parse(&last.cursor)?),
            _ => break,
        }
    }
    out.flush()?;
    Ok(())
}

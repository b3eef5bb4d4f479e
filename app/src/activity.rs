//! The audit trail as pages show it: who changed what and when, and every denied push or delete.

use crate::error::AppError;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// Entries a page shows.
pub const PAGE_SIZE: u32 = 25;

/// The kinds the trail can be filtered by (the part of an entry's kind before the dot).
pub const KINDS: [(&str, &str); 11] = [
    ("rule", "Rule changes"),
    ("denial", "Denials"),
    ("evaluation", "Would have been denied (evaluating rules)"),
    ("member", "Members"),
    ("project", "Projects"),
    ("user", "Users"),
    ("token", "Service tokens"),
    ("drift", "Changes behind tagward"),
    ("group", "Group mappings"),
    ("exception", "Exceptions (granted, used, expired, revoked)"),
    ("webhook", "Webhooks"),
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityRow {
    pub at: String,
    pub actor: String,
    /// e.g. `rule.update`, `denial.push`
    pub kind: String,
    pub project: Option<String>,
    /// What happened, in one line.
    pub summary: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityView {
    pub entries: Vec<ActivityRow>,
    pub page: u32,
    pub pages: u32,
    pub total: i64,
    /// Denials at a glance (when the view is not filtered to other kinds).
    pub denials: Option<DenialChart>,
}

/// How many days the denial chart covers.
pub const DENIAL_DAYS: i32 = 30;

/// Denials per day over the last [`DENIAL_DAYS`] days, and who and what was denied most.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DenialChart {
    /// Oldest first, one per day (`2026-11-27`), days without denials included.
    pub days: Vec<Counted>,
    pub total: i64,
    pub top_repositories: Vec<Counted>,
    pub top_callers: Vec<Counted>,
}

/// A name (a day, a repository, a caller) and its count of denials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counted {
    pub name: String,
    pub count: i64,
}

/// One line saying what an audit entry records (the Activity tab's, a Slack message's).
#[cfg(feature = "ssr")]
pub use ssr::summary;

#[cfg(feature = "ssr")]
mod ssr {
    use crate::policy::{RuleInput, RuleSpec};
    use crate::store::ActivityEntry;
    use crate::store::{AuditKind, DriftRecord, ExceptionRecord};
    use serde_json::Value;

    /// A rule snapshot (as `StoredRule::snapshot` writes it) as its summary.
    fn rule(snapshot: &Value) -> Option<String> {
        let field = |name: &str| snapshot.get(name).and_then(Value::as_str).map(str::to_owned);
        let input = RuleInput {
            repositories_action: field("repositories_action")?,
            repositories: field("repositories")?,
            tags_action: field("tags_action")?,
            tags: field("tags")?,
        };
        Some(RuleSpec::parse(&input).map(|spec| spec.summary()).unwrap_or_else(|_| format!("{input:?}")))
    }

    /// ` (from the identity provider's groups)` for a change a sign-in made from groups.
    fn by_groups(value: Option<&Value>) -> &'static str {
        let from_groups = value.and_then(|v| v.get("from_groups")).and_then(Value::as_bool).unwrap_or(false);
        if from_groups {
            " (from the identity provider's groups)"
        } else {
            ""
        }
    }

    /// `system administrator` or `developer of shop`, from a group mapping's snapshot.
    fn mapped_role(value: Option<&Value>) -> String {
        match value.and_then(|v| v.get("project")).and_then(Value::as_str) {
            Some(project) => format!("{} of {project}", text(value, "role")),
            None => "system administrator".to_owned(),
        }
    }

    fn text(value: Option<&Value>, name: &str) -> String {
        value.and_then(|v| v.get(name)).and_then(Value::as_str).unwrap_or("?").to_owned()
    }

    /// What a drift entry says, e.g. "found shop/web:v1 moved from sha256:aaaaaaaaaaaa… to
    /// sha256:bbbbbbbbbbbb… behind tagward (a registry event)".
    fn drift_summary(kind: AuditKind, after: Option<&Value>) -> String {
        let Some(record) = after.and_then(|after| serde_json::from_value::<DriftRecord>(after.clone()).ok()) else {
            return format!("{}: a change behind tagward, not described", kind.as_str());
        };
        let short = crate::format::short_digest;
        let reference = format!("{}:{}", record.repository, record.tag);
        let held = short(record.held.as_str());
        let change = match &record.found {
            Some(found) => format!("moved from {held} to {}", short(found.as_str())),
            None => format!("gone (it held {held})"),
        };
        let how = record.found_by.described();
        match kind {
            AuditKind::DriftRestore => format!("put {reference} back on {held} (it had {change})"),
            AuditKind::DriftAcknowledge => format!("acknowledged that {reference} {change} behind tagward"),
            _ => format!("found {reference} {change} behind tagward ({how})"),
        }
    }

    /// What an exception entry says, e.g. "used exception 4 (granted by ann: “INC-7”) for …".
    fn exception_summary(kind: AuditKind, after: Option<&Value>) -> String {
        let Some(record) = after.and_then(|after| serde_json::from_value::<ExceptionRecord>(after.clone()).ok()) else {
            return format!("{}: an exception, not described", kind.as_str());
        };
        let shown = |value: &Option<String>| value.clone().unwrap_or_else(|| "?".to_owned());
        let (id, granted_by, reason) = (record.id, shown(&record.granted_by), shown(&record.reason));
        match kind {
            AuditKind::ExceptionGrant => format!(
                "granted exception {id}: one {}, until {} (“{reason}”){}",
                shown(&record.change),
                shown(&record.expires_at),
                if record.needs_approval == Some(true) { "; it waits for another admin's approval" } else { "" }
            ),
            AuditKind::ExceptionApprove => format!("approved exception {id} (granted by {granted_by})"),
            AuditKind::ExceptionRevoke => format!("revoked exception {id}"),
            AuditKind::ExceptionUse => {
                format!("used exception {id} (granted by {granted_by}: “{reason}”) for {}", shown(&record.used_for))
            }
            _ => format!("exception {id} (granted by {granted_by}: “{reason}”) expired unused"),
        }
    }

    /// One line saying what an entry records.
    pub fn summary(entry: &ActivityEntry) -> String {
        let (before, after) = (entry.before.as_ref(), entry.after.as_ref());
        let Some(kind) = AuditKind::parse(&entry.kind) else {
            return denial_summary(entry);
        };
        match kind {
            AuditKind::RuleCreate
            | AuditKind::RuleUpdate
            | AuditKind::RuleEnable
            | AuditKind::RuleDisable
            | AuditKind::RuleEvaluate
            | AuditKind::RulePromote
            | AuditKind::RuleDelete => rule_summary(kind, entry.rule_id, before, after),
            AuditKind::MemberAdd => {
                format!("added {} as {}{}", text(after, "user"), text(after, "role"), by_groups(after))
            }
            AuditKind::MemberRole => {
                let (user, from, to) = (text(after, "user"), text(before, "role"), text(after, "role"));
                format!("changed {user} from {from} to {to}{}", by_groups(after))
            }
            AuditKind::MemberRemove => {
                format!("removed {} ({}){}", text(before, "user"), text(before, "role"), by_groups(before))
            }
            AuditKind::UserCreate => format!("created user {}", text(after, "user")),
            AuditKind::UserPasswordReset => format!("reset the password of {}", text(after, "user")),
            AuditKind::UserPasswordChange => "changed their password".to_owned(),
            AuditKind::UserDeactivate => format!("deactivated {}", text(after, "user")),
            AuditKind::UserActivate => format!("reactivated {}", text(after, "user")),
            AuditKind::ProjectCreate => format!("created project {}", text(after, "project")),
            AuditKind::ProjectDelete => format!("deleted project {}", text(before, "project")),
            AuditKind::TokenCreate => format!("created service token {}", text(after, "token")),
            AuditKind::TokenRevoke => format!("revoked service token {}", text(before, "token")),
            AuditKind::DriftFound | AuditKind::DriftAcknowledge | AuditKind::DriftRestore => drift_summary(kind, after),
            AuditKind::UserSystemAdmin => {
                let granted = after.and_then(|a| a.get("system_admin")).and_then(Value::as_bool).unwrap_or(false);
                let user = text(after, "user");
                let change = if granted {
                    format!("made {user} a system administrator")
                } else {
                    format!("took system administrator from {user}")
                };
                format!("{change}{}", by_groups(after))
            }
            AuditKind::GroupMappingAdd => format!("mapped group {} to {}", text(after, "group"), mapped_role(after)),
            AuditKind::GroupMappingRemove => {
                format!("removed the mapping of group {} to {}", text(before, "group"), mapped_role(before))
            }
            AuditKind::ExceptionGrant
            | AuditKind::ExceptionApprove
            | AuditKind::ExceptionRevoke
            | AuditKind::ExceptionUse
            | AuditKind::ExceptionExpire => exception_summary(kind, after),
            AuditKind::ProjectExceptions => format!(
                "set the project's exceptions from {} to {}",
                text(before, "exceptions"),
                text(after, "exceptions")
            ),
            AuditKind::WebhookCreate => format!("added {}", webhook(after)),
            AuditKind::WebhookChange => format!("changed {} → {}", webhook(before), webhook(after)),
            AuditKind::WebhookRemove => format!("removed {}", webhook(before)),
            AuditKind::WebhookResume => format!("resumed the paused {}", webhook(after)),
        }
    }

    /// A denial (or a fold of many alike) as the trail keeps it: its message, and how often.
    fn denial_summary(entry: &ActivityEntry) -> String {
        let message = entry.message.clone().unwrap_or_else(|| entry.kind.clone());
        if entry.count <= 1 {
            return message;
        }
        let time = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
        let when = |at: time::OffsetDateTime| at.format(&time).unwrap_or_default();
        format!(
            "{message} (denied {} times between {} and {} UTC)",
            crate::format::thousands(entry.count.unsigned_abs()),
            when(entry.first_at),
            when(entry.at)
        )
    }

    /// A rule change: what the rule was or became.
    fn rule_summary(kind: AuditKind, rule_id: Option<i64>, before: Option<&Value>, after: Option<&Value>) -> String {
        let id = rule_id.map(|id| format!("rule {id}")).unwrap_or_default();
        let (was, now) = (before.and_then(rule).unwrap_or_default(), after.and_then(rule).unwrap_or_default());
        match kind {
            AuditKind::RuleCreate => format!("added {id}: {now}"),
            AuditKind::RuleUpdate => format!("changed {id}: {was} → {now}"),
            AuditKind::RuleEnable => format!("enabled {id}: {now}"),
            AuditKind::RuleDisable => format!("disabled {id}: {now}"),
            AuditKind::RuleEvaluate => format!("set {id} to evaluate (it denies nothing): {now}"),
            AuditKind::RulePromote => format!("promoted {id} from evaluating to enforced: {now}"),
            // RuleDelete, the one rule kind left.
            _ => format!("deleted {id}: {was}"),
        }
    }

    /// A webhook as the trail keeps it: `webhook 3 to https://… (cloudevents: drift.found, denial)`.
    fn webhook(value: Option<&Value>) -> String {
        let id = value.and_then(|v| v.get("id")).and_then(Value::as_i64).unwrap_or_default();
        let events: Vec<&str> = value
            .and_then(|v| v.get("events"))
            .and_then(Value::as_array)
            .map(|events| events.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        format!("webhook {id} to {} ({}: {})", text(value, "url"), text(value, "format"), events.join(", "))
    }
}

/// One page of the audit trail of `project` (any member may look), or of every project (`None`;
/// system administrators only), optionally of one kind.
#[server(prefix = "/portal", endpoint = "activity")]
pub async fn activity(
    project: Option<String>,
    kind: Option<String>,
    page: Option<u32>,
) -> Result<ActivityView, AppError> {
    let pool = crate::auth::ssr::state()?.pool.clone();
    crate::auth::ssr::answered(
        async {
            let project_id = match project.filter(|p| !p.is_empty()) {
                Some(project) => Some(crate::projects::ssr::visible(&project).await?.id),
                None => {
                    crate::admin::ssr::require_admin().await?;
                    None
                }
            };
            let kind = kind.filter(|k| !k.is_empty());
            if let Some(kind) = &kind {
                if !KINDS.iter().any(|(known, _)| known == kind) {
                    let known: Vec<&str> = KINDS.iter().map(|(known, _)| *known).collect();
                    let why = format!("is not one of {}", known.join(", "));
                    return Err(crate::policy::FieldError::new("kind", kind, why).into());
                }
            }
            let page = page.unwrap_or(1).max(1);
            // In i64: `page` is any u32 a URL can carry, and (page - 1) * 25 would overflow u32.
            let offset = i64::from(page - 1) * i64::from(PAGE_SIZE);
            let rows = crate::store::activity(&pool, project_id, kind.as_deref(), i64::from(PAGE_SIZE), offset).await?;
            let total = rows.first().map_or(0, |row| row.total);
            let pages =
                u32::try_from((total + i64::from(PAGE_SIZE) - 1) / i64::from(PAGE_SIZE)).unwrap_or(u32::MAX).max(1);
            let entries = rows
                .iter()
                .map(|row| ActivityRow {
                    at: row
                        .at
                        .format(time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC"))
                        .unwrap_or_default(),
                    actor: row.actor.clone(),
                    kind: row.kind.clone(),
                    project: row.project.clone(),
                    summary: ssr::summary(row),
                })
                .collect();
            let denials = match kind.as_deref() {
                None | Some("denial") => {
                    let counts = crate::store::denial_counts(&pool, project_id, DENIAL_DAYS, 5).await?;
                    let counted = |rows: Vec<(String, i64)>| {
                        rows.into_iter().map(|(name, count)| Counted { name, count }).collect::<Vec<_>>()
                    };
                    let days: Vec<Counted> = counts
                        .per_day
                        .into_iter()
                        .map(|(day, count)| Counted { name: day.to_string(), count })
                        .collect();
                    Some(DenialChart {
                        total: days.iter().map(|day| day.count).sum(),
                        days,
                        top_repositories: counted(counts.top_repositories),
                        top_callers: counted(counts.top_callers),
                    })
                }
                Some(_) => None,
            };
            Ok(ActivityView { entries, page, pages, total, denials })
        }
        .await,
    )
}

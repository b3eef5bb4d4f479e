//! The audit trail: every change, written by the operation that makes it, in its transaction;
//! and the denials the enforcement points report.

use super::StoreError;
use crate::principal::Principal;
use sqlx::PgExecutor;

/// Every kind of change the audit trail records; stored as [`AuditKind::as_str`] (`rule.create`).
/// Denials are recorded apart (`denial.push`, `denial.delete`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditKind {
    RuleCreate,
    RuleUpdate,
    RuleEnable,
    RuleDisable,
    /// A rule set to evaluate (it denies nothing and records what it would have denied).
    RuleEvaluate,
    /// An evaluating rule made enforced.
    RulePromote,
    RuleDelete,
    MemberAdd,
    MemberRole,
    MemberRemove,
    UserCreate,
    UserPasswordReset,
    UserPasswordChange,
    UserActivate,
    UserDeactivate,
    ProjectCreate,
    ProjectDelete,
    TokenCreate,
    TokenRevoke,
    /// An immutable tag found moved or gone behind tagward's back.
    DriftFound,
    DriftAcknowledge,
    DriftRestore,
    /// A user's system administrator role, granted or taken by their provider groups.
    UserSystemAdmin,
    GroupMappingAdd,
    GroupMappingRemove,
    /// A one-time exception granted (usable at once, or after a second admin's approval).
    ExceptionGrant,
    ExceptionApprove,
    ExceptionRevoke,
    /// A request an exception let through (the actor is who asked: a token's name, `gateway`).
    ExceptionUse,
    /// Whether a project takes exceptions (allowed, four-eyes, off).
    ProjectExceptions,
    /// An exception that ran out unused. Nobody writes it: the trail derives it from the
    /// exception's own row once its time is up.
    ExceptionExpire,
    WebhookCreate,
    WebhookChange,
    WebhookRemove,
    /// A paused webhook (too many failures in a row) resumed.
    WebhookResume,
}

impl AuditKind {
    pub const ALL: [AuditKind; 35] = [
        AuditKind::RuleCreate,
        AuditKind::RuleUpdate,
        AuditKind::RuleEnable,
        AuditKind::RuleDisable,
        AuditKind::RuleEvaluate,
        AuditKind::RulePromote,
        AuditKind::RuleDelete,
        AuditKind::MemberAdd,
        AuditKind::MemberRole,
        AuditKind::MemberRemove,
        AuditKind::UserCreate,
        AuditKind::UserPasswordReset,
        AuditKind::UserPasswordChange,
        AuditKind::UserActivate,
        AuditKind::UserDeactivate,
        AuditKind::ProjectCreate,
        AuditKind::ProjectDelete,
        AuditKind::TokenCreate,
        AuditKind::TokenRevoke,
        AuditKind::DriftFound,
        AuditKind::DriftAcknowledge,
        AuditKind::DriftRestore,
        AuditKind::UserSystemAdmin,
        AuditKind::GroupMappingAdd,
        AuditKind::GroupMappingRemove,
        AuditKind::ExceptionGrant,
        AuditKind::ExceptionApprove,
        AuditKind::ExceptionRevoke,
        AuditKind::ExceptionUse,
        AuditKind::ProjectExceptions,
        AuditKind::ExceptionExpire,
        AuditKind::WebhookCreate,
        AuditKind::WebhookChange,
        AuditKind::WebhookRemove,
        AuditKind::WebhookResume,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::RuleCreate => "rule.create",
            AuditKind::RuleUpdate => "rule.update",
            AuditKind::RuleEnable => "rule.enable",
            AuditKind::RuleDisable => "rule.disable",
            AuditKind::RuleEvaluate => "rule.evaluate",
            AuditKind::RulePromote => "rule.promote",
            AuditKind::RuleDelete => "rule.delete",
            AuditKind::MemberAdd => "member.add",
            AuditKind::MemberRole => "member.role",
            AuditKind::MemberRemove => "member.remove",
            AuditKind::UserCreate => "user.create",
            AuditKind::UserPasswordReset => "user.password_reset",
            AuditKind::UserPasswordChange => "user.password_change",
            AuditKind::UserActivate => "user.activate",
            AuditKind::UserDeactivate => "user.deactivate",
            AuditKind::ProjectCreate => "project.create",
            AuditKind::ProjectDelete => "project.delete",
            AuditKind::TokenCreate => "token.create",
            AuditKind::TokenRevoke => "token.revoke",
            AuditKind::DriftFound => "drift.found",
            AuditKind::DriftAcknowledge => "drift.acknowledge",
            AuditKind::DriftRestore => "drift.restore",
            AuditKind::UserSystemAdmin => "user.system_admin",
            AuditKind::GroupMappingAdd => "group.add",
            AuditKind::GroupMappingRemove => "group.remove",
            AuditKind::ExceptionGrant => "exception.grant",
            AuditKind::ExceptionApprove => "exception.approve",
            AuditKind::ExceptionRevoke => "exception.revoke",
            AuditKind::ExceptionUse => "exception.use",
            AuditKind::ProjectExceptions => "project.exceptions",
            AuditKind::ExceptionExpire => "exception.expire",
            AuditKind::WebhookCreate => "webhook.create",
            AuditKind::WebhookChange => "webhook.change",
            AuditKind::WebhookRemove => "webhook.remove",
            AuditKind::WebhookResume => "webhook.resume",
        }
    }

    /// The kind a stored entry names, if it is a change (not a denial).
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == value)
    }
}

/// One change, as the audit trail records it.
#[derive(Debug)]
pub(super) struct AuditEntry {
    pub project_id: Option<i64>,
    pub kind: AuditKind,
    pub rule_id: Option<i64>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

impl AuditEntry {
    pub fn new(kind: AuditKind) -> Self {
        Self { project_id: None, kind, rule_id: None, before: None, after: None }
    }
    pub fn project(self, id: i64) -> Self {
        Self { project_id: Some(id), ..self }
    }
    pub fn before(self, value: serde_json::Value) -> Self {
        Self { before: Some(value), ..self }
    }
    pub fn after(self, value: serde_json::Value) -> Self {
        Self { after: Some(value), ..self }
    }

    /// Records the change as made by `by`, in the caller's transaction (both land or neither),
    /// and in the same statement the notification of every webhook of the project that takes it.
    pub async fn record(self, db: impl PgExecutor<'_>, by: &Principal) -> Result<(), StoreError> {
        let event = super::webhooks::event_of(self.kind, self.after.as_ref()).map(|event| event.as_str());
        sqlx::query(
            r"with entry as (
                insert into audit_events (actor, project_id, kind, rule_id, before, after)
                values ($1, $2, $3, $4, $5, $6)
                returning id, at
              )
              insert into webhook_deliveries (endpoint_id, event, payload)
              select w.id, $7, jsonb_build_object('audit_id', entry.id, 'at', entry.at, 'actor', $1::text,
                         'project', p.name, 'kind', $3::text, 'rule_id', $4::bigint, 'before', $5::jsonb,
                         'after', $6::jsonb)
              from entry, webhook_endpoints w join projects p on p.id = w.project_id
              where w.project_id = $2 and $7::text = any(w.events)",
        )
        .bind(by.actor())
        .bind(self.project_id)
        .bind(self.kind.as_str())
        .bind(self.rule_id)
        .bind(self.before)
        .bind(self.after)
        .bind(event)
        .execute(db)
        .await?;
        Ok(())
    }
}

/// A denied push or delete, for the audit trail; `count` identical ones between `at` and `last_at`.
#[derive(Debug, Clone)]
pub struct Denial {
    pub at: time::OffsetDateTime,
    pub last_at: time::OffsetDateTime,
    pub count: i64,
    pub token: String,
    pub operation: &'static str,
    /// `None` once the project is gone (it may be deleted between the decision and the write).
    pub project_id: Option<i64>,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
    pub current_digest: Option<String>,
    pub rule_ids: Vec<i64>,
    pub message: String,
    /// Not a denial: what evaluating rules (`rule_ids`) would have denied; the request was allowed.
    pub evaluated: bool,
}

/// Writes a batch of denials in one statement, and with them the notifications of the webhooks
/// that take denials (or what evaluating rules would have denied): at most one per endpoint, rules
/// and repository within [`DENIAL_WINDOW_SECONDS`](super::webhooks::DENIAL_WINDOW_SECONDS).
pub async fn insert_denials(db: impl PgExecutor<'_>, denials: &[Denial]) -> Result<(), StoreError> {
    let column = |f: fn(&Denial) -> Option<String>| denials.iter().map(f).collect::<Vec<_>>();
    // Postgres arrays cannot be ragged, so the rule ids travel as JSON arrays.
    let rule_ids: Vec<serde_json::Value> = denials.iter().map(|d| serde_json::json!(d.rule_ids)).collect();
    sqlx::query(
        r"with inserted as (
            insert into enforcement_denials
              (at, token, operation, project_id, repository, tag, digest, current_digest, rule_ids, message,
               last_at, count, evaluated)
            select at, token, operation, project_id, repository, tag, digest, current_digest,
                   array(select jsonb_array_elements_text(rule_ids)::bigint), message, last_at, count, evaluated
            from unnest($1::timestamptz[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[],
                        $7::text[], $8::text[], $9::jsonb[], $10::text[], $11::timestamptz[], $12::bigint[],
                        $13::boolean[])
              as d(at, token, operation, project_id, repository, tag, digest, current_digest, rule_ids, message,
                   last_at, count, evaluated)
            returning *
          ),
          told as (
            select w.id as endpoint_id, case when i.evaluated then $14 else $15 end as event,
                   i.evaluated::text || ' ' || i.rule_ids::text || ' ' || i.repository as key,
                   jsonb_build_object('at', i.at, 'caller', i.token, 'operation', i.operation, 'project', p.name,
                       'repository', i.repository, 'tag', i.tag, 'digest', i.digest,
                       'current_digest', i.current_digest, 'rule_ids', to_jsonb(i.rule_ids),
                       'message', i.message, 'count', i.count, 'window_seconds', $16::bigint) as payload
            from inserted i
            join webhook_endpoints w on w.project_id = i.project_id
            join projects p on p.id = i.project_id
            where (case when i.evaluated then $14 else $15 end) = any(w.events)
          ),
          opened as (
            insert into webhook_folds (endpoint_id, key, until)
            select distinct endpoint_id, key, now() + make_interval(secs => $16) from told
            on conflict (endpoint_id, key) do update set until = excluded.until where webhook_folds.until <= now()
            returning endpoint_id, key
          )
          insert into webhook_deliveries (endpoint_id, event, payload)
          select distinct on (t.endpoint_id, t.key) t.endpoint_id, t.event, t.payload
          from told t join opened o on o.endpoint_id = t.endpoint_id and o.key = t.key
          order by t.endpoint_id, t.key",
    )
    .bind(denials.iter().map(|d| d.at).collect::<Vec<_>>())
    .bind(denials.iter().map(|d| d.token.clone()).collect::<Vec<_>>())
    .bind(denials.iter().map(|d| d.operation).collect::<Vec<_>>())
    .bind(denials.iter().map(|d| d.project_id).collect::<Vec<_>>())
    .bind(denials.iter().map(|d| d.repository.clone()).collect::<Vec<_>>())
    .bind(column(|d| d.tag.clone()))
    .bind(column(|d| d.digest.clone()))
    .bind(column(|d| d.current_digest.clone()))
    .bind(rule_ids)
    .bind(denials.iter().map(|d| d.message.clone()).collect::<Vec<_>>())
    .bind(denials.iter().map(|d| d.last_at).collect::<Vec<_>>())
    .bind(denials.iter().map(|d| d.count).collect::<Vec<_>>())
    .bind(denials.iter().map(|d| d.evaluated).collect::<Vec<_>>())
    .bind(crate::policy::WebhookEvent::WouldDeny.as_str())
    .bind(crate::policy::WebhookEvent::Denial.as_str())
    .bind(super::webhooks::DENIAL_WINDOW_SECONDS)
    .execute(db)
    .await?;
    Ok(())
}

/// One entry of the audit trail: a change (rule, member, user, project, token) or a denial.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActivityEntry {
    pub at: time::OffsetDateTime,
    pub actor: String,
    pub kind: String,
    pub rule_id: Option<i64>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    /// A denial's message.
    pub message: Option<String>,
    /// How many identical denials the entry stands for (1 for a change), the first at `first_at`
    /// and the last at `at`.
    pub count: i64,
    pub first_at: time::OffsetDateTime,
    pub project: Option<String>,
    /// How many entries match in all (the same on every row).
    pub total: i64,
}

/// The audit trail, newest first: changes and denials of one project (or of all, for `None`),
/// those whose kind starts with `kind.` if given, one page of them.
pub async fn activity(
    db: impl PgExecutor<'_>,
    project_id: Option<i64>,
    kind: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<ActivityEntry>, StoreError> {
    Ok(sqlx::query_as(
        r"with entries as (
            select a.at, a.id, a.actor, a.kind, a.rule_id, a.before, a.after, null::text as message, p.name as project,
                   1::bigint as count, a.at as first_at
            from audit_events a left join projects p on p.id = a.project_id
            where $1::bigint is null or a.project_id = $1
            union all
            select d.last_at, d.id, d.token,
                   case when d.evaluated then 'evaluation.' else 'denial.' end || d.operation, null, null, null,
                   d.message, p.name, d.count, d.at
            from enforcement_denials d left join projects p on p.id = d.project_id
            where $1::bigint is null or d.project_id = $1
            union all
            -- An exception that ran out unused: nobody wrote this, time did.
            select e.expires_at, e.id, 'tagward', $5, null, null,
                   jsonb_build_object('id', e.id, 'granted_by', e.granted_by, 'reason', e.reason), null, p.name,
                   1, e.expires_at
            from tag_exceptions e join projects p on p.id = e.project_id
            where e.used_at is null and e.revoked_at is null and e.expires_at <= now()
              and ($1::bigint is null or e.project_id = $1)
          )
          select *, count(*) over () as total from entries
          where $2::text is null or kind like $2 || '.%'
          -- Within one instant, later rows first (ids only break ties).
          order by at desc, id desc
          limit $3 offset $4",
    )
    .bind(project_id)
    .bind(kind)
    .bind(limit)
    .bind(offset)
    .bind(AuditKind::ExceptionExpire.as_str())
    .fetch_all(db)
    .await?)
}

/// Denials of the last `days` days (UTC), of one project or of all: how many each day (a folded
/// row counts on the day it began), and the repositories and callers denied most.
pub struct DenialCounts {
    /// One entry per day, oldest first: (the day, denials).
    pub per_day: Vec<(time::Date, i64)>,
    pub top_repositories: Vec<(String, i64)>,
    pub top_callers: Vec<(String, i64)>,
}

pub async fn denial_counts(
    db: &sqlx::PgPool,
    project_id: Option<i64>,
    days: i32,
    top: i64,
) -> Result<DenialCounts, StoreError> {
    let per_day: Vec<(time::Date, i64)> = sqlx::query_as(
        r"select day::date, coalesce(sum(d.count), 0)::bigint
          from generate_series((now() at time zone 'utc')::date - ($2::int - 1), (now() at time zone 'utc')::date,
                               interval '1 day') day
          left join enforcement_denials d
            on (d.at at time zone 'utc')::date = day::date and ($1::bigint is null or d.project_id = $1)
               and not d.evaluated
          group by day order by day",
    )
    .bind(project_id)
    .bind(days)
    .fetch_all(db)
    .await?;
    let most = |query: &'static str| {
        sqlx::query_as::<_, (String, i64)>(query).bind(project_id).bind(days).bind(top).fetch_all(db)
    };
    Ok(DenialCounts {
        per_day,
        top_repositories: most(MOST_DENIED_REPOSITORIES).await?,
        top_callers: most(MOST_DENIED_CALLERS).await?,
    })
}

/// What evaluating rules would have denied, per rule (of `rule_ids`, in project `project_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WouldHaveDenied {
    pub pushes: i64,
    pub deletes: i64,
    pub first: time::OffsetDateTime,
    pub last: time::OffsetDateTime,
}

pub async fn would_have_denied(
    db: impl PgExecutor<'_>,
    project_id: i64,
    rule_ids: &[i64],
) -> Result<std::collections::HashMap<i64, WouldHaveDenied>, StoreError> {
    let rows: Vec<(i64, i64, i64, time::OffsetDateTime, time::OffsetDateTime)> = sqlx::query_as(
        r"select r.id,
                 coalesce(sum(d.count) filter (where d.operation = 'push'), 0)::bigint,
                 coalesce(sum(d.count) filter (where d.operation <> 'push'), 0)::bigint,
                 min(d.at), max(d.last_at)
          from unnest($2::bigint[]) as r(id)
          join enforcement_denials d on d.evaluated and d.project_id = $1 and r.id = any(d.rule_ids)
          group by r.id",
    )
    .bind(project_id)
    .bind(rule_ids)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, pushes, deletes, first, last)| (id, WouldHaveDenied { pushes, deletes, first, last }))
        .collect())
}

/// The query for the `top` (`$3`) values of `column` most denied in the last `$2` days, of project
/// `$1` (or all): one text for both columns asked about.
macro_rules! most_denied {
    ($column:literal) => {
        concat!(
            "select ",
            $column,
            ", sum(count)::bigint from enforcement_denials
             where at >= ((now() at time zone 'utc')::date - ($2::int - 1))::timestamp at time zone 'utc'
               and ($1::bigint is null or project_id = $1) and not evaluated
             group by ",
            $column,
            " order by 2 desc, 1 limit $3"
        )
    };
}
const MOST_DENIED_REPOSITORIES: &str = most_denied!("repository");
const MOST_DENIED_CALLERS: &str = most_denied!("token");

/// Where a reader of the audit stream is: after this entry. Entries come in the order their
/// transactions began (then denials after changes, then by id), and only once every older
/// transaction has finished, so an entry committed late is never passed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamCursor {
    txid: u64,
    source: i32,
    id: i64,
}

impl StreamCursor {
    /// `<transaction>-<0 change | 1 denial>-<id>`, as [`fmt::Display`] writes it.
    pub fn parse(value: &str) -> Result<Self, crate::policy::FieldError> {
        let refuse = || crate::policy::FieldError::new("after", value, "is not a cursor this stream gave");
        let mut parts = value.split('-');
        let (Some(txid), Some(source), Some(id), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(refuse());
        };
        let cursor = Self {
            txid: txid.parse().map_err(|_| refuse())?,
            source: source.parse().map_err(|_| refuse())?,
            id: id.parse().map_err(|_| refuse())?,
        };
        if !(0..=1).contains(&cursor.source) {
            return Err(refuse());
        }
        Ok(cursor)
    }
}

impl std::fmt::Display for StreamCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}-{}", self.txid, self.source, self.id)
    }
}

/// One entry of the audit stream: a change, or a (folded) denial.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StreamEntry {
    /// Resume after this entry with it.
    pub cursor: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: time::OffsetDateTime,
    pub kind: String,
    pub actor: String,
    pub project: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<serde_json::Value>,
    /// A denial's: what was refused and why, how many times since `first_at`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub denial: Option<serde_json::Value>,
}

/// Who reads the stream, of what: every project (`None`) or these.
#[derive(Debug, Clone, Default)]
pub struct StreamFilter {
    pub projects: Option<Vec<String>>,
    pub since: Option<time::OffsetDateTime>,
}

/// Up to `limit` entries of the audit stream after `after` (from the start without one).
pub async fn audit_stream(
    db: impl PgExecutor<'_>,
    after: Option<StreamCursor>,
    filter: &StreamFilter,
    limit: i64,
) -> Result<Vec<StreamEntry>, StoreError> {
    type Row = (
        String,
        i32,
        i64,
        time::OffsetDateTime,
        String,
        String,
        Option<String>,
        Option<i64>,
        Option<serde_json::Value>,
        Option<serde_json::Value>,
        Option<serde_json::Value>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        r"with entries as (
            select a.txid, 0 as source, a.id, a.at, a.kind, a.actor, p.name as project, a.rule_id, a.before,
                   a.after, null::jsonb as denial
            from audit_events a left join projects p on p.id = a.project_id
            union all
            select d.txid, 1, d.id, d.last_at, case when d.evaluated then 'evaluation.' else 'denial.' end || d.operation,
                   d.token, p.name, null, null, null,
                   jsonb_build_object('message', d.message, 'repository', d.repository, 'tag', d.tag,
                       'digest', d.digest, 'current_digest', d.current_digest, 'rule_ids', to_jsonb(d.rule_ids),
                       'count', d.count, 'first_at', d.at)
            from enforcement_denials d left join projects p on p.id = d.project_id
          )
          select e.txid::text, e.source, e.id, e.at, e.kind, e.actor, e.project, e.rule_id, e.before, e.after, e.denial
          from entries e
          where e.txid < pg_snapshot_xmin(pg_current_snapshot())
            and ($1::text is null or (e.txid, e.source, e.id) > ($1::text::xid8, $2::int, $3::bigint))
            and ($4::text[] is null or e.project = any($4))
            and ($5::timestamptz is null or e.at >= $5)
          order by e.txid, e.source, e.id
          limit $6",
    )
    .bind(after.map(|cursor| cursor.txid.to_string()))
    .bind(after.map_or(0, |cursor| cursor.source))
    .bind(after.map_or(0, |cursor| cursor.id))
    .bind(filter.projects.clone())
    .bind(filter.since)
    .bind(limit)
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|(txid, source, id, at, kind, actor, project, rule_id, before, after, denial)| {
            let txid = txid.parse().map_err(|_| anyhow::anyhow!("transaction id `{txid}` is not a number"))?;
            Ok(StreamEntry {
                cursor: StreamCursor { txid, source, id }.to_string(),
                at,
                kind,
                actor,
                project,
                rule_id,
                before,
                after,
                denial,
            })
        })
        .collect()
}

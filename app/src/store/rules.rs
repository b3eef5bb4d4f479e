//! Tag immutability rules: loading them (parsed once, here) and the one operation that changes them.

use super::audit::AuditEntry;
use super::AuditKind;
use super::StoreError;
use crate::policy::{PolicyRule, RuleErrors, RuleInput, RuleSpec, RuleState, MAX_RULES};
use crate::principal::Principal;
use sqlx::{PgExecutor, PgPool};

/// A stored rule with its history.
#[derive(Debug, Clone)]
pub struct StoredRule {
    pub id: i64,
    pub state: RuleState,
    /// The patterns as stored, shown and edited as they were written.
    pub input: RuleInput,
    /// The rule parsed once, when it was loaded. An error only for a row written outside tagward
    /// that the engine refuses: such a project's policy cannot be evaluated (see
    /// [`enforceable_rules`]), and pages show the row as it is.
    pub spec: Result<RuleSpec, RuleErrors>,
    pub created_by: String,
    pub created_at: time::OffsetDateTime,
    pub updated_by: String,
    pub updated_at: time::OffsetDateTime,
}

impl StoredRule {
    /// The rule as the engine runs it, or why it cannot (a row written outside tagward that the
    /// engine refuses).
    pub fn policy_rule(&self) -> Result<PolicyRule, String> {
        match &self.spec {
            Ok(spec) => Ok(PolicyRule { id: self.id, state: self.state, spec: spec.clone() }),
            Err(errors) => Err(format!("its rule {} does not parse: {errors}", self.id)),
        }
    }

    /// Every parsed rule of `stored` (every state), as the engine takes them; a rule that does not
    /// parse (only written outside tagward) is left out, and pages say the policy is broken.
    pub fn policy_rules(stored: &[StoredRule]) -> Vec<PolicyRule> {
        stored.iter().filter_map(|rule| rule.policy_rule().ok()).collect()
    }

    /// The rule as a sentence (`For the repositories matching **, …`), or why it does not parse.
    pub fn sentence(&self) -> String {
        self.spec.as_ref().map_or_else(|error| format!("(invalid: {error})"), RuleSpec::sentence)
    }
    fn snapshot(&self) -> serde_json::Value {
        serde_json::json!({
            "repositories_action": self.input.repositories_action,
            "repositories": self.input.repositories,
            "tags_action": self.input.tags_action,
            "tags": self.input.tags,
            "state": self.state,
            "enabled": self.state == RuleState::Enforced,
        })
    }
}

/// A project's active (enforced and evaluating) stored rules as the engine runs them, or why they
/// cannot be: a stored rule the engine refuses, or rules past the size budget (both only written
/// outside tagward). One judgement for the decision caches and the portal, which shows it.
pub fn enforceable_rules(stored: &[StoredRule]) -> Result<Vec<PolicyRule>, String> {
    let rules = stored
        .iter()
        .filter(|rule| rule.state.is_active())
        .map(StoredRule::policy_rule)
        .collect::<Result<Vec<_>, _>>()?;
    crate::policy::check_stored_size(&rules).map_err(|error| error.to_string())?;
    Ok(rules)
}

#[derive(sqlx::FromRow)]
struct RuleRow {
    id: i64,
    state: String,
    repositories_action: String,
    repositories: String,
    tags_action: String,
    tags: String,
    created_by: String,
    created_at: time::OffsetDateTime,
    updated_by: String,
    updated_at: time::OffsetDateTime,
}

impl From<RuleRow> for StoredRule {
    fn from(row: RuleRow) -> Self {
        let input = RuleInput {
            repositories_action: row.repositories_action,
            repositories: row.repositories,
            tags_action: row.tags_action,
            tags: row.tags,
        };
        StoredRule {
            id: row.id,
            // The column's check admits only the three; anything else could only be a newer
            // version's state, and is taken as the safest.
            state: RuleState::parse(&row.state).unwrap_or(RuleState::Enforced),
            spec: RuleSpec::parse(&input),
            input,
            created_by: row.created_by,
            created_at: row.created_at,
            updated_by: row.updated_by,
            updated_at: row.updated_at,
        }
    }
}

/// A project's rules, oldest first.
pub async fn project_rules(db: impl PgExecutor<'_>, project_id: i64) -> Result<Vec<StoredRule>, StoreError> {
    let rows: Vec<RuleRow> =
        sqlx::query_as(&format!("select {RULE_COLUMNS} from immutability_rules where project_id = $1 order by id"))
            .bind(project_id)
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().map(StoredRule::from).collect())
}

/// One rule by id, if it exists.
async fn rule(db: impl PgExecutor<'_>, id: i64) -> Result<Option<StoredRule>, StoreError> {
    let row: Option<RuleRow> = sqlx::query_as(&format!("select {RULE_COLUMNS} from immutability_rules where id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?;
    Ok(row.map(StoredRule::from))
}

/// The columns of a `RuleRow`.
const RULE_COLUMNS: &str = "id, state, repositories_action, repositories, tags_action, tags, \
                            created_by, created_at, updated_by, updated_at";

/// What a rule change does.
pub enum RuleChange<'a> {
    /// A new rule, in the state it starts in (a rule made evaluating or disabled is never
    /// enforced, not even for a moment).
    Create(&'a RuleSpec, RuleState),
    Update(i64, &'a RuleSpec),
    SetState(i64, RuleState),
    /// An evaluating rule made enforced; refused for a rule in any other state (enabling a
    /// disabled rule is a different decision, with its own word).
    Promote(i64),
    Delete(i64),
}

/// Applies one change to a project's rules in one transaction: the project row is locked first, so
/// concurrent changes to one project queue up and the limit of 15 and the ban on identical rules
/// hold whatever the timing. Records the change in the audit trail (a trigger announces it on
/// [`RULES_CHANNEL`] at commit). Returns the id of the rule changed.
pub async fn change_rules(
    pool: &PgPool,
    by: &Principal,
    project_id: i64,
    change: RuleChange<'_>,
) -> Result<i64, StoreError> {
    let ids = change_rules_together(pool, by, project_id, None, std::slice::from_ref(&change)).await?;
    ids.first().copied().ok_or_else(|| StoreError::Unexpected(anyhow::anyhow!("no rule changed")))
}

/// Applies several changes to a project's rules in one transaction, in order, each checked as
/// [`change_rules`] checks one (limit, identical rules, size budget) against the rules as the
/// changes before it left them, each with its audit row: all of them, or none (`policy apply`).
/// With `planned_from` (the rules the changes were worked out from), refuses when the stored rules
/// are no longer those, so a change made meanwhile is never silently applied over. Returns the id
/// of each rule changed.
pub async fn change_rules_together(
    pool: &PgPool,
    by: &Principal,
    project_id: i64,
    planned_from: Option<&[StoredRule]>,
    changes: &[RuleChange<'_>],
) -> Result<Vec<i64>, StoreError> {
    let mut tx = pool.begin().await?;
    let project: Option<(String,)> = sqlx::query_as(r"select name from projects where id = $1 for update")
        .bind(project_id)
        .fetch_optional(&mut *tx)
        .await?;
    let not_found = || StoreError::NotFound(format!("project {project_id} does not exist"));
    let (project,) = project.ok_or_else(not_found)?;
    let role = super::projects::role_of(&mut *tx, by, project_id).await?;
    if !by.may_see(&project, role) {
        return Err(not_found());
    }
    by.may_change_rules(&project, role)?;
    if let Some(planned_from) = planned_from {
        let version = |rules: &[StoredRule]| -> Vec<(i64, RuleState, time::OffsetDateTime)> {
            rules.iter().map(|rule| (rule.id, rule.state, rule.updated_at)).collect()
        };
        if version(&project_rules(&mut *tx, project_id).await?) != version(planned_from) {
            return Err(StoreError::Conflict {
                field: "rules",
                message: format!(
                    "the rules of project `{project}` changed after they were read; nothing was changed, try again"
                ),
            });
        }
    }
    let mut changed = Vec::with_capacity(changes.len());
    for change in changes {
        changed.push(apply_change(&mut tx, by, project_id, change).await?);
    }
    tx.commit().await?;
    Ok(changed)
}

/// One change, under the project lock `tx` holds.
async fn apply_change(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    by: &Principal,
    project_id: i64,
    change: &RuleChange<'_>,
) -> Result<i64, StoreError> {
    let actor = by.actor();
    let rules = project_rules(&mut **tx, project_id).await?;
    check_resulting_rule_set(&rules, change).await?;
    let (kind, rule_id, before) = match change {
        RuleChange::Create(spec, state) => {
            if rules.len() >= MAX_RULES {
                return Err(StoreError::Refused(format!(
                    "this project has {} rules, the most allowed; edit or delete one to add another",
                    rules.len()
                )));
            }
            refuse_duplicate(&rules, spec, None)?;
            (AuditKind::RuleCreate, insert_rule(tx, project_id, &actor, spec, *state).await?, None)
        }
        RuleChange::Update(id, spec) => {
            let before = find_rule(&rules, *id)?.snapshot();
            refuse_duplicate(&rules, spec, Some(*id))?;
            let input = spec.to_input();
            sqlx::query(
                r"update immutability_rules
                  set repositories_action = $2, repositories = $3, tags_action = $4, tags = $5,
                      updated_by = $6, updated_at = now()
                  where id = $1",
            )
            .bind(id)
            .bind(&input.repositories_action)
            .bind(&input.repositories)
            .bind(&input.tags_action)
            .bind(&input.tags)
            .bind(&actor)
            .execute(&mut **tx)
            .await?;
            (AuditKind::RuleUpdate, *id, Some(before))
        }
        RuleChange::SetState(id, _) | RuleChange::Promote(id) => {
            let rule = find_rule(&rules, *id)?;
            let (kind, state) = state_change(rule, change)?;
            sqlx::query(r"update immutability_rules set state = $2, updated_by = $3, updated_at = now() where id = $1")
                .bind(id)
                .bind(state.as_str())
                .bind(&actor)
                .execute(&mut **tx)
                .await?;
            (kind, *id, Some(rule.snapshot()))
        }
        RuleChange::Delete(id) => {
            let before = find_rule(&rules, *id)?.snapshot();
            sqlx::query(r"delete from immutability_rules where id = $1").bind(id).execute(&mut **tx).await?;
            (AuditKind::RuleDelete, *id, Some(before))
        }
    };
    let after = rule(&mut **tx, rule_id).await?.map(|r| r.snapshot());
    AuditEntry { project_id: Some(project_id), kind, rule_id: Some(rule_id), before, after }
        .record(&mut **tx, by)
        .await?;
    Ok(rule_id)
}

fn find_rule(rules: &[StoredRule], id: i64) -> Result<&StoredRule, StoreError> {
    rules.iter().find(|r| r.id == id).ok_or_else(|| StoreError::NotFound(format!("rule {id} does not exist")))
}

/// Refuses `spec` when another rule of `rules` (other than `except`, the one being edited) is the same.
fn refuse_duplicate(rules: &[StoredRule], spec: &RuleSpec, except: Option<i64>) -> Result<(), StoreError> {
    match rules.iter().filter(|r| Some(r.id) != except).find(|r| r.spec.as_ref().is_ok_and(|o| o.same_as(spec))) {
        Some(other) => Err(StoreError::Conflict {
            field: "rule",
            message: format!("an identical rule already exists: rule {} ({})", other.id, spec.summary()),
        }),
        None => Ok(()),
    }
}

/// The rule set as it would be stored after `change` must stay enforceable (size budget, compiles):
/// checked under the project lock so that concurrent changes cannot together pass it.
async fn check_resulting_rule_set(rules: &[StoredRule], change: &RuleChange<'_>) -> Result<(), StoreError> {
    let (replaced, changed) = match change {
        RuleChange::Create(spec, _) => (None, (*spec).clone()),
        RuleChange::Update(id, spec) => (Some(*id), (*spec).clone()),
        RuleChange::SetState(..) | RuleChange::Promote(_) | RuleChange::Delete(_) => return Ok(()),
    };
    let mut specs: Vec<RuleSpec> =
        rules.iter().filter(|rule| Some(rule.id) != replaced).filter_map(|rule| rule.spec.clone().ok()).collect();
    specs.push(changed.clone());
    tokio::task::spawn_blocking(move || crate::policy::check_rule_set(&specs, Some(&changed)))
        .await
        .map_err(|e| StoreError::Unexpected(e.into()))?
        .map_err(|error| StoreError::Refused(error.to_string()))
}

/// A new rule in `state`; its id.
async fn insert_rule(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    project_id: i64,
    actor: &str,
    spec: &RuleSpec,
    state: RuleState,
) -> Result<i64, StoreError> {
    let input = spec.to_input();
    let (id,): (i64,) = sqlx::query_as(
        r"insert into immutability_rules
            (project_id, repositories_action, repositories, tags_action, tags, created_by, updated_by, state)
          values ($1, $2, $3, $4, $5, $6, $6, $7) returning id",
    )
    .bind(project_id)
    .bind(&input.repositories_action)
    .bind(&input.repositories)
    .bind(&input.tags_action)
    .bind(&input.tags)
    .bind(actor)
    .bind(state.as_str())
    .fetch_one(&mut **tx)
    .await?;
    Ok(id)
}

/// The state `change` (a state change or a promotion) moves `rule` to, with its audit kind; a
/// promotion of a rule that is not evaluating is refused.
fn state_change(rule: &StoredRule, change: &RuleChange<'_>) -> Result<(AuditKind, RuleState), StoreError> {
    let state = match change {
        RuleChange::SetState(_, state) => *state,
        _ if rule.state != RuleState::Evaluating => {
            return Err(StoreError::Refused(format!(
                "rule {} is {}, not evaluating; enable a disabled rule instead (`rule enable`)",
                rule.id, rule.state
            )));
        }
        _ => RuleState::Enforced,
    };
    let kind = match (rule.state, state) {
        (_, RuleState::Disabled) => AuditKind::RuleDisable,
        (_, RuleState::Evaluating) => AuditKind::RuleEvaluate,
        (RuleState::Evaluating, RuleState::Enforced) => AuditKind::RulePromote,
        (_, RuleState::Enforced) => AuditKind::RuleEnable,
    };
    Ok((kind, state))
}

/// One project's active (enforced and evaluating) rules as stored, in order: what the enforcement
/// cache compiles. Only the text is loaded (the cache parses it when it compiles, and keeps no
/// copy after).
#[derive(Debug)]
pub struct ProjectPolicySource {
    pub id: i64,
    pub name: String,
    /// Each active rule's id, state and text.
    pub rules: Vec<(i64, RuleState, RuleInput)>,
}

#[derive(sqlx::FromRow)]
struct EnforcedRuleRow {
    project_id: i64,
    id: i64,
    state: String,
    repositories_action: String,
    repositories: String,
    tags_action: String,
    tags: String,
}

impl EnforcedRuleRow {
    fn into_rule(self) -> (i64, RuleState, RuleInput) {
        let EnforcedRuleRow { id, state, repositories_action, repositories, tags_action, tags, .. } = self;
        let state = RuleState::parse(&state).unwrap_or(RuleState::Enforced);
        (id, state, RuleInput { repositories_action, repositories, tags_action, tags })
    }
}

const ENFORCED_RULES: &str = "select project_id, id, state, repositories_action, repositories, tags_action, tags \
    from immutability_rules where state <> 'disabled'";

/// Every project with its active rules, handed to `each` one project at a time (in id order) as
/// the rows stream in, so a registry of 100,000 projects is never held twice in memory. One
/// snapshot for both queries, so no rule is seen without its project.
pub async fn each_project_policy(db: &PgPool, mut each: impl FnMut(ProjectPolicySource)) -> Result<(), StoreError> {
    use futures_util::TryStreamExt;
    let mut tx = db.begin().await?;
    sqlx::query("set transaction isolation level repeatable read, read only").execute(&mut *tx).await?;
    let projects: Vec<(i64, String)> =
        sqlx::query_as(r"select id, name from projects order by id").fetch_all(&mut *tx).await?;
    let query = format!("{ENFORCED_RULES} order by project_id, id");
    let mut rows = sqlx::query_as::<_, EnforcedRuleRow>(&query).fetch(&mut *tx);
    let mut pending: Option<EnforcedRuleRow> = rows.try_next().await?;
    for (id, name) in projects {
        let mut rules = Vec::new();
        while let Some(row) = pending.take_if(|row| row.project_id <= id) {
            if row.project_id == id {
                rules.push(row.into_rule());
            }
            pending = rows.try_next().await?;
        }
        each(ProjectPolicySource { id, name, rules });
    }
    drop(rows);
    tx.commit().await?;
    Ok(())
}

/// One project's active rules, `None` when the project does not exist (any more).
pub async fn project_policy(db: &PgPool, id: i64) -> Result<Option<ProjectPolicySource>, StoreError> {
    let mut tx = db.begin().await?;
    let project: Option<(String,)> =
        sqlx::query_as(r"select name from projects where id = $1").bind(id).fetch_optional(&mut *tx).await?;
    let Some((name,)) = project else {
        return Ok(None);
    };
    let rows: Vec<EnforcedRuleRow> = sqlx::query_as(&format!("{ENFORCED_RULES} and project_id = $1 order by id"))
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(ProjectPolicySource { id, name, rules: rows.into_iter().map(EnforcedRuleRow::into_rule).collect() }))
}

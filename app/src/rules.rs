//! Server functions for a project's tag immutability rules, and the preview the Add Rule dialog
//! shows (computed by the rule engine, in the browser or on the server alike).

use crate::account::ProjectAccess;
use crate::error::AppError;
use crate::inventory::Impact;
use crate::policy::{CompiledPolicy, PolicyRule, RuleErrors, RuleInput, RuleSpec, RuleState, Tag};
use leptos::prelude::*;
use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

/// One rule as the list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleRow {
    pub id: i64,
    pub state: RuleState,
    pub input: RuleInput,
    pub sentence: String,
    pub updated_by: String,
    pub updated_at: String,
    /// Existing tags this (enforced) rule makes immutable, and how many of them no other rule
    /// does (what disabling or deleting it makes mutable); `None` when not counted.
    pub protects: Option<(u64, u64)>,
    /// What an evaluating rule would have denied so far.
    pub evaluation: Option<Evaluation>,
}

/// What an evaluating rule would have denied: pushes and deletes (each attempt counted), the
/// first and the last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evaluation {
    pub pushes: i64,
    pub deletes: i64,
    pub first: Option<String>,
    pub last: Option<String>,
}

/// The Tag Immutability tab's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesView {
    pub project: ProjectAccess,
    pub rules: Vec<RuleRow>,
    /// Why the stored rules cannot be evaluated (written outside tagward); then changes to the
    /// project's existing tags are refused until someone fixes them.
    pub policy_problem: Option<String>,
    /// How fresh the tag counts are, when they were counted.
    pub counted: Option<crate::inventory::Freshness>,
    /// Immutable tags changed behind tagward's back, until someone deals with them.
    pub drift: crate::drift::DriftView,
}

/// Why saving a rule failed, with what was typed, so the dialog (even without JavaScript, where the
/// error comes back in the URL) shows the form as it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleFormError {
    pub input: RuleInput,
    pub fields: RuleErrors,
    /// A problem with the rule as a whole (limit, duplicate, permission), or none.
    pub message: Option<String>,
}

impl RuleFormError {
    fn whole(input: RuleInput, error: AppError) -> Self {
        Self { input, fields: RuleErrors::default(), message: Some(error.to_string()) }
    }
}

impl FromServerFnError for RuleFormError {
    type Encoder = JsonEncoding;
    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        Self::whole(RuleInput::default(), AppError::from_server_fn_error(value))
    }
}

#[cfg(feature = "ssr")]
pub(crate) mod ssr {
    use super::*;
    use crate::policy::PolicyVersion;
    use crate::store::{self, RuleChange, StoredRule};

    /// A project the signed-in user may see, with its stored rules (errors also set the status).
    pub async fn visible_rules(project: &str) -> Result<(ProjectAccess, Vec<StoredRule>), AppError> {
        let pool = crate::auth::ssr::state()?.pool.clone();
        crate::auth::ssr::answered(
            async {
                let access = crate::projects::ssr::visible(project).await?;
                let rules = store::project_rules(&pool, access.id).await?;
                Ok((access, rules))
            }
            .await,
        )
    }

    /// The policy of the stored rules' enabled part, with its version: the one enforcement decides
    /// with when it holds these rules (compiled already), else compiled here, off the async threads
    /// (a change enforcement has not heard of yet); or why it cannot be evaluated.
    pub async fn compiled_policy(
        project: &str,
        rules: &[StoredRule],
    ) -> Result<(PolicyVersion, Result<CompiledPolicy, String>), AppError> {
        let version = PolicyVersion::of(
            rules.iter().filter(|rule| rule.state.is_active()).map(|rule| (rule.id, rule.state, &rule.input)),
        );
        let enforced = match store::enforceable_rules(rules) {
            Ok(enforced) => enforced,
            Err(problem) => return Ok((version, Err(problem))),
        };
        let state = crate::auth::ssr::state()?;
        if let Some(policy) = state.policies.policy(project, &version).await {
            return Ok((version, policy));
        }
        let compiled = tokio::task::spawn_blocking(move || CompiledPolicy::compile(&enforced))
            .await
            .map_err(AppError::internal)?;
        Ok((version, compiled.map_err(|error| format!("its rules do not compile: {error}"))))
    }

    /// Changes a rule as the signed-in user (the store asks whether they may). Errors also set
    /// the response status (for callers that are not plain forms).
    pub async fn change(project: &str, change: RuleChange<'_>) -> Result<i64, AppError> {
        let pool = crate::auth::ssr::state()?.pool.clone();
        crate::auth::ssr::answered(
            async {
                let me = crate::auth::ssr::principal().await?;
                let access = crate::projects::ssr::visible(project).await?;
                Ok(store::change_rules(&pool, &me, access.id, change).await?)
            }
            .await,
        )
    }
}

#[server(prefix = "/portal", endpoint = "rules")]
pub async fn list_rules(project: String) -> Result<RulesView, AppError> {
    let state = crate::auth::ssr::state()?;
    let pool = state.pool.clone();
    let (project, rules) = ssr::visible_rules(&project).await?;
    let (version, policy) = ssr::compiled_policy(&project.name, &rules).await?;
    // Counts of existing tags are a help, not the page: kept between pages, and when they cannot
    // be had yet (a first count still running), the list shows without them.
    let counts = async {
        let Ok(policy) = &policy else { return Ok((None, None)) };
        let (kept, freshness) = tokio::try_join!(
            crate::inventory::counting::protection(&pool, &state.inventory_counts, &project.name, &version, policy),
            crate::inventory::freshness::freshness(&pool),
        )?;
        Ok::<_, AppError>(match kept {
            Some(kept) => {
                (Some(kept.value), Some(crate::inventory::freshness::kept_freshness(freshness, kept.current)))
            }
            None => (None, None),
        })
    };
    let evaluations = async {
        let evaluating: Vec<i64> =
            rules.iter().filter(|rule| rule.state == RuleState::Evaluating).map(|rule| rule.id).collect();
        if evaluating.is_empty() {
            return Ok(std::collections::HashMap::new());
        }
        Ok::<_, AppError>(crate::store::would_have_denied(&pool, project.id, &evaluating).await?)
    };
    let ((protects, counted), drift, evaluations) =
        tokio::try_join!(counts, crate::drift::ssr::drift_view(&project), evaluations)?;
    let policy_problem = policy.err();
    let rules = rules
        .into_iter()
        .map(|rule| RuleRow {
            id: rule.id,
            state: rule.state,
            evaluation: (rule.state == RuleState::Evaluating).then(|| {
                let counted = evaluations.get(&rule.id);
                Evaluation {
                    pushes: counted.map_or(0, |c| c.pushes),
                    deletes: counted.map_or(0, |c| c.deletes),
                    first: counted.map(|c| crate::shown_time(c.first)),
                    last: counted.map(|c| crate::shown_time(c.last)),
                }
            }),
            sentence: match &rule.spec {
                Ok(spec) => spec.sentence(),
                Err(error) => format!("(this rule no longer parses: {error})"),
            },
            input: rule.input,
            updated_by: rule.updated_by,
            updated_at: crate::shown_time(rule.updated_at),
            protects: match &protects {
                Some(protects) if rule.state == RuleState::Enforced => {
                    Some(protects.get(&rule.id).copied().unwrap_or_default())
                }
                _ => None,
            },
        })
        .collect();
    Ok(RulesView { project, rules, policy_problem, counted, drift })
}

/// Adds a rule (no `rule_id`) or changes one. On success, back to the rule list. A new rule is
/// enforced, or evaluating with `evaluate_first` (a checkbox: `on`).
#[server(prefix = "/portal", endpoint = "save_rule")]
pub async fn save_rule(
    project: String,
    rule_id: Option<i64>,
    repositories_action: String,
    repositories: String,
    tags_action: String,
    tags: String,
    #[server(default)] evaluate_first: Option<String>,
) -> Result<(), RuleFormError> {
    let input = RuleInput { repositories_action, repositories, tags_action, tags };
    let spec = RuleSpec::parse(&input).map_err(|fields| {
        let _ = crate::auth::ssr::answered::<()>(Err(AppError::Invalid(fields.to_string())));
        RuleFormError { input: input.clone(), fields, message: None }
    })?;
    let change = match rule_id {
        Some(id) => crate::store::RuleChange::Update(id, &spec),
        None => crate::store::RuleChange::Create(
            &spec,
            if evaluate_first.is_some() { RuleState::Evaluating } else { RuleState::Enforced },
        ),
    };
    match ssr::change(&project, change).await {
        Ok(_) => {
            leptos_axum::redirect(&format!("/projects/{project}/policy"));
            Ok(())
        }
        Err(error) => Err(RuleFormError::whole(input, error)),
    }
}

/// Sets a rule's state: `enforced` (Enable, or Promote an evaluating rule), `evaluating`, `disabled`.
#[server(prefix = "/portal", endpoint = "set_rule_state")]
pub async fn set_rule_state(project: String, rule_id: i64, state: String) -> Result<(), AppError> {
    let state =
        crate::auth::ssr::answered(RuleState::parse(&state).map_err(|e| AppError::Invalid(format!("state: {e}"))))?;
    ssr::change(&project, crate::store::RuleChange::SetState(rule_id, state)).await?;
    leptos_axum::redirect(&format!("/projects/{project}/policy"));
    Ok(())
}

/// Deletes a rule (the page asked for confirmation first).
#[server(prefix = "/portal", endpoint = "delete_rule")]
pub async fn delete_rule(project: String, rule_id: i64) -> Result<(), AppError> {
    ssr::change(&project, crate::store::RuleChange::Delete(rule_id)).await?;
    leptos_axum::redirect(&format!("/projects/{project}/policy"));
    Ok(())
}

/// One sample reference of the preview and what the rule being edited, and the whole policy with
/// it, make of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewLine {
    pub reference: String,
    pub outcome: Result<(bool, Vec<i64>), String>,
}

/// The id the rule being edited has in the preview while it is not saved.
pub const DRAFT_RULE_ID: i64 = 0;

/// Evaluates `samples` (`repository:tag`, one a line, the repository inside the project) under the
/// draft rule and under the project's policy with the draft in place of the rule being edited.
/// `Err` when the draft itself does not parse (the errors are shown next to the fields instead).
pub fn preview(
    project: &str,
    rules: &[RuleRow],
    editing: Option<i64>,
    draft: &RuleInput,
    samples: &str,
) -> Result<Vec<PreviewLine>, RuleErrors> {
    let draft = PolicyRule { id: DRAFT_RULE_ID, state: RuleState::Enforced, spec: RuleSpec::parse(draft)? };
    let mut whole: Vec<PolicyRule> = rules
        .iter()
        .filter(|rule| Some(rule.id) != editing)
        .filter_map(|rule| {
            RuleSpec::parse(&rule.input).ok().map(|spec| PolicyRule { id: rule.id, state: rule.state, spec })
        })
        .collect();
    whole.push(draft.clone());
    let (Ok(alone), Ok(whole)) = (CompiledPolicy::compile([&draft]), CompiledPolicy::compile(&whole)) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{project}/");
    Ok(samples
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .take(50)
        .map(|line| {
            let reference = line.strip_prefix(&prefix).unwrap_or(line);
            let outcome = parse_reference(project, reference).map(|(repository, tag)| {
                let by_draft = !alone.immutable_rules(repository.path(), tag.as_str()).is_empty();
                let by = whole.rules(whole.immutable_rules(repository.path(), tag.as_str())).map(|r| r.id).collect();
                (by_draft, by)
            });
            PreviewLine { reference: line.to_owned(), outcome }
        })
        .collect())
}

fn parse_reference(project: &str, reference: &str) -> Result<(crate::policy::RepositoryName, Tag), String> {
    let (path, tag) =
        reference.rsplit_once(':').ok_or_else(|| "write it as `repository:tag`, e.g. `app:v1.2.3`".to_owned())?;
    let repository = crate::policy::RepositoryName::parse(&format!("{project}/{path}"))
        .map_err(|_| format!("`{path}` is not a repository name"))?;
    let tag = Tag::parse(tag).map_err(|e| e.to_string())?;
    Ok((repository, tag))
}

/// What a change to one rule does to the project's existing tags: saving `draft` as rule
/// `rule_id` (or as a new rule without one), or removing rule `rule_id` (`remove`, for delete and
/// disable). With neither a draft nor `remove`, the stored rule as it is.
#[server(prefix = "/portal", endpoint = "rule_impact")]
pub async fn rule_impact(
    project: String,
    rule_id: Option<i64>,
    draft: Option<RuleInput>,
    remove: bool,
) -> Result<Impact, AppError> {
    use crate::policy::{PolicyRule, RuleSpec};
    let portal = crate::auth::ssr::state()?;
    let pool = portal.pool.clone();
    crate::auth::ssr::answered(
        async {
            let (access, stored) = ssr::visible_rules(&project).await?;
            let before = crate::store::StoredRule::policy_rules(&stored);
            let existing = rule_id.map(|id| {
                before
                    .iter()
                    .find(|rule| rule.id == id)
                    .cloned()
                    .ok_or_else(|| AppError::NotFound(format!("project `{project}` has no rule {id}")))
            });
            let existing = existing.transpose()?;
            let changed = if remove {
                None
            } else {
                let spec = match (&draft, &existing) {
                    (Some(draft), _) => {
                        RuleSpec::parse(draft).map_err(|errors| AppError::Invalid(errors.to_string()))?
                    }
                    (None, Some(rule)) => rule.spec.clone(),
                    (None, None) => {
                        RuleSpec::parse(&RuleInput::default()).map_err(|e| AppError::Invalid(e.to_string()))?
                    }
                };
                Some(PolicyRule { id: rule_id.unwrap_or(DRAFT_RULE_ID), state: RuleState::Enforced, spec })
            };
            // An edited rule keeps its state: a disabled or evaluating one makes nothing immutable
            // after the edit either (what it would protect on its own is still shown).
            let state = existing.as_ref().map_or(RuleState::Enforced, |rule| rule.state);
            let mut after: Vec<PolicyRule> = before.iter().filter(|rule| Some(rule.id) != rule_id).cloned().collect();
            after.extend(changed.clone().map(|rule| PolicyRule { state, ..rule }));
            crate::inventory::counting::impact(
                &pool,
                Some(&portal.inventory_counts),
                &access.name,
                &before,
                &after,
                changed.as_ref(),
            )
            .await
        }
        .await,
    )
}

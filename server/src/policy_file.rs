//! Policy as code: a project's rules as a YAML file (`tagward policy export`), and the changes that
//! make the stored rules match a file (`tagward policy apply`), applied all at once or not at all.
//!
//! ```yaml
//! project: shop
//! rules:
//!   # For the repositories matching **, tags matching v*.*.*
//!   - id: 12            # optional: a rule without one is matched by its patterns, else added
//!     state: enforced   # optional: enforced (the default), evaluating or disabled
//!                       # (files written before states say `enabled: true|false`, still read)
//!     repositories: {action: matching, patterns: "**"}
//!     tags: {action: matching, patterns: "v*.*.*"}
//! webhooks:             # optional: when given, the project's webhooks are exactly these
//!   - url: https://hooks.example.com/tagward
//!     events: [drift.found, exception.used]   # or [all]
//!     format: cloudevents                     # or slack
//!     secret_env: SHOP_HOOK_SECRET            # the variable holding its secret (needed to add one)
//! ```

use app::inventory::Impact;
use app::policy::{PolicyRule, RuleInput, RuleSpec, RuleState, MAX_RULES};
use app::store::{RuleChange, StoredRule};
use serde::Deserialize;
use std::fmt::Write as _;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// The project the file was written for (`policy export` writes it). Optional: a file meant for
    /// many projects leaves it out (and its rule ids), and the command line names the project;
    /// when given, it must be the one named, so a file is not applied to another project by mistake.
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub rules: Vec<RuleEntry>,
    /// Absent: the project's webhooks are left as they are.
    #[serde(default)]
    pub webhooks: Option<Vec<WebhookEntry>>,
}

/// A webhook as a policy file names it. Secrets never appear in a file: `secret_env` and
/// `authorization_env` name the environment variables that hold them when they are set or changed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookEntry {
    pub url: String,
    pub events: Vec<String>,
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default)]
    pub secret_env: Option<String>,
    #[serde(default)]
    pub authorization_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleEntry {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub state: Option<RuleState>,
    /// How files written before rule states said it (`state` wins when both are given).
    #[serde(default)]
    pub enabled: Option<bool>,
    pub repositories: Side,
    pub tags: Side,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Side {
    pub action: String,
    pub patterns: String,
}

impl RuleEntry {
    fn state(&self) -> RuleState {
        match (self.state, self.enabled) {
            (Some(state), _) => state,
            (None, Some(false)) => RuleState::Disabled,
            (None, _) => RuleState::Enforced,
        }
    }

    fn input(&self) -> RuleInput {
        RuleInput {
            repositories_action: self.repositories.action.clone(),
            repositories: self.repositories.patterns.clone(),
            tags_action: self.tags.action.clone(),
            tags: self.tags.patterns.clone(),
        }
    }
}

/// A quoted YAML scalar (double quotes, escaped): patterns hold `*`, `{`, `[` and `,`.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

/// The project's rules (and webhooks) as a policy file: rule order, each with its sentence as a comment.
pub fn export(project: &str, rules: &[StoredRule], webhooks: &[app::store::WebhookListing]) -> String {
    let mut out = export_rules(project, rules);
    if !webhooks.is_empty() {
        let _ = writeln!(out, "webhooks:");
        for webhook in webhooks {
            let events: Vec<String> = webhook.events.iter().map(|event| quoted(event.as_str())).collect();
            let _ = writeln!(out, "  - url: {}", quoted(&webhook.url));
            let _ = writeln!(out, "    events: [{}]", events.join(", "));
            let _ = writeln!(out, "    format: {}", webhook.format.as_str());
            let _ = writeln!(
                out,
                "    # secret_env: NAME   # secrets are never exported; name a variable to set a new one"
            );
        }
    }
    out
}

fn export_rules(project: &str, rules: &[StoredRule]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# tag immutability policy of project {project}");
    let _ = writeln!(out, "# apply with: tagward policy apply {project} -f <this file> [--dry-run]");
    let _ = writeln!(out, "project: {}", quoted(project));
    if rules.is_empty() {
        let _ = writeln!(out, "rules: []");
        return out;
    }
    let _ = writeln!(out, "rules:");
    for rule in rules {
        let input = &rule.input;
        let _ = writeln!(out, "  # {}", rule.sentence());
        let _ = writeln!(out, "  - id: {}", rule.id);
        let _ = writeln!(out, "    state: {}", rule.state);
        let _ = writeln!(
            out,
            "    repositories: {{action: {}, patterns: {}}}",
            quoted(&input.repositories_action),
            quoted(&input.repositories)
        );
        let _ =
            writeln!(out, "    tags: {{action: {}, patterns: {}}}", quoted(&input.tags_action), quoted(&input.tags));
    }
    out
}

/// A refusal naming where in the file it is.
#[derive(Debug, thiserror::Error)]
#[error("{file}{location}: {message}")]
pub struct FileError {
    file: String,
    location: String,
    message: String,
}

/// One step from the stored rules to the file's.
pub enum Step {
    Remove(i64, String),
    Change { id: i64, before: String, after: RuleSpec },
    SetState(i64, RuleState, String),
    Add(RuleSpec, RuleState),
}

/// What applying a file does, in the order it is done.
pub struct Plan {
    pub steps: Vec<Step>,
    pub unchanged: usize,
    /// The webhooks the project is to have, when the file says.
    pub webhooks: Option<Vec<WebhookEntry>>,
}

impl Plan {
    pub fn changes(&self) -> Vec<RuleChange<'_>> {
        self.steps
            .iter()
            .map(|step| match step {
                Step::Remove(id, _) => RuleChange::Delete(*id),
                Step::Change { id, after, .. } => RuleChange::Update(*id, after),
                Step::SetState(id, state, _) => RuleChange::SetState(*id, *state),
                Step::Add(spec, state) => RuleChange::Create(spec, *state),
            })
            .collect()
    }

    /// The project's rules as they will be once the plan is applied (added rules numbered
    /// -1, -2, … until the database gives them ids), from the rules as they are.
    pub fn rules_after(&self, before: &[PolicyRule]) -> Vec<PolicyRule> {
        let mut rules = before.to_vec();
        let mut added = 0;
        for step in &self.steps {
            match step {
                Step::Remove(id, _) => rules.retain(|rule| rule.id != *id),
                Step::Change { id, after, .. } => {
                    rules.iter_mut().filter(|rule| rule.id == *id).for_each(|rule| rule.spec = after.clone());
                }
                Step::SetState(id, state, _) => {
                    rules.iter_mut().filter(|rule| rule.id == *id).for_each(|rule| rule.state = *state);
                }
                Step::Add(spec, state) => {
                    added -= 1;
                    rules.push(PolicyRule { id: added, state: *state, spec: spec.clone() });
                }
            }
        }
        rules
    }

    /// The difference, one line per step, and a count line.
    pub fn describe(&self, project: &str) -> String {
        let mut out = String::new();
        let (mut added, mut changed, mut enabled, mut disabled, mut evaluating, mut removed) = (0, 0, 0, 0, 0, 0);
        for step in &self.steps {
            let _ = match step {
                Step::Remove(id, sentence) => {
                    removed += 1;
                    writeln!(out, "- remove   rule {id}: {sentence}")
                }
                Step::Change { id, before, after } => {
                    changed += 1;
                    writeln!(out, "~ change   rule {id}: {before}\n           now: {}", after.sentence())
                }
                Step::SetState(id, RuleState::Enforced, sentence) => {
                    enabled += 1;
                    writeln!(out, "+ enable   rule {id}: {sentence}")
                }
                Step::SetState(id, RuleState::Evaluating, sentence) => {
                    evaluating += 1;
                    writeln!(out, "~ evaluate rule {id}: {sentence}")
                }
                Step::SetState(id, RuleState::Disabled, sentence) => {
                    disabled += 1;
                    writeln!(out, "- disable  rule {id}: {sentence}")
                }
                Step::Add(spec, state) => {
                    added += 1;
                    let state = if *state == RuleState::Enforced { String::new() } else { format!(" ({state})") };
                    writeln!(out, "+ add      {}{state}", spec.sentence())
                }
            };
        }
        let _ = writeln!(
            out,
            "project {project}: {added} added, {changed} changed, {enabled} enabled, {disabled} disabled, \
             {removed} removed, {} unchanged{}",
            self.unchanged,
            if evaluating > 0 { format!(", {evaluating} set to evaluate") } else { String::new() }
        );
        out
    }
}

/// Reads a policy file for `project` and plans the steps from `stored` to it. Every refusal names
/// the file, the line (where the file has one) and the field.
pub fn plan(file: &str, text: &str, project: &str, stored: &[StoredRule]) -> Result<Plan, FileError> {
    let refuse = |line: Option<usize>, message: String| FileError {
        file: file.to_owned(),
        location: line.map(|line| format!(":{line}")).unwrap_or_default(),
        message,
    };
    let policy: PolicyFile = serde_yaml_ng::from_str(text).map_err(|error| {
        let line = error.location().map(|location| location.line());
        refuse(line, error.to_string())
    })?;
    let lines = RuleLines::find(text);
    if let Some(written_for) = policy.project.as_deref().filter(|written_for| *written_for != project) {
        let line = text.lines().position(|line| line.trim_start().starts_with("project:")).map(|i| i + 1);
        return Err(refuse(line, format!("project: the file is for project `{written_for}`, not `{project}`")));
    }
    if policy.rules.len() > MAX_RULES {
        return Err(refuse(
            lines.field(MAX_RULES, None),
            format!(
                "rules[{MAX_RULES}]: a project holds at most {MAX_RULES} rules, the file has {}",
                policy.rules.len()
            ),
        ));
    }
    let mut wanted: Vec<(usize, &RuleEntry, RuleSpec)> = Vec::with_capacity(policy.rules.len());
    for (index, entry) in policy.rules.iter().enumerate() {
        let spec = RuleSpec::parse(&entry.input()).map_err(|errors| {
            let field = if errors.repositories.is_some() { "repositories" } else { "tags" };
            refuse(lines.field(index, Some(field)), format!("rules[{index}].{field}: {errors}"))
        })?;
        if let Some((other, _, _)) = wanted.iter().find(|(_, _, other)| other.same_as(&spec)) {
            return Err(refuse(
                lines.field(index, None),
                format!("rules[{index}]: the same rule as rules[{other}] ({})", spec.summary()),
            ));
        }
        if let Some(id) = entry.id {
            if !stored.iter().any(|rule| rule.id == id) {
                return Err(refuse(
                    lines.field(index, Some("id")),
                    format!("rules[{index}].id: project `{project}` has no rule {id} (leave `id` out to add a rule)"),
                ));
            }
            if let Some((other, _, _)) = wanted.iter().find(|(_, other, _)| other.id == Some(id)) {
                return Err(refuse(
                    lines.field(index, Some("id")),
                    format!("rules[{index}].id: {id} is rules[{other}]'s too"),
                ));
            }
        }
        wanted.push((index, entry, spec));
    }

    // Each stored rule is claimed by the entry naming its id, else by an entry without an id and
    // with the same patterns; what is left unclaimed is removed.
    let mut claimed: Vec<Option<&StoredRule>> =
        wanted.iter().map(|(_, entry, _)| entry.id.and_then(|id| stored.iter().find(|rule| rule.id == id))).collect();
    for (slot, (_, entry, spec)) in claimed.iter_mut().zip(&wanted) {
        if entry.id.is_none() {
            *slot = stored.iter().find(|rule| {
                rule.spec.as_ref().is_ok_and(|stored| stored.same_as(spec))
                    && !wanted.iter().any(|(_, other, _)| other.id == Some(rule.id))
            });
        }
    }
    let mut steps: Vec<Step> = stored
        .iter()
        .filter(|rule| !claimed.iter().flatten().any(|claimed| claimed.id == rule.id))
        .map(|rule| Step::Remove(rule.id, rule.sentence()))
        .collect();
    let mut unchanged = 0;
    let mut later = Vec::new();
    for ((_, entry, spec), claimed) in wanted.into_iter().zip(claimed) {
        match claimed {
            None => later.push(Step::Add(spec, entry.state())),
            Some(rule) => {
                let same = rule.spec.as_ref().is_ok_and(|stored| stored.same_as(&spec));
                if !same {
                    steps.push(Step::Change { id: rule.id, before: rule.sentence(), after: spec.clone() });
                }
                if rule.state != entry.state() {
                    later.insert(0, Step::SetState(rule.id, entry.state(), spec.sentence()));
                }
                if same && rule.state == entry.state() {
                    unchanged += 1;
                }
            }
        }
    }
    // Removals first (room under the limit), then changes, enabling/disabling, additions.
    steps.extend(later);
    Ok(Plan { steps, unchanged, webhooks: policy.webhooks.clone() })
}

/// Where each entry of `rules:` starts in a block-style file, to name lines in refusals.
struct RuleLines {
    /// For each entry: its first line (1-based) and the lines of its keys.
    entries: Vec<(usize, Vec<(String, usize)>)>,
}

impl RuleLines {
    fn find(text: &str) -> Self {
        let mut entries: Vec<(usize, Vec<(String, usize)>)> = Vec::new();
        let mut in_rules = false;
        let mut item_indent = None;
        for (number, line) in text.lines().enumerate().map(|(i, line)| (i + 1, line)) {
            let content = line.split('#').next().unwrap_or("");
            let trimmed = content.trim_start();
            if trimmed.is_empty() {
                continue;
            }
            let indent = content.len() - trimmed.len();
            if indent == 0 {
                in_rules = trimmed.starts_with("rules:");
                continue;
            }
            if !in_rules {
                continue;
            }
            let key_of = |text: &str| text.split_once(':').map(|(key, _)| key.trim().to_owned());
            if let Some(rest) = trimmed.strip_prefix("- ") {
                if item_indent.is_none_or(|item| item == indent) {
                    item_indent = Some(indent);
                    entries.push((number, key_of(rest).map(|key| (key, number)).into_iter().collect()));
                    continue;
                }
            }
            if let (Some(entry), Some(key)) = (entries.last_mut(), key_of(trimmed)) {
                entry.1.push((key, number));
            }
        }
        Self { entries }
    }

    /// The line of `rules[index]` (of its `field` when given and found).
    fn field(&self, index: usize, field: Option<&str>) -> Option<usize> {
        let (start, keys) = self.entries.get(index)?;
        Some(field.and_then(|field| keys.iter().find(|(key, _)| key == field).map(|(_, line)| *line)).unwrap_or(*start))
    }
}

/// The impact on existing tags, for `policy apply`: what changes and how fresh the figures are.
pub fn describe_impact(impact: &Impact) -> String {
    let mut out = format!(
        "existing tags: {} become immutable, {} stop being immutable; {} immutable after, of {}",
        impact.becoming_immutable.phrase(),
        impact.ceasing_immutable.phrase(),
        impact.immutable_after.phrase(),
        impact.total.phrase(),
    );
    for (what, counted) in
        [("becomes immutable", &impact.becoming_immutable), ("stops being immutable", &impact.ceasing_immutable)]
    {
        for reference in &counted.examples {
            let _ = write!(out, "\n  {what}: {reference}");
        }
        if counted.tags > counted.examples.len() as u64 {
            let _ = write!(out, "\n  {what}: … and {} more", counted.tags - counted.examples.len() as u64);
        }
    }
    let _ = write!(out, "\n  ({})", impact.freshness.summary);
    if let Some(problem) = &impact.freshness.problem {
        let _ = write!(out, "\n  ({problem})");
    }
    out
}

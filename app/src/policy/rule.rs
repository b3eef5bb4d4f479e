//! A rule: which repositories and which tags it makes immutable.

use super::pattern::{parse_list, Field, Pattern, PatternError, Problem};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Whether a selector keeps what its patterns match, or everything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    #[default]
    Matching,
    Excluding,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Matching => "matching",
            Action::Excluding => "excluding",
        }
    }
    pub fn parse(field: Field, value: &str) -> Result<Self, PatternError> {
        match value.trim() {
            "matching" => Ok(Action::Matching),
            "excluding" => Ok(Action::Excluding),
            other => Err(PatternError { field, item: None, problem: Problem::UnknownAction(other.to_owned()) }),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One side of a rule: an action and its patterns, in the order typed, without repeats.
#[derive(Debug, Clone)]
pub struct Selector {
    action: Action,
    patterns: Vec<Pattern>,
}

impl Selector {
    /// Parses the action and the comma-separated list typed for `field`.
    pub fn parse(field: Field, action: Action, list: &str) -> Result<Self, PatternError> {
        let patterns = parse_list(field, list)?;
        if action == Action::Excluding {
            if let Some((index, pattern)) = patterns.iter().enumerate().find(|(_, p)| p.matches_everything()) {
                return Err(PatternError {
                    field,
                    item: Some((index + 1, pattern.as_str().to_owned())),
                    problem: Problem::ExcludesEverything,
                });
            }
        }
        Ok(Self { action, patterns })
    }
    pub fn action(&self) -> Action {
        self.action
    }
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }
    /// The list as it is stored and shown: items joined by `, `.
    pub fn list(&self) -> String {
        let items: Vec<&str> = self.patterns.iter().map(Pattern::as_str).collect();
        items.join(", ")
    }
    /// What makes two selectors the same whatever the order, spacing or repetition of their items.
    fn key(&self) -> (Action, Vec<&str>) {
        let mut canonical: Vec<&str> = self.patterns.iter().map(Pattern::canonical).collect();
        canonical.sort_unstable();
        (self.action, canonical)
    }
}

/// The text a person typed for a rule, before parsing: what a form, the CLI or an API hands in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleInput {
    pub repositories_action: String,
    pub repositories: String,
    pub tags_action: String,
    pub tags: String,
}

impl Default for RuleInput {
    /// The dialog's defaults: repositories matching `**`, tags matching `**`.
    fn default() -> Self {
        Self {
            repositories_action: "matching".into(),
            repositories: "**".into(),
            tags_action: "matching".into(),
            tags: "**".into(),
        }
    }
}

/// Which policy a project has: its enabled rules' ids, in order, and a fingerprint of their text
/// (equal text, equal fingerprint, in any project). Enforcement compiles one policy for all the
/// projects whose text is equal; the portal keeps what it counted per version.
#[cfg(feature = "ssr")]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PolicyVersion {
    pub rule_ids: Box<[i64]>,
    pub text: [u8; 32],
}

#[cfg(feature = "ssr")]
impl PolicyVersion {
    /// The version of these active rules (id, state and text, in order).
    pub fn of<'a>(rules: impl IntoIterator<Item = (i64, RuleState, &'a RuleInput)>) -> Self {
        let (ids, texts): (Vec<i64>, Vec<(RuleState, &RuleInput)>) =
            rules.into_iter().map(|(id, state, input)| (id, (state, input))).unzip();
        Self { rule_ids: ids.into(), text: Self::text_of(texts) }
    }

    /// The fingerprint of the rules' states and text alone.
    pub fn text_of<'a>(rules: impl IntoIterator<Item = (RuleState, &'a RuleInput)>) -> [u8; 32] {
        use sha2::Digest;
        let mut hasher = sha2::Sha256::new();
        for (state, rule) in rules {
            hasher.update([state as u8]);
            // Lengths first, so that no two different rule lists hash the same text.
            for part in [&rule.repositories_action, &rule.repositories, &rule.tags_action, &rule.tags] {
                hasher.update((part.len() as u64).to_le_bytes());
                hasher.update(part.as_bytes());
            }
        }
        hasher.finalize().into()
    }
}

/// Everything wrong with a rule's input, per field, so a form can show each next to its field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleErrors {
    pub repositories: Option<PatternError>,
    pub tags: Option<PatternError>,
}

impl fmt::Display for RuleErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let errors: Vec<String> =
            [&self.repositories, &self.tags].into_iter().flatten().map(ToString::to_string).collect();
        f.write_str(&errors.join("; "))
    }
}

impl std::error::Error for RuleErrors {}

/// A valid rule: both selectors parsed, neither able to exclude everything.
#[derive(Debug, Clone)]
pub struct RuleSpec {
    repositories: Selector,
    tags: Selector,
}

impl RuleSpec {
    pub fn parse(input: &RuleInput) -> Result<Self, RuleErrors> {
        let side = |field, action: &str, list: &str| {
            Action::parse(field, action).and_then(|action| Selector::parse(field, action, list))
        };
        let repositories = side(Field::Repositories, &input.repositories_action, &input.repositories);
        let tags = side(Field::Tags, &input.tags_action, &input.tags);
        match (repositories, tags) {
            (Ok(repositories), Ok(tags)) => Ok(Self { repositories, tags }),
            (repositories, tags) => Err(RuleErrors { repositories: repositories.err(), tags: tags.err() }),
        }
    }
    pub fn repositories(&self) -> &Selector {
        &self.repositories
    }
    pub fn tags(&self) -> &Selector {
        &self.tags
    }
    /// The input that parses back to this rule (what is stored).
    pub fn to_input(&self) -> RuleInput {
        RuleInput {
            repositories_action: self.repositories.action.as_str().into(),
            repositories: self.repositories.list(),
            tags_action: self.tags.action.as_str().into(),
            tags: self.tags.list(),
        }
    }
    /// Whether two rules make the same tags immutable by construction (same actions, same patterns).
    pub fn same_as(&self, other: &RuleSpec) -> bool {
        self.repositories.key() == other.repositories.key() && self.tags.key() == other.tags.key()
    }
    /// `repositories matching **, tags excluding rc, test, nightly`.
    pub fn summary(&self) -> String {
        format!(
            "repositories {} {}, tags {} {}",
            self.repositories.action,
            self.repositories.list(),
            self.tags.action,
            self.tags.list()
        )
    }
    /// The rule as a sentence for the list: `For the repositories matching **, tags matching v*.*.*`.
    pub fn sentence(&self) -> String {
        format!("For the {}", self.summary())
    }
}

/// What a rule does: deny what it protects (`enforced`), only report what it would deny
/// (`evaluating`: it runs with the enforced rules, blocks nothing, and each push or delete it alone
/// would have refused is recorded), or nothing (`disabled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RuleState {
    #[default]
    Enforced,
    Evaluating,
    Disabled,
}

impl RuleState {
    pub const ALL: [RuleState; 3] = [RuleState::Enforced, RuleState::Evaluating, RuleState::Disabled];

    pub fn as_str(self) -> &'static str {
        match self {
            RuleState::Enforced => "enforced",
            RuleState::Evaluating => "evaluating",
            RuleState::Disabled => "disabled",
        }
    }

    pub fn parse(value: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == value.trim())
            .ok_or_else(|| format!("state `{value}` is not one of enforced, evaluating, disabled"))
    }

    /// Whether the engine compiles it (enforced and evaluating rules; not disabled ones).
    pub fn is_active(self) -> bool {
        self != RuleState::Disabled
    }
}

impl fmt::Display for RuleState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule as the engine sees it: the one shape a stored rule is carried in, from the store to
/// the compiled policy.
#[derive(Debug, Clone)]
pub struct PolicyRule {
    pub id: i64,
    pub state: RuleState,
    pub spec: RuleSpec,
}

impl PolicyRule {
    /// A rule from its stored text: the one way text becomes a rule the engine runs (the store
    /// reads its rows with it; the decision caches, which keep only text until they compile, too).
    pub fn parse(id: i64, state: RuleState, input: &RuleInput) -> Result<Self, RuleErrors> {
        Ok(PolicyRule { id, state, spec: RuleSpec::parse(input)? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(ra: &str, r: &str, ta: &str, t: &str) -> RuleInput {
        RuleInput { repositories_action: ra.into(), repositories: r.into(), tags_action: ta.into(), tags: t.into() }
    }

    #[test]
    fn sentences_read_like_the_registry() {
        let rule = RuleSpec::parse(&input("matching", "**", "excluding", "rc, test,nightly")).unwrap();
        assert_eq!(rule.sentence(), "For the repositories matching **, tags excluding rc, test, nightly");
    }

    #[test]
    fn identical_after_normalisation() {
        let a = RuleSpec::parse(&input("matching", "**", "excluding", "rc,test,nightly")).unwrap();
        let b = RuleSpec::parse(&input("matching", " ** ", "excluding", "nightly, test, rc, rc")).unwrap();
        let c = RuleSpec::parse(&input("matching", "**", "matching", "nightly, test, rc")).unwrap();
        assert!(a.same_as(&b));
        assert!(!a.same_as(&c));
    }

    #[test]
    fn both_fields_report_their_errors() {
        let errors = RuleSpec::parse(&input("excluding", "**", "sometimes", "x")).unwrap_err();
        assert_eq!(
            errors.repositories.unwrap().to_string(),
            "repositories: item 1 \"**\" excludes everything, so this rule could never match"
        );
        assert_eq!(
            errors.tags.unwrap().to_string(),
            "tags: the action `sometimes` is neither `matching` nor `excluding`"
        );
        let errors = RuleSpec::parse(&input("matching", "**", "excluding", "a, **")).unwrap_err();
        assert!(errors.repositories.is_none());
        assert!(errors.tags.unwrap().to_string().contains("item 2 \"**\" excludes everything"));
    }

    #[test]
    fn stored_form_round_trips() {
        let rule = RuleSpec::parse(&input("excluding", "{a,b}/api, team/**", "matching", "v*.*.*")).unwrap();
        let again = RuleSpec::parse(&rule.to_input()).unwrap();
        assert!(rule.same_as(&again));
        assert_eq!(rule.to_input(), again.to_input());
    }
}

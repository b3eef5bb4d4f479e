//! A project's enabled rules compiled for deciding: each side (repositories, tags) of every rule
//! in one matcher, so a decision is two side matches and a few bit operations, however many rules.
//!
//! Two matchers, one API. On the server (feature `server-matcher`) every pattern's glob becomes a
//! regex and all of them run as one multi-pattern automaton: one pass over the name, about 100 ns
//! a decision. In the browser (the live preview) the [`interpreted`](super::interpreted) matcher
//! runs instead, with no regex engine in the download. The property tests hold both equal to the
//! reference evaluator.

use super::interpreted::PatternMatcher;
use super::pattern::Field;
use super::rule::{Action, PolicyRule, RuleSpec, RuleState, Selector};
use std::sync::Arc;

/// The product's limit of rules per project (enforced where rules are stored).
pub const MAX_RULES: usize = 15;
/// The most pattern characters one project's rules may hold in all (every rule, enabled or not,
/// both sides). Within it every policy compiles, in milliseconds (the policy benchmark's
/// "compile at the budget"); far beyond it the combined matcher can take seconds to build
/// or fail to build at all. Checked when rules are saved, from every surface.
pub const MAX_POLICY_PATTERN_CHARS: usize = 4096;
/// What one compiled policy can hold: one bit per enabled rule.
const MASK_BITS: usize = 64;

/// A set of rules of one compiled policy, by position.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleMask(u64);

impl RuleMask {
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// How many rules.
    pub fn len(self) -> u32 {
        self.0.count_ones()
    }
    fn positions(self) -> impl Iterator<Item = usize> {
        let mut rest = self.0;
        std::iter::from_fn(move || {
            let position = rest.trailing_zeros() as usize;
            rest &= rest.checked_sub(1)?;
            Some(position)
        })
    }
}

/// A policy with its repository side matched: [`CompiledPolicy::in_repository`].
pub struct RepositoryPolicy<'a> {
    policy: &'a CompiledPolicy,
    repositories: u64,
}

impl RepositoryPolicy<'_> {
    /// The rules that make `tag` of this repository immutable: the same answer as
    /// [`CompiledPolicy::immutable_rules`] for the repository's path.
    pub fn immutable_rules(&self, tag: &str) -> RuleMask {
        if self.repositories == 0 {
            return RuleMask(0);
        }
        RuleMask(self.repositories & self.policy.matchers.tags.holding(tag) & !self.policy.matchers.evaluating)
    }
}

/// A rule as decisions report it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuleInfo {
    pub id: i64,
    pub summary: String,
}

impl RuleInfo {
    fn new(id: i64, summary: &str) -> Self {
        Self { id, summary: summary.to_owned() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("a policy holds at most {MASK_BITS} enforced and evaluating rules, got {0}")]
    TooManyRules(usize),
    #[error("pattern `{pattern}` did not compile: {reason}")]
    Glob { pattern: String, reason: String },
}

/// Why a project's rule set cannot be enforced as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "{field}: the project's rules would hold {total} pattern characters in all, more than the \
         {MAX_POLICY_PATTERN_CHARS} one project may hold (this rule's {field} have {own}); use fewer \
         or shorter patterns"
    )]
    TooLarge { field: Field, total: usize, own: usize },
    #[error("the project's rules hold {0} pattern characters in all, more than the {MAX_POLICY_PATTERN_CHARS} one project may hold")]
    StoredTooLarge(usize),
    #[error("the project's rules do not compile: {0}")]
    DoesNotCompile(String),
}

/// The pattern characters of one rule: (repositories, tags).
fn pattern_chars(spec: &RuleSpec) -> (usize, usize) {
    let side = |selector: &Selector| selector.patterns().iter().map(|p| p.as_str().len()).sum::<usize>();
    (side(spec.repositories()), side(spec.tags()))
}

fn total_pattern_chars<'a>(specs: impl IntoIterator<Item = &'a RuleSpec>) -> usize {
    specs.into_iter().map(pattern_chars).map(|(repositories, tags)| repositories + tags).sum()
}

/// Checks that a project's whole rule set, as it would be stored with `changed` among it, can be
/// enforced: within [`MAX_POLICY_PATTERN_CHARS`] and compiling with every rule enabled (so enabling
/// one later cannot break it). Compiling takes milliseconds; callers on an async runtime run this
/// on a blocking thread.
pub fn check_rule_set(rules: &[RuleSpec], changed: Option<&RuleSpec>) -> Result<(), PolicyError> {
    let total = total_pattern_chars(rules);
    if total > MAX_POLICY_PATTERN_CHARS {
        return Err(match changed.map(pattern_chars) {
            Some((repositories, tags)) if repositories >= tags => {
                PolicyError::TooLarge { field: Field::Repositories, total, own: repositories }
            }
            Some((_, tags)) => PolicyError::TooLarge { field: Field::Tags, total, own: tags },
            None => PolicyError::StoredTooLarge(total),
        });
    }
    let rules: Vec<PolicyRule> =
        rules.iter().map(|spec| PolicyRule { id: 0, state: RuleState::Enforced, spec: spec.clone() }).collect();
    CompiledPolicy::compile(&rules).map(drop).map_err(|error| PolicyError::DoesNotCompile(error.to_string()))
}

/// Whether stored rules are within the budget, without compiling them (a cheap check at load:
/// rules past it were written outside tagward, and are not compiled at all).
pub fn check_stored_size<'a>(rules: impl IntoIterator<Item = &'a PolicyRule>) -> Result<(), PolicyError> {
    let total = total_pattern_chars(rules.into_iter().map(|rule| &rule.spec));
    if total > MAX_POLICY_PATTERN_CHARS {
        return Err(PolicyError::StoredTooLarge(total));
    }
    Ok(())
}

/// One side (repositories or tags) of every enabled rule.
#[derive(Debug, Clone)]
enum SideMatcher {
    #[cfg(feature = "server-matcher")]
    Regex(regex_side::RegexSide),
    Interpreted(InterpretedSide),
}

impl SideMatcher {
    /// The rules whose selector on this side holds for `name`.
    fn holding(&self, name: &str) -> u64 {
        match self {
            #[cfg(feature = "server-matcher")]
            SideMatcher::Regex(side) => side.holding(name),
            SideMatcher::Interpreted(side) => side.holding(name),
        }
    }
}

/// Which side of a rule.
type Side = fn(&RuleSpec) -> &Selector;

/// The rules whose action on this side is `excluding`, as bits.
fn excluding(rules: &[&PolicyRule], side: Side) -> u64 {
    rules
        .iter()
        .enumerate()
        .filter(|(_, rule)| side(&rule.spec).action() == Action::Excluding)
        .fold(0, |bits, (position, _)| bits | 1u64 << position)
}

/// Every pattern of one side, each tried on its own.
#[derive(Debug, Clone)]
struct InterpretedSide {
    /// Each pattern with the bit of the rule it belongs to.
    patterns: Box<[(PatternMatcher, u64)]>,
    excluding: u64,
}

impl InterpretedSide {
    fn build(rules: &[&PolicyRule], side: Side, field: Field) -> Self {
        let patterns = rules
            .iter()
            .enumerate()
            .flat_map(|(position, rule)| {
                side(&rule.spec)
                    .patterns()
                    .iter()
                    .map(move |pattern| (PatternMatcher::new(pattern, field), 1u64 << position))
            })
            .collect();
        Self { patterns, excluding: excluding(rules, side) }
    }

    fn holding(&self, name: &str) -> u64 {
        let mut hits = 0u64;
        for (pattern, bit) in &self.patterns {
            if hits & bit == 0 && pattern.matches(name) {
                hits |= bit;
            }
        }
        hits ^ self.excluding
    }
}

#[cfg(feature = "server-matcher")]
mod regex_side {
    use super::{excluding, CompileError, PolicyRule, Side};
    use globset::GlobBuilder;
    use regex_automata::meta::Regex;
    use regex_automata::{Anchored, Input, MatchKind, PatternSet};
    use std::cell::RefCell;

    /// Every pattern's glob translated by `globset` to a regex, all of them run as one
    /// multi-pattern regex (one pass over the name, whatever the number of patterns).
    #[derive(Debug, Clone)]
    pub(super) struct RegexSide {
        regex: Regex,
        /// For each pattern of `regex`, the bit of the rule it belongs to.
        owner: Vec<u64>,
        excluding: u64,
    }

    thread_local! {
        /// Reused by every match on a thread, so that a decision allocates nothing once warm.
        static MATCHES: RefCell<PatternSet> = RefCell::new(PatternSet::new(0));
    }

    impl RegexSide {
        pub(super) fn build(rules: &[&PolicyRule], side: Side) -> Result<Self, CompileError> {
            let mut patterns = Vec::new();
            let mut owner = Vec::new();
            for (position, rule) in rules.iter().enumerate() {
                for pattern in side(&rule.spec).patterns() {
                    let glob = GlobBuilder::new(pattern.canonical())
                        .literal_separator(true)
                        .backslash_escape(false)
                        .empty_alternates(true)
                        .build()
                        .map_err(|source| CompileError::Glob {
                            pattern: pattern.as_str().to_owned(),
                            reason: source.to_string(),
                        })?;
                    patterns.push(glob.regex().to_owned());
                    owner.push(1u64 << position);
                }
            }
            // globset's regexes are byte-oriented (`(?-u)`); names are ASCII, so bytes are characters.
            let regex = Regex::builder()
                .syntax(regex_automata::util::syntax::Config::new().utf8(false))
                .configure(Regex::config().match_kind(MatchKind::All).utf8_empty(false))
                .build_many(&patterns)
                .map_err(|source| CompileError::Glob {
                    pattern: "(all patterns)".to_owned(),
                    reason: source.to_string(),
                })?;
            Ok(Self { regex, owner, excluding: excluding(rules, side) })
        }

        pub(super) fn holding(&self, name: &str) -> u64 {
            MATCHES.with(|matches| {
                let mut matches = matches.borrow_mut();
                if matches.capacity() < self.regex.pattern_len() {
                    *matches = PatternSet::new(self.regex.pattern_len());
                }
                matches.clear();
                let input = Input::new(name).anchored(Anchored::Yes);
                self.regex.which_overlapping_matches(&input, &mut matches);
                let hits = matches
                    .iter()
                    .filter_map(|pattern| self.owner.get(pattern.as_usize()))
                    .fold(0u64, |acc, bit| acc | bit);
                hits ^ self.excluding
            })
        }
    }
}

/// What a policy decides with, apart from its rules' ids: shared by every project whose enabled
/// rules read the same (projects made from one template), see [`CompiledPolicy::sharing`].
#[derive(Debug)]
pub struct PolicyMatchers {
    /// Each enabled rule's summary, by position.
    summaries: Box<[Box<str>]>,
    repositories: SideMatcher,
    tags: SideMatcher,
    all: u64,
    /// The positions of the evaluating rules: they match like the others, make nothing immutable,
    /// and decisions say what they would have denied.
    evaluating: u64,
}

/// One project's enforced and evaluating rules, ready to answer.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    /// Each enabled rule's id, by position.
    ids: Box<[i64]>,
    matchers: Arc<PolicyMatchers>,
}

impl CompiledPolicy {
    /// Compiles the enabled rules (disabled ones are left out) with the build's matcher: the
    /// regex-based one on the server, the interpreted one in the browser.
    pub fn compile<'a>(rules: impl IntoIterator<Item = &'a PolicyRule>) -> Result<Self, CompileError> {
        #[cfg(feature = "server-matcher")]
        {
            Self::build(rules, |enabled, side, _| regex_side::RegexSide::build(enabled, side).map(SideMatcher::Regex))
        }
        #[cfg(not(feature = "server-matcher"))]
        {
            Self::interpreted(rules)
        }
    }

    /// Compiles the enabled rules with the interpreted matcher (no regex engine): a fifth of the
    /// regex matcher's memory, what a server holding every project's policy keeps.
    pub fn interpreted<'a>(rules: impl IntoIterator<Item = &'a PolicyRule>) -> Result<Self, CompileError> {
        Self::build(rules, |enabled, side, field| {
            Ok(SideMatcher::Interpreted(InterpretedSide::build(enabled, side, field)))
        })
    }

    fn build<'a>(
        rules: impl IntoIterator<Item = &'a PolicyRule>,
        matcher: impl Fn(&[&PolicyRule], Side, Field) -> Result<SideMatcher, CompileError>,
    ) -> Result<Self, CompileError> {
        let enabled: Vec<&PolicyRule> = rules.into_iter().filter(|r| r.state.is_active()).collect();
        if enabled.len() > MASK_BITS {
            return Err(CompileError::TooManyRules(enabled.len()));
        }
        let all = if enabled.len() == MASK_BITS { u64::MAX } else { (1u64 << enabled.len()) - 1 };
        let matchers = PolicyMatchers {
            repositories: matcher(&enabled, RuleSpec::repositories, Field::Repositories)?,
            tags: matcher(&enabled, RuleSpec::tags, Field::Tags)?,
            summaries: enabled.iter().map(|r| r.spec.summary().into_boxed_str()).collect(),
            all,
            evaluating: enabled
                .iter()
                .enumerate()
                .filter(|(_, rule)| rule.state == RuleState::Evaluating)
                .fold(0, |mask, (position, _)| mask | (1u64 << position)),
        };
        Ok(Self { ids: enabled.iter().map(|r| r.id).collect(), matchers: Arc::new(matchers) })
    }

    /// This policy's matchers with other rule ids: for a project whose enabled rules read the
    /// same as this one's, in the same order. `None` when the number of rules differs.
    pub fn sharing(&self, ids: Box<[i64]>) -> Option<Self> {
        (ids.len() == self.ids.len()).then(|| Self { ids, matchers: self.matchers.clone() })
    }

    /// A policy without rules: nothing is immutable.
    pub fn empty() -> Self {
        Self::compile([]).unwrap_or_else(|_| unreachable!("an empty policy always compiles"))
    }

    pub fn rule_count(&self) -> usize {
        self.ids.len()
    }

    /// The rules that make `tag` of the repository at `path` (inside the project) immutable: the
    /// enforced ones that match.
    pub fn immutable_rules(&self, path: &str, tag: &str) -> RuleMask {
        RuleMask(self.matching_rules(path, tag).0 & !self.matchers.evaluating)
    }

    /// Every rule that matches `tag` of the repository at `path`, evaluating ones too.
    pub(super) fn matching_rules(&self, path: &str, tag: &str) -> RuleMask {
        let matchers = &*self.matchers;
        let repositories = matchers.repositories.holding(path) & matchers.all;
        if repositories == 0 {
            return RuleMask(0);
        }
        RuleMask(repositories & matchers.tags.holding(tag))
    }

    /// Whether any rule, enforced or evaluating, matches `tag` of the repository at `path`.
    pub fn is_ruled(&self, path: &str, tag: &str) -> bool {
        !self.matching_rules(path, tag).is_empty()
    }

    /// The evaluating rules of `mask`.
    pub(super) fn evaluating_of(&self, mask: RuleMask) -> RuleMask {
        RuleMask(mask.0 & self.matchers.evaluating)
    }

    /// Whether any rule is evaluating (if none, decisions need no second look).
    pub fn has_evaluating_rules(&self) -> bool {
        self.matchers.evaluating != 0
    }

    /// The policy for one repository (at `path` inside the project): the repository side is
    /// matched once, for the many tags of it that are then asked about (the inventory's counts).
    pub fn in_repository(&self, path: &str) -> RepositoryPolicy<'_> {
        let matchers = &*self.matchers;
        RepositoryPolicy { policy: self, repositories: matchers.repositories.holding(path) & matchers.all }
    }

    /// The ids of the rules of a mask, in rule order.
    pub fn rule_ids(&self, mask: RuleMask) -> impl Iterator<Item = i64> + '_ {
        mask.positions().filter_map(|position| self.ids.get(position).copied())
    }

    /// The rules of a mask, in rule order.
    pub fn rules(&self, mask: RuleMask) -> impl Iterator<Item = RuleInfo> + '_ {
        self.rule_summaries(mask).map(|(id, summary)| RuleInfo::new(id, summary))
    }

    /// The id and summary of each rule in `mask`, borrowed (for messages, which copy them anyway).
    pub(super) fn rule_summaries(&self, mask: RuleMask) -> impl Iterator<Item = (i64, &str)> + '_ {
        mask.positions()
            .filter_map(|position| Some((*self.ids.get(position)?, self.matchers.summaries.get(position)?.as_ref())))
    }
}

//! A deliberately plain evaluator: it walks the rules one by one and matches each pattern on its own
//! with a backtracking matcher written from DESIGN.md §2, the way Harbor loops over doublestar
//! patterns. It shares no matching code with the compiled policy, so the property tests that compare
//! the two check the glob translation, and the benchmarks use it as the baseline.

use super::pattern::{Field, Pattern, Token};
use super::rule::{Action, PolicyRule, Selector};

/// The ids of the enforced rules that make `tag` of the repository at `path` immutable.
pub fn immutable_rule_ids(rules: &[PolicyRule], path: &str, tag: &str) -> Vec<i64> {
    rules
        .iter()
        .filter(|rule| rule.state == super::RuleState::Enforced)
        .filter(|rule| {
            holds(rule.spec.repositories(), Field::Repositories, path) && holds(rule.spec.tags(), Field::Tags, tag)
        })
        .map(|rule| rule.id)
        .collect()
}

fn holds(selector: &Selector, field: Field, name: &str) -> bool {
    let any = selector.patterns().iter().any(|pattern| matches(pattern, field, name));
    match selector.action() {
        Action::Matching => any,
        Action::Excluding => !any,
    }
}

/// Whether one pattern matches the whole of `name`.
pub fn matches(pattern: &Pattern, field: Field, name: &str) -> bool {
    let name: Vec<char> = name.chars().collect();
    match_tokens(pattern.tokens(), field, &name)
}

fn match_tokens(tokens: &[Token], field: Field, name: &[char]) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return name.is_empty();
    };
    // One character taken by a single-character token, then the rest.
    let one = |accepts: &dyn Fn(char) -> bool| matches!(name.split_first(), Some((&c, tail)) if accepts(c) && match_tokens(rest, field, tail));
    match first {
        Token::Literal(literal) => one(&|c| c == *literal),
        Token::AnyChar => one(&|c| c != '/'),
        Token::Class { negated, ranges } => one(&|c| {
            let inside = ranges.iter().any(|&(start, end)| start <= c && c <= end);
            c != '/' && inside != *negated
        }),
        Token::Star => match_run(rest, field, name, false),
        Token::DoubleStar if field == Field::Tags => match_run(rest, field, name, false),
        Token::DoubleStar => {
            // `**/` may also stand for no segment at all: `**/api` matches `api`, `a/**/b` matches `a/b`.
            let skips_segment = matches!(rest.split_first(), Some((Token::Literal('/'), after))
                if match_tokens(after, field, name));
            skips_segment || match_run(rest, field, name, true)
        }
        Token::Alternatives(alternatives) => alternatives.iter().any(|alternative| {
            let joined: Vec<Token> = alternative.iter().chain(rest).cloned().collect();
            match_tokens(&joined, field, name)
        }),
    }
}

/// A wildcard consumes some prefix of `name` (with `/` only when `crosses_slash`), then `rest` matches.
fn match_run(rest: &[Token], field: Field, name: &[char], crosses_slash: bool) -> bool {
    let mut remaining = name;
    loop {
        if match_tokens(rest, field, remaining) {
            return true;
        }
        match remaining.split_first() {
            Some((&c, tail)) if c != '/' || crosses_slash => remaining = tail,
            _ => return false,
        }
    }
}

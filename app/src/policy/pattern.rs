//! Pattern lists as people type them (`rc, test, nightly`, `{a,b}/api, team/**`), parsed into
//! validated patterns. All checking happens here, on save; matching never meets a bad pattern.

use super::names::{is_path_component, is_tag};
use serde::{Deserialize, Serialize};
use std::fmt;

/// At most this many items in one list.
pub const MAX_ITEMS: usize = 50;
/// At most this many characters in one item.
pub const MAX_ITEM_LEN: usize = 255;

/// Which side of a rule a pattern list belongs to; it decides the alphabet and what `**` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Field {
    Repositories,
    Tags,
}

impl Field {
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Repositories => "repositories",
            Field::Tags => "tags",
        }
    }
    fn allows(self, c: char) -> bool {
        match self {
            Field::Repositories => c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-' | '/'),
            Field::Tags => c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'),
        }
    }
    fn alphabet(self) -> &'static str {
        match self {
            Field::Repositories => "lowercase letters, digits, `.`, `_`, `-` and `/`",
            Field::Tags => "letters, digits, `.`, `_` and `-`",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is wrong with a list or one of its items, in words for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Problem {
    #[error("enter at least one pattern")]
    EmptyList,
    #[error("has {0} items; at most {MAX_ITEMS} are allowed")]
    TooManyItems(usize),
    #[error("is empty (two commas in a row, or a comma at the start or end)")]
    EmptyItem,
    #[error("is {0} characters long; at most {MAX_ITEM_LEN} are allowed")]
    TooLong(usize),
    #[error("contains `{ch}`, which never occurs in {field} (they use {alphabet})")]
    ForeignCharacter { ch: char, field: Field, alphabet: String },
    #[error("has an unclosed character class (a `[` without its `]`)")]
    UnclosedClass,
    #[error("has an empty character class `[]`")]
    EmptyClass,
    #[error("has a character class with the backwards range `{0}-{1}`")]
    BackwardsRange(char, char),
    #[error("has the range `{0}-{1}`, which takes in `/`; a character class never matches `/`")]
    RangeSpansSlash(char, char),
    #[error("has an unclosed brace group (a `{{` without its `}}`)")]
    UnclosedBrace,
    #[error("has a `}}` without its `{{`")]
    UnopenedBrace,
    #[error("has a `]` without its `[`")]
    UnopenedClass,
    #[error("nests a brace group inside another; write the alternatives in one group")]
    NestedBraces,
    #[error("uses `{0}`; the wildcards are `*` and `**`")]
    TooManyStars(String),
    #[error("uses `**` inside a word; `**` must be a whole path segment, as in `**`, `team/**` or `**/api`")]
    DoubleStarNotSegment,
    #[error("uses `**` inside braces; list it as an item of its own instead")]
    DoubleStarInBraces,
    #[error("has an empty path segment (`//`, or `/` at the start or end)")]
    EmptySegment,
    #[error("has the segment `{0}`, which can never be part of a repository name (segments are lowercase letters and digits separated by `.`, `_`, `__` or `-`)")]
    ImpossibleSegment(String),
    #[error("can never be a tag (tags are 1 to 128 of `A-Z a-z 0-9 _ . -` and do not start with `.` or `-`)")]
    ImpossibleTag,
    #[error("starts with `{0}`, which no {1} starts with")]
    ImpossibleStart(char, String),
    #[error("the action `{0}` is neither `matching` nor `excluding`")]
    UnknownAction(String),
    #[error("excludes everything, so this rule could never match")]
    ExcludesEverything,
}

/// A refusal: the field, and the item (1-based) when the problem is in one item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatternError {
    pub field: Field,
    pub item: Option<(usize, String)>,
    pub problem: Problem,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.item {
            Some((index, text)) => write!(f, "{}: item {index} \"{text}\" {}", self.field, self.problem),
            None => write!(f, "{}: {}", self.field, self.problem),
        }
    }
}

impl std::error::Error for PatternError {}

/// One token of a glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    Literal(char),
    /// `?`: one character other than `/`.
    AnyChar,
    /// `*`: any run of characters other than `/`.
    Star,
    /// `**`: any run of whole path segments (repositories only; in tags it means `*`).
    DoubleStar,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    Alternatives(Vec<Vec<Token>>),
}

/// One validated pattern: the text as typed (trimmed) and its canonical glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    field: Field,
    text: String,
    tokens: Vec<Token>,
    canonical: String,
}

impl Pattern {
    /// The item as the user typed it, trimmed.
    pub fn as_str(&self) -> &str {
        &self.text
    }
    /// The glob handed to `globset`, also the key that makes two spellings of one pattern equal.
    pub fn canonical(&self) -> &str {
        &self.canonical
    }
    pub(crate) fn tokens(&self) -> &[Token] {
        &self.tokens
    }
    /// Whether this pattern matches every name of its field (`**` for repositories, `*`/`**` for tags).
    pub fn matches_everything(&self) -> bool {
        match self.field {
            Field::Repositories => self.canonical == "**",
            Field::Tags => self.canonical == "*",
        }
    }
}

/// Splits a list at the commas that are not inside `{...}` or `[...]`, trimming each item.
fn split_items(input: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut braces, mut in_class, mut start) = (0usize, false, 0usize);
    for (i, c) in input.char_indices() {
        match c {
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '{' if !in_class => braces += 1,
            '}' if !in_class => braces = braces.saturating_sub(1),
            ',' if braces == 0 && !in_class => {
                items.push(input.get(start..i).unwrap_or_default().trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(input.get(start..).unwrap_or_default().trim());
    items
}

/// Parses a comma-separated list for `field` into validated patterns, in the order typed, without
/// repeats (two spellings with one canonical glob count as a repeat).
pub fn parse_list(field: Field, input: &str) -> Result<Vec<Pattern>, PatternError> {
    let list_error = |problem| PatternError { field, item: None, problem };
    if input.trim().is_empty() {
        return Err(list_error(Problem::EmptyList));
    }
    let items = split_items(input);
    if items.len() > MAX_ITEMS {
        return Err(list_error(Problem::TooManyItems(items.len())));
    }
    let mut patterns = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let pattern = parse_item(field, item).map_err(|problem| PatternError {
            field,
            item: Some((index + 1, (*item).to_owned())),
            problem,
        })?;
        patterns.push(pattern);
    }
    let mut seen = std::collections::HashSet::new();
    patterns.retain(|p| seen.insert(p.canonical.clone()));
    Ok(patterns)
}

/// Parses one item.
pub(crate) fn parse_item(field: Field, item: &str) -> Result<Pattern, Problem> {
    if item.is_empty() {
        return Err(Problem::EmptyItem);
    }
    let length = item.chars().count();
    if length > MAX_ITEM_LEN {
        return Err(Problem::TooLong(length));
    }
    let chars: Vec<char> = item.chars().collect();
    let mut parser = Parser { field, chars: &chars, at: 0 };
    let tokens = parser.sequence(false)?;
    check_structure(field, &tokens)?;
    let canonical = canonical_text(field, &tokens);
    Ok(Pattern { field, text: item.to_owned(), tokens, canonical })
}

struct Parser<'a> {
    field: Field,
    chars: &'a [char],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).copied()
    }

    /// Parses tokens up to the end, or (inside braces) up to the `,` or `}` that ends an alternative.
    fn sequence(&mut self, in_braces: bool) -> Result<Vec<Token>, Problem> {
        let mut tokens = Vec::new();
        while let Some(c) = self.peek() {
            match c {
                ',' | '}' if in_braces => return Ok(tokens),
                '}' => return Err(Problem::UnopenedBrace),
                ']' => return Err(Problem::UnopenedClass),
                '*' => {
                    let start = self.at;
                    while self.peek() == Some('*') {
                        self.at += 1;
                    }
                    match self.at - start {
                        1 => tokens.push(Token::Star),
                        2 if in_braces && self.field == Field::Repositories => return Err(Problem::DoubleStarInBraces),
                        2 => tokens.push(Token::DoubleStar),
                        n => return Err(Problem::TooManyStars("*".repeat(n))),
                    }
                }
                '?' => {
                    self.at += 1;
                    tokens.push(Token::AnyChar);
                }
                '[' => {
                    self.at += 1;
                    tokens.push(self.class()?);
                }
                '{' => {
                    if in_braces {
                        return Err(Problem::NestedBraces);
                    }
                    self.at += 1;
                    tokens.push(self.alternatives()?);
                }
                c => {
                    self.literal_char(c)?;
                    self.at += 1;
                    tokens.push(Token::Literal(c));
                }
            }
        }
        if in_braces {
            return Err(Problem::UnclosedBrace);
        }
        Ok(tokens)
    }

    fn literal_char(&self, c: char) -> Result<(), Problem> {
        if self.field.allows(c) {
            Ok(())
        } else {
            Err(Problem::ForeignCharacter { ch: c, field: self.field, alphabet: self.field.alphabet().to_owned() })
        }
    }

    fn alternatives(&mut self) -> Result<Token, Problem> {
        let mut alternatives = Vec::new();
        loop {
            alternatives.push(self.sequence(true)?);
            match self.peek() {
                Some(',') => self.at += 1,
                Some('}') => {
                    self.at += 1;
                    return Ok(Token::Alternatives(alternatives));
                }
                _ => return Err(Problem::UnclosedBrace),
            }
        }
    }

    fn class(&mut self) -> Result<Token, Problem> {
        let negated = matches!(self.peek(), Some('!' | '^'));
        if negated {
            self.at += 1;
        }
        let mut ranges = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(Problem::UnclosedClass);
            };
            self.at += 1;
            if c == ']' {
                break;
            }
            if c == '/' {
                return Err(Problem::ForeignCharacter {
                    ch: '/',
                    field: self.field,
                    alphabet: "anything but `/` inside `[...]`".to_owned(),
                });
            }
            self.literal_char(c)?;
            if self.peek() == Some('-') && self.chars.get(self.at + 1).is_some_and(|&e| e != ']') {
                let end = self.chars.get(self.at + 1).copied().unwrap_or(c);
                self.literal_char(end)?;
                if end < c {
                    return Err(Problem::BackwardsRange(c, end));
                }
                if self.field == Field::Repositories && c < '/' && '/' < end {
                    return Err(Problem::RangeSpansSlash(c, end));
                }
                self.at += 2;
                ranges.push((c, end));
            } else {
                ranges.push((c, c));
            }
        }
        if ranges.is_empty() {
            return Err(Problem::EmptyClass);
        }
        Ok(Token::Class { negated, ranges })
    }
}

/// Checks what tokens alone cannot: `**` placement, and literal segments or tags that can never occur.
fn check_structure(field: Field, tokens: &[Token]) -> Result<(), Problem> {
    match field {
        Field::Repositories => {
            let segments = tokens.split(|t| *t == Token::Literal('/'));
            for segment in segments {
                if segment.is_empty() {
                    return Err(Problem::EmptySegment);
                }
                if segment.contains(&Token::DoubleStar) && segment.len() > 1 {
                    return Err(Problem::DoubleStarNotSegment);
                }
                if let Some(literal) = literal_text(segment) {
                    if !is_path_component(&literal) {
                        return Err(Problem::ImpossibleSegment(literal));
                    }
                } else if let Some(Token::Literal(c)) = segment.first() {
                    if !(c.is_ascii_lowercase() || c.is_ascii_digit()) {
                        return Err(Problem::ImpossibleStart(*c, "repository path segment".to_owned()));
                    }
                }
            }
            Ok(())
        }
        Field::Tags => {
            if let Some(literal) = literal_text(tokens) {
                if !is_tag(&literal) {
                    return Err(Problem::ImpossibleTag);
                }
            } else if let Some(Token::Literal(c)) = tokens.first() {
                if !(c.is_ascii_alphanumeric() || *c == '_') {
                    return Err(Problem::ImpossibleStart(*c, "tag".to_owned()));
                }
            }
            Ok(())
        }
    }
}

/// The text of a token run made only of literal characters.
fn literal_text(tokens: &[Token]) -> Option<String> {
    tokens
        .iter()
        .map(|t| match t {
            Token::Literal(c) => Some(*c),
            _ => None,
        })
        .collect()
}

/// The glob handed to `globset`. Tags have no `/`, so `**` there is `*`; a negated class is given
/// an explicit `/` so that it never crosses a path separator (doublestar's behaviour).
fn canonical_text(field: Field, tokens: &[Token]) -> String {
    let mut out = String::new();
    write_tokens(field, tokens, &mut out);
    out
}

fn write_tokens(field: Field, tokens: &[Token], out: &mut String) {
    for token in tokens {
        match token {
            Token::Literal(c) => out.push(*c),
            Token::AnyChar => out.push('?'),
            Token::Star => out.push('*'),
            Token::DoubleStar if field == Field::Tags => out.push('*'),
            Token::DoubleStar => out.push_str("**"),
            Token::Class { negated, ranges } => {
                out.push('[');
                if *negated {
                    out.push('!');
                }
                // A `-` of its own goes first, where globset reads it as itself: elsewhere, between
                // two other characters, it would join them into a range (`[z-` + `-` + `j]`).
                let (dash_first, others): (Vec<_>, Vec<_>) = ranges.iter().partition(|(start, _)| *start == '-');
                for &(start, end) in dash_first.into_iter().chain(others) {
                    out.push(start);
                    if start != end {
                        out.push('-');
                        out.push(end);
                    }
                }
                if *negated && field == Field::Repositories {
                    out.push('/');
                }
                out.push(']');
            }
            Token::Alternatives(alternatives) => {
                out.push('{');
                for (i, alternative) in alternatives.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_tokens(field, alternative, out);
                }
                out.push('}');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(field: Field, input: &str) -> String {
        parse_list(field, input).unwrap_err().to_string()
    }

    #[test]
    fn items_split_on_commas_outside_braces() {
        assert_eq!(split_items("rc, test ,nightly"), ["rc", "test", "nightly"]);
        assert_eq!(split_items("{a,b}/api, web"), ["{a,b}/api", "web"]);
        let list = parse_list(Field::Repositories, "{a,b}/api").unwrap();
        assert_eq!(list.len(), 1);
    }

    #[test]
    fn lists_keep_their_order_without_repeats() {
        let list = parse_list(Field::Tags, "nightly, rc,test, rc, v**, v*").unwrap();
        let typed: Vec<_> = list.iter().map(Pattern::as_str).collect();
        assert_eq!(typed, ["nightly", "rc", "test", "v**"]);
    }

    #[test]
    fn errors_name_the_field_the_item_and_why() {
        assert_eq!(
            problem(Field::Tags, "a, b, v[1"),
            "tags: item 3 \"v[1\" has an unclosed character class (a `[` without its `]`)"
        );
        assert_eq!(problem(Field::Tags, ""), "tags: enter at least one pattern");
        assert!(problem(Field::Tags, "a,,b").starts_with("tags: item 2 \"\" is empty"));
        assert!(problem(Field::Tags, "a/b").contains("contains `/`, which never occurs in tags"));
        assert!(problem(Field::Repositories, "Team/**").contains("contains `T`"));
        assert!(problem(Field::Repositories, "team**").contains("whole path segment"));
        assert!(problem(Field::Repositories, "{**,web}").contains("inside braces"));
        assert!(problem(Field::Repositories, "a//b").contains("empty path segment"));
        assert!(problem(Field::Repositories, "a/-b").contains("segment `-b`"));
        assert!(problem(Field::Repositories, "***").contains("`***`"));
        assert!(problem(Field::Repositories, "{a,{b,c}}").contains("nests"));
        assert!(problem(Field::Repositories, "a}").contains("without its `{`"));
        assert!(problem(Field::Repositories, "{a,b").contains("unclosed brace"));
        assert!(problem(Field::Tags, "[z-a]").contains("backwards range `z-a`"));
        assert!(problem(Field::Tags, "[]").contains("empty character class"));
        assert!(problem(Field::Tags, ".hidden").contains("can never be a tag"));
        assert!(problem(Field::Tags, "-*").contains("starts with `-`"));
        assert!(problem(Field::Tags, &"x".repeat(256)).contains("256 characters long"));
        let many = vec!["a"; 51].join(",");
        assert_eq!(problem(Field::Tags, &many), "tags: has 51 items; at most 50 are allowed");
    }

    #[test]
    fn canonical_forms() {
        let canonical = |field, item| parse_item(field, item).unwrap().canonical;
        assert_eq!(canonical(Field::Tags, "v**"), "v*");
        assert_eq!(canonical(Field::Repositories, "team/**"), "team/**");
        assert_eq!(canonical(Field::Repositories, "[!a]pi"), "[!a/]pi");
        assert_eq!(canonical(Field::Repositories, "{web,team/app}"), "{web,team/app}");
        assert!(parse_item(Field::Repositories, "**").unwrap().matches_everything());
        assert!(parse_item(Field::Tags, "**").unwrap().matches_everything());
        assert!(parse_item(Field::Tags, "*").unwrap().matches_everything());
        assert!(!parse_item(Field::Repositories, "*").unwrap().matches_everything());
    }
}

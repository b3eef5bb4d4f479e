//! A small glob matcher with no regex engine: each pattern becomes a short program (or, for the
//! common shapes — a literal, a prefix followed by `*`/`**`, everything — a plain string test),
//! run as a Thompson simulation: every state is advanced together, one character at a time, so a
//! match costs at most (name length × program length) steps whatever the pattern, never the
//! exponential backtracking of a naive glob matcher.
//!
//! It is what the browser's live preview runs (the regex-based matcher stays on the server, where
//! its speed pays), and the property tests hold it equal to the reference evaluator and to the
//! server's matcher.

use super::pattern::{Field, Pattern, Token};

/// One compiled pattern.
#[derive(Debug, Clone)]
pub(crate) enum PatternMatcher {
    /// Matches every name.
    Everything,
    /// Matches exactly this name.
    Exact(Box<str>),
    /// This prefix, then any run of characters (without `/` unless `crosses_slash`).
    Prefix {
        prefix: Box<str>,
        crosses_slash: bool,
    },
    Program(Program),
}

impl PatternMatcher {
    pub(crate) fn new(pattern: &Pattern, field: Field) -> Self {
        let tokens = pattern.tokens();
        // Boxed, not `String`/`Vec`: a server holds one of these per pattern of every project.
        let literal = |tokens: &[Token]| -> Option<Box<str>> {
            tokens.iter().map(|token| if let Token::Literal(c) = token { Some(*c) } else { None }).collect()
        };
        let run = |token: &Token| match token {
            Token::Star => Some(false),
            Token::DoubleStar => Some(field == Field::Repositories),
            _ => None,
        };
        if let Some(exact) = literal(tokens) {
            return PatternMatcher::Exact(exact);
        }
        if let Some((last, init)) = tokens.split_last() {
            if let (Some(prefix), Some(crosses_slash)) = (literal(init), run(last)) {
                // `**` alone may match nothing at all (`**/api` is another shape); `x/**` needs the `/`.
                return if prefix.is_empty() && (crosses_slash || field == Field::Tags) {
                    PatternMatcher::Everything
                } else {
                    PatternMatcher::Prefix { prefix, crosses_slash }
                };
            }
        }
        PatternMatcher::Program(Program::compile(tokens, field))
    }

    pub(crate) fn matches(&self, name: &str) -> bool {
        match self {
            PatternMatcher::Everything => true,
            PatternMatcher::Exact(exact) => name == &**exact,
            PatternMatcher::Prefix { prefix, crosses_slash } => {
                name.strip_prefix(&**prefix).is_some_and(|rest| *crosses_slash || !rest.contains('/'))
            }
            PatternMatcher::Program(program) => program.matches(name),
        }
    }
}

#[derive(Debug, Clone)]
enum Inst {
    /// This character.
    Char(char),
    /// Any character but `/`.
    Any,
    /// A character in (or, negated, not in) the ranges; never `/`.
    Class {
        negated: bool,
        ranges: Box<[(char, char)]>,
    },
    /// Any run of characters (with `/` when `crosses_slash`): stays here on a character, and
    /// moves on without one.
    Run {
        crosses_slash: bool,
    },
    /// Where a repository's `**` starts: on to the run, and for `**/` also past the `/` (no
    /// segment at all), but only here, before the run has taken anything.
    EnterRun {
        skip_slash_to: Option<usize>,
    },
    /// Continue at each of these.
    Split(Box<[usize]>),
    Jump(usize),
    Match,
}

/// A pattern as instructions, run by [`Program::matches`].
#[derive(Debug, Clone)]
pub(crate) struct Program {
    insts: Box<[Inst]>,
}

impl Program {
    fn compile(tokens: &[Token], field: Field) -> Self {
        let mut insts = Vec::new();
        emit(&mut insts, tokens, field);
        insts.push(Inst::Match);
        resolve_skips(&mut insts);
        Self { insts: insts.into_boxed_slice() }
    }

    fn matches(&self, name: &str) -> bool {
        let len = self.insts.len();
        let mut current = Vec::with_capacity(len);
        let mut next = Vec::with_capacity(len);
        let mut seen = vec![usize::MAX; len];
        let mut pending = Vec::new();
        self.add(&mut current, &mut seen, &mut pending, 0, 0);
        for (step, c) in name.chars().enumerate() {
            next.clear();
            for &pc in &current {
                let advance = match self.insts.get(pc) {
                    Some(Inst::Char(expected)) => (*expected == c).then_some(pc + 1),
                    Some(Inst::Any) => (c != '/').then_some(pc + 1),
                    Some(Inst::Class { negated, ranges }) => {
                        let inside = ranges.iter().any(|&(start, end)| start <= c && c <= end);
                        (c != '/' && inside != *negated).then_some(pc + 1)
                    }
                    // The run takes the character and stays.
                    Some(Inst::Run { crosses_slash }) => (c != '/' || *crosses_slash).then_some(pc),
                    _ => None,
                };
                if let Some(target) = advance {
                    self.add(&mut next, &mut seen, &mut pending, target, step + 1);
                }
            }
            std::mem::swap(&mut current, &mut next);
            if current.is_empty() {
                return false;
            }
        }
        current.iter().any(|&pc| matches!(self.insts.get(pc), Some(Inst::Match)))
    }

    /// Adds `pc` and every state reachable from it without consuming a character, once per `step`
    /// (`pending` is working space, empty between calls).
    fn add(&self, states: &mut Vec<usize>, seen: &mut [usize], pending: &mut Vec<usize>, pc: usize, step: usize) {
        pending.push(pc);
        while let Some(pc) = pending.pop() {
            match seen.get_mut(pc) {
                Some(mark) if *mark != step => *mark = step,
                _ => continue,
            }
            states.push(pc);
            match self.insts.get(pc) {
                Some(Inst::Split(targets)) => pending.extend(targets.iter().rev()),
                Some(Inst::Jump(target)) => pending.push(*target),
                Some(Inst::Run { .. }) => pending.push(pc + 1),
                Some(Inst::EnterRun { skip_slash_to }) => {
                    pending.push(pc + 1);
                    pending.extend(*skip_slash_to);
                }
                _ => {}
            }
        }
    }
}

fn emit(insts: &mut Vec<Inst>, tokens: &[Token], field: Field) {
    for token in tokens {
        match token {
            Token::Literal(c) => insts.push(Inst::Char(*c)),
            Token::AnyChar => insts.push(Inst::Any),
            Token::Class { negated, ranges } => {
                insts.push(Inst::Class { negated: *negated, ranges: ranges.as_slice().into() })
            }
            Token::Star => insts.push(Inst::Run { crosses_slash: false }),
            Token::DoubleStar if field == Field::Tags => insts.push(Inst::Run { crosses_slash: false }),
            Token::DoubleStar => {
                insts.push(Inst::EnterRun { skip_slash_to: None });
                insts.push(Inst::Run { crosses_slash: true });
            }
            Token::Alternatives(alternatives) => {
                let split = insts.len();
                insts.push(Inst::Split(Box::default()));
                let mut starts = Vec::with_capacity(alternatives.len());
                let mut jumps = Vec::with_capacity(alternatives.len());
                for alternative in alternatives {
                    starts.push(insts.len());
                    emit(insts, alternative, field);
                    jumps.push(insts.len());
                    insts.push(Inst::Jump(0));
                }
                let end = insts.len();
                for jump in jumps {
                    if let Some(inst) = insts.get_mut(jump) {
                        *inst = Inst::Jump(end);
                    }
                }
                if let Some(inst) = insts.get_mut(split) {
                    *inst = Inst::Split(starts.into_boxed_slice());
                }
            }
        }
    }
}

/// A repository's `**` directly followed by `/` (through the jumps that end alternatives) may
/// stand for no segment at all: `**/api` matches `api`, `a/**/b` matches `a/b`.
fn resolve_skips(insts: &mut [Inst]) {
    for pc in 0..insts.len() {
        if !matches!(insts.get(pc), Some(Inst::EnterRun { .. })) {
            continue;
        }
        // The run is at pc + 1; what follows it:
        let mut next = pc + 2;
        let mut hops = 0;
        while let Some(Inst::Jump(target)) = insts.get(next) {
            next = *target;
            hops += 1;
            if hops > insts.len() {
                break;
            }
        }
        if matches!(insts.get(next), Some(Inst::Char('/'))) {
            if let Some(Inst::EnterRun { skip_slash_to }) = insts.get_mut(pc) {
                *skip_slash_to = Some(next + 1);
            }
        }
    }
}

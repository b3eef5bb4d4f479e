//! Decisions per second of the compiled policy at 1, 5 and 15 realistic rules, against the plain
//! reference evaluator (rule by rule, pattern by pattern, as Harbor's loop does) in the same run;
//! the time to compile 15 rules; and allocations per decision (counted, printed).
//!
//! Run: `cargo bench -p app --features server-matcher --bench policy`

#![allow(unsafe_code, reason = "a counting global allocator needs `unsafe impl GlobalAlloc`")]

use app::policy::{reference, CompiledPolicy, PolicyRule, RuleInput, RuleSpec, RuleState, MAX_RULES};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts allocations, so the "no allocation per decision" goal is measured, not assumed.
struct CountingAllocator;
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Fifteen rules of the kinds projects write: semver, brace lists, `team/**`, classes, excludes.
const RULES: [(&str, &str, &str, &str); 15] = [
    ("matching", "**", "matching", "v*.*.*"),
    ("matching", "team/**", "matching", "release-*"),
    ("matching", "{api,web,worker}", "matching", "prod, stable"),
    ("matching", "**", "excluding", "rc, test, nightly, dev-*, pr-[0-9]*"),
    ("matching", "infra/**, platform/*", "matching", "[0-9]*.[0-9]*"),
    ("excluding", "sandbox/**", "matching", "latest"),
    ("matching", "shop/{cart,checkout,payments}/**", "matching", "v[0-9]*"),
    ("matching", "ml/models/*", "matching", "model-*-{prod,canary}"),
    ("matching", "**/base-images", "matching", "**"),
    ("matching", "vendor/*", "matching", "{1,2,3}.*"),
    ("matching", "apps/*/frontend, apps/*/backend", "matching", "release-{2024,2025,2026}*"),
    ("matching", "data/**", "matching", "snapshot-????-??-??"),
    ("matching", "ops/tools", "matching", "stable-*"),
    ("matching", "legacy/*", "matching", "v1.*, v2.*"),
    ("matching", "edge/**", "matching", "lts-*"),
];

fn rules(count: usize) -> Vec<PolicyRule> {
    RULES
        .iter()
        .take(count)
        .enumerate()
        .map(|(i, (ra, r, ta, t))| {
            let input = RuleInput {
                repositories_action: (*ra).into(),
                repositories: (*r).into(),
                tags_action: (*ta).into(),
                tags: (*t).into(),
            };
            PolicyRule { id: i as i64 + 1, state: RuleState::Enforced, spec: RuleSpec::parse(&input).unwrap() }
        })
        .collect()
}

/// (name, repository path, tag, immutable at 15 rules?)
const INPUTS: [(&str, &str, &str, bool); 2] =
    [("match", "team/web", "v1.2.3", true), ("no-match", "sandbox/exp", "nightly", false)];

fn decisions(c: &mut Criterion) {
    let mut group = c.benchmark_group("decision");
    group.throughput(Throughput::Elements(1));
    for count in [1, 5, 15] {
        let rules = rules(count);
        let policy = CompiledPolicy::compile(&rules).unwrap();
        let interpreted = CompiledPolicy::interpreted(&rules).unwrap();
        for (name, path, tag, _) in INPUTS {
            group.bench_with_input(BenchmarkId::new(format!("compiled/{name}"), count), &(path, tag), |b, (p, t)| {
                b.iter(|| policy.immutable_rules(black_box(p), black_box(t)))
            });
            group.bench_with_input(
                BenchmarkId::new(format!("interpreted/{name}"), count),
                &(path, tag),
                |b, (p, t)| b.iter(|| interpreted.immutable_rules(black_box(p), black_box(t))),
            );
            group.bench_with_input(BenchmarkId::new(format!("reference/{name}"), count), &(path, tag), |b, (p, t)| {
                b.iter(|| reference::immutable_rule_ids(&rules, black_box(p), black_box(t)))
            });
        }
    }
    group.finish();
}

fn compile(c: &mut Criterion) {
    let rules = rules(15);
    c.bench_function("compile/15", |b| b.iter(|| CompiledPolicy::compile(black_box(&rules)).unwrap()));
    // The slowest shape that fills a project's pattern budget (MAX_POLICY_PATTERN_CHARS).
    for shape in ["?", "[!a]?*", "{a,b}"] {
        let per_item = app::policy::MAX_POLICY_PATTERN_CHARS / (MAX_RULES * 2);
        let item = shape.repeat(per_item / shape.len());
        let input = |i: usize| RuleInput {
            repositories_action: "matching".into(),
            repositories: format!("r{i}{item}"),
            tags_action: "matching".into(),
            tags: format!("t{i}{item}"),
        };
        let budget: Vec<PolicyRule> = (0..MAX_RULES)
            .map(|i| PolicyRule { id: i as i64, state: RuleState::Enforced, spec: RuleSpec::parse(&input(i)).unwrap() })
            .collect();
        c.bench_function(&format!("compile at the budget/{shape}"), |b| {
            b.iter(|| CompiledPolicy::compile(black_box(&budget)).unwrap())
        });
    }
}

/// Prints allocations per decision and checks the inputs mean what their names say.
fn allocations(_: &mut Criterion) {
    let rules = rules(15);
    let policy = CompiledPolicy::compile(&rules).unwrap();
    for (name, path, tag, immutable) in INPUTS {
        assert_eq!(!policy.immutable_rules(path, tag).is_empty(), immutable, "{name}");
        assert_eq!(!reference::immutable_rule_ids(&rules, path, tag).is_empty(), immutable, "{name}");
        const N: usize = 100_000;
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for _ in 0..N {
            black_box(policy.immutable_rules(black_box(path), black_box(tag)));
        }
        let per_decision = (ALLOCATIONS.load(Ordering::Relaxed) - before) as f64 / N as f64;
        println!("allocations per decision ({name}, 15 rules): {per_decision}");
    }
}

/// Resident memory of 10,000 distinct policies of 15 rules, each answering one decision (so the
/// regex engine's lazily built state is there too), per matcher. Printed, not timed.
fn memory(_: &mut Criterion) {
    fn resident_kib() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        statm.split_whitespace().nth(1).and_then(|pages| pages.parse::<u64>().ok()).unwrap_or(0) * 4
    }
    const PROJECTS: usize = 10_000;
    let distinct = |project: usize| -> Vec<PolicyRule> {
        let mut rules = rules(15);
        for rule in &mut rules {
            let mut input = rule.spec.to_input();
            input.tags = format!("{}, p{project}-*", input.tags);
            rule.spec = RuleSpec::parse(&input).unwrap();
        }
        rules
    };
    type Build = fn(&[PolicyRule]) -> CompiledPolicy;
    // The smaller first: memory the allocator got back is reused, and RSS does not shrink.
    let matchers: [(&str, Build); 2] = [
        ("interpreted", |rules| CompiledPolicy::interpreted(rules).unwrap()),
        ("compiled", |rules| CompiledPolicy::compile(rules).unwrap()),
    ];
    for (name, build) in matchers {
        let before = resident_kib();
        let policies: Vec<CompiledPolicy> = (0..PROJECTS)
            .map(|project| {
                let policy = build(&distinct(project));
                black_box(policy.immutable_rules("team/web", "v1.2.3"));
                policy
            })
            .collect();
        let grown = resident_kib().saturating_sub(before);
        println!(
            "memory ({name}): {PROJECTS} policies of 15 rules take {:.0} MiB ({:.1} KiB each)",
            grown as f64 / 1024.0,
            grown as f64 / PROJECTS as f64
        );
        drop(policies);
    }
}

criterion_group!(benches, allocations, memory, decisions, compile);
criterion_main!(benches);

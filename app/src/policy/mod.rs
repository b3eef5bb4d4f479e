//! THE rule engine: names, patterns, rules, validation and the compiled matcher.
//!
//! Pure: no I/O, no async, no Leptos. The decision API, the gateway, the CLI and the Add Rule
//! dialog's live preview (compiled to WASM) all use this module and nothing else to decide.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

pub mod attachment;
mod compiled;
mod decision;
mod exception;
mod field;
mod interpreted;
mod names;
mod pattern;
pub mod reference;
pub mod route;
mod rule;
pub mod webhook;

pub use attachment::{AttachmentList, ListDelete, ListEntries, ListKind, ListPush, ListUpdate};
pub use compiled::{
    check_rule_set, check_stored_size, CompileError, CompiledPolicy, PolicyError, RepositoryPolicy, RuleInfo, RuleMask,
    MAX_POLICY_PATTERN_CHARS, MAX_RULES,
};
pub use decision::{AppendOnly, Decision, Holder, Outcome, Relation, Target};
pub use exception::{
    ExceptionGrant, ExceptionInput, ExceptionOperation, ExceptionScope, ExceptionTarget, ExceptionsMode,
    ExceptionsSwitch, RefusedChange, DEFAULT_LIFETIME_MINUTES, MAX_LIFETIME_MINUTES,
};
pub use field::FieldError;
pub use names::{Digest, NameError, ProjectName, RepositoryName, Tag};
pub use pattern::{parse_list, Field, Pattern, PatternError, Problem, MAX_ITEMS, MAX_ITEM_LEN};
#[cfg(feature = "ssr")]
pub use rule::PolicyVersion;
pub use rule::{Action, PolicyRule, RuleErrors, RuleInput, RuleSpec, RuleState, Selector};
pub use webhook::{forbidden_address, parse_authorization, WebhookEvent, WebhookFormat, WebhookSecret, WebhookUrl};

/// The fuzzing entry point: parse anything as a rule, and if it parses, compile and query it.
pub fn fuzz_rule(repositories: &str, tags: &str, name: &str) {
    let input = RuleInput {
        repositories_action: "matching".into(),
        repositories: repositories.into(),
        tags_action: "excluding".into(),
        tags: tags.into(),
    };
    if let Ok(spec) = RuleSpec::parse(&input) {
        let rule = PolicyRule { id: 1, state: RuleState::Enforced, spec };
        let Ok(compiled) = CompiledPolicy::compile([&rule]) else { unreachable!("a rule that parses always compiles") };
        let Ok(interpreted) = CompiledPolicy::interpreted([&rule]) else { unreachable!("nor can interpreting fail") };
        // Only names a registry can send are compared: globset reads candidates as paths, so `..`
        // (never a valid tag or segment) is special to it.
        let path = if name.split('/').all(names::is_path_component) { name } else { "app" };
        let tag = if names::is_tag(name) { name } else { "latest" };
        let reference = !reference::immutable_rule_ids(std::slice::from_ref(&rule), path, tag).is_empty();
        for (matcher, policy) in [("compiled", &compiled), ("interpreted", &interpreted)] {
            let decided = !policy.immutable_rules(path, tag).is_empty();
            assert_eq!(decided, reference, "{matcher} and reference disagree on `{name}`");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule(id: i64, repositories: &str, tags: &str) -> PolicyRule {
        let side = |text: &str| match text.strip_prefix('!') {
            Some(list) => ("excluding".to_owned(), list.to_owned()),
            None => ("matching".to_owned(), text.to_owned()),
        };
        let (repositories_action, repositories) = side(repositories);
        let (tags_action, tags) = side(tags);
        let input = RuleInput { repositories_action, repositories, tags_action, tags };
        PolicyRule { id, state: RuleState::Enforced, spec: RuleSpec::parse(&input).unwrap() }
    }

    fn immutable(rules: &[PolicyRule], path: &str, tag: &str) -> Vec<i64> {
        let policy = CompiledPolicy::compile(rules).unwrap();
        let compiled: Vec<i64> = policy.rules(policy.immutable_rules(path, tag)).map(|r| r.id).collect();
        assert_eq!(compiled, reference::immutable_rule_ids(rules, path, tag), "{path}:{tag}");
        let policy = CompiledPolicy::interpreted(rules).unwrap();
        let interpreted: Vec<i64> = policy.rules(policy.immutable_rules(path, tag)).map(|r| r.id).collect();
        assert_eq!(interpreted, compiled, "interpreted, {path}:{tag}");
        let per_repository: Vec<i64> =
            policy.rules(policy.in_repository(path).immutable_rules(tag)).map(|r| r.id).collect();
        assert_eq!(per_repository, compiled, "in_repository, {path}:{tag}");
        compiled
    }

    /// (rules as `[!]repositories` / `[!]tags`, repository path, tag, immutable?)
    type Case = (&'static [(&'static str, &'static str)], &'static str, &'static str, bool);
    const TABLE: &[Case] = &[
        // A `-` of its own in a class after a one-character range (found by fuzzing: it compiled
        // to the reversed range `z-j` on the server).
        (&[("[z-z-j]", "**")], "-", "v1", true),
        (&[("[z-z-j]", "**")], "y", "v1", false),
        // The seed's examples: all tags immutable.
        (&[("**", "**")], "api", "latest", true),
        (&[("**", "**")], "team/web/app", "v1", true),
        // All except rc, test, nightly.
        (&[("**", "!rc,test,nightly")], "api", "nightly", false),
        (&[("**", "!rc,test,nightly")], "api", "v1.0", true),
        (&[("**", "!rc,test,nightly")], "api", "rc1", true),
        // Only v*.*.*.
        (&[("**", "v*.*.*")], "api", "v1.2.3", true),
        (&[("**", "v*.*.*")], "api", "v1.2", false),
        (&[("**", "v*.*.*")], "api", "latest", false),
        // Harbor's doublestar behaviour.
        (&[("team/**", "**")], "team", "v1", false),
        (&[("team/**", "**")], "team/app", "v1", true),
        (&[("team/**", "**")], "team/app/web", "v1", true),
        (&[("*", "**")], "team/app", "v1", false),
        (&[("*", "**")], "app", "v1", true),
        (&[("**/api", "**")], "api", "v1", true),
        (&[("**/api", "**")], "a/b/api", "v1", true),
        (&[("a/**/b", "**")], "a/b", "v1", true),
        (&[("a/**/b", "**")], "a/x/y/b", "v1", true),
        (&[("{web,team/app}", "**")], "team/app", "v1", true),
        (&[("{web,team/app}", "**")], "web", "v1", true),
        (&[("{web,team/app}", "**")], "team", "v1", false),
        (&[("{a,b}/api", "**")], "b/api", "v1", true),
        (&[("[!a]pi", "**")], "b/pi", "v1", false),
        (&[("ap?", "**")], "api", "v1", true),
        (&[("[a-c]pi", "v[0-9]*")], "bpi", "v9x", true),
        (&[("[a-c]pi", "v[0-9]*")], "bpi", "vx", false),
        (&[("**", "v1{,-rc}")], "x", "v1", true),
        (&[("**", "v1{,-rc}")], "x", "v1-rc", true),
        // Excluding on either side.
        (&[("!team/**", "**")], "team/app", "v1", false),
        (&[("!team/**", "**")], "other", "v1", true),
        (&[("!team/**", "!latest")], "other", "latest", false),
        // OR across rules, and no cross product: repo of rule 1 with the tag of rule 2 is not enough.
        (&[("web", "v1"), ("api", "v2")], "web", "v2", false),
        (&[("web", "v1"), ("api", "v2")], "api", "v2", true),
        (&[("web", "v1"), ("api", "v2")], "web", "v1", true),
    ];

    #[test]
    fn behaviour_table() {
        for (rules, path, tag, expected) in TABLE {
            let rules: Vec<PolicyRule> = rules.iter().enumerate().map(|(i, (r, t))| rule(i as i64 + 1, r, t)).collect();
            let got = !immutable(&rules, path, tag).is_empty();
            assert_eq!(
                got,
                *expected,
                "rules {:?}, {path}:{tag}",
                rules.iter().map(|r| r.spec.summary()).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn several_rules_are_all_named_and_disabled_ones_ignored() {
        let mut rules = vec![rule(4, "**", "v*"), rule(7, "api", "**"), rule(9, "**", "v1")];
        assert_eq!(immutable(&rules, "api", "v1"), [4, 7, 9]);
        rules[1].state = RuleState::Disabled;
        assert_eq!(immutable(&rules, "api", "v1"), [4, 9]);
        assert_eq!(immutable(&rules, "api", "latest"), Vec::<i64>::new());
        // An evaluating rule makes nothing immutable either.
        rules[1].state = RuleState::Evaluating;
        assert_eq!(immutable(&rules, "api", "v1"), [4, 9]);
    }

    #[test]
    fn evaluating_rules_deny_nothing_and_say_what_they_would_have_denied() {
        use crate::policy::{Digest, RepositoryName, Tag};
        let mut rules = vec![rule(4, "**", "v*"), rule(7, "api", "**")];
        rules[1].state = RuleState::Evaluating;
        let policy = CompiledPolicy::compile(&rules).unwrap();
        assert!(policy.has_evaluating_rules());
        let repository = RepositoryName::parse("shop/api").unwrap();
        let (a, b) = (
            Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap(),
            Digest::parse(&format!("sha256:{}", "b".repeat(64))).unwrap(),
        );

        // `latest` only the evaluating rule matches: the overwrite is allowed, and would have been denied.
        let latest = Tag::parse("latest").unwrap();
        let decision = policy.check_push(&repository, &latest, &b, Some(&a));
        assert!(decision.allowed());
        assert_eq!(decision.rules().count(), 0, "nothing makes it immutable");
        let evaluated: Vec<i64> = decision.evaluated_rules().map(|rule| rule.id).collect();
        assert_eq!(evaluated, [7]);
        let would = decision.would_have_denied().unwrap();
        assert!(!would.allowed());
        assert_eq!(
            would.to_string(),
            "tag \"latest\" of \"shop/api\" is immutable (rule 7: repositories matching api, tags matching **); push a new tag instead"
        );
        // A first push breaks nothing, evaluated or not.
        assert!(policy.check_push(&repository, &latest, &b, None).would_have_denied().is_none());
        // Deleting the tag: allowed, would have been denied.
        let delete = policy.check_delete_tag(&repository, &latest);
        assert!(delete.allowed() && delete.would_have_denied().is_some());
        // `v1` an enforced rule protects: denied, and the evaluation has nothing to add.
        let v1 = Tag::parse("v1").unwrap();
        let denied = policy.check_push(&repository, &v1, &b, Some(&a));
        assert!(!denied.allowed());
        assert!(denied.would_have_denied().is_none());
        assert_eq!(denied.evaluated_rules().count(), 0);
        // Elsewhere the evaluating rule does not match: nothing to say.
        let web = RepositoryName::parse("shop/web").unwrap();
        assert!(policy.check_push(&web, &latest, &b, Some(&a)).would_have_denied().is_none());
        // A manifest an evaluating rule's tag holds: its delete is allowed, and would have been denied.
        let holders = [Holder { digest: a.clone(), tags: vec![latest.clone()], relation: Relation::Layer }];
        let blob = policy.check_delete_blob(&repository, &b, &holders);
        assert!(blob.allowed());
        assert_eq!(blob.evaluated_rules().map(|rule| rule.id).collect::<Vec<_>>(), [7]);
        // Promoted, it denies.
        rules[1].state = RuleState::Enforced;
        let policy = CompiledPolicy::compile(&rules).unwrap();
        assert!(!policy.check_push(&repository, &latest, &b, Some(&a)).allowed());
    }

    fn names() -> (RepositoryName, Tag, Digest, Digest) {
        (
            RepositoryName::parse("shop/api").unwrap(),
            Tag::parse("v1.2.3").unwrap(),
            Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap(),
            Digest::parse(&format!("sha256:{}", "b".repeat(64))).unwrap(),
        )
    }

    #[test]
    fn push_decisions() {
        let policy = CompiledPolicy::compile(&[rule(4, "**", "v*.*.*")]).unwrap();
        let (repository, tag, a, b) = names();
        let first = policy.check_push(&repository, &tag, &a, None);
        assert!(first.allowed());
        let same = policy.check_push(&repository, &tag, &a, Some(&a));
        assert!(same.allowed());
        let overwrite = policy.check_push(&repository, &tag, &b, Some(&a));
        assert!(!overwrite.allowed());
        assert_eq!(
            overwrite.to_string(),
            "tag \"v1.2.3\" of \"shop/api\" is immutable (rule 4: repositories matching **, tags matching v*.*.*); push a new tag instead"
        );
        assert_eq!(overwrite.rules().map(|r| r.id).collect::<Vec<_>>(), [4]);
        let latest = Tag::parse("latest").unwrap();
        let mutable = policy.check_push(&repository, &latest, &b, Some(&a));
        assert!(mutable.allowed());
        assert_eq!(mutable.rules().count(), 0);
    }

    /// (subject's list tag, a ListPush with the given current and pushed entries, no holders)
    use attachment::ForeignEntry;

    fn list_push(subject: &Digest, current: Option<Vec<Digest>>, pushed: Vec<Digest>) -> (Tag, ListPush) {
        let tag = Tag::parse(&subject.as_str().replace(':', "-")).unwrap();
        let list = AttachmentList::of(&tag).unwrap();
        let update = ListUpdate {
            current: current.map(ListEntries::from_entries),
            pushed: ListEntries::from_entries(pushed),
            foreign: Vec::new(),
        };
        (tag, ListPush { list, update: Some(update), subject_held_by: Vec::new() })
    }

    #[test]
    fn attachment_lists_only_grow_under_a_rule_that_covers_them() {
        let policy = CompiledPolicy::compile(&[rule(1, "**", "**")]).unwrap();
        let (repository, _, subject, _) = names();
        let (x, y, z) = (digest('1'), digest('2'), digest('3'));
        let (old, new) = (digest('8'), digest('9'));
        let (tag, append) = list_push(&subject, Some(vec![x.clone()]), vec![x.clone(), y.clone()]);
        let decision = policy.check_list_push(&repository, &tag, &new, Some(&old), &append);
        assert!(decision.allowed(), "{decision}");
        assert_eq!(
            decision.to_string(),
            format!("attachment list \"{tag}\" of \"shop/api\" keeps every entry and adds 1 (rule 1: repositories matching **, tags matching **)")
        );
        let (_, drop) = list_push(&subject, Some(vec![x.clone(), y.clone()]), vec![y.clone(), z.clone()]);
        let decision = policy.check_list_push(&repository, &tag, &new, Some(&old), &drop);
        assert!(!decision.allowed());
        assert_eq!(
            decision.to_string(),
            format!("attachment list \"{tag}\" of \"shop/api\" only grows (rule 1: repositories matching **, tags matching **): this push drops {x}; push a list that keeps them")
        );
        // An identical re-push is allowed whatever it holds; a first list, unless it lists a foreign entry.
        assert!(policy.check_list_push(&repository, &tag, &old, Some(&old), &drop).allowed());
        let (_, mut first) = list_push(&subject, None, vec![x.clone()]);
        assert!(policy.check_list_push(&repository, &tag, &new, None, &first).allowed());
        if let Some(update) = first.update.as_mut() {
            update.foreign.push(ForeignEntry { digest: x.clone(), why: "its subject is another".into() });
        }
        let decision = policy.check_list_push(&repository, &tag, &new, None, &first);
        assert!(!decision.allowed());
        assert!(
            decision.to_string().ends_with(&format!(
                "the new entry {x} is not a referrer of the list's subject: its subject is another"
            )),
            "{decision}"
        );
        // Without the entries, a change of the list cannot be told from a rewrite.
        let unknown = ListPush { update: None, ..append.clone() };
        assert!(policy.check_list_push(&repository, &tag, &new, None, &unknown).allowed(), "a first list");
        let decision = policy.check_list_push(&repository, &tag, &new, Some(&old), &unknown);
        assert!(!decision.allowed());
        assert!(decision.to_string().contains("cannot be told from a rewrite"), "{decision}");
        let deleted = ListDelete { list: append.list.clone(), subject_held_by: Vec::new() };
        assert!(!policy.check_delete_list(&repository, &tag, &deleted).allowed());
    }

    #[test]
    fn an_attachment_list_of_a_held_subject_only_grows_whatever_the_rules_say_of_its_name() {
        let policy = CompiledPolicy::compile(&[rule(3, "**", "v*")]).unwrap();
        let (repository, _, subject, _) = names();
        let (x, y) = (digest('1'), digest('2'));
        let (old, new) = (digest('8'), digest('9'));
        let (tag, mut drop) = list_push(&subject, Some(vec![x.clone(), y.clone()]), vec![y.clone()]);
        let decision = policy.check_list_push(&repository, &tag, &new, Some(&old), &drop);
        assert!(decision.allowed(), "nothing holds the subject: an ordinary mutable tag");
        let v1 = Tag::parse("v1").unwrap();
        drop.subject_held_by = vec![Holder {
            digest: subject.clone(),
            tags: vec![Tag::parse("latest").unwrap(), v1],
            relation: Relation::Referrer,
        }];
        let decision = policy.check_list_push(&repository, &tag, &new, Some(&old), &drop);
        assert!(!decision.allowed());
        assert_eq!(
            decision.to_string(),
            format!("attachment list \"{tag}\" of \"shop/api\" only grows (its subject {subject} is held by immutable tag \"v1\" (rule 3: repositories matching **, tags matching v*)): this push drops {x}; push a list that keeps them")
        );
        assert_eq!(decision.rules().map(|rule| rule.id).collect::<Vec<_>>(), [3]);
        let deleted = ListDelete { list: drop.list.clone(), subject_held_by: drop.subject_held_by.clone() };
        let decision = policy.check_delete_list(&repository, &tag, &deleted);
        assert!(!decision.allowed());
        assert!(decision.to_string().ends_with("; it cannot be deleted"), "{decision}");
        let mutable_holder = ListDelete {
            subject_held_by: vec![Holder {
                digest: subject.clone(),
                tags: vec![Tag::parse("latest").unwrap()],
                relation: Relation::Referrer,
            }],
            ..deleted
        };
        assert!(policy.check_delete_list(&repository, &tag, &mutable_holder).allowed());
    }

    fn digest(seed: char) -> Digest {
        Digest::parse(&format!("sha256:{}", seed.to_string().repeat(64))).unwrap()
    }

    #[test]
    fn delete_decisions() {
        let policy = CompiledPolicy::compile(&[rule(2, "**", "!rc,test,nightly")]).unwrap();
        let (repository, _, digest, _) = names();
        let nightly = Tag::parse("nightly").unwrap();
        let prod = Tag::parse("prod").unwrap();
        assert!(policy.check_delete_tag(&repository, &nightly).allowed());
        let denied = policy.check_delete_tag(&repository, &prod);
        assert!(!denied.allowed());
        assert!(denied.to_string().ends_with("; it cannot be deleted"), "{denied}");

        let only_mutable = [nightly.clone()];
        assert!(policy.check_delete_manifest(&repository, &digest, &only_mutable, &[]).allowed());
        let with_prod = [nightly.clone(), prod.clone()];
        let locked = policy.check_delete_manifest(&repository, &digest, &with_prod, &[]);
        assert!(!locked.allowed());
        assert!(locked.to_string().contains("locked by its immutable tag \"prod\""), "{locked}");
        assert_eq!(policy.immutable_tags(&repository, &with_prod).count(), 1);
        // A digest with no tags is never locked, even under an excluding rule.
        assert!(policy.check_delete_manifest(&repository, &digest, &[], &[]).allowed());
    }

    #[test]
    fn what_an_immutable_tag_holds_cannot_be_deleted() {
        let policy = CompiledPolicy::compile(&[rule(2, "**", "!rc,test,nightly")]).unwrap();
        let (repository, _, target, index) = names();
        let tags = |names: &[&str]| names.iter().map(|name| Tag::parse(name).unwrap()).collect::<Vec<_>>();
        let holder = |tags: Vec<Tag>, relation| Holder { digest: index.clone(), tags, relation };

        // Held only by mutable tags, or by an untagged parent: deletable.
        let mutable = [holder(tags(&["nightly"]), Relation::Layer), holder(vec![], Relation::Child)];
        let blob = policy.check_delete_blob(&repository, &target, &mutable);
        assert!(blob.allowed());
        assert_eq!(blob.to_string(), format!("blob {target} of \"shop/api\" is held by no immutable tag"));
        assert!(policy.check_delete_manifest(&repository, &target, &[], &mutable).allowed());

        // Any immutable holder locks it, and the message says what the target is to which tag.
        let held = [holder(tags(&["nightly"]), Relation::Layer), holder(tags(&["rc", "v1"]), Relation::Config)];
        let blob = policy.check_delete_blob(&repository, &target, &held);
        assert!(!blob.allowed());
        assert_eq!(
            blob.to_string(),
            format!(
                "blob {target} of \"shop/api\" is held by immutable tag \"v1\" (rule 2: repositories matching **, \
                 tags excluding rc, test, nightly) as config of {index}; it cannot be deleted"
            )
        );
        assert_eq!(blob.rules().map(|r| r.id).collect::<Vec<_>>(), [2]);
        let referrer = [holder(tags(&["v1"]), Relation::Referrer)];
        let test = tags(&["test"]);
        let manifest = policy.check_delete_manifest(&repository, &target, &test, &referrer);
        assert!(!manifest.allowed());
        assert!(manifest.to_string().contains(&format!("as signature/referrer of {index};")), "{manifest}");
        let child = [holder(tags(&["v1"]), Relation::Child)];
        let manifest = policy.check_delete_manifest(&repository, &target, &[], &child);
        assert!(manifest.to_string().contains(&format!("as child of {index};")), "{manifest}");
        // A tag pointing at the manifest itself is named first.
        let prod = tags(&["prod"]);
        let direct = policy.check_delete_manifest(&repository, &target, &prod, &child);
        assert!(direct.to_string().contains("locked by its immutable tag \"prod\""), "{direct}");
    }

    /// Rule sets of three shapes that fill the size budget: all compile; one character more is refused.
    fn at_the_budget(shape: &str) -> Vec<RuleSpec> {
        // 15 rules x 2 sides x one item; an item's characters are `shape` repeated.
        let per_item = MAX_POLICY_PATTERN_CHARS / (MAX_RULES * 2);
        let item = |prefix: &str| {
            let mut item = prefix.to_owned();
            while item.len() + shape.len() <= per_item {
                item.push_str(shape);
            }
            item
        };
        (0..MAX_RULES)
            .map(|i| {
                RuleSpec::parse(&RuleInput {
                    repositories_action: "matching".into(),
                    repositories: item(&format!("r{i}")),
                    tags_action: "matching".into(),
                    tags: item(&format!("t{i}")),
                })
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn rule_sets_within_the_budget_compile_and_larger_ones_are_refused() {
        for shape in ["?", "*x", "[a-z]", "{a,b}", "[!a]?*"] {
            let rules = at_the_budget(shape);
            assert_eq!(check_rule_set(&rules, rules.last()), Ok(()), "shape {shape}");
        }
        let mut rules = at_the_budget("?");
        let big = RuleSpec::parse(&RuleInput {
            repositories_action: "matching".into(),
            repositories: "**".into(),
            tags_action: "matching".into(),
            tags: "?".repeat(200),
        })
        .unwrap();
        rules.push(big.clone());
        let error = check_rule_set(&rules, Some(&big)).unwrap_err();
        assert!(matches!(error, PolicyError::TooLarge { field: Field::Tags, own: 200, .. }), "{error}");
        assert!(error.to_string().starts_with("tags: the project's rules would hold"), "{error}");
    }

    #[test]
    fn an_empty_policy_locks_nothing() {
        let (repository, tag, a, b) = names();
        let policy = CompiledPolicy::empty();
        assert!(policy.check_push(&repository, &tag, &b, Some(&a)).allowed());
    }

    /// Items the random rules are made of: literals, wildcards, classes, braces, doublestars.
    fn repository_item() -> impl Strategy<Value = String> {
        let segments = prop::collection::vec(
            prop_oneof![
                Just("a"),
                Just("b"),
                Just("ab"),
                Just("*"),
                Just("?"),
                Just("[ab]"),
                Just("[!a]"),
                Just("{a,b/a}"),
                Just("a*"),
                Just("*b")
            ],
            1..4,
        )
        .prop_map(|segments| segments.join("/"));
        let doublestars = prop_oneof![Just("**"), Just("a/**"), Just("**/b"), Just("a/**/b")].prop_map(str::to_owned);
        prop_oneof![3 => segments, 1 => doublestars]
    }

    fn tag_item() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                Just("v"),
                Just("1"),
                Just("."),
                Just("*"),
                Just("?"),
                Just("[0-9]"),
                Just("{rc,x}"),
                Just("**")
            ],
            1..5,
        )
        .prop_map(|parts| parts.concat())
    }

    fn random_rule() -> impl Strategy<Value = Option<PolicyRule>> {
        (
            any::<bool>(),
            prop::collection::vec(repository_item(), 1..3),
            any::<bool>(),
            prop::collection::vec(tag_item(), 1..3),
            any::<bool>(),
        )
            .prop_map(|(repo_excl, repos, tag_excl, tags, enabled)| {
                let state = if enabled { RuleState::Enforced } else { RuleState::Disabled };
                let action = |excluding: bool| if excluding { "excluding" } else { "matching" }.to_owned();
                let input = RuleInput {
                    repositories_action: action(repo_excl),
                    repositories: repos.join(","),
                    tags_action: action(tag_excl),
                    tags: tags.join(","),
                };
                RuleSpec::parse(&input).ok().map(|spec| PolicyRule { id: 0, state, spec })
            })
    }

    fn path() -> impl Strategy<Value = String> {
        prop::collection::vec(prop_oneof![Just("a"), Just("b"), Just("ab"), Just("ba"), Just("c")], 1..5)
            .prop_map(|segments| segments.join("/"))
    }

    /// Valid tags only: what a registry can actually send.
    fn tag() -> impl Strategy<Value = String> {
        let first = prop_oneof![Just("v"), Just("1"), Just("rc"), Just("x")];
        let rest =
            prop::collection::vec(prop_oneof![Just("v"), Just("1"), Just("."), Just("rc"), Just("-"), Just("2")], 0..6);
        (first, rest).prop_map(|(first, rest)| format!("{first}{}", rest.concat()))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn compiled_agrees_with_reference(
            rules in prop::collection::vec(random_rule(), 1..MAX_RULES + 1),
            queries in prop::collection::vec((path(), tag()), 1..20),
        ) {
            let rules: Vec<PolicyRule> = rules
                .into_iter()
                .flatten()
                .enumerate()
                .map(|(i, mut rule)| { rule.id = i as i64; rule })
                .collect();
            let compiled = CompiledPolicy::compile(&rules).unwrap();
            let interpreted = CompiledPolicy::interpreted(&rules).unwrap();
            for (path, tag) in &queries {
                let expected = reference::immutable_rule_ids(&rules, path, tag);
                for policy in [&compiled, &interpreted] {
                    let decided: Vec<i64> = policy.rules(policy.immutable_rules(path, tag)).map(|r| r.id).collect();
                    prop_assert_eq!(decided, expected.clone(), "{}:{}", path, tag);
                }
            }
        }

        #[test]
        fn parsing_never_panics_and_what_parses_compiles(repos in ".{0,40}", tags in ".{0,40}", name in "[a-z/]{0,12}") {
            fuzz_rule(&repos, &tags, &name);
        }
    }
}

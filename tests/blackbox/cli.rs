//! The `tagward` command line, run as a process against a fresh database.

use std::process::{Output, Stdio};
use tests::{fresh_database, tagward_bin};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// `tagward <args>` against `database_url`, its output captured.
fn command(database_url: &str, args: &[&str]) -> Command {
    let mut command = Command::new(tagward_bin());
    command.args(args).env("DATABASE_URL", database_url).env("RUST_LOG", "warn");
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

/// Runs `command` with `stdin` as its input.
async fn output(mut command: Command, stdin: &str) -> Output {
    let mut child = command.kill_on_drop(true).spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    child.wait_with_output().await.unwrap()
}

pub(crate) async fn tagward(database_url: &str, args: &[&str], stdin: &str) -> Output {
    output(command(database_url, args), stdin).await
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn bootstrap_a_user_a_project_and_a_membership() {
    let db = fresh_database().await;
    let created = tagward(&db.url, &["user", "create", "alice", "--system-admin"], "a long enough password\n").await;
    assert!(created.status.success(), "{}", stderr(&created));
    assert_eq!(String::from_utf8_lossy(&created.stdout), "created system administrator `alice`\n");
    let project = tagward(&db.url, &["project", "create", "shop"], "").await;
    assert!(project.status.success(), "{}", stderr(&project));
    let member = tagward(&db.url, &["project", "add-member", "shop", "alice", "maintainer"], "").await;
    assert!(member.status.success(), "{}", stderr(&member));

    let (role,): (String,) = sqlx::query_as(
        "select m.role from project_members m join users u on u.id = m.user_id join projects p on p.id = m.project_id
         where u.name = 'alice' and p.name = 'shop'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(role, "maintainer");
    let (admin,): (bool,) =
        sqlx::query_as("select is_system_admin from users where name = 'alice'").fetch_one(&db.pool).await.unwrap();
    assert!(admin);
}

/// The audit trail as `(actor, kind)`, oldest first.
async fn trail(db: &tests::TestDb) -> Vec<(String, String)> {
    sqlx::query_as("select actor, kind from audit_events order by id").fetch_all(&db.pool).await.unwrap()
}

#[tokio::test]
async fn every_change_from_the_command_line_is_in_the_audit_trail_under_the_operators_name() {
    let db = fresh_database().await;
    let run = async |args: &[&str], stdin: &str| {
        let mut as_jane = command(&db.url, args);
        as_jane.env("USER", "ops-jane").env_remove("SUDO_USER");
        let output = output(as_jane, stdin).await;
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    };
    run(&["user", "create", "ann"], "a long enough password\n").await;
    run(&["project", "create", "shop"], "").await;
    run(&["project", "add-member", "shop", "ann", "admin"], "").await;
    run(&["token", "create", "registry"], "").await;
    run(&["token", "revoke", "registry"], "").await;
    let kinds = ["user.create", "project.create", "member.add", "token.create", "token.revoke"];
    let expected: Vec<(String, String)> = kinds.iter().map(|kind| ("cli:ops-jane".into(), kind.to_string())).collect();
    assert_eq!(trail(&db).await, expected);
}

#[tokio::test]
async fn the_command_line_cannot_demote_a_projects_last_admin() {
    let db = fresh_database().await;
    db.user("ann", "a long enough password", false).await;
    db.user("bob", "a long enough password", false).await;
    db.project("shop").await;
    db.member("shop", "ann", "admin").await;
    let before = trail(&db).await.len();

    let demoted = tagward(&db.url, &["project", "add-member", "shop", "ann", "guest"], "").await;
    assert!(!demoted.status.success());
    assert!(stderr(&demoted).contains("`ann` is the last admin of project `shop`"), "{}", stderr(&demoted));
    let (role,): (String,) =
        sqlx::query_as("select m.role from project_members m join users u on u.id = m.user_id where u.name = 'ann'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(role, "admin", "nothing changed");
    assert_eq!(trail(&db).await.len(), before, "and nothing was recorded");

    // With a second admin, the first may step down.
    let promoted = tagward(&db.url, &["project", "add-member", "shop", "bob", "admin"], "").await;
    assert!(promoted.status.success(), "{}", stderr(&promoted));
    let stepped_down = tagward(&db.url, &["project", "add-member", "shop", "ann", "guest"], "").await;
    assert!(stepped_down.status.success(), "{}", stderr(&stepped_down));
}

#[tokio::test]
async fn the_bootstrap_administrator_is_in_the_audit_trail() {
    let db = fresh_database().await;
    let url = db.url.clone();
    // Started means built: the administrator is made before the portal says where it listens.
    let app = tests::spawn_app_with(db, url, &["--bootstrap-admin-password", "a long enough password"]).await;
    assert_eq!(trail(&app.db).await, [("tagward serve (bootstrap)".to_owned(), "user.create".to_owned())]);
}

#[tokio::test]
async fn bad_input_is_refused_by_name_and_nothing_is_created() {
    let db = fresh_database().await;
    let cases: &[(&[&str], &str, &str)] = &[
        (&["user", "create", "alice"], "short\n", "password is too short: 5 characters, at least 12"),
        (&["user", "create", "alice"], "\n", "password is too short: 0 characters"),
        (&["user", "create", "Alice"], "a long enough password\n", "user name `Alice` is not valid"),
        (&["project", "create", "My_Shop"], "", "project name `My_Shop` is not valid"),
        (&["project", "create", "shop-"], "", "project name `shop-` is not valid"),
    ];
    for (args, stdin, expected) in cases {
        let output = tagward(&db.url, args, stdin).await;
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(stderr(&output).contains(expected), "{args:?}: {}", stderr(&output));
    }
    let (users, projects): (i64, i64) =
        sqlx::query_as("select (select count(*) from users), (select count(*) from projects)")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!((users, projects), (0, 0));

    assert!(tagward(&db.url, &["user", "create", "alice"], "a long enough password\n").await.status.success());
    let again = tagward(&db.url, &["user", "create", "alice"], "a long enough password\n").await;
    assert!(!again.status.success());
    assert!(stderr(&again).contains("user `alice` already exists"), "{}", stderr(&again));
    assert!(tagward(&db.url, &["project", "create", "shop"], "").await.status.success());
    let duplicate = tagward(&db.url, &["project", "create", "shop"], "").await;
    assert!(stderr(&duplicate).contains("project `shop` already exists"), "{}", stderr(&duplicate));
    let role = tagward(&db.url, &["project", "add-member", "shop", "alice", "owner"], "").await;
    assert!(
        stderr(&role).contains("role `owner` is not one of admin, maintainer, developer, guest"),
        "{}",
        stderr(&role)
    );
    let nobody = tagward(&db.url, &["project", "add-member", "shop", "bob", "guest"], "").await;
    assert!(stderr(&nobody).contains("user `bob` does not exist"), "{}", stderr(&nobody));
    let (members,): (i64,) = sqlx::query_as("select count(*) from project_members").fetch_one(&db.pool).await.unwrap();
    assert_eq!(members, 0);
}

#[tokio::test]
async fn every_subcommand_has_help() {
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["migrate", "--help"],
        &["user", "create", "--help"],
        &["project", "create", "--help"],
        &["project", "add-member", "--help"],
    ] {
        let output = Command::new(tagward_bin()).args(args).output().await.unwrap();
        assert!(output.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&output.stdout).contains("Usage:"), "{args:?}");
    }
}

#[tokio::test]
async fn rules_from_the_command_line() {
    let db = fresh_database().await;
    db.project("shop").await;
    let add =
        tagward(&db.url, &["rule", "add", "shop", "--repos", "matching:**", "--tags", "excluding:rc,test,nightly"], "")
            .await;
    assert!(add.status.success(), "{}", stderr(&add));
    let added = String::from_utf8_lossy(&add.stdout).into_owned();
    assert!(added.contains("For the repositories matching **, tags excluding rc, test, nightly"), "{added}");
    let id = added.trim_start_matches("added rule ").split(':').next().unwrap().to_owned();

    let bad = tagward(&db.url, &["rule", "add", "shop", "--repos", "matching:**", "--tags", "matching:v[1"], "").await;
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("tags: item 1 \"v[1\" has an unclosed character class"), "{}", stderr(&bad));
    let no_action = tagward(&db.url, &["rule", "add", "shop", "--repos", "**", "--tags", "matching:v1"], "").await;
    assert!(
        stderr(&no_action).contains("`--repos` must be `<matching|excluding>:<patterns>`"),
        "{}",
        stderr(&no_action)
    );
    let duplicate =
        tagward(&db.url, &["rule", "add", "shop", "--repos", "matching:**", "--tags", "excluding:nightly,rc,test"], "")
            .await;
    assert!(stderr(&duplicate).contains("an identical rule already exists"), "{}", stderr(&duplicate));

    assert!(tagward(&db.url, &["rule", "disable", "shop", &id], "").await.status.success());
    let list = tagward(&db.url, &["rule", "list", "shop"], "").await;
    assert_eq!(
        String::from_utf8_lossy(&list.stdout),
        format!("{id}\tdisabled\tFor the repositories matching **, tags excluding rc, test, nightly\n")
    );
    assert!(tagward(&db.url, &["rule", "enable", "shop", &id], "").await.status.success());
    assert!(tagward(&db.url, &["rule", "remove", "shop", &id], "").await.status.success());
    let gone = tagward(&db.url, &["rule", "remove", "shop", &id], "").await;
    assert!(stderr(&gone).contains(&format!("rule {id} does not exist")), "{}", stderr(&gone));
    assert_eq!(db.rule_count().await, 0);
    let (kinds,): (Vec<String>,) =
        sqlx::query_as("select array_agg(kind order by id) from audit_events where actor <> 'tests'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(kinds, ["rule.create", "rule.disable", "rule.enable", "rule.delete"]);
}

#[tokio::test]
async fn service_tokens_are_created_listed_and_revoked() {
    let db = fresh_database().await;
    let created = tagward(&db.url, &["token", "create", "registry-eu"], "").await;
    assert!(created.status.success(), "{}", stderr(&created));
    let stdout = String::from_utf8_lossy(&created.stdout).into_owned();
    let token = stdout.lines().last().unwrap();
    assert!(token.starts_with("tw_") && token.len() == 67, "{stdout}");
    let (hash, name): (Vec<u8>, String) =
        sqlx::query_as("select token_sha256, name from service_tokens").fetch_one(&db.pool).await.unwrap();
    assert_eq!(
        (hash, name.as_str()),
        (app::account::token_sha256(token).to_vec(), "registry-eu"),
        "only the hash is stored"
    );

    let again = tagward(&db.url, &["token", "create", "registry-eu"], "").await;
    assert!(!again.status.success());
    assert!(stderr(&again).contains("a token named `registry-eu` already exists"), "{}", stderr(&again));
    let bad = tagward(&db.url, &["token", "create", "Registry"], "").await;
    assert!(stderr(&bad).contains("token name `Registry` is not valid"), "{}", stderr(&bad));

    let listed = tagward(&db.url, &["token", "list"], "").await;
    assert!(String::from_utf8_lossy(&listed.stdout).starts_with("registry-eu\tdecisions\tactive "), "{listed:?}");
    // Scopes beyond decisions are given explicitly, and named when wrong.
    let scoped =
        tagward(&db.url, &["token", "create", "terraform", "--scope", "rules:write", "--project", "shop,web"], "")
            .await;
    assert!(
        String::from_utf8_lossy(&scoped.stdout)
            .starts_with("created token `terraform` (rules:write (projects shop, web))"),
        "{scoped:?}"
    );
    let bogus = tagward(&db.url, &["token", "create", "x", "--scope", "admin"], "").await;
    assert!(
        stderr(&bogus).contains("scopes: scope `admin` is not one of decisions, rules:read, rules:write"),
        "{}",
        stderr(&bogus)
    );
    let revoked = tagward(&db.url, &["token", "revoke", "registry-eu"], "").await;
    assert_eq!(String::from_utf8_lossy(&revoked.stdout), "revoked token `registry-eu`\n");
    let twice = tagward(&db.url, &["token", "revoke", "registry-eu"], "").await;
    assert!(stderr(&twice).contains("there is no token named `registry-eu`"), "{}", stderr(&twice));
    // The name is free again once revoked.
    assert!(tagward(&db.url, &["token", "create", "registry-eu"], "").await.status.success());
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The rules as `(id, enabled, repositories, tags)`, by id.
async fn stored_rules(db: &tests::TestDb) -> Vec<(i64, bool, String, String)> {
    sqlx::query_as("select id, enabled, repositories, tags from immutability_rules order by id")
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_policy_file_round_trips_and_applies_all_of_its_changes_or_none() {
    let db = fresh_database().await;
    db.project("shop").await;
    let semver = db.rule("shop", "matching:**", "matching:v*.*.*").await;
    let api = db.rule("shop", "matching:api/**", "excluding:rc,test").await;

    // Export, then apply unchanged: nothing to do.
    let exported = tagward(&db.url, &["policy", "export", "shop"], "").await;
    assert!(exported.status.success(), "{}", stderr(&exported));
    let exported = stdout(&exported);
    assert!(exported.contains("# For the repositories matching api/**, tags excluding rc, test"), "{exported}");
    let again = tagward(&db.url, &["policy", "apply", "shop", "-f", "-"], &exported).await;
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stdout(&again).contains("0 added, 0 changed, 0 enabled, 0 disabled, 0 removed, 2 unchanged"));

    // A change, a removal, a disabled addition: the dry run says so and changes nothing.
    let file = format!(
        "project: shop\nrules:\n  - id: {semver}\n    repositories: {{action: matching, patterns: \"**\"}}\n    \
         tags: {{action: matching, patterns: \"v*\"}}\n  - repositories: {{action: matching, patterns: \"base/*\"}}\n    \
         tags: {{action: matching, patterns: latest}}\n    enabled: false\n"
    );
    let before = stored_rules(&db).await;
    let dry = tagward(&db.url, &["policy", "apply", "shop", "-f", "-", "--dry-run"], &file).await;
    assert!(dry.status.success(), "{}", stderr(&dry));
    let said = stdout(&dry);
    assert!(said.contains(&format!("- remove   rule {api}: For the repositories matching api/**")), "{said}");
    assert!(said.contains(&format!("~ change   rule {semver}: ")), "{said}");
    assert!(
        said.contains("+ add      For the repositories matching base/*, tags matching latest (disabled)"),
        "{said}"
    );
    assert!(said.contains("1 added, 1 changed, 0 enabled, 0 disabled, 1 removed, 0 unchanged"), "{said}");
    assert_eq!(stored_rules(&db).await, before, "a dry run changes nothing");

    let applied = tagward(&db.url, &["policy", "apply", "shop", "-f", "-"], &file).await;
    assert!(applied.status.success(), "{}", stderr(&applied));
    let after = stored_rules(&db).await;
    assert_eq!(after.len(), 2);
    assert_eq!(after[0], (semver, true, "**".to_owned(), "v*".to_owned()));
    assert_eq!((after[1].1, after[1].2.as_str(), after[1].3.as_str()), (false, "base/*", "latest"));
    let kinds: Vec<String> = trail(&db).await.into_iter().map(|(_, kind)| kind).collect();
    assert!(kinds.ends_with(&["rule.delete".into(), "rule.update".into(), "rule.create".into()]), "{kinds:?}");

    // Refusals name the line and the field, and store nothing.
    let after = stored_rules(&db).await;
    let cases = [
        ("project: shop\nrules:\n  - repositories: {action: matching, patterns: \"**\"}\n    colour: blue\n", ":4", "unknown field `colour`"),
        ("project: shop\nrules:\n  - repositories: {action: matching, patterns: \"**\"}\n    tags: {action: matching, patterns: \"v[\"}\n", ":4", "rules[0].tags:"),
        ("project: shop\nrules:\n  - id: 9999\n    repositories: {action: matching, patterns: \"**\"}\n    tags: {action: matching, patterns: v}\n", ":3", "rules[0].id: project `shop` has no rule 9999"),
        ("project: other\nrules: []\n", ":1", "project: the file is for project `other`"),
    ];
    for (file, line, message) in cases {
        let refused = tagward(&db.url, &["policy", "apply", "shop", "-f", "-"], file).await;
        let said = stderr(&refused);
        assert!(!refused.status.success(), "{file}");
        assert!(said.contains(&format!("<stdin>{line}: ")) && said.contains(message), "{said}");
    }
    let sixteen: String = (0..16)
        .map(|i| {
            format!(
                "  - repositories: {{action: matching, patterns: r{i}}}\n    tags: {{action: matching, patterns: t}}\n"
            )
        })
        .collect();
    let refused =
        tagward(&db.url, &["policy", "apply", "shop", "-f", "-"], &format!("project: shop\nrules:\n{sixteen}")).await;
    assert!(
        stderr(&refused).contains("<stdin>:33: rules[15]: a project holds at most 15 rules"),
        "{}",
        stderr(&refused)
    );
    // Past the pattern budget only once several changes add up: the store refuses the last one,
    // and the changes before it are rolled back with it.
    // Four items of 250 characters per rule: 1,000 a rule, the fifth rule past the 4,096 budget.
    let long = "a".repeat(249);
    let budget: String = (0..5)
        .map(|i| {
            let items: Vec<String> = (0..4).map(|j| format!("{long}{j}{i}")).collect();
            format!(
                "  - repositories: {{action: matching, patterns: \"{}\"}}\n    tags: {{action: matching, patterns: t}}\n",
                items.join(",")
            )
        })
        .collect();
    let refused =
        tagward(&db.url, &["policy", "apply", "shop", "-f", "-"], &format!("project: shop\nrules:\n{budget}")).await;
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("pattern characters"), "{}", stderr(&refused));
    assert_eq!(stored_rules(&db).await, after, "nothing half-stored");

    // A file without `project:` (and without ids) applies to any project the command line names.
    db.project("web").await;
    let shared = "rules:\n  - repositories: {action: matching, patterns: \"**\"}\n    tags: {action: matching, patterns: \"v*\"}\n";
    let applied = tagward(&db.url, &["policy", "apply", "web", "-f", "-"], shared).await;
    assert!(applied.status.success(), "{}", stderr(&applied));
    assert!(stdout(&applied).contains("project web: 1 added"), "{}", stdout(&applied));
}

/// `policy apply` works its changes out from the rules it read; if they change before it commits,
/// the whole apply is refused rather than written over the other change.
#[tokio::test]
async fn changes_planned_from_rules_that_changed_since_are_refused_whole() {
    use app::policy::{ProjectName, RuleInput, RuleSpec};
    use app::store::{change_rules, change_rules_together, project_id, project_rules, RuleChange};
    let db = fresh_database().await;
    db.project("shop").await;
    let rule = db.rule("shop", "matching:**", "matching:v*").await;
    let project = project_id(&db.pool, &ProjectName::parse("shop").unwrap()).await.unwrap();
    let read = project_rules(&db.pool, project).await.unwrap();
    change_rules(&db.pool, &tests::operator(), project, RuleChange::SetState(rule, app::policy::RuleState::Disabled))
        .await
        .unwrap();

    let input = RuleInput { tags: "release-*".into(), ..RuleInput::default() };
    let spec = RuleSpec::parse(&input).unwrap();
    let planned = [RuleChange::Delete(rule), RuleChange::Create(&spec, app::policy::RuleState::Enforced)];
    let refused = change_rules_together(&db.pool, &tests::operator(), project, Some(&read), &planned).await;
    let message = refused.err().map(|error| error.to_string()).unwrap_or_default();
    assert!(message.contains("the rules of project `shop` changed after they were read"), "{message}");
    assert_eq!(stored_rules(&db).await, [(rule, false, "**".to_owned(), "v*".to_owned())]);
}

#[tokio::test]
async fn group_mappings_are_made_listed_and_removed_from_the_command_line() {
    let db = fresh_database().await;
    db.project("shop").await;
    let out = |output: &Output| String::from_utf8_lossy(&output.stdout).into_owned();
    let mapped = tagward(&db.url, &["group", "map", "shop-devs", "developer", "--project", "shop"], "").await;
    assert!(mapped.status.success(), "{}", stderr(&mapped));
    assert!(out(&mapped).contains("members of group `shop-devs` are developer of project `shop`"), "{}", out(&mapped));
    let admins = tagward(&db.url, &["group", "map", "platform-admins", "system-admin"], "").await;
    assert!(admins.status.success(), "{}", stderr(&admins));

    // Bad input names the field and value, and nothing is stored.
    for (args, says) in [
        (&["group", "map", "x", "developer"][..], "role `developer` needs a project"),
        (&["group", "map", "x", "owner", "--project", "shop"][..], "role `owner` is not one of"),
        (&["group", "map", "x", "guest", "--project", "nope"][..], "project `nope` does not exist"),
        (
            &["group", "map", "shop-devs", "admin", "--project", "shop"][..],
            "group `shop-devs` already grants a role in project `shop`",
        ),
    ] {
        let refused = tagward(&db.url, args, "").await;
        assert!(!refused.status.success(), "{args:?}");
        assert!(stderr(&refused).contains(says), "{args:?}: {}", stderr(&refused));
    }

    let listed = tagward(&db.url, &["group", "list"], "").await;
    let lines: Vec<String> = out(&listed).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].ends_with("\tplatform-admins\tsystem administrator"), "{lines:?}");
    assert!(lines[1].ends_with("\tshop-devs\tdeveloper of project `shop`"), "{lines:?}");
    let id = lines[1].split('\t').next().unwrap();
    let removed = tagward(&db.url, &["group", "unmap", id], "").await;
    assert!(removed.status.success(), "{}", stderr(&removed));
    assert_eq!(out(&tagward(&db.url, &["group", "list"], "").await).lines().count(), 1);
    let kinds: Vec<String> = trail(&db).await.into_iter().map(|(_, kind)| kind).collect();
    assert_eq!(
        kinds.iter().filter(|k| k.starts_with("group.")).cloned().collect::<Vec<_>>(),
        ["group.add", "group.add", "group.remove"]
    );
}

#[tokio::test]
async fn rules_can_evaluate_first_and_be_promoted_from_the_command_line_and_policy_files() {
    let db = fresh_database().await;
    db.project("shop").await;
    let out = |output: &Output| String::from_utf8_lossy(&output.stdout).into_owned();
    let added =
        tagward(&db.url, &["rule", "add", "shop", "--repos", "matching:**", "--tags", "matching:v*", "--evaluate"], "")
            .await;
    assert!(added.status.success(), "{}", stderr(&added));
    assert!(out(&added).contains("(evaluating: it denies nothing until promoted)"), "{}", out(&added));
    let id = out(&added).split_whitespace().nth(2).unwrap().trim_end_matches(|c: char| !c.is_ascii_digit()).to_owned();
    let listed = tagward(&db.url, &["rule", "list", "shop"], "").await;
    assert_eq!(out(&listed), format!("{id}\tevaluating\tFor the repositories matching **, tags matching v*\n"));
    let exported = out(&tagward(&db.url, &["policy", "export", "shop"], "").await);
    assert!(exported.contains("    state: evaluating\n"), "{exported}");

    let promoted = tagward(&db.url, &["rule", "promote", "shop", &id], "").await;
    assert!(promoted.status.success(), "{}", stderr(&promoted));
    let again = tagward(&db.url, &["rule", "promote", "shop", &id], "").await;
    assert!(!again.status.success());
    assert!(stderr(&again).contains(&format!("rule {id} is enforced, not evaluating")), "{}", stderr(&again));

    // The file exported while it evaluated sets it back: one step, named.
    let file = exported;
    let applied = tagward(&db.url, &["policy", "apply", "shop", "-f", "-"], &file).await;
    assert!(applied.status.success(), "{}", stderr(&applied));
    assert!(
        out(&applied).contains(&format!("~ evaluate rule {id}: For the repositories matching **, tags matching v*")),
        "{}",
        out(&applied)
    );
    assert!(out(&applied).contains("1 set to evaluate"), "{}", out(&applied));
    let kinds: Vec<String> = trail(&db).await.into_iter().map(|(_, kind)| kind).collect();
    assert_eq!(kinds, ["project.create", "rule.create", "rule.promote", "rule.evaluate"]);
    // A bad state names the file, line and field.
    let bad =
        tagward(&db.url, &["policy", "apply", "shop", "-f", "-"], &file.replace("state: evaluating", "state: paused"))
            .await;
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("paused"), "{}", stderr(&bad));
}

#[tokio::test]
async fn users_are_listed_deactivated_reset_and_made_administrators_keeping_the_last_one() {
    let db = fresh_database().await;
    // As in a container: no login name in the environment; the trail names the system's user.
    let run = async |args: &[&str], stdin: &str| {
        let mut command = command(&db.url, args);
        command.env_remove("USER").env_remove("LOGNAME").env_remove("SUDO_USER");
        let out = output(command, stdin).await;
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), stderr(&out))
    };
    assert!(run(&["user", "create", "alice", "--system-admin"], "a long enough password\n").await.0);
    assert!(run(&["user", "create", "bob"], "another long password\n").await.0);
    let (ok, listed, err) = run(&["user", "list"], "").await;
    assert!(ok, "{err}");
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(
        lines,
        [
            "NAME\tSOURCE\tE-MAIL\tSYSTEM ADMIN\tACTIVE\tLAST SIGN-IN",
            "alice\tlocal\t-\tyes\tyes\tnever",
            "bob\tlocal\t-\tno\tyes\tnever"
        ]
    );

    let (ok, _, err) = run(&["user", "deactivate", "alice"], "").await;
    assert!(!ok && err.contains("`alice` is the last active system administrator"), "{err}");
    let (ok, out, err) = run(&["user", "set-system-admin", "bob", "true"], "").await;
    assert!(ok && out.contains("`bob` is a system administrator"), "{err}");
    assert!(run(&["user", "deactivate", "alice"], "").await.0);
    let (ok, _, err) = run(&["user", "set-system-admin", "bob", "false"], "").await;
    assert!(!ok && err.contains("`bob` is the last active system administrator"), "{err}");
    let (_, listed, _) = run(&["user", "list"], "").await;
    assert!(listed.contains("alice\tlocal\t-\tyes\tno\tnever"), "{listed}");
    assert!(run(&["user", "activate", "alice"], "").await.0);

    let (ok, out, err) = run(&["user", "reset-password", "bob"], "a brand new password\n").await;
    assert!(ok && out.contains("set the password of `bob`"), "{err}");
    for (args, stdin, error) in [
        (vec!["user", "reset-password", "bob"], "short\n", "at least 12"),
        (vec!["user", "reset-password", "zed"], "a brand new password\n", "user `zed` does not exist"),
        (vec!["user", "deactivate", "Not A Name"], "", "user name `Not A Name`"),
        (vec!["user", "set-system-admin", "bob", "maybe"], "", "maybe"),
    ] {
        let (ok, _, err) = run(&args, stdin).await;
        assert!(!ok && err.contains(error), "{args:?}: {err}");
    }

    let root = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap();
    let actors: Vec<(String, String)> =
        sqlx::query_as("select kind, actor from audit_events order by id").fetch_all(&db.pool).await.unwrap();
    let kinds: Vec<&str> = actors.iter().map(|(kind, _)| kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["user.create", "user.create", "user.system_admin", "user.deactivate", "user.activate", "user.password_reset"]
    );
    for (_, actor) in &actors {
        assert!(actor.starts_with("cli:") && !actor.contains("uid"), "{actor}");
        if root {
            assert_eq!(actor, "cli:root");
        }
    }
}

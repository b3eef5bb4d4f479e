//! Tag immutability rules through the portal's server functions and the CLI.

use tests::{spawn_app, TestApp};

use tests::fixtures::PASSWORD;

async fn project_with(app: &TestApp, members: &[(&str, &str)]) {
    app.db.project("shop").await;
    for (user, role) in members {
        app.db.user(user, PASSWORD, false).await;
        app.db.member("shop", user, role).await;
    }
}

fn rule_fields<'a>(repositories: &'a str, tags_action: &'a str, tags: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("project", "shop"),
        ("repositories_action", "matching"),
        ("repositories", repositories),
        ("tags_action", tags_action),
        ("tags", tags),
    ]
}

#[tokio::test]
async fn a_maintainer_adds_a_rule_and_it_is_listed_with_its_sentence() {
    let app = spawn_app().await;
    project_with(&app, &[("mia", "maintainer")]).await;
    let mia = app.logged_in("mia", PASSWORD).await;

    let saved = app.call(&mia, "save_rule", &rule_fields("**", "excluding", "rc, test,nightly")).await;
    assert_eq!(saved.status(), 200, "{:?}", saved.text().await);

    let list: serde_json::Value = app.call(&mia, "rules", &[("project", "shop")]).await.json().await.unwrap();
    let rules = list["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0]["sentence"], "For the repositories matching **, tags excluding rc, test, nightly");
    assert_eq!(rules[0]["updated_by"], "mia");
    assert_eq!(rules[0]["state"], "enforced");
}

#[tokio::test]
async fn guests_and_developers_see_rules_but_cannot_change_them() {
    let app = spawn_app().await;
    project_with(&app, &[("gus", "guest"), ("dev", "developer")]).await;
    let id = app.db.rule("shop", "matching:**", "matching:v*").await.to_string();
    for user in ["gus", "dev"] {
        let client = app.logged_in(user, PASSWORD).await;
        let list = app.call(&client, "rules", &[("project", "shop")]).await;
        assert_eq!(list.status(), 200);
        let add = app.call(&client, "save_rule", &rule_fields("**", "matching", "latest")).await;
        assert_eq!(add.status(), 403, "{user} added a rule");
        assert!(add.text().await.unwrap().contains("only project admins and maintainers may change rules"));
        let toggle =
            app.call(&client, "set_rule_state", &[("project", "shop"), ("rule_id", &id), ("state", "disabled")]).await;
        assert_eq!(toggle.status(), 403);
        let delete = app.call(&client, "delete_rule", &[("project", "shop"), ("rule_id", &id)]).await;
        assert_eq!(delete.status(), 403);
    }
    assert_eq!(app.db.rule_count().await, 1);
    // Someone outside the project does not even learn that it exists.
    app.db.user("eve", PASSWORD, false).await;
    let eve = app.logged_in("eve", PASSWORD).await;
    assert_eq!(app.call(&eve, "rules", &[("project", "shop")]).await.status(), 404);
    assert_eq!(app.call(&eve, "save_rule", &rule_fields("**", "matching", "latest")).await.status(), 404);
}

#[tokio::test]
async fn bad_patterns_are_refused_by_field_and_nothing_is_stored() {
    let app = spawn_app().await;
    project_with(&app, &[("ann", "admin")]).await;
    let ann = app.logged_in("ann", PASSWORD).await;

    let response = app.call(&ann, "save_rule", &rule_fields("Team/**", "matching", "v1, v[1")).await;
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["fields"]["repositories"]["problem"]["ForeignCharacter"]["ch"], "T", "{body}");
    assert_eq!(body["input"]["tags"], "v1, v[1", "what was typed comes back");
    assert_eq!(app.db.rule_count().await, 0);
}

#[tokio::test]
async fn identical_rules_are_refused_whatever_the_spelling() {
    let app = spawn_app().await;
    project_with(&app, &[("ann", "admin")]).await;
    let ann = app.logged_in("ann", PASSWORD).await;
    assert_eq!(app.call(&ann, "save_rule", &rule_fields("**", "excluding", "rc,test,nightly")).await.status(), 200);
    let again = app.call(&ann, "save_rule", &rule_fields(" ** ", "excluding", "nightly, test, rc, rc")).await;
    let body = again.text().await.unwrap();
    assert!(body.contains("an identical rule already exists: rule"), "{body}");
    assert_eq!(app.db.rule_count().await, 1);
}

#[tokio::test]
async fn never_more_than_15_rules_even_under_concurrent_adds() {
    let app = spawn_app().await;
    project_with(&app, &[("ann", "admin")]).await;
    let ann = app.logged_in("ann", PASSWORD).await;
    let tags: Vec<String> = (0..24).map(|i| format!("release-{i}")).collect();
    let fields: Vec<_> = tags.iter().map(|tag| rule_fields("**", "matching", tag)).collect();
    let calls = fields.iter().map(|fields| app.call(&ann, "save_rule", fields));
    let responses = futures::future::join_all(calls).await;
    let accepted = responses.iter().filter(|r| r.status() == 200).count();
    assert_eq!(accepted, 15);
    assert_eq!(app.db.rule_count().await, 15);
    let refused = app.call(&ann, "save_rule", &rule_fields("**", "matching", "one-more")).await;
    assert!(refused.text().await.unwrap().contains("this project has 15 rules, the most allowed"));
}

#[tokio::test]
async fn changes_are_audited_and_announced() {
    let app = spawn_app().await;
    project_with(&app, &[("ann", "admin")]).await;
    let ann = app.logged_in("ann", PASSWORD).await;
    let mut listener = sqlx::postgres::PgListener::connect(&app.db.url).await.unwrap();
    listener.listen(app::store::RULES_CHANNEL).await.unwrap();

    assert_eq!(app.call(&ann, "save_rule", &rule_fields("**", "matching", "v*")).await.status(), 200);
    let notification = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv()).await.unwrap().unwrap();
    let (project_id,): (i64,) =
        sqlx::query_as("select id from projects where name = 'shop'").fetch_one(&app.db.pool).await.unwrap();
    assert_eq!(notification.payload(), project_id.to_string());

    let (rule_id,): (i64,) = sqlx::query_as("select id from immutability_rules").fetch_one(&app.db.pool).await.unwrap();
    let id = rule_id.to_string();
    app.call(&ann, "set_rule_state", &[("project", "shop"), ("rule_id", &id), ("state", "disabled")]).await;
    app.call(&ann, "delete_rule", &[("project", "shop"), ("rule_id", &id)]).await;
    let events: Vec<(String, String, Option<serde_json::Value>, Option<serde_json::Value>)> =
        sqlx::query_as("select actor, kind, before, after from audit_events where actor <> 'tests' order by id")
            .fetch_all(&app.db.pool)
            .await
            .unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(kinds, ["rule.create", "rule.disable", "rule.delete"]);
    assert!(events.iter().all(|e| e.0 == "ann"));
    assert_eq!(events[1].2.as_ref().unwrap()["enabled"], true);
    assert_eq!(events[1].3.as_ref().unwrap()["enabled"], false);
    assert!(events[2].3.is_none());
}

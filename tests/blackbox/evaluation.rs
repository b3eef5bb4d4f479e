//! Evaluate mode: a rule that runs beside the enforced ones, denies nothing, and records what it
//! would have denied, until someone promotes it.

use serde_json::json;
use std::time::Duration;
use tests::fixtures::{CHECK, DIGEST_A as A, DIGEST_B as B, PASSWORD};
use tests::gateway::gateway_for;
use tests::registry::{push, OciLayout, Registry};
use tests::{spawn_shop_with_admin_ann, TestApp};

fn push_check(repository: &str, tag: &str, digest: &str, current: Option<&str>) -> serde_json::Value {
    json!({"operation": "push", "repository": repository, "tag": tag, "digest": digest, "current_digest": current})
}

/// Asks until the decision's `allowed` is `allowed` (the caches follow a change within moments).
async fn until_allowed(app: &TestApp, token: &str, body: &serde_json::Value, allowed: bool) -> serde_json::Value {
    let what = format!("the decision allowed = {allowed}");
    let (verdict, _) = tests::eventually(&what, Duration::from_secs(10), || async {
        match app.check(token, CHECK, body).await {
            (200, verdict) if verdict["allowed"] == allowed => Ok(verdict),
            (status, verdict) => Err(format!("{status} {verdict}")),
        }
    })
    .await;
    verdict
}

/// The would-be denials recorded so far: (operation, count, rule ids, message).
async fn evaluations(app: &TestApp) -> Vec<(String, i64, Vec<i64>, String)> {
    sqlx::query_as("select operation, count, rule_ids, message from enforcement_denials where evaluated order by id")
        .fetch_all(&app.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_evaluating_rule_reports_what_it_would_deny_until_it_is_promoted() {
    let app = spawn_shop_with_admin_ann().await;
    let token = app.db.token("registry").await;
    let ann = app.logged_in("ann", PASSWORD).await;
    let fields = [
        ("project", "shop"),
        ("repositories_action", "matching"),
        ("repositories", "**"),
        ("tags_action", "matching"),
        ("tags", "v*"),
        ("evaluate_first", "on"),
    ];
    let saved = app.call(&ann, "save_rule", &fields).await;
    assert_eq!(saved.status(), 200, "{:?}", saved.text().await);
    let (rule,): (i64,) = sqlx::query_as("select id from immutability_rules").fetch_one(&app.db.pool).await.unwrap();

    // Overwriting v1 is allowed, and the answer says who would have refused it and how.
    let body = push_check("shop/api", "v1", B, Some(A));
    let named = |verdict: &serde_json::Value| verdict["evaluated"].as_array().is_some_and(|e| !e.is_empty());
    let first = until_allowed(&app, &token, &body, true).await;
    // Asked again only while the first answer does not name the rule yet (each answer is recorded).
    let verdict = if named(&first) {
        first
    } else {
        tests::eventually("the answer naming the evaluating rule", Duration::from_secs(2), || async {
            let verdict = app.check(&token, CHECK, &body).await.1;
            if named(&verdict) {
                Ok(verdict)
            } else {
                Err(verdict.to_string())
            }
        })
        .await
        .0
    };
    assert_eq!(
        verdict["evaluated"],
        json!([{"id": rule, "summary": "repositories matching **, tags matching v*", "would_deny": true}])
    );
    assert_eq!(
        verdict["would_have_been"],
        format!("tag \"v1\" of \"shop/api\" is immutable (rule {rule}: repositories matching **, tags matching v*); push a new tag instead")
    );
    assert_eq!(verdict["rules"], json!([]), "nothing makes v1 immutable");
    // Twice more (folded into one row), and a delete.
    app.check(&token, CHECK, &body).await;
    app.check(&token, CHECK, &body).await;
    let (_, deleted) =
        app.check(&token, CHECK, &json!({"operation": "delete_tag", "repository": "shop/api", "tag": "v1"})).await;
    assert_eq!(deleted["allowed"], true);
    // A mutable tag is not evaluated at all.
    let (_, latest) = app.check(&token, CHECK, &push_check("shop/api", "latest", B, Some(A))).await;
    assert_eq!(latest["evaluated"], json!([]));
    assert!(latest.get("would_have_been").is_none());

    tests::eventually("four evaluations recorded", Duration::from_secs(10), || async {
        let recorded = evaluations(&app).await;
        if recorded.iter().map(|e| e.1).sum::<i64>() >= 4 {
            Ok(())
        } else {
            Err(format!("{recorded:?}"))
        }
    })
    .await;
    let recorded = evaluations(&app).await;
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    assert_eq!((recorded[0].0.as_str(), recorded[0].1, recorded[0].2.clone()), ("push", 3, vec![rule]));
    assert!(recorded[0].3.starts_with("would have been denied: tag \"v1\" of \"shop/api\" is immutable"));
    assert_eq!(recorded[1].0, "delete_tag");
    // Not denials: the denial counts stay at zero.
    let (denials,): (i64,) = sqlx::query_as("select count(*) from enforcement_denials where not evaluated")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(denials, 0);

    // The rule list says so, and the Activity tab lists them under their own kind.
    let list: serde_json::Value = app.call(&ann, "rules", &[("project", "shop")]).await.json().await.unwrap();
    assert_eq!(list["rules"][0]["state"], "evaluating");
    assert_eq!(list["rules"][0]["evaluation"]["pushes"], 3);
    assert_eq!(list["rules"][0]["evaluation"]["deletes"], 1);
    let page = app.page(&ann, "/projects/shop/policy").await.text().await.unwrap();
    assert!(page.contains("Evaluating: would have denied 3 pushes and 1 delete since"), "{page}");
    let activity = app.page(&ann, "/projects/shop/activity?kind=evaluation").await.text().await.unwrap();
    assert!(activity.contains("would have been denied: tag"), "{activity}");

    // Promoted (one audited change), it denies.
    let promoted = app
        .call(&ann, "set_rule_state", &[("project", "shop"), ("rule_id", &rule.to_string()), ("state", "enforced")])
        .await;
    assert!(promoted.status().is_success());
    let denied = until_allowed(&app, &token, &body, false).await;
    assert_eq!(denied["evaluated"], json!([]));
    let kinds: Vec<(String,)> = sqlx::query_as("select kind from audit_events where rule_id = $1 order by id")
        .bind(rule)
        .fetch_all(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(kinds, [("rule.create".to_owned(),), ("rule.promote".to_owned(),)]);
    // A bad state names the field and the value.
    let bad = app
        .call(&ann, "set_rule_state", &[("project", "shop"), ("rule_id", &rule.to_string()), ("state", "paused")])
        .await;
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("state: state `paused` is not one of enforced, evaluating, disabled"));
}

#[tokio::test]
async fn a_harbor_clients_round_trip_leaves_an_evaluating_rule_evaluating() {
    let app = spawn_shop_with_admin_ann().await;
    let rule = app.db.rule("shop", "matching:**", "matching:v*").await;
    let id = rule.to_string();
    let ann = app.logged_in("ann", PASSWORD).await;
    app.call(&ann, "set_rule_state", &[("project", "shop"), ("rule_id", &id), ("state", "evaluating")]).await;
    let harbor = reqwest::Client::new();
    let url = app.url("/api/v2.0/projects/shop/immutabletagrules");
    let rules: serde_json::Value =
        harbor.get(&url).basic_auth("ann", Some(PASSWORD)).send().await.unwrap().json().await.unwrap();
    assert_eq!(rules[0]["disabled"], false, "an evaluating rule runs: Harbor's on");
    // What Terraform does: send back what it read.
    let put = harbor.put(format!("{url}/{id}")).basic_auth("ann", Some(PASSWORD)).json(&rules[0]).send().await.unwrap();
    assert_eq!(put.status(), 200);
    let state = |app: &TestApp| {
        let pool = app.db.pool.clone();
        async move {
            let (state,): (String,) = sqlx::query_as("select state from immutability_rules where id = $1")
                .bind(rule)
                .fetch_one(&pool)
                .await
                .unwrap();
            state
        }
    };
    assert_eq!(state(&app).await, "evaluating");
    let mut off = rules[0].clone();
    off["disabled"] = json!(true);
    let put = harbor.put(format!("{url}/{id}")).basic_auth("ann", Some(PASSWORD)).json(&off).send().await.unwrap();
    assert_eq!(put.status(), 200);
    assert_eq!(state(&app).await, "disabled");
    off["disabled"] = json!(false);
    harbor.put(format!("{url}/{id}")).basic_auth("ann", Some(PASSWORD)).json(&off).send().await.unwrap();
    assert_eq!(state(&app).await, "enforced", "Harbor's enable enables");
}

#[tokio::test]
async fn the_gateway_lets_an_evaluated_overwrite_through_and_records_it() {
    tests::init_logging();
    let db = tests::fresh_database().await;
    db.project("shop").await;
    let rule = db.rule("shop", "matching:**", "matching:v*").await;
    app::store::change_rules(
        &db.pool,
        &tests::operator(),
        shop_id(&db).await,
        app::store::RuleChange::SetState(rule, app::policy::RuleState::Evaluating),
    )
    .await
    .unwrap();
    let registry = Registry::start().await;
    let gateway = gateway_for(&db, &registry).await;
    let (one, two) = (OciLayout::image_of("one"), OciLayout::image_of("two"));
    assert!(push(&one, gateway, "shop/api:v1", false).await.status.success());
    let overwrite = push(&two, gateway, "shop/api:v1", false).await;
    assert!(overwrite.status.success(), "{}", String::from_utf8_lossy(&overwrite.stderr));
    assert_eq!(registry.digest("shop/api", "v1").await.as_deref(), Some(two.digest.as_str()));
    let (rows, _) = tests::eventually("the evaluation recorded", Duration::from_secs(10), || async {
        let rows: Vec<(String, String, Vec<i64>)> =
            sqlx::query_as("select token, operation, rule_ids from enforcement_denials where evaluated")
                .fetch_all(&db.pool)
                .await
                .unwrap();
        if rows.is_empty() {
            Err("none yet".to_owned())
        } else {
            Ok(rows)
        }
    })
    .await;
    assert_eq!(rows, [("gateway".to_owned(), "push".to_owned(), vec![rule])]);
}

async fn shop_id(db: &tests::TestDb) -> i64 {
    app::store::project_id(&db.pool, &app::policy::ProjectName::parse("shop").unwrap()).await.unwrap()
}

#[tokio::test]
async fn an_evaluating_rule_is_shown_and_promoted_in_chromium_with_and_without_javascript() {
    use tests::browser::Browser;
    let app = spawn_shop_with_admin_ann().await;
    let rule = app.db.rule("shop", "matching:**", "matching:v*").await;
    let ann = app.logged_in("ann", PASSWORD).await;
    app.call(&ann, "set_rule_state", &[("project", "shop"), ("rule_id", &rule.to_string()), ("state", "evaluating")])
        .await;
    async fn badge_becomes(browser: &Browser, rule: i64, wanted: &str) {
        tests::eventually(&format!("rule {rule}'s badge reading {wanted}"), Duration::from_secs(10), || async {
            let badge = browser.text(&format!("#rule-{rule} .badge")).await;
            if badge == wanted {
                Ok(())
            } else {
                Err(badge)
            }
        })
        .await;
    }
    for javascript in [true, false] {
        let browser = Browser::start(1280, javascript).await;
        browser.log_in(&app.url(""), "ann", PASSWORD).await;
        browser.goto(&app.url("/projects/shop/policy")).await;
        badge_becomes(&browser, rule, "evaluating").await;
        assert!(browser.text(&format!("#evaluation-{rule}")).await.contains("it denies nothing"));
        if javascript {
            assert_eq!(browser.accessibility_violations().await, Vec::<String>::new());
            browser.screenshot("rule-evaluating-1280").await;
        }
        browser.find(&format!("#promote-{rule}")).await.click().await.unwrap();
        badge_becomes(&browser, rule, "enforced").await;
        // Set to evaluate again (the next round promotes it without JavaScript).
        browser.find(&format!("#evaluate-{rule}")).await.click().await.unwrap();
        badge_becomes(&browser, rule, "evaluating").await;
        browser.close().await;
    }
    let kinds: Vec<(String,)> = sqlx::query_as("select kind from audit_events where rule_id = $1 order by id")
        .bind(rule)
        .fetch_all(&app.db.pool)
        .await
        .unwrap();
    let kinds: Vec<&str> = kinds.iter().map(|(kind,)| kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["rule.create", "rule.evaluate", "rule.promote", "rule.evaluate", "rule.promote", "rule.evaluate"]
    );
}

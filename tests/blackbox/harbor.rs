//! The Harbor-compatible rules API, as Harbor's clients call it.

use serde_json::{json, Value};
use tests::{spawn_app, TestApp};

use tests::fixtures::PASSWORD;
const RULES: &str = "/api/v2.0/projects/shop/immutabletagrules";

/// `ann` admin of shop, `gus` guest of shop, `out` in no project.
async fn harbor() -> TestApp {
    let app = spawn_app().await;
    for user in ["ann", "gus", "out"] {
        app.db.user(user, PASSWORD, false).await;
    }
    app.db.project("shop").await;
    app.db.member("shop", "ann", "admin").await;
    app.db.member("shop", "gus", "guest").await;
    app
}

fn rule(repositories: (&str, &str), tags: (&str, &str)) -> Value {
    json!({
        "action": "immutable", "template": "immutable_template", "priority": 0, "disabled": false,
        "scope_selectors": {"repository": [{"kind": "doublestar", "decoration": repositories.0, "pattern": repositories.1}]},
        "tag_selectors": [{"kind": "doublestar", "decoration": tags.0, "pattern": tags.1}],
    })
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    user: &str,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new().request(method, app.url(path)).basic_auth(user, Some(PASSWORD));
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn rules_round_trip_through_harbors_api() {
    let app = harbor().await;
    let created = send(
        &app,
        reqwest::Method::POST,
        RULES,
        "ann",
        Some(&rule(("repoMatches", "**"), ("excludes", "{rc,test,nightly}"))),
    )
    .await;
    assert_eq!(created.status(), 201);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let id: i64 = location.rsplit('/').next().unwrap().parse().unwrap();
    assert_eq!(location, format!("{RULES}/{id}"));
    // Stored as tagward's comma list: the portal and the engine see the same rule.
    let (tags,): (String,) =
        sqlx::query_as("select tags from immutability_rules").fetch_one(&app.db.pool).await.unwrap();
    assert_eq!(tags, "rc, test, nightly");

    let listed = send(&app, reqwest::Method::GET, RULES, "gus", None).await;
    assert_eq!(listed.status(), 200);
    assert_eq!(listed.headers()["x-total-count"], "1");
    let rules: Value = listed.json().await.unwrap();
    assert_eq!(rules[0]["id"], id);
    assert_eq!(rules[0]["disabled"], false);
    assert_eq!(rules[0]["action"], "immutable");
    assert_eq!(rules[0]["template"], "immutable_template");
    assert_eq!(
        rules[0]["tag_selectors"][0],
        json!({"kind": "doublestar", "decoration": "excludes", "pattern": "{rc,test,nightly}"})
    );
    assert_eq!(rules[0]["scope_selectors"]["repository"][0]["decoration"], "repoMatches");

    let mut disabled = rule(("repoMatches", "**"), ("excludes", "{rc,test,nightly}"));
    disabled["disabled"] = json!(true);
    assert_eq!(send(&app, reqwest::Method::PUT, &location, "ann", Some(&disabled)).await.status(), 200);
    let rules: Value = send(&app, reqwest::Method::GET, RULES, "ann", None).await.json().await.unwrap();
    assert_eq!(rules[0]["disabled"], true);
    let changed = rule(("repoMatches", "api/**"), ("matches", "v*"));
    assert_eq!(send(&app, reqwest::Method::PUT, &location, "ann", Some(&changed)).await.status(), 200);
    let rules: Value = send(&app, reqwest::Method::GET, RULES, "ann", None).await.json().await.unwrap();
    assert_eq!(rules[0]["tag_selectors"][0]["pattern"], "v*");
    assert_eq!(rules[0]["disabled"], false, "a PUT says the whole rule, `disabled: false` included");

    // Where Harbor is lax, tagward is not.
    let duplicate =
        send(&app, reqwest::Method::POST, RULES, "ann", Some(&rule(("repoMatches", "api/**"), ("matches", "v*"))))
            .await;
    assert_eq!(duplicate.status(), 409);
    let bad =
        send(&app, reqwest::Method::POST, RULES, "ann", Some(&rule(("repoMatches", "**"), ("matches", "v[1")))).await;
    assert_eq!(bad.status(), 400);
    let error: Value = bad.json().await.unwrap();
    assert_eq!(error["errors"][0]["code"], "BAD_REQUEST");
    assert!(
        error["errors"][0]["message"].as_str().unwrap().contains("\"v[1\" has an unclosed character class"),
        "{error}"
    );
    let wrong_kind = json!({"scope_selectors": {"repository": [{"kind": "regex", "decoration": "repoMatches", "pattern": ".*"}]},
                            "tag_selectors": [{"kind": "doublestar", "decoration": "matches", "pattern": "x"}]});
    let response = send(&app, reqwest::Method::POST, RULES, "ann", Some(&wrong_kind)).await;
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["errors"][0]["message"], "scope_selectors.repository[0].kind: must be `doublestar`, got `regex`");

    for i in 0..14 {
        let created = send(
            &app,
            reqwest::Method::POST,
            RULES,
            "ann",
            Some(&rule(("repoMatches", "**"), ("matches", &format!("release-{i}")))),
        )
        .await;
        assert_eq!(created.status(), 201);
    }
    let sixteenth =
        send(&app, reqwest::Method::POST, RULES, "ann", Some(&rule(("repoMatches", "**"), ("matches", "one-more"))))
            .await;
    assert_eq!(sixteenth.status(), 400);
    assert!(sixteenth.text().await.unwrap().contains("this project has 15 rules, the most allowed"));

    let page = send(&app, reqwest::Method::GET, &format!("{RULES}?page=2&page_size=4"), "ann", None).await;
    assert_eq!(page.headers()["x-total-count"], "15");
    let link = page.headers()["link"].to_str().unwrap().to_owned();
    assert!(link.contains(&format!("<{RULES}?page=1&page_size=4>; rel=\"prev\"")), "{link}");
    assert!(link.contains(&format!("<{RULES}?page=3&page_size=4>; rel=\"next\"")), "{link}");
    assert_eq!(page.json::<Value>().await.unwrap().as_array().unwrap().len(), 4);

    assert_eq!(send(&app, reqwest::Method::DELETE, &location, "ann", None).await.status(), 200);
    assert_eq!(send(&app, reqwest::Method::DELETE, &location, "ann", None).await.status(), 404);
    let kinds: Vec<String> = sqlx::query_scalar("select kind from audit_events where actor = 'ann' order by id")
        .fetch_all(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(&kinds[..4], ["rule.create", "rule.disable", "rule.update", "rule.enable"]);
    assert_eq!(kinds.last().map(String::as_str), Some("rule.delete"));
}

#[tokio::test]
async fn who_may_call_harbors_api() {
    let app = harbor().await;
    let anonymous = reqwest::get(app.url(RULES)).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    let wrong =
        reqwest::Client::new().get(app.url(RULES)).basic_auth("ann", Some("not the password")).send().await.unwrap();
    assert_eq!(wrong.status(), 401);

    let body = rule(("repoMatches", "**"), ("matches", "v*"));
    assert_eq!(send(&app, reqwest::Method::POST, RULES, "gus", Some(&body)).await.status(), 403, "guests only read");
    assert_eq!(send(&app, reqwest::Method::GET, RULES, "out", None).await.status(), 404, "not a member");
    assert_eq!(
        send(&app, reqwest::Method::GET, "/api/v2.0/projects/nope/immutabletagrules", "ann", None).await.status(),
        404
    );

    // Projects resolve by name or by id, as Harbor's clients do.
    let projects: Value =
        send(&app, reqwest::Method::GET, "/api/v2.0/projects", "ann", None).await.json().await.unwrap();
    assert_eq!(projects.as_array().unwrap().len(), 1);
    let id = projects[0]["project_id"].as_i64().unwrap();
    assert_eq!(projects[0]["current_user_role_id"], 1);
    let by_id: Value =
        send(&app, reqwest::Method::GET, &format!("/api/v2.0/projects/{id}"), "ann", None).await.json().await.unwrap();
    assert_eq!(by_id["name"], "shop");
    let by_name = reqwest::Client::new()
        .get(app.url("/api/v2.0/projects/shop"))
        .header("X-Is-Resource-Name", "true")
        .basic_auth("gus", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(by_name.json::<Value>().await.unwrap()["current_user_role_id"], 3);

    // A service token acts within its scopes: a registry backend's token (decisions only) may not
    // touch rules, nor may one limited to another project; one with `rules:write` for shop may.
    let post_as = |token: String| {
        let (url, body) = (app.url(&format!("/api/v2.0/projects/{id}/immutabletagrules")), body.clone());
        async move {
            let started = std::time::Instant::now();
            loop {
                let response = reqwest::Client::new().post(&url).bearer_auth(&token).json(&body).send().await.unwrap();
                // A new token reaches the server's cache by notification, a moment after it is committed.
                if response.status() != 401 || started.elapsed() > std::time::Duration::from_secs(2) {
                    break response;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
    };
    let grant = |scopes: &[&str], projects: &[&str]| app::account::TokenGrant::parse(scopes, projects).unwrap();
    let registry = post_as(app.db.token("registry-backend").await).await;
    assert_eq!(registry.status(), 403);
    let message = registry.text().await.unwrap();
    assert!(message.contains("lacks the scope `rules:write` (it has: decisions)"), "{message}");
    let elsewhere = post_as(app.db.token_with("other-team", &grant(&["rules:write"], &["other"])).await).await;
    assert_eq!(elsewhere.status(), 403);
    let message = elsewhere.text().await.unwrap();
    assert!(message.contains("may not reach project `shop`"), "{message}");
    let reader = app.db.token_with("reader", &grant(&["rules:read"], &[])).await;
    assert_eq!(post_as(reader.clone()).await.status(), 403, "rules:read does not write");
    let listed = reqwest::Client::new().get(app.url(RULES)).bearer_auth(&reader).send().await.unwrap();
    assert_eq!(listed.status(), 200, "rules:read reads");
    let created = post_as(app.db.token_with("terraform", &grant(&["rules:write"], &["shop"])).await).await;
    assert_eq!(created.status(), 201);
    // ... and a rules token may not ask for decisions.
    let check = serde_json::json!({"operation": "delete_tag", "repository": "shop/api", "tag": "v1"});
    let (status, answer) = app.check(&reader, tests::fixtures::CHECK, &check).await;
    assert_eq!(status, 403, "{answer}");
    assert!(answer["errors"][0]["message"].as_str().unwrap().contains("lacks the scope `decisions`"), "{answer}");
    let (actor,): (String,) = sqlx::query_as("select actor from audit_events where kind like 'rule.%'")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(actor, "token:terraform");

    // A remembered Basic login stops working once the password changes.
    assert_eq!(send(&app, reqwest::Method::GET, RULES, "gus", None).await.status(), 200);
    let portal = app.logged_in("gus", PASSWORD).await;
    let change = [("current", PASSWORD), ("new", "gus's new password"), ("confirm", "gus's new password")];
    assert_eq!(app.call(&portal, "change_password", &change).await.status(), 200);
    assert_eq!(send(&app, reqwest::Method::GET, RULES, "gus", None).await.status(), 401);
}

/// Every change and denial, whatever surface made it, in the project's Activity tab.
#[tokio::test]
async fn the_activity_tab_shows_changes_and_denials() {
    let app = harbor().await;
    app.db.user("root", PASSWORD, true).await;
    let created =
        send(&app, reqwest::Method::POST, RULES, "ann", Some(&rule(("repoMatches", "**"), ("matches", "v*")))).await;
    let id: i64 = created.headers()["location"].to_str().unwrap().rsplit('/').next().unwrap().parse().unwrap();
    // 30 more entries: enough for two pages.
    let project_id =
        app::store::project_id(&app.db.pool, &app::policy::ProjectName::parse("shop").unwrap()).await.unwrap();
    for i in 0..30 {
        let state = if i % 2 == 1 { app::policy::RuleState::Enforced } else { app::policy::RuleState::Disabled };
        let change = app::store::RuleChange::SetState(id, state);
        app::store::change_rules(
            &app.db.pool,
            &app::principal::Principal::Operator("cli:ops".into()),
            project_id,
            change,
        )
        .await
        .unwrap();
    }
    let ann = app.logged_in("ann", PASSWORD).await;
    assert_eq!(
        app.call(&ann, "set_member", &[("project", "shop"), ("user", "out"), ("role", "guest")]).await.status(),
        200
    );
    let token = app.db.token("registry").await;
    let push = json!({"operation": "push", "repository": "shop/api", "tag": "v1",
        "digest": format!("sha256:{}", "b".repeat(64)), "current_digest": format!("sha256:{}", "a".repeat(64))});
    tests::until("the push refused", std::time::Duration::from_secs(2), || async {
        app.check(&token, tests::fixtures::CHECK, &push).await.1["allowed"] == false
    })
    .await;
    tests::until("the denial recorded", std::time::Duration::from_secs(5), || async {
        sqlx::query_scalar::<_, i64>("select count(*) from enforcement_denials").fetch_one(&app.db.pool).await.unwrap()
            > 0
    })
    .await;

    // Who may look: members of the project; every project's, system admins only.
    let gus = app.logged_in("gus", PASSWORD).await;
    let outsider = app.logged_in("out", PASSWORD).await;
    let view: Value = app.call(&gus, "activity", &[("project", "shop")]).await.json().await.unwrap();
    // 32 rule changes and a denial, after the set-up's project and 3 members.
    assert_eq!(view["total"], 36);
    assert_eq!(view["pages"], 2);
    assert_eq!(view["entries"][0]["kind"], "denial.push");
    assert_eq!(view["entries"][0]["actor"], "registry");
    assert_eq!(view["entries"][1]["summary"], "added out as guest");
    app.call(&outsider, "activity", &[("project", "nope")]).await;
    assert_eq!(app.call(&app.logged_in("root", PASSWORD).await, "activity", &[]).await.status(), 200);
    assert_eq!(app.call(&ann, "activity", &[]).await.status(), 403);
    assert_eq!(app.call(&gus, "activity", &[("project", "shop"), ("kind", "bogus")]).await.status(), 400);

    let browser = tests::browser::Browser::start(1280, true).await;
    browser.log_in(&app.url(""), "gus", PASSWORD).await;
    browser.goto(&app.url("/projects/shop/activity")).await;
    browser.text_containing("#activity tbody tr:first-child", "denial.push").await;
    assert!(browser.text(".pager").await.contains("Page 1 of 2 · 36 entries"));
    browser.screenshot("activity-1280").await;
    browser.find(".pager a[rel=next]").await.click().await.unwrap();
    browser.text_containing(".pager", "Page 2 of 2").await;
    // The oldest entries, on the last page: the set-up's project and members, then the first rule.
    browser.text_containing("#activity tbody tr:last-child", "created project shop").await;
    let first_rule = format!("added rule {id}: repositories matching **, tags matching v*");
    browser.text_containing("#activity tbody", &first_rule).await;
    browser.find("#activity-kind option[value=denial]").await.click().await.unwrap();
    browser.find("#activity-filter button").await.click().await.unwrap();
    browser.text_containing(".pager", "Page 1 of 1 · 1 entries").await;
    assert!(browser.text("#activity").await.contains("tag \"v1\" of \"shop/api\" is immutable"));
    browser.close().await;
}

/// 30 parallel wrong passwords for one account: each is counted before it is verified, so only the
/// limit's worth are verified at all; the portal's login shares the count.
#[tokio::test]
async fn parallel_guesses_are_counted_before_they_are_verified() {
    let app = harbor().await;
    let guesses = (0..30)
        .map(|i| reqwest::Client::new().get(app.url(RULES)).basic_auth("ann", Some(format!("guess {i}"))).send());
    let statuses: Vec<u16> =
        futures::future::join_all(guesses).await.into_iter().map(|r| r.unwrap().status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 25, "{statuses:?}");
    let throttled = send(&app, reqwest::Method::GET, RULES, "ann", None).await;
    assert_eq!(throttled.status(), 429, "even the right password waits now");
    assert!(throttled.headers().contains_key("retry-after"));
    let portal = app.login(&app.client(), "ann", PASSWORD).await;
    assert_eq!(portal.status(), 429, "one count for the portal and the Harbor API");
    // Another account from the same address is not locked out by ann's failures.
    assert_eq!(send(&app, reqwest::Method::GET, RULES, "gus", None).await.status(), 200);
}

#[tokio::test]
async fn writes_a_browser_page_elsewhere_could_send_are_refused() {
    let app = harbor().await;
    let body = rule(("repoMatches", "**"), ("matches", "v*")).to_string();
    let post = |content_type: &str, extra: Option<(&str, &str)>| {
        let mut request = reqwest::Client::new()
            .post(app.url(RULES))
            .basic_auth("ann", Some(PASSWORD))
            .header("Content-Type", content_type)
            .body(body.clone());
        if let Some((name, value)) = extra {
            request = request.header(name, value);
        }
        request.send()
    };
    assert_eq!(post("text/plain", Some(("Origin", "https://evil.example"))).await.unwrap().status(), 403);
    assert_eq!(post("application/json", Some(("Sec-Fetch-Site", "cross-site"))).await.unwrap().status(), 403);
    assert_eq!(post("text/plain", None).await.unwrap().status(), 415);
    assert_eq!(app.db.rule_count().await, 0, "nothing stored");
    assert_eq!(post("application/json; charset=utf-8", None).await.unwrap().status(), 201);
}

#[tokio::test]
async fn odd_input_is_answered_as_harbor_does_without_overflow() {
    let app = harbor().await;
    // Pages are bounded (as the OpenAPI document says); past the bound, a 400 naming it.
    let huge = format!("{RULES}?page=9223372036854775807&page_size=100");
    let page = send(&app, reqwest::Method::GET, &huge, "ann", None).await;
    assert_eq!(page.status(), 400);
    let message = page.json::<Value>().await.unwrap()["errors"][0]["message"].as_str().unwrap().to_owned();
    assert_eq!(message, "page: must be 1 to 1000000, got 9223372036854775807");
    let last = send(&app, reqwest::Method::GET, &format!("{RULES}?page=1000000&page_size=100"), "ann", None).await;
    assert_eq!(last.status(), 200);
    assert_eq!(last.json::<Value>().await.unwrap(), json!([]));
    // Past `i64`, a path id or a query value is a 400 in Harbor's body, not a framework's text.
    let past = send(&app, reqwest::Method::DELETE, &format!("{RULES}/9223372036854775808"), "ann", None).await;
    assert_eq!(past.status(), 400);
    assert_eq!(past.headers()["content-type"], "application/json");
    let past = send(&app, reqwest::Method::GET, &format!("{RULES}?page=99999999999999999999"), "ann", None).await;
    assert_eq!(past.status(), 400);
    assert!(past.json::<Value>().await.unwrap()["errors"][0]["message"].is_string());
    // A method the path does not take: 405 with `Allow`, in Harbor's body.
    let patch = send(&app, reqwest::Method::PATCH, RULES, "ann", None).await;
    assert_eq!(patch.status(), 405);
    assert!(patch.headers()["allow"].to_str().unwrap().contains("POST"));
    assert_eq!(patch.json::<Value>().await.unwrap()["errors"][0]["code"], "METHOD_NOT_ALLOWED");
    // Harbor's own permission test: `PUT …/0` with the body `null` is a 404 (no rule 0).
    let null = reqwest::Client::new()
        .put(app.url(&format!("{RULES}/0")))
        .basic_auth("ann", Some(PASSWORD))
        .header("Content-Type", "application/json")
        .body("null")
        .send()
        .await
        .unwrap();
    assert_eq!(null.status(), 404);
    // A disabled rule is created disabled, in one change (never enforced in between).
    let mut disabled = rule(("repoMatches", "**"), ("matches", "v*"));
    disabled["disabled"] = json!(true);
    let created = send(&app, reqwest::Method::POST, RULES, "ann", Some(&disabled)).await;
    assert_eq!(created.status(), 201);
    let id: i64 = created.headers()["location"].to_str().unwrap().rsplit('/').next().unwrap().parse().unwrap();
    let kinds: Vec<(String,)> = sqlx::query_as("select kind from audit_events where actor <> 'tests' order by id")
        .fetch_all(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(kinds, [("rule.create".to_owned(),)]);
    let (enabled,): (bool,) =
        sqlx::query_as("select enabled from immutability_rules").fetch_one(&app.db.pool).await.unwrap();
    assert!(!enabled);
    // The body's id must be the path's.
    let mut other = disabled.clone();
    other["id"] = json!(id + 1);
    let mismatch = send(&app, reqwest::Method::PUT, &format!("{RULES}/{id}"), "ann", Some(&other)).await;
    assert_eq!(mismatch.status(), 400);
    let client = app.logged_in("ann", PASSWORD).await;
    let activity = app.page(&client, "/projects/shop/activity?page=4294967295").await;
    assert_eq!(activity.status(), 200);
}

#[tokio::test]
async fn tokens_made_in_the_portal_carry_their_scopes() {
    let app = spawn_app().await;
    app.db.user("root", PASSWORD, true).await;
    let root = app.logged_in("root", PASSWORD).await;
    let fields = [("name", "terraform"), ("rules_write", "on"), ("projects", "shop, web")];
    assert!(app.call(&root, "create_token", &fields).await.status().is_success());
    assert!(app.call(&root, "create_token", &[("name", "registry-eu")]).await.status().is_success());
    let bad = app.call(&root, "create_token", &[("name", "x"), ("projects", "Not A Project")]).await;
    assert_eq!(bad.status(), 400);
    let rows: Vec<(String, Vec<String>, Option<Vec<String>>)> =
        sqlx::query_as("select name, scopes, projects from service_tokens order by name")
            .fetch_all(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(
        rows,
        [
            ("registry-eu".to_owned(), vec!["decisions".to_owned()], None),
            ("terraform".to_owned(), vec!["rules:write".to_owned()], Some(vec!["shop".to_owned(), "web".to_owned()])),
        ]
    );
    let page = app.page(&root, "/admin/tokens").await.text().await.unwrap();
    assert!(page.contains("rules:write (projects shop, web)"), "the list shows the scopes");
}

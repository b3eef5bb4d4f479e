//! One-time exceptions: a project admin lets one refused change through, once. Granted in the
//! portal (with and without JavaScript) or the CLI, used up by the first matching decision across
//! processes, never failing open, and on the audit trail from grant to use or expiry.

use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use tests::fixtures::{CHECK, DIGEST_A as A, DIGEST_B as B, PASSWORD};
use tests::gateway::gateway_for;
use tests::registry::{push_image, put_manifest, Registry};
use tests::{spawn_shop_with_admin_ann, CuttableProxy, TestApp, TestDb};

fn overwrite(tag: &str) -> Value {
    json!({"operation": "push", "repository": "shop/api", "tag": tag, "digest": B, "current_digest": A})
}

fn delete_tag(tag: &str) -> Value {
    json!({"operation": "delete_tag", "repository": "shop/api", "tag": tag})
}

/// Waits until the process at `base` holds `count` usable exceptions (its caches follow the
/// database's notifications within moments).
async fn until_usable(base: &str, count: usize) {
    let wanted = format!("tagward_usable_exceptions {count}\n");
    let what = format!("{count} usable exceptions at {base}");
    tests::until(&what, Duration::from_secs(10), || async {
        reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap().contains(&wanted)
    })
    .await;
}

/// Grants an exception as the operator (what the CLI does): its id.
async fn grant(db: &TestDb, target: &str, operation: &str, reason: &str) -> i64 {
    grant_as(db, &tests::operator(), Default::default(), target, operation, reason).await.unwrap()
}

/// Grants an exception of `shop/api` through the store as `by`, under `switch`.
async fn grant_as(
    db: &TestDb,
    by: &app::principal::Principal,
    switch: app::policy::ExceptionsSwitch,
    target: &str,
    operation: &str,
    reason: &str,
) -> Result<i64, app::store::StoreError> {
    let input = app::policy::ExceptionInput {
        repository: "shop/api".into(),
        target: target.into(),
        operation: operation.into(),
        reason: reason.into(),
        ..Default::default()
    };
    let grant = app::policy::ExceptionGrant::parse("shop", &input).unwrap();
    app::store::grant_exception(&db.pool, by, shop_id(db).await, switch, &grant).await.map(|granted| granted.id)
}

/// A decision asked of the tagward process at `base` (not the test's own portal).
async fn check_at(base: &str, token: &str, body: &Value) -> Value {
    let response = reqwest::Client::new().post(format!("{base}{CHECK}")).bearer_auth(token).json(body).send().await;
    response.unwrap().json().await.unwrap()
}

async fn shop_id(db: &TestDb) -> i64 {
    app::store::project_id(&db.pool, &app::policy::ProjectName::parse("shop").unwrap()).await.unwrap()
}

/// The project `shop` with `v*` immutable, its admin ann signed in, and a decision token.
async fn shop() -> (TestApp, reqwest::Client, String) {
    let app = spawn_shop_with_admin_ann().await;
    app.db.rule("shop", "matching:**", "matching:v*").await;
    let token = app.db.token("registry").await;
    let ann = app.logged_in("ann", PASSWORD).await;
    tests::until("the rule never applied", Duration::from_secs(10), || async {
        app.check(&token, CHECK, &overwrite("v1")).await.1["allowed"] == false
    })
    .await;
    (app, ann, token)
}

async fn exception_count(db: &TestDb) -> i64 {
    let (count,): (i64,) = sqlx::query_as("select count(*) from tag_exceptions").fetch_one(&db.pool).await.unwrap();
    count
}

#[tokio::test]
async fn an_exception_lets_one_refused_overwrite_through_once_and_the_trail_shows_it() {
    let (app, ann, token) = shop().await;
    let form = |operation: &'static str, reason: &'static str, expires_in: &'static str| {
        vec![
            ("project", "shop"),
            ("repository", "shop/api"),
            ("target", "v1"),
            ("operation", operation),
            ("reason", reason),
            ("expires_in", expires_in),
        ]
    };
    // Bad input names the field and the value, and stores nothing.
    for (fields, error) in [
        (form("move", "INC-7", "1h"), "operation: `move` is not one of overwrite, delete"),
        (form("overwrite", "INC-7", "25h"), "expires_in: `25h` must be between 1 minute and 24 hours"),
        (form("overwrite", " ", "1h"), "reason: ` ` is required"),
    ] {
        let refused = app.call(&ann, "grant_exception", &fields).await;
        assert_eq!(refused.status(), 400);
        let body = refused.text().await.unwrap();
        assert!(body.contains(error), "{body}");
    }
    assert_eq!(exception_count(&app.db).await, 0);

    let granted = app
        .call(&ann, "grant_exception", &form("overwrite", "INC-7: v1 was released with the wrong image", "1h"))
        .await;
    assert!(granted.status().is_success(), "{:?}", granted.text().await);
    let (id,): (i64,) = sqlx::query_as("select id from tag_exceptions").fetch_one(&app.db.pool).await.unwrap();
    until_usable(&app.url(""), 1).await;

    // It releases nothing else: another tag, a delete.
    assert_eq!(app.check(&token, CHECK, &overwrite("v2")).await.1["allowed"], false);
    assert_eq!(app.check(&token, CHECK, &delete_tag("v1")).await.1["allowed"], false);
    // The overwrite it names goes through once, and says by which exception.
    let (status, used) = app.check(&token, CHECK, &overwrite("v1")).await;
    assert_eq!(status, 200);
    assert_eq!(used["allowed"], true, "{used}");
    assert_eq!(
        used["exception"],
        json!({"id": id, "granted_by": "ann", "reason": "INC-7: v1 was released with the wrong image"})
    );
    assert!(used["message"].as_str().unwrap().starts_with(&format!(
        "allowed once by exception {id} (granted by ann: INC-7: v1 was released with the wrong image); the rules say: tag \"v1\""
    )));
    let (_, again) = app.check(&token, CHECK, &overwrite("v1")).await;
    assert_eq!(again["allowed"], false, "{again}");
    assert!(again.get("exception").is_none());

    let (used_by, used_for): (String, String) =
        sqlx::query_as("select used_by, used_for from tag_exceptions where id = $1")
            .bind(id)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!((used_by.as_str(), used_for), ("registry", format!("push of {B} to shop/api:v1 (was {A})")));
    let activity = app.page(&ann, "/projects/shop/activity?kind=exception").await.text().await.unwrap();
    assert!(activity.contains(&format!("granted exception {id}: one overwrite of shop/api:v1, until")), "{activity}");
    assert!(
        activity.contains(&format!(
            "used exception {id} (granted by ann: “INC-7: v1 was released with the wrong image”) for push of {B}"
        )),
        "{activity}"
    );
    let list = app.page(&ann, "/projects/shop/exceptions").await.text().await.unwrap();
    assert!(list.contains(&format!("id=\"exception-{id}\"")) && list.contains(">used<"), "{list}");
    let metrics = reqwest::get(app.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("tagward_exception_uses_total{outcome=\"used\"} 1"), "{metrics}");
    assert!(metrics.contains("tagward_usable_exceptions 0"), "{metrics}");
}

#[tokio::test]
async fn revoked_expired_and_switched_off_exceptions_refuse() {
    let (app, ann, token) = shop().await;
    let revoked = grant(&app.db, "v1", "overwrite", "to be revoked").await;
    let expired = grant(&app.db, "v1", "delete", "to run out").await;
    until_usable(&app.url(""), 2).await;
    let response = app.call(&ann, "revoke_exception", &[("project", "shop"), ("id", &revoked.to_string())]).await;
    assert!(response.status().is_success());
    sqlx::query(
        "update tag_exceptions set granted_at = now() - interval '3 hours', expires_at = now() - interval '2 hours'
         where id = $1",
    )
    .bind(expired)
    .execute(&app.db.pool)
    .await
    .unwrap();
    until_usable(&app.url(""), 0).await;
    assert_eq!(app.check(&token, CHECK, &overwrite("v1")).await.1["allowed"], false);
    assert_eq!(app.check(&token, CHECK, &delete_tag("v1")).await.1["allowed"], false);
    // Neither can be revoked again, and the trail says what became of each.
    let again = app.call(&ann, "revoke_exception", &[("project", "shop"), ("id", &expired.to_string())]).await;
    assert_eq!(again.status(), 400);
    assert!(again.text().await.unwrap().contains(&format!("exception {expired} is expired: nothing to change")));
    let activity = app.page(&ann, "/projects/shop/activity?kind=exception").await.text().await.unwrap();
    assert!(activity.contains(&format!("revoked exception {revoked}")), "{activity}");
    assert!(activity.contains(&format!("exception {expired} (granted by tests: “to run out”) expired unused")));

    // A project set to take no exceptions neither grants nor uses them, until set back.
    let kept = grant(&app.db, "v1", "overwrite", "kept for later").await;
    until_usable(&app.url(""), 1).await;
    let off = app.call(&ann, "set_exceptions_mode", &[("project", "shop"), ("mode", "off")]).await;
    assert!(off.status().is_success());
    until_usable(&app.url(""), 0).await;
    assert_eq!(app.check(&token, CHECK, &overwrite("v1")).await.1["allowed"], false);
    let refused = app
        .call(
            &ann,
            "grant_exception",
            &[
                ("project", "shop"),
                ("repository", "shop/api"),
                ("target", "v2"),
                ("operation", "delete"),
                ("reason", "x"),
            ],
        )
        .await;
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().contains("project `shop` takes no exceptions"));
    let bad = app.call(&ann, "set_exceptions_mode", &[("project", "shop"), ("mode", "sometimes")]).await;
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("exceptions: `sometimes` is not one of allowed, four-eyes, off"));
    app.call(&ann, "set_exceptions_mode", &[("project", "shop"), ("mode", "allowed")]).await;
    until_usable(&app.url(""), 1).await;
    assert_eq!(app.check(&token, CHECK, &overwrite("v1")).await.1["exception"]["id"], kept);

    // A tagward started with TAGWARD_EXCEPTIONS=off uses none, and grants none.
    let waiting = grant(&app.db, "v1", "overwrite", "never used here").await;
    let (address, _off) = tests::spawn_server(&app.db.url, &["--exceptions", "off"]).await;
    let base = format!("http://{address}");
    until_usable(&base, 0).await;
    let verdict = check_at(&base, &token, &overwrite("v1")).await;
    assert_eq!(verdict["allowed"], false, "{verdict}");
    let refused = grant_as(&app.db, &tests::operator(), app::policy::ExceptionsSwitch::Off, "v1", "delete", "x")
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("TAGWARD_EXCEPTIONS=off"), "{refused}");
    // The other process (exceptions on) still holds the waiting one.
    until_usable(&app.url(""), 1).await;
    assert_eq!(app.check(&token, CHECK, &overwrite("v1")).await.1["exception"]["id"], waiting);
}

#[tokio::test]
async fn only_admins_grant_and_four_eyes_needs_a_second_admin() {
    let (app, ann, token) = shop().await;
    app.db.user("max", PASSWORD, false).await;
    app.db.member("shop", "max", "maintainer").await;
    app.db.user("dev", PASSWORD, false).await;
    app.db.member("shop", "dev", "developer").await;
    app.db.user("bea", PASSWORD, false).await;
    app.db.member("shop", "bea", "admin").await;
    let fields = [
        ("project", "shop"),
        ("repository", "shop/api"),
        ("target", "v1"),
        ("operation", "overwrite"),
        ("reason", "x"),
    ];
    for user in ["max", "dev"] {
        let client = app.logged_in(user, PASSWORD).await;
        let refused = app.call(&client, "grant_exception", &fields).await;
        assert_eq!(refused.status(), 403, "{user}");
        assert!(refused.text().await.unwrap().contains("only project admins may grant, approve or revoke exceptions"));
        // The tab shows them the list, without the forms.
        let page = app.page(&client, "/projects/shop/exceptions").await.text().await.unwrap();
        assert!(!page.contains("id=\"exceptions-mode\""), "{page}");
    }
    // A service token, even one that may write rules, cannot.
    let writer = app::principal::Principal::Token(app::principal::ServiceToken {
        id: 1,
        name: "terraform".into(),
        grant: app::account::TokenGrant::parse(&["rules:write"], &[]).unwrap(),
    });
    let refused = grant_as(&app.db, &writer, Default::default(), "v1", "overwrite", "x").await.unwrap_err();
    assert_eq!(refused.to_string(), "service tokens may not grant exceptions");
    assert_eq!(exception_count(&app.db).await, 0);

    // Four-eyes: ann's exception waits for another admin; she cannot approve it herself.
    app.call(&ann, "set_exceptions_mode", &[("project", "shop"), ("mode", "four-eyes")]).await;
    let granted = app.call(&ann, "grant_exception", &fields).await;
    assert!(granted.status().is_success());
    let (id,): (i64,) = sqlx::query_as("select id from tag_exceptions").fetch_one(&app.db.pool).await.unwrap();
    let list = app.page(&ann, "/projects/shop/exceptions").await.text().await.unwrap();
    assert!(list.contains(">pending<") && !list.contains(&format!("id=\"approve-{id}\"")), "{list}");
    assert_eq!(app.check(&token, CHECK, &overwrite("v1")).await.1["allowed"], false);
    let own = app.call(&ann, "approve_exception", &[("project", "shop"), ("id", &id.to_string())]).await;
    assert_eq!(own.status(), 403);
    assert!(own.text().await.unwrap().contains("another admin must approve it (four-eyes)"));
    let bea = app.logged_in("bea", PASSWORD).await;
    assert!(app
        .page(&bea, "/projects/shop/exceptions")
        .await
        .text()
        .await
        .unwrap()
        .contains(&format!("id=\"approve-{id}\"")));
    let approved = app.call(&bea, "approve_exception", &[("project", "shop"), ("id", &id.to_string())]).await;
    assert!(approved.status().is_success());
    until_usable(&app.url(""), 1).await;
    assert_eq!(app.check(&token, CHECK, &overwrite("v1")).await.1["exception"]["id"], id);
    let activity = app.page(&ann, "/projects/shop/activity?kind=exception").await.text().await.unwrap();
    assert!(
        activity.contains("it waits for another admin&#x27;s approval")
            || activity.contains("it waits for another admin's approval")
    );
    assert!(activity.contains(&format!("approved exception {id} (granted by ann)")), "{activity}");
}

/// The database away: the exception cannot be used, so the change is refused (never let through
/// unrecorded), and the exception is still there once the database is back.
#[tokio::test]
async fn with_the_database_away_an_exception_refuses_and_is_kept() {
    let db = tests::fresh_database().await;
    let proxy = CuttableProxy::start(tests::database_server_address()).await;
    let url = db.url_via(proxy.address);
    let app = tests::spawn_app_over(db, url).await;
    app.db.project("shop").await;
    app.db.rule("shop", "matching:**", "matching:v*").await;
    let token = app.db.token("registry").await;
    let kept = grant(&app.db, "v1", "overwrite", "INC-9").await;
    until_usable(&app.url(""), 1).await;

    proxy.cut();
    let (status, refused) = app.check(&token, CHECK, &overwrite("v1")).await;
    assert_eq!(status, 200);
    assert_eq!(refused["allowed"], false, "{refused}");
    let message = refused["message"].as_str().unwrap();
    assert!(message.contains(&format!("(exception {kept} could not be used: the database")), "{message}");
    proxy.restore();

    let (verdict, _) =
        tests::eventually("the kept exception letting the overwrite through", Duration::from_secs(20), || async {
            let (_, verdict) = app.check(&token, CHECK, &overwrite("v1")).await;
            if verdict["allowed"] == true {
                Ok(verdict)
            } else {
                Err(verdict.to_string())
            }
        })
        .await;
    assert_eq!(verdict["exception"]["id"], kept);
    let metrics = reqwest::get(app.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("tagward_exception_uses_total{outcome=\"database-unavailable\"}"), "{metrics}");
}

fn layer(seed: &str) -> Vec<u8> {
    format!("layer {seed} ").repeat(64).into_bytes()
}

async fn shop_and_registry() -> (TestDb, Registry) {
    tests::init_logging();
    let db = tests::fresh_database().await;
    db.project("shop").await;
    db.rule("shop", "matching:**", "matching:v*").await;
    (db, Registry::start().await)
}

/// Two gateways over one database race to overwrite `v1` with different images, one exception
/// between them: exactly one PUT is answered 201, the other 403.
#[tokio::test]
async fn two_gateways_racing_for_one_exception_let_exactly_one_overwrite_through() {
    let (db, registry) = shop_and_registry().await;
    let (first, second) = (gateway_for(&db, &registry).await, gateway_for(&db, &registry).await);
    let original = push_image(first, "shop/api", Some("v1"), "original", &[&layer("original")], None).await;
    // Two candidates, their blobs already uploaded (under mutable tags).
    push_image(first, "shop/api", Some("one"), "one", &[&layer("one")], None).await;
    push_image(first, "shop/api", Some("two"), "two", &[&layer("two")], None).await;
    let one = registry.manifest("shop/api", "one").await.unwrap();
    let two = registry.manifest("shop/api", "two").await.unwrap();
    let (status, _) = put_manifest(first, "shop/api", "v1", &one).await;
    assert_eq!(status, 403, "refused before the exception");
    let id = grant(&db, "v1", "overwrite", "INC-11: replace v1").await;
    for gateway in [first, second] {
        until_usable(&format!("http://{gateway}"), 1).await;
    }
    let (a, b) =
        tokio::join!(put_manifest(first, "shop/api", "v1", &one), put_manifest(second, "shop/api", "v1", &two));
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [201, 403], "{a:?} {b:?}");
    let loser = if a.0 == 403 { &a.1 } else { &b.1 };
    assert!(loser.contains("is immutable"), "{loser}");
    let winner = if a.0 == 201 { &one } else { &two };
    let stored = registry.digest("shop/api", "v1").await.unwrap();
    assert_eq!(stored, tests::registry::manifest_digest(winner));
    assert_ne!(stored, original.manifest);
    let (uses,): (i64,) = sqlx::query_as("select count(*) from audit_events where kind = 'exception.use'")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(uses, 1);
    let (used_by,): (String,) =
        sqlx::query_as("select used_by from tag_exceptions where id = $1").bind(id).fetch_one(&db.pool).await.unwrap();
    assert_eq!(used_by, "gateway");
}

/// A delete exception on a tag releases one delete of what the tag holds (a blob of its image),
/// and only one.
#[tokio::test]
async fn a_delete_exception_on_a_tag_releases_one_delete_of_what_it_holds() {
    let (db, registry) = shop_and_registry().await;
    let gateway: SocketAddr = gateway_for(&db, &registry).await;
    let image = push_image(gateway, "shop/api", Some("v1"), "held", &[&layer("held"), &layer("also held")], None).await;
    let delete = |path: String| async move {
        let response = reqwest::Client::new().delete(format!("http://{gateway}{path}")).send().await.unwrap();
        response.status().as_u16()
    };
    let blob = |digest: &str| format!("/v2/shop/api/blobs/{digest}");
    assert_eq!(delete(blob(&image.layers[0])).await, 403);
    let id = grant(&db, "v1", "delete", "INC-12: a secret was baked into a layer").await;
    until_usable(&format!("http://{gateway}"), 1).await;
    assert_eq!(delete(blob(&image.layers[0])).await, 202);
    assert!(!registry.has_blob("shop/api", &image.layers[0]).await);
    // Used up: the next delete of what v1 holds is refused again.
    assert_eq!(delete(blob(&image.layers[1])).await, 403);
    assert_eq!(delete(format!("/v2/shop/api/manifests/{}", image.manifest)).await, 403);
    let (used_for,): (String,) =
        sqlx::query_as("select used_for from tag_exceptions where id = $1").bind(id).fetch_one(&db.pool).await.unwrap();
    assert_eq!(used_for, format!("delete of blob shop/api@{}", image.layers[0]));
}

#[tokio::test]
async fn an_admin_allows_one_change_from_the_tags_tab_with_and_without_javascript() {
    use tests::browser::Browser;
    let (app, _, token) = shop().await;
    app.db.inventory_tag("shop/api", "v1", A).await;
    app.db.inventory_tag("shop/api", "v2", A).await;
    for (round, javascript) in [(1, true), (2, false)] {
        let tag = format!("v{round}");
        let browser = Browser::start(1280, javascript).await;
        browser.log_in(&app.url(""), "ann", PASSWORD).await;
        browser.goto(&app.url("/projects/shop/tags")).await;
        browser.find(&format!("a.allow-one[href*='target={tag}']")).await.click().await.unwrap();
        browser.wait_for_path("/projects/shop/exceptions/new").await;
        assert_eq!(browser.find("#exception-target").await.prop("value").await.unwrap().as_deref(), Some(tag.as_str()));
        if javascript {
            assert_eq!(browser.accessibility_violations().await, Vec::<String>::new());
            browser.screenshot("exception-grant-1280").await;
        }
        browser.find("#operation-overwrite").await.click().await.unwrap();
        browser.find("#exception-reason").await.send_keys("INC-20: wrong image released").await.unwrap();
        browser.find("#grant-exception button[type=submit]").await.click().await.unwrap();
        browser.wait_for_path("/projects/shop/exceptions").await;
        let (id,): (i64,) = sqlx::query_as("select id from tag_exceptions where tag = $1")
            .bind(&tag)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
        let row = browser.text_containing(&format!("#exception-{id}"), "active").await;
        assert!(row.contains(&format!("overwrite of shop/api:{tag}")) && row.contains("INC-20"), "{row}");
        if javascript {
            assert_eq!(browser.accessibility_violations().await, Vec::<String>::new());
            browser.screenshot("exceptions-1280").await;
            // Used by the registry, the list says so.
            until_usable(&app.url(""), 1).await;
            assert_eq!(app.check(&token, CHECK, &overwrite(&tag)).await.1["exception"]["id"], id);
            browser.goto(&app.url("/projects/shop/exceptions")).await;
            browser.text_containing(&format!("#exception-{id}"), "used").await;
        } else {
            browser.find(&format!("#revoke-{id}")).await.click().await.unwrap();
            browser.text_containing(&format!("#exception-{id}"), "revoked").await;
        }
        browser.close().await;
    }
}

#[tokio::test]
async fn exceptions_from_the_command_line() {
    let db = tests::fresh_database().await;
    db.project("shop").await;
    let run = async |args: &[&str]| crate::cli::tagward(&db.url, args, "").await;
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let granted = run(&[
        "exception",
        "grant",
        "shop/api:v1",
        "--operation",
        "overwrite",
        "--reason",
        "INC-30: hotfix",
        "--expires-in",
        "30m",
    ])
    .await;
    assert!(granted.status.success(), "{}", text(&granted.stderr));
    let out = text(&granted.stdout);
    assert!(
        out.starts_with("exception ") && out.ends_with(": one overwrite of shop/api:v1, usable for 30 minutes\n"),
        "{out}"
    );
    let first: i64 = out["exception ".len()..].split(':').next().unwrap().parse().unwrap();
    let by_digest =
        run(&["exception", "grant", &format!("shop/api@{A}"), "--operation", "delete", "--reason", "INC-31"]).await;
    assert!(text(&by_digest.stdout).contains(&format!(": one delete of shop/api@{A}, usable for 60 minutes")));
    for (args, error) in [
        (
            vec![
                "exception",
                "grant",
                "shop/api:v1",
                "--operation",
                "overwrite",
                "--reason",
                "x",
                "--expires-in",
                "2d",
            ],
            "expires_in: `2d` is not a duration such as 30m, 1h or 24h",
        ),
        (
            vec!["exception", "grant", "shop/api", "--operation", "delete", "--reason", "x"],
            "reference: `shop/api` is neither repository:tag nor repository@digest",
        ),
        (
            vec!["exception", "grant", "web/api:v1", "--operation", "delete", "--reason", "x"],
            "project `web` does not exist",
        ),
        (
            vec!["exception", "grant", "shop/api:v1", "--operation", "delete", "--reason", "x", "--exceptions", "off"],
            "exceptions are switched off for this tagward (TAGWARD_EXCEPTIONS=off)",
        ),
    ] {
        let refused = run(&args).await;
        assert!(!refused.status.success());
        assert!(text(&refused.stderr).contains(error), "{}", text(&refused.stderr));
    }
    let revoked = run(&["exception", "revoke", "shop", &first.to_string()]).await;
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    let listed = text(&run(&["exception", "list", "shop"]).await.stdout);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(lines[0].contains(&format!("\tactive\tdelete of shop/api@{A}\tgranted by cli:")), "{listed}");
    assert!(
        lines[1].starts_with(&format!("{first}\trevoked\toverwrite of shop/api:v1\t"))
            && lines[1].contains("revoked by cli:")
    );

    let mode = run(&["exception", "mode", "shop", "four-eyes"]).await;
    assert_eq!(text(&mode.stdout), "project `shop` exceptions: four-eyes\n");
    let pending = run(&["exception", "grant", "shop/api:v2", "--operation", "delete", "--reason", "x"]).await;
    let out = text(&pending.stdout);
    assert!(out.contains("once another admin approves it (four-eyes)"), "{out}");
    let id = out["exception ".len()..].split(':').next().unwrap().to_owned();
    let own = run(&["exception", "approve", "shop", &id]).await;
    assert!(text(&own.stderr).contains("was granted by you: another admin must approve it"), "{}", text(&own.stderr));
}

/// Exceptions for one tag are used one after another, each once, by one process and by another
/// whose memory may still hold one just used (the database says so, and it takes the next).
#[tokio::test]
async fn several_exceptions_for_one_tag_are_used_one_after_another_across_processes() {
    let (app, _, token) = shop().await;
    let granted = [
        grant(&app.db, "v1", "overwrite", "one").await,
        grant(&app.db, "v1", "overwrite", "two").await,
        grant(&app.db, "v1", "overwrite", "three").await,
        grant(&app.db, "v1", "overwrite", "four").await,
    ];
    let (address, _other) = tests::spawn_server(&app.db.url, &[]).await;
    let other = format!("http://{address}");
    until_usable(&app.url(""), 4).await;
    until_usable(&other, 4).await;
    let body = overwrite("v1");
    let ask_other = || check_at(&other, &token, &body);
    let mut used = Vec::new();
    for _ in 0..2 {
        let here = app.check(&token, CHECK, &overwrite("v1")).await.1;
        assert_eq!(here["allowed"], true, "{here}");
        used.push(here["exception"]["id"].as_i64().unwrap());
        let there = ask_other().await;
        assert_eq!(there["allowed"], true, "{there}");
        used.push(there["exception"]["id"].as_i64().unwrap());
    }
    used.sort();
    assert_eq!(used, granted, "each used once");
    assert_eq!(app.check(&token, CHECK, &overwrite("v1")).await.1["allowed"], false);
    assert_eq!(ask_other().await["allowed"], false);
}

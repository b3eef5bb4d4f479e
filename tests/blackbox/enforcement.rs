//! The decision API as a registry backend uses it: DESIGN.md §3's cases, tokens, malformed
//! requests, the audit trail, metrics, a second process and a database outage.

use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tests::{spawn_app, spawn_app_over, CuttableProxy, TestApp};

use tests::fixtures::{CHECK, DIGEST_A as A, DIGEST_B as B};

/// An app with project `shop`, rule 1 making `v*` tags of every repository immutable, and a token.
async fn shop() -> (TestApp, String, i64) {
    let app = spawn_app().await;
    app.db.project("shop").await;
    let rule = app.db.rule("shop", "matching:**", "matching:v*").await;
    let token = app.db.token("registry").await;
    // Both reach the server's caches by notification, a moment after they are committed.
    until_decided(&app, &token, &push("shop/api", "v0", B, Some(A)), false, Duration::from_secs(2)).await;
    (app, token, rule)
}

fn push(repository: &str, tag: &str, digest: &str, current: Option<&str>) -> Value {
    json!({"operation": "push", "repository": repository, "tag": tag, "digest": digest, "current_digest": current})
}

/// Polls `check` until it answers as `allowed` says, for at most `within`; returns how long it took.
async fn until_decided(app: &TestApp, token: &str, body: &Value, allowed: bool, within: Duration) -> Duration {
    let what = format!("the decision allowed = {allowed}");
    let (_, took) = tests::eventually(&what, within, || async {
        match app.check(token, CHECK, body).await {
            (200, verdict) if verdict["allowed"] == allowed => Ok(()),
            (status, verdict) => Err(format!("{status} {verdict}")),
        }
    })
    .await;
    took
}

#[tokio::test]
async fn push_decisions_follow_the_rules() {
    let (app, token, rule) = shop().await;
    let rules = json!([{"id": rule, "summary": "repositories matching **, tags matching v*"}]);

    let (status, first) = app.check(&token, CHECK, &push("shop/api", "v1", A, None)).await;
    assert_eq!(status, 200);
    assert_eq!(first["allowed"], true, "a first push of an immutable tag is allowed: {first}");
    assert_eq!(first["rules"], rules);
    assert_eq!(first["immutable_tags"], json!(["v1"]));
    assert_eq!(first["project_known"], true);

    let (_, same) = app.check(&token, CHECK, &push("shop/api", "v1", A, Some(A))).await;
    assert_eq!(same["allowed"], true, "re-pushing the same digest is allowed: {same}");

    let (_, overwrite) = app.check(&token, CHECK, &push("shop/api/web", "v1", B, Some(A))).await;
    assert_eq!(overwrite["allowed"], false);
    assert_eq!(
        overwrite["message"],
        format!(
            "tag \"v1\" of \"shop/api/web\" is immutable (rule {rule}: repositories matching **, tags matching v*); push a new tag instead"
        )
    );
    assert_eq!(overwrite["rules"], rules);

    let (_, mutable) = app.check(&token, CHECK, &push("shop/api", "latest", B, Some(A))).await;
    assert_eq!(mutable["allowed"], true);
    assert_eq!(mutable["rules"], json!([]));
    assert_eq!(mutable["immutable_tags"], json!([]));

    let (status, unknown) = app.check(&token, CHECK, &push("other/api", "v1", B, Some(A))).await;
    assert_eq!(status, 200);
    assert_eq!(unknown["allowed"], true);
    assert_eq!(unknown["project_known"], false);
    assert_eq!(unknown["message"], "project \"other\" is not known to tagward, so no rule protects \"other/api\"");
}

#[tokio::test]
async fn json_escapes_are_decoded_before_deciding() {
    let (app, token, _) = shop().await;
    // `shop/api:v1` written with escapes: read as the registry would read the JSON, then decided.
    let body = br#"{"operation":"push","repository":"\u0073hop\/api","tag":"\u00761","digest":"DIGEST","current_digest":"CURRENT"}"#;
    let body = String::from_utf8_lossy(body).replace("DIGEST", B).replace("CURRENT", A);
    let response = reqwest::Client::new()
        .post(app.url(CHECK))
        .bearer_auth(&token)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let verdict: Value = response.json().await.unwrap();
    assert_eq!(verdict["allowed"], false, "{verdict}");
    assert_eq!(verdict["immutable_tags"], json!(["v1"]), "{verdict}");
    // A field that does not fit is still named, escapes or not.
    let (status, error) = app.check(&token, CHECK, &json!({"operation": "push", "repository": 7})).await;
    assert_eq!(status, 400);
    assert_eq!(error["errors"][0]["detail"]["field"], "repository", "{error}");
}

#[tokio::test]
async fn delete_decisions_follow_the_rules() {
    let (app, token, rule) = shop().await;
    let delete_tag = |tag: &str| json!({"operation": "delete_tag", "repository": "shop/api", "tag": tag});
    let delete_manifest =
        |tags: &[&str]| json!({"operation": "delete_manifest", "repository": "shop/api", "digest": A, "tags": tags});

    let (_, immutable) = app.check(&token, CHECK, &delete_tag("v1")).await;
    assert_eq!(immutable["allowed"], false);
    assert_eq!(
        immutable["message"],
        format!("tag \"v1\" of \"shop/api\" is immutable (rule {rule}: repositories matching **, tags matching v*); it cannot be deleted")
    );
    let (_, mutable) = app.check(&token, CHECK, &delete_tag("latest")).await;
    assert_eq!(mutable["allowed"], true);

    let (_, locked) = app.check(&token, CHECK, &delete_manifest(&["latest", "v1", "v2"])).await;
    assert_eq!(locked["allowed"], false);
    assert_eq!(locked["immutable_tags"], json!(["v1", "v2"]));
    assert!(locked["message"].as_str().unwrap().contains("is locked by its immutable tag \"v1\""), "{locked}");
    let (_, unlocked) = app.check(&token, CHECK, &delete_manifest(&["latest"])).await;
    assert_eq!(unlocked["allowed"], true);
    let (_, untagged) = app.check(&token, CHECK, &delete_manifest(&[])).await;
    assert_eq!(untagged["allowed"], true, "a digest with no tags is not locked: {untagged}");

    // Every denial lands in the audit trail, off the request path.
    let started = Instant::now();
    type Denial = (String, String, Option<String>, Vec<i64>, String);
    let denials: Vec<Denial> = loop {
        let rows =
            sqlx::query_as("select operation, token, tag, rule_ids, repository from enforcement_denials order by id")
                .fetch_all(&app.db.pool)
                .await
                .unwrap();
        if rows.len() >= 3 || started.elapsed() > Duration::from_secs(5) {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        denials,
        vec![
            // The denial `shop()` waits for.
            ("push".into(), "registry".into(), Some("v0".into()), vec![rule], "shop/api".into()),
            ("delete_tag".into(), "registry".into(), Some("v1".into()), vec![rule], "shop/api".into()),
            ("delete_manifest".into(), "registry".into(), Some("v1".into()), vec![rule], "shop/api".into()),
        ]
    );
}

/// A registry that knows its own graph says what holds the target of a delete (`held_by`).
#[tokio::test]
async fn deletes_of_what_an_immutable_tag_holds_are_denied() {
    let (app, token, rule) = shop().await;
    let delete_blob =
        |held_by: Value| json!({"operation": "delete_blob", "repository": "shop/api", "digest": A, "held_by": held_by});

    let (status, unheld) = app.check(&token, CHECK, &delete_blob(json!([]))).await;
    assert_eq!((status, &unheld["allowed"]), (200, &json!(true)), "{unheld}");
    assert_eq!(unheld["message"], format!("blob {A} of \"shop/api\" is held by no immutable tag"));
    let mutable =
        json!([{"digest": B, "tags": ["latest"], "relation": "layer"}, {"digest": B, "tags": [], "relation": "child"}]);
    let (_, only_mutable) = app.check(&token, CHECK, &delete_blob(mutable)).await;
    assert_eq!(only_mutable["allowed"], true, "{only_mutable}");

    let held = json!([{"digest": B, "tags": ["latest", "v2", "v1"], "relation": "layer"}]);
    let (_, layer) = app.check(&token, CHECK, &delete_blob(held)).await;
    assert_eq!(layer["allowed"], false, "{layer}");
    assert_eq!(layer["immutable_tags"], json!(["v1", "v2"]));
    assert_eq!(
        layer["message"],
        format!(
            "blob {A} of \"shop/api\" is held by immutable tag \"v2\" (rule {rule}: repositories matching **, \
             tags matching v*) as layer of {B}; it cannot be deleted"
        )
    );

    let referrer = json!({"operation": "delete_manifest", "repository": "shop/api", "digest": A, "tags": ["sig"],
                          "held_by": [{"digest": B, "tags": ["v1"], "relation": "referrer"}]});
    let (_, signature) = app.check(&token, CHECK, &referrer).await;
    assert_eq!(signature["allowed"], false, "{signature}");
    assert!(signature["message"].as_str().unwrap().contains(&format!("as signature/referrer of {B};")), "{signature}");
    // Without `held_by`, a manifest delete is decided on its own tags, as before.
    let plain = json!({"operation": "delete_manifest", "repository": "shop/api", "digest": A, "tags": ["sig"]});
    assert_eq!(app.check(&token, CHECK, &plain).await.1["allowed"], true);

    let (rows, _) = tests::eventually("both delete denials recorded", Duration::from_secs(5), || async {
        let rows: Vec<(String, Option<String>)> =
            sqlx::query_as("select operation, tag from enforcement_denials where operation <> 'push' order by id")
                .fetch_all(&app.db.pool)
                .await
                .unwrap();
        if rows.len() == 2 {
            Ok(rows)
        } else {
            Err(format!("{rows:?}"))
        }
    })
    .await;
    assert_eq!(rows, [("delete_blob".into(), Some("v1".into())), ("delete_manifest".into(), Some("v1".into()))]);
}

#[tokio::test]
async fn a_batch_decides_every_tag_of_one_push() {
    let (app, token, _) = shop().await;
    let batch = json!({"checks": [push("shop/api", "latest", B, Some(A)), push("shop/api", "v1", B, Some(A))]});
    let (status, verdict) = app.check(&token, "/api/v1/enforcement/check/batch", &batch).await;
    assert_eq!(status, 200, "{verdict}");
    assert_eq!(verdict["allowed"], false);
    assert_eq!(verdict["decisions"][0]["allowed"], true);
    assert_eq!(verdict["decisions"][1]["allowed"], false);

    let bad = json!({"checks": [push("shop/api", "latest", B, Some(A)), push("shop/api", "v1", "sha256:zz", Some(A))]});
    let (status, error) = app.check(&token, "/api/v1/enforcement/check/batch", &bad).await;
    assert_eq!(status, 400);
    assert_eq!(error["errors"][0]["detail"]["field"], "checks[1].digest");
    let (status, error) = app.check(&token, "/api/v1/enforcement/check/batch", &json!({"checks": []})).await;
    assert_eq!(status, 400);
    assert_eq!(error["errors"][0]["detail"]["field"], "checks");
}

#[tokio::test]
async fn one_tag_can_be_asked_about() {
    let (app, token, rule) = shop().await;
    let ask = |query: &str| {
        let request = reqwest::Client::new().get(app.url(&format!("/api/v1/projects/{query}"))).bearer_auth(&token);
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    let (status, answer) = ask("shop/immutable?repository=api/web&tag=v2").await;
    assert_eq!(status, 200);
    assert_eq!(answer["immutable"], true);
    assert_eq!(answer["repository"], "shop/api/web");
    assert_eq!(answer["rules"][0]["id"], rule);
    let (_, answer) = ask("shop/immutable?repository=api&tag=latest").await;
    assert_eq!(answer["immutable"], false);
    let (_, answer) = ask("nope/immutable?repository=api&tag=v1").await;
    assert_eq!((answer["immutable"].clone(), answer["project_known"].clone()), (json!(false), json!(false)));
    let (status, error) = ask("shop/immutable?repository=Api&tag=v1").await;
    assert_eq!(status, 400);
    assert_eq!(error["errors"][0]["code"], "NAME_INVALID");
    assert_eq!(error["errors"][0]["detail"]["field"], "repository");
}

#[tokio::test]
async fn a_token_is_required_and_revocation_takes_effect_at_once() {
    let (app, token, _) = shop().await;
    let body = push("shop/api", "v1", A, None);
    let client = reqwest::Client::new();

    let anonymous = client.post(app.url(CHECK)).json(&body).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let challenge = anonymous.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    let error: Value = anonymous.json().await.unwrap();
    assert_eq!(error["errors"][0]["code"], "UNAUTHORIZED");

    let (status, _) = app.check("tw_not-a-token", CHECK, &body).await;
    assert_eq!(status, 401);
    let (status, _) = app.check(&token, CHECK, &body).await;
    assert_eq!(status, 200);

    let name = app::account::TokenName::parse("registry").unwrap();
    app::store::revoke_token(&app.db.pool, &tests::operator(), &name).await.unwrap();
    let waited = tests::until("revoked token still accepted", Duration::from_secs(2), || async {
        app.check(&token, CHECK, &body).await.0 == 401
    })
    .await;
    println!("revocation effective after {:?}", waited);

    // A token created after start is accepted without a restart.
    let fresh = app.db.token("registry").await;
    until_decided(&app, &fresh, &body, true, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn malformed_requests_are_refused_naming_the_field() {
    let (app, token, _) = shop().await;
    let cases = [
        (push("shop/api", "v1", "sha256:abc", None), "DIGEST_INVALID", "digest"),
        (push("shop/api", "v1", A, Some("md5:00")), "DIGEST_INVALID", "current_digest"),
        (push("Shop/api", "v1", A, None), "NAME_INVALID", "repository"),
        (push("shop", "v1", A, None), "NAME_INVALID", "repository"),
        (push("shop/api", "-v1", A, None), "TAG_INVALID", "tag"),
        (
            json!({"operation": "push", "repository": "shop/api", "tag": "v1", "digest": A}),
            "INVALID_REQUEST",
            "current_digest",
        ),
        (
            json!({"operation": "push", "repository": "shop/api", "digest": A, "current_digest": null}),
            "INVALID_REQUEST",
            "tag",
        ),
        (json!({"operation": "delete_tag", "repository": "shop/api"}), "INVALID_REQUEST", "tag"),
        (
            json!({"operation": "delete_tag", "repository": "shop/api", "tag": "v1", "tags": []}),
            "INVALID_REQUEST",
            "tags",
        ),
        (json!({"operation": "delete_manifest", "repository": "shop/api", "digest": A}), "INVALID_REQUEST", "tags"),
        (
            json!({"operation": "delete_manifest", "repository": "shop/api", "digest": A, "tags": ["ok", "n/o"]}),
            "TAG_INVALID",
            "tags[1]",
        ),
        (json!({"operation": "delete_blob", "repository": "shop/api", "digest": A}), "INVALID_REQUEST", "held_by"),
        (
            json!({"operation": "delete_blob", "repository": "shop/api", "digest": A, "tags": [], "held_by": []}),
            "INVALID_REQUEST",
            "tags",
        ),
        (
            json!({"operation": "delete_blob", "repository": "shop/api", "digest": A,
                   "held_by": [{"digest": B, "tags": ["v1"], "relation": "parent"}]}),
            "INVALID_REQUEST",
            "held_by[0].relation",
        ),
        (
            json!({"operation": "delete_blob", "repository": "shop/api", "digest": A,
                   "held_by": [{"digest": B, "relation": "layer"}]}),
            "INVALID_REQUEST",
            "held_by[0].tags",
        ),
        (
            json!({"operation": "delete_manifest", "repository": "shop/api", "digest": A, "tags": [],
                   "held_by": [{"digest": "sha256:zz", "tags": [], "relation": "child"}]}),
            "DIGEST_INVALID",
            "held_by[0].digest",
        ),
        // `held_by` and `subject_tags` go with a tag delete (read for attachment lists), the entries of
        // a list only with a push.
        (
            json!({"operation": "delete_tag", "repository": "shop/api", "tag": "v1", "entries": []}),
            "INVALID_REQUEST",
            "entries",
        ),
        (
            json!({"operation": "delete_manifest", "repository": "shop/api", "digest": A, "tags": [], "subject_tags": []}),
            "INVALID_REQUEST",
            "subject_tags",
        ),
        (
            json!({"operation": "push", "repository": "shop/api", "tag": "v1", "digest": A, "current_digest": null,
                   "subject_tags": ["n/o"]}),
            "TAG_INVALID",
            "subject_tags[0]",
        ),
        (json!({"operation": "overwrite", "repository": "shop/api"}), "INVALID_REQUEST", "operation"),
        (json!({"repository": "shop/api"}), "INVALID_REQUEST", "operation"),
        (json!({"operation": "delete_tag", "repository": "shop/api", "tag": 5}), "INVALID_REQUEST", "tag"),
        (json!({"operation": "delete_tag", "repository": "shop/api", "tga": "v1"}), "INVALID_REQUEST", "tga"),
    ];
    for (body, code, field) in cases {
        let (status, error) = app.check(&token, CHECK, &body).await;
        assert_eq!(status, 400, "{body} → {error}");
        let error = &error["errors"][0];
        assert_eq!(
            (error["code"].as_str(), error["detail"]["field"].as_str()),
            (Some(code), Some(field)),
            "{body} → {error}"
        );
        assert!(error["message"].as_str().is_some_and(|m| m.contains(field)), "{body} → {error}");
    }
    let response = reqwest::Client::new().post(app.url(CHECK)).bearer_auth(&token).body("{").send().await.unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn metrics_and_the_openapi_document_are_served() {
    let (app, token, _) = shop().await;
    let before = metrics(&app).await;
    app.check(&token, CHECK, &push("shop/api", "v1", B, Some(A))).await;
    app.check(&token, CHECK, &push("shop/api", "v1", A, None)).await;
    let after = metrics(&app).await;
    let grew = |name: &str| after.get(name).copied().unwrap_or(0.0) - before.get(name).copied().unwrap_or(0.0);
    assert_eq!(grew("tagward_decisions_total{operation=\"push\",outcome=\"denied\"}"), 1.0);
    assert_eq!(grew("tagward_decisions_total{operation=\"push\",outcome=\"allowed\"}"), 1.0);
    assert_eq!(grew("tagward_decision_duration_seconds_count{operation=\"push\"}"), 2.0);
    assert_eq!(after["tagward_audit_denials_dropped_total"], 0.0);
    assert_eq!(after["tagward_policy_cache_projects"], 1.0);
    assert_eq!(after["tagward_database_notifications_up"], 1.0);
    assert_eq!(after["tagward_policy_cache_reloads_total{scope=\"full\"}"], 1.0);
    assert!(after["tagward_policy_cache_reloads_total{scope=\"project\"}"] >= 2.0, "project created, rule added");

    let openapi: Value = reqwest::get(app.url("/api/v1/openapi.json")).await.unwrap().json().await.unwrap();
    assert!(openapi["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        CHECK,
        "/api/v1/enforcement/check/batch",
        "/api/v1/projects/{project}/immutable",
        "/api/v2.0/projects/{project_name_or_id}/immutabletagrules",
        "/api/v2.0/projects/{project_name_or_id}/immutabletagrules/{immutable_rule_id}",
    ] {
        assert!(openapi["paths"][path].is_object(), "{path} missing");
    }
    // The exact shapes: a push requires `current_digest` (null when the tag is new).
    let push = &openapi["components"]["schemas"]["PushCheck"];
    assert!(push["properties"]["current_digest"].is_object(), "{push}");
    assert!(push["required"].as_array().unwrap().contains(&Value::from("current_digest")), "{push}");
    assert_eq!(openapi["components"]["schemas"]["CheckRequest"]["oneOf"].as_array().map(Vec::len), Some(4));
    // Every path parameter is required, and so are the immutable look-up's query parameters.
    let immutable = &openapi["paths"]["/api/v1/projects/{project}/immutable"]["get"]["parameters"];
    for name in ["project", "repository", "tag"] {
        let parameter = immutable.as_array().unwrap().iter().find(|p| p["name"] == name).unwrap();
        assert_eq!(parameter["required"], true, "{parameter}");
    }
    let blob = &openapi["components"]["schemas"]["DeleteBlobCheck"];
    assert!(blob["required"].as_array().unwrap().contains(&Value::from("held_by")), "{blob}");
}

/// The samples of `/metrics`, by name and labels.
async fn metrics(app: &TestApp) -> std::collections::HashMap<String, f64> {
    let text = reqwest::get(app.url("/metrics")).await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .map(|(sample, value)| (sample.to_owned(), value.parse().unwrap()))
        .collect()
}

/// A second tagward process sharing the database sees a rule change made elsewhere.
#[tokio::test]
async fn a_rule_change_reaches_a_second_process() {
    let (app, token, _) = shop().await;
    let (second, mut process) = tests::spawn_server(&app.db.url, &[]).await;
    let second_url = format!("http://{second}");
    let ask = |body: Value| {
        let request = reqwest::Client::new().post(format!("{second_url}{CHECK}")).bearer_auth(&token).json(&body);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let body = push("shop/api", "stable", B, Some(A));
    assert_eq!(ask(body.clone()).await["allowed"], true);

    let rule = app.db.rule("shop", "matching:api", "matching:stable").await;
    let (verdict, changed) =
        tests::eventually("the second process seeing the rule", Duration::from_secs(2), || async {
            let verdict = ask(body.clone()).await;
            if verdict["allowed"] == false {
                Ok(verdict)
            } else {
                Err(verdict.to_string())
            }
        })
        .await;
    assert_eq!(verdict["rules"][0]["id"], rule);
    println!("rule change visible in the second process after {changed:?}");
    process.kill().await.unwrap();
}

/// The database goes away in the middle of a stream of decisions: none is wrong, none is a 5xx,
/// readiness says degraded, and once it is back, a change made meanwhile is picked up.
#[tokio::test]
async fn decisions_survive_a_database_outage() {
    let db = tests::fresh_database().await;
    let proxy = CuttableProxy::start(tests::database_server_address()).await;
    let url = db.url_via(proxy.address);
    let app = spawn_app_over(db, url).await;
    app.db.project("shop").await;
    app.db.rule("shop", "matching:**", "matching:v*").await;
    let token = app.db.token("registry").await;
    until_decided(&app, &token, &push("shop/api", "v1", B, Some(A)), false, Duration::from_secs(2)).await;

    // Decisions asked without a pause from before the outage until after it; `answered` counts
    // them as they come, `stop` ends the stream.
    let answered = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let stream = {
        let (url, token, answered, stop) = (app.url(CHECK), token.clone(), answered.clone(), stop.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            while !stop.load(Ordering::SeqCst) {
                for (body, allowed) in
                    [(push("shop/api", "v1", B, Some(A)), false), (push("shop/api", "dev", B, Some(A)), true)]
                {
                    let response = client.post(&url).bearer_auth(&token).json(&body).send().await.unwrap();
                    assert_eq!(response.status(), 200, "a decision failed during the outage");
                    let verdict: Value = response.json().await.unwrap();
                    assert_eq!(verdict["allowed"], allowed, "wrong decision during the outage: {verdict}");
                    answered.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };
    let answered_at_least = |n: usize| answered.load(Ordering::SeqCst) >= n;

    tests::until("decisions answered before the outage", Duration::from_secs(10), || async { answered_at_least(20) })
        .await;
    proxy.cut();
    let at_cut = answered.load(Ordering::SeqCst);
    tests::until("readiness saying the database is unreachable", Duration::from_secs(5), || async {
        let ready = reqwest::get(app.url("/readyz")).await.unwrap();
        assert_eq!(ready.status(), 200);
        ready.text().await.unwrap().starts_with("degraded: database unreachable")
    })
    .await;
    // Meanwhile somebody changes the rules (straight to the database, not through the proxy).
    let stable = app.db.rule("shop", "matching:**", "matching:stable").await;
    tests::until("decisions answered during the outage", Duration::from_secs(30), || async {
        answered_at_least(at_cut + 60)
    })
    .await;
    proxy.restore();
    stop.store(true, Ordering::SeqCst);

    stream.await.expect("the decision stream saw no 5xx and no wrong decision");
    let answered = answered.load(Ordering::SeqCst) - at_cut;
    assert!(answered > 50, "only {answered} decisions");
    println!("{answered} decisions during the outage stream, all right");

    until_decided(&app, &token, &push("shop/api", "stable", B, Some(A)), false, Duration::from_secs(10)).await;
    let (_, verdict) = app.check(&token, CHECK, &push("shop/api", "stable", B, Some(A))).await;
    assert_eq!(verdict["rules"][0]["id"], stable);
    tests::until("ready again", Duration::from_secs(10), || async {
        reqwest::get(app.url("/readyz")).await.unwrap().text().await.unwrap() == "ready\n"
    })
    .await;
}

/// A client retrying a refused push in a loop: identical denials fold into one row with their
/// count and first and last time, none dropped, and the Activity tab says how many. Denials that
/// differ in one field only, sent in between, are not folded into them.
#[tokio::test]
async fn a_storm_of_identical_denials_is_recorded_as_counted_rows() {
    let (app, token, _) = shop().await;
    let overwrite = push("shop/api", "v1", B, Some(A));
    let attempts = 400;
    // Each differs from `overwrite` in one thing: the current digest, the operation, the repository.
    let other_current = push("shop/api", "v1", A, Some(B));
    let delete = json!({"operation": "delete_tag", "repository": "shop/api", "tag": "v1"});
    let other_repository = push("shop/web", "v1", B, Some(A));
    let others = [&other_current, &delete, &other_repository];
    let storm = (0..attempts).map(|n| {
        let body = if n % 4 == 3 { others[(n / 4) as usize % 3] } else { &overwrite };
        app.check(&token, CHECK, body)
    });
    for (status, verdict) in futures::future::join_all(storm).await {
        assert_eq!((status, verdict["allowed"].clone()), (200, json!(false)));
    }
    let started = Instant::now();
    let (rows, total): (i64, i64) = loop {
        let counted: (i64, Option<i64>) = sqlx::query_as(
            "select count(*), sum(count)::bigint from enforcement_denials where tag = 'v1' and last_at >= at",
        )
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
        if counted.1 == Some(attempts) || started.elapsed() > Duration::from_secs(5) {
            break (counted.0, counted.1.unwrap_or_default());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!("{attempts} denials recorded as {rows} row(s)");
    assert_eq!(total, attempts, "every attempt is counted");
    let (kinds,): (Vec<String>,) = sqlx::query_as(
        "select array_agg(kind order by kind) from (
           select format('%s %s %s %s', operation, repository, current_digest = $1, sum(count)) as kind
           from enforcement_denials
           where tag = 'v1' and (operation, repository, current_digest) is distinct from ('push', 'shop/api', $1)
           group by operation, repository, current_digest) kinds",
    )
    .bind(A)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(kinds, ["delete_tag shop/api  33", "push shop/api f 34", "push shop/web t 33"], "{kinds:?}");
    assert!(rows < attempts / 10, "{attempts} denials of 4 kinds took {rows} rows");
    let metrics = reqwest::get(app.url("/metrics")).await.unwrap().text().await.unwrap();
    let dropped = metrics.lines().find(|line| line.starts_with("tagward_audit_denials_dropped_total")).unwrap();
    assert!(dropped.ends_with(" 0"), "{dropped}");

    app.db.user("ann", tests::fixtures::PASSWORD, false).await;
    app.db.member("shop", "ann", "guest").await;
    let ann = app.logged_in("ann", tests::fixtures::PASSWORD).await;
    let view: Value =
        app.call(&ann, "activity", &[("project", "shop"), ("kind", "denial")]).await.json().await.unwrap();
    let summaries: Vec<&str> =
        view["entries"].as_array().unwrap().iter().filter_map(|e| e["summary"].as_str()).collect();
    assert!(summaries.iter().any(|s| s.contains(" times between ")), "{summaries:?}");

    // Denials at a glance: per day for 30 days (today's bar holds the storm, and the denial the
    // set-up made), the most denied.
    let (denied,): (i64,) =
        sqlx::query_as("select sum(count)::bigint from enforcement_denials").fetch_one(&app.db.pool).await.unwrap();
    assert!(denied > attempts);
    let chart = &view["denials"];
    let days = chart["days"].as_array().unwrap();
    assert_eq!(days.len(), 30, "{chart}");
    assert_eq!(days[29]["count"], json!(denied), "{chart}");
    assert!(days[..29].iter().all(|day| day["count"] == 0), "{chart}");
    assert_eq!(chart["total"], json!(denied));
    // The storm's denials of shop/web (33) are its only ones; the rest were of shop/api.
    assert_eq!(
        chart["top_repositories"],
        json!([{"name": "shop/api", "count": denied - 33}, {"name": "shop/web", "count": 33}])
    );
    assert_eq!(chart["top_callers"], json!([{"name": "registry", "count": denied}]));
    // Server-rendered: the chart and its numbers are in the page without any script.
    let page = app.page(&ann, "/projects/shop/activity").await.text().await.unwrap();
    assert!(page.contains("id=\"denial-chart\""), "{page}");
    assert!(page.contains(&format!("Denials per day, last 30 days: {denied} in all")), "{page}");
    assert!(page.contains(&format!("{}: {denied} denials", days[29]["name"].as_str().unwrap())), "{page}");
}

/// Projects made from one template share one compiled policy, yet each decision names the
/// project's own rules, and changing one project's rules leaves the others' alone.
#[tokio::test]
async fn projects_with_the_same_rules_share_a_policy_but_not_their_rule_ids() {
    let app = spawn_app().await;
    let mut rules = std::collections::HashMap::new();
    for project in ["blue", "green", "odd"] {
        app.db.project(project).await;
        let tags = if project == "odd" { "matching:release-*" } else { "matching:v*" };
        let first = app.db.rule(project, "matching:**", tags).await;
        let second = app.db.rule(project, "matching:api/**", "matching:prod").await;
        rules.insert(project, (first, second));
    }
    let token = app.db.token("registry").await;
    for project in ["blue", "green"] {
        let overwrite = push(&format!("{project}/api/web"), "v1", B, Some(A));
        until_decided(&app, &token, &overwrite, false, Duration::from_secs(2)).await;
        let (_, verdict) = app.check(&token, CHECK, &overwrite).await;
        let (first, _) = rules[project];
        assert_eq!(verdict["rules"], json!([{"id": first, "summary": "repositories matching **, tags matching v*"}]));
        assert!(verdict["message"].as_str().unwrap().contains(&format!("(rule {first}: ")), "{verdict}");
    }
    let (_, odd) = app.check(&token, CHECK, &push("odd/api/web", "v1", B, Some(A))).await;
    assert_eq!(odd["allowed"], true, "{odd}");
    let compiled = metrics(&app).await["tagward_policy_cache_compiled_policies"];
    assert_eq!(compiled, 2.0, "blue and green share one policy, odd has its own");

    // green moves on; blue keeps what it had.
    app.db.rule("green", "matching:**", "matching:stable").await;
    let stable = push("green/api", "stable", B, Some(A));
    until_decided(&app, &token, &stable, false, Duration::from_secs(2)).await;
    let (_, blue) = app.check(&token, CHECK, &push("blue/api", "stable", B, Some(A))).await;
    assert_eq!(blue["allowed"], true, "{blue}");
    let (_, blue) = app.check(&token, CHECK, &push("blue/api", "v2", B, Some(A))).await;
    assert_eq!(blue["rules"][0]["id"], json!(rules["blue"].0), "{blue}");
    assert_eq!(metrics(&app).await["tagward_policy_cache_compiled_policies"], 3.0);
}

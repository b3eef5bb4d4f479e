//! tagward against a hostile client: requests written byte by byte to change a protected tag
//! through the gateway (checked against the registry itself, never against tagward's answer),
//! races, policies too large to compile, slow and oversized input.

use serde_json::json;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tests::gateway::{gateway_for, gateway_with};
use tests::registry::{push, raw_http, OciLayout, Registry};
use tests::{fresh_database, spawn_app, TestDb};

const TAG: &str = "v1.2.3";
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// `shop/api:v1.2.3` pushed through the gateway (rule: repositories `**`, tags `v*`), and a second
/// image whose blobs (not its manifest) are in the registry, ready to be written over it.
struct Protected {
    _db: TestDb,
    registry: Registry,
    gateway: SocketAddr,
    first: OciLayout,
    second: OciLayout,
}

/// Project `shop` with `v*` tags immutable everywhere, and a registry.
async fn shop_and_registry() -> (TestDb, Registry) {
    tests::init_logging();
    let db = fresh_database().await;
    db.project("shop").await;
    db.rule("shop", "matching:**", "matching:v*").await;
    (db, Registry::start().await)
}

async fn protected() -> Protected {
    let (db, registry) = shop_and_registry().await;
    let gateway = gateway_for(&db, &registry).await;
    let (first, second) = (OciLayout::image_of("first"), OciLayout::image_of("second"));
    assert!(push(&first, gateway, &format!("shop/api:{TAG}"), false).await.status.success());
    assert!(push(&second, registry.address, "shop/api:scratch", false).await.status.success());
    assert_eq!(registry.digest("shop/api", TAG).await.as_deref(), Some(first.digest.as_str()));
    Protected { _db: db, registry, gateway, first, second }
}

fn request(method: &str, target: &str, host: SocketAddr, body: &[u8]) -> Vec<u8> {
    let mut bytes = format!(
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {MANIFEST_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn chunked(method: &str, target: &str, host: SocketAddr, body: &[u8]) -> Vec<u8> {
    let mut bytes = format!(
        "{method} {target} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {MANIFEST_TYPE}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.chunks(97) {
        bytes.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        bytes.extend_from_slice(chunk);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"0\r\n\r\n");
    bytes
}

#[tokio::test]
async fn no_spelling_of_a_request_changes_a_protected_tag() {
    let Protected { registry, gateway, first, second, .. } = protected().await;
    let body = second.manifest();
    let (pushed, locked) = (second.digest.as_str(), first.digest.as_str());
    let encoded_digest = locked.replace(':', "%3A");
    let g = gateway;
    let mut attacks: Vec<(String, Vec<u8>)> = Vec::new();
    let mut put = |target: String| attacks.push((format!("PUT {target}"), request("PUT", &target, g, &body)));
    for target in [
        format!("/v2/shop/api/manifests/{TAG}"),
        format!("/v2/shop%2Fapi/manifests/{TAG}"),
        format!("/v2/shop%2fapi/manifests/{TAG}"),
        "/v2/shop/api/manifests/%761.2.3".to_owned(),
        "/v2/shop/api/manifests/v1%2E2%2e3".to_owned(),
        format!("/v2/%73hop/api/manifests/{TAG}"),
        format!("/v2/shop/%61pi/manifests/{TAG}"),
        format!("/v2/shop/api/%6danifests/{TAG}"),
        format!("/v2/shop/api%2Fmanifests%2F{TAG}"),
        format!("/v2/shop/x/../api/manifests/{TAG}"),
        format!("/v2/shop/x/%2e%2e/api/manifests/{TAG}"),
        format!("/v2/shop/./api/manifests/{TAG}"),
        format!("//v2/shop/api/manifests/{TAG}"),
        format!("/v2/shop//api/manifests/{TAG}"),
        format!("/v2/shop/api/manifests/{TAG}/"),
        format!("/v2/shop/api/manifests/{TAG}?tag=x"),
        format!("/v2/Shop/api/manifests/{TAG}"),
        format!("/v2/shop/api/manifests/{pushed}?tag={TAG}"),
        format!("/v2/shop/api/manifests/{pushed}?t%61g={TAG}"),
        format!("/v2/shop/api/manifests/{pushed}?tag=%761.2.3"),
        format!("/v2/shop/api/manifests/{pushed}?tag=rc&tag={TAG}"),
        format!("/v2/shop/api/manifests/{pushed}?tag={TAG};x"),
        format!("/v2/shop/api/manifests/{}?tag={TAG}", pushed.replace(':', "%3A")),
        format!("http://{g}/v2/shop%2Fapi/manifests/{TAG}"),
        format!("/v2/shop/api/manifests/%zz{TAG}"),
    ] {
        put(target);
    }
    let mut other = |label: String, bytes: Vec<u8>| attacks.push((label, bytes));
    other("chunked PUT".into(), chunked("PUT", &format!("/v2/shop%2Fapi/manifests/{TAG}"), g, &body));
    let mut pipelined = format!("GET /v2/ HTTP/1.1\r\nHost: {g}\r\n\r\n").into_bytes();
    pipelined.extend(request("PUT", &format!("/v2/%73hop/api/manifests/{TAG}"), g, &body));
    other("pipelined PUT".into(), pipelined);
    for method in ["POST", "PATCH", "OPTIONS", "put", "Put", "PROPFIND"] {
        let target = format!("/v2/shop/api/manifests/{TAG}");
        other(format!("{method} {target}"), request(method, &target, g, &body));
    }
    for target in [
        format!("/v2/shop/api/manifests/{locked}"),
        format!("/v2/shop/api/manifests/{encoded_digest}"),
        format!("/v2/shop%2Fapi/manifests/{locked}"),
        format!("/v2/%73hop/api/manifests/{locked}"),
        format!("/v2/shop/api/manifests/{}", locked.to_uppercase()),
        format!("/v2/shop/api/manifests/{TAG}"),
        "/v2/shop/api/manifests/%761.2.3".to_owned(),
        format!("/v2/shop/api/./manifests/{TAG}/"),
    ] {
        other(format!("DELETE {target}"), request("DELETE", &target, g, b""));
    }

    let mut bypasses = Vec::new();
    for (label, bytes) in &attacks {
        let statuses = raw_http(gateway, bytes).await;
        let still = registry.digest("shop/api", TAG).await;
        let answered_ok = statuses.iter().skip(usize::from(label == "pipelined PUT")).any(|s| *s < 400);
        if still.as_deref() != Some(locked) || answered_ok {
            bypasses.push(format!("{label}: answered {statuses:?}, {TAG} now {still:?}"));
        }
    }
    assert!(
        bypasses.is_empty(),
        "{} of {} requests got through:\n{}",
        bypasses.len(),
        attacks.len(),
        bypasses.join("\n")
    );

    // Spellings of allowed changes are forwarded in their canonical form and take effect.
    let statuses = raw_http(gateway, &request("PUT", "/v2/shop%2Fapi/manifests/%73cratch2", g, &body)).await;
    assert_eq!(statuses, [201]);
    assert_eq!(registry.digest("shop/api", "scratch2").await.as_deref(), Some(pushed));
}

/// A delete by digest and a first push of an immutable tag to that digest, at the same time: if the
/// push was accepted, the tag still points at its digest afterwards.
#[tokio::test]
async fn a_delete_by_digest_racing_a_first_push_never_strands_the_tag() {
    let (db, registry) = shop_and_registry().await;
    let gateway = gateway_for(&db, &registry).await;
    let client = reqwest::Client::new();
    for round in 0..6 {
        let image = OciLayout::image_of(&format!("race-{round}"));
        assert!(push(&image, registry.address, &format!("shop/race:scratch{round}"), false).await.status.success());
        let put = client
            .put(format!("http://{gateway}/v2/shop/race/manifests/v{round}"))
            .header("Content-Type", MANIFEST_TYPE)
            .body(image.manifest())
            .send();
        let delete = client.delete(format!("http://{gateway}/v2/shop/race/manifests/{}", image.digest)).send();
        let (put, delete) = tokio::join!(put, delete);
        let (put, delete) = (put.unwrap().status(), delete.unwrap().status());
        if put == 201 {
            assert_eq!(
                registry.digest("shop/race", &format!("v{round}")).await.as_deref(),
                Some(image.digest.as_str()),
                "round {round}: push {put}, delete {delete}"
            );
        }
    }
}

#[tokio::test]
async fn slow_and_oversized_manifest_bodies_are_bounded() {
    let (db, registry) = shop_and_registry().await;
    let listener = tagward::config::ListenerConfig { header_read_timeout_seconds: 1, ..Default::default() };
    let manifests = tagward::gateway::ManifestLimits { buffer_bytes: 1024 * 1024, body_timeout_seconds: 2 };
    let gateway = gateway_with(&db, &registry, listener, manifests).await;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Three clients declare 4 MiB bodies and send 600 KB each, then stall: the shared 1 MiB
    // budget takes one of them; the others are told to come back later (429).
    let mut stalled = Vec::new();
    for i in 0..3 {
        let mut stream = tokio::net::TcpStream::connect(gateway).await.unwrap();
        let head = format!(
            "PUT /v2/shop/api/manifests/v{i} HTTP/1.1\r\nHost: {gateway}\r\nContent-Type: {MANIFEST_TYPE}\r\nContent-Length: 4000000\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        // A refused client may find the connection closed, or its writes no longer read.
        let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&vec![b' '; 600_000])).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        stalled.push(stream);
    }
    let started = Instant::now();
    let mut statuses = Vec::new();
    for stream in &mut stalled {
        let mut answer = vec![0; 4096];
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer)).await;
        let read = read.expect("the gateway answers a stalled body").unwrap_or(0);
        statuses.push(String::from_utf8_lossy(&answer[..read]).get(9..12).unwrap_or("").to_owned());
    }
    statuses.sort();
    assert_eq!(statuses, ["408", "429", "429"], "one times out, the others found the budget spent");
    assert!(started.elapsed() < Duration::from_secs(5), "the body timeout is 2 s");
    drop(stalled);

    // The budget is free again: a real push goes through.
    let image = OciLayout::image_of("after");
    let pushed = push(&image, gateway, "shop/api:v2", false).await;
    assert!(pushed.status.success(), "{}", String::from_utf8_lossy(&pushed.stderr));

    // Headers that never finish: the connection is closed after the header timeout (1 s here).
    let mut slow = tokio::net::TcpStream::connect(gateway).await.unwrap();
    slow.write_all(b"PUT /v2/shop/api/manifests/v1 HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "a connection with unfinished headers is closed");
}

#[tokio::test]
async fn a_policy_too_large_to_compile_is_refused_and_fails_closed_when_written_by_hand() {
    let app = spawn_app().await;
    app.db.project("shop").await;
    app.db.project("other").await;
    let rule = app.db.rule("shop", "matching:**", "matching:v*").await;
    app.db.rule("other", "matching:**", "matching:v*").await;
    app.db.user("ann", "a long enough password", true).await;
    let token = app.db.token("registry").await;

    // 50 items of 250 `?` per side: refused on save, naming the field; nothing stored.
    let huge: Vec<String> = (0..50).map(|i| format!("{i:02}{}", "?".repeat(248))).collect();
    let huge = huge.join(",");
    let spec = app::policy::RuleSpec::parse(&app::policy::RuleInput {
        repositories_action: "matching".into(),
        repositories: "**".into(),
        tags_action: "matching".into(),
        tags: huge.clone(),
    })
    .unwrap();
    let shop = app::store::project_id(&app.db.pool, &app::policy::ProjectName::parse("shop").unwrap()).await.unwrap();
    let refused = app::store::change_rules(
        &app.db.pool,
        &tests::operator(),
        shop,
        app::store::RuleChange::Create(&spec, app::policy::RuleState::Enforced),
    )
    .await
    .unwrap_err();
    let refused = refused.to_string();
    assert!(refused.starts_with("tags: the project's rules would hold "), "{refused}");
    assert!(refused.contains("more than the 4096 one project may hold (this rule's tags have 12500)"), "{refused}");
    assert_eq!(app.db.rule_count().await, 2);

    // Written with SQL, past every check: the project's policy cannot be evaluated, so it fails closed.
    for _ in 0..14 {
        sqlx::query(
            "insert into immutability_rules (project_id, repositories_action, repositories, tags_action, tags, created_by, updated_by)
             values ($1, 'matching', $2, 'matching', $2, 'psql', 'psql')",
        )
        .bind(shop)
        .bind(&huge)
        .execute(&app.db.pool)
        .await
        .unwrap();
    }
    let a = format!("sha256:{}", "a".repeat(64));
    let b = format!("sha256:{}", "b".repeat(64));
    let overwrite =
        json!({"operation": "push", "repository": "shop/api", "tag": "v1", "digest": b, "current_digest": a});
    let (verdict, _) =
        tests::eventually("the policy saying it cannot be evaluated", Duration::from_secs(5), || async {
            let (status, verdict) = app.check(&token, tests::fixtures::CHECK, &overwrite).await;
            assert_eq!(status, 200);
            if verdict["message"].as_str().unwrap_or("").contains("cannot be evaluated") {
                Ok(verdict)
            } else {
                Err(verdict.to_string())
            }
        })
        .await;
    assert_eq!(verdict["allowed"], false, "{verdict}");
    assert!(verdict["message"].as_str().unwrap().contains("more than the 4096 one project may hold"), "{verdict}");
    // Even a tag no rule would protect: while the policy cannot be read, no existing tag changes.
    let latest =
        json!({"operation": "push", "repository": "shop/api", "tag": "latest", "digest": b, "current_digest": a});
    assert_eq!(app.check(&token, tests::fixtures::CHECK, &latest).await.1["allowed"], false);
    let first =
        json!({"operation": "push", "repository": "shop/api", "tag": "v9", "digest": b, "current_digest": null});
    assert_eq!(app.check(&token, tests::fixtures::CHECK, &first).await.1["allowed"], true);
    let delete = json!({"operation": "delete_tag", "repository": "shop/api", "tag": "latest"});
    assert_eq!(app.check(&token, tests::fixtures::CHECK, &delete).await.1["allowed"], false);
    // Other projects are decided as before.
    let elsewhere =
        json!({"operation": "push", "repository": "other/api", "tag": "latest", "digest": b, "current_digest": a});
    assert_eq!(app.check(&token, tests::fixtures::CHECK, &elsewhere).await.1["allowed"], true);

    let ready = reqwest::get(app.url("/readyz")).await.unwrap().text().await.unwrap();
    assert!(ready.contains("the policy of project \"shop\" cannot be evaluated"), "{ready}");
    let metrics = reqwest::get(app.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("tagward_policy_unevaluable_projects 1"), "{metrics}");
    let client = app.logged_in("ann", "a long enough password").await;
    let page = app.page(&client, "/projects/shop/policy").await.text().await.unwrap();
    assert!(page.contains("This policy cannot be evaluated"), "the portal says so");

    // Deleting the rules at fault is allowed (the budget never blocks a deletion) and mends it.
    sqlx::query("delete from immutability_rules where project_id = $1 and id <> $2")
        .bind(shop)
        .bind(rule)
        .execute(&app.db.pool)
        .await
        .unwrap();
    tests::until("policy not mended", Duration::from_secs(5), || async {
        app.check(&token, tests::fixtures::CHECK, &latest).await.1["allowed"] == true
    })
    .await;
}

#[tokio::test]
async fn decision_bodies_are_bounded() {
    let app = spawn_app().await;
    let token = app.db.token("registry").await;
    // The token reaches the server's cache by notification, a moment after it is committed.
    let (response, _) = tests::eventually("the token accepted", Duration::from_secs(5), || async {
        let response = reqwest::Client::new()
            .post(app.url("/api/v1/enforcement/check/batch"))
            .bearer_auth(&token)
            .header("Content-Type", "application/json")
            .body(vec![b' '; 300 * 1024])
            .send()
            .await
            .unwrap();
        if response.status() == 401 {
            Err("401".to_owned())
        } else {
            Ok(response)
        }
    })
    .await;
    assert_eq!(response.status(), 413);
    // In the OCI error format, like every other answer of the decision API.
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "SIZE_INVALID", "{body}");
}

/// A denial whose project is deleted before it is written is kept (without the project), and
/// later denials are still written.
#[tokio::test]
async fn the_audit_writer_survives_a_row_the_database_refuses() {
    use tagward::enforcement::{recorder::Recorder, Check, Verdict};
    let db = fresh_database().await;
    db.project("shop").await;
    let metrics = std::sync::Arc::new(tagward::metrics::Metrics::default());
    let recorder = Recorder::start(db.pool.clone(), Default::default(), metrics.clone());
    let check = Check::DeleteTag {
        repository: app::policy::RepositoryName::parse("shop/api").unwrap(),
        tag: app::policy::Tag::parse("v1").unwrap(),
        list: None,
    };
    let verdict = Verdict {
        allowed: false,
        message: "denied".into(),
        rules: Vec::new(),
        immutable_tags: vec!["v1".into()],
        project_known: true,
        evaluated: Vec::new(),
        would_have_been: None,
        exception: None,
    };
    let shop = app::store::project_id(&db.pool, &app::policy::ProjectName::parse("shop").unwrap()).await.unwrap();
    let token = |name: &str| {
        let grant = app::account::TokenGrant::default();
        app::principal::Principal::Token(app::principal::ServiceToken { id: 1, name: name.into(), grant })
    };
    recorder.denied(&token("gone"), shop + 1000, &check, &verdict);
    recorder.denied(&token("kept"), shop, &check, &verdict);
    let (rows, _) = tests::eventually("both denials recorded", Duration::from_secs(5), || async {
        let rows: Vec<(String, Option<i64>)> =
            sqlx::query_as("select token, project_id from enforcement_denials order by token")
                .fetch_all(&db.pool)
                .await
                .unwrap();
        if rows.len() == 2 {
            Ok(rows)
        } else {
            Err(format!("{rows:?}"))
        }
    })
    .await;
    assert_eq!(rows, [("gone".to_owned(), None), ("kept".to_owned(), Some(shop))]);
    assert!(metrics.render().contains("tagward_audit_denials_dropped_total 0"), "{}", metrics.render());
}

/// Password hashing runs at most one per core, with a short queue; the rest are told to come back.
#[tokio::test]
async fn password_hashing_is_bounded() {
    let attempts = (0..200).map(|i| app::password::verify_password(None, format!("guess {i}")));
    let results = futures::future::join_all(attempts).await;
    let verified = results.iter().filter(|r| matches!(r, Ok(false))).count();
    let refused = results.iter().filter(|r| matches!(r, Err(app::password::PasswordError::TryLater { .. }))).count();
    assert_eq!(verified + refused, 200, "every attempt is verified (as wrong) or refused for now");
    assert!(refused > 0 && verified >= app::password::MAX_WAITING_HASHES, "verified {verified}, refused {refused}");
}

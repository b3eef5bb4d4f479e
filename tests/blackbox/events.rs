//! The registry's events keep the inventory live: docker-registry's own `notifications:` pointing
//! at tagward, and notifications sent by hand to show they are taken at least once, in any order,
//! in either format (distribution's envelope, Harbor's webhook).

use app::account::TokenGrant;
use serde_json::json;
use std::time::Duration;
use tests::fixtures::PASSWORD;
use tests::inventory::{inventory, many_tags, page_text, shop_with_admin_ann};
use tests::registry::{push, OciLayout, Registry};
use tests::TestApp;

const DIGEST_A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const DIGEST_B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const DIGEST_C: &str = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

fn events_grant() -> TokenGrant {
    TokenGrant::parse(&["events"], &[]).unwrap()
}

async fn send(app: &TestApp, token: Option<&str>, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let mut request = app
        .client()
        .post(app.url("/api/v1/registry/events"))
        .header("content-type", "application/vnd.docker.distribution.events.v1+json")
        .body(body.to_string());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// distribution's envelope around `events`, each `(action, timestamp, tag, digest)`.
fn envelope(events: &[(&str, &str, Option<&str>, Option<&str>)]) -> serde_json::Value {
    let events: Vec<serde_json::Value> = events
        .iter()
        .map(|(action, timestamp, tag, digest)| {
            json!({"id": format!("{action}-{timestamp}"), "timestamp": timestamp, "action": action,
                   "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "repository": "shop/web",
                              "tag": tag, "digest": digest},
                   "source": {"addr": "registry:5000"}})
        })
        .collect();
    json!({ "events": events })
}

/// The tag `shop/web:v1`'s digest in the inventory, if it has the tag.
async fn v1(app: &TestApp) -> Option<String> {
    inventory(&app.db, "shop").await.into_iter().find(|(_, tag, _, _)| tag == "v1").map(|(_, _, digest, _)| digest)
}

#[tokio::test]
async fn pushes_and_deletes_straight_to_the_registry_reach_the_tags_tab_at_once() {
    let db = shop_with_admin_ann().await;
    let token = db.token_with("registry-events", &events_grant()).await;
    let url = db.url.clone();
    // No sync: only the registry's events can tell tagward of these pushes.
    let app = tests::spawn_app_over(db, url).await;
    let registry = Registry::start_notifying(None, &app.url("/api/v1/registry/events"), &token).await;
    let client = app.logged_in("ann", PASSWORD).await;

    let image = OciLayout::image_of("events-live");
    let pushed = push(&image, registry.address, "shop/web:v1", false).await;
    assert!(pushed.status.success(), "{}", String::from_utf8_lossy(&pushed.stderr));
    let (_, since) = tests::eventually("the push showing on the Tags tab", Duration::from_secs(15), || async {
        let text = page_text(&app, &client, "/projects/shop/tags").await;
        if text.contains("web v1") && text.contains("reported by the registry") && !text.contains("being counted") {
            Ok(())
        } else {
            Err(text)
        }
    })
    .await;
    println!("a direct push showed on the Tags tab {} ms after skopeo returned", since.as_millis());
    let row = inventory(&app.db, "shop").await;
    assert_eq!(row.len(), 1, "{row:?}");
    assert_eq!((row[0].2.as_str(), row[0].3.as_str()), (image.digest.as_str(), "event"));

    // Deleted straight at the registry (by digest, as distribution deletes): gone from the inventory.
    let deleted = reqwest::Client::new()
        .delete(format!("http://{}/v2/shop/web/manifests/{}", registry.address, image.digest))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 202);
    tests::until("the delete reaching the inventory", Duration::from_secs(15), || async { v1(&app).await.is_none() })
        .await;
    let metrics = app.client().get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let applied = metrics
        .lines()
        .find(|line| line.starts_with("tagward_registry_events_total{") && line.contains("outcome=\"applied\""))
        .unwrap_or_else(|| panic!("no applied events counted:\n{metrics}"));
    assert!(applied.contains("sender=\"distribution\""), "{applied}");
}

#[tokio::test]
async fn events_taken_twice_or_out_of_order_never_undo_a_newer_state() {
    let db = shop_with_admin_ann().await;
    let token = db.token_with("registry-events", &events_grant()).await;
    let url = db.url.clone();
    let app = tests::spawn_app_over(db, url).await;
    let token = Some(token.as_str());

    // v1 → A at :02, then an older push of v1 → B delivered late: v1 stays at A.
    let newer = envelope(&[("push", "2026-12-02T10:00:02Z", Some("v1"), Some(DIGEST_A))]);
    let (status, body) = send(&app, token, &newer).await;
    assert_eq!((status, &body["applied"]), (200, &json!(1)), "{body}");
    let (status, body) =
        send(&app, token, &envelope(&[("push", "2026-12-02T10:00:01Z", Some("v1"), Some(DIGEST_B))])).await;
    assert_eq!((status, &body["outdated"]), (200, &json!(1)), "{body}");
    assert_eq!(v1(&app).await.as_deref(), Some(DIGEST_A));
    // The same event again only confirms.
    let (_, body) = send(&app, token, &newer).await;
    assert_eq!((&body["applied"], &body["outdated"]), (&json!(1), &json!(0)), "{body}");
    assert_eq!(v1(&app).await.as_deref(), Some(DIGEST_A));

    // A deleted at :03 (by digest, with its tags); a push of v1 → A from :02.5 arriving after it
    // does not bring the tag back.
    let (_, body) = send(&app, token, &envelope(&[("delete", "2026-12-02T10:00:03Z", None, Some(DIGEST_A))])).await;
    assert_eq!(body["applied"], json!(1), "{body}");
    assert_eq!(v1(&app).await, None);
    let (_, body) =
        send(&app, token, &envelope(&[("push", "2026-12-02T10:00:02.500Z", Some("v1"), Some(DIGEST_A))])).await;
    assert_eq!(body["outdated"], json!(1), "{body}");
    assert_eq!(v1(&app).await, None);

    // A newer push brings it back; a tag delete then wins over an older push delivered after it.
    let (_, body) = send(
        &app,
        token,
        &envelope(&[
            ("push", "2026-12-02T10:00:04Z", Some("v1"), Some(DIGEST_C)),
            ("pull", "2026-12-02T10:00:04.100Z", Some("v1"), Some(DIGEST_C)),
            ("delete", "2026-12-02T10:00:05Z", Some("v1"), None),
            ("push", "2026-12-02T10:00:04.500Z", Some("v1"), Some(DIGEST_B)),
        ]),
    )
    .await;
    assert_eq!((&body["applied"], &body["outdated"], &body["ignored"]), (&json!(2), &json!(1), &json!(1)), "{body}");
    assert_eq!(v1(&app).await, None);

    // Harbor's webhook: a push, then the artifact deleted.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let webhook = |kind: &str, at: i64| {
        json!({"type": kind, "occur_at": at, "operator": "admin",
               "event_data": {"resources": [{"digest": DIGEST_B, "tag": "v1", "resource_url": "harbor.example/shop/web:v1"}],
                              "repository": {"name": "web", "namespace": "shop", "repo_full_name": "shop/web", "repo_type": "private"}}})
    };
    let (status, body) = send(&app, token, &webhook("PUSH_ARTIFACT", now)).await;
    assert_eq!((status, &body["sender"], &body["applied"]), (200, &json!("harbor"), &json!(1)), "{body}");
    assert_eq!(v1(&app).await.as_deref(), Some(DIGEST_B));
    let (_, body) = send(&app, token, &webhook("DELETE_ARTIFACT", now + 1)).await;
    assert_eq!(body["applied"], json!(1), "{body}");
    assert_eq!(v1(&app).await, None);
}

#[tokio::test]
async fn only_a_token_with_the_events_scope_may_send_and_bad_notifications_store_nothing() {
    let db = shop_with_admin_ann().await;
    let events = db.token_with("registry-events", &events_grant()).await;
    let decisions = db.token("registry-backend").await;
    let url = db.url.clone();
    let app = tests::spawn_app_over(db, url).await;
    let push = envelope(&[("push", "2026-12-02T10:00:02Z", Some("v1"), Some(DIGEST_A))]);

    let (status, body) = send(&app, None, &push).await;
    assert_eq!((status, &body["errors"][0]["code"]), (401, &json!("UNAUTHORIZED")), "{body}");
    let (status, body) = send(&app, Some(&decisions), &push).await;
    assert_eq!((status, &body["errors"][0]["code"]), (403, &json!("DENIED")), "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("`events`") && message.contains("registry-backend"), "{message}");

    // One good event and one bad: refused as a whole, naming the field and its value.
    let mut bad = push.clone();
    bad["events"].as_array_mut().unwrap().push(json!({
        "timestamp": "2026-12-02T10:00:03Z", "action": "push",
        "target": {"repository": "shop/web", "tag": "v2", "digest": "sha256:short"}}));
    let (status, body) = send(&app, Some(&events), &bad).await;
    assert_eq!(status, 400, "{body}");
    let error = &body["errors"][0];
    assert_eq!(error["detail"], json!({"field": "events[1].target.digest", "value": "sha256:short"}), "{body}");
    assert!(error["message"].as_str().unwrap().starts_with("events[1].target.digest: "), "{body}");
    assert!(inventory(&app.db, "shop").await.is_empty());
    let (status, body) = send(&app, Some(&events), &json!({"hello": "world"})).await;
    assert_eq!((status, &body["errors"][0]["detail"]["field"]), (400, &json!("body")), "{body}");

    let (status, _) = send(&app, Some(&events), &push).await;
    assert_eq!(status, 200);
    assert_eq!(v1(&app).await.as_deref(), Some(DIGEST_A));
}

/// The open drift of `shop`: (id, tag, held, found, found_by).
async fn open_drift(app: &TestApp) -> Vec<(i64, String, String, Option<String>, String)> {
    sqlx::query_as(
        "select id, tag, held_digest, found_digest, found_by from tag_drift where acknowledged_at is null order by id",
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap()
}

async fn wait_for<F: std::future::Future<Output = bool>>(what: &str, done: impl FnMut() -> F) {
    tests::until(what, Duration::from_secs(20), done).await;
}

#[tokio::test]
async fn an_immutable_tag_moved_or_deleted_at_the_registry_is_reported_and_can_be_restored() {
    let db = shop_with_admin_ann().await;
    db.user("bob", PASSWORD, false).await;
    db.member("shop", "bob", "developer").await;
    db.rule("shop", "matching:**", "matching:v*").await;
    let token = db.token_with("registry-events", &events_grant()).await;
    let url = db.url.clone();
    // tagward must know the registry (to restore) before the registry knows tagward (to notify).
    let port = tests::registry::free_port();
    let registry_url = format!("http://127.0.0.1:{port}");
    let flags = ["--registry-url", &registry_url, "--registry-sync-interval", "0"];
    let app = tests::spawn_app_with(db, url, &flags).await;
    let registry = Registry::start_notifying(Some(port), &app.url("/api/v1/registry/events"), &token).await;
    let ann = app.logged_in("ann", PASSWORD).await;

    let (first, second) = (OciLayout::image_of("drift-first"), OciLayout::image_of("drift-second"));
    assert!(push(&first, registry.address, "shop/web:v1", false).await.status.success());
    wait_for("the first push reaching the inventory", || async {
        v1(&app).await.as_deref() == Some(first.digest.as_str())
    })
    .await;
    assert!(open_drift(&app).await.is_empty(), "a first push is no drift");

    // Pushed straight to the registry over the immutable v1: drift, found by the event.
    assert!(push(&second, registry.address, "shop/web:v1", false).await.status.success());
    wait_for("the drift being recorded", || async { !open_drift(&app).await.is_empty() }).await;
    let drift = open_drift(&app).await;
    assert_eq!(drift.len(), 1, "{drift:?}");
    let (id, tag, held, found, found_by) = drift[0].clone();
    assert_eq!(
        (tag.as_str(), held.as_str(), found.as_deref(), found_by.as_str()),
        ("v1", first.digest.as_str(), Some(second.digest.as_str()), "event")
    );
    for tab in ["policy", "tags"] {
        let text = page_text(&app, &ann, &format!("/projects/shop/{tab}")).await;
        assert!(text.contains("1 immutable tag changed behind tagward's back"), "{tab}: {text}");
        assert!(text.contains("web:v1") && text.contains("Restore") && text.contains("Acknowledge"), "{tab}: {text}");
    }
    let metrics = app.client().get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("tagward_tag_drift_total{found_by=\"event\"} 1"), "{metrics}");

    // A developer may not restore; the project admin does, and the registry has v1 at the first image again.
    let bob = app.logged_in("bob", PASSWORD).await;
    let fields = [("project", "shop"), ("drift_id", &id.to_string()), ("back", "tags")];
    let notifications = || async {
        sqlx::query_scalar::<_, i64>("select coalesce(max(notifications), 0) from registry_event_stream")
            .fetch_one(&app.db.pool)
            .await
            .unwrap()
    };
    let before_restore = notifications().await;
    let refused = app.call(&bob, "restore_drift", &fields).await;
    assert_eq!(refused.status(), 403);
    let restored = app.call(&ann, "restore_drift", &fields).await;
    assert!(restored.status().is_success() || restored.status().is_redirection(), "{:?}", restored.text().await);
    assert_eq!(registry.digest("shop/web", "v1").await.as_deref(), Some(first.digest.as_str()));
    // The registry's event for the restore arrives and is no new drift.
    wait_for("the registry's event for the restore", || async { notifications().await > before_restore }).await;
    assert!(open_drift(&app).await.is_empty());
    assert_eq!(v1(&app).await.as_deref(), Some(first.digest.as_str()));
    let text = page_text(&app, &ann, "/projects/shop/tags").await;
    assert!(!text.contains("changed behind tagward's back"), "{text}");

    // The image deleted at the registry: v1 is gone, and cannot be restored; acknowledged instead.
    let deleted = reqwest::Client::new()
        .delete(format!("http://{}/v2/shop/web/manifests/{}", registry.address, first.digest))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 202);
    wait_for("the delete being recorded as drift", || async { !open_drift(&app).await.is_empty() }).await;
    let (id, _, _, found, _) = open_drift(&app).await[0].clone();
    assert_eq!(found, None);
    let fields = [("project", "shop"), ("drift_id", &id.to_string()), ("back", "policy")];
    let failed = app.call(&ann, "restore_drift", &fields).await;
    assert_eq!(failed.status(), 502);
    let message = failed.text().await.unwrap();
    assert!(message.contains("no longer has"), "{message}");
    let acknowledged = app.call(&ann, "acknowledge_drift", &fields).await;
    assert!(acknowledged.status().is_success() || acknowledged.status().is_redirection());
    assert!(open_drift(&app).await.is_empty());

    let text = page_text(&app, &ann, "/projects/shop/activity?kind=drift").await;
    assert!(text.contains("found shop/web:v1 moved from"), "{text}");
    assert!(text.contains("put shop/web:v1 back on"), "{text}");
    assert!(text.contains("acknowledged that shop/web:v1 gone"), "{text}");
}

#[tokio::test]
async fn the_sync_reports_an_immutable_tag_moved_between_its_passes() {
    let db = shop_with_admin_ann().await;
    db.rule("shop", "matching:**", "matching:v*").await;
    let registry = Registry::start().await;
    let (first, second) = (OciLayout::image_of("sync-drift-first"), OciLayout::image_of("sync-drift-second"));
    assert!(push(&first, registry.address, "shop/web:v1", false).await.status.success());
    assert!(push(&first, registry.address, "shop/web:latest", false).await.status.success());
    let url = db.url.clone();
    let registry_url = format!("http://{}", registry.address);
    let flags = ["--registry-url", &registry_url, "--registry-sync-interval", "1"];
    let app = tests::spawn_app_with(db, url, &flags).await;
    wait_for("the first sync", || async { v1(&app).await.as_deref() == Some(first.digest.as_str()) }).await;

    // Both moved straight at the registry; only v1 is immutable.
    assert!(push(&second, registry.address, "shop/web:v1", false).await.status.success());
    assert!(push(&second, registry.address, "shop/web:latest", false).await.status.success());
    wait_for("the sync finding the move", || async { !open_drift(&app).await.is_empty() }).await;
    let drift = open_drift(&app).await;
    assert_eq!(drift.len(), 1, "{drift:?}");
    assert_eq!(
        (drift[0].1.as_str(), drift[0].3.as_deref(), drift[0].4.as_str()),
        ("v1", Some(second.digest.as_str()), "sync")
    );
}

/// The last completed pass of the sync: (when it completed, whether it listed only).
async fn completed_pass(app: &TestApp) -> Option<(time::OffsetDateTime, bool)> {
    sqlx::query_as(
        "select completed_at, pass_light from registry_sync
         where completed_at is not null and completed_started_at = pass_started_at",
    )
    .fetch_optional(&app.db.pool)
    .await
    .unwrap()
}

/// The requests the next pass to complete makes: counted from the completion of one to the next
/// (passes are a second apart, so the count is read between them).
async fn requests_of_next_pass(app: &TestApp) -> (u64, bool) {
    let requests = || async {
        let metrics = app.client().get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        metrics
            .lines()
            .find_map(|line| line.strip_prefix("tagward_registry_sync_requests_total "))
            .map_or(0, |value| value.trim().parse().unwrap())
    };
    wait_for("a sync pass", || async { completed_pass(app).await.is_some() }).await;
    let (mut since, mut before) = (completed_pass(app).await.unwrap().0, requests().await);
    // The pass that completed before the count was read may be the count's first: wait for one more.
    for round in 0..2 {
        wait_for("the next sync pass", || async { completed_pass(app).await.is_some_and(|(at, _)| at > since) }).await;
        let (at, light) = completed_pass(app).await.unwrap();
        let after = requests().await;
        if round == 1 {
            return (after - before, light);
        }
        (since, before) = (at, after);
    }
    unreachable!()
}

#[tokio::test]
async fn with_events_flowing_sync_passes_list_tags_and_ask_only_for_new_ones() {
    let db = shop_with_admin_ann().await;
    let token = db.token_with("registry-events", &events_grant()).await;
    let registry = Registry::start().await;
    many_tags(&registry, 1, 50).await;
    let url = db.url.clone();
    let registry_url = format!("http://{}", registry.address);
    let flags = ["--registry-url", &registry_url, "--registry-sync-interval", "1", "--registry-sync-rate", "0"];
    let app = tests::spawn_app_with(db, url, &flags).await;

    // No events: every pass asks every tag (catalog, tag list, 50 look-ups).
    let (requests, light) = requests_of_next_pass(&app).await;
    assert_eq!((requests, light), (52, false));

    // The registry sends events: the passes after list tags and ask none they hold.
    let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    let event = envelope(&[("push", &now, Some("v1"), Some(DIGEST_A))]);
    assert_eq!(send(&app, Some(&token), &event).await.0, 200);
    wait_for("a light pass", || async { completed_pass(&app).await.is_some_and(|(_, light)| light) }).await;
    let (requests, light) = requests_of_next_pass(&app).await;
    assert_eq!((requests, light), (2, true));

    // A tag pushed with no event (a lost one) is still found: listed, and asked because it is new.
    let image = OciLayout::image_of("many");
    let put = reqwest::Client::new()
        .put(format!("http://{}/v2/shop/many0/manifests/t0050", registry.address))
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(image.manifest())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    wait_for("the light pass finding the new tag", || async {
        inventory(&app.db, "shop").await.iter().any(|(_, tag, _, _)| tag == "t0050")
    })
    .await;
}

#[tokio::test]
async fn the_gateway_takes_the_registry_events_too() {
    let db = shop_with_admin_ann().await;
    let token = db.token_with("registry-events", &events_grant()).await;
    let registry = Registry::start().await;
    let gateway = tests::gateway::gateway_for(&db, &registry).await;
    let answer = reqwest::Client::new()
        .post(format!("http://{gateway}/api/v1/registry/events"))
        .bearer_auth(&token)
        .header("content-type", "application/vnd.docker.distribution.events.v1+json")
        .body(envelope(&[("push", "2026-12-02T10:00:02Z", Some("v1"), Some(DIGEST_A))]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let rows = inventory(&db, "shop").await;
    assert_eq!(rows, vec![("shop/web".to_owned(), "v1".to_owned(), DIGEST_A.to_owned(), "event".to_owned())]);
}

#[tokio::test]
async fn events_are_refused_for_a_retry_while_the_database_is_away_and_an_oversized_body_is_refused() {
    let db = shop_with_admin_ann().await;
    let token = db.token_with("registry-events", &events_grant()).await;
    let proxy = tests::CuttableProxy::start(tests::database_server_address()).await;
    let url = db.url_via(proxy.address);
    let app = tests::spawn_app_over(db, url).await;
    let push = envelope(&[("push", "2026-12-02T10:00:02Z", Some("v1"), Some(DIGEST_A))]);

    // More than a notification ever is (1 MiB): refused before it is read, in the OCI format.
    let padding = "x".repeat(2 * 1024 * 1024);
    let (status, body) = send(&app, Some(&token), &json!({"events": [], "padding": padding})).await;
    assert_eq!((status, &body["errors"][0]["code"]), (413, &json!("SIZE_INVALID")), "{body}");

    // The database away: the sender is told to send again (its token is still known from memory),
    // and nothing is taken as if it had been.
    proxy.cut();
    let answer = app
        .client()
        .post(app.url("/api/v1/registry/events"))
        .bearer_auth(&token)
        .body(push.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 503);
    assert!(answer.headers().contains_key("retry-after"));
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], json!("UNAVAILABLE"), "{body}");

    // Back: the same notification sent again is taken.
    proxy.restore();
    wait_for("the notification taken once the database is back", || async {
        send(&app, Some(&token), &push).await.0 == 200
    })
    .await;
    assert_eq!(v1(&app).await.as_deref(), Some(DIGEST_A));
}

#[tokio::test]
async fn an_event_the_database_refuses_for_what_it_is_is_4xx_so_the_sender_stops_sending_it() {
    let db = shop_with_admin_ann().await;
    let token = db.token_with("registry-events", &events_grant()).await;
    // A constraint standing in for any value the database refuses for what it is (class 23):
    // sending the same notification again could never succeed.
    sqlx::query("alter table registry_tags add constraint no_rejected_tag check (tag <> 'rejected')")
        .execute(&db.pool)
        .await
        .unwrap();
    let url = db.url.clone();
    let app = tests::spawn_app_over(db, url).await;

    let refused = envelope(&[("push", "2026-12-02T10:00:02Z", Some("rejected"), Some(DIGEST_A))]);
    let answer = app
        .client()
        .post(app.url("/api/v1/registry/events"))
        .bearer_auth(&token)
        .body(refused.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 422);
    assert!(!answer.headers().contains_key("retry-after"), "{:?}", answer.headers());
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], json!("UNSUPPORTED"), "{body}");
    assert!(inventory(&app.db, "shop").await.is_empty(), "nothing of a refused notification is taken");

    // Another notification is taken as ever.
    let (status, body) =
        send(&app, Some(&token), &envelope(&[("push", "2026-12-02T10:00:03Z", Some("v1"), Some(DIGEST_A))])).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(v1(&app).await.as_deref(), Some(DIGEST_A));
}

//! Project webhooks, end to end: configured with the CLI and the portal, delivered from the outbox
//! by real `tagward serve` processes to a receiver the test runs (which checks signatures and
//! shapes), retried, refused where they would reach inside the network, once across instances,
//! taken over after a crash; and the audit stream a SIEM polls.

use std::time::{Duration, Instant};
use tests::fixtures::PASSWORD;
use tests::receiver::{Answer, Receiver, Shape};
use tests::{eventually, spawn_app_with, TestDb};

const SECRET: &str = "a webhook secret of some length";

/// `tagward <args>` against `db`, as a process: (succeeded, stdout, stderr).
async fn tagward(db: &TestDb, args: &[&str]) -> (bool, String, String) {
    let output = tokio::process::Command::new(tests::tagward_bin())
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .env("TAGWARD_WEBHOOK_SECRET", SECRET)
        .env_remove("TAGWARD_WEBHOOK_ALLOW_PRIVATE")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run tagward");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.success(), text(&output.stdout), text(&output.stderr))
}

/// A webhook to `receiver` for `events`, added with the CLI (allowed to reach loopback); its id.
async fn add_webhook(db: &TestDb, receiver: &Receiver, events: &str, format: &str) -> i64 {
    let url = receiver.url("/hook");
    let args =
        ["webhook", "add", "shop", &url, "--events", events, "--format", format, "--webhook-allow-private", "true"];
    let (ok, out, err) = tagward(db, &args).await;
    assert!(ok, "{err}");
    out.trim().parse().unwrap_or_else(|_| panic!("an id, not {out}"))
}

/// The flags of a serve process that delivers to loopback receivers, retrying fast.
const FAST: [&str; 6] = ["--webhook-allow-private", "true", "--webhook-first-retry", "0.2", "--webhook-timeout", "2"];

async fn delivery_state(db: &TestDb, id: i64) -> (String, i32, Option<i32>, Option<String>) {
    sqlx::query_as("select state, attempts, last_status, last_error from webhook_deliveries where id = $1")
        .bind(id)
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

async fn shop() -> TestDb {
    let db = tests::fresh_database().await;
    db.user("ann", PASSWORD, false).await;
    db.project("shop").await;
    db.member("shop", "ann", "admin").await;
    db
}

#[tokio::test]
async fn a_rule_change_reaches_the_receiver_signed_after_a_failure_and_a_retry_after() {
    let db = shop().await;
    let receiver = Receiver::start(
        SECRET,
        Shape::CloudEvents,
        vec![Answer::status(500), Answer::status(503).header("retry-after", "1")],
    )
    .await;
    let webhook = add_webhook(&db, &receiver, "rule.created,rule.state_changed", "cloudevents").await;
    let url = db.url.clone();
    let app = spawn_app_with(db, url, &FAST).await;

    let rule = app.db.rule("shop", "matching:**", "matching:v*").await;
    let received = receiver.wait_for(3, Duration::from_secs(20)).await;
    assert!(received.iter().all(|r| r.signed && r.shaped), "every request signed and CloudEvents");
    assert_eq!(received.iter().map(|r| r.answered).collect::<Vec<_>>(), [500, 503, 200]);
    let delivery = received[0].delivery();
    assert!(received.iter().all(|r| r.delivery() == delivery), "one delivery, retried under its id");
    assert!(received[2].at - received[1].at >= Duration::from_millis(950), "Retry-After: 1 was honoured");
    let event = received[2].json();
    assert_eq!(event["type"], "dev.tagward.rule.created");
    assert_eq!(event["source"], "tagward/projects/shop");
    assert_eq!(event["subject"], format!("rule/{rule}"));
    assert_eq!(event["data"]["kind"], "rule.create");
    assert_eq!(event["data"]["after"]["tags"], "v*");
    assert_eq!(received[2].header("x-tagward-event").as_deref(), Some("rule.created"));
    let delivered = ("delivered".to_owned(), 3, Some(200), None);
    eventually("the delivery recorded as delivered", Duration::from_secs(10), || async {
        let state = delivery_state(&app.db, delivery).await;
        if state == delivered {
            Ok(())
        } else {
            Err(format!("{state:?}"))
        }
    })
    .await;

    // Denials are folded: three refused pushes of one tag are told once.
    let token = app.db.token("registry").await;
    let check = serde_json::json!({"operation": "push", "repository": "shop/api", "tag": "v1",
        "digest": tests::fixtures::DIGEST_B, "current_digest": tests::fixtures::DIGEST_A});
    let (ok, _, err) = tagward(
        &app.db,
        &["webhook", "add", "shop", &receiver.url("/denials"), "--events", "denial", "--webhook-allow-private", "true"],
    )
    .await;
    assert!(ok, "{err}");
    tests::until("the token and the webhook reaching the server", Duration::from_secs(10), || async {
        app.check(&token, tests::fixtures::CHECK, &check).await.0 == 200
    })
    .await;
    for _ in 0..2 {
        assert_eq!(app.check(&token, tests::fixtures::CHECK, &check).await.0, 200);
    }
    let denials = receiver.wait_for(4, Duration::from_secs(20)).await;
    let denial = denials[3].json();
    assert_eq!(denial["type"], "dev.tagward.denial");
    assert_eq!(denial["subject"], "shop/api:v1");
    assert!(denial["data"]["message"].as_str().unwrap().contains("immutable"), "{denial}");
    let told: i64 = sqlx::query_scalar("select count(*) from webhook_deliveries where event = 'denial'")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    let denied: i64 = sqlx::query_scalar("select coalesce(sum(count), 0)::bigint from enforcement_denials")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert!(denied >= 3, "{denied} denials recorded");
    assert_eq!(told, 1, "denials of one rule and repository are told once per window");

    let (ok, listed, err) = tagward(&app.db, &["webhook", "list", "shop"]).await;
    assert!(ok, "{err}");
    assert!(listed.contains(&format!("{webhook}\t{}", receiver.url("/hook"))), "{listed}");
    assert!(listed.contains("delivered\t3 attempts\tstatus 200"), "{listed}");
    eventually("the deliveries counted in /metrics", Duration::from_secs(10), || async {
        let metrics = app.client().get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        let counted = metrics.contains("tagward_webhook_deliveries_total{outcome=\"retry\"} 2")
            && metrics.contains("tagward_webhook_deliveries_total{outcome=\"delivered\"} 2");
        if counted {
            Ok(())
        } else {
            Err(metrics)
        }
    })
    .await;
}

#[tokio::test]
async fn slow_and_redirecting_receivers_fail_and_a_failing_endpoint_is_paused_until_resumed() {
    let db = shop().await;
    let slow = Receiver::start(SECRET, Shape::Slack, vec![Answer::status(200).after(Duration::from_secs(5))]).await;
    let elsewhere = Receiver::start(SECRET, Shape::Slack, vec![]).await;
    let redirecting =
        Receiver::start(SECRET, Shape::Slack, vec![Answer::status(302).header("location", elsewhere.url("/"))]).await;
    let slow_hook = add_webhook(&db, &slow, "rule.created", "slack").await;
    add_webhook(&db, &redirecting, "rule.created", "slack").await;
    let url = db.url.clone();
    let flags = [
        "--webhook-allow-private",
        "true",
        "--webhook-first-retry",
        "30",
        "--webhook-timeout",
        "1",
        "--webhook-pause-after",
        "1",
    ];
    let app = spawn_app_with(db, url, &flags).await;
    let ann = app.logged_in("ann", PASSWORD).await;

    app.db.rule("shop", "matching:**", "matching:v*").await;
    let (rows, _) =
        eventually("two failed first attempts, and their endpoints paused", Duration::from_secs(20), || async {
            let rows: Vec<(String, String, Option<String>, bool)> = sqlx::query_as(
                "select w.url, d.state, d.last_error, w.paused_at is not null
             from webhook_deliveries d join webhook_endpoints w on w.id = d.endpoint_id order by w.id",
            )
            .fetch_all(&app.db.pool)
            .await
            .unwrap();
            if rows.len() == 2 && rows.iter().all(|row| row.2.is_some() && row.3) {
                Ok(rows)
            } else {
                Err(format!("{rows:?}"))
            }
        })
        .await;
    let error_of = |url: &str| rows.iter().find(|row| row.0 == url).unwrap().2.clone().unwrap();
    assert!(error_of(&slow.url("/hook")).contains("timed out"), "{rows:?}");
    assert!(error_of(&redirecting.url("/hook")).contains("redirects are not followed"), "{rows:?}");
    assert!(rows.iter().all(|row| row.1 == "pending"), "to be retried: {rows:?}");
    assert!(elsewhere.received().is_empty(), "a redirect was followed");
    assert_eq!(slow.received().len(), 1);
    assert!(redirecting.received()[0].shaped, "the Slack body is {{\"text\": …}}");

    // The Webhooks tab shows the pause; resuming sends what waited.
    let page = app.page(&ann, "/projects/shop/webhooks").await.text().await.unwrap();
    assert!(page.contains("paused since") && page.contains("timed out"), "{page}");
    let (ok, _, err) = tagward(&app.db, &["webhook", "resume", "shop", &slow_hook.to_string()]).await;
    assert!(ok, "{err}");
    let again = slow.wait_for(2, Duration::from_secs(20)).await;
    let text = again[1].json()["text"].as_str().unwrap().to_owned();
    assert!(text.starts_with("[tagward] shop · Rule created: added rule"), "{text}");
    let trail = app.page(&ann, "/projects/shop/activity?kind=webhook").await.text().await.unwrap();
    assert!(trail.contains("resumed the paused webhook"), "{trail}");
    assert!(!trail.contains(SECRET), "the secret is never shown");
}

#[tokio::test]
async fn addresses_inside_the_network_are_refused_when_saved_and_when_connecting() {
    let db = shop().await;
    for url in
        ["http://127.0.0.1:9/", "http://169.254.169.254/latest/meta-data/", "http://localhost:8080/", "http://[::1]/"]
    {
        let (ok, _, err) = tagward(&db, &["webhook", "add", "shop", url]).await;
        assert!(!ok, "{url} was taken");
        assert!(err.contains("url: `") && err.contains("webhooks may not reach the network"), "{url}: {err}");
    }
    let (ok, _, err) = tagward(&db, &["webhook", "add", "shop", "https://hooks.example/", "--events", "push"]).await;
    assert!(!ok && err.contains("--events: `push` is not an event"), "{err}");
    let (ok, _, err) = tagward(&db, &["webhook", "add", "shop", "ftp://hooks.example/"]).await;
    assert!(!ok && err.contains("must start with https:// or http://"), "{err}");
    // A stored endpoint that points inside (a name that resolves elsewhere by now) is never connected to.
    let inside = Receiver::start(SECRET, Shape::Slack, vec![]).await;
    sqlx::query(
        "insert into webhook_endpoints (project_id, url, events, format, secret, created_by)
         select id, $1, '{rule.created}', 'slack', $2, 'test' from projects where name = 'shop'",
    )
    .bind(inside.url("/"))
    .bind(SECRET)
    .execute(&db.pool)
    .await
    .unwrap();
    let url = db.url.clone();
    let app = spawn_app_with(db, url, &["--webhook-first-retry", "30"]).await;

    // The portal refuses them too, naming the field; nothing is stored.
    let ann = app.logged_in("ann", PASSWORD).await;
    let fields = [
        ("project", "shop"),
        ("url", "http://10.0.0.7/hook"),
        ("events[]", "drift.found"),
        ("format", "cloudevents"),
        ("secret", SECRET),
    ];
    let refused = app.call(&ann, "add_webhook", &fields).await;
    assert_eq!(refused.status(), 400);
    let body = refused.text().await.unwrap();
    assert!(body.contains("url") && body.contains("10.0.0.7") && body.contains("a private address"), "{body}");
    let short = [
        ("project", "shop"),
        ("url", "https://hooks.example/"),
        ("events[]", "drift.found"),
        ("format", "slack"),
        ("secret", "short"),
    ];
    let refused = app.call(&ann, "add_webhook", &short).await.text().await.unwrap();
    assert!(refused.contains("secret") && refused.contains("16"), "{refused}");
    let stored: i64 =
        sqlx::query_scalar("select count(*) from webhook_endpoints").fetch_one(&app.db.pool).await.unwrap();
    assert_eq!(stored, 1, "only the row the test wrote");

    app.db.rule("shop", "matching:**", "matching:v*").await;
    let (error, _) = eventually("the attempt refused", Duration::from_secs(20), || async {
        let error: Option<Option<String>> =
            sqlx::query_scalar("select last_error from webhook_deliveries").fetch_optional(&app.db.pool).await.unwrap();
        error.flatten().ok_or_else(|| "not attempted yet".to_owned())
    })
    .await;
    assert!(error.contains("refused: 127.0.0.1 is a loopback address"), "{error}");
    assert!(inside.received().is_empty(), "an address inside the network was reached");
}

#[tokio::test]
async fn two_instances_deliver_each_notification_once_and_a_crashed_ones_claim_is_taken_over() {
    let db = shop().await;
    let receiver = Receiver::start(SECRET, Shape::CloudEvents, vec![]).await;
    let webhook = add_webhook(&db, &receiver, "all", "cloudevents").await;
    let project: i64 =
        sqlx::query_scalar("select id from projects where name = 'shop'").fetch_one(&db.pool).await.unwrap();
    let url = db.url.clone();
    let (_, first) = tests::spawn_server(&url, &FAST).await;
    let app = spawn_app_with(db, url.clone(), &FAST).await;

    let sent = 300;
    for _ in 0..sent {
        app_store_test_event(&app.db, project, webhook).await;
    }
    let received = receiver.wait_for(sent, Duration::from_secs(60)).await;
    let mut ids: Vec<i64> = received.iter().map(|r| r.delivery()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), sent, "each notification delivered once");
    drop(first);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(receiver.received().len(), sent, "and no more");

    // An instance that dies mid-delivery: the other takes the notification over after its lease.
    let hanging =
        Receiver::start(SECRET, Shape::CloudEvents, vec![Answer::status(200).after(Duration::from_secs(3600))]).await;
    let hung = add_webhook(&app.db, &hanging, "all", "cloudevents").await;
    drop(app);
    let (_, doomed) = tests::spawn_server(&url, &FAST).await;
    let db = tests::TestDb { url: url.clone(), pool: app_pool(&url).await };
    let delivery = app_store_test_event(&db, project, hung).await;
    hanging.wait_for(1, Duration::from_secs(20)).await;
    drop(doomed);
    let started = Instant::now();
    let (_, survivor) = tests::spawn_server(&url, &FAST).await;
    let again = hanging.wait_for(2, Duration::from_secs(40)).await;
    assert_eq!(again[1].delivery(), delivery, "the same notification, again");
    println!("taken over {:?} after the crash", started.elapsed());
    drop(survivor);
}

async fn app_pool(url: &str) -> sqlx::PgPool {
    app::store::connect(url).await.unwrap()
}

/// Queues a test event as the operator; the delivery's id.
async fn app_store_test_event(db: &TestDb, project: i64, webhook: i64) -> i64 {
    app::store::send_test_event(&db.pool, &tests::operator(), project, webhook).await.unwrap()
}

#[tokio::test]
async fn the_audit_stream_resumes_from_a_cursor_with_exactly_the_new_entries() {
    let db = shop().await;
    db.project("web").await;
    let all = app::account::TokenGrant::parse(&["audit:read"], &[]).unwrap();
    let only_web = app::account::TokenGrant::parse(&["audit:read"], &["web"]).unwrap();
    let reader = db.token_with("siem", &all).await;
    let web_reader = db.token_with("siem-web", &only_web).await;
    let decisions = db.token("registry").await;
    let url = db.url.clone();
    let app = spawn_app_with(db, url, &[]).await;
    let read = |token: String, query: String| {
        let app = &app;
        async move {
            let response =
                app.client().get(app.url(&format!("/api/v1/audit{query}"))).bearer_auth(token).send().await.unwrap();
            let status = response.status().as_u16();
            let next = response.headers().get("tagward-next-cursor").map(|v| v.to_str().unwrap().to_owned());
            let lines: Vec<serde_json::Value> =
                response.text().await.unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect();
            (status, next, lines)
        }
    };
    let (_, next, first) = eventually("the token reaching the server", Duration::from_secs(10), || async {
        let answer = read(reader.clone(), String::new()).await;
        if answer.0 == 200 {
            Ok(answer)
        } else {
            Err(format!("{}", answer.0))
        }
    })
    .await
    .0;
    let kinds: Vec<&str> = first.iter().map(|line| line["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"project.create") && kinds.contains(&"member.add"), "{kinds:?}");
    let cursor = next.unwrap();
    assert_eq!(first.last().unwrap()["cursor"], cursor.as_str());

    app.db.rule("shop", "matching:**", "matching:v*").await;
    app.db.rule("web", "matching:**", "matching:release-*").await;
    // An entry is streamed once no transaction older than it is still open anywhere in the cluster
    // (commit-safe order), so with other tests' transactions running, both may take a moment.
    let (new, _) = eventually("both new entries streamed", Duration::from_secs(10), || async {
        let (_, _, new) = read(reader.clone(), format!("?after={cursor}")).await;
        if new.len() >= 2 {
            Ok(new)
        } else {
            Err(format!("{new:?}"))
        }
    })
    .await;
    let new: Vec<(&str, &str)> =
        new.iter().map(|line| (line["kind"].as_str().unwrap(), line["project"].as_str().unwrap())).collect();
    assert_eq!(new, [("rule.create", "shop"), ("rule.create", "web")], "exactly the new entries");
    let (_, _, nothing) = read(reader.clone(), format!("?after={cursor}&project=web&limit=1")).await;
    assert_eq!(nothing.len(), 1);
    assert_eq!(nothing[0]["after"]["tags"], "release-*");

    // A token limited to `web` reads only web's entries, and may not ask for shop's.
    let (_, _, web) = read(web_reader.clone(), String::new()).await;
    assert!(!web.is_empty() && web.iter().all(|line| line["project"] == "web"), "{web:?}");
    assert_eq!(read(web_reader, "?project=shop".into()).await.0, 403);
    assert_eq!(read(decisions, String::new()).await.0, 403);
    let (status, _, _) = read(reader.clone(), "?after=not-a-cursor".into()).await;
    assert_eq!(status, 400);

    // The CLI prints the same stream.
    let (ok, out, err) = tagward(&app.db, &["audit", "export", "--after", &cursor]).await;
    assert!(ok, "{err}");
    let exported: Vec<serde_json::Value> = out.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(exported.len(), 2);
    let (ok, out, _) =
        tagward(&app.db, &["audit", "export", "--project", "web", "--since", "2000-01-01T00:00:00Z"]).await;
    assert!(ok && out.lines().all(|line| line.contains("\"project\":\"web\"")), "{out}");
    let (ok, _, err) = tagward(&app.db, &["audit", "export", "--since", "yesterday"]).await;
    assert!(!ok && err.contains("--since: `yesterday` is not an RFC 3339 time"), "{err}");
}

#[tokio::test]
async fn an_admin_adds_tests_and_redelivers_a_webhook_in_chromium_with_and_without_javascript() {
    use tests::browser::Browser;
    let db = shop().await;
    db.user("dev", PASSWORD, false).await;
    db.member("shop", "dev", "developer").await;
    let url = db.url.clone();
    let app = spawn_app_with(db, url, &FAST).await;
    for (round, javascript) in [(1, true), (2, false)] {
        let (shape, format) = if javascript { (Shape::CloudEvents, "cloudevents") } else { (Shape::Slack, "slack") };
        let receiver = Receiver::start(SECRET, shape, vec![]).await;
        let browser = Browser::start(1280, javascript).await;
        browser.log_in(&app.url(""), "ann", PASSWORD).await;
        browser.goto(&app.url("/projects/shop/webhooks")).await;
        if round == 1 {
            browser.text_containing("#no-webhooks", "No webhook is configured").await;
        }
        browser.find("#webhook-url").await.send_keys(&receiver.url("/hook")).await.unwrap();
        // Everything but denials.
        browser.find("#event-denial").await.click().await.unwrap();
        browser.find(&format!("#webhook-format option[value={format}]")).await.click().await.unwrap();
        browser.find("#webhook-secret").await.send_keys(SECRET).await.unwrap();
        if javascript {
            assert_eq!(browser.accessibility_violations().await, Vec::<String>::new());
            browser.screenshot("webhooks-add-1280").await;
        }
        browser.find("#add-webhook button[type=submit]").await.click().await.unwrap();
        let (id,): (i64,) = eventually("the webhook stored", Duration::from_secs(10), || async {
            sqlx::query_as("select id from webhook_endpoints where url = $1")
                .bind(receiver.url("/hook"))
                .fetch_optional(&app.db.pool)
                .await
                .unwrap()
                .ok_or_else(|| "not yet".to_owned())
        })
        .await
        .0;
        browser.wait_for_path("/projects/shop/webhooks").await;
        let card = browser.text_containing(&format!("#webhook-{id}"), "active").await;
        assert!(card.contains(format) && !card.contains("denial,") && card.contains("drift.found"), "{card}");
        assert!(!browser.client.source().await.unwrap().contains(SECRET), "the secret is never shown again");

        browser.find(&format!("#test-{id}")).await.click().await.unwrap();
        let test = receiver.wait_for(1, Duration::from_secs(20)).await.remove(0);
        assert!(test.signed && test.shaped && test.header("x-tagward-event").as_deref() == Some("test"));
        let delivery = test.delivery();
        eventually("the delivery shown as delivered", Duration::from_secs(20), || async {
            browser.goto(&app.url("/projects/shop/webhooks")).await;
            let row = browser.text(&format!("#delivery-{delivery}")).await;
            if row.contains("delivered") && row.contains("200 at") {
                Ok(())
            } else {
                Err(row)
            }
        })
        .await;
        if javascript {
            assert_eq!(browser.accessibility_violations().await, Vec::<String>::new());
            browser.screenshot("webhooks-1280").await;
        }
        browser.find(&format!("#redeliver-{delivery}")).await.click().await.unwrap();
        let again = receiver.wait_for(2, Duration::from_secs(20)).await;
        assert_eq!(again[1].delivery(), delivery, "the same delivery, sent again");
        if !javascript {
            browser.goto(&app.url("/projects/shop/webhooks")).await;
            browser.find(&format!("#remove-{id}")).await.click().await.unwrap();
            // The form posts and comes back to the same path: the database says when it is done.
            eventually("the webhook removed", Duration::from_secs(10), || async {
                let left: i64 = sqlx::query_scalar("select count(*) from webhook_endpoints where id = $1")
                    .bind(id)
                    .fetch_one(&app.db.pool)
                    .await
                    .unwrap();
                if left == 0 {
                    Ok(())
                } else {
                    Err(format!("{left} left"))
                }
            })
            .await;
            browser.goto(&app.url("/projects/shop/webhooks")).await;
            assert!(!browser.client.source().await.unwrap().contains(&format!("id=\"webhook-{id}\"")));
        }
        browser.close().await;
    }
    // A developer sees the webhooks but no form to change them, and is refused if they post one.
    let dev = app.logged_in("dev", PASSWORD).await;
    let page = app.page(&dev, "/projects/shop/webhooks").await.text().await.unwrap();
    assert!(page.contains("Webhooks") && !page.contains("add-webhook"), "{page}");
    let fields = [
        ("project", "shop"),
        ("url", "https://hooks.example/"),
        ("events[]", "drift.found"),
        ("format", "slack"),
        ("secret", SECRET),
    ];
    assert_eq!(app.call(&dev, "add_webhook", &fields).await.status(), 403);
}

#[tokio::test]
async fn a_drift_through_the_registrys_events_reaches_the_receiver_within_seconds() {
    use tests::registry::{push, OciLayout, Registry};
    let db = shop().await;
    db.rule("shop", "matching:**", "matching:v*").await;
    let events = app::account::TokenGrant::parse(&["events"], &[]).unwrap();
    let token = db.token_with("registry-events", &events).await;
    let receiver = Receiver::start(SECRET, Shape::Slack, vec![]).await;
    add_webhook(&db, &receiver, "drift.found", "slack").await;
    let url = db.url.clone();
    let app = spawn_app_with(db, url, &FAST).await;
    let registry = Registry::start_notifying(None, &app.url("/api/v1/registry/events"), &token).await;

    let (first, second) = (OciLayout::image_of("hook-first"), OciLayout::image_of("hook-second"));
    assert!(push(&first, registry.address, "shop/web:v1", false).await.status.success());
    tests::until("the first push reaching the inventory", Duration::from_secs(20), || async {
        sqlx::query_scalar::<_, i64>("select count(*) from registry_tags where tag = 'v1'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap()
            == 1
    })
    .await;
    // Pushed straight to the registry over the immutable v1.
    let pushed = Instant::now();
    assert!(push(&second, registry.address, "shop/web:v1", false).await.status.success());
    let told = receiver.wait_for(1, Duration::from_secs(20)).await.remove(0);
    println!("drift told {:?} after the push finished", pushed.elapsed());
    let text = told.json()["text"].as_str().unwrap().to_owned();
    assert!(text.starts_with("[tagward] shop · Drift found: found shop/web:v1 moved from"), "{text}");
    assert!(told.signed && told.shaped);
}

#[tokio::test]
async fn exceptions_running_out_are_told_once_across_two_instances() {
    let db = shop().await;
    let receiver = Receiver::start(SECRET, Shape::CloudEvents, vec![]).await;
    add_webhook(&db, &receiver, "exception.granted,exception.expiring,exception.expired", "cloudevents").await;
    let url = db.url.clone();
    let (_, other) = tests::spawn_server(&url, &FAST).await;
    let app = spawn_app_with(db, url, &FAST).await;
    let args =
        ["exception", "grant", "shop/api:v1", "--operation", "overwrite", "--reason", "INC-7", "--expires-in", "10m"];
    let (ok, _, err) = tagward(&app.db, &args).await;
    assert!(ok, "{err}");
    // Granted at once; within the 15-minute lead, so expiring soon as well.
    let told = receiver.wait_for(2, Duration::from_secs(20)).await;
    let mut kinds: Vec<String> = told.iter().map(|r| r.header("x-tagward-event").unwrap()).collect();
    kinds.sort();
    assert_eq!(kinds, ["exception.expiring", "exception.granted"]);
    // Time passes: it ran out unused.
    sqlx::query("update tag_exceptions set granted_at = granted_at - interval '1 hour', expires_at = now() - interval '1 second'")
        .execute(&app.db.pool)
        .await
        .unwrap();
    sqlx::query("update webhook_endpoints set created_at = created_at - interval '1 hour'")
        .execute(&app.db.pool)
        .await
        .unwrap();
    let told = receiver.wait_for(3, Duration::from_secs(20)).await;
    let expired = told.iter().find(|r| r.header("x-tagward-event").as_deref() == Some("exception.expired")).unwrap();
    assert_eq!(expired.json()["data"]["after"]["reason"], "INC-7");
    // Both instances' schedulers ran; a third run (the test's own) queues nothing more either.
    let queued = app::store::queue_timed_events(&app.db.pool, Duration::from_secs(900)).await.unwrap();
    assert_eq!(queued, 0, "each time-based event is queued once");
    let per_kind: Vec<(String, i64)> =
        sqlx::query_as("select event, count(*) from webhook_deliveries group by event order by event")
            .fetch_all(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(
        per_kind,
        [("exception.expired".into(), 1), ("exception.expiring".into(), 1), ("exception.granted".into(), 1)]
    );
    drop(other);
}

#[tokio::test]
async fn a_policy_file_sets_the_webhooks_and_export_never_writes_their_secrets() {
    let db = shop().await;
    let receiver = Receiver::start(SECRET, Shape::CloudEvents, vec![]).await;
    let kept = add_webhook(&db, &receiver, "all", "cloudevents").await;
    let file = tests::registry::TempDir::new("policy-webhooks");
    let path = file.0.join("shop.yaml");
    let (ok, exported, err) = tagward(&db, &["policy", "export", "shop"]).await;
    assert!(ok, "{err}");
    assert!(
        exported.contains(&format!("  - url: \"{}\"", receiver.url("/hook"))) && !exported.contains(SECRET),
        "{exported}"
    );
    let policy = format!(
        "project: shop\nrules: []\nwebhooks:\n  - url: \"{}\"\n    events: [drift.found]\n    format: slack\n  - url: \"{}\"\n    events: [all]\n    secret_env: SHOP_HOOK_SECRET\n",
        receiver.url("/hook"),
        receiver.url("/second")
    );
    std::fs::write(&path, policy).unwrap();
    let path = path.to_str().unwrap();
    let apply = |extra: &'static [&'static str]| {
        let db = &db;
        async move {
            let mut args = vec!["policy", "apply", "shop", "-f", path, "--webhook-allow-private", "true"];
            args.extend_from_slice(extra);
            tagward(db, &args).await
        }
    };
    // Without the variable the new webhook's secret is in, nothing changes.
    let (ok, _, err) = apply(&[]).await;
    assert!(
        !ok && err.contains("webhooks[1].secret_env: `SHOP_HOOK_SECRET` names an environment variable that is not set"),
        "{err}"
    );
    let output = tokio::process::Command::new(tests::tagward_bin())
        .args(["policy", "apply", "shop", "-f", path, "--webhook-allow-private", "true"])
        .env("DATABASE_URL", &db.url)
        .env("SHOP_HOOK_SECRET", "another long secret value")
        .output()
        .await
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        out.contains(&format!("~ change   webhook {kept} to {} (slack: drift.found)", receiver.url("/hook"))),
        "{out}"
    );
    assert!(out.contains(&format!("+ add      webhook to {}", receiver.url("/second"))), "{out}");
    let stored: Vec<(String, String, Vec<String>, String)> =
        sqlx::query_as("select url, format, events, secret from webhook_endpoints order by id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(
        (stored[0].1.as_str(), stored[0].2.clone(), stored[0].3.as_str()),
        ("slack", vec!["drift.found".to_owned()], SECRET)
    );
    assert_eq!(stored[1].3, "another long secret value");
    let (ok, out, _) = apply(&["--dry-run"]).await;
    assert!(ok && out.contains("dry run") && !out.contains("webhook "), "applied again, nothing to do: {out}");
    // A file without them leaves them be; a file with an empty list removes them.
    std::fs::write(path, "project: shop\nrules: []\nwebhooks: []\n").unwrap();
    let (ok, out, err) = apply(&[]).await;
    assert!(ok, "{err}");
    assert_eq!(out.matches("- remove   webhook").count(), 2, "{out}");
}

#[tokio::test]
async fn postgresql_restarted_with_notifications_pending_loses_none() {
    let cluster = tests::postgres::PrivateCluster::start().await;
    let admin = app::store::connect(&cluster.url("postgres")).await.unwrap();
    sqlx::query("create database tagward").execute(&admin).await.unwrap();
    admin.close().await;
    let url = cluster.url("tagward");
    let pool = app::store::connect(&url).await.unwrap();
    app::store::migrate(&pool).await.unwrap();
    let db = TestDb { url: url.clone(), pool };
    db.project("shop").await;
    // The receiver is away (503) for the first attempts; then it takes everything.
    let away: Vec<Answer> = (0..40).map(|_| Answer::status(503)).collect();
    let receiver = Receiver::start(SECRET, Shape::CloudEvents, away).await;
    let webhook = add_webhook(&db, &receiver, "all", "cloudevents").await;
    let project: i64 = sqlx::query_scalar("select id from projects").fetch_one(&db.pool).await.unwrap();
    // Failing attempts must not pause the endpoint here (20 in a row would).
    let flags = [&FAST[..], &["--webhook-pause-after", "1000"]].concat();
    let (_, server) = tests::spawn_server(&url, &flags).await;
    let mut queued = Vec::new();
    for _ in 0..20 {
        queued.push(app_store_test_event(&db, project, webhook).await);
    }
    receiver.wait_for(20, Duration::from_secs(20)).await;
    cluster.restart().await;
    // Written after the restart, while the server's connections are being re-made.
    let pool = app::store::connect(&url).await.unwrap();
    let db = TestDb { url: url.clone(), pool };
    for _ in 0..20 {
        queued.push(app_store_test_event(&db, project, webhook).await);
    }
    let (delivered, _) = eventually("every notification delivered", Duration::from_secs(60), || async {
        let mut delivered: Vec<i64> =
            receiver.received().iter().filter(|r| r.answered == 200).map(|r| r.delivery()).collect();
        delivered.sort_unstable();
        if delivered.len() >= queued.len() {
            Ok(delivered)
        } else {
            Err(format!("{} of {}", delivered.len(), queued.len()))
        }
    })
    .await;
    queued.sort_unstable();
    assert_eq!(delivered, queued, "each one delivered, once");
    drop(server);
    db.pool.close().await;
}

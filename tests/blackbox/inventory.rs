//! The tag inventory against a real registry: the gateway records what it lets through, the
//! portal's sync finds pushes made straight to the registry (and survives the registry going away
//! mid-sync), and the Tags tab, the impact preview and `policy apply` count what the registry holds.

use std::net::SocketAddr;
use std::time::Duration;
use tests::fixtures::PASSWORD;
use tests::inventory::{inventory, many_tags, page_text, shop_with_admin_ann};
use tests::registry::{push, OciLayout, Registry};
use tests::{fresh_database, CuttableProxy, TestApp, TestDb};

/// The portal over `db`, syncing from the registry at `registry` every second.
async fn portal_syncing(db: TestDb, registry: SocketAddr, rate: &str) -> TestApp {
    let url = db.url.clone();
    let registry = format!("http://{registry}");
    let flags = ["--registry-url", &registry, "--registry-sync-interval", "1", "--registry-sync-rate", rate];
    tests::spawn_app_with(db, url, &flags).await
}

/// Waits until a sync pass that started after `after` (database time) has completed.
async fn synced_since(db: &TestDb, after: time::OffsetDateTime) {
    tests::until("a sync pass completed", Duration::from_secs(30), || async {
        let done: Option<bool> = sqlx::query_scalar("select completed_started_at > $1 from registry_sync")
            .bind(after)
            .fetch_optional(&db.pool)
            .await
            .unwrap()
            .flatten();
        done == Some(true)
    })
    .await;
}

async fn database_now(db: &TestDb) -> time::OffsetDateTime {
    sqlx::query_scalar("select now()").fetch_one(&db.pool).await.unwrap()
}

async fn rule_impact(app: &TestApp, client: &reqwest::Client, fields: &[(&str, &str)]) -> serde_json::Value {
    let response = app.call(client, "rule_impact", fields).await;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

/// The impact of saving repositories matching `repositories`, tags matching `tags` in `shop`, as
/// rule `rule_id` or as a new rule.
async fn draft_impact(
    app: &TestApp,
    client: &reqwest::Client,
    rule_id: Option<&str>,
    repositories: &str,
    tags: &str,
) -> serde_json::Value {
    let mut fields = vec![
        ("project", "shop"),
        ("draft[repositories_action]", "matching"),
        ("draft[repositories]", repositories),
        ("draft[tags_action]", "matching"),
        ("draft[tags]", tags),
        ("remove", "false"),
    ];
    fields.extend(rule_id.map(|id| ("rule_id", id)));
    rule_impact(app, client, &fields).await
}

fn counted(value: &serde_json::Value) -> (u64, u64) {
    (value["tags"].as_u64().unwrap(), value["repositories"].as_u64().unwrap())
}

#[tokio::test]
async fn the_inventory_holds_what_the_registry_holds_and_the_portal_counts_it() {
    let db = shop_with_admin_ann().await;
    let rule = db.rule("shop", "matching:**", "matching:v*").await;
    let registry = Registry::start().await;
    let gateway = tests::gateway::gateway_for(&db, &registry).await;
    let (image_a, image_b, image_c, image_d) =
        (OciLayout::image_of("a"), OciLayout::image_of("b"), OciLayout::image_of("c"), OciLayout::image_of("d"));

    // Through the gateway: recorded as they pass, before any sync.
    for target in ["shop/app:v1", "shop/app:latest"] {
        assert!(push(&image_a, gateway, target, false).await.status.success(), "{target}");
    }
    let recorded = inventory(&db, "shop").await;
    assert_eq!(
        recorded,
        [
            ("shop/app".into(), "latest".into(), image_a.digest.clone(), "gateway".into()),
            ("shop/app".into(), "v1".into(), image_a.digest.clone(), "gateway".into()),
        ]
    );
    // Straight to the registry: only a sync can know.
    for (image, target) in [(&image_b, "shop/web:v2"), (&image_c, "shop/web:dev"), (&image_a, "other/x:v1")] {
        assert!(push(image, registry.address, target, false).await.status.success(), "{target}");
    }
    let before_sync = database_now(&db).await;
    let app = portal_syncing(db, registry.address, "0").await;
    synced_since(&app.db, before_sync).await;
    let synced = inventory(&app.db, "shop").await;
    let expected = [
        ("shop/app", "latest", &image_a.digest, "gateway"),
        ("shop/app", "v1", &image_a.digest, "gateway"),
        ("shop/web", "dev", &image_c.digest, "sync"),
        ("shop/web", "v2", &image_b.digest, "sync"),
    ];
    let expected: Vec<(String, String, String, String)> =
        expected.iter().map(|(r, t, d, s)| (r.to_string(), t.to_string(), d.to_string(), s.to_string())).collect();
    assert_eq!(synced, expected);
    for (repository, tag, digest, _) in &synced {
        assert_eq!(registry.digest(repository, tag).await.as_ref(), Some(digest), "{repository}:{tag}");
    }
    assert_eq!(inventory(&app.db, "other").await.len(), 1);

    // The Tags tab: every tag, immutable by the rule or not, and the freshness.
    let client = app.logged_in("ann", PASSWORD).await;
    let text = page_text(&app, &client, "/projects/shop/tags").await;
    assert!(text.contains("4 tags in 2 repositories (2 immutable)."), "{text}");
    assert!(text.contains(&format!("app v1 sha256:{}… ", &image_a.digest[7..19])), "{text}");
    assert!(text.contains(&format!("immutable by rule {rule}")), "{text}");
    assert!(text.contains("web dev"), "{text}");
    // Where each tag's time comes from: the push itself, or the sync that found it.
    assert_eq!(text.matches("pushed through the gateway").count(), 2, "{text}");
    assert_eq!(text.matches("found by a sync").count(), 2, "{text}");
    assert!(text.contains(&format!("synced with http://{}", registry.address)), "{text}");
    let text = page_text(&app, &client, "/projects/shop/tags?repositories=web&tags=").await;
    assert!(
        text.contains("2 tags in 1 repository match the filter (1 immutable), of 4 tags in 2 repositories in all"),
        "{text}"
    );
    assert!(!text.contains("app v1"), "{text}");
    // A page past the end, however far: empty, not an error.
    let text = page_text(&app, &client, "/projects/shop/tags?page=18446744073709551615").await;
    assert!(text.contains("There is no page 18446744073709551615: the last is page 1."), "{text}");
    let text = page_text(&app, &client, "/projects/shop/tags?repositories=%5B&tags=v*").await;
    assert!(text.contains("Not filtered: repository filter `[`"), "{text}");

    // The rule list says what each rule protects (what disabling it would release).
    let text = page_text(&app, &client, "/projects/shop/policy").await;
    assert!(text.contains("Protects 2 existing tags, all by this rule alone"), "{text}");
    assert!(text.contains("Tag counts: As of"), "{text}");

    // The impact of a new rule, of editing the rule, of deleting it.
    let impact = draft_impact(&app, &client, None, "web", "**").await;
    assert_eq!(counted(&impact["by_rule"]), (2, 1), "{impact}");
    assert_eq!(counted(&impact["becoming_immutable"]), (1, 1), "{impact}");
    assert_eq!(impact["becoming_immutable"]["examples"], serde_json::json!(["web:dev"]), "{impact}");
    assert_eq!(counted(&impact["ceasing_immutable"]), (0, 0), "{impact}");
    assert_eq!(counted(&impact["immutable_after"]), (3, 2), "{impact}");
    assert_eq!(counted(&impact["total"]), (4, 2), "{impact}");
    let rule_id = rule.to_string();
    let impact = draft_impact(&app, &client, Some(&rule_id), "app", "v*").await;
    assert_eq!(counted(&impact["ceasing_immutable"]), (1, 1), "{impact}");
    assert_eq!(impact["ceasing_immutable"]["examples"], serde_json::json!(["web:v2"]), "{impact}");
    let impact = rule_impact(&app, &client, &[("project", "shop"), ("rule_id", &rule_id), ("remove", "true")]).await;
    assert!(impact["by_rule"].is_null(), "{impact}");
    assert_eq!(counted(&impact["ceasing_immutable"]), (2, 2), "{impact}");
    let text = page_text(&app, &client, &format!("/projects/shop/policy/immutability/{rule}/delete")).await;
    assert!(
        text.contains("Of 4 tags in 2 repositories the inventory holds, 2 become mutable (e.g. app:v1, web:v2)"),
        "{text}"
    );
    let text = page_text(&app, &client, "/projects/shop/policy/immutability/new?repositories=web&tags=**").await;
    assert!(text.contains("This rule makes 2 tags in 1 repository immutable."), "{text}");

    // `policy apply --dry-run` counts the same way.
    let file = format!(
        "project: shop\nrules:\n  - id: {rule}\n    repositories: {{action: matching, patterns: '**'}}\n    tags: {{action: matching, patterns: 'v*'}}\n  - repositories: {{action: matching, patterns: web}}\n    tags: {{action: matching, patterns: '**'}}\n"
    );
    let output = crate::cli::tagward(&app.db.url, &["policy", "apply", "shop", "-f", "-", "--dry-run"], &file).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        stdout.contains("existing tags: 1 tag in 1 repository become immutable, 0 tags in 0 repositories stop being immutable; 3 tags in 2 repositories immutable after, of 4 tags in 2 repositories"),
        "{stdout}"
    );
    assert!(stdout.contains("becomes immutable: web:dev"), "{stdout}");

    // Deletes: through the gateway, recorded at once; straight at the registry, found by a sync.
    assert!(push(&image_d, gateway, "shop/app:old", false).await.status.success());
    assert!(inventory(&app.db, "shop").await.iter().any(|row| row.1 == "old"));
    let delete = |address: SocketAddr, repository: &str, digest: &str| {
        let url = format!("http://{address}/v2/{repository}/manifests/{digest}");
        async move { reqwest::Client::new().delete(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(delete(gateway, "shop/app", &image_d.digest).await, 202);
    assert!(!inventory(&app.db, "shop").await.iter().any(|row| row.1 == "old"));
    assert_eq!(delete(registry.address, "shop/web", &image_c.digest).await, 202);
    let before_sync = database_now(&app.db).await;
    synced_since(&app.db, before_sync).await;
    let tags: Vec<String> =
        inventory(&app.db, "shop").await.into_iter().map(|row| format!("{}:{}", row.0, row.1)).collect();
    assert_eq!(tags, ["shop/app:latest", "shop/app:v1", "shop/web:v2"]);

    // The rule list's counts are kept between pages and counted again once the inventory moved:
    // a tag the rule protects, pushed straight to the registry, shows in them after the sync.
    assert!(page_text(&app, &client, "/projects/shop/policy").await.contains("Protects 2 existing tags"));
    assert!(push(&image_d, registry.address, "shop/app:v3", false).await.status.success());
    let (text, _) = tests::eventually("the rule list counting the new tag", Duration::from_secs(10), || async {
        let text = page_text(&app, &client, "/projects/shop/policy").await;
        if text.contains("Protects 3 existing tags, all by this rule alone") {
            Ok(text)
        } else {
            Err(text)
        }
    })
    .await;
    assert!(text.contains("Tag counts: As of"), "{text}");
}

async fn sync_row(db: &TestDb) -> (time::OffsetDateTime, Option<String>, Option<String>, Option<time::OffsetDateTime>) {
    sqlx::query_as("select pass_started_at, resume_repository, failure, completed_at from registry_sync")
        .fetch_optional(&db.pool)
        .await
        .unwrap()
        .unwrap_or((time::OffsetDateTime::UNIX_EPOCH, None, None, None))
}

#[tokio::test]
async fn a_sync_cut_off_from_the_registry_says_so_and_resumes_where_it_stopped() {
    let db = shop_with_admin_ann().await;
    let registry = Registry::start().await;
    many_tags(&registry, 10, 250).await;
    let proxy = CuttableProxy::start(registry.address).await;
    // 500 requests a second: 2,500 tags take about 5 s, so the cut lands mid-pass (after the
    // first 250 tags are stored).
    let app = portal_syncing(db, proxy.address, "500").await;
    let (pass_started, _) = tests::eventually("the sync storing a page", Duration::from_secs(30), || async {
        match sync_row(&app.db).await {
            (pass_started, Some(_), ..) => Ok(pass_started),
            row => Err(format!("{row:?}")),
        }
    })
    .await;
    proxy.cut();
    let (failure, _) = tests::eventually("the failure to be recorded", Duration::from_secs(30), || async {
        match sync_row(&app.db).await {
            (_, _, Some(failure), _) => Ok(failure),
            row => Err(format!("{row:?}")),
        }
    })
    .await;
    assert!(failure.contains("the registry could not be read"), "{failure}");
    let client = app.logged_in("ann", PASSWORD).await;
    let text = page_text(&app, &client, "/projects/shop/tags").await;
    assert!(text.contains(&format!("The registry at http://{} could not be read", proxy.address)), "{text}");
    assert!(text.contains("The first sync with"), "{text}");
    let partial = inventory(&app.db, "shop").await.len();
    assert!((1..2500).contains(&partial), "{partial} tags stored before the cut");
    // Rule changes do not wait for the registry.
    let response = app
        .call(
            &client,
            "save_rule",
            &[
                ("project", "shop"),
                ("repositories_action", "matching"),
                ("repositories", "**"),
                ("tags_action", "matching"),
                ("tags", "t00*"),
            ],
        )
        .await;
    assert!(response.status().is_success() || response.status().is_redirection(), "{}", response.status());
    assert_eq!(app.db.rule_count().await, 1);

    proxy.restore();
    let ((resumed_pass, failure), _) =
        tests::eventually("the sync completing after the registry came back", Duration::from_secs(30), || async {
            match sync_row(&app.db).await {
                (resumed_pass, _, failure, Some(_)) => Ok((resumed_pass, failure)),
                row => Err(format!("{row:?}")),
            }
        })
        .await;
    assert_eq!(resumed_pass, pass_started, "the pass resumed rather than starting over");
    assert_eq!(failure, None);
    assert_eq!(inventory(&app.db, "shop").await.len(), 2500);
    let text = page_text(&app, &client, "/projects/shop/tags").await;
    assert!(text.contains("2,500 tags in 10 repositories (1,000 immutable)."), "{text}");
    assert!(!text.contains("could not be read"), "{text}");
}

/// A registry that answers as a hostile one might: every list page says there is a next page (the
/// same page again, for ever), and once `flood` is set, `shop/b`'s tag list is 12 MiB of one-letter
/// names (under the 16 MiB a page may be, but four million strings once parsed). Raw HTTP, one
/// request a connection.
struct HostileRegistry {
    address: SocketAddr,
    /// Requests for `shop/a`'s tag list (which always says there is more).
    tag_list_requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    flood: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

const HOSTILE_DIGEST: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

async fn hostile_registry() -> HostileRegistry {
    use std::sync::atomic::Ordering;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let registry = HostileRegistry {
        address: listener.local_addr().unwrap(),
        tag_list_requests: Default::default(),
        flood: Default::default(),
    };
    let (requests, flood) = (registry.tag_list_requests.clone(), registry.flood.clone());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let (requests, flood) = (requests.clone(), flood.clone());
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut head = Vec::new();
                let mut buffer = [0u8; 4096];
                while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let mut words = head.split(' ');
                let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
                let next = |path: &str| format!("Link: <{path}>; rel=\"next\"\r\n");
                let (status, headers, body): (&str, String, Vec<u8>) = match (method, target.split('?').next()) {
                    ("GET", Some("/v2/_catalog")) => (
                        "200 OK",
                        next("/v2/_catalog?n=1000&last=shop%2Fb"),
                        br#"{"repositories":["shop/a","shop/b"]}"#.to_vec(),
                    ),
                    ("GET", Some("/v2/shop/a/tags/list")) => {
                        requests.fetch_add(1, Ordering::Relaxed);
                        (
                            "200 OK",
                            next("/v2/shop/a/tags/list?n=1000&last=v1"),
                            br#"{"name":"shop/a","tags":["v1"]}"#.to_vec(),
                        )
                    }
                    ("GET", Some("/v2/shop/b/tags/list")) if flood.load(Ordering::Relaxed) => {
                        let mut body = br#"{"name":"shop/b","tags":["#.to_vec();
                        body.extend(std::iter::repeat_n(&b"\"x\","[..], 3_000_000).flatten());
                        body.extend_from_slice(br#""x"]}"#);
                        ("200 OK", String::new(), body)
                    }
                    ("GET", Some("/v2/shop/b/tags/list")) => {
                        ("200 OK", String::new(), br#"{"name":"shop/b","tags":["v2"]}"#.to_vec())
                    }
                    ("HEAD", Some("/v2/shop/a/manifests/v1" | "/v2/shop/b/manifests/v2")) => {
                        ("200 OK", format!("Docker-Content-Digest: {HOSTILE_DIGEST}\r\n"), Vec::new())
                    }
                    _ => ("404 Not Found", String::new(), Vec::new()),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{headers}Connection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                if method != "HEAD" {
                    let _ = stream.write_all(&body).await;
                }
            });
        }
    });
    registry
}

/// A registry that says every page has a next one gets read once a pass (a page that adds no new
/// name ends the list, since the sync asks for names after the last one it has); one that answers
/// a page of millions of names is refused past 100,000 with the reason recorded, and what was
/// stored stays.
#[tokio::test]
async fn a_hostile_registry_can_neither_loop_the_sync_nor_flood_its_memory() {
    use std::sync::atomic::Ordering;
    let registry = hostile_registry().await;
    let db = fresh_database().await;
    db.project("shop").await;
    let since = database_now(&db).await;
    let app = portal_syncing(db, registry.address, "1000").await;
    synced_since(&app.db, since).await;
    let found = |repository: &str, tag: &str| {
        (repository.to_owned(), tag.to_owned(), HOSTILE_DIGEST.to_owned(), "sync".to_owned())
    };
    assert_eq!(inventory(&app.db, "shop").await, [found("shop/a", "v1"), found("shop/b", "v2")]);
    // Two more passes (they run every second): a sync that followed the endless `Link`s would
    // have made thousands of requests (it may make 1,000 a second) by the end of them.
    for _ in 0..2 {
        let since = database_now(&app.db).await;
        synced_since(&app.db, since).await;
    }
    let (completed,): (time::OffsetDateTime,) =
        sqlx::query_as("select completed_at from registry_sync").fetch_one(&app.db.pool).await.unwrap();
    let requests = registry.tag_list_requests.load(Ordering::Relaxed);
    println!("shop/a's endless tag list was asked for {requests} times in about 3 s of passes");
    assert!(requests <= 20, "{requests} requests for one page");
    assert!(completed > since);

    registry.flood.store(true, Ordering::Relaxed);
    let (failure, _) = tests::eventually("the flood to be refused", Duration::from_secs(60), || async {
        match sync_row(&app.db).await {
            (_, _, Some(failure), _) => Ok(failure),
            row => Err(format!("{row:?}")),
        }
    })
    .await;
    assert!(failure.contains("shop/b") && failure.contains("lists more than 100000 names"), "{failure}");
    assert_eq!(inventory(&app.db, "shop").await, [found("shop/a", "v1"), found("shop/b", "v2")]);
    println!("peak memory of the portal after the flood: {:.1} MiB", app.peak_memory_mib().unwrap_or(f64::NAN));
}

/// The distinct blobs of these manifests of `repository` (and of their children), in bytes, read
/// straight from the registry.
async fn blob_bytes(registry: &Registry, repository: &str, manifests: &[&str]) -> u64 {
    let mut blobs = std::collections::BTreeMap::new();
    let mut queue: Vec<String> = manifests.iter().map(|m| m.to_string()).collect();
    while let Some(reference) = queue.pop() {
        let manifest = registry.manifest(repository, &reference).await.unwrap();
        for child in manifest["manifests"].as_array().into_iter().flatten() {
            queue.push(child["digest"].as_str().unwrap().to_owned());
        }
        let config = manifest.get("config").into_iter();
        for blob in config.chain(manifest["layers"].as_array().into_iter().flatten()) {
            blobs.insert(blob["digest"].as_str().unwrap().to_owned(), blob["size"].as_u64().unwrap());
        }
    }
    blobs.values().sum()
}

#[tokio::test]
async fn the_tags_tab_says_what_each_immutable_tag_holds_and_keeps_from_garbage_collection() {
    use tests::registry::{push_image, tag_referrers};
    let db = shop_with_admin_ann().await;
    db.rule("shop", "matching:**", "matching:v*").await;
    let registry = Registry::start().await;
    // Straight to the registry: the sync finds the tags and reads what the immutable ones hold.
    let pushed = push(&OciLayout::index_of("multi"), registry.address, "shop/multi:v2", true).await;
    assert!(pushed.status.success(), "{}", String::from_utf8_lossy(&pushed.stderr));
    let (a, b, s, big) = (vec![1u8; 3000], vec![2u8; 2000], vec![3u8; 500], vec![4u8; 100_000]);
    let v1 = push_image(registry.address, "shop/app", Some("v1"), "one", &[&a, &b], None).await;
    let signature = push_image(registry.address, "shop/app", None, "sig", &[&s], Some(&v1.manifest)).await;
    tag_referrers(registry.address, "shop/app", &v1.manifest, &[&signature.manifest]).await;
    let latest = push_image(registry.address, "shop/app", Some("latest"), "latest", &[&big, &a], None).await;
    let sbom = push_image(registry.address, "shop/app", None, "sbom", &[&s], Some(&latest.manifest)).await;
    tag_referrers(registry.address, "shop/app", &latest.manifest, &[&sbom.manifest]).await;
    let before = database_now(&db).await;
    let app = portal_syncing(db, registry.address, "0").await;
    synced_since(&app.db, before).await;
    let client = app.logged_in("ann", PASSWORD).await;

    let index = registry.digest("shop/multi", "v2").await.unwrap();
    let multi = blob_bytes(&registry, "shop/multi", &[&index]).await;
    let release = blob_bytes(&registry, "shop/app", &[&v1.manifest, &signature.manifest]).await;
    let text = page_text(&app, &client, "/projects/shop/tags").await;
    let holds_multi = format!("holds 2 platforms (linux/amd64, linux/arm64), {}", app::format::bytes(multi));
    assert!(text.contains(&holds_multi), "{holds_multi} in: {text}");
    let holds_v1 = format!("holds {}; attached: 1 signature", app::format::bytes(release));
    assert!(text.contains(&holds_v1), "{holds_v1} in: {text}");
    // The two `sha256-…` lists are not rows: what they list is shown with v1.
    assert!(text.contains("2 attachment lists (sha256-… tags) are not listed as tags"), "{text}");
    assert!(!text.contains(&v1.manifest.replace(':', "-")), "{text}");
    assert!(text.contains("3 tags in 2 repositories (2 immutable)"), "{text}");
    // Together, each blob once; `latest` (mutable) adds nothing, though it shares a layer with v1.
    let kept = format!("Immutable tags keep {} of blobs from garbage collection", app::format::bytes(multi + release));
    assert!(text.contains(&kept), "{kept} in: {text}");

    // The impact preview weighs what a rule would lock.
    let impact = draft_impact(&app, &client, None, "app", "v1,latest").await;
    let locked = &impact["locked_by_rule"];
    let latest_only = blob_bytes(&registry, "shop/app", &["latest"]).await;
    // `latest` is read by nobody yet (it is mutable): its manifest is counted as not read; the SBOM
    // attached to it (read as a referrer) is weighed.
    let with_sbom = blob_bytes(&registry, "shop/app", &[&v1.manifest, &signature.manifest, &sbom.manifest]).await;
    assert_eq!(locked["bytes"].as_u64(), Some(with_sbom), "{impact}");
    assert_eq!(locked["unread"].as_u64(), Some(1), "{impact}");
    assert!(latest_only > 100_000);
    // v1's list only grows already (v1 is immutable); making `latest` immutable makes its list so too.
    assert_eq!(
        (impact["lists_becoming_append_only"].as_u64(), impact["lists_append_only_after"].as_u64()),
        (Some(1), Some(2))
    );
}

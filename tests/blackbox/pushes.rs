//! Many protected pushes at once to a slow registry: the gateway's shared locks live on a few
//! dedicated connections, not one pooled transaction per waiting push, so a registry taking
//! seconds per manifest PUT neither starves the pool nor turns pushes into 503s. Real
//! docker-registry 2.8 behind a proxy that delays manifest PUTs.

use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tests::gateway::{gateway_config, spawn_gateway};
use tests::registry::{manifest_digest, upload_blob, FaultyProxy, Registry};
use tests::{fresh_database, CuttableProxy, TestDb};

/// Project `shop` whose `v*` tags are immutable, a registry and a proxy in front of it that
/// delays every manifest PUT under `shop/` by `delay`.
async fn slow_registry(delay: Duration) -> (TestDb, Registry, FaultyProxy) {
    tests::init_logging();
    let db = fresh_database().await;
    db.project("shop").await;
    db.rule("shop", "matching:**", "matching:v*").await;
    let registry = Registry::start().await;
    let proxy = FaultyProxy::start(registry.address).await;
    proxy.delay_manifest_puts(delay);
    (db, registry, proxy)
}

/// An image manifest of `repository` whose blobs are already in the registry (uploaded straight to it).
async fn image(registry: SocketAddr, repository: &str, seed: &str) -> Value {
    let config = upload_blob(registry, repository, format!("{{\"seed\":\"{seed}\"}}").as_bytes()).await;
    let layer = upload_blob(registry, repository, format!("layer {seed}").as_bytes()).await;
    json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 10},
           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": 10}]})
}

/// A PUT through `gateway`: status, and when it started and ended (since `zero`).
async fn put(gateway: SocketAddr, path: &str, manifest: &Value, zero: Instant) -> (u16, String, Duration, Duration) {
    let started = zero.elapsed();
    let response = reqwest::Client::new()
        .put(format!("http://{gateway}/v2/{path}"))
        .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    (status, body, started, zero.elapsed())
}

/// The most requests in flight at once, from their (start, end) times.
fn most_at_once(spans: &[(Duration, Duration)]) -> usize {
    spans.iter().map(|(start, _)| spans.iter().filter(|(s, e)| s <= start && start < e).count()).max().unwrap_or(0)
}

/// Backends of the test's database holding advisory locks now.
async fn lock_holders(db: &TestDb) -> i64 {
    sqlx::query_scalar(
        "select count(distinct pid) from pg_locks where locktype = 'advisory'
           and database = (select oid from pg_database where datname = current_database())",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn forty_eight_first_pushes_to_a_slow_registry_all_land_side_by_side() {
    let (db, registry, proxy) = slow_registry(Duration::from_secs(3)).await;
    let gateway = spawn_gateway(gateway_config(&db, proxy.address)).await;
    let mut manifests = Vec::new();
    for i in 0..48 {
        manifests.push(image(registry.address, &format!("shop/app{i}"), &format!("one {i}")).await);
    }
    let other = image(registry.address, "other/app", "other").await;
    let zero = Instant::now();
    let pushes = manifests
        .iter()
        .enumerate()
        .map(|(i, manifest)| {
            let manifest = manifest.clone();
            tokio::spawn(async move { put(gateway, &format!("shop/app{i}/manifests/v1"), &manifest, zero).await })
        })
        .collect::<Vec<_>>();
    // Meanwhile: the locks of 48 pushes sit on the gateway's lock connections, a push to a project
    // without rules and a pull are answered without waiting for any of them.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let holders = lock_holders(&db).await;
    let unprotected = put(gateway, "other/app/manifests/latest", &other, zero).await;
    let pull = reqwest::Client::new()
        .get(format!("http://{gateway}/v2/other/app/manifests/latest"))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    let pulled = zero.elapsed();
    let mut spans = Vec::new();
    for push in pushes {
        let (status, body, started, ended) = push.await.unwrap();
        assert_eq!(status, 201, "{body}");
        spans.push((started, ended));
    }
    assert_eq!(unprotected.0, 201, "{}", unprotected.1);
    assert_eq!(pull.status(), 200);
    let first_protected_done = spans.iter().map(|(_, ended)| *ended).min().unwrap();
    assert!(unprotected.3 < first_protected_done && pulled < first_protected_done, "they did not wait");
    // More at once than the pool has connections (16), on two lock connections.
    assert!(most_at_once(&spans) > 16, "{spans:?}");
    assert!((1..=2).contains(&holders), "{holders} backends held the locks of 48 pushes");
    for i in [0, 47] {
        assert_eq!(registry.digest(&format!("shop/app{i}"), "v1").await, Some(manifest_digest(&manifests[i])));
    }

    // 24 overwrites at once: every one refused, none answered 5xx.
    let overwrites = (0..24)
        .map(|i| {
            let manifest = manifests[(i + 1) % 48].clone();
            tokio::spawn(async move { put(gateway, &format!("shop/app{i}/manifests/v1"), &manifest, zero).await })
        })
        .collect::<Vec<_>>();
    for overwrite in overwrites {
        let (status, body, ..) = overwrite.await.unwrap();
        assert_eq!(status, 403, "{body}");
    }
}

#[tokio::test]
async fn two_gateways_racing_first_pushes_of_the_same_tags_leave_one_winner_each() {
    let (db, registry, proxy) = slow_registry(Duration::from_millis(500)).await;
    let (one, two) = (
        spawn_gateway(gateway_config(&db, proxy.address)).await,
        spawn_gateway(gateway_config(&db, proxy.address)).await,
    );
    let zero = Instant::now();
    let mut races = Vec::new();
    for i in 0..8 {
        let repository = format!("shop/race{i}");
        let (a, b) = (image(registry.address, &repository, "a").await, image(registry.address, &repository, "b").await);
        let path = format!("{repository}/manifests/v1");
        races.push((
            repository,
            a.clone(),
            b.clone(),
            tokio::spawn({
                let path = path.clone();
                async move { tokio::join!(put(one, &path, &a, zero), put(two, &path, &b, zero)) }
            }),
        ));
    }
    for (repository, a, b, race) in races {
        let (first, second) = race.await.unwrap();
        let mut statuses = [first.0, second.0];
        statuses.sort();
        assert_eq!(statuses, [201, 403], "{repository}: {} / {}", first.1, second.1);
        let winner = if first.0 == 201 { &a } else { &b };
        assert_eq!(registry.digest(&repository, "v1").await, Some(manifest_digest(winner)), "{repository}");
    }
}

#[tokio::test]
async fn a_database_restart_while_pushes_wait_lets_none_land_unguarded() {
    let (db, registry, proxy) = slow_registry(Duration::from_secs(3)).await;
    let database = CuttableProxy::start(tests::database_server_address()).await;
    let mut config = gateway_config(&db, proxy.address);
    config.database.database_url = db.url_via(database.address);
    config.locks.lock_hold_timeout_seconds = 6;
    config.locks.lock_timeout_seconds = 2;
    let gateway = spawn_gateway(config).await;
    let zero = Instant::now();
    let mut manifests = Vec::new();
    for i in 0..6 {
        manifests.push(image(registry.address, &format!("shop/db{i}"), "one").await);
    }
    // Four pushes under their locks, waiting on the registry, when the database goes away.
    let waiting: Vec<_> = (0..4)
        .map(|i| {
            let manifest = manifests[i].clone();
            tokio::spawn(async move { put(gateway, &format!("shop/db{i}/manifests/v1"), &manifest, zero).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    database.cut();
    let (status, body, ..) = put(gateway, "shop/db4/manifests/v1", &manifests[4], zero).await;
    assert_eq!(status, 503, "no lock while the database is away: {body}");
    assert!(body.contains("the database holding the locks is unavailable"), "{body}");
    database.restore();
    // They were forwarded before the locks went: they land (nothing else could take their tags
    // while the lost sessions' requests may still be in flight).
    for push in waiting {
        let (status, body, ..) = push.await.unwrap();
        assert_eq!(status, 201, "{body}");
    }
    // Back, the lock connection grants nothing until every request the lost one guarded has ended.
    let (status, body, ..) = put(gateway, "shop/db4/manifests/v1", &manifests[4], zero).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("--lock-hold-timeout"), "the refusal names the setting: {body}");
    assert_eq!(registry.digest("shop/db4", "v1").await, None, "nothing landed");
    let started = Instant::now();
    loop {
        let (status, body, ..) = put(gateway, "shop/db4/manifests/v1", &manifests[4], zero).await;
        if status == 201 {
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(started.elapsed() < Duration::from_secs(20), "never granted again: {body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_client_deleting_in_a_loop_gets_a_bounded_number_of_walks() {
    let (db, registry, proxy) = slow_registry(Duration::ZERO).await;
    let mut config = gateway_config(&db, proxy.address);
    config.held.walks_per_client = 2;
    let gateway = spawn_gateway(config).await;
    let release = image(registry.address, "shop/app", "release").await;
    let zero = Instant::now();
    assert_eq!(put(gateway, "shop/app/manifests/v1", &release, zero).await.0, 201);
    // Each walk reads the tag list and v1 at a registry answering reads 500 ms late.
    proxy.delay_reads(Duration::from_millis(500));
    let blob = upload_blob(registry.address, "shop/app", b"held by nothing").await;
    let delete = |blob: String| async move {
        let response =
            reqwest::Client::new().delete(format!("http://{gateway}/v2/shop/app/blobs/{blob}")).send().await.unwrap();
        let retry_after = response.headers().get("retry-after").is_some();
        (response.status().as_u16(), retry_after, response.text().await.unwrap_or_default())
    };
    let (one, two, three) = tokio::join!(delete(blob.clone()), delete(blob.clone()), async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        delete(blob.clone()).await
    });
    assert_eq!(three.0, 429, "a third walk of one client while two are under way: {}", three.2);
    assert!(three.1 && three.2.contains("--held-walks-per-client"), "{three:?}");
    let mut statuses = [one.0, two.0];
    statuses.sort();
    // The first deletes the blob; the second, walked after it under the same lock, finds it gone.
    assert_eq!(statuses, [202, 404], "{one:?} {two:?}");
    // Turns are given back.
    let again = upload_blob(registry.address, "shop/app", b"held by nothing either").await;
    assert_eq!(delete(again).await.0, 202);
}

#[tokio::test]
async fn a_thousand_slow_protected_pushes_do_not_stop_another_clients_push() {
    use tokio::io::AsyncWriteExt;
    let (db, registry, proxy) = slow_registry(Duration::ZERO).await;
    let gateway = spawn_gateway(gateway_config(&db, proxy.address)).await;
    // A client opens 1,000 protected pushes and sends a few bytes of each body, then stalls: the
    // bodies are read (and charged to the buffer) before any lock is taken, so they hold neither
    // a lock nor a database connection.
    let mut stalled = Vec::new();
    for i in 0..1000 {
        let mut stream = tokio::net::TcpStream::connect(gateway).await.unwrap();
        let head = format!(
            "PUT /v2/shop/slow{i}/manifests/v1 HTTP/1.1\r\nHost: {gateway}\r\n\
             Content-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 4096\r\n\r\n{{\"schema"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stalled.push(stream);
    }
    assert_eq!(lock_holders(&db).await, 0, "the stalled pushes hold no lock");
    let manifest = image(registry.address, "shop/app", "other client").await;
    let (status, body, ..) = put(gateway, "shop/app/manifests/v1", &manifest, Instant::now()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(registry.digest("shop/app", "v1").await, Some(manifest_digest(&manifest)));
    drop(stalled);
}

#[tokio::test]
async fn a_stream_of_pushes_does_not_starve_a_delete_of_its_repository() {
    let (db, registry, proxy) = slow_registry(Duration::from_secs(1)).await;
    let mut config = gateway_config(&db, proxy.address);
    config.locks.lock_timeout_seconds = 4;
    let gateway = spawn_gateway(config).await;
    let mut manifests = Vec::new();
    for i in 0..20 {
        manifests.push(image(registry.address, "shop/app", &format!("stream {i}")).await);
    }
    let blob = upload_blob(registry.address, "shop/app", b"held by nothing").await;
    let zero = Instant::now();
    // A push every 300 ms, each holding the repository's lock in shared mode for a second: the
    // lock is never free for 6 s.
    let stream = tokio::spawn(async move {
        let mut pushes = Vec::new();
        for (i, manifest) in manifests.into_iter().enumerate() {
            pushes.push(tokio::spawn(async move {
                put(gateway, &format!("shop/app/manifests/v{i}"), &manifest, zero).await
            }));
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let mut statuses = Vec::new();
        for push in pushes {
            statuses.push(push.await.unwrap().0);
        }
        statuses
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The delete waits for the pushes holding the lock, not for every push that comes after it.
    let response =
        reqwest::Client::new().delete(format!("http://{gateway}/v2/shop/app/blobs/{blob}")).send().await.unwrap();
    let status = response.status().as_u16();
    assert_eq!(status, 202, "{}", response.text().await.unwrap_or_default());
    assert!(stream.await.unwrap().iter().all(|status| *status == 201));
}

//! The enforcing gateway in front of a real registry (CNCF distribution), driven by skopeo.

use std::net::SocketAddr;
use std::process::Output;
use std::time::Duration;
use tests::gateway::gateway_for;
use tests::registry::{push, skopeo, OciLayout, Registry};
use tests::{fresh_database, TestDb};

struct Setup {
    db: TestDb,
    registry: Registry,
    gateway: SocketAddr,
    rule: i64,
}

/// Project `shop` with the seed's example 2 (every tag immutable except rc, test and nightly),
/// a registry, and the gateway in front of it.
async fn setup() -> Setup {
    tests::init_logging();
    let db = fresh_database().await;
    db.project("shop").await;
    let rule = db.rule("shop", "matching:**", "excluding:rc,test,nightly").await;
    let registry = Registry::start().await;
    let gateway = gateway_for(&db, &registry).await;
    Setup { db, registry, gateway, rule }
}

fn ok(output: &Output) -> bool {
    output.status.success()
}

/// What skopeo printed, with the quotes its log format escapes unescaped.
fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).replace("\\\"", "\"")
}

#[tokio::test]
async fn pushes_and_deletes_through_the_gateway_follow_the_rules() {
    let Setup { db, registry, gateway, rule } = setup().await;
    let (one, two) = (OciLayout::image_of("one"), OciLayout::image_of("two"));

    let first = push(&one, gateway, "shop/api:v1", false).await;
    assert!(ok(&first), "first push of v1: {}", stderr(&first));
    assert_eq!(registry.digest("shop/api", "v1").await.as_deref(), Some(one.digest.as_str()));

    let overwrite = push(&two, gateway, "shop/api:v1", false).await;
    assert!(!ok(&overwrite), "overwriting v1 must fail");
    let expected = format!(
        "denied: tag \"v1\" of \"shop/api\" is immutable (rule {rule}: repositories matching **, tags excluding rc, test, nightly); push a new tag instead"
    );
    assert!(stderr(&overwrite).contains(&expected), "skopeo said: {}", stderr(&overwrite));
    assert_eq!(registry.digest("shop/api", "v1").await.as_deref(), Some(one.digest.as_str()), "v1 unchanged");

    let again = push(&one, gateway, "shop/api:v1", false).await;
    assert!(ok(&again), "re-pushing the same image: {}", stderr(&again));

    for image in [&one, &two] {
        let nightly = push(image, gateway, "shop/api:nightly", false).await;
        assert!(ok(&nightly), "nightly is mutable: {}", stderr(&nightly));
    }
    assert_eq!(registry.digest("shop/api", "nightly").await.as_deref(), Some(two.digest.as_str()));

    let locked =
        skopeo(&["delete", "--tls-verify=false", &format!("docker://{gateway}/shop/api@{}", one.digest)]).await;
    assert!(!ok(&locked), "the manifest behind v1 is locked");
    // skopeo delete prints the error body as JSON (inside its quoted log line), so quotes come escaped twice.
    assert!(stderr(&locked).contains("(403 Forbidden)"), "{}", stderr(&locked));
    assert!(stderr(&locked).contains(&format!("manifest {} of ", one.digest)), "{}", stderr(&locked));
    assert!(stderr(&locked).contains("is locked by its immutable tag"), "{}", stderr(&locked));
    assert!(registry.digest("shop/api", "v1").await.is_some());

    let unlocked =
        skopeo(&["delete", "--tls-verify=false", &format!("docker://{gateway}/shop/api@{}", two.digest)]).await;
    assert!(ok(&unlocked), "only the mutable nightly points at it: {}", stderr(&unlocked));
    assert_eq!(registry.digest("shop/api", "nightly").await, None);

    // Both denials are in the audit trail, under the gateway's name.
    let (rows, _) = tests::eventually("both denials recorded", Duration::from_secs(5), || async {
        let rows: Vec<(String, String)> =
            sqlx::query_as("select operation, token from enforcement_denials order by id")
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
    assert_eq!(rows, [("push".into(), "gateway".into()), ("delete_manifest".into(), "gateway".into())]);
}

#[tokio::test]
async fn a_multi_platform_index_is_protected_like_an_image() {
    let Setup { registry, gateway, .. } = setup().await;
    let (first, second) = (OciLayout::index_of("first"), OciLayout::index_of("second"));
    let pushed = push(&first, gateway, "shop/multi:v2", true).await;
    assert!(ok(&pushed), "skopeo copy --all: {}", stderr(&pushed));
    let stored = registry.digest("shop/multi", "v2").await.expect("the index is stored");
    let again = push(&first, gateway, "shop/multi:v2", true).await;
    assert!(ok(&again), "the same index again: {}", stderr(&again));
    let overwrite = push(&second, gateway, "shop/multi:v2", true).await;
    assert!(stderr(&overwrite).contains("denied: tag \"v2\" of \"shop/multi\" is immutable"), "{}", stderr(&overwrite));
    assert_eq!(registry.digest("shop/multi", "v2").await, Some(stored));
}

/// Racers go through two gateways sharing the database: only PostgreSQL's advisory lock is common.
#[tokio::test]
async fn concurrent_first_pushes_of_one_immutable_tag_leave_exactly_one() {
    let Setup { db, registry, gateway, .. } = setup().await;
    let second = gateway_for(&db, &registry).await;
    let images: Vec<OciLayout> = (0..6).map(|i| OciLayout::image_of(&format!("racer-{i}"))).collect();
    let through = |i: usize| if i.is_multiple_of(2) { gateway } else { second };
    let outputs = futures::future::join_all(
        images.iter().enumerate().map(|(i, image)| push(image, through(i), "shop/race:v1", false)),
    )
    .await;
    let winners: Vec<&OciLayout> =
        images.iter().zip(&outputs).filter(|(_, output)| ok(output)).map(|(image, _)| image).collect();
    assert_eq!(winners.len(), 1, "{:?}", outputs.iter().map(stderr).collect::<Vec<_>>());
    for output in outputs.iter().filter(|output| !ok(output)) {
        assert!(stderr(output).contains("denied: tag \"v1\" of \"shop/race\" is immutable"), "{}", stderr(output));
    }
    assert_eq!(registry.digest("shop/race", "v1").await.as_deref(), Some(winners[0].digest.as_str()));
}

#[tokio::test]
async fn the_multi_tag_form_and_oversized_manifests_are_refused() {
    let Setup { registry, gateway, .. } = setup().await;
    let (one, two) = (OciLayout::image_of("one"), OciLayout::image_of("two"));
    assert!(ok(&push(&one, gateway, "shop/api:v1", false).await));
    assert!(ok(&push(&two, gateway, "shop/api:scratch", false).await));
    let client = reqwest::Client::new();
    let put = |url: String, body: Vec<u8>| {
        client.put(url).header("Content-Type", "application/vnd.oci.image.manifest.v1+json").body(body).send()
    };

    // OCI's `PUT /v2/<name>/manifests/<digest>?tag=...`: one of its tags is an immutable one.
    let response = put(format!("http://{gateway}/v2/shop/api/manifests/{}?tag=rc&tag=v1", two.digest), two.manifest())
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "DENIED");
    assert_eq!(body["errors"][0]["detail"]["immutable_tags"], serde_json::json!(["v1"]));
    assert_eq!(registry.digest("shop/api", "v1").await.as_deref(), Some(one.digest.as_str()));

    let response =
        put(format!("http://{gateway}/v2/shop/api/manifests/v9"), vec![b' '; 4 * 1024 * 1024 + 1]).await.unwrap();
    assert_eq!(response.status(), 413);

    // Reads pass straight through.
    let tags: serde_json::Value =
        reqwest::get(format!("http://{gateway}/v2/shop/api/tags/list")).await.unwrap().json().await.unwrap();
    assert_eq!(tags["tags"].as_array().map(Vec::len), Some(2), "{tags}");
    let metrics = reqwest::get(format!("http://{gateway}/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("tagward_gateway_requests_total{outcome=\"denied\"} 1"), "{metrics}");
}

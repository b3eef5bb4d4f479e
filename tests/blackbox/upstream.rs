//! Registries as people run them: one that speaks only TLS, with a certificate from a private CA
//! made in the test (the gateway fronts it, the sync reads it, trusting the CA file they are given
//! and nothing they are not), and one that takes only bearer tokens from its token service
//! (distribution's `auth: token`), which the sync follows with its own credentials.

use std::time::Duration;
use tests::gateway::{gateway_config, spawn_gateway};
use tests::registry::{push, OciLayout, Registry, TestCa, TokenService};

#[tokio::test]
async fn the_gateway_and_the_sync_front_a_tls_registry_with_a_private_ca() {
    tests::init_logging();
    let db = tests::fresh_database().await;
    db.project("shop").await;
    db.rule("shop", "matching:**", "matching:v*").await;
    let ca = TestCa::new();
    let registry = Registry::start_tls(&ca).await;
    // By name, so the certificate is checked for `localhost` (SNI) as a real one would be.
    let upstream = format!("https://localhost:{}", registry.address.port());
    let mut config = gateway_config(&db, registry.address);
    config.upstream = upstream.parse().unwrap();
    config.upstream_ca = Some(ca.certificate());
    let gateway = spawn_gateway(config).await;

    let (one, two) = (OciLayout::image_of("one"), OciLayout::image_of("two"));
    let first = push(&one, gateway, "shop/api:v1", false).await;
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let overwrite = push(&two, gateway, "shop/api:v1", false).await;
    let said = String::from_utf8_lossy(&overwrite.stderr).replace("\\\"", "\"");
    assert!(said.contains("denied: tag \"v1\" of \"shop/api\" is immutable"), "{said}");

    // Reads pass through over TLS; the tag still names the first image.
    let client = reqwest::Client::new();
    let head = client
        .head(format!("http://{gateway}/v2/shop/api/manifests/v1"))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    assert_eq!(head.headers()["docker-content-digest"], one.digest.as_str());
    // The delete walk reads the manifest over TLS too.
    let manifest: serde_json::Value = client
        .get(format!("http://{gateway}/v2/shop/api/manifests/{}", one.digest))
        .header("Accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let refused = client.delete(format!("http://{gateway}/v2/shop/api/blobs/{layer}")).send().await.unwrap();
    assert_eq!(refused.status(), 403);

    // A gateway not given the CA does not trust the registry: nothing passes, and it says why.
    let mut config = gateway_config(&db, registry.address);
    config.upstream = upstream.parse().unwrap();
    let untrusting = spawn_gateway(config).await;
    let answer = client.get(format!("http://{untrusting}/v2/")).send().await.unwrap();
    assert_eq!(answer.status(), 502);
    let body = answer.text().await.unwrap();
    assert!(body.contains("certificate"), "{body}");
    let refused = push(&two, untrusting, "shop/api:v2", false).await;
    assert!(!refused.status.success());

    // The sync reads the same registry with the CA file it is given.
    let ca_file = ca.certificate().display().to_string();
    let app = portal_syncing(db, &upstream, &["--registry-ca", &ca_file]).await;
    assert_eq!(completed_pass(&app).await, (None, Some(1)));
    let seen: String =
        sqlx::query_scalar("select digest from registry_tags where repository = 'shop/api' and tag = 'v1'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(seen, one.digest);
}

/// The portal over `db`, syncing from `registry` every second without a rate limit, with `flags`.
async fn portal_syncing(db: tests::TestDb, registry: &str, flags: &[&str]) -> tests::TestApp {
    let url = db.url.clone();
    let mut all = vec!["--registry-url", registry, "--registry-sync-interval", "1", "--registry-sync-rate", "0"];
    all.extend_from_slice(flags);
    tests::spawn_app_with(db, url, &all).await
}

/// Waits (at most 30 s) for a sync pass to complete: its failure, if any, and the tags it found.
async fn completed_pass(app: &tests::TestApp) -> (Option<String>, Option<i64>) {
    let (done, _) = tests::eventually("a sync pass to complete", Duration::from_secs(30), || async {
        let done: Option<(Option<String>, Option<i64>)> =
            sqlx::query_as("select failure, tags from registry_sync where completed_at is not null")
                .fetch_optional(&app.db.pool)
                .await
                .unwrap();
        done.ok_or_else(|| "none completed yet".to_owned())
    })
    .await;
    done
}

#[tokio::test]
async fn the_sync_reads_a_registry_behind_token_auth_with_its_own_credentials() {
    tests::init_logging();
    let db = tests::fresh_database().await;
    db.project("shop").await;
    db.rule("shop", "matching:**", "matching:v*").await;
    let tokens = TokenService::start().await;
    let registry = Registry::start_with_tokens(&tokens).await;
    // Pushed straight to the registry (skopeo follows the token flow itself).
    let image = OciLayout::index_of("behind-tokens");
    let destination = format!("docker://{}/shop/api:v1", registry.address);
    let creds = format!("{}:{}", TokenService::USER, TokenService::PASSWORD);
    let source = image.reference();
    let pushed = tests::registry::skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds,
        &source,
        &destination,
    ])
    .await;
    assert!(pushed.status.success(), "{}", String::from_utf8_lossy(&pushed.stderr));
    let before = tokens.issued.load(std::sync::atomic::Ordering::SeqCst);

    let registry_url = format!("http://{}", registry.address);
    let credentials = ["--registry-username", TokenService::USER, "--registry-password", TokenService::PASSWORD];
    let app = portal_syncing(db, &registry_url, &credentials).await;
    assert_eq!(completed_pass(&app).await, (None, Some(1)));
    // The immutable tag's graph was read too (an index and its two platform images, all pulls).
    let manifests: i64 = sqlx::query_scalar("select count(*) from registry_manifests where repository = 'shop/api'")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(manifests, 3);
    // One token for the catalog and one for the repository, kept and reused: a pass makes more
    // requests than that (catalog, tag list, a HEAD, three manifests).
    let issued = tokens.issued.load(std::sync::atomic::Ordering::SeqCst) - before;
    assert_eq!(issued, 2, "tokens are kept until they expire");
}

//! An immutable tag keeps its whole artifact: through the gateway, nothing it holds (its image's
//! blobs, an index's children at any depth, the referrers attached to it and their blobs) can be
//! deleted, while what only mutable tags hold stays deletable. Real docker-registry 2.8 behind,
//! skopeo and raw HTTP in front.

use serde_json::{json, Value};
use std::net::SocketAddr;
use tests::gateway::{gateway_config, gateway_with, spawn_gateway};
use tests::registry::{
    push, push_image, put_manifest, raw_http, tag_referrers, Fault, FaultyProxy, OciLayout, Registry,
};
use tests::{fresh_database, TestDb};

struct Setup {
    _db: TestDb,
    registry: Registry,
    gateway: SocketAddr,
    rule: i64,
}

/// Project `shop` whose `v*` tags are immutable, a registry, and the gateway in front of it.
async fn setup() -> Setup {
    let (db, rule, registry) = shop_and_registry().await;
    let gateway = gateway_with(&db, &registry, Default::default(), Default::default()).await;
    Setup { _db: db, registry, gateway, rule }
}

/// Project `shop` whose `v*` tags are immutable (that rule's id), and a registry.
async fn shop_and_registry() -> (TestDb, i64, Registry) {
    tests::init_logging();
    let db = fresh_database().await;
    db.project("shop").await;
    let rule = db.rule("shop", "matching:**", "matching:v*").await;
    (db, rule, Registry::start().await)
}

/// `DELETE` of `path` through the gateway: status and the OCI error's message (if any).
async fn delete(gateway: SocketAddr, path: &str) -> (u16, String) {
    let response = reqwest::Client::new().delete(format!("http://{gateway}{path}")).send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body["errors"][0]["message"].as_str().unwrap_or_default().to_owned())
}

fn layer(seed: &str) -> Vec<u8> {
    format!("layer {seed} ").repeat(64).into_bytes()
}

#[tokio::test]
async fn an_immutable_image_keeps_its_blobs_and_a_mutable_one_does_not() {
    let Setup { _db: db, registry, gateway, rule } = setup().await;
    let shared = layer("shared");
    let v1 = push_image(gateway, "shop/app", Some("v1"), "one", &[&layer("one"), &shared], None).await;
    let latest = push_image(gateway, "shop/app", Some("latest"), "two", &[&layer("two"), &shared], None).await;

    let (status, message) = delete(gateway, &format!("/v2/shop/app/blobs/{}", v1.layers[0])).await;
    assert_eq!(status, 403, "{message}");
    assert_eq!(
        message,
        format!(
            "blob {} of \"shop/app\" is held by immutable tag \"v1\" (rule {rule}: repositories matching **, \
             tags matching v*) as layer of {}; it cannot be deleted",
            v1.layers[0], v1.manifest
        )
    );
    let (status, message) = delete(gateway, &format!("/v2/shop/app/blobs/{}", v1.config)).await;
    assert_eq!(status, 403);
    assert!(message.contains(&format!("as config of {};", v1.manifest)), "{message}");
    // A blob an immutable and a mutable image share is held.
    let (status, message) = delete(gateway, &format!("/v2/shop/app/blobs/{}", latest.layers[1])).await;
    assert_eq!(status, 403, "{message}");
    for blob in [&v1.layers[0], &v1.config, &latest.layers[1]] {
        assert!(registry.has_blob("shop/app", blob).await, "{blob} is still there");
    }

    // Every spelling the registry reads as the same blob delete is refused the same way.
    let digest = &v1.layers[0];
    for path in [
        format!("/v2/shop%2Fapp/blobs/{digest}"),
        format!("/v2/shop/app/%62lobs/{}", digest.replace(':', "%3A")),
        format!("/v2/shop/x/../app/blobs/{digest}"),
        format!("//v2//shop/./app/blobs/{digest}"),
    ] {
        let request = format!("DELETE {path} HTTP/1.1\r\nHost: {gateway}\r\nConnection: close\r\n\r\n");
        assert_eq!(raw_http(gateway, request.as_bytes()).await, [403], "{path}");
    }
    let (status, message) = delete(gateway, "/v2/shop/app/blobs/sha256:zz").await;
    assert_eq!(status, 400, "a blob delete that does not parse is refused: {message}");
    assert!(registry.has_blob("shop/app", digest).await);

    // What only a mutable tag holds can go: its own layer and config, then its manifest.
    for blob in [&latest.layers[0], &latest.config] {
        let (status, message) = delete(gateway, &format!("/v2/shop/app/blobs/{blob}")).await;
        assert_eq!(status, 202, "{blob}: {message}");
        assert!(!registry.has_blob("shop/app", blob).await);
    }
    let (status, message) = delete(gateway, &format!("/v2/shop/app/manifests/{}", latest.manifest)).await;
    assert_eq!(status, 202, "{message}");
    // Now nothing but v1 holds the shared layer: still held.
    let (status, _) = delete(gateway, &format!("/v2/shop/app/blobs/{}", v1.layers[1])).await;
    assert_eq!(status, 403);

    // What the gateway read (and the immutable push it let through) is in the inventory, for the Tags tab.
    let recorded: Vec<(String, i64)> = sqlx::query_as(
        "select digest, jsonb_array_length(blobs)::bigint from registry_manifests where repository = 'shop/app' order by 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(recorded.contains(&(v1.manifest.clone(), 3)), "{recorded:?}");
}

#[tokio::test]
async fn a_multi_platform_index_keeps_its_children_and_their_blobs() {
    let Setup { registry, gateway, rule, .. } = setup().await;
    let pushed = push(&OciLayout::index_of("multi"), gateway, "shop/multi:v2", true).await;
    assert!(pushed.status.success(), "skopeo copy --all: {}", String::from_utf8_lossy(&pushed.stderr));
    let index_digest = registry.digest("shop/multi", "v2").await.unwrap();
    let index = registry.manifest("shop/multi", "v2").await.unwrap();
    let children: Vec<String> =
        index["manifests"].as_array().unwrap().iter().map(|m| m["digest"].as_str().unwrap().to_owned()).collect();
    assert_eq!(children.len(), 2, "{index}");

    for child in &children {
        let (status, message) = delete(gateway, &format!("/v2/shop/multi/manifests/{child}")).await;
        assert_eq!(status, 403, "{message}");
        assert_eq!(
            message,
            format!(
                "manifest {child} of \"shop/multi\" is held by immutable tag \"v2\" (rule {rule}: repositories \
                 matching **, tags matching v*) as child of {index_digest}; it cannot be deleted"
            )
        );
        let image = registry.manifest("shop/multi", child).await.unwrap();
        let layer = image["layers"][0]["digest"].as_str().unwrap();
        let (status, message) = delete(gateway, &format!("/v2/shop/multi/blobs/{layer}")).await;
        assert_eq!(status, 403, "{message}");
        assert!(message.contains(&format!("as layer of {index_digest};")), "{message}");
        assert!(registry.has_manifest("shop/multi", child).await && registry.has_blob("shop/multi", layer).await);
    }

    // An index of indexes: the inner one is tagged only `inner` (mutable), the outer one `v3`.
    let pushed = push(&OciLayout::index_of("deep"), gateway, "shop/multi:inner", true).await;
    assert!(pushed.status.success(), "{}", String::from_utf8_lossy(&pushed.stderr));
    let inner = registry.digest("shop/multi", "inner").await.unwrap();
    let inner_index = registry.manifest("shop/multi", "inner").await.unwrap();
    let grandchild = inner_index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    let outer = json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.docker.distribution.manifest.list.v2+json", "digest": inner,
                       "size": inner_index.to_string().len()}],
    });
    let (status, body) = put_manifest(gateway, "shop/multi", "v3", &outer).await;
    assert_eq!(status, 201, "{body}");
    let outer_digest = registry.digest("shop/multi", "v3").await.unwrap();
    let (status, message) = delete(gateway, &format!("/v2/shop/multi/manifests/{grandchild}")).await;
    assert_eq!(status, 403, "{message}");
    assert!(
        message.contains("immutable tag \"v3\"") && message.contains(&format!("child of {outer_digest}")),
        "{message}"
    );
    let (status, message) = delete(gateway, &format!("/v2/shop/multi/manifests/{inner}")).await;
    assert_eq!(status, 403, "{message}");
}

#[tokio::test]
async fn signatures_attached_to_an_immutable_tag_are_kept() {
    let Setup { registry, gateway, .. } = setup().await;
    let v1 = push_image(gateway, "shop/app", Some("v1"), "release", &[&layer("release")], None).await;
    let signature = push_image(gateway, "shop/app", None, "sig", &[&layer("signature")], Some(&v1.manifest)).await;
    // distribution 2.8 has no referrers API: the referrers tag schema says what is attached.
    tag_referrers(gateway, "shop/app", &v1.manifest, &[&signature.manifest]).await;

    // The signature manifest: its own `subject` is v1's image.
    let (status, message) = delete(gateway, &format!("/v2/shop/app/manifests/{}", signature.manifest)).await;
    assert_eq!(status, 403, "{message}");
    assert!(message.contains("held by immutable tag \"v1\""), "{message}");
    assert!(message.contains(&format!("as signature/referrer of {};", v1.manifest)), "{message}");
    // Its blobs: found through the referrers tag.
    for blob in [&signature.layers[0], &signature.config] {
        let (status, message) = delete(gateway, &format!("/v2/shop/app/blobs/{blob}")).await;
        assert_eq!(status, 403, "{message}");
        assert!(message.contains(&format!("as signature/referrer of {};", v1.manifest)), "{message}");
        assert!(registry.has_blob("shop/app", blob).await);
    }
    assert!(registry.has_manifest("shop/app", &signature.manifest).await);

    // A signature of a mutable image is the owner's to remove.
    let dev = push_image(gateway, "shop/app", Some("dev"), "dev", &[&layer("dev")], None).await;
    let dev_signature =
        push_image(gateway, "shop/app", None, "dev-sig", &[&layer("dev-sig")], Some(&dev.manifest)).await;
    tag_referrers(gateway, "shop/app", &dev.manifest, &[&dev_signature.manifest]).await;
    let (status, message) = delete(gateway, &format!("/v2/shop/app/blobs/{}", dev_signature.layers[0])).await;
    assert_eq!(status, 202, "{message}");
    let (status, message) = delete(gateway, &format!("/v2/shop/app/manifests/{}", dev_signature.manifest)).await;
    assert_eq!(status, 202, "{message}");
}

#[tokio::test]
async fn a_registry_that_fails_or_lies_mid_walk_deletes_nothing() {
    let (db, _, registry) = shop_and_registry().await;
    db.project("open").await;
    let proxy = FaultyProxy::start(registry.address).await;
    let gateway = spawn_gateway(gateway_config(&db, proxy.address)).await;
    // Pushed straight to the registry: neither the gateway's cache nor the inventory knows them.
    let v1 = push_image(registry.address, "shop/app", Some("v1"), "one", &[&layer("one")], None).await;
    let scratch = push_image(registry.address, "shop/app", Some("scratch"), "two", &[&layer("two")], None).await;

    proxy.set(Fault::Fail);
    let (status, message) = delete(gateway, &format!("/v2/shop/app/blobs/{}", scratch.layers[0])).await;
    assert_eq!(status, 502, "{message}");
    assert!(registry.has_blob("shop/app", &scratch.layers[0]).await, "nothing is deleted");

    proxy.set(Fault::Corrupt);
    let (status, message) = delete(gateway, &format!("/v2/shop/app/blobs/{}", scratch.layers[0])).await;
    assert_eq!(status, 502, "{message}");
    assert!(message.contains(&format!("bytes for {}", v1.manifest)) && message.contains("not believed"), "{message}");
    assert!(registry.has_blob("shop/app", &scratch.layers[0]).await, "nothing is deleted");

    // A project without rules is not looked at at all: its deletes pass whatever the registry does.
    let open = push_image(gateway, "open/app", Some("v1"), "open", &[&layer("open")], None).await;
    let (status, message) = delete(gateway, &format!("/v2/open/app/blobs/{}", open.layers[0])).await;
    assert_eq!(status, 202, "{message}");

    // Once the registry answers truly, the walk reads the manifest (not cached while it lied).
    proxy.set(Fault::None);
    let (status, message) = delete(gateway, &format!("/v2/shop/app/blobs/{}", scratch.layers[0])).await;
    assert_eq!(status, 202, "{message}");
    let (status, _) = delete(gateway, &format!("/v2/shop/app/blobs/{}", v1.layers[0])).await;
    assert_eq!(status, 403);

    // A second gateway starts cold but reads what the first one recorded, not the registry's
    // manifests (which now fail): what a digest references never changes.
    let second = spawn_gateway(gateway_config(&db, proxy.address)).await;
    proxy.set(Fault::Fail);
    let (status, message) = delete(second, &format!("/v2/shop/app/blobs/{}", v1.layers[0])).await;
    assert_eq!(status, 403, "{message}");
}

#[tokio::test]
async fn a_walk_past_its_bound_deletes_nothing() {
    let (db, _, registry) = shop_and_registry().await;
    let free = gateway_with(&db, &registry, Default::default(), Default::default()).await;
    for tag in ["v1", "v2", "v3"] {
        push_image(free, "shop/app", Some(tag), tag, &[&layer(tag)], None).await;
    }
    let scratch = push_image(free, "shop/app", Some("scratch"), "scratch", &[&layer("scratch")], None).await;
    let mut config = gateway_config(&db, registry.address);
    config.held.max_reads = 3;
    let bounded = spawn_gateway(config).await;
    let (status, message) = delete(bounded, &format!("/v2/shop/app/blobs/{}", scratch.layers[0])).await;
    assert_eq!(status, 503, "{message}");
    assert!(message.contains("more than 3 registry reads") && message.ends_with("so nothing is changed"), "{message}");
    assert!(registry.has_blob("shop/app", &scratch.layers[0]).await);
}

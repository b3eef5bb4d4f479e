//! Signing keeps working on immutable releases: attachment lists (the referrers tag schema's
//! `sha256-<hex>`, cosign's `.sig` / `.att`) only grow while a rule covers them or an immutable tag
//! holds their subject, conditional PUTs are honoured, and racing signers lose nothing. Real
//! docker-registry 2.8 (no referrers API) behind the gateway; npm's `@sigstore/oci` and raw HTTP
//! in front.

use serde_json::{json, Value};
use std::net::SocketAddr;
use tests::gateway::{gateway_config, gateway_for, spawn_gateway};
use tests::registry::{manifest_digest, push_image, upload_blob, Fault, FaultyProxy, PushedImage, Registry};
use tests::{fresh_database, TestDb};

/// Project `shop` with one rule (`tags` as `action:patterns`), a registry and the gateway.
async fn setup(tags: &str) -> (TestDb, i64, Registry, SocketAddr) {
    tests::init_logging();
    let db = fresh_database().await;
    db.project("shop").await;
    let rule = db.rule("shop", "matching:**", tags).await;
    let registry = Registry::start().await;
    let gateway = gateway_for(&db, &registry).await;
    (db, rule, registry, gateway)
}

fn layer(seed: &str) -> Vec<u8> {
    format!("layer {seed} ").repeat(32).into_bytes()
}

/// An image tagged `tag` and `count` signatures of it (manifests whose `subject` it is, by digest).
async fn image_and_signatures(gateway: SocketAddr, tag: &str, count: usize) -> (PushedImage, Vec<PushedImage>) {
    let image = push_image(gateway, "shop/app", Some(tag), tag, &[&layer(tag)], None).await;
    let mut signatures = Vec::new();
    for i in 0..count {
        let seed = format!("{tag} signature {i}");
        signatures.push(push_image(gateway, "shop/app", None, &seed, &[&layer(&seed)], Some(&image.manifest)).await);
    }
    (image, signatures)
}

fn list_tag(subject: &str) -> String {
    subject.replace(':', "-")
}

/// A referrers list (image index) of `entries`.
fn referrers(entries: &[&str]) -> Value {
    let manifests: Vec<Value> = entries
        .iter()
        .map(|digest| {
            json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": 1,
                              "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json"})
        })
        .collect();
    json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests})
}

/// PUTs `manifest` to `reference` through `gateway`, with `If-Match` if given: status, the OCI
/// error's code and message (if any).
async fn put(gateway: SocketAddr, reference: &str, manifest: &Value, if_match: Option<&str>) -> (u16, String, String) {
    let media_type = manifest["mediaType"].as_str().unwrap();
    let mut request = reqwest::Client::new()
        .put(format!("http://{gateway}/v2/shop/app/manifests/{reference}"))
        .header("Content-Type", media_type)
        .body(manifest.to_string());
    if let Some(etag) = if_match {
        request = request.header("If-Match", etag);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let error = &body["errors"][0];
    (
        status,
        error["code"].as_str().unwrap_or_default().to_owned(),
        error["message"].as_str().unwrap_or_default().to_owned(),
    )
}

async fn delete(gateway: SocketAddr, path: &str) -> (u16, String) {
    let response = reqwest::Client::new().delete(format!("http://{gateway}{path}")).send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body["errors"][0]["message"].as_str().unwrap_or_default().to_owned())
}

/// The list's entries as the registry holds them, and its ETag as the gateway passes it on.
async fn read_list(gateway: SocketAddr, tag: &str) -> (Vec<String>, String) {
    let response = reqwest::Client::new()
        .get(format!("http://{gateway}/v2/shop/app/manifests/{tag}"))
        .header("Accept", "application/vnd.oci.image.index.v1+json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{tag}");
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    let index: Value = response.json().await.unwrap();
    let entries =
        index["manifests"].as_array().unwrap().iter().map(|m| m["digest"].as_str().unwrap().to_owned()).collect();
    (entries, etag)
}

/// Runs tests/signer/attach.mjs: npm's `@sigstore/oci` attaching `bundle` to `digest`.
async fn attach_with_sigstore_oci(gateway: SocketAddr, digest: &str, bundle: &str) -> std::process::Output {
    let modules = std::env::var("TAGWARD_SIGSTORE_OCI_MODULES")
        .unwrap_or_else(|_| panic!("TAGWARD_SIGSTORE_OCI_MODULES is not set; run the tests with `scripts/dev test`"));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/signer/attach.mjs");
    tokio::process::Command::new("node")
        .args([script, &gateway.to_string(), "shop/app", digest, bundle])
        .env("SIGSTORE_OCI_MODULES", modules)
        .output()
        .await
        .expect("run node with tests/signer/attach.mjs")
}

#[tokio::test]
async fn a_real_signer_attaches_bundle_after_bundle_to_a_release_under_make_all_tags_immutable() {
    let (_db, rule, _registry, gateway) = setup("matching:**").await;
    let release = push_image(gateway, "shop/app", Some("v1"), "release", &[&layer("release")], None).await;

    let mut attached = Vec::new();
    for bundle in [r#"{"provenance": 1}"#, r#"{"sbom": 2}"#] {
        let output = attach_with_sigstore_oci(gateway, &release.manifest, bundle).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "@sigstore/oci failed: {stderr}");
        let descriptor: Value = serde_json::from_slice(&output.stdout).unwrap();
        attached.push(descriptor["digest"].as_str().unwrap().to_owned());
    }
    let tag = list_tag(&release.manifest);
    let (entries, _) = read_list(gateway, &tag).await;
    assert_eq!(entries, attached, "both bundles are listed, in the order they were attached");

    // The list is not frozen, but it only grows: dropping the first bundle is refused, by name.
    let (status, code, message) = put(gateway, &tag, &referrers(&[&attached[1]]), None).await;
    assert_eq!((status, code.as_str()), (403, "DENIED"), "{message}");
    assert_eq!(
        message,
        format!(
            "attachment list \"{tag}\" of \"shop/app\" only grows (rule {rule}: repositories matching **, tags \
             matching **): this push drops {}; push a list that keeps them",
            attached[0]
        )
    );
    let (status, message) = delete(gateway, &format!("/v2/shop/app/manifests/{tag}")).await;
    assert_eq!(status, 403, "{message}");
    assert_eq!(read_list(gateway, &tag).await.0, attached, "nothing was detached");
}

/// A cosign list: one image whose layers are the signatures (or attestations).
async fn cosign_list(gateway: SocketAddr, config_type: &str, layers: &[&[u8]]) -> Value {
    let config = upload_blob(gateway, "shop/app", b"{}").await;
    let mut descriptors = Vec::new();
    for bytes in layers {
        let digest = upload_blob(gateway, "shop/app", bytes).await;
        descriptors.push(json!({"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": digest, "size": bytes.len()}));
    }
    json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
           "config": {"mediaType": config_type, "digest": config, "size": 2}, "layers": descriptors})
}

#[tokio::test]
async fn cosign_signature_and_attestation_tags_grow_and_never_shrink() {
    let (_db, _rule, _registry, gateway) = setup("matching:**").await;
    let release = push_image(gateway, "shop/app", Some("v1"), "release", &[&layer("release")], None).await;
    let config_type = "application/vnd.oci.image.config.v1+json";
    for suffix in [".sig", ".att"] {
        let tag = format!("{}{suffix}", list_tag(&release.manifest));
        let (one, two) = (layer(&format!("{suffix} one")), layer(&format!("{suffix} two")));
        let first = cosign_list(gateway, config_type, &[&one]).await;
        assert_eq!(put(gateway, &tag, &first, None).await.0, 201, "the first signature of {tag}");
        let second = cosign_list(gateway, config_type, &[&one, &two]).await;
        assert_eq!(put(gateway, &tag, &second, None).await.0, 201, "a second signature is appended");
        assert_eq!(put(gateway, &tag, &second, None).await.0, 201, "an identical re-push");

        let only_two = cosign_list(gateway, config_type, &[&two]).await;
        let (status, _, message) = put(gateway, &tag, &only_two, None).await;
        assert_eq!(status, 403, "{message}");
        let dropped = first["layers"][0]["digest"].as_str().unwrap();
        assert!(message.ends_with(&format!("this push drops {dropped}; push a list that keeps them")), "{message}");
        let retyped = cosign_list(gateway, "application/vnd.dev.other+json", &[&one, &two]).await;
        let (status, _, message) = put(gateway, &tag, &retyped, None).await;
        assert_eq!(status, 403, "{message}");
        assert!(message.contains("changes what its layers are"), "{message}");
        // A list is pushed as a list of its kind, or not at all.
        let (status, code, message) = put(gateway, &tag, &referrers(&[]), None).await;
        assert_eq!((status, code.as_str()), (400, "MANIFEST_INVALID"), "{message}");
        assert!(message.contains("is an attachment list (cosign"), "{message}");
    }
    let (status, code, _) =
        put(gateway, &list_tag(&release.manifest), &cosign_list(gateway, config_type, &[]).await, None).await;
    assert_eq!((status, code.as_str()), (400, "MANIFEST_INVALID"), "an image is no referrers list");
}

#[tokio::test]
async fn under_a_narrower_rule_the_list_of_an_immutable_release_only_grows_and_its_signatures_stay() {
    let (_db, rule, registry, gateway) = setup("matching:v*").await;
    let (release, signatures) = image_and_signatures(gateway, "v1", 2).await;
    let tag = list_tag(&release.manifest);
    let (first, second) = (&signatures[0].manifest, &signatures[1].manifest);
    assert_eq!(put(gateway, &tag, &referrers(&[first]), None).await.0, 201);
    assert_eq!(put(gateway, &tag, &referrers(&[first, second]), None).await.0, 201, "appended");

    let (status, _, message) = put(gateway, &tag, &referrers(&[second]), None).await;
    assert_eq!(status, 403, "{message}");
    assert_eq!(
        message,
        format!(
            "attachment list \"{tag}\" of \"shop/app\" only grows (its subject {} is held by immutable tag \"v1\" \
             (rule {rule}: repositories matching **, tags matching v*)): this push drops {first}; push a list that \
             keeps them",
            release.manifest
        )
    );
    // The signature it would have detached, and its blobs, stay held; so do the list and its manifest.
    for blob in [&signatures[0].layers[0], &signatures[0].config] {
        let (status, message) = delete(gateway, &format!("/v2/shop/app/blobs/{blob}")).await;
        assert_eq!(status, 403, "{message}");
        assert!(registry.has_blob("shop/app", blob).await);
    }
    let (status, message) = delete(gateway, &format!("/v2/shop/app/manifests/{tag}")).await;
    assert_eq!(status, 403, "{message}");
    assert!(message.ends_with("; it cannot be deleted"), "{message}");
    let list_digest = registry.digest("shop/app", &tag).await.unwrap();
    let (status, message) = delete(gateway, &format!("/v2/shop/app/manifests/{list_digest}")).await;
    assert_eq!(status, 403, "deleting the list's manifest by digest: {message}");
    assert_eq!(read_list(gateway, &tag).await.0, [first.clone(), second.clone()]);

    // cosign's `.sig` of the release: its signature layers are held too.
    let signature = layer("cosign signature");
    let sig = cosign_list(gateway, "application/vnd.oci.image.config.v1+json", &[&signature]).await;
    assert_eq!(put(gateway, &format!("{tag}.sig"), &sig, None).await.0, 201);
    let signature_blob = sig["layers"][0]["digest"].as_str().unwrap();
    let (status, message) = delete(gateway, &format!("/v2/shop/app/blobs/{signature_blob}")).await;
    assert_eq!(status, 403, "{message}");
    assert!(message.contains("held by immutable tag \"v1\""), "{message}");

    // The list of a mutable image is an ordinary tag.
    let (latest, latest_signatures) = image_and_signatures(gateway, "latest", 2).await;
    let latest_tag = list_tag(&latest.manifest);
    let (a, b) = (&latest_signatures[0].manifest, &latest_signatures[1].manifest);
    assert_eq!(put(gateway, &latest_tag, &referrers(&[a, b]), None).await.0, 201);
    assert_eq!(put(gateway, &latest_tag, &referrers(&[b]), None).await.0, 201, "nothing holds its subject");
    let (status, message) = delete(gateway, &format!("/v2/shop/app/blobs/{}", latest_signatures[0].layers[0])).await;
    assert_eq!(status, 202, "{message}");
}

#[tokio::test]
async fn racing_signers_lose_nothing_with_or_without_if_match() {
    let (_db, _rule, _registry, gateway) = setup("matching:**").await;
    let (release, signatures) = image_and_signatures(gateway, "v1", 5).await;
    let tag = list_tag(&release.manifest);
    let digests: Vec<&str> = signatures.iter().map(|signature| signature.manifest.as_str()).collect();
    assert_eq!(put(gateway, &tag, &referrers(&digests[..1]), None).await.0, 201);

    // Both read the same list and append their own entry; with If-Match, the second is told it changed.
    let (read, etag) = read_list(gateway, &tag).await;
    assert_eq!(read, [digests[0]]);
    let (b, c) = (referrers(&[digests[0], digests[1]]), referrers(&[digests[0], digests[2]]));
    let (one, two) = tokio::join!(put(gateway, &tag, &b, Some(&etag)), put(gateway, &tag, &c, Some(&etag)));
    let mut statuses = [one.0, two.0];
    statuses.sort();
    assert_eq!(statuses, [201, 412], "{one:?} {two:?}");
    let loser = if one.0 == 412 { &one } else { &two };
    assert_eq!(loser.1, "PRECONDITION_FAILED");
    assert!(loser.2.contains("it changed since it was read"), "{loser:?}");
    let (mut entries, etag) = read_list(gateway, &tag).await;
    let missing = if entries.iter().any(|entry| entry == digests[1]) { digests[2] } else { digests[1] };
    entries.push(missing.to_owned());
    let retried: Vec<&str> = entries.iter().map(String::as_str).collect();
    assert_eq!(put(gateway, &tag, &referrers(&retried), Some(&etag)).await.0, 201, "the retry on the fresh list");

    // Without If-Match, the second PUT would drop the first one's entry: refused as a drop.
    let base: Vec<&str> = retried.clone();
    let with = |extra: &str| {
        let mut list = base.clone();
        list.push(extra);
        referrers(&list)
    };
    let (d, e) = (with(digests[3]), with(digests[4]));
    let (one, two) = tokio::join!(put(gateway, &tag, &d, None), put(gateway, &tag, &e, None));
    let mut statuses = [one.0, two.0];
    statuses.sort();
    assert_eq!(statuses, [201, 403], "{one:?} {two:?}");
    let (entries, _) = read_list(gateway, &tag).await;
    assert_eq!(entries.len(), 4, "{entries:?}");

    // If-None-Match: * creates a list only where there is none.
    let response = reqwest::Client::new()
        .put(format!("http://{gateway}/v2/shop/app/manifests/{}", list_tag(&release.manifest)))
        .header("Content-Type", "application/vnd.oci.image.index.v1+json")
        .header("If-None-Match", "*")
        .body(referrers(&retried).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 412);
}

#[tokio::test]
async fn conditional_pushes_are_honoured_for_every_tag() {
    let (_db, _rule, registry, gateway) = setup("matching:v*").await;
    let one = push_image(gateway, "shop/app", Some("latest"), "one", &[&layer("one")], None).await;
    let stale = format!("\"{}\"", one.manifest);
    let two = push_image(gateway, "shop/app", Some("latest"), "two", &[&layer("two")], None).await;
    let manifest = registry.manifest("shop/app", &one.manifest).await.unwrap();
    let (status, code, message) = put(gateway, "latest", &manifest, Some(&stale)).await;
    assert_eq!((status, code.as_str()), (412, "PRECONDITION_FAILED"), "{message}");
    assert!(message.contains(&format!("points at {} now", two.manifest)), "{message}");
    assert_eq!(registry.digest("shop/app", "latest").await.unwrap(), two.manifest, "nothing changed");
    let (status, _, message) = put(gateway, "latest", &manifest, Some(&format!("\"{}\"", two.manifest))).await;
    assert_eq!(status, 201, "{message}");
    // In a project without rules too.
    let (status, _, _) = {
        let response = reqwest::Client::new()
            .put(format!("http://{gateway}/v2/other/app/manifests/latest"))
            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            .header("If-Match", stale.as_str())
            .body(manifest.to_string())
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), String::new(), String::new())
    };
    assert_eq!(status, 412, "a tag that does not exist matches no If-Match");
}

#[tokio::test]
async fn a_new_entry_must_be_a_referrer_of_the_lists_subject() {
    let (_db, _rule, _registry, gateway) = setup("matching:**").await;
    let (v1, v1_signatures) = image_and_signatures(gateway, "v1", 1).await;
    let (v2, v2_signatures) = image_and_signatures(gateway, "v2", 1).await;
    let tag = list_tag(&v1.manifest);
    let own = v1_signatures[0].manifest.as_str();

    let cases = [
        (v2_signatures[0].manifest.clone(), format!("its subject is {}", v2.manifest)),
        (v2.manifest.clone(), "it has no subject".to_owned()),
        (
            format!("sha256:{}", "0".repeat(64)),
            "\"shop/app\" has no such manifest (push it before listing it)".to_owned(),
        ),
    ];
    for (foreign, why) in &cases {
        let (status, _, message) = put(gateway, &tag, &referrers(&[own, foreign]), None).await;
        assert_eq!(status, 403, "{message}");
        assert!(
            message.ends_with(&format!("the new entry {foreign} is not a referrer of the list's subject: {why}")),
            "{message}"
        );
    }
    assert_eq!(put(gateway, &tag, &referrers(&[own]), None).await.0, 201, "its own signature");

    // The same through `PUT /v2/<name>/manifests/<digest>?tag=`.
    let appended = referrers(&[own, &v2_signatures[0].manifest]);
    let by_digest = format!("{}?tag={tag}", manifest_digest(&appended));
    let (status, _, message) = put(gateway, &by_digest, &appended, None).await;
    assert_eq!(status, 403, "{message}");
    let dropped = referrers(&[]);
    let (status, _, message) = put(gateway, &format!("{}?tag={tag}", manifest_digest(&dropped)), &dropped, None).await;
    assert_eq!(status, 403, "{message}");
    assert!(message.contains(&format!("this push drops {own}")), "{message}");
}

#[tokio::test]
async fn a_registry_failing_while_the_list_is_read_changes_nothing() {
    tests::init_logging();
    let db = fresh_database().await;
    db.project("shop").await;
    db.rule("shop", "matching:**", "matching:**").await;
    let registry = Registry::start().await;
    let proxy = FaultyProxy::start(registry.address).await;
    let gateway = spawn_gateway(gateway_config(&db, proxy.address)).await;
    let (release, signatures) = image_and_signatures(gateway, "v1", 2).await;
    let tag = list_tag(&release.manifest);
    let (first, second) = (&signatures[0].manifest, &signatures[1].manifest);
    assert_eq!(put(gateway, &tag, &referrers(&[first]), None).await.0, 201);

    proxy.set(Fault::FailLists);
    let (status, code, message) = put(gateway, &tag, &referrers(&[first, second]), None).await;
    assert_eq!((status, code.as_str()), (502, "UNKNOWN"), "{message}");
    proxy.set(Fault::None);
    assert_eq!(registry.manifest("shop/app", &tag).await.unwrap(), referrers(&[first]), "nothing changed");
    assert_eq!(put(gateway, &tag, &referrers(&[first, second]), None).await.0, 201, "once it answers again");
}

/// The decision API decides a list push with the same engine: the registry sends the entries of
/// the current and the pushed list, and the tags pointing at the subject.
#[tokio::test]
async fn the_decision_api_says_what_the_gateway_says_of_a_list_push() {
    use tests::fixtures::{CHECK, DIGEST_A as A, DIGEST_B as B};
    let app = tests::spawn_app().await;
    app.db.project("shop").await;
    let rule = app.db.rule("shop", "matching:**", "matching:v*").await;
    let token = app.db.token("registry").await;
    let subject = format!("sha256:{}", "c".repeat(64));
    let (x, y) = (format!("sha256:{}", "1".repeat(64)), format!("sha256:{}", "2".repeat(64)));
    let tag = list_tag(&subject);
    let push = |current_entries: Value, entries: Value, subject_tags: Value| {
        json!({"operation": "push", "repository": "shop/app", "tag": tag, "digest": B, "current_digest": A,
               "current_entries": current_entries, "entries": entries, "subject_tags": subject_tags})
    };
    let drop = push(json!([x, y]), json!([y]), json!(["latest", "v1"]));
    // The rule and the token reach the server's caches by notification, a moment after they are committed.
    let started = std::time::Instant::now();
    let verdict = loop {
        let (status, verdict) = app.check(&token, CHECK, &drop).await;
        if (status == 200 && verdict["allowed"] == false) || started.elapsed().as_secs() >= 5 {
            assert_eq!(status, 200, "{verdict}");
            break verdict;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(verdict["allowed"], false, "{verdict}");
    assert_eq!(
        verdict["message"],
        format!(
            "attachment list \"{tag}\" of \"shop/app\" only grows (its subject {subject} is held by immutable tag \
             \"v1\" (rule {rule}: repositories matching **, tags matching v*)): this push drops {x}; push a list \
             that keeps them"
        )
    );
    assert_eq!(verdict["immutable_tags"], json!(["v1"]));

    let (_, append) = app.check(&token, CHECK, &push(json!([x]), json!([x, y]), json!(["v1"]))).await;
    assert_eq!(append["allowed"], true, "{append}");
    assert!(append["message"].as_str().unwrap().contains("keeps every entry and adds 1"), "{append}");
    let (_, first) = app.check(&token, CHECK, &push(Value::Null, json!([x]), json!(["v1"]))).await;
    assert_eq!(first["allowed"], true, "{first}");
    let (_, mutable) = app.check(&token, CHECK, &push(json!([x, y]), json!([y]), json!(["latest"]))).await;
    assert_eq!(mutable["allowed"], true, "nothing immutable holds the subject: {mutable}");
    let unknown = json!({"operation": "push", "repository": "shop/app", "tag": tag, "digest": B, "current_digest": A,
                         "subject_tags": ["v1"]});
    let (_, unknown) = app.check(&token, CHECK, &unknown).await;
    assert_eq!(unknown["allowed"], false, "without the entries a change cannot be told from a rewrite: {unknown}");

    let delete = json!({"operation": "delete_tag", "repository": "shop/app", "tag": tag, "subject_tags": ["v1"]});
    let (_, deleted) = app.check(&token, CHECK, &delete).await;
    assert_eq!(deleted["allowed"], false, "{deleted}");
    let bad = push(json!([x]), json!(["sha256:nope"]), json!([]));
    let (status, error) = app.check(&token, CHECK, &bad).await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["errors"][0]["detail"]["field"], "entries[0]", "{error}");
}

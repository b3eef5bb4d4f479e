//! The OpenAPI document against the server it describes: schemathesis (installed by the test
//! command) generates requests from `GET /api/v1/openapi.json` — valid ones, which must be
//! accepted, and invalid ones, which must be refused in the API's own error format — runs every
//! check and phase (examples, coverage, fuzzing, stateful through the document's links) with a
//! fixed seed, and fails on any mismatch or server error.

use std::process::Stdio;
use std::time::Instant;

/// The `st` executable `scripts/dev test` installs (`TAGWARD_SCHEMATHESIS`).
fn schemathesis() -> std::path::PathBuf {
    std::env::var_os("TAGWARD_SCHEMATHESIS")
        .map(Into::into)
        .unwrap_or_else(|| panic!("TAGWARD_SCHEMATHESIS is not set; run the tests with `scripts/dev test`"))
}

#[tokio::test]
async fn the_openapi_document_describes_what_the_server_does() {
    let db = tests::fresh_database().await;
    db.project("shop").await;
    db.rule("shop", "matching:**", "matching:v*").await;
    let grant = app::account::TokenGrant::parse(&["decisions", "rules:write", "audit:read"], &[]).unwrap();
    let token = db.token_with("contract", &grant).await;
    let url = db.url.clone();
    // The checks for ignored authentication send wrong credentials again and again; the throttle
    // would rightly answer 429 after five, which is not what they test.
    let app = tests::spawn_app_with(db, url, &["--login-attempts-per-minute", "100000"]).await;
    // The token reaches the server's cache by notification, a moment after it is committed.
    let client = reqwest::Client::new();
    tests::until("the token to reach the server", std::time::Duration::from_secs(5), || async {
        client.get(app.url("/api/v2.0/projects")).bearer_auth(&token).send().await.unwrap().status() != 401
    })
    .await;

    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/contract/schemathesis.toml");
    let started = Instant::now();
    let output = tokio::process::Command::new(schemathesis())
        .args(["--no-color", "--config-file", config, "run", &app.url("/api/v1/openapi.json")])
        .args(["--checks", "all", "--phases", "examples,coverage,fuzzing,stateful"])
        // One worker: with two, hypothesis parses lambda sources on two threads at once, which
        // CPython 3.11's ast module does not survive ("AST constructor recursion depth mismatch").
        .args(["--seed", "1", "--max-examples", "80", "--workers", "1"])
        .env("TAGWARD_CONTRACT_TOKEN", &token)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run schemathesis");
    let report = String::from_utf8_lossy(&output.stdout);
    let cases = report.lines().find(|line| line.contains(" generated, ")).unwrap_or_default();
    println!("schemathesis: {} ({:.1} s)", cases.trim(), started.elapsed().as_secs_f64());
    assert!(
        output.status.success(),
        "schemathesis found contract violations:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("passed"), "no test case ran:\n{report}");
}

//! A real OpenID Connect provider for the tests (npm's `oidc-provider`, run by node from
//! `tests/oidc/provider.mjs`), with the test's users and groups, and a portal that signs in there.

use crate::registry::free_port;
use crate::{fresh_database, spawn_app_at, TestApp};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The client tagward is registered under at the test provider.
pub const CLIENT_ID: &str = "tagward";
const CLIENT_SECRET: &str = "test-client-secret";
/// What the login page calls the test provider.
pub const PROVIDER_NAME: &str = "Test IdP";

/// The provider process: restartable on the same port (a restart makes a new signing key).
pub struct TestProvider {
    pub port: u16,
    portal_port: u16,
    /// The users and their groups (JSON), removed on drop.
    accounts: PathBuf,
    process: Option<tokio::process::Child>,
    /// oidc-provider's default: the profile and groups claims only at UserInfo.
    conforming: bool,
}

impl Drop for TestProvider {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.accounts);
    }
}

impl TestProvider {
    /// Starts a provider for a portal that will listen at `portal_port`, knowing `accounts`
    /// (login → groups).
    pub async fn start(portal_port: u16, users: &[(&str, &[&str])]) -> Self {
        Self::start_with(portal_port, users, false).await
    }

    /// [`Self::start`], with `conforming`: oidc-provider's default settings, which serve the
    /// profile and groups claims at UserInfo only (OpenID Connect Core 5.4).
    pub async fn start_with(portal_port: u16, users: &[(&str, &[&str])], conforming: bool) -> Self {
        let port = free_port();
        let accounts = std::env::temp_dir().join(format!("tagward-test-provider-{}-{port}.json", std::process::id()));
        let mut provider = TestProvider { port, portal_port, accounts, process: None, conforming };
        for (login, groups) in users {
            provider.set_groups(login, groups);
        }
        provider.run().await;
        provider
    }

    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Makes `login` a user of the provider in `groups` (read at their next sign-in).
    pub fn set_groups(&self, login: &str, groups: &[&str]) {
        let mut accounts: BTreeMap<String, serde_json::Value> = std::fs::read(&self.accounts)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        accounts.insert(login.to_owned(), serde_json::json!({ "groups": groups }));
        std::fs::write(&self.accounts, serde_json::to_vec(&accounts).unwrap()).unwrap();
    }

    /// Makes `login`'s groups overflow their token, as Entra ID does past 200 groups.
    pub fn set_overage(&self, login: &str) {
        let mut accounts: BTreeMap<String, serde_json::Value> =
            serde_json::from_slice(&std::fs::read(&self.accounts).unwrap()).unwrap();
        accounts.insert(login.to_owned(), serde_json::json!({ "overage": true }));
        std::fs::write(&self.accounts, serde_json::to_vec(&accounts).unwrap()).unwrap();
    }

    async fn run(&mut self) {
        use tokio::io::AsyncBufReadExt;
        let modules = std::env::var("TAGWARD_OIDC_PROVIDER_MODULES").unwrap_or_else(|_| {
            panic!("TAGWARD_OIDC_PROVIDER_MODULES is not set; run the tests with `scripts/dev test`")
        });
        let portal = format!("http://127.0.0.1:{}", self.portal_port);
        let mut process = tokio::process::Command::new("node")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/oidc/provider.mjs"))
            .env("OIDC_MODULES", modules)
            .env("PORT", self.port.to_string())
            .env("CLIENT_ID", CLIENT_ID)
            .env("CLIENT_SECRET", CLIENT_SECRET)
            .env("REDIRECT_URI", format!("{portal}/login/oidc/callback"))
            .env("POST_LOGOUT_URI", format!("{portal}/login"))
            .env("ACCOUNTS_FILE", &self.accounts)
            .env("CONFORM_ID_TOKEN_CLAIMS", if self.conforming { "1" } else { "0" })
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(if std::env::var_os("TEST_LOG").is_some() {
                std::process::Stdio::inherit()
            } else {
                std::process::Stdio::null()
            })
            .kill_on_drop(true)
            .spawn()
            .expect("start node with tests/oidc/provider.mjs");
        let mut lines = tokio::io::BufReader::new(process.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
            .await
            .expect("the test provider starts within 30 s")
            .unwrap()
            .expect("the test provider exited before listening");
        assert!(first.starts_with("test identity provider at"), "unexpected: {first}");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.process = Some(process);
    }

    /// Stops the provider (it is unreachable until [`Self::restart`]).
    pub async fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill().await.unwrap();
        }
    }

    /// Starts it again on the same port, with a new signing key.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.run().await;
    }

    /// Spoils the next ID token the provider issues: `tamper`, `nonce`, `audience` or `expired`.
    pub async fn spoil_next_token(&self, kind: &str) {
        let response = reqwest::Client::new()
            .post(format!("{}/_test/mischief", self.issuer()))
            .body(kind.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
    }

    /// The `tagward serve` flags that make the portal at `portal_port` sign in here.
    pub fn portal_flags(&self) -> Vec<String> {
        [
            ("--oidc-issuer", self.issuer()),
            ("--oidc-client-id", CLIENT_ID.to_owned()),
            ("--oidc-client-secret", CLIENT_SECRET.to_owned()),
            ("--oidc-scopes", "profile groups".to_owned()),
            ("--oidc-provider-name", PROVIDER_NAME.to_owned()),
            ("--public-url", format!("http://127.0.0.1:{}", self.portal_port)),
        ]
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_owned(), value])
        .collect()
    }
}

/// A portal signing in through a fresh test provider that knows `accounts`; `flags` are more
/// `tagward serve` flags.
pub async fn portal_with_provider(accounts: &[(&str, &[&str])], flags: &[&str]) -> (TestApp, TestProvider) {
    portal_with_provider_conforming(accounts, flags, false).await
}

/// [`portal_with_provider`], the provider with its default settings when `conforming` (claims at
/// UserInfo only).
pub async fn portal_with_provider_conforming(
    accounts: &[(&str, &[&str])],
    flags: &[&str],
    conforming: bool,
) -> (TestApp, TestProvider) {
    let portal_port = free_port();
    let provider = TestProvider::start_with(portal_port, accounts, conforming).await;
    let mut all: Vec<String> = provider.portal_flags();
    all.extend(flags.iter().map(|flag| (*flag).to_owned()));
    all.extend(["--login-attempts-per-minute".to_owned(), "5".to_owned()]);
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let app = spawn_app_at(fresh_database().await, &format!("127.0.0.1:{portal_port}"), &all).await;
    (app, provider)
}

/// Signs in as `login` the way a browser without JavaScript does: leave for the provider, fill in
/// its form, come back. Answers tagward's response to the callback (the "signed in" page, or a
/// redirect to the login page with the error).
pub async fn sign_in(app: &TestApp, client: &reqwest::Client, login: &str) -> reqwest::Response {
    let response = client.get(app.url("/login/oidc?next=/projects")).send().await.unwrap();
    let form = follow_until_back(app, client, response).await;
    assert_eq!(form.status(), 200, "the provider's login form");
    let action = format!("{}/login", form.url().as_str().split('?').next().unwrap());
    let response = client.post(action).form(&[("login", login)]).send().await.unwrap();
    follow_until_back(app, client, response).await
}

/// Follows redirects until the browser is back at tagward's callback (answering the callback's
/// response, not following it) or at a page that is not a redirect.
pub async fn follow_until_back(
    app: &TestApp,
    client: &reqwest::Client,
    mut response: reqwest::Response,
) -> reqwest::Response {
    let callback = app.url("/login/oidc/callback");
    for _ in 0..10 {
        if !response.status().is_redirection() {
            return response;
        }
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let next = response.url().join(&location).unwrap();
        let back = next.as_str().starts_with(&callback);
        response = client.get(next).send().await.unwrap();
        if back {
            return response;
        }
    }
    panic!("more than 10 redirects")
}

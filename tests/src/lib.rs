//! Helpers for the black-box tests: a fresh database per test, the portal on a free port, a browser.

use app::account::{NewPassword, Role, UserName};
use app::policy::ProjectName;
use sqlx::PgPool;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;

pub mod browser;

/// The server tests create their databases on (`TAGWARD_TEST_DATABASE_URL`, set by `scripts/dev test`).
pub fn admin_database_url() -> String {
    std::env::var("TAGWARD_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Logs go to the test output only when `TEST_LOG` is set.
pub fn init_logging() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter("info,sqlx=warn,tower_http=debug")
                .with_test_writer()
                .try_init();
        }
    });
}

/// A migrated database of its own, named `tagward_test_*` (the test command drops old ones).
pub struct TestDb {
    pub url: String,
    pub pool: PgPool,
}

pub async fn fresh_database() -> TestDb {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let admin_url = admin_database_url();
    let name = format!(
        "tagward_test_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    );
    let admin = app::store::connect(&admin_url).await.expect("test database server is reachable");
    sqlx::query(&format!("create database {name}")).execute(&admin).await.expect("create test database");
    admin.close().await;
    let url = match admin_url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => panic!("TAGWARD_TEST_DATABASE_URL `{admin_url}` has no database part"),
    };
    let pool = app::store::connect(&url).await.expect("connect to the test database");
    app::store::migrate(&pool).await.expect("migrate the test database");
    TestDb { url, pool }
}

impl TestDb {
    pub async fn user(&self, name: &str, password: &str, system_admin: bool) {
        let name = UserName::parse(name).unwrap();
        let hash = app::store::hash_password(NewPassword::parse(password).unwrap()).await.unwrap();
        app::store::create_user(&self.pool, &name, &hash, system_admin).await.unwrap();
    }
    pub async fn project(&self, name: &str) {
        app::store::create_project(&self.pool, &ProjectName::parse(name).unwrap()).await.unwrap();
    }
    pub async fn member(&self, project: &str, user: &str, role: &str) {
        let project = ProjectName::parse(project).unwrap();
        let user = UserName::parse(user).unwrap();
        app::store::set_member(&self.pool, &project, &user, Role::parse(role).unwrap()).await.unwrap();
    }
}

impl TestDb {
    /// Adds a rule through the store, as `tests`; `repositories` and `tags` are `action:patterns`.
    pub async fn rule(&self, project: &str, repositories: &str, tags: &str) -> i64 {
        let split = |side: &str| {
            let (action, patterns) = side.split_once(':').unwrap();
            (action.to_owned(), patterns.to_owned())
        };
        let (repositories_action, repositories) = split(repositories);
        let (tags_action, tags) = split(tags);
        let spec = app::policy::RuleSpec::parse(&app::policy::RuleInput {
            repositories_action,
            repositories,
            tags_action,
            tags,
        })
        .unwrap();
        let project_id = app::store::project_id(&self.pool, &ProjectName::parse(project).unwrap()).await.unwrap();
        app::store::change_rules(
            &self.pool,
            project_id,
            app::store::RuleChange::Create(&spec),
            &app::store::Actor("tests".into()),
        )
        .await
        .unwrap()
    }

    pub async fn rule_count(&self) -> i64 {
        let (count,): (i64,) =
            sqlx::query_as("select count(*) from immutability_rules").fetch_one(&self.pool).await.unwrap();
        count
    }
}

/// The portal running on a free port over its own fresh database.
pub struct TestApp {
    pub address: SocketAddr,
    pub db: TestDb,
}

pub async fn spawn_app() -> TestApp {
    init_logging();
    let db = fresh_database().await;
    let config = tagward::ServeConfig {
        database: tagward::config::DatabaseConfig { database_url: db.url.clone() },
        addr: "127.0.0.1:0".parse().unwrap(),
        cookie_secure: false,
        site_root: std::env::var("LEPTOS_SITE_ROOT").unwrap_or_else(|_| "target/site".into()).into(),
        login_attempts_per_minute: 5,
        bootstrap_admin_password: None,
    };
    let app = tagward::Application::build(config).await.expect("build the application");
    let address = app.address();
    tokio::spawn(app.run_until_stopped());
    TestApp { address, db }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// A client that keeps cookies and does not follow redirects, so tests see them.
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap()
    }

    /// Posts the login server function as a script would (not as an HTML form).
    pub async fn login(&self, client: &reqwest::Client, user: &str, password: &str) -> reqwest::Response {
        client
            .post(self.url("/portal/login"))
            .header("Origin", self.url(""))
            .form(&[("username", user), ("password", password)])
            .send()
            .await
            .unwrap()
    }

    /// Calls a server function as a script would, with form fields.
    pub async fn call(&self, client: &reqwest::Client, function: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        client
            .post(self.url(&format!("/portal/{function}")))
            .header("Origin", self.url(""))
            .form(fields)
            .send()
            .await
            .unwrap()
    }

    /// A client logged in as `user`.
    pub async fn logged_in(&self, user: &str, password: &str) -> reqwest::Client {
        let client = self.client();
        let response = self.login(&client, user, password).await;
        assert_eq!(response.status(), 200, "login as {user}");
        client
    }

    /// Gets a page as a browser navigating to it does (`Accept: text/html`).
    pub async fn page(&self, client: &reqwest::Client, path: &str) -> reqwest::Response {
        client.get(self.url(path)).header("Accept", "text/html").send().await.unwrap()
    }

    /// The signed-in user's name according to the server, if any.
    pub async fn whoami(&self, client: &reqwest::Client) -> Option<String> {
        let response =
            client.post(self.url("/portal/current_user")).header("Origin", self.url("")).send().await.unwrap();
        assert!(response.status().is_success(), "current_user: {}", response.status());
        let body: serde_json::Value = response.json().await.unwrap();
        body.get("name").and_then(|n| n.as_str()).map(str::to_owned)
    }
}

/// The session cookie a response set, as `name=value`.
pub fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("tagward_session="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

/// The `tagward` binary built by the test command (`TAGWARD_BIN`).
pub fn tagward_bin() -> std::path::PathBuf {
    std::env::var_os("TAGWARD_BIN")
        .map(Into::into)
        .unwrap_or_else(|| panic!("TAGWARD_BIN is not set; run the tests with `scripts/dev test`"))
}

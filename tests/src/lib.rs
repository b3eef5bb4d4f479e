//! Helpers for the black-box tests: a fresh database per test, the portal on a free port, a browser.

use app::account::{NewPassword, Role, UserName};
use app::policy::ProjectName;
use sqlx::PgPool;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;

pub mod browser;
pub mod eventually;
pub use eventually::{eventually, until};
pub mod gateway;
pub mod inventory;
pub mod ldap;
pub mod oidc;
pub mod postgres;
pub mod receiver;
pub mod registry;

/// Values several tests share.
pub mod fixtures {
    /// A password every test user may have (long enough for the 12-character minimum).
    pub const PASSWORD: &str = "correct horse battery";
    /// The decision API's single check.
    pub const CHECK: &str = "/api/v1/enforcement/check";
    /// Two well-formed digests that stand for two different images.
    pub const DIGEST_A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    pub const DIGEST_B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
}

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

/// Who the tests' own set-up acts as (the audit trail says `tests`).
pub fn operator() -> app::principal::Principal {
    app::principal::Principal::Operator("tests".into())
}

/// A migrated database of its own, named `tagward_test_*` (the test command drops old ones).
pub struct TestDb {
    pub url: String,
    pub pool: PgPool,
}

/// A database of its own, copied from a migrated template (made once per run), so a
/// test pays for a file copy rather than for running every migration.
pub async fn fresh_database() -> TestDb {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let admin_url = admin_database_url();
    let template = migrated_template(&admin_url).await;
    let name = format!(
        "tagward_test_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    );
    let admin = app::store::connect(&admin_url).await.expect("test database server is reachable");
    sqlx::query(&format!("create database {name} template {template}"))
        .execute(&admin)
        .await
        .expect("create test database");
    admin.close().await;
    let url = database_url(&admin_url, &name);
    let pool = app::store::connect(&url).await.expect("connect to the test database");
    TestDb { url, pool }
}

/// `admin_url` with its database replaced by `name`.
fn database_url(admin_url: &str, name: &str) -> String {
    match admin_url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => panic!("TAGWARD_TEST_DATABASE_URL `{admin_url}` has no database part"),
    }
}

/// The migrated template database, made once for every test process of a run (nextest runs
/// each test in its own): named by the migrations it holds, built under an advisory lock by the
/// first process to need it and renamed into place when complete, so the others wait for it
/// rather than build their own. Nobody stays connected to it: PostgreSQL copies a template only
/// while it has no sessions.
async fn migrated_template(admin_url: &str) -> &'static str {
    static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    TEMPLATE
        .get_or_init(|| async {
            use sha2::Digest as _;
            let migrations: Vec<u8> = app::store::MIGRATOR.iter().flat_map(|m| m.checksum.to_vec()).collect();
            let key = u64::from_be_bytes(sha2::Sha256::digest(&migrations)[..8].try_into().unwrap());
            let name = format!("tagward_test_template_{key:016x}");
            let admin = app::store::connect(admin_url).await.expect("test database server is reachable");
            let mut lock = admin.acquire().await.expect("a connection to hold the template's lock");
            sqlx::query("select pg_advisory_lock($1)").bind(key as i64).execute(&mut *lock).await.unwrap();
            let exists: bool = sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
                .bind(&name)
                .fetch_one(&mut *lock)
                .await
                .unwrap();
            if !exists {
                let building = format!("{name}_building");
                sqlx::query(&format!("drop database if exists {building}")).execute(&mut *lock).await.unwrap();
                sqlx::query(&format!("create database {building}")).execute(&mut *lock).await.unwrap();
                let pool =
                    app::store::connect(&database_url(admin_url, &building)).await.expect("connect to the template");
                app::store::migrate(&pool).await.expect("migrate the template database");
                pool.close().await;
                sqlx::query(&format!("alter database {building} rename to {name}")).execute(&mut *lock).await.unwrap();
            }
            sqlx::query("select pg_advisory_unlock($1)").bind(key as i64).execute(&mut *lock).await.unwrap();
            drop(lock);
            admin.close().await;
            name
        })
        .await
}

impl TestDb {
    pub async fn user(&self, name: &str, password: &str, system_admin: bool) {
        let name = UserName::parse(name).unwrap();
        let hash = app::password::hash_password(NewPassword::parse(password).unwrap()).await.unwrap();
        app::store::create_user(&self.pool, &operator(), &name, &hash, system_admin).await.unwrap();
    }
    pub async fn project(&self, name: &str) {
        app::store::create_project(&self.pool, &operator(), &ProjectName::parse(name).unwrap()).await.unwrap();
    }
    pub async fn member(&self, project: &str, user: &str, role: &str) {
        let project = ProjectName::parse(project).unwrap();
        let user = UserName::parse(user).unwrap();
        let role = Some(Role::parse(role).unwrap());
        app::store::change_member(&self.pool, &operator(), &project, &user, role).await.unwrap();
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
            &operator(),
            project_id,
            app::store::RuleChange::Create(&spec, app::policy::RuleState::Enforced),
        )
        .await
        .unwrap()
    }

    /// A tag in the inventory, as a sync would have found it.
    pub async fn inventory_tag(&self, repository: &str, tag: &str, digest: &str) {
        let repository = app::policy::RepositoryName::parse(repository).unwrap();
        let tags = [(app::policy::Tag::parse(tag).unwrap(), app::policy::Digest::parse(digest).unwrap())];
        let sighting = app::store::Sighting::Sync { started: time::OffsetDateTime::now_utc() };
        app::store::put_tags(&self.pool, &repository, &tags, sighting).await.unwrap();
    }

    /// Creates a service token (decisions only) through the store and returns its secret.
    pub async fn token(&self, name: &str) -> String {
        self.token_with(name, &app::account::TokenGrant::default()).await
    }

    /// Creates a service token with `grant` and returns its secret.
    pub async fn token_with(&self, name: &str, grant: &app::account::TokenGrant) -> String {
        let secret = app::account::TokenSecret::generate();
        let name = app::account::TokenName::parse(name).unwrap();
        app::store::create_token(&self.pool, &operator(), &name, &secret, grant).await.unwrap();
        secret.expose().to_owned()
    }

    /// This database's URL with its host and port replaced by `address` (a proxy in front of it).
    pub fn url_via(&self, address: SocketAddr) -> String {
        let (scheme_and_user, rest) = self.url.split_once('@').expect("test database URL has a user part");
        let (_, database) = rest.split_once('/').expect("test database URL has a database part");
        format!("{scheme_and_user}@{address}/{database}")
    }

    pub async fn rule_count(&self) -> i64 {
        let (count,): (i64,) =
            sqlx::query_as("select count(*) from immutability_rules").fetch_one(&self.pool).await.unwrap();
        count
    }
}

/// The portal — a `tagward serve` process of its own, as in production — on a free port over its
/// own fresh database. The process is killed when this is dropped.
pub struct TestApp {
    pub address: SocketAddr,
    pub db: TestDb,
    _process: tokio::process::Child,
}

pub async fn spawn_app() -> TestApp {
    let db = fresh_database().await;
    let url = db.url.clone();
    spawn_app_over(db, url).await
}

/// The portal with project `shop` and its admin `ann` (password [`fixtures::PASSWORD`]).
pub async fn spawn_shop_with_admin_ann() -> TestApp {
    let app = spawn_app().await;
    app.db.user("ann", fixtures::PASSWORD, false).await;
    app.db.project("shop").await;
    app.db.member("shop", "ann", "admin").await;
    app
}

/// The portal over `db`, reaching it at `database_url` (e.g. through a [`CuttableProxy`]).
pub async fn spawn_app_over(db: TestDb, database_url: String) -> TestApp {
    spawn_app_with(db, database_url, &["--login-attempts-per-minute", "5"]).await
}

/// The portal over `db` with more `tagward serve` flags.
pub async fn spawn_app_with(db: TestDb, database_url: String, flags: &[&str]) -> TestApp {
    let (address, process) = spawn_server(&database_url, flags).await;
    TestApp { address, db, _process: process }
}

/// The portal over `db` at `address`, with more `tagward serve` flags.
pub async fn spawn_app_at(db: TestDb, address: &str, flags: &[&str]) -> TestApp {
    let url = db.url.clone();
    let (address, process) = spawn_server_at(&url, address, flags).await;
    TestApp { address, db, _process: process }
}

/// A `tagward serve` process over `database_url` (with `flags`), on a free port: where it
/// listens, and the process (killed when dropped).
pub async fn spawn_server(database_url: &str, flags: &[&str]) -> (SocketAddr, tokio::process::Child) {
    spawn_server_at(database_url, "127.0.0.1:0", flags).await
}

/// A `tagward serve` process listening at `address` (a test that must know the portal's address
/// before it starts, such as the identity provider's redirect, picks a free port for it).
pub async fn spawn_server_at(database_url: &str, address: &str, flags: &[&str]) -> (SocketAddr, tokio::process::Child) {
    use tokio::io::AsyncBufReadExt;
    let mut command = tokio::process::Command::new(tagward_bin());
    command
        .args(["serve", "--addr", address, "--cookie-secure", "false"])
        .args(flags)
        .env("DATABASE_URL", database_url)
        .env("LEPTOS_SITE_ROOT", std::env::var("LEPTOS_SITE_ROOT").unwrap_or_else(|_| "target/site".into()))
        .env_remove("TAGWARD_BOOTSTRAP_ADMIN_PASSWORD")
        .env_remove("TAGWARD_TRUSTED_PROXIES")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    match std::env::var_os("TEST_LOG") {
        Some(_) => command.env("RUST_LOG", "info,sqlx=warn,tower_http=debug").stderr(std::process::Stdio::inherit()),
        None => command.env("RUST_LOG", "error").stderr(std::process::Stdio::null()),
    };
    let mut process = command.spawn().expect("start `tagward serve`");
    let mut stdout = tokio::io::BufReader::new(process.stdout.take().unwrap()).lines();
    let announced = tokio::time::timeout(std::time::Duration::from_secs(60), stdout.next_line())
        .await
        .expect("`tagward serve` announces its address within 60 s")
        .expect("read `tagward serve`'s output")
        .expect("`tagward serve` exited before listening");
    let address = announced
        .strip_prefix("tagward portal listening on http://")
        .and_then(|address| address.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line from `tagward serve`: {announced}"));
    // Keep draining stdout so the process never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
    (address, process)
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// The most memory the server process has held so far (its `VmHWM`), in MiB: printed by tests
    /// that feed it hostile input, for the record (limits are asserted by what the server says).
    pub fn peak_memory_mib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self._process.id()?)).ok()?;
        let kib: f64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()?;
        Some(kib / 1024.0)
    }

    /// A client that keeps cookies and does not follow redirects, so tests see them.
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            // A request that hangs fails its test instead of the whole run.
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .unwrap()
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

    /// Maps each (group, role, project) as a system administrator's `client` does on the Sign-in
    /// groups page (project empty for `system-admin`), failing the test if one is refused.
    pub async fn map_groups(&self, client: &reqwest::Client, mappings: &[(&str, &str, &str)]) {
        for (group, role, project) in mappings {
            let response =
                self.call(client, "add_group_mapping", &[("group", group), ("role", role), ("project", project)]).await;
            assert!(response.status().is_success(), "mapping {group}: {}", response.text().await.unwrap());
        }
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

impl TestApp {
    /// Posts a decision request with a bearer token; answers the status and the JSON body.
    pub async fn check(&self, token: &str, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let response = reqwest::Client::new().post(self.url(path)).bearer_auth(token).json(body).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(serde_json::Value::Null))
    }
}

/// A TCP proxy a test can cut (every connection closed, new ones refused) and restore, to take
/// the database away from a server without stopping the database other tests use.
pub struct CuttableProxy {
    pub address: SocketAddr,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    connections: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl CuttableProxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let connections = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (accept_cut, accept_connections) = (cut.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if accept_cut.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection closed
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                accept_connections.lock().unwrap().push(task.abort_handle());
            }
        });
        Self { address, cut, connections }
    }

    /// Closes every proxied connection and refuses new ones until [`Self::restore`].
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// The address of the test database server.
pub fn database_server_address() -> SocketAddr {
    let url = admin_database_url();
    let host_port = url.split_once('@').map_or(url.as_str(), |(_, rest)| rest);
    let host_port = host_port.split('/').next().unwrap();
    std::net::ToSocketAddrs::to_socket_addrs(host_port).unwrap().next().unwrap()
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

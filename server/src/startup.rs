//! Building the application: database, caches, sessions, routes, listener.

use crate::config::ServeConfig;
use anyhow::Context;
use app::state::{AppState, LoginThrottle};
use axum::extract::Request;
use axum::routing::post;
use axum::Router;
use leptos::config::LeptosOptions;
use leptos_axum::{generate_route_list, LeptosRoutes};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};
use tower_sessions_sqlx_store::PostgresStore;

/// How long a request body may take to arrive.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// A built, bound, not yet serving tagward portal.
pub struct Application {
    listener: TcpListener,
    router: Router,
    address: SocketAddr,
    limits: crate::config::ListenerConfig,
}

impl Application {
    /// Connects to and migrates the database, and binds the listener.
    pub async fn build(config: ServeConfig) -> anyhow::Result<Self> {
        // Settings are checked before anything is connected to, so that a wrong one is named at once.
        let directory = crate::directory::LdapDirectory::from_config(&config.directory)?;
        let core = crate::core::Core::start(&config.database, config.exceptions).await?;
        let pool = core.pool.clone();
        if let Some(password) = &config.bootstrap_admin_password {
            bootstrap_admin(&pool, password).await?;
        }
        let registry = config.registry.start(&pool, &core.enforcer, None)?;
        crate::webhooks::start(
            pool.clone(),
            config.webhooks.clone(),
            config.registry.ca_file.as_deref(),
            core.enforcer.metrics.clone(),
        )?;
        let listener =
            TcpListener::bind(config.addr).await.with_context(|| format!("cannot listen on {}", config.addr))?;
        let address = listener.local_addr()?;

        // `scripts/dev` publishes the site under content-hashed names and lists them here. Absolute,
        // because leptos reads it relative to the executable's directory (an absolute path wins).
        let hash_file = std::path::absolute(config.site_root.join("hash.txt"))?;
        let leptos_options = LeptosOptions::builder()
            .output_name("tagward")
            .site_root(config.site_root.to_string_lossy().into_owned())
            .site_pkg_dir("pkg")
            .site_addr(address)
            .hash_files(hash_file.exists())
            .hash_file(Arc::from(hash_file.to_string_lossy().as_ref()))
            .build();
        let provider = crate::sign_in::IdentityProvider::from_config(&config.sign_in, config.cookie_secure)?;
        if provider.is_none()
            && directory.is_none()
            && config.sign_in.password_login == app::state::PasswordLogin::SystemAdmins
        {
            tracing::warn!(
                "password login is for system administrators only, and no identity provider or directory is configured"
            );
        }
        let state = AppState {
            pool: pool.clone(),
            leptos_options,
            login_throttle: Arc::new(
                LoginThrottle::new(config.login_attempts_per_minute, Duration::from_secs(60))
                    .with_password_login(config.sign_in.password_login),
            ),
            trusted_proxies: Arc::new(config.trusted_proxies.clone()),
            policies: core.enforcer.policies.clone(),
            registry: registry.map(|registry| Arc::new(registry) as Arc<dyn app::state::RegistryRestore>),
            sign_in: app::state::SignInOptions {
                provider_name: provider.as_ref().map(|_| config.sign_in.provider_name.clone()),
                directory_name: directory.as_ref().map(|_| config.directory.ldap_display_name.clone()),
                password_login: config.sign_in.password_login,
            },
            exceptions: config.exceptions.exceptions,
            inventory_counts: Arc::default(),
            webhooks_allow_private: config.webhooks.allow_private,
            directory: directory.map(|directory| Arc::new(directory) as Arc<dyn app::state::PasswordDirectory>),
        }
        .install()
        .map_err(anyhow::Error::msg)?;

        let session_store = PostgresStore::new(pool.clone());
        tokio::spawn(async move {
            use tower_sessions::ExpiredDeletion;
            if let Err(error) = session_store.continuously_delete_expired(Duration::from_secs(600)).await {
                tracing::error!(%error, "deleting expired sessions stopped");
            }
        });
        let sessions = SessionManagerLayer::new(PostgresStore::new(pool.clone()))
            .with_name("tagward_session")
            .with_secure(config.cookie_secure)
            .with_http_only(true)
            .with_same_site(SameSite::Strict)
            .with_expiry(Expiry::OnInactivity(tower_sessions::cookie::time::Duration::hours(8)));

        let ops = core.ops();
        let metrics = core.enforcer.metrics.clone();
        let harbor = crate::harbor::router(crate::harbor::HarborState::new(pool.clone(), core.enforcer.clone(), state));
        let events = crate::inventory::events::router(crate::inventory::events::EventsState {
            pool: pool.clone(),
            enforcer: core.enforcer.clone(),
        });
        let audit =
            crate::audit::router(crate::audit::AuditState { pool: pool.clone(), enforcer: core.enforcer.clone() });
        let api = crate::enforcement::api::router(core.enforcer);

        let mut portal_routes = portal(state.clone());
        if let Some(provider) = provider {
            portal_routes = portal_routes.merge(crate::sign_in::router(provider, state, metrics));
        }
        let router = portal_routes
            .layer(axum::middleware::from_fn(send_anonymous_visitors_to_login))
            .layer(axum::middleware::from_fn(app::auth::ssr::resolve_signed_in))
            .layer(axum::middleware::from_fn(crate::csrf::refuse_cross_origin))
            .layer(sessions)
            .merge(api)
            .merge(events)
            .merge(audit)
            .merge(harbor)
            .route("/api/v1/openapi.json", axum::routing::get(openapi))
            .merge(ops)
            // A body must arrive within this, whatever the route (slow bodies hold a connection).
            .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(BODY_TIMEOUT))
            .layer(TraceLayer::new_for_http());
        Ok(Self { listener, router, address, limits: config.listener })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves until SIGTERM or Ctrl-C; requests in flight are finished first.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        tracing::info!(address = %self.address, "tagward portal listening");
        crate::listener::serve(self.listener, self.router, &self.limits).await.context("serving")
    }
}

/// A browser asking for a page without a session is sent to the login page (303, so it works
/// without JavaScript), which sends it back here once logged in. Any other client asking for a
/// page it may not see (curl, a link checker) gets 401 with a short page saying where to log in,
/// not the page's empty frame. Static files, server functions and the login page itself are left
/// alone.
async fn send_anonymous_visitors_to_login(request: Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::http::{header, Method, StatusCode};
    use axum::response::IntoResponse;
    let reading = matches!(*request.method(), Method::GET | Method::HEAD);
    let wants_html = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    let path = request.uri().path();
    let exempt = ["/login", "/pkg/", "/portal/"].iter().any(|prefix| path.starts_with(prefix));
    let login = |request: &Request| {
        let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
        format!("/login?next={}", form_urlencoded::byte_serialize(target.as_bytes()).collect::<String>())
    };
    if !reading || exempt {
        return next.run(request).await;
    }
    if !wants_html {
        let location = login(&request);
        let response = next.run(request).await;
        if response.status() != StatusCode::UNAUTHORIZED {
            return response;
        }
        let page = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Log in - tagward</title></head>\n\
             <body><p>This page needs a signed-in user: <a href=\"{location}\">log in to tagward</a>.</p></body></html>\n"
        );
        return (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8".to_owned()), (header::LOCATION, location)],
            page,
        )
            .into_response();
    }
    let signed_in = match request.extensions().get::<app::auth::ssr::SignedIn>() {
        Some(who) => matches!(who.user().await, Ok(Some(_))),
        None => false,
    };
    if signed_in {
        return next.run(request).await;
    }
    (StatusCode::SEE_OTHER, [(header::LOCATION, login(&request))]).into_response()
}

/// Creates the system administrator `admin` when there are no users at all.
async fn bootstrap_admin(pool: &sqlx::PgPool, password: &str) -> anyhow::Result<()> {
    let password = app::account::NewPassword::parse(password).map_err(anyhow::Error::msg)?;
    let name = app::account::UserName::parse("admin").map_err(anyhow::Error::msg)?;
    if app::store::count_users(pool).await? > 0 {
        return Ok(());
    }
    let hash = app::password::hash_password(password).await?;
    if app::store::create_first_administrator(pool, &name, &hash).await?.is_some() {
        tracing::info!("created the first system administrator `admin`");
    }
    Ok(())
}

/// The portal: server-rendered pages, server functions and the built site's files.
fn portal(state: AppState) -> Router {
    let shell = {
        let options = state.leptos_options.clone();
        move || app::shell(options.clone())
    };
    let pkg =
        std::path::Path::new(state.leptos_options.site_root.as_ref()).join(state.leptos_options.site_pkg_dir.as_ref());
    let files = tower_http::services::ServeDir::new(pkg).precompressed_br().precompressed_gzip();
    Router::new()
        .nest_service("/pkg", files)
        .route("/portal/{*name}", post(leptos_axum::handle_server_fns).get(leptos_axum::handle_server_fns))
        .leptos_routes(&state, generate_route_list(app::App), shell)
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(app::shell))
        .layer(axum::middleware::from_fn(cache_control))
        .with_state(state)
}

/// How long browsers keep what they fetch. A file under a content-hashed name never changes, so
/// it is kept a year without asking again; anything else (pages, unhashed files) is asked about
/// every time (`no-cache`: revalidated, with `Last-Modified` for files). Files differ by
/// `Accept-Encoding` (brotli, gzip or neither), which caches must know.
async fn cache_control(request: Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::http::{header, HeaderValue};
    let path = request.uri().path();
    let site_file = path.starts_with("/pkg/");
    let hashed = site_file
        && path.rsplit('/').next().is_some_and(|file| {
            let parts: Vec<&str> = file.split('.').collect();
            matches!(parts[..], ["tagward", hash, _] if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
        });
    let mut response = next.run(request).await;
    let found = response.status().is_success();
    let headers = response.headers_mut();
    if !headers.contains_key(header::CACHE_CONTROL) {
        let policy = if hashed && found { "public, max-age=31536000, immutable" } else { "no-cache" };
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(policy));
    }
    if site_file {
        headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    response
}

/// The OpenAPI 3.1 document of the APIs this listener serves.
async fn openapi() -> axum::Json<serde_json::Value> {
    axum::Json(crate::openapi::document())
}

//! Signing in through the organisation's OpenID Connect provider: the authorization code flow with
//! PKCE, `state` and `nonce`, the ID token checked by the `openidconnect` crate (signature against
//! the provider's published keys, issuer, audience, expiry, nonce), then the store's sign-in, which
//! creates the user and applies their groups.
//!
//! The provider's discovery document and keys are read afresh at the start of every sign-in, so a
//! rotated key is used at once and an unreachable provider is reported before the browser is sent
//! to it.

use crate::registry::with_causes;
use anyhow::Context;
use app::identity::ProviderIdentity;
use app::state::AppState;
use axum::extract::{ConnectInfo, Query};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
};
use openidconnect::{
    AdditionalClaims, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IdToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, PostLogoutRedirectUrl, ProviderMetadataWithLogout,
    RedirectUrl, Scope, TokenResponse,
};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tower_sessions::Session;

/// How people sign in: the identity provider (when an issuer is set) and who may use a password.
#[derive(Debug, Clone, clap::Args)]
pub struct SignInConfig {
    /// The OpenID Connect provider's issuer URL (its discovery document is at
    /// `<issuer>/.well-known/openid-configuration`). Unset: local accounts only.
    #[arg(long = "oidc-issuer", env = "TAGWARD_OIDC_ISSUER")]
    pub issuer: Option<String>,

    /// The client id tagward is registered under at the provider.
    #[arg(long = "oidc-client-id", env = "TAGWARD_OIDC_CLIENT_ID")]
    pub client_id: Option<String>,

    /// The client's secret (sent with HTTP Basic to the token endpoint).
    #[arg(long = "oidc-client-secret", env = "TAGWARD_OIDC_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,

    /// Scopes asked for besides `openid`, space-separated (add the one that releases groups, if
    /// the provider has one).
    #[arg(long = "oidc-scopes", env = "TAGWARD_OIDC_SCOPES", value_delimiter = ' ', default_value = "profile email")]
    pub scopes: Vec<String>,

    /// The ID token claim whose value, lowercased, is a new user's tagward name (of a value such as
    /// `alice@example.com`, the part before `@`).
    #[arg(long = "oidc-username-claim", env = "TAGWARD_OIDC_USERNAME_CLAIM", default_value = "preferred_username")]
    pub username_claim: String,

    /// The claim that lists the user's groups (an array of strings), in the ID token or at UserInfo.
    #[arg(long = "oidc-groups-claim", env = "TAGWARD_OIDC_GROUPS_CLAIM", default_value = "groups")]
    pub groups_claim: String,

    /// Claims a sign-in must carry to be let in (in the ID token or at UserInfo), as `name=value`
    /// (repeat or comma-separate): a claim that is a list must contain the value. E.g. `hd=example.com` (Google: your domain
    /// only), `groups=tagward-users`.
    #[arg(long = "oidc-required-claim", env = "TAGWARD_OIDC_REQUIRED_CLAIMS", value_delimiter = ',', value_parser = parse_required_claim)]
    pub required_claims: Vec<(String, String)>,

    /// PEM certificates the provider's TLS certificate may chain to, besides the public roots.
    #[arg(long = "oidc-ca", env = "TAGWARD_OIDC_CA")]
    pub ca: Option<PathBuf>,

    /// What the login page calls the provider: "Sign in with <name>".
    #[arg(long = "oidc-provider-name", env = "TAGWARD_OIDC_PROVIDER_NAME", default_value = "your organisation")]
    pub provider_name: String,

    /// The address people reach tagward at (e.g. `https://tagward.example.com`); the provider sends
    /// the browser back to `<public-url>/login/oidc/callback` and, after logout, to `<public-url>/login`.
    #[arg(long = "public-url", env = "TAGWARD_PUBLIC_URL")]
    pub public_url: Option<url::Url>,

    /// Seconds a provider sign-in lasts at most (inactivity ends it earlier, as for everyone). The
    /// provider is asked (`max_age`) to make people whose login there is older log in again.
    #[arg(long = "oidc-session-max", env = "TAGWARD_OIDC_SESSION_MAX", default_value_t = 8 * 3600)]
    pub session_max_seconds: u64,

    /// Who may log in with a tagward password: `everyone`, or only `system-admins` (local break-glass
    /// administrators; everyone else signs in through the provider). Also applies to the Harbor
    /// API's Basic auth.
    #[arg(long = "password-login", env = "TAGWARD_PASSWORD_LOGIN", default_value = "everyone")]
    pub password_login: app::state::PasswordLogin,
}

fn parse_required_claim(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((name, wanted)) if !name.trim().is_empty() => Ok((name.trim().to_owned(), wanted.trim().to_owned())),
        _ => Err(format!("required claim `{value}` is not `name=value`")),
    }
}

/// The provider, as configured.
pub struct IdentityProvider {
    issuer: IssuerUrl,
    client_id: ClientId,
    client_secret: Option<ClientSecret>,
    redirect: RedirectUrl,
    after_logout: PostLogoutRedirectUrl,
    scopes: Vec<String>,
    username_claim: String,
    groups_claim: String,
    required_claims: Vec<(String, String)>,
    session_max: Duration,
    http: reqwest::Client,
    secure_cookie: bool,
}

/// Why a sign-in did not happen: what the login page tells the person (`code`), and, for the log,
/// the details they are not shown.
#[derive(Debug)]
pub struct SignInError {
    code: &'static str,
    detail: String,
}

impl SignInError {
    fn new(code: &'static str, detail: impl Into<String>) -> Self {
        Self { code, detail: detail.into() }
    }
    fn failed(detail: impl std::fmt::Display) -> Self {
        Self::new("sign-in-failed", detail.to_string())
    }
}

impl From<app::store::StoreError> for SignInError {
    fn from(error: app::store::StoreError) -> Self {
        use app::store::StoreError;
        match error {
            StoreError::Forbidden(message) => Self::new("deactivated", message),
            StoreError::Conflict { message, .. } => Self::new("name-taken", message),
            StoreError::TryLater { message, .. } => Self::new("too-many-attempts", message),
            other => Self::new("unavailable", format!("{other:#}")),
        }
    }
}

/// Claims beyond the standard ones (the groups claim, and a user name claim of the provider's own).
#[derive(Debug, Clone, Deserialize, Serialize)]
struct OtherClaims {
    #[serde(flatten)]
    claims: serde_json::Map<String, serde_json::Value>,
}
impl AdditionalClaims for OtherClaims {}

type ProviderClaims = openidconnect::IdTokenClaims<OtherClaims, CoreGenderClaim>;

type ProviderUserInfo = openidconnect::UserInfoClaims<OtherClaims, CoreGenderClaim>;

type ProviderIdToken =
    IdToken<OtherClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;

/// The name of the cookie that ties a browser to the sign-in it started. `SameSite=Lax`, unlike the
/// session's `Strict`: it must come along when the provider sends the browser back.
const FLOW_COOKIE: &str = "tagward_sign_in";

/// A sign-in that succeeded.
struct SignedIn {
    identity: ProviderIdentity,
    /// The provider's end-session address for this sign-in, if it has one.
    logout: Option<url::Url>,
}

impl IdentityProvider {
    /// The provider `config` names, or `None` when no issuer is set.
    pub fn from_config(config: &SignInConfig, secure_cookie: bool) -> anyhow::Result<Option<Self>> {
        let Some(issuer) = &config.issuer else { return Ok(None) };
        let issuer = IssuerUrl::new(issuer.clone()).with_context(|| format!("TAGWARD_OIDC_ISSUER `{issuer}`"))?;
        let client_id =
            config.client_id.clone().context("TAGWARD_OIDC_CLIENT_ID is needed with TAGWARD_OIDC_ISSUER")?;
        let public = config.public_url.clone().context("TAGWARD_PUBLIC_URL is needed with TAGWARD_OIDC_ISSUER")?;
        let redirect = RedirectUrl::from_url(public.join("login/oidc/callback")?);
        let after_logout = PostLogoutRedirectUrl::from_url(public.join("login")?);
        let tls = crate::registry::tls_config(config.ca.as_deref())?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            // Never follow: a provider's redirect is not a place to send the client secret.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .build()
            .context("building the identity provider's HTTP client")?;
        Ok(Some(Self {
            issuer,
            client_id: ClientId::new(client_id),
            client_secret: config.client_secret.clone().map(ClientSecret::new),
            redirect,
            after_logout,
            scopes: config.scopes.iter().filter(|s| !s.is_empty() && *s != "openid").cloned().collect(),
            username_claim: config.username_claim.clone(),
            groups_claim: config.groups_claim.clone(),
            required_claims: config.required_claims.clone(),
            session_max: Duration::from_secs(config.session_max_seconds.max(60)),
            http,
            secure_cookie,
        }))
    }

    async fn discover(&self) -> Result<ProviderMetadataWithLogout, SignInError> {
        ProviderMetadataWithLogout::discover_async(self.issuer.clone(), &self.http).await.map_err(|error| {
            SignInError::new(
                "provider-unavailable",
                format!("discovery at `{}`: {}", self.issuer.as_str(), with_causes(&error)),
            )
        })
    }

    fn client(&self, metadata: ProviderMetadataWithLogout) -> ProviderClient {
        CoreClient::from_provider_metadata(metadata, self.client_id.clone(), self.client_secret.clone())
            .set_redirect_uri(self.redirect.clone())
    }

    /// Starts a sign-in: the provider's authorization URL, and the secret the browser keeps.
    async fn begin(&self, pool: &sqlx::PgPool, next: String) -> Result<(url::Url, String), SignInError> {
        let metadata = self.discover().await?;
        let client = self.client(metadata);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
            .add_scopes(self.scopes.iter().cloned().map(Scope::new))
            .set_pkce_challenge(challenge)
            .set_max_age(self.session_max)
            .url();
        let secret = app::account::TokenSecret::generate();
        let flow = app::store::SignInFlow {
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            next,
        };
        app::store::save_sign_in_flow(pool, &secret.sha256(), &flow).await?;
        Ok((url, secret.expose().to_owned()))
    }

    /// Finishes a sign-in the provider sent back, with the flow the callback took: `state` compared,
    /// the code exchanged with the PKCE verifier, the ID token verified.
    async fn finish(&self, flow: &app::store::SignInFlow, code: String, state: &str) -> Result<SignedIn, SignInError> {
        if !constant_time_eq(state.as_bytes(), flow.state.as_bytes()) {
            return Err(SignInError::failed("the `state` sent back is not the one this browser's sign-in sent"));
        }
        // Read again, not kept from the start: the callback may reach another instance, and a key
        // rotated meanwhile is used.
        let metadata = self.discover().await?;
        let end_session = metadata.additional_metadata().end_session_endpoint.clone();
        let client = self.client(metadata);
        let tokens = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(SignInError::failed)?
            .set_pkce_verifier(PkceCodeVerifier::new(flow.pkce_verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|error| SignInError::failed(format!("the token endpoint: {}", with_causes(&error))))?;
        let raw = tokens.id_token().ok_or_else(|| SignInError::failed("the provider sent no ID token"))?.to_string();
        let id_token: ProviderIdToken =
            raw.parse().map_err(|error| SignInError::failed(format!("the ID token cannot be read: {error}")))?;
        let claims = id_token
            .claims(&client.id_token_verifier(), &Nonce::new(flow.nonce.clone()))
            .map_err(|error| SignInError::failed(format!("the ID token is refused: {}", with_causes(&error))))?;
        // Providers that follow OpenID Connect Core 5.4 serve the profile and groups claims at
        // UserInfo, not in the ID token: asked there (for this subject only) when the token lacks them.
        let missing = |name: &str| self.claim_value(claims, None, name).is_none();
        let userinfo = if missing(&self.username_claim) || missing(&self.groups_claim) {
            self.user_info(&client, tokens.access_token().clone(), claims.subject().clone()).await?
        } else {
            None
        };
        let userinfo = userinfo.as_ref();
        // Entra ID leaves the groups out of a token when a user has too many, and says where to
        // fetch them instead: signing in without them would silently drop every role they grant.
        if let Some(sources) = self.claim_value(claims, userinfo, "_claim_names") {
            if sources.get(&self.groups_claim).is_some()
                && self.claim_value(claims, userinfo, &self.groups_claim).is_none()
            {
                return Err(SignInError::new(
                    "groups-overage",
                    format!(
                        "the provider left the `{}` claim out (too many groups: Entra ID's groups overage); have it \
                         send only the groups assigned to the application",
                        self.groups_claim
                    ),
                ));
            }
        }
        let name_value = self
            .claim_value(claims, userinfo, &self.username_claim)
            .and_then(|value| value.as_str().map(str::to_owned))
            .ok_or_else(|| {
                SignInError::new(
                    "name-invalid",
                    format!("neither the ID token nor UserInfo has a `{}` claim", self.username_claim),
                )
            })?;
        for (claim, wanted) in &self.required_claims {
            let value = self.claim_value(claims, userinfo, claim);
            let found = match &value {
                Some(serde_json::Value::Array(items)) => items.iter().any(|item| item.as_str() == Some(wanted)),
                Some(serde_json::Value::String(text)) => text == wanted,
                Some(serde_json::Value::Bool(flag)) => flag.to_string() == *wanted,
                _ => false,
            };
            if !found {
                return Err(SignInError::new(
                    "not-allowed",
                    format!("claim `{claim}` is {value:?}, and `{wanted}` is required"),
                ));
            }
        }
        let name = app::identity::user_name_from(&name_value)
            .map_err(|why| SignInError::new("name-invalid", format!("claim `{}`: {why}", self.username_claim)))?;
        let groups = match self.claim_value(claims, userinfo, &self.groups_claim) {
            Some(serde_json::Value::Array(items)) => {
                items.iter().filter_map(|item| item.as_str().map(str::to_owned)).collect()
            }
            Some(serde_json::Value::String(one)) => vec![one],
            _ => Vec::new(),
        };
        let logout = end_session.map(|endpoint| {
            openidconnect::LogoutRequest::from(endpoint)
                .set_id_token_hint(&id_token)
                .set_client_id(self.client_id.clone())
                .set_post_logout_redirect_uri(self.after_logout.clone())
                .http_get_url()
        });
        let identity = ProviderIdentity {
            issuer: claims.issuer().as_str().to_owned(),
            subject: claims.subject().as_str().to_owned(),
            name,
            email: self.claim_value(claims, userinfo, "email").and_then(|email| email.as_str().map(str::to_owned)),
            groups,
        };
        Ok(SignedIn { identity, logout })
    }

    /// The provider's UserInfo answer for `subject` (`None` when it has no UserInfo endpoint). An
    /// answer for another subject is refused (OpenID Connect Core 5.3.2), as is one that fails.
    async fn user_info(
        &self,
        client: &ProviderClient,
        access_token: openidconnect::AccessToken,
        subject: openidconnect::SubjectIdentifier,
    ) -> Result<Option<ProviderUserInfo>, SignInError> {
        let Ok(request) = client.user_info(access_token, Some(subject)) else { return Ok(None) };
        let answer: ProviderUserInfo = request
            .request_async(&self.http)
            .await
            .map_err(|error| SignInError::failed(format!("the UserInfo endpoint: {}", with_causes(&error))))?;
        Ok(Some(answer))
    }

    /// A claim's value, from the ID token or else from UserInfo: the standard ones by their
    /// accessors, any other from the rest.
    fn claim_value(
        &self,
        claims: &ProviderClaims,
        userinfo: Option<&ProviderUserInfo>,
        name: &str,
    ) -> Option<serde_json::Value> {
        let text = |value: Option<&str>| value.map(|v| serde_json::Value::String(v.to_owned()));
        let from_token = match name {
            "sub" => text(Some(claims.subject().as_str())),
            "preferred_username" => text(claims.preferred_username().map(|n| n.as_str())),
            "email" => text(claims.email().map(|e| e.as_str())),
            "nickname" => text(claims.nickname().and_then(|n| n.get(None)).map(|n| n.as_str())),
            "name" => text(claims.name().and_then(|n| n.get(None)).map(|n| n.as_str())),
            other => claims.additional_claims().claims.get(other).cloned(),
        };
        from_token.or_else(|| {
            let userinfo = userinfo?;
            match name {
                "sub" => text(Some(userinfo.subject().as_str())),
                "preferred_username" => text(userinfo.preferred_username().map(|n| n.as_str())),
                "email" => text(userinfo.email().map(|e| e.as_str())),
                "nickname" => text(userinfo.nickname().and_then(|n| n.get(None)).map(|n| n.as_str())),
                "name" => text(userinfo.name().and_then(|n| n.get(None)).map(|n| n.as_str())),
                other => userinfo.additional_claims().claims.get(other).cloned(),
            }
        })
    }
}

/// The client as discovery configures it: authorization and token endpoints (the token one is
/// checked when used), user info perhaps.
type ProviderClient = CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What the routes share.
#[derive(Clone)]
struct SignInState {
    provider: Arc<IdentityProvider>,
    app: &'static AppState,
    metrics: Arc<crate::metrics::Metrics>,
}

/// `GET /login/oidc` (leave for the provider) and `GET /login/oidc/callback` (come back).
pub fn router(provider: IdentityProvider, app: &'static AppState, metrics: Arc<crate::metrics::Metrics>) -> Router {
    Router::new()
        .route("/login/oidc", get(begin))
        .route("/login/oidc/callback", get(callback))
        .with_state(SignInState { provider: Arc::new(provider), app, metrics })
}

#[derive(Deserialize)]
struct BeginQuery {
    next: Option<String>,
}

async fn begin(
    axum::extract::State(state): axum::extract::State<SignInState>,
    Query(query): Query<BeginQuery>,
) -> Response {
    let next = app::auth::safe_next(query.next.as_deref().unwrap_or("/"));
    match state.provider.begin(&state.app.pool, next).await {
        Ok((url, secret)) => {
            let cookie = flow_cookie(
                &secret,
                state.provider.secure_cookie,
                Some(60 * i64::from(app::store::SIGN_IN_FLOW_MINUTES)),
            );
            (StatusCode::SEE_OTHER, [(header::LOCATION, url.to_string()), (header::SET_COOKIE, cookie)]).into_response()
        }
        Err(error) => {
            state.metrics.record_sign_in(error.code);
            back_to_login(&error)
        }
    }
}

fn flow_cookie(value: &str, secure: bool, max_age_seconds: Option<i64>) -> String {
    let mut cookie = tower_sessions::cookie::Cookie::build((FLOW_COOKIE, value.to_owned()))
        .path("/login/oidc")
        .http_only(true)
        .secure(secure)
        .same_site(tower_sessions::cookie::SameSite::Lax);
    cookie = match max_age_seconds {
        Some(seconds) => cookie.max_age(tower_sessions::cookie::time::Duration::seconds(seconds)),
        None => cookie.max_age(tower_sessions::cookie::time::Duration::ZERO),
    };
    cookie.build().to_string()
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn callback(
    axum::extract::State(state): axum::extract::State<SignInState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    session: Session,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let address = app::state::client_address(peer.ip(), &headers, &state.app.trusted_proxies);
    // Counted before anything is checked, like a password attempt; a sign-in that succeeds is taken back.
    let attempt = match state.app.login_throttle.begin_from_address(address) {
        Ok(attempt) => attempt,
        Err(wait) => {
            let error = SignInError::new("too-many-attempts", format!("{address} waits {} s", wait.as_secs()));
            state.metrics.record_sign_in(error.code);
            return back_to_login(&error);
        }
    };
    let secret = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(tower_sessions::cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == FLOW_COOKIE)
        .map(|cookie| cookie.value().to_owned());
    let result = async {
        if let Some(error) = &query.error {
            let description = query.error_description.as_deref().unwrap_or_default();
            return Err(SignInError::failed(format!("the provider answered `{error}`: {description}")));
        }
        let secret = secret.ok_or_else(|| SignInError::new("expired", "no sign-in cookie came back"))?;
        let flow = app::store::take_sign_in_flow(&state.app.pool, &app::account::token_sha256(&secret))
            .await?
            .ok_or_else(|| SignInError::new("expired", "the sign-in flow is unknown, used or too old"))?;
        let (code, returned_state) = query
            .code
            .clone()
            .zip(query.state.clone())
            .ok_or_else(|| SignInError::failed("the callback has no `code` or no `state`"))?;
        let signed_in = state.provider.finish(&flow, code, &returned_state).await?;
        let (user, epoch) = app::store::sign_in_from_provider(&state.app.pool, &signed_in.identity).await?;
        app::store::record_sign_in(&state.app.pool, user.id).await?;
        start_session(&session, &user, epoch, signed_in.logout, state.provider.session_max).await?;
        tracing::info!(username = ?user.name, subject = ?signed_in.identity.subject, groups = ?signed_in.identity.groups, "signed in through the identity provider");
        Ok(flow.next)
    }
    .await;
    let clear = flow_cookie("", state.provider.secure_cookie, None);
    match result {
        Ok(next) => {
            state.app.login_throttle.succeeded(attempt);
            state.metrics.record_sign_in("signed-in");
            signed_in_page(&next, clear)
        }
        Err(error) => {
            state.metrics.record_sign_in(error.code);
            let mut response = back_to_login(&error);
            if let Ok(value) = clear.parse() {
                response.headers_mut().append(header::SET_COOKIE, value);
            }
            response
        }
    }
}

async fn start_session(
    session: &Session,
    user: &app::account::User,
    epoch: i32,
    logout: Option<url::Url>,
    lifetime: Duration,
) -> Result<(), SignInError> {
    let failed = |error: tower_sessions::session::Error| SignInError::new("unavailable", error.to_string());
    session.cycle_id().await.map_err(failed)?;
    session.insert(app::auth::ssr::USER_ID, user.id).await.map_err(failed)?;
    session.insert(app::auth::ssr::EPOCH, epoch).await.map_err(failed)?;
    if let Some(logout) = logout {
        session.insert(app::auth::ssr::PROVIDER_LOGOUT, logout.to_string()).await.map_err(failed)?;
    }
    let ends = tower_sessions::cookie::time::OffsetDateTime::now_utc()
        + tower_sessions::cookie::time::Duration::seconds(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX));
    session.set_expiry(Some(tower_sessions::Expiry::AtDateTime(ends)));
    Ok(())
}

/// Back to the login page, which says what went wrong in words for `code`; the details are logged.
fn back_to_login(error: &SignInError) -> Response {
    tracing::warn!(code = error.code, detail = %error.detail, "sign-in through the identity provider failed");
    (StatusCode::SEE_OTHER, [(header::LOCATION, format!("/login?error={}", error.code))]).into_response()
}

/// The page the provider's redirect lands on once signed in. It moves on by itself (a same-site
/// navigation, so the `SameSite=Strict` session cookie goes along, which it would not on a redirect
/// that started at the provider); the link is there for browsers that do not follow the refresh.
fn signed_in_page(next: &str, clear_cookie: String) -> Response {
    let next = app::auth::safe_next(next);
    let escaped = next.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;");
    let page = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"0;url={escaped}\"><title>Signed in - tagward</title></head>\n\
         <body><p>Signed in. <a href=\"{escaped}\">Continue to tagward</a>.</p></body></html>\n"
    );
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8".to_owned()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (header::SET_COOKIE, clear_cookie),
        ],
        page,
    )
        .into_response()
}

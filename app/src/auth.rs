//! Logging in and out, and who is asking.

use crate::account::User;
use crate::error::AppError;
use leptos::prelude::*;

#[cfg(feature = "ssr")]
pub mod ssr {
    use crate::account::User;
    use crate::error::AppError;
    use crate::state::AppState;
    use leptos::prelude::*;
    use tower_sessions::Session;

    /// The session key that holds the signed-in user's id.
    pub const USER_ID: &str = "user_id";
    /// The key of the user's session epoch when the session was made (see `store::set_password`).
    pub const EPOCH: &str = "epoch";
    /// The key of the identity provider's end-session address for a session made by signing in
    /// there (logging out of tagward goes on to it).
    pub const PROVIDER_LOGOUT: &str = "provider_logout";

    /// The application state (see [`AppState`] for why it is not a reactive context).
    pub fn state() -> Result<&'static AppState, AppError> {
        AppState::installed()
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("the portal's state is not installed in this process")))
    }

    /// The request's session. Like everything leptos_axum hands a server function about its
    /// request, it comes from the reactive owner; a fetch that outlives its view (see
    /// [`AppState`]) gets an error here, for a result that nobody will read.
    pub async fn session() -> Result<Session, AppError> {
        leptos_axum::extract::<Session>().await.map_err(AppError::internal)
    }

    /// Who is signed in on this request: looked up at most once per request (when first asked),
    /// however many server functions its page runs. Put in by [`resolve_signed_in`].
    #[derive(Clone)]
    pub struct SignedIn {
        session: Session,
        user: std::sync::Arc<tokio::sync::OnceCell<Option<User>>>,
    }

    impl SignedIn {
        /// The user, or `None`. A session whose user is gone, deactivated, or changed their
        /// password since it was made (the epoch moved on) is ended here.
        pub async fn user(&self) -> Result<Option<User>, AppError> {
            self.user.get_or_try_init(|| signed_in_user(&self.session)).await.cloned()
        }
    }

    /// Middleware, inside the session layer.
    pub async fn resolve_signed_in(
        mut request: axum::extract::Request,
        next: axum::middleware::Next,
    ) -> axum::response::Response {
        if let Some(session) = request.extensions().get::<Session>().cloned() {
            request.extensions_mut().insert(SignedIn { session, user: Default::default() });
        }
        next.run(request).await
    }

    async fn signed_in_user(session: &Session) -> Result<Option<User>, AppError> {
        let id: Option<i64> = session.get(USER_ID).await.map_err(AppError::internal)?;
        let Some(id) = id else { return Ok(None) };
        let epoch: i32 = session.get(EPOCH).await.map_err(AppError::internal)?.unwrap_or(0);
        match crate::store::active_user(&state()?.pool, id).await? {
            Some((user, current)) if current == epoch => Ok(Some(user)),
            _ => {
                session.flush().await.map_err(AppError::internal)?;
                Ok(None)
            }
        }
    }

    /// The signed-in user, or `Unauthorized`.
    pub async fn require_user() -> Result<User, AppError> {
        let signed_in = use_context::<axum::http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<SignedIn>().cloned())
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("no session on this request, or it has ended")))?;
        signed_in.user().await?.ok_or(AppError::Unauthorized)
    }

    /// The signed-in user as the principal changes are made by.
    pub async fn principal() -> Result<crate::principal::Principal, AppError> {
        Ok(crate::principal::Principal::User(require_user().await?))
    }

    /// The client's address: the peer's, or the one a trusted proxy forwarded for.
    pub async fn client_address() -> Result<std::net::IpAddr, AppError> {
        use axum::extract::ConnectInfo;
        let trusted = state()?.trusted_proxies.clone();
        let (ConnectInfo(peer), headers) =
            leptos_axum::extract::<(ConnectInfo<std::net::SocketAddr>, axum::http::HeaderMap)>()
                .await
                .map_err(AppError::internal)?;
        Ok(crate::state::client_address(peer.ip(), &headers, &trusted))
    }

    /// Passes a server function's result through, setting the response status for an error.
    pub fn answered<T>(result: Result<T, AppError>) -> Result<T, AppError> {
        if let Err(error) = &result {
            set_error_status(error);
        }
        result
    }

    /// Sets the status of the response a server function's error goes out with, unless the caller
    /// is a plain HTML form: that one must get leptos' redirect back to the page, which shows the error.
    fn set_error_status(error: &AppError) {
        let accepts_html = use_context::<axum::http::request::Parts>().is_some_and(|parts| {
            parts
                .headers
                .get(axum::http::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("text/html"))
        });
        if !accepts_html {
            if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
                response.set_status(error.status());
            }
        }
    }
}

/// Who is signed in, if anyone.
#[server(prefix = "/portal", endpoint = "current_user")]
pub async fn current_user() -> Result<Option<User>, AppError> {
    match ssr::require_user().await {
        Ok(user) => Ok(Some(user)),
        Err(AppError::Unauthorized) => Ok(None),
        Err(error) => Err(error),
    }
}

/// Checks the password and starts a session. Wrong user and wrong password are answered alike, and
/// take alike long: an unknown user is checked against a dummy hash.
#[server(prefix = "/portal", endpoint = "login")]
pub async fn login(
    username: String,
    password: String,
    #[server(default)] next: Option<String>,
) -> Result<(), AppError> {
    let result = async {
        let state = ssr::state()?;
        let address = ssr::client_address().await?;
        let username = username.trim().to_owned();
        let checked = state
            .login_throttle
            .check_credentials(&state.pool, state.directory.as_deref(), &username, password, address)
            .await;
        let Some((user, epoch)) = checked.inspect_err(|error| {
            tracing::warn!(username = ?username, %address, %error, "login refused");
        })?
        else {
            // `?` (Debug) escapes what a user typed, so a name cannot forge a log line.
            tracing::info!(username = ?username, %address, "login failed");
            return Err(AppError::Invalid("wrong user name or password".into()));
        };
        crate::store::record_sign_in(&state.pool, user.id).await?;
        let session = ssr::session().await?;
        // A new id on login, so that an id planted before login is worthless after it.
        session.cycle_id().await.map_err(AppError::internal)?;
        session.insert(ssr::USER_ID, user.id).await.map_err(AppError::internal)?;
        session.insert(ssr::EPOCH, epoch).await.map_err(AppError::internal)?;
        tracing::info!(username = ?user.name, "logged in");
        leptos_axum::redirect(&safe_next(next.as_deref().unwrap_or("/")));
        Ok(())
    }
    .await;
    ssr::answered(result)
}

/// Where a login may send the browser on: a path of this site (`/projects/shop?x=1`), never
/// another site (`//evil.example`, `/\\evil.example`, `https://…`); anything else goes home.
pub fn safe_next(next: &str) -> String {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control)
        && !next.starts_with("/login");
    if ok {
        next.to_owned()
    } else {
        "/".to_owned()
    }
}

/// Ends the session; one made by signing in through the identity provider goes on to the
/// provider's end-session address (when it has one), which ends the provider's session too and
/// sends the browser back to the login page.
#[server(prefix = "/portal", endpoint = "logout")]
pub async fn logout() -> Result<(), AppError> {
    let session = ssr::session().await?;
    let provider_logout: Option<String> = session.get(ssr::PROVIDER_LOGOUT).await.map_err(AppError::internal)?;
    session.flush().await.map_err(AppError::internal)?;
    leptos_axum::redirect(provider_logout.as_deref().unwrap_or("/login"));
    Ok(())
}

/// How the login page offers to sign in.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SignInOffer {
    /// "Sign in with <name>", when an identity provider is configured.
    pub provider_name: Option<String>,
    /// Whether passwords are for system administrators only (the form is then the break-glass way).
    pub passwords_for_admins_only: bool,
    /// What the directory is called, when people sign in with their directory password.
    #[serde(default)]
    pub directory_name: Option<String>,
}

#[server(prefix = "/portal", endpoint = "sign_in_choices")]
pub async fn sign_in_choices() -> Result<SignInOffer, AppError> {
    let options = &ssr::state()?.sign_in;
    Ok(SignInOffer {
        provider_name: options.provider_name.clone(),
        // With a directory, the form is everyone's way in, whoever may use a tagward password.
        passwords_for_admins_only: options.password_login == crate::state::PasswordLogin::SystemAdmins
            && options.directory_name.is_none(),
        directory_name: options.directory_name.clone(),
    })
}

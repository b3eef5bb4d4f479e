//! What every request handler shares, server side.

use crate::locks::Locked;
use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use sqlx::PgPool;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// What the portal's pages and server functions share: one per process, installed when the
/// portal is built and never taken away.
///
/// It is deliberately not a Leptos context. A context lives on a reactive owner, and during
/// server-side rendering a resource's fetch (a server function) can be polled after the view that
/// started it was torn down — the client went away, or the stream ended — and at that point the
/// owner's contexts have been cleared. Reading the state from there failed (it used to panic).
/// The process-wide value cannot go away under a running fetch.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub pool: PgPool,
    pub leptos_options: LeptosOptions,
    pub login_throttle: Arc<LoginThrottle>,
    /// Proxies whose `X-Forwarded-For` is believed (`TAGWARD_TRUSTED_PROXIES`).
    pub trusted_proxies: Arc<Vec<ipnet::IpNet>>,
    /// The policies decisions are made with, for pages to show and count with.
    pub policies: Arc<dyn EnforcedPolicies>,
    /// The registry the inventory is synced from, with tagward's own credentials, for Restore;
    /// `None` when none is configured.
    pub registry: Option<Arc<dyn RegistryRestore>>,
    /// How people sign in, as the login page offers it.
    pub sign_in: SignInOptions,
    /// Whether this tagward takes one-time exceptions at all (`TAGWARD_EXCEPTIONS`).
    pub exceptions: crate::policy::ExceptionsSwitch,
    /// What pages count over projects' inventories, kept between them.
    pub inventory_counts: Arc<crate::inventory::counting::InventoryCounts>,
    /// Whether webhooks may be sent to internal addresses (`TAGWARD_WEBHOOK_ALLOW_PRIVATE`).
    pub webhooks_allow_private: bool,
    /// The LDAP / Active Directory directory whose users sign in with their password there, when
    /// one is configured (`TAGWARD_LDAP_URL`).
    pub directory: Option<Arc<dyn PasswordDirectory>>,
}

/// How people sign in: the identity provider's name when one is configured, the directory's when
/// one is, and who may use a tagward password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInOptions {
    pub provider_name: Option<String>,
    pub directory_name: Option<String>,
    pub password_login: PasswordLogin,
}

/// Who may log in with a tagward password (the portal, the Harbor API's Basic auth).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PasswordLogin {
    #[default]
    Everyone,
    /// Local system administrators only: the break-glass way in when the provider is down.
    SystemAdmins,
}

impl std::str::FromStr for PasswordLogin {
    type Err = String;
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "everyone" => Ok(PasswordLogin::Everyone),
            "system-admins" => Ok(PasswordLogin::SystemAdmins),
            other => Err(format!("password login `{other}` is not one of everyone, system-admins")),
        }
    }
}

/// Enforcement's compiled policies, as the portal reads them: the Policy tab says whether the
/// policy decisions are made with can be evaluated, and counts with it, instead of compiling one
/// of its own per page.
pub trait EnforcedPolicies: Send + Sync {
    /// The project's policy as enforcement holds it, compiled (waiting a bounded time for that) or
    /// why it cannot be evaluated; `None` when enforcement holds another version than `version`
    /// (a change it has not heard of yet) or none.
    fn policy<'a>(&'a self, project: &'a str, version: &'a crate::policy::PolicyVersion) -> EnforcedPolicy<'a>;
}

/// What [`EnforcedPolicies::policy`] answers, once it has it.
pub type EnforcedPolicy<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Option<Result<crate::policy::CompiledPolicy, String>>> + Send + 'a>,
>;

/// Putting a manifest the registry still has back on a tag (a drift's Restore).
pub trait RegistryRestore: Send + Sync {
    /// Tags `digest` of `repository` as `tag` again; the error says why not, in words.
    fn put_back<'a>(
        &'a self,
        repository: &'a crate::policy::RepositoryName,
        tag: &'a crate::policy::Tag,
        digest: &'a crate::policy::Digest,
    ) -> RegistryAnswer<'a>;
}

/// The LDAP / Active Directory directory people sign in at with their password there.
pub trait PasswordDirectory: Send + Sync {
    /// Checks `password` by binding as the one entry the user filter finds for `name`: who they
    /// are, with their groups, or `None` when nobody is found or the password is wrong (answered
    /// alike). `Err` says, in words for the person signing in, that the directory cannot answer.
    fn verify<'a>(&'a self, name: &'a str, password: &'a str) -> DirectoryAnswer<'a>;
}

/// What [`PasswordDirectory::verify`] answers.
pub type DirectoryAnswer<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Option<crate::identity::ProviderIdentity>, String>> + Send + 'a>,
>;

/// What [`RegistryRestore::put_back`] answers.
pub type RegistryAnswer<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>>;

static INSTALLED: OnceLock<AppState> = OnceLock::new();

impl AppState {
    /// Makes this the process's state. A process serves one portal: a second one is refused
    /// rather than silently answered with the first one's database.
    pub fn install(self) -> Result<&'static AppState, &'static str> {
        let mut fresh = false;
        let installed = INSTALLED.get_or_init(|| {
            fresh = true;
            self
        });
        if fresh {
            Ok(installed)
        } else {
            Err("this process already serves a portal; run one `tagward serve` per process")
        }
    }

    /// The process's state, once a portal has been built in it.
    pub fn installed() -> Option<&'static AppState> {
        INSTALLED.get()
    }
}

/// Limits password attempts (portal logins, Harbor API Basic auth, password changes) per account
/// and per client address. An attempt is counted *before* its password is verified, so parallel
/// attempts cannot get past the limit; a successful one is taken back, and clears the account.
/// The address limit is higher (several people may share an address), and the address is the
/// client's as [`client_address`] reads it.
pub struct LoginThrottle {
    /// Who may use a password at all (checked once the password is found right).
    password_login: PasswordLogin,
    per_account: usize,
    per_address: usize,
    window: Duration,
    attempts: Mutex<HashMap<String, VecDeque<Instant>>>,
}

/// How many times the per-account limit one client address may use.
pub const ADDRESS_LIMIT_FACTOR: usize = 4;

/// More keys than this and the idle ones are forgotten: a flood of made-up names cannot grow memory.
const MAX_TRACKED_KEYS: usize = 100_000;

/// An attempt counted and not yet judged.
pub struct Attempt {
    /// `account:<name>` (none for an identity provider's callback), then `address:<ip>`.
    keys: Vec<String>,
    at: Instant,
}

impl LoginThrottle {
    pub fn new(per_account: usize, window: Duration) -> Self {
        Self {
            password_login: PasswordLogin::Everyone,
            per_account,
            per_address: per_account.saturating_mul(ADDRESS_LIMIT_FACTOR),
            window,
            attempts: Mutex::new(HashMap::new()),
        }
    }

    /// Who may use a password from now on.
    pub fn with_password_login(self, password_login: PasswordLogin) -> Self {
        Self { password_login, ..self }
    }

    /// Counts an attempt at `account` from `address`, or says how long to wait when either has
    /// used up its attempts within the window. The account is counted as a directory matches
    /// names (case and runs of spaces ignored, as LDAP's `caseIgnoreMatch` does), so that `Ann`,
    /// `ANN` and ` ann ` are one account's attempts, not three times the limit.
    pub fn begin(&self, account: &str, address: IpAddr) -> Result<Attempt, Duration> {
        let account = account.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
        self.count(vec![
            (format!("account:{account}"), self.per_account),
            (format!("address:{address}"), self.per_address),
        ])
    }

    /// Counts an attempt from `address` that names no account (the identity provider's callback).
    pub fn begin_from_address(&self, address: IpAddr) -> Result<Attempt, Duration> {
        self.count(vec![(format!("address:{address}"), self.per_address)])
    }

    fn count(&self, limited: Vec<(String, usize)>) -> Result<Attempt, Duration> {
        let now = Instant::now();
        let mut attempts = self.attempts.locked();
        if attempts.len() >= MAX_TRACKED_KEYS {
            let window = self.window;
            attempts.retain(|_, times| times.back().is_some_and(|t| now.duration_since(*t) < window));
        }
        let mut wait = None;
        for (key, limit) in &limited {
            let limit = *limit;
            let times = attempts.entry(key.clone()).or_default();
            while times.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
                times.pop_front();
            }
            if times.len() >= limit {
                let oldest = times.front().copied().unwrap_or(now);
                let left = self.window.saturating_sub(now.duration_since(oldest)).max(Duration::from_secs(1));
                wait = wait.max(Some(left));
            }
        }
        if let Some(wait) = wait {
            return Err(wait);
        }
        let keys: Vec<String> = limited.into_iter().map(|(key, _)| key).collect();
        for key in &keys {
            attempts.entry(key.clone()).or_default().push_back(now);
        }
        Ok(Attempt { keys, at: now })
    }

    /// The attempt succeeded: it does not count, and the account's failures are forgotten.
    pub fn succeeded(&self, attempt: Attempt) {
        let mut attempts = self.attempts.locked();
        for key in &attempt.keys {
            if key.starts_with("account:") {
                attempts.remove(key);
            } else if let Some(times) = attempts.get_mut(key) {
                if let Some(position) = times.iter().position(|t| *t == attempt.at) {
                    times.remove(position);
                }
            }
        }
    }
}

impl LoginThrottle {
    /// Checks `name`'s password, the attempt counted against the limits before it is verified: a
    /// local user's against their tagward password; anyone else's at the `directory`, when there
    /// is one (a directory user signs in as a provider user does: created at first, their groups
    /// applied each time). A local user is never looked up in the directory, so local system
    /// administrators get in while it is down.
    pub async fn check_credentials(
        &self,
        pool: &PgPool,
        directory: Option<&dyn PasswordDirectory>,
        name: &str,
        password: String,
        address: IpAddr,
    ) -> Result<Option<(crate::account::User, i32)>, crate::store::StoreError> {
        use crate::store::StoreError;
        let attempt = self.begin(name, address).map_err(|wait| StoreError::TryLater {
            message: "too many failed attempts".into(),
            retry_after: wait.as_secs().max(1),
        })?;
        let checked = match directory {
            Some(directory) if !crate::store::has_password(pool, name).await? => {
                match directory.verify(name, &password).await.map_err(StoreError::Unavailable)? {
                    Some(identity) => Some(crate::store::sign_in_from_provider(pool, &identity).await?),
                    None => None,
                }
            }
            _ => crate::store::check_credentials(pool, name, password).await?,
        };
        if checked.is_some() {
            self.succeeded(attempt);
        }
        match checked {
            Some((user, _))
                if self.password_login == PasswordLogin::SystemAdmins
                    && !user.is_system_admin
                    && !user.from_provider =>
            {
                Err(crate::store::StoreError::Forbidden(
                    "password login is only for system administrators here; sign in through the identity provider"
                        .into(),
                ))
            }
            checked => Ok(checked),
        }
    }
}

/// The address a request comes from: the peer's, unless the peer is one of the `trusted` proxies;
/// then the nearest address in `X-Forwarded-For` (or `Forwarded: for=`) that is not a trusted proxy
/// itself. Headers from anyone else are ignored: a client could write anything there.
pub fn client_address(peer: IpAddr, headers: &axum::http::HeaderMap, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let forwarded_for = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|item| item.trim().to_owned());
    let forwarded = headers
        .get_all(axum::http::header::FORWARDED)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split([',', ';']))
        .filter_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            key.eq_ignore_ascii_case("for").then(|| value.trim_matches('"').to_owned())
        });
    let chain: Vec<IpAddr> = forwarded_for
        .chain(forwarded)
        .filter_map(|item| {
            let item = item.trim_start_matches('[');
            let item = item.split(']').next().unwrap_or(item);
            item.parse::<IpAddr>().ok().or_else(|| item.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        })
        .collect();
    chain.iter().rev().find(|ip| !is_trusted(ip)).or(chain.first()).copied().unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_count_before_they_are_verified() {
        let throttle = LoginThrottle::new(5, Duration::from_secs(60));
        let address: IpAddr = "10.0.0.1".parse().unwrap();
        let started: Vec<_> = (0..30).map(|_| throttle.begin("ann", address)).collect();
        assert_eq!(started.iter().filter(|a| a.is_ok()).count(), 5, "only 5 of 30 parallel attempts start");
        // A success is taken back and clears the account.
        let throttle = LoginThrottle::new(2, Duration::from_secs(60));
        throttle.succeeded(throttle.begin("bob", address).unwrap());
        assert!(throttle.begin("bob", address).is_ok() && throttle.begin("bob", address).is_ok());
        assert!(throttle.begin("bob", address).is_err());
        // Spelt otherwise, it is the same account (a directory matches names so).
        assert!(throttle.begin("BOB", address).is_err() && throttle.begin(" bob  ", address).is_err());
        // Other accounts at the same address still get the address's higher limit.
        let others = (0..10).filter(|i| throttle.begin(&format!("user{i}"), address).is_ok()).count();
        assert_eq!(others, 2 * ADDRESS_LIMIT_FACTOR - 2);
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.9, 198.51.100.7, 10.1.1.1".parse().unwrap());
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(client_address(proxy, &headers, &trusted), "198.51.100.7".parse::<IpAddr>().unwrap());
        let stranger: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(client_address(stranger, &headers, &trusted), stranger);
        let mut forwarded = axum::http::HeaderMap::new();
        forwarded.insert("forwarded", "for=\"[2001:db8::1]:4711\";proto=https".parse().unwrap());
        assert_eq!(client_address(proxy, &forwarded, &trusted), "2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(client_address(proxy, &axum::http::HeaderMap::new(), &trusted), proxy);
    }
}

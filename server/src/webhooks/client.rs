//! How a receiver is reached: HTTPS verified against the same roots and CA file as the registry
//! client, no proxies, no redirects followed, a timeout per attempt, a cap on the answer read, and
//! every address a name resolves to checked when connecting (a name that resolved to a public
//! address when the webhook was saved may point inside the network by now).

use app::policy::WebhookUrl;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The most of a receiver's answer read (the rest is not waited for).
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The most of a failed answer kept, to show why it failed.
const SHOWN_ANSWER_CHARS: usize = 300;

pub struct WebhookClient {
    http: reqwest::Client,
    allow_private: bool,
}

/// What the receiver answered.
pub struct Answer {
    pub status: u16,
    /// Its `Retry-After`, in seconds, when it sent one.
    pub retry_after: Option<Duration>,
    /// The start of its body, for a failure's message.
    pub excerpt: String,
}

/// Resolves names as the system does, and refuses any whose addresses are not all allowed.
struct CheckedResolver {
    allow_private: bool,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let addresses = app::webhooks::resolve_allowed(name.as_str(), allow_private).await?;
            let addrs: Addrs = Box::new(addresses.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

impl WebhookClient {
    pub fn new(timeout: Duration, ca_file: Option<&Path>, allow_private: bool) -> anyhow::Result<Self> {
        let tls = crate::registry::tls_config(ca_file)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(CheckedResolver { allow_private }))
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .timeout(timeout)
            .user_agent(concat!("tagward-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, allow_private })
    }

    /// Posts `body` to `url` with `headers`; an answer whatever its status, or why there was none.
    pub async fn post(&self, url: &str, headers: reqwest::header::HeaderMap, body: Vec<u8>) -> Result<Answer, String> {
        let parsed = WebhookUrl::parse("url", url).map_err(|error| error.to_string())?;
        // A URL naming an address is connected to without resolving: check it here.
        if let (Some(address), false) = (parsed.literal_address(), self.allow_private) {
            if let Some(why) = app::policy::forbidden_address(address) {
                return Err(format!("refused: {address} is {why} (TAGWARD_WEBHOOK_ALLOW_PRIVATE allows it)"));
            }
        }
        let mut response = self.http.post(url).headers(headers).body(body).send().await.map_err(describe)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(retry_after);
        let location =
            response.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let mut read = Vec::new();
        while read.len() < MAX_ANSWER_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => read.extend_from_slice(&chunk[..chunk.len().min(MAX_ANSWER_BYTES - read.len())]),
                Ok(None) | Err(_) => break,
            }
        }
        let mut excerpt: String = String::from_utf8_lossy(&read).chars().take(SHOWN_ANSWER_CHARS).collect();
        if let (Some(location), 300..=399) = (location, status) {
            excerpt = format!("redirects are not followed (Location: {location})");
        }
        Ok(Answer { status, retry_after, excerpt })
    }
}

/// Why a request got no answer, in a sentence (reqwest's error, and its causes).
fn describe(error: reqwest::Error) -> String {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    format!("{what}: {}", crate::registry::with_causes(&error))
}

/// `Retry-After` as seconds (`120`) or an HTTP date.
fn retry_after(value: &str) -> Option<Duration> {
    if let Ok(seconds) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(value.trim(), &format).ok()?.assume_utc();
    let wait = at - time::OffsetDateTime::now_utc();
    Some(Duration::from_secs(wait.whole_seconds().max(0).unsigned_abs()))
}

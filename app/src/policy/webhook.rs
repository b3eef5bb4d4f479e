//! What a project's webhook is: where it is sent (a URL that may not point inside the network
//! tagward runs in), which events, in which format, signed with which secret.

use super::FieldError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a webhook can be told. Stored and sent as [`WebhookEvent::as_str`]; the CloudEvents
/// `type` is `dev.tagward.` and that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WebhookEvent {
    DriftFound,
    DriftRestored,
    DriftAcknowledged,
    ExceptionGranted,
    /// Granted in a four-eyes project: waiting for a second admin.
    ExceptionAwaitingApproval,
    ExceptionApproved,
    ExceptionUsed,
    ExceptionRevoked,
    /// An unused exception that runs out within the lead (15 minutes unless set).
    ExceptionExpiring,
    ExceptionExpired,
    RuleCreated,
    RuleChanged,
    RuleDeleted,
    /// Enabled, disabled, set to evaluate, or promoted from evaluating to enforced.
    RuleStateChanged,
    /// A push or delete refused; folded: at most one per rule and repository within a window.
    Denial,
    /// What an evaluating rule would have refused; folded like denials.
    WouldDeny,
    /// Sent on request ("Send test event"); every endpoint takes it.
    Test,
}

impl WebhookEvent {
    /// Every event an endpoint can subscribe to (not `test`, which every endpoint takes).
    pub const ALL: [WebhookEvent; 16] = [
        WebhookEvent::DriftFound,
        WebhookEvent::DriftRestored,
        WebhookEvent::DriftAcknowledged,
        WebhookEvent::ExceptionGranted,
        WebhookEvent::ExceptionAwaitingApproval,
        WebhookEvent::ExceptionApproved,
        WebhookEvent::ExceptionUsed,
        WebhookEvent::ExceptionRevoked,
        WebhookEvent::ExceptionExpiring,
        WebhookEvent::ExceptionExpired,
        WebhookEvent::RuleCreated,
        WebhookEvent::RuleChanged,
        WebhookEvent::RuleDeleted,
        WebhookEvent::RuleStateChanged,
        WebhookEvent::Denial,
        WebhookEvent::WouldDeny,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEvent::DriftFound => "drift.found",
            WebhookEvent::DriftRestored => "drift.restored",
            WebhookEvent::DriftAcknowledged => "drift.acknowledged",
            WebhookEvent::ExceptionGranted => "exception.granted",
            WebhookEvent::ExceptionAwaitingApproval => "exception.awaiting_approval",
            WebhookEvent::ExceptionApproved => "exception.approved",
            WebhookEvent::ExceptionUsed => "exception.used",
            WebhookEvent::ExceptionRevoked => "exception.revoked",
            WebhookEvent::ExceptionExpiring => "exception.expiring",
            WebhookEvent::ExceptionExpired => "exception.expired",
            WebhookEvent::RuleCreated => "rule.created",
            WebhookEvent::RuleChanged => "rule.changed",
            WebhookEvent::RuleDeleted => "rule.deleted",
            WebhookEvent::RuleStateChanged => "rule.state_changed",
            WebhookEvent::Denial => "denial",
            WebhookEvent::WouldDeny => "evaluation.would_deny",
            WebhookEvent::Test => "test",
        }
    }

    /// How a person reads it (the portal's checkboxes, a Slack message's first words).
    pub fn title(self) -> &'static str {
        match self {
            WebhookEvent::DriftFound => "Drift found",
            WebhookEvent::DriftRestored => "Drift restored",
            WebhookEvent::DriftAcknowledged => "Drift acknowledged",
            WebhookEvent::ExceptionGranted => "Exception granted",
            WebhookEvent::ExceptionAwaitingApproval => "Exception waiting for approval",
            WebhookEvent::ExceptionApproved => "Exception approved",
            WebhookEvent::ExceptionUsed => "Exception used",
            WebhookEvent::ExceptionRevoked => "Exception revoked",
            WebhookEvent::ExceptionExpiring => "Exception expiring soon",
            WebhookEvent::ExceptionExpired => "Exception expired unused",
            WebhookEvent::RuleCreated => "Rule created",
            WebhookEvent::RuleChanged => "Rule changed",
            WebhookEvent::RuleDeleted => "Rule deleted",
            WebhookEvent::RuleStateChanged => "Rule state changed",
            WebhookEvent::Denial => "Push or delete denied",
            WebhookEvent::WouldDeny => "Evaluating rule would deny",
            WebhookEvent::Test => "Test event",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().chain([WebhookEvent::Test]).find(|event| event.as_str() == value)
    }

    /// A comma-separated list (`drift.found, exception.used`); `all` is every event.
    pub fn parse_list(field: &str, value: &str) -> Result<Vec<Self>, FieldError> {
        if value.trim() == "all" {
            return Ok(Self::ALL.to_vec());
        }
        let mut events = Vec::new();
        for name in value.split(',').map(str::trim).filter(|name| !name.is_empty()) {
            let event = Self::parse(name).filter(|event| *event != WebhookEvent::Test).ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|event| event.as_str()).collect();
                FieldError::new(field, name, format!("is not an event; events are all, or of {}", known.join(", ")))
            })?;
            if !events.contains(&event) {
                events.push(event);
            }
        }
        if events.is_empty() {
            return Err(FieldError::new(field, value, "names no event: choose at least one"));
        }
        Ok(events)
    }
}

impl fmt::Display for WebhookEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body a webhook is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WebhookFormat {
    /// CloudEvents 1.0, structured mode (`application/cloudevents+json`).
    CloudEvents,
    /// `{"text": …}`, as Slack's (and Mattermost's, Teams' workflows') incoming webhooks take.
    Slack,
}

impl WebhookFormat {
    pub const ALL: [WebhookFormat; 2] = [WebhookFormat::CloudEvents, WebhookFormat::Slack];

    pub fn as_str(self) -> &'static str {
        match self {
            WebhookFormat::CloudEvents => "cloudevents",
            WebhookFormat::Slack => "slack",
        }
    }

    pub fn parse(field: &str, value: &str) -> Result<Self, FieldError> {
        Self::ALL
            .into_iter()
            .find(|format| format.as_str() == value.trim())
            .ok_or_else(|| FieldError::new(field, value, "is not a format; formats are cloudevents and slack"))
    }
}

/// The longest URL taken.
pub const MAX_URL_CHARS: usize = 2048;
/// The shortest secret taken (HMAC keys shorter than this are guessable).
pub const MIN_SECRET_CHARS: usize = 16;
/// The longest secret or `Authorization` value taken.
pub const MAX_SECRET_CHARS: usize = 1024;

/// An `http://` or `https://` URL with a host, without credentials in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookUrl {
    url: String,
    host: String,
}

impl WebhookUrl {
    pub fn parse(field: &str, value: &str) -> Result<Self, FieldError> {
        let refuse = |why: &str| FieldError::new(field, value, why);
        let url = value.trim();
        if url.len() > MAX_URL_CHARS {
            return Err(refuse(&format!("is longer than {MAX_URL_CHARS} characters")));
        }
        if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(refuse("holds spaces or control characters"));
        }
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .ok_or_else(|| refuse("must start with https:// or http://"))?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err(refuse("may not hold a user name or password (use the Authorization value)"));
        }
        let host = match authority.strip_prefix('[') {
            Some(bracketed) => {
                let (address, port) =
                    bracketed.split_once(']').ok_or_else(|| refuse("has an unclosed [ in its host"))?;
                address.parse::<Ipv6Addr>().map_err(|_| refuse("has a bracketed host that is not an IPv6 address"))?;
                check_port(port).map_err(&refuse)?;
                address.to_owned()
            }
            None => {
                let (host, port) =
                    authority.split_once(':').map_or((authority, ""), |(host, _)| (host, &authority[host.len()..]));
                check_port(port).map_err(&refuse)?;
                host.to_owned()
            }
        };
        let is_name = |host: &str| {
            !host.is_empty()
                && host.len() <= 253
                && host.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                        && !label.starts_with('-')
                })
        };
        if host.parse::<IpAddr>().is_err() && !is_name(host.trim_end_matches('.')) {
            return Err(refuse("has no valid host name"));
        }
        Ok(Self { url: url.to_owned(), host: host.to_ascii_lowercase() })
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// The host, without brackets or port: a name to resolve, or an address.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The host's address when the URL names one rather than a name.
    pub fn literal_address(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

fn check_port(port: &str) -> Result<(), &'static str> {
    match port {
        "" => Ok(()),
        _ => match port.strip_prefix(':').map(str::parse::<u16>) {
            Some(Ok(port)) if port > 0 => Ok(()),
            _ => Err("has a port that is not a number from 1 to 65535"),
        },
    }
}

/// An optional `Authorization` value (empty: none): one line of at most 1024 characters.
pub fn parse_authorization(field: &str, value: &str) -> Result<Option<String>, FieldError> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    // Bytes, not characters: it goes out as a header value.
    if value.len() > MAX_SECRET_CHARS || value.chars().any(char::is_control) {
        // Like a secret, it is never echoed.
        return Err(FieldError::without_value(field, "must be one line of at most 1024 bytes"));
    }
    Ok(Some(value.to_owned()))
}

/// The key every body is signed with: at least 16 characters, kept write-only.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    pub fn parse(field: &str, value: &str) -> Result<Self, FieldError> {
        let chars = value.chars().count();
        if !(MIN_SECRET_CHARS..=MAX_SECRET_CHARS).contains(&chars) {
            // The value is a secret: the error says how long it was, never what it was.
            return Err(FieldError::without_value(
                field,
                format!("must be {MIN_SECRET_CHARS} to {MAX_SECRET_CHARS} characters long (it has {chars})"),
            ));
        }
        if value.chars().any(char::is_control) {
            return Err(FieldError::without_value(field, "may not hold control characters"));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(…)")
    }
}

/// Why tagward may not connect to `address` for a webhook, if it may not: loopback, private,
/// link-local (the cloud metadata services live there), shared, multicast and reserved addresses
/// are inside the network tagward runs in, not a receiver's. IPv4 inside IPv6 is judged as IPv4.
pub fn forbidden_address(address: IpAddr) -> Option<&'static str> {
    match address {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(address: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = address.octets();
    Some(match (a, b, c) {
        (0, ..) => "an unspecified (0.0.0.0/8) address",
        (127, ..) => "a loopback address",
        (10, ..) | (192, 168, _) => "a private address",
        (172, 16..=31, _) => "a private address",
        (169, 254, _) => "a link-local address (where cloud metadata services answer)",
        (100, 64..=127, _) => "a shared (carrier-grade NAT) address",
        (192, 0, 0) => "an IETF protocol assignment address",
        (198, 18..=19, _) => "a benchmarking address",
        (224..=239, ..) => "a multicast address",
        (240..=255, ..) => "a reserved or broadcast address",
        _ => return None,
    })
}

fn forbidden_v6(address: Ipv6Addr) -> Option<&'static str> {
    let segments = address.segments();
    if let Some(v4) = address.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address a gateway would reach.
    let embedded = |high: u16, low: u16| Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return forbidden_v4(embedded(segments[6], segments[7]));
    }
    if segments[0] == 0x2002 {
        return forbidden_v4(embedded(segments[1], segments[2]));
    }
    Some(match segments[0] {
        _ if address.is_unspecified() => "an unspecified address",
        _ if address.is_loopback() => "a loopback address",
        // IPv4-compatible (deprecated) addresses, ::a.b.c.d.
        0 if segments[1..6] == [0; 5] => "an IPv4-compatible address",
        s if s & 0xfe00 == 0xfc00 => "a unique local (private) address",
        s if s & 0xffc0 == 0xfe80 => "a link-local address",
        s if s & 0xffc0 == 0xfec0 => "a site-local address",
        s if s & 0xff00 == 0xff00 => "a multicast address",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_need_a_scheme_and_a_host_and_no_credentials() {
        let url = WebhookUrl::parse("url", "https://hooks.example.com:8443/tagward?x=1").unwrap();
        assert_eq!(url.host(), "hooks.example.com");
        assert_eq!(
            WebhookUrl::parse("url", "http://[::1]:9/").unwrap().literal_address(),
            Some("::1".parse().unwrap())
        );
        assert_eq!(WebhookUrl::parse("url", "http://10.0.0.1/").unwrap().host(), "10.0.0.1");
        for bad in [
            "ftp://x/",
            "https://",
            "https://user:pw@example.com/",
            "https://exa mple.com/",
            "https://example.com:0/",
            "https://example.com:99999/",
            "https://[::1/",
            "https://-bad.example/",
            "https://a..b/",
        ] {
            let error = WebhookUrl::parse("url", bad).unwrap_err();
            assert_eq!((error.field.as_str(), error.value.as_deref()), ("url", Some(bad)), "{bad}: {error}");
        }
    }

    #[test]
    fn addresses_inside_the_network_are_forbidden() {
        for inside in [
            "127.0.0.1",
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "ff02::1",
        ] {
            assert!(forbidden_address(inside.parse().unwrap()).is_some(), "{inside}");
        }
        for outside in ["93.184.215.14", "2606:4700::6810:84e5", "172.32.0.1", "8.8.8.8"] {
            assert_eq!(forbidden_address(outside.parse().unwrap()), None, "{outside}");
        }
    }

    #[test]
    fn events_parse_as_a_list_and_name_what_they_refuse() {
        let events = WebhookEvent::parse_list("events", "drift.found, denial,drift.found").unwrap();
        assert_eq!(events, [WebhookEvent::DriftFound, WebhookEvent::Denial]);
        assert_eq!(WebhookEvent::parse_list("events", "all").unwrap().len(), WebhookEvent::ALL.len());
        let unknown = WebhookEvent::parse_list("events", "drift.found,push").unwrap_err();
        assert_eq!(unknown.value.as_deref(), Some("push"));
        assert!(WebhookEvent::parse_list("events", " , ").is_err());
        assert!(WebhookEvent::parse_list("events", "test").is_err());
        assert!(WebhookSecret::parse("secret", "short").unwrap_err().value.is_none());
    }
}

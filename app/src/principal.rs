//! Who is asking — a signed-in person, a service token, the operator at the command line, or
//! tagward itself (its gateway, sync, event receiver, group sync, bootstrap) — and what each may
//! do. Every surface turns its caller into a [`Principal`]; every change in `store` asks it and
//! the audit trail records it; no surface decides alone, and no actor is a bare string.

use crate::account::{Role, TokenGrant, TokenScope, User};
use std::fmt;

#[derive(Debug, Clone)]
pub enum Principal {
    /// A person: signed in to the portal, or through HTTP Basic on the Harbor API.
    User(User),
    /// A service token, within what it was granted.
    Token(ServiceToken),
    /// Whoever holds the database URL at the command line. Acts as a system administrator. The
    /// label is what the audit trail records, e.g. `cli:alice`.
    Operator(String),
    /// tagward itself, acting on its own.
    Tagward(Service),
}

/// The parts of tagward that act on their own, as the trail names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// The server creating its first administrator (`--bootstrap-admin-password`).
    Bootstrap,
    /// The enforcing gateway, deciding a registry client's request (it uses exceptions).
    Gateway,
    /// The background sync, recording drift it found.
    InventorySync,
    /// The registry events receiver, recording drift they report.
    RegistryEvents,
    /// A sign-in applying the roles the identity provider's groups grant.
    ProviderGroups,
}

impl Service {
    fn actor(self) -> &'static str {
        match self {
            Service::Bootstrap => "tagward serve (bootstrap)",
            Service::Gateway => "gateway",
            Service::InventorySync => "tagward (inventory sync)",
            Service::RegistryEvents => "tagward (registry events)",
            Service::ProviderGroups => "tagward (identity provider groups)",
        }
    }
}

/// The name `/etc/passwd` gives user id `uid`, if it has one.
#[cfg(unix)]
fn login_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id = fields.nth(1)?;
        (id.parse::<u32>().ok()? == uid && !name.is_empty() && name.chars().all(|c| c.is_ascii_graphic()))
            .then(|| name.to_owned())
    })
}

/// A service token as a caller.
#[derive(Debug, Clone)]
pub struct ServiceToken {
    pub id: i64,
    pub name: String,
    pub grant: TokenGrant,
}

/// Why a principal may not do something, in a sentence for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied(pub String);

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Principal {
    /// The operator at this command line: `cli:` and the login name (`$SUDO_USER` first, so that a
    /// change made with sudo names the person, then `$USER`, `$LOGNAME`, then the name the system's
    /// user database gives the process's user id, as in a container where no variable is set), or
    /// the numeric id when no name is known.
    pub fn command_line() -> Self {
        let from_env = ["SUDO_USER", "USER", "LOGNAME"]
            .into_iter()
            .filter_map(|key| std::env::var(key).ok())
            .find(|name| !name.is_empty() && name.chars().all(|c| c.is_ascii_graphic()));
        let name = from_env.unwrap_or_else(|| {
            #[cfg(unix)]
            {
                use std::os::unix::fs::MetadataExt;
                match std::fs::metadata("/proc/self").map(|m| m.uid()) {
                    Ok(uid) => login_name(uid).unwrap_or_else(|| format!("uid {uid}")),
                    Err(_) => "unknown".to_owned(),
                }
            }
            #[cfg(not(unix))]
            "unknown".to_owned()
        });
        Principal::Operator(format!("cli:{name}"))
    }

    /// The server creating its first administrator (`--bootstrap-admin-password`).
    pub fn bootstrap() -> Self {
        Principal::Tagward(Service::Bootstrap)
    }

    /// The name the audit trail and the `created_by`/`updated_by` columns record.
    pub fn actor(&self) -> String {
        match self {
            Principal::User(user) => user.name.clone(),
            Principal::Token(token) => format!("token:{}", token.name),
            Principal::Operator(label) => label.clone(),
            Principal::Tagward(service) => service.actor().to_owned(),
        }
    }

    /// The name a decision records for who asked (a denial's caller, an exception's `used_by`):
    /// a token by its bare name, as the registry holding it knows it; anyone else as the trail
    /// names them.
    pub fn caller(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Principal::Token(token) => std::borrow::Cow::Borrowed(&token.name),
            Principal::Tagward(service) => std::borrow::Cow::Borrowed(service.actor()),
            other => std::borrow::Cow::Owned(other.actor()),
        }
    }

    /// The person, if it is one.
    pub fn user(&self) -> Option<&User> {
        match self {
            Principal::User(user) => Some(user),
            _ => None,
        }
    }

    fn is_administrator(&self) -> bool {
        match self {
            Principal::User(user) => user.is_system_admin,
            Principal::Operator(_) => true,
            // Only those parts of tagward that change people and roles act as administrators.
            Principal::Tagward(service) => matches!(service, Service::Bootstrap | Service::ProviderGroups),
            Principal::Token(_) => false,
        }
    }

    /// Users, projects and service tokens: system administrators and the operator.
    pub fn may_administer(&self) -> Result<(), Denied> {
        if self.is_administrator() {
            return Ok(());
        }
        Err(Denied("only system administrators may do this".into()))
    }

    /// Whether `project` is in sight, given the principal's `role` in it.
    pub fn may_see(&self, project: &str, role: Option<Role>) -> bool {
        match self {
            Principal::Token(token) => token.grant.allows(TokenScope::RulesRead, Some(project)),
            other => other.is_administrator() || role.is_some(),
        }
    }

    /// Reading projects and rules through the Harbor API: any person (visibility decides which
    /// projects), a token only with `rules:read` (or `rules:write`).
    pub fn may_read_rules(&self) -> Result<(), Denied> {
        self.token_needs(TokenScope::RulesRead, None)
    }

    /// Changing rules through the Harbor API at all: a token only with `rules:write` (which
    /// project, and a person's role there, is [`Self::may_change_rules`]).
    pub fn may_write_rules(&self) -> Result<(), Denied> {
        self.token_needs(TokenScope::RulesWrite, None)
    }

    /// A token limited to other projects may not reach `project`; anyone else passes here
    /// (whether they see it is [`Self::may_see`]).
    pub fn may_reach(&self, project: &str) -> Result<(), Denied> {
        self.token_needs(TokenScope::RulesRead, Some(project))
    }

    /// Changing `project`'s rules: its admins and maintainers, system administrators, the
    /// operator, a token with `rules:write` reaching it.
    pub fn may_change_rules(&self, project: &str, role: Option<Role>) -> Result<(), Denied> {
        match self {
            Principal::Token(_) => self.token_needs(TokenScope::RulesWrite, Some(project)),
            other if other.is_administrator() || role.is_some_and(Role::manages_rules) => Ok(()),
            _ => Err(Denied("only project admins and maintainers may change rules".into())),
        }
    }

    /// Changing `project`'s members: its admins, system administrators, the operator.
    pub fn may_manage_members(&self, role: Option<Role>) -> Result<(), Denied> {
        match self {
            Principal::Token(_) => Err(Denied("service tokens may not change members".into())),
            other if other.is_administrator() || role == Some(Role::Admin) => Ok(()),
            _ => Err(Denied("only project admins may change members".into())),
        }
    }

    /// Configuring `project`'s webhooks: its admins, system administrators, the operator.
    pub fn may_manage_webhooks(&self, role: Option<Role>) -> Result<(), Denied> {
        match self {
            Principal::Token(_) => Err(Denied("service tokens may not configure webhooks".into())),
            other if other.is_administrator() || role == Some(Role::Admin) => Ok(()),
            _ => Err(Denied("only project admins may configure webhooks".into())),
        }
    }

    /// Reading the audit stream of `project` (or of every project, for `None`): tokens with
    /// `audit:read` reaching it; system administrators and the operator.
    pub fn may_read_audit(&self, project: Option<&str>) -> Result<(), Denied> {
        match self {
            Principal::Token(_) => self.token_needs(TokenScope::AuditRead, project),
            other if other.is_administrator() => Ok(()),
            _ => Err(Denied("only system administrators and tokens with audit:read may read the audit stream".into())),
        }
    }

    /// Granting, approving and revoking `project`'s one-time exceptions: its admins, system
    /// administrators, the operator; never maintainers, developers or service tokens.
    pub fn may_grant_exceptions(&self, role: Option<Role>) -> Result<(), Denied> {
        match self {
            Principal::Token(_) => Err(Denied("service tokens may not grant exceptions".into())),
            other if other.is_administrator() || role == Some(Role::Admin) => Ok(()),
            _ => Err(Denied("only project admins may grant, approve or revoke exceptions".into())),
        }
    }

    /// The decision API: tokens with `decisions`.
    pub fn may_ask_decisions(&self) -> Result<(), Denied> {
        match self {
            Principal::Token(_) => self.token_needs(TokenScope::Decisions, None),
            _ => Err(Denied("the decision API takes service tokens only".into())),
        }
    }

    /// Reporting the registry's pushes and deletes: tokens with `events`.
    pub fn may_send_events(&self) -> Result<(), Denied> {
        match self {
            Principal::Token(_) => self.token_needs(TokenScope::Events, None),
            _ => Err(Denied("registry events are taken from service tokens only".into())),
        }
    }

    /// A token is refused unless its grant covers `scope` (in `project`, when one is named);
    /// anyone else passes.
    fn token_needs(&self, scope: TokenScope, project: Option<&str>) -> Result<(), Denied> {
        let Principal::Token(token) = self else { return Ok(()) };
        if token.grant.allows(scope, project) {
            return Ok(());
        }
        let (name, has) = (&token.name, token.grant.describe());
        Err(Denied(match project {
            Some(project) if token.grant.allows(scope, None) => {
                format!("the service token `{name}` may not reach project `{project}` (it has: {has})")
            }
            _ => format!("the service token `{name}` lacks the scope `{scope}` (it has: {has})"),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(is_system_admin: bool) -> Principal {
        Principal::User(User { id: 1, name: "ann".into(), is_system_admin, from_provider: false })
    }

    fn token(scopes: &[&str], projects: &[&str]) -> Principal {
        let grant = TokenGrant::parse(scopes, projects).unwrap();
        Principal::Token(ServiceToken { id: 7, name: "ci".into(), grant })
    }

    #[test]
    fn people_act_by_role_and_tokens_by_grant() {
        assert!(user(false).may_change_rules("shop", Some(Role::Maintainer)).is_ok());
        assert!(user(false).may_change_rules("shop", Some(Role::Developer)).is_err());
        assert!(user(true).may_change_rules("shop", None).is_ok());
        assert!(user(false).may_manage_members(Some(Role::Maintainer)).is_err());
        assert!(user(false).may_administer().is_err());
        assert!(Principal::command_line().may_administer().is_ok());

        let decisions = token(&[], &[]);
        assert!(decisions.may_ask_decisions().is_ok());
        let refused = decisions.may_read_rules().unwrap_err();
        assert!(refused.0.contains("lacks the scope `rules:read`"), "{refused}");
        assert!(decisions.may_administer().is_err());
        assert!(!decisions.may_see("shop", None));

        let writer = token(&["rules:write"], &["shop"]);
        assert!(writer.may_change_rules("shop", None).is_ok());
        let elsewhere = writer.may_change_rules("web", None).unwrap_err();
        assert!(elsewhere.0.contains("may not reach project `web`"), "{elsewhere}");
        assert!(writer.may_see("shop", None) && !writer.may_see("web", None));
        assert!(writer.may_ask_decisions().is_err());
        assert!(writer.may_manage_members(None).is_err());
        assert!(writer.may_grant_exceptions(Some(Role::Admin)).is_err());
        assert!(user(false).may_grant_exceptions(Some(Role::Admin)).is_ok());
        assert!(user(false).may_grant_exceptions(Some(Role::Maintainer)).is_err());
        assert!(user(true).may_grant_exceptions(None).is_ok());
        assert_eq!(writer.actor(), "token:ci");
    }
}

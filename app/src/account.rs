//! Portal accounts: user names, passwords and project roles, parsed once where they come in.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A portal user name: 1 to 64 of lowercase letters, digits, `.`, `_`, `-`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UserName(String);

impl UserName {
    pub fn parse(value: &str) -> Result<Self, String> {
        let mut chars = value.chars();
        let ok = value.len() <= 64
            && chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(format!(
                "user name `{value}` is not valid: use 1 to 64 lowercase letters, digits, `.`, `_` or `-`, starting with a letter or digit"
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A new password: at least 12 characters. Never printed.
#[derive(Clone)]
pub struct NewPassword(String);

/// The shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 12;

impl NewPassword {
    pub fn parse(value: &str) -> Result<Self, String> {
        let length = value.chars().count();
        if length < MIN_PASSWORD_LEN {
            Err(format!("password is too short: {length} characters, at least {MIN_PASSWORD_LEN} are needed"))
        } else if value.len() > 1024 {
            Err("password is longer than 1024 bytes".to_owned())
        } else {
            Ok(Self(value.to_owned()))
        }
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword(..)")
    }
}

/// A member's role in a project. Admins and maintainers manage rules; developers and guests see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Maintainer,
    Developer,
    Guest,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Maintainer, Role::Developer, Role::Guest];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Maintainer => "maintainer",
            Role::Developer => "developer",
            Role::Guest => "guest",
        }
    }
    pub fn parse(value: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|role| role.as_str() == value)
            .ok_or_else(|| format!("role `{value}` is not one of admin, maintainer, developer, guest"))
    }
    /// Higher for a role that may do more (admin highest).
    pub fn rank(self) -> u8 {
        match self {
            Role::Admin => 3,
            Role::Maintainer => 2,
            Role::Developer => 1,
            Role::Guest => 0,
        }
    }
    pub fn manages_rules(self) -> bool {
        matches!(self, Role::Admin | Role::Maintainer)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a user signs in: with a tagward password, through the OpenID Connect provider, or with
/// their password in the LDAP / Active Directory directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserSource {
    Local,
    Provider,
    Directory,
}

impl UserSource {
    pub fn as_str(self) -> &'static str {
        match self {
            UserSource::Local => "local",
            UserSource::Provider => "provider",
            UserSource::Directory => "directory",
        }
    }
    pub fn parse(value: &str) -> Result<Self, String> {
        match value {
            "local" => Ok(UserSource::Local),
            "provider" => Ok(UserSource::Provider),
            "directory" => Ok(UserSource::Directory),
            other => Err(format!("user source `{other}` is not one of local, provider, directory")),
        }
    }
}

impl fmt::Display for UserSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The signed-in user, as pages see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub is_system_admin: bool,
    /// Signs in through the identity provider or the directory (has no tagward password).
    #[serde(default)]
    pub from_provider: bool,
}

/// A project as listed for a user: its name and the user's role in it (none for a system admin
/// who is not a member).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectAccess {
    pub id: i64,
    pub name: String,
    pub role: Option<Role>,
    pub can_manage_rules: bool,
    pub can_manage_members: bool,
}

/// The name of a service token (which registry backend holds it): 1 to 64 of lowercase letters,
/// digits, `.`, `_`, `-`, starting and ending with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TokenName(String);

impl TokenName {
    pub fn parse(value: &str) -> Result<Self, String> {
        let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        let ok = (1..=64).contains(&value.len())
            && value.starts_with(alnum)
            && value.ends_with(alnum)
            && value.chars().all(|c| alnum(c) || matches!(c, '.' | '_' | '-'));
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(format!(
                "token name `{value}` is not valid: use 1 to 64 lowercase letters, digits, `.`, `_` or `-`, starting and ending with a letter or digit"
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TokenName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a service token may do. Least privilege: a token made for a registry backend asks for
/// decisions and nothing else; reading or changing rules through the Harbor API is given explicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TokenScope {
    /// The decision API: checks, batches, tag status.
    Decisions,
    /// Reading projects and rules through the Harbor API.
    RulesRead,
    /// Changing rules through the Harbor API (reading them too).
    RulesWrite,
    /// Sending the registry's notifications (pushes and deletes) to keep the tag inventory live.
    Events,
    /// Reading the audit trail as a stream (a SIEM's collector), of the projects it reaches.
    AuditRead,
}

impl TokenScope {
    pub const ALL: [TokenScope; 5] = [
        TokenScope::Decisions,
        TokenScope::RulesRead,
        TokenScope::RulesWrite,
        TokenScope::Events,
        TokenScope::AuditRead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Decisions => "decisions",
            TokenScope::RulesRead => "rules:read",
            TokenScope::RulesWrite => "rules:write",
            TokenScope::Events => "events",
            TokenScope::AuditRead => "audit:read",
        }
    }

    pub fn parse(value: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == value.trim()).ok_or_else(|| {
            let known: Vec<&str> = Self::ALL.iter().map(|scope| scope.as_str()).collect();
            format!("scope `{value}` is not one of {}", known.join(", "))
        })
    }
}

impl fmt::Display for TokenScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a service token is granted: its scopes and, when limited, the only projects its rule
/// scopes reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenGrant {
    pub scopes: Vec<TokenScope>,
    /// `None`: every project.
    pub projects: Option<Vec<crate::policy::ProjectName>>,
}

impl Default for TokenGrant {
    /// Decisions only: what a registry backend needs.
    fn default() -> Self {
        Self { scopes: vec![TokenScope::Decisions], projects: None }
    }
}

impl TokenGrant {
    /// From what a person typed (scope and project names); no scope means decisions only.
    pub fn parse<S: AsRef<str>>(scopes: &[S], projects: &[S]) -> Result<Self, String> {
        let mut parsed = scopes
            .iter()
            .map(|s| s.as_ref())
            .filter(|s| !s.trim().is_empty())
            .map(TokenScope::parse)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("scopes: {e}"))?;
        if parsed.is_empty() {
            parsed.push(TokenScope::Decisions);
        }
        parsed.sort();
        parsed.dedup();
        let projects = projects
            .iter()
            .map(|p| p.as_ref().trim())
            .filter(|p| !p.is_empty())
            .map(|p| crate::policy::ProjectName::parse(p).map_err(|e| format!("projects: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { scopes: parsed, projects: (!projects.is_empty()).then_some(projects) })
    }

    /// Whether the grant covers `scope` (for rule scopes, in `project` when one is named).
    /// `rules:write` includes `rules:read`.
    pub fn allows(&self, scope: TokenScope, project: Option<&str>) -> bool {
        let has = |s| self.scopes.contains(&s);
        let scoped = match scope {
            TokenScope::Decisions => has(TokenScope::Decisions),
            TokenScope::RulesRead => has(TokenScope::RulesRead) || has(TokenScope::RulesWrite),
            TokenScope::RulesWrite => has(TokenScope::RulesWrite),
            TokenScope::Events => has(TokenScope::Events),
            TokenScope::AuditRead => has(TokenScope::AuditRead),
        };
        // Decisions and events concern the whole registry; the rule and audit scopes are limited
        // to projects.
        let project_wide = matches!(scope, TokenScope::Decisions | TokenScope::Events);
        scoped && (project_wide || project.is_none_or(|p| self.reaches(p)))
    }

    /// Whether the grant's rule scopes reach `project`.
    pub fn reaches(&self, project: &str) -> bool {
        self.projects.as_ref().is_none_or(|projects| projects.iter().any(|p| p.as_str() == project))
    }

    /// e.g. `decisions, rules:write (projects shop, web)`.
    pub fn describe(&self) -> String {
        let scopes: Vec<&str> = self.scopes.iter().map(|s| s.as_str()).collect();
        match &self.projects {
            None => scopes.join(", "),
            Some(projects) => format!(
                "{} (projects {})",
                scopes.join(", "),
                projects.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

/// A bearer token's secret, as shown once to whoever creates it: `tw_` and 64 hex digits (256
/// random bits). Only its SHA-256 is stored.
#[cfg(feature = "ssr")]
pub struct TokenSecret(String);

#[cfg(feature = "ssr")]
impl TokenSecret {
    pub const PREFIX: &'static str = "tw_";

    pub fn generate() -> Self {
        let bytes: [u8; 32] = rand::random();
        Self(format!("{}{}", Self::PREFIX, hex::encode(bytes)))
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn sha256(&self) -> [u8; 32] {
        token_sha256(&self.0)
    }
}

/// The hash a presented bearer token is looked up by.
#[cfg(feature = "ssr")]
pub fn token_sha256(presented: &str) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(presented.as_bytes()).into()
}

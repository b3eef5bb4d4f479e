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
    pub fn manages_rules(self) -> bool {
        matches!(self, Role::Admin | Role::Maintainer)
    }
}

impl fmt::Display for Role {
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
}

/// A project as listed for a user: its name and the user's role in it (none for a system admin
/// who is not a member).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectAccess {
    pub id: i64,
    pub name: String,
    pub role: Option<Role>,
    pub can_manage_rules: bool,
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

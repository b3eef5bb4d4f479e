//! People who sign in through the organisation's identity provider: the groups it says they are
//! in, what a group grants in tagward, and the roles a set of groups adds up to. Pure: the store
//! applies [`granted_roles`] at each sign-in.

use crate::account::Role;
use crate::policy::ProjectName;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A group as the provider names it in the groups claim (`platform-admins`, `/shop/devs`, an Entra
/// object id): 1 to 256 characters, none of them control characters, compared exactly.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct GroupName(String);

impl GroupName {
    pub fn parse(value: &str) -> Result<Self, String> {
        if value.is_empty() || value.chars().count() > 256 || value.chars().any(char::is_control) {
            return Err(format!(
                "group `{}` is not valid: use 1 to 256 characters, no control characters",
                value.escape_debug()
            ));
        }
        Ok(Self(value.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GroupName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What membership of a group grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupGrant {
    SystemAdmin,
    Project { project: ProjectName, role: Role },
}

impl GroupGrant {
    /// `system-admin`, or a project and one of its roles, as the portal's form and the CLI give them.
    pub fn parse(project: Option<&str>, role: &str) -> Result<Self, String> {
        let project_role = || {
            Role::parse(role)
                .map_err(|_| format!("role `{role}` is not one of system-admin, admin, maintainer, developer, guest"))
        };
        match (project.filter(|p| !p.is_empty()), role) {
            (None, "system-admin") => Ok(GroupGrant::SystemAdmin),
            (Some(project), "system-admin") => {
                Err(format!("role `system-admin` is not a project role; leave project `{project}` out"))
            }
            (None, _) => project_role().and_then(|_| Err(format!("role `{role}` needs a project"))),
            (Some(project), _) => Ok(GroupGrant::Project {
                project: ProjectName::parse(project).map_err(|e| e.to_string())?,
                role: project_role()?,
            }),
        }
    }

    /// The stored role: `system-admin` or a project role.
    pub fn role_str(&self) -> &'static str {
        match self {
            GroupGrant::SystemAdmin => "system-admin",
            GroupGrant::Project { role, .. } => role.as_str(),
        }
    }
}

impl fmt::Display for GroupGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupGrant::SystemAdmin => f.write_str("system administrator"),
            GroupGrant::Project { project, role } => write!(f, "{role} of project `{project}`"),
        }
    }
}

/// One mapping: members of `group` get `grant`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMapping {
    pub id: i64,
    pub group: GroupName,
    pub grant: GroupGrant,
}

/// What a user's groups add up to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantedRoles {
    pub system_admin: bool,
    /// Each project's highest role any of the groups grants.
    pub projects: BTreeMap<ProjectName, Role>,
}

/// The roles `groups` grant under `mappings`: system administrator if any group grants it, and per
/// project the highest role of those granted.
pub fn granted_roles<'a>(mappings: &[GroupMapping], groups: impl IntoIterator<Item = &'a str>) -> GrantedRoles {
    let groups: std::collections::HashSet<&str> = groups.into_iter().collect();
    let mut granted = GrantedRoles::default();
    for mapping in mappings.iter().filter(|m| groups.contains(m.group.as_str())) {
        match &mapping.grant {
            GroupGrant::SystemAdmin => granted.system_admin = true,
            GroupGrant::Project { project, role } => {
                let held = granted.projects.entry(project.clone()).or_insert(*role);
                if role.rank() > held.rank() {
                    *held = *role;
                }
            }
        }
    }
    granted
}

/// Who the provider (or the directory) says signed in, once their ID token (or password) is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderIdentity {
    /// The provider's issuer URL (or [`DIRECTORY_ISSUER`]) and the user's subject there: what
    /// identifies them.
    pub issuer: String,
    pub subject: String,
    /// The tagward user name a first sign-in creates (from the configured claim or attribute).
    pub name: crate::account::UserName,
    /// Their e-mail address as the provider or directory has it now, if it gives one.
    pub email: Option<String>,
    pub groups: Vec<String>,
}

/// The issuer recorded for users of the LDAP / Active Directory directory (their subject is their
/// entry's DN, or the configured id attribute). Not a URL, so no OpenID provider can have it.
pub const DIRECTORY_ISSUER: &str = "directory";

/// The tagward user name for the name a provider or directory gives: lowercased, and of an e-mail
/// address or user principal name (`Alice@example.com`) the part before `@`.
pub fn user_name_from(given: &str) -> Result<crate::account::UserName, String> {
    let local = given.split('@').next().unwrap_or_default();
    crate::account::UserName::parse(&local.to_lowercase())
}

/// An LDAP search filter with placeholders (`(uid={name})`, `(member={dn})`), parsed once from a
/// setting: values are put in escaped as RFC 4515 asks, so that what someone types as their user
/// name (`*)(uid=*`) can only ever be a value, never more filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterTemplate(String);

impl FilterTemplate {
    /// `setting` names where the template came from; `placeholders` are the ones it may use, and it
    /// must use at least one of them.
    pub fn parse(setting: &str, template: &str, placeholders: &[&str]) -> Result<Self, String> {
        let bad = |why: &str| format!("{setting} `{}` is not a usable LDAP filter: {why}", template.escape_debug());
        let mut depth = 0usize;
        for c in template.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.checked_sub(1).ok_or_else(|| bad("a `)` closes nothing"))?,
                c if c.is_control() => return Err(bad("it holds a control character")),
                _ => {}
            }
        }
        if !template.starts_with('(') || !template.ends_with(')') || depth != 0 {
            return Err(bad("write it in parentheses, each `(` closed"));
        }
        let mut rest = template;
        let mut used = false;
        while let Some(start) = rest.find('{') {
            let end = rest[start..].find('}').ok_or_else(|| bad("a `{` is not closed"))?;
            let name = &rest[start + 1..start + end];
            if !placeholders.contains(&name) {
                let known: Vec<String> = placeholders.iter().map(|p| format!("{{{p}}}")).collect();
                return Err(bad(&format!("`{{{name}}}` is not one of {}", known.join(", "))));
            }
            used = true;
            rest = &rest[start + end + 1..];
        }
        if !used {
            let known: Vec<String> = placeholders.iter().map(|p| format!("{{{p}}}")).collect();
            return Err(bad(&format!("it must use {}", known.join(" or "))));
        }
        Ok(Self(template.to_owned()))
    }

    /// The filter with each `{placeholder}` replaced by its value, escaped.
    pub fn fill(&self, values: &[(&str, &str)]) -> String {
        let mut filter = self.0.clone();
        for (placeholder, value) in values {
            filter = filter.replace(&format!("{{{placeholder}}}"), &escape_filter_value(value));
        }
        filter
    }
}

impl fmt::Display for FilterTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A value for an LDAP filter, escaped (RFC 4515 section 3): `*`, `(`, `)`, `\` and NUL become
/// `\2a`, `\28`, `\29`, `\5c`, `\00`; `{` and `}` too, so a value cannot look like a placeholder.
pub fn escape_filter_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '*' | '(' | ')' | '\\' | '\0' | '{' | '}' => escaped.push_str(&format!("\\{:02x}", c as u32)),
            c => escaped.push(c),
        }
    }
    escaped
}

/// The attribute type and value of a DN's first RDN (RFC 4514): `cn=shop\2C devs,ou=groups` gives
/// (`cn`, `shop, devs`). `None` for what is not a DN.
pub fn first_rdn(dn: &str) -> Option<(String, String)> {
    let (attribute, rest) = dn.split_once('=')?;
    let attribute = attribute.trim();
    if attribute.is_empty() || !attribute.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
        return None;
    }
    let mut bytes = Vec::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            ',' | '+' => break,
            '\\' => {
                let next = chars.next()?;
                if next.is_ascii_hexdigit() {
                    let low = chars.next().filter(char::is_ascii_hexdigit)?;
                    bytes.push(u8::from_str_radix(&format!("{next}{low}"), 16).ok()?);
                } else {
                    let mut buffer = [0u8; 4];
                    bytes.extend_from_slice(next.encode_utf8(&mut buffer).as_bytes());
                }
            }
            c => {
                let mut buffer = [0u8; 4];
                bytes.extend_from_slice(c.encode_utf8(&mut buffer).as_bytes());
            }
        }
    }
    let value = String::from_utf8(bytes).ok()?;
    (!value.trim().is_empty()).then(|| (attribute.to_owned(), value.trim().to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(id: i64, group: &str, project: Option<&str>, role: &str) -> GroupMapping {
        GroupMapping { id, group: GroupName::parse(group).unwrap(), grant: GroupGrant::parse(project, role).unwrap() }
    }

    #[test]
    fn groups_add_up_to_the_highest_role_per_project() {
        let mappings = [
            mapping(1, "platform-admins", None, "system-admin"),
            mapping(2, "shop-devs", Some("shop"), "developer"),
            mapping(3, "shop-leads", Some("shop"), "admin"),
            mapping(4, "ops", Some("ops"), "guest"),
        ];
        let granted = granted_roles(&mappings, ["shop-devs", "shop-leads", "unmapped"]);
        assert!(!granted.system_admin);
        assert_eq!(granted.projects.len(), 1);
        assert_eq!(granted.projects[&ProjectName::parse("shop").unwrap()], Role::Admin);
        let granted = granted_roles(&mappings, ["platform-admins", "ops"]);
        assert!(granted.system_admin);
        assert_eq!(granted.projects[&ProjectName::parse("ops").unwrap()], Role::Guest);
        assert_eq!(granted_roles(&mappings, []), GrantedRoles::default());
        // Compared exactly: a group's name is the provider's, not tagward's.
        assert_eq!(granted_roles(&mappings, ["Shop-Devs"]), GrantedRoles::default());
    }

    #[test]
    fn filter_values_are_escaped_so_they_stay_values() {
        let users = FilterTemplate::parse("TAGWARD_LDAP_USER_FILTER", "(&(objectClass=person)(uid={name}))", &["name"])
            .unwrap();
        assert_eq!(users.fill(&[("name", "ann")]), "(&(objectClass=person)(uid=ann))");
        assert_eq!(users.fill(&[("name", "*)(uid=*")]), "(&(objectClass=person)(uid=\\2a\\29\\28uid=\\2a))");
        assert_eq!(users.fill(&[("name", "admin)(|(a=*")]), "(&(objectClass=person)(uid=admin\\29\\28|\\28a=\\2a))");
        assert_eq!(users.fill(&[("name", "a\\b\0{dn}")]), "(&(objectClass=person)(uid=a\\5cb\\00\\7bdn\\7d))");
        let groups =
            FilterTemplate::parse("TAGWARD_LDAP_GROUP_FILTER", "(|(member={dn})(memberUid={name}))", &["dn", "name"])
                .unwrap();
        assert_eq!(
            groups.fill(&[("dn", "cn=Smith\\, Ann,ou=people"), ("name", "ann")]),
            "(|(member=cn=Smith\\5c, Ann,ou=people)(memberUid=ann))"
        );
        let refused =
            |template: &str| FilterTemplate::parse("TAGWARD_LDAP_USER_FILTER", template, &["name"]).unwrap_err();
        assert!(refused("uid={name}").contains("`uid={name}`"));
        assert!(refused("(uid=ann)").contains("must use {name}"));
        assert!(refused("(uid={user})").contains("`{user}` is not one of {name}"));
        assert!(refused("(uid={name}))").contains("closes nothing"));
        assert!(refused("((uid={name})").contains("parentheses"));
        assert!(refused("(uid={name)").contains("not closed"));
    }

    #[test]
    fn a_dn_gives_its_first_rdn_unescaped() {
        let rdn = |dn: &str| first_rdn(dn).map(|(attribute, value)| format!("{attribute}:{value}"));
        assert_eq!(rdn("cn=shop-devs,ou=groups,dc=example,dc=org").as_deref(), Some("cn:shop-devs"));
        assert_eq!(rdn("CN=Shop\\, Devs,OU=Groups,DC=corp").as_deref(), Some("CN:Shop, Devs"));
        assert_eq!(rdn("cn=caf\\C3\\A9+uid=x,dc=a").as_deref(), Some("cn:café"));
        assert_eq!(rdn("not a dn"), None);
        assert_eq!(rdn("cn=,dc=a"), None);
        assert_eq!(rdn("cn=bad\\zz"), Some("cn:badzz".to_owned()));
        assert_eq!(rdn("cn=bad\\4"), None);
    }

    #[test]
    fn user_names_come_lowercased_without_their_domain() {
        assert_eq!(user_name_from("Ann.Smith").unwrap().as_str(), "ann.smith");
        assert_eq!(user_name_from("alice@example.com").unwrap().as_str(), "alice");
        assert!(user_name_from("Ann Smith").unwrap_err().contains("`ann smith`"));
    }

    #[test]
    fn grants_are_parsed_with_the_field_and_value_named() {
        assert_eq!(GroupGrant::parse(None, "system-admin"), Ok(GroupGrant::SystemAdmin));
        assert_eq!(GroupGrant::parse(Some(""), "system-admin"), Ok(GroupGrant::SystemAdmin));
        assert!(GroupGrant::parse(Some("shop"), "system-admin").unwrap_err().contains("`shop`"));
        assert!(GroupGrant::parse(None, "developer").unwrap_err().contains("needs a project"));
        assert!(GroupGrant::parse(Some("shop"), "owner").unwrap_err().contains("`owner`"));
        assert!(GroupGrant::parse(Some("Shop!"), "guest").unwrap_err().contains("Shop!"));
        assert!(GroupName::parse("").is_err());
        assert!(GroupName::parse("a\nb").unwrap_err().contains("a\\nb"));
        assert!(GroupName::parse(&"g".repeat(257)).is_err());
        assert!(GroupName::parse("/shop/devs").is_ok());
    }
}

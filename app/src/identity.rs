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

/// Who the provider says signed in, once their ID token is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderIdentity {
    /// The provider's issuer URL and the user's subject there: what identifies them.
    pub issuer: String,
    pub subject: String,
    /// The tagward user name a first sign-in creates (from the configured claim).
    pub name: crate::account::UserName,
    pub groups: Vec<String>,
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

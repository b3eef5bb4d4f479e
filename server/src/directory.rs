//! Signing in with a password kept in the organisation's LDAP directory or Active Directory: find
//! the one entry the user filter names (as the search account), read its name, e-mail and groups,
//! then bind as that entry with the password given. The password is only ever sent to the
//! directory, over TLS (StartTLS on `ldap://`, or `ldaps://`), and never stored.
//!
//! A fresh connection per sign-in: sign-ins are rare next to decisions, a connection cannot be
//! left bound as a user, and a directory that was down is used again at its next sign-in.

use anyhow::Context;
use app::identity::{FilterTemplate, ProviderIdentity, DIRECTORY_ISSUER};
use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The directory people sign in at with their password (unset `TAGWARD_LDAP_URL`: none).
#[derive(Debug, Clone, clap::Args)]
pub struct DirectoryConfig {
    /// The directory's URL: `ldaps://ldap.example.com` (TLS from the start) or
    /// `ldap://ldap.example.com` (upgraded with StartTLS, unless `--ldap-starttls false`).
    #[arg(long = "ldap-url", env = "TAGWARD_LDAP_URL")]
    pub ldap_url: Option<url::Url>,

    /// Upgrade an `ldap://` connection with StartTLS before anything is sent. Turn off only for a
    /// directory on the same host or a network you trust: passwords then cross it in the clear.
    #[arg(long = "ldap-starttls", env = "TAGWARD_LDAP_STARTTLS", default_value_t = true, action = clap::ArgAction::Set)]
    pub ldap_starttls: bool,

    /// PEM certificates the directory's TLS certificate may chain to, besides the public roots.
    #[arg(long = "ldap-ca", env = "TAGWARD_LDAP_CA")]
    pub ldap_ca: Option<PathBuf>,

    /// The DN tagward searches as (e.g. `cn=tagward,ou=services,dc=example,dc=org`, or for Active
    /// Directory `tagward@corp.example.com`); unset: anonymous searches.
    #[arg(long = "ldap-bind-dn", env = "TAGWARD_LDAP_BIND_DN")]
    pub ldap_bind_dn: Option<String>,

    /// The search account's password.
    #[arg(long = "ldap-bind-password", env = "TAGWARD_LDAP_BIND_PASSWORD", hide_env_values = true)]
    pub ldap_bind_password: Option<String>,

    /// Where users are searched for (the whole subtree), e.g. `ou=people,dc=example,dc=org`.
    #[arg(long = "ldap-user-base", env = "TAGWARD_LDAP_USER_BASE")]
    pub ldap_user_base: Option<String>,

    /// The filter that finds the entry of the name typed at the login form, `{name}` standing for
    /// it (escaped): `(uid={name})`, or for Active Directory
    /// `(&(objectCategory=person)(sAMAccountName={name}))`.
    #[arg(long = "ldap-user-filter", env = "TAGWARD_LDAP_USER_FILTER", default_value = "(uid={name})")]
    pub ldap_user_filter: String,

    /// The attribute whose value, lowercased, is the user's tagward name (`uid`; Active Directory
    /// `sAMAccountName`).
    #[arg(long = "ldap-name-attribute", env = "TAGWARD_LDAP_NAME_ATTRIBUTE", default_value = "uid")]
    pub ldap_name_attribute: String,

    /// The attribute holding the user's e-mail address.
    #[arg(long = "ldap-email-attribute", env = "TAGWARD_LDAP_EMAIL_ATTRIBUTE", default_value = "mail")]
    pub ldap_email_attribute: String,

    /// An attribute that identifies a user for good even when their entry is renamed or moved
    /// (`entryUUID`; Active Directory `objectGUID`); unset: the entry's DN identifies them.
    #[arg(long = "ldap-id-attribute", env = "TAGWARD_LDAP_ID_ATTRIBUTE")]
    pub ldap_id_attribute: Option<String>,

    /// Where groups are searched for, e.g. `ou=groups,dc=example,dc=org`. Unset: a user's groups
    /// are the values of their `--ldap-member-of-attribute` (Active Directory, OpenLDAP's memberof
    /// overlay).
    #[arg(long = "ldap-group-base", env = "TAGWARD_LDAP_GROUP_BASE")]
    pub ldap_group_base: Option<String>,

    /// The filter that finds a user's groups under the group base: `{dn}` stands for the user's
    /// DN, `{name}` for the name typed (both escaped).
    #[arg(
        long = "ldap-group-filter",
        env = "TAGWARD_LDAP_GROUP_FILTER",
        default_value = "(|(member={dn})(uniqueMember={dn})(memberUid={name}))"
    )]
    pub ldap_group_filter: String,

    /// The user attribute that lists their groups' DNs, read when no group base is set.
    #[arg(long = "ldap-member-of-attribute", env = "TAGWARD_LDAP_MEMBER_OF_ATTRIBUTE", default_value = "memberOf")]
    pub ldap_member_of_attribute: String,

    /// What a group is called in group → role mappings: `cn` (its common name, e.g. `shop-devs`) or
    /// `dn` (its whole DN, e.g. `cn=shop-devs,ou=groups,dc=example,dc=org`).
    #[arg(long = "ldap-group-name", env = "TAGWARD_LDAP_GROUP_NAME", default_value = "cn")]
    pub ldap_group_name: GroupNaming,

    /// Seconds each step (connecting, StartTLS, a bind, a search) may take before the sign-in is
    /// answered "the directory cannot be reached".
    #[arg(long = "ldap-timeout", env = "TAGWARD_LDAP_TIMEOUT", default_value_t = 5)]
    pub ldap_timeout_seconds: u64,

    /// What the login page calls the directory: "Use your <name> user name and password".
    #[arg(long = "ldap-name", env = "TAGWARD_LDAP_NAME", default_value = "directory")]
    pub ldap_display_name: String,
}

/// How groups are named in mappings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupNaming {
    CommonName,
    Dn,
}

impl std::str::FromStr for GroupNaming {
    type Err = String;
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "cn" => Ok(GroupNaming::CommonName),
            "dn" => Ok(GroupNaming::Dn),
            other => Err(format!("group name `{other}` is not one of cn, dn")),
        }
    }
}

/// The directory, as configured.
pub struct LdapDirectory {
    url: String,
    settings: LdapConnSettings,
    search_account: Option<(String, String)>,
    user_base: String,
    user_filter: FilterTemplate,
    name_attribute: String,
    email_attribute: String,
    id_attribute: Option<String>,
    groups: GroupLookup,
    timeout: Duration,
}

/// Where a user's groups come from.
enum GroupLookup {
    Search { base: String, filter: FilterTemplate, naming: GroupNaming },
    MemberOf { attribute: String, naming: GroupNaming },
}

/// Why a sign-in at the directory did not get an answer (never "wrong password": that is `None`).
#[derive(Debug, thiserror::Error)]
enum Unanswered {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Failed(String),
}

impl LdapDirectory {
    /// The directory `config` names, or `None` when no URL is set. Settings that cannot work are
    /// refused here, at start, naming the setting and its value.
    pub fn from_config(config: &DirectoryConfig) -> anyhow::Result<Option<Self>> {
        let Some(url) = &config.ldap_url else { return Ok(None) };
        let tls_from_start = match url.scheme() {
            "ldaps" => true,
            "ldap" => false,
            other => anyhow::bail!("TAGWARD_LDAP_URL `{url}`: the scheme `{other}` is not ldap or ldaps"),
        };
        anyhow::ensure!(url.host_str().is_some(), "TAGWARD_LDAP_URL `{url}` names no host");
        if !tls_from_start && !config.ldap_starttls {
            tracing::warn!(%url, "directory passwords are sent without TLS (TAGWARD_LDAP_STARTTLS=false)");
        }
        let user_base = config
            .ldap_user_base
            .clone()
            .filter(|base| !base.trim().is_empty())
            .context("TAGWARD_LDAP_USER_BASE is needed with TAGWARD_LDAP_URL")?;
        let user_filter = FilterTemplate::parse("TAGWARD_LDAP_USER_FILTER", &config.ldap_user_filter, &["name"])
            .map_err(anyhow::Error::msg)?;
        let search_account = match (&config.ldap_bind_dn, &config.ldap_bind_password) {
            (Some(dn), Some(password)) if !password.is_empty() => Some((dn.clone(), password.clone())),
            (Some(dn), _) => anyhow::bail!("TAGWARD_LDAP_BIND_DN `{dn}` needs TAGWARD_LDAP_BIND_PASSWORD"),
            (None, _) => None,
        };
        let groups = match &config.ldap_group_base {
            Some(base) => GroupLookup::Search {
                base: base.clone(),
                filter: FilterTemplate::parse("TAGWARD_LDAP_GROUP_FILTER", &config.ldap_group_filter, &["dn", "name"])
                    .map_err(anyhow::Error::msg)?,
                naming: config.ldap_group_name,
            },
            None => GroupLookup::MemberOf {
                attribute: config.ldap_member_of_attribute.clone(),
                naming: config.ldap_group_name,
            },
        };
        let timeout = Duration::from_secs(config.ldap_timeout_seconds.max(1));
        let tls = crate::registry::tls_config(config.ldap_ca.as_deref())?;
        let settings = LdapConnSettings::new()
            .set_conn_timeout(timeout)
            .set_starttls(!tls_from_start && config.ldap_starttls)
            .set_config(Arc::new(tls));
        Ok(Some(Self {
            url: url.to_string(),
            settings,
            search_account,
            user_base,
            user_filter,
            name_attribute: config.ldap_name_attribute.clone(),
            email_attribute: config.ldap_email_attribute.clone(),
            id_attribute: config.ldap_id_attribute.clone(),
            groups,
            timeout,
        }))
    }

    /// One step, bounded by the timeout.
    async fn step<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, ldap3::LdapError>>,
    ) -> Result<T, Unanswered> {
        match tokio::time::timeout(self.timeout, work).await {
            Ok(Ok(done)) => Ok(done),
            // ldap3's own timeouts (connecting, an operation) are the same one.
            Ok(Err(ldap3::LdapError::Timeout { .. })) | Err(_) => Err(Unanswered::Timeout(self.timeout)),
            Ok(Err(error)) => Err(Unanswered::Failed(crate::registry::with_causes(&error))),
        }
    }

    async fn sign_in(&self, name: &str, password: &str) -> Result<Option<ProviderIdentity>, Unanswered> {
        let (connection, mut ldap) = self.step(LdapConnAsync::with_settings(self.settings.clone(), &self.url)).await?;
        ldap3::drive!(connection);
        ldap.with_timeout(self.timeout);
        if let Some((dn, password)) = &self.search_account {
            let bound = self.step(ldap.simple_bind(dn, password)).await?;
            if bound.rc != 0 {
                return Err(Unanswered::Failed(format!(
                    "the search account `{dn}` cannot bind (LDAP result {}: {})",
                    bound.rc, bound.text
                )));
            }
        }
        let mut attributes = vec![self.name_attribute.as_str(), self.email_attribute.as_str()];
        attributes.extend(self.id_attribute.as_deref());
        if let GroupLookup::MemberOf { attribute, .. } = &self.groups {
            attributes.push(attribute);
        }
        let filter = self.user_filter.fill(&[("name", name)]);
        let mut entries =
            found_entries(self.step(ldap.search(&self.user_base, Scope::Subtree, &filter, attributes)).await?)?;
        if entries.len() != 1 {
            if entries.len() > 1 {
                tracing::warn!(username = ?name, %filter, found = entries.len(), "the user filter finds more than one entry; nobody is signed in");
            }
            let _ = ldap.unbind().await;
            return Ok(None);
        }
        let entry = entries.remove(0);
        let groups = match &self.groups {
            GroupLookup::MemberOf { attribute, naming } => {
                values(&entry, attribute).iter().filter_map(|dn| group_name(dn, *naming)).collect()
            }
            GroupLookup::Search { base, filter, naming } => {
                let filter = filter.fill(&[("dn", &entry.dn), ("name", name)]);
                let wanted: &[&str] = match naming {
                    GroupNaming::CommonName => &["cn"],
                    GroupNaming::Dn => &["1.1"],
                };
                found_entries(self.step(ldap.search(base, Scope::Subtree, &filter, wanted)).await?)?
                    .into_iter()
                    .filter_map(|group| match naming {
                        GroupNaming::Dn => Some(group.dn),
                        GroupNaming::CommonName => values(&group, "cn").first().cloned(),
                    })
                    .collect()
            }
        };
        // Last: the password, by binding as the entry found. An empty password would be an
        // unauthenticated bind, which directories answer with success; it never gets here.
        let bound = self.step(ldap.simple_bind(&entry.dn, password)).await?;
        let _ = ldap.unbind().await;
        match bound.rc {
            0 => {}
            // invalidCredentials: a wrong password, or (Active Directory) an expired or disabled account.
            49 => {
                tracing::info!(username = ?name, detail = %bound.text, "the directory refused the password");
                return Ok(None);
            }
            rc => {
                return Err(Unanswered::Failed(format!("binding as `{}`: LDAP result {rc}: {}", entry.dn, bound.text)))
            }
        }
        let given = values(&entry, &self.name_attribute).first().cloned().unwrap_or_default();
        let tagward_name = app::identity::user_name_from(&given).map_err(|why| {
            Unanswered::Failed(format!("`{}`'s {} gives no usable tagward name: {why}", entry.dn, self.name_attribute))
        })?;
        let subject = match &self.id_attribute {
            None => entry.dn.clone(),
            Some(attribute) => identifier(&entry, attribute).ok_or_else(|| {
                Unanswered::Failed(format!("`{}` has no {attribute} (TAGWARD_LDAP_ID_ATTRIBUTE)", entry.dn))
            })?,
        };
        Ok(Some(ProviderIdentity {
            issuer: DIRECTORY_ISSUER.to_owned(),
            subject,
            name: tagward_name,
            email: values(&entry, &self.email_attribute).first().cloned(),
            groups,
        }))
    }
}

/// The entries a search found. References to other servers (Active Directory answers a search of a
/// whole domain with some) are not entries and are left out.
fn found_entries(result: ldap3::SearchResult) -> Result<Vec<SearchEntry>, Unanswered> {
    let (found, _) = result.success().map_err(|error| Unanswered::Failed(error.to_string()))?;
    Ok(found.into_iter().filter(|e| !e.is_ref() && !e.is_intermediate()).map(SearchEntry::construct).collect())
}

/// An attribute's values; attribute names are compared as LDAP does, ignoring case.
fn values(entry: &SearchEntry, attribute: &str) -> Vec<String> {
    entry
        .attrs
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(attribute))
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// The id attribute's value: text as it is, binary (Active Directory's `objectGUID`) in hex.
fn identifier(entry: &SearchEntry, attribute: &str) -> Option<String> {
    values(entry, attribute).into_iter().next().or_else(|| {
        entry
            .bin_attrs
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(attribute))
            .and_then(|(_, values)| values.first().map(hex::encode))
    })
}

/// What a group whose DN is `dn` is called in mappings.
fn group_name(dn: &str, naming: GroupNaming) -> Option<String> {
    match naming {
        GroupNaming::Dn => Some(dn.to_owned()),
        GroupNaming::CommonName => app::identity::first_rdn(dn)
            .filter(|(attribute, _)| attribute.eq_ignore_ascii_case("cn"))
            .map(|(_, value)| value),
    }
}

impl app::state::PasswordDirectory for LdapDirectory {
    fn verify<'a>(&'a self, name: &'a str, password: &'a str) -> app::state::DirectoryAnswer<'a> {
        Box::pin(async move {
            if name.is_empty() || password.is_empty() {
                return Ok(None);
            }
            self.sign_in(name, password).await.map_err(|why| {
                tracing::warn!(url = %self.url, username = ?name, error = %why, "the directory did not answer a sign-in");
                match why {
                    Unanswered::Timeout(timeout) => format!(
                        "the directory did not answer within {} s; try again in a moment, or ask your administrator",
                        timeout.as_secs()
                    ),
                    Unanswered::Failed(_) => {
                        "the directory cannot be reached right now; try again in a moment, or ask your administrator"
                            .to_owned()
                    }
                }
            })
        })
    }
}

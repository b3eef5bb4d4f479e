//! A real LDAP directory for the sign-in tests: Debian's OpenLDAP `slapd`, started by the test in a
//! directory of its own, serving StartTLS with a certificate from a CA the test made, its people and
//! groups loaded with `ldapadd`, changed with `ldapmodify`.
//!
//! Access as a real directory has it: anonymous clients may only bind, users read, and tagward
//! searches as a service account of its own.

use crate::registry::{free_port, TempDir, TestCa};
use std::time::Duration;

/// The directory's suffix.
pub const BASE: &str = "dc=example,dc=org";
/// tagward's search account and its password.
pub const SEARCH_DN: &str = "cn=tagward,ou=services,dc=example,dc=org";
pub const SEARCH_PASSWORD: &str = "search-account-secret";
/// Every person's password is `<uid>-directory-password`.
pub fn password_of(uid: &str) -> String {
    format!("{uid}-directory-password")
}

/// People: uid, the first RDN of their DN, e-mail, and groups (`cn`s under `ou=groups`).
const PEOPLE: &[(&str, &str, &str, &[&str])] = &[
    ("ann", "uid=ann", "ann@example.org", &["shop-devs"]),
    ("bob", "uid=bob", "bob@example.org", &["shop-leads"]),
    // A DN with an escaped comma, as directories that name people by their full name have.
    ("carol", "cn=Smith\\, Carol", "carol@example.org", &["shop-devs", "platform-admins"]),
];
const GROUPS: &[&str] = &["shop-devs", "shop-leads", "platform-admins"];

pub struct TestDirectory {
    /// Where it serves `ldap://` (StartTLS required) and `ldaps://`.
    pub port: u16,
    pub tls_port: u16,
    pub ca: TestCa,
    child: Option<tokio::process::Child>,
    dir: TempDir,
}

impl TestDirectory {
    /// A directory with [`PEOPLE`] and [`GROUPS`], listening on a loopback port.
    pub async fn start() -> Self {
        let ca = TestCa::new();
        let dir = TempDir::new("slapd");
        std::fs::create_dir_all(dir.0.join("data")).unwrap();
        let mut directory = Self { port: 0, tls_port: 0, ca, child: None, dir };
        directory.launch().await;
        directory.load().await;
        directory
    }

    fn config(&self) -> String {
        let certs = &self.ca.dir.0;
        let dir = &self.dir.0;
        format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             include /etc/ldap/schema/nis.schema\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             moduleload memberof\n\
             pidfile {dir}/slapd.pid\n\
             TLSCACertificateFile {certs}/ca.pem\n\
             TLSCertificateFile {certs}/server.pem\n\
             TLSCertificateKeyFile {certs}/server.key\n\
             security tls=1\n\
             database mdb\n\
             maxsize 16777216\n\
             suffix \"{BASE}\"\n\
             rootdn \"cn=admin,{BASE}\"\n\
             rootpw admin-secret\n\
             directory {dir}/data\n\
             access to attrs=userPassword by self write by anonymous auth by * none\n\
             access to * by users read by * none\n\
             overlay memberof\n",
            certs = certs.display(),
            dir = dir.display(),
        )
    }

    /// Starts slapd on two free ports; slapd cannot be handed a listener, so a port someone took
    /// in between makes it exit, and others are tried.
    async fn launch(&mut self) {
        let config = self.dir.0.join("slapd.conf");
        std::fs::write(&config, self.config()).unwrap();
        for _ in 0..5 {
            let (port, tls_port) = (free_port(), free_port());
            let child = tokio::process::Command::new("slapd")
                .args(["-d", "0", "-f"])
                .arg(&config)
                .arg("-h")
                .arg(format!("ldap://127.0.0.1:{port}/ ldaps://127.0.0.1:{tls_port}/"))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("slapd is installed (scripts/dev test installs it)");
            let child = std::sync::Mutex::new(child);
            let (up, _) = crate::eventually::eventually("slapd to answer or exit", Duration::from_secs(20), || {
                let exited = matches!(child.lock().unwrap().try_wait(), Ok(Some(_)));
                let this = &*self;
                async move {
                    match (exited, !exited && this.search_as_admin(port).await) {
                        (true, _) => Ok(false),
                        (false, true) => Ok(true),
                        (false, false) => Err("no answer yet".to_owned()),
                    }
                }
            })
            .await;
            let child = child.into_inner().unwrap();
            if up {
                self.port = port;
                self.tls_port = tls_port;
                self.child = Some(child);
                return;
            }
        }
        panic!("slapd did not start on any of five free ports");
    }

    /// Whether slapd at `port` answers its administrator over StartTLS.
    async fn search_as_admin(&self, port: u16) -> bool {
        self.ldap_tool("ldapsearch", port, &["-b", "", "-s", "base", "(objectClass=*)", "1.1"], "").await.is_ok()
    }

    /// Runs an OpenLDAP tool as the directory's administrator over StartTLS with `input` on stdin.
    async fn ldap_tool(&self, tool: &str, port: u16, args: &[&str], input: &str) -> Result<String, String> {
        use tokio::io::AsyncWriteExt;
        let mut child = tokio::process::Command::new(tool)
            .args(["-x", "-ZZ", "-H", &format!("ldap://127.0.0.1:{port}"), "-D", &format!("cn=admin,{BASE}")])
            .args(["-w", "admin-secret"])
            .args(args)
            .env("LDAPTLS_CACERT", self.ca.dir.0.join("ca.pem"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("{tool} (ldap-utils) is installed: {error}"));
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).await.unwrap();
        drop(stdin);
        let output = child.wait_with_output().await.unwrap();
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).into_owned())
        }
    }

    /// Applies LDIF changes (`ldapmodify`, `add:` records included), or fails the test.
    pub async fn modify(&self, ldif: &str) {
        if let Err(error) = self.ldap_tool("ldapmodify", self.port, &[], ldif).await {
            panic!("ldapmodify:\n{ldif}\n{error}");
        }
    }

    /// The DN of `uid`.
    pub fn dn_of(uid: &str) -> String {
        let rdn = PEOPLE.iter().find(|(id, ..)| *id == uid).map_or_else(|| format!("uid={uid}"), |p| p.1.to_owned());
        format!("{rdn},ou=people,{BASE}")
    }

    async fn load(&self) {
        let mut ldif = format!(
            "dn: {BASE}\nchangetype: add\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n"
        );
        for unit in ["people", "groups", "services"] {
            ldif += &format!("dn: ou={unit},{BASE}\nchangetype: add\nobjectClass: organizationalUnit\nou: {unit}\n\n");
        }
        ldif += &format!(
            "dn: {SEARCH_DN}\nchangetype: add\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n\
             cn: tagward\nuserPassword: {SEARCH_PASSWORD}\n\n"
        );
        for (uid, _, mail, _) in PEOPLE {
            let cn = if *uid == "carol" { "Smith, Carol".to_owned() } else { (*uid).to_owned() };
            ldif += &format!(
                "dn: {}\nchangetype: add\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {cn}\nsn: {uid}\nmail: {mail}\n\
                 userPassword: {}\n\n",
                Self::dn_of(uid),
                password_of(uid)
            );
        }
        for group in GROUPS {
            ldif +=
                &format!("dn: cn={group},ou=groups,{BASE}\nchangetype: add\nobjectClass: groupOfNames\ncn: {group}\n");
            for (uid, _, _, groups) in PEOPLE {
                if groups.contains(group) {
                    ldif += &format!("member: {}\n", Self::dn_of(uid));
                }
            }
            ldif += "\n";
        }
        self.modify(&ldif).await;
    }

    /// Puts `uid` into `group` (`add: true`) or takes them out.
    pub async fn set_member(&self, group: &str, uid: &str, add: bool) {
        let operation = if add { "add" } else { "delete" };
        self.modify(&format!(
            "dn: cn={group},ou=groups,{BASE}\nchangetype: modify\n{operation}: member\nmember: {}\n",
            Self::dn_of(uid)
        ))
        .await;
    }

    /// Stops slapd (a directory that went down).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// The `tagward serve` flags for this directory: StartTLS with the test CA, the search account,
    /// and groups by search (`member_of`: from the users' `memberOf` instead).
    pub fn portal_flags(&self, member_of: bool) -> Vec<String> {
        let mut flags: Vec<(&str, String)> = vec![
            ("--ldap-url", format!("ldap://127.0.0.1:{}", self.port)),
            ("--ldap-ca", self.ca.dir.0.join("ca.pem").display().to_string()),
            ("--ldap-bind-dn", SEARCH_DN.to_owned()),
            ("--ldap-bind-password", SEARCH_PASSWORD.to_owned()),
            ("--ldap-user-base", format!("ou=people,{BASE}")),
            ("--ldap-user-filter", "(&(objectClass=inetOrgPerson)(uid={name}))".to_owned()),
            ("--ldap-name", "Example directory".to_owned()),
            ("--ldap-timeout", "2".to_owned()),
        ];
        if !member_of {
            flags.push(("--ldap-group-base", format!("ou=groups,{BASE}")));
        }
        flags.into_iter().flat_map(|(flag, value)| [flag.to_owned(), value]).collect()
    }
}

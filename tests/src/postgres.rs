//! A PostgreSQL server of a test's own (a fresh cluster in a temporary directory, on a port it
//! binds itself), for tests that restart the database: the shared server every other test uses
//! must never go down under them. initdb refuses to run as root, so as root the cluster belongs
//! to the `postgres` system user.

use std::path::PathBuf;
use tokio::process::Command;

pub struct PrivateCluster {
    data: PathBuf,
    bin: PathBuf,
    pub port: u16,
}

fn as_owner(program: PathBuf) -> Command {
    let root = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false);
    if root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

impl PrivateCluster {
    pub async fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's programs in /usr/lib/postgresql")
            .filter_map(|entry| entry.ok().map(|entry| entry.path().join("bin")))
            .filter(|bin| bin.join("initdb").exists())
            .max()
            .expect("an initdb");
        let data = std::path::Path::new("/var/tmp").join(format!(
            "tagward-test-pg-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&data).unwrap();
        let _ = std::process::Command::new("chown").args(["postgres:", data.to_str().unwrap()]).status();
        let initdb = as_owner(bin.join("initdb"))
            .args(["-D", data.to_str().unwrap(), "-U", "postgres", "--auth=trust", "-E", "UTF8"])
            .stdout(std::process::Stdio::null())
            .status()
            .await
            .unwrap();
        assert!(initdb.success(), "initdb failed");
        // The port is chosen by binding it, then handed to the server (which fails clearly, and is
        // asked again on another, if someone took it in between).
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let cluster = Self { data: data.clone(), bin: bin.clone(), port };
            if cluster.pg_ctl("start").await {
                return cluster;
            }
        }
        panic!("the private PostgreSQL cluster did not start (see {}/server.log)", data.display());
    }

    async fn pg_ctl(&self, action: &str) -> bool {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={}",
            self.port,
            self.data.display()
        );
        let data = self.data.to_str().unwrap();
        let log = self.data.join("server.log");
        let mut command = as_owner(self.bin.join("pg_ctl"));
        command.args(["-D", data, "-l", log.to_str().unwrap(), "-w", "-m", "fast", "-o", &options, action]);
        command.stdout(std::process::Stdio::null()).status().await.unwrap().success()
    }

    /// The server's URL for `database`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Stops the server and starts it again (a fast shutdown: connections are cut).
    pub async fn restart(&self) {
        assert!(self.pg_ctl("restart").await, "restarting PostgreSQL failed");
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", self.data.to_str().unwrap(), "-m", "immediate", "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

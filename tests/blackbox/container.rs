//! The container image as an operator runs it, and the client most users type: `migrate`, `serve`
//! and `gateway` as containers of `tagward:dev` (host network, read-only root filesystem, not
//! root) over the test PostgreSQL and a real docker-registry, driven with the Docker CLI.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use tests::registry::{Registry, TempDir};

/// The image `scripts/dev test` builds (`TAGWARD_IMAGE`).
fn image() -> String {
    std::env::var("TAGWARD_IMAGE")
        .unwrap_or_else(|_| panic!("TAGWARD_IMAGE is not set; run the tests with `scripts/dev test`"))
}

/// `scripts/dev test` builds the image beside the tests: when `TAGWARD_IMAGE_STATUS` is set, the
/// build's exit status appears in that file once it is done. Waits for it; a failed build fails
/// the test with its log.
async fn image_built() {
    let Some(status) = std::env::var_os("TAGWARD_IMAGE_STATUS") else { return };
    let status = std::path::PathBuf::from(status);
    let started = Instant::now();
    let written = loop {
        match tokio::fs::read_to_string(&status).await {
            Ok(written) if !written.trim().is_empty() => break written,
            _ => {}
        }
        assert!(started.elapsed() < Duration::from_secs(1800), "the image build did not finish in 30 minutes");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let log = std::env::var("TAGWARD_IMAGE_LOG").unwrap_or_default();
    assert_eq!(
        written.trim(),
        "0",
        "building {} failed:\n{}",
        image(),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().expect("the Docker CLI is installed (scripts/dev test installs it)")
}

/// Runs docker and insists it succeeded; its standard output, trimmed.
fn docker_ok(args: &[&str]) -> String {
    let output = docker(args);
    assert!(
        output.status.success(),
        "docker {}: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn free_address() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// A detached container, removed (with its logs printed on failure) when dropped.
struct Container {
    name: String,
}

impl Container {
    /// `docker run -d` of the image with `command`, on the host network, read-only, with `env`.
    fn start(role: &str, env: &[(&str, &str)], command: &[&str]) -> Self {
        let name = format!("tagward-test-{role}-{}", rand::random::<u32>());
        let mut args = vec!["run", "-d", "--name", &name, "--network", "host", "--read-only", "--health-interval=1s"];
        let env: Vec<String> = env.iter().map(|(key, value)| format!("{key}={value}")).collect();
        for pair in &env {
            args.extend(["-e", pair]);
        }
        let image = image();
        args.push(&image);
        args.extend(command);
        docker_ok(&args);
        Self { name }
    }

    fn inspect(&self, format: &str) -> String {
        docker_ok(&["inspect", "--format", format, &self.name])
    }

    fn logs(&self) -> String {
        let output = docker(&["logs", &self.name]);
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
    }

    /// Waits for `url` to answer 200; the time from now.
    async fn until_ready(&self, url: &str) -> Duration {
        let started = Instant::now();
        loop {
            if reqwest::get(url).await.is_ok_and(|response| response.status() == 200) {
                return started.elapsed();
            }
            assert!(started.elapsed() < Duration::from_secs(30), "{url} not ready:\n{}", self.logs());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for Docker's HEALTHCHECK (`tagward healthcheck` inside the container) to pass.
    async fn until_healthy(&self) {
        let started = Instant::now();
        while self.inspect("{{.State.Health.Status}}") != "healthy" {
            assert!(started.elapsed() < Duration::from_secs(30), "{} not healthy:\n{}", self.name, self.logs());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- logs of {} ---\n{}", self.name, self.logs());
        }
        let _ = docker(&["rm", "-f", &self.name]);
    }
}

/// A `FROM scratch` image holding one file with `content`, tagged `tag` (built offline).
fn build_image(tag: &str, content: &str) -> String {
    let context = TempDir::new("image-context");
    std::fs::write(context.0.join("content.txt"), content).unwrap();
    std::fs::write(context.0.join("Dockerfile"), "FROM scratch\nCOPY content.txt /content.txt\n").unwrap();
    docker_ok(&["build", "--quiet", "-t", tag, context.0.to_str().unwrap()]);
    docker_ok(&["image", "inspect", "--format", "{{.Id}}", tag])
}

#[tokio::test]
async fn the_image_runs_migrate_serve_and_gateway_and_docker_push_is_refused_when_it_breaks_a_tag() {
    image_built().await;
    let image = image();
    // What the image is: one static binary, not root, labelled, with a healthcheck.
    let config = docker_ok(&["image", "inspect", "--format", "{{json .Config}}", &image]);
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["User"], "65532:65532", "{config}");
    assert_eq!(config["Healthcheck"]["Test"], serde_json::json!(["CMD", "/tagward", "healthcheck"]));
    for label in ["source", "version", "revision", "created"] {
        let value = &config["Labels"][format!("org.opencontainers.image.{label}")];
        assert!(value.as_str().is_some_and(|v| !v.is_empty()), "label {label}: {config}");
    }
    let size: f64 = docker_ok(&["image", "inspect", "--format", "{{.Size}}", &image]).parse().unwrap();
    println!("image {image}: {:.1} MB", size / 1e6);
    let no_shell = docker(&["run", "--rm", "--entrypoint", "/bin/sh", &image, "-c", "true"]);
    assert!(!no_shell.status.success(), "the image has no shell");

    let db = tests::fresh_database().await;
    let registry = Registry::start().await;
    let database = [("DATABASE_URL", db.url.as_str())];
    let migrate = docker_ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "--read-only",
        "-e",
        &format!("DATABASE_URL={}", db.url),
        &image,
        "migrate",
    ]);
    assert!(migrate.contains("migrations applied"), "{migrate}");
    db.project("shop").await;
    db.rule("shop", "matching:**", "matching:v*").await;
    let token = db.token("registry").await;

    let gateway_address = free_address();
    let upstream = format!("http://{}", registry.address);
    let gateway_listen = gateway_address.to_string();
    let started = Instant::now();
    let gateway = Container::start(
        "gateway",
        &[database[0], ("TAGWARD_GATEWAY_LISTEN", &gateway_listen)],
        &["gateway", "--upstream", &upstream],
    );
    gateway.until_ready(&format!("http://{gateway_address}/readyz")).await;
    println!("gateway container: start to ready {:.2} s", started.elapsed().as_secs_f64());

    let portal_address = free_address();
    let portal_listen = portal_address.to_string();
    let started = Instant::now();
    let portal = Container::start(
        "portal",
        &[
            database[0],
            ("TAGWARD_ADDR", &portal_listen),
            ("TAGWARD_COOKIE_SECURE", "false"),
            ("TAGWARD_BOOTSTRAP_ADMIN_PASSWORD", tests::fixtures::PASSWORD),
        ],
        &["serve"],
    );
    portal.until_ready(&format!("http://{portal_address}/readyz")).await;
    println!("portal container: start to ready {:.2} s", started.elapsed().as_secs_f64());
    let login = reqwest::get(format!("http://{portal_address}/login")).await.unwrap();
    assert_eq!(login.status(), 200);
    let page = login.text().await.unwrap();
    assert!(page.contains("tagward") && page.contains("password"), "{page}");
    let stylesheet =
        page.split("href=\"").filter_map(|rest| rest.split('"').next()).find(|href| href.ends_with(".css"));
    let stylesheet = stylesheet.unwrap_or_else(|| panic!("no stylesheet in {page}"));
    let css = reqwest::get(format!("http://{portal_address}{stylesheet}")).await.unwrap();
    assert_eq!(css.status(), 200, "the site is in the image: {stylesheet}");
    gateway.until_healthy().await;
    portal.until_healthy().await;

    // docker push through the containerised gateway.
    let repository = format!("{gateway_address}/shop/app");
    let first = build_image(&format!("{repository}:v1"), "first");
    docker_ok(&["push", &format!("{repository}:v1")]);
    let pushed = registry.digest("shop/app", "v1").await.expect("v1 reached the registry");

    let second = build_image(&format!("{repository}:v1"), "second");
    assert_ne!(first, second);
    let refused = docker(&["push", &format!("{repository}:v1")]);
    let said = format!("{}{}", String::from_utf8_lossy(&refused.stdout), String::from_utf8_lossy(&refused.stderr));
    println!("docker push of another image to v1:\n{said}");
    assert!(!refused.status.success(), "overwriting v1 is refused: {said}");
    assert!(said.contains("tag \"v1\" of \"shop/app\" is immutable"), "the CLI shows tagward's message: {said}");
    assert_eq!(registry.digest("shop/app", "v1").await.as_deref(), Some(pushed.as_str()), "v1 unchanged");

    docker_ok(&["tag", &first, &format!("{repository}:v1")]);
    docker_ok(&["push", &format!("{repository}:v1")]);
    let mut built = vec![first.clone(), second];
    for content in ["mutable one", "mutable two"] {
        built.push(build_image(&format!("{repository}:latest"), content));
        docker_ok(&["push", &format!("{repository}:latest")]);
    }

    // Nothing of it left locally, so the pull has to fetch through the gateway; then nothing left at all.
    let remove_all = || {
        for image in &built {
            let _ = docker(&["rmi", "-f", image]);
        }
    };
    remove_all();
    let pull = docker_ok(&["pull", &format!("{repository}:v1")]);
    assert!(pull.contains(&pushed), "pulled v1 as pushed: {pull}");
    remove_all();

    // docker stop: SIGTERM, an in-flight request still answered, a clean exit within the grace period.
    let mut in_flight = TcpStream::connect(portal_address).unwrap();
    let body = serde_json::json!({
        "operation": "push", "repository": "shop/app", "tag": "v1",
        "digest": tests::fixtures::DIGEST_A, "current_digest": null,
    })
    .to_string();
    let body = body.as_bytes();
    // `Expect: 100-continue`: the server's "100 Continue" says it has read the head and is reading
    // the body, so the request is in flight when SIGTERM comes (bytes merely sent may not be read
    // yet, and a connection with no request read is closed at once, as it should be).
    write!(
        in_flight,
        "POST /api/v1/enforcement/check HTTP/1.1\r\nHost: {portal_address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    )
    .unwrap();
    in_flight.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut interim = Vec::new();
    while !interim.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        in_flight.read_exact(&mut byte).unwrap();
        interim.push(byte[0]);
    }
    assert!(interim.starts_with(b"HTTP/1.1 100"), "{}", String::from_utf8_lossy(&interim));
    in_flight.write_all(&body[..10]).unwrap();
    let name = portal.name.clone();
    let stopping = std::thread::spawn(move || {
        let started = Instant::now();
        let output = docker(&["stop", "--time", "10", &name]);
        (output.status.success(), started.elapsed())
    });
    // The rest of the body once the portal has taken the SIGTERM (it says so in its log).
    tests::until("the portal to begin shutting down", Duration::from_secs(10), || async {
        portal.logs().contains("shutting down; finishing requests in flight")
    })
    .await;
    in_flight.write_all(&body[10..]).unwrap();
    let mut answer = String::new();
    let _ = in_flight.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "the request in flight at SIGTERM is answered: {answer:?}");
    assert!(answer.contains("\"allowed\":true"), "{answer}");
    let (stopped, took) = stopping.join().unwrap();
    assert!(stopped);
    println!("docker stop of the portal: {:.2} s", took.as_secs_f64());
    assert_eq!(portal.inspect("{{.State.ExitCode}}"), "0", "clean exit:\n{}", portal.logs());
    assert!(took < Duration::from_secs(10), "stopped before the grace period ran out ({took:?}), not killed");
}

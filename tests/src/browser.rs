//! A real headless Chromium, driven through chromedriver.

use fantoccini::{Client, ClientBuilder, Locator};
use std::process::Stdio;
use std::time::Duration;

/// A chromedriver process and a browser session on it; both end when this is dropped.
pub struct Browser {
    pub client: Client,
    /// Killed when dropped.
    _driver: tokio::process::Child,
    _profile: tempdir::Dir,
}

mod tempdir {
    /// A directory removed on drop (the browser's fresh profile).
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium `width` pixels wide, with JavaScript on or off.
    pub async fn start(width: u32, javascript: bool) -> Browser {
        use tokio::io::AsyncBufReadExt;
        // Port 0: chromedriver takes a free port itself and says which, so no other test can
        // take it in between.
        let mut driver =
            tokio::process::Command::new(std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into()))
                .arg("--port=0")
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("chromedriver is installed (Debian package chromium-driver)");
        let mut lines = tokio::io::BufReader::new(driver.stdout.take().unwrap()).lines();
        let announced = tokio::time::timeout(Duration::from_secs(20), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(port) = line.split("started successfully on port ").nth(1) {
                    return port.trim_end_matches('.').parse::<u16>().ok();
                }
            }
            None
        });
        let port = announced.await.ok().flatten().expect("chromedriver says which port it listens on within 20 s");
        // Drained to the end, so that chromedriver never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let profile = std::env::temp_dir().join(format!("tagward-chromium-{port}-{}", rand::random::<u32>()));
        let mut args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--no-first-run".to_owned(),
            format!("--window-size={width},900"),
            format!("--user-data-dir={}", profile.display()),
        ];
        if !javascript {
            args.push("--blink-settings=scriptEnabled=false".to_owned());
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "args": args, "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()) }),
        );
        let url = format!("http://127.0.0.1:{port}");
        // chromedriver listens once it has said so; a Chromium that fails to start under load
        // is tried again, twice.
        let mut last_error = None;
        for _ in 0..3 {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector).capabilities(capabilities.clone()).connect(&url).await {
                Ok(client) => return Browser { client, _driver: driver, _profile: tempdir::Dir(profile) },
                Err(error) => last_error = Some(error),
            }
        }
        panic!("could not start a Chromium session: {last_error:?}");
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// Waits (up to 10 s) for an element and returns it.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element `{css}`: {e}"))
    }

    /// The text of an element; found again if a navigation (a plain form post reloading the page)
    /// replaced or unloaded it between finding and reading.
    pub async fn text(&self, css: &str) -> String {
        let mut last_error = None;
        for _ in 0..50 {
            match self.find(css).await.text().await {
                Ok(text) => return text,
                Err(error) => {
                    last_error = Some(error);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        panic!("reading `{css}` kept failing: {last_error:?}");
    }

    /// Waits (up to 10 s) until an element's text contains `needle` (e.g. after a form post
    /// reloads the page), and returns the text.
    pub async fn text_containing(&self, css: &str, needle: &str) -> String {
        let mut text = String::new();
        for _ in 0..100 {
            text = self.text(css).await;
            if text.contains(needle) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("`{css}` says {text:?}, never {needle:?}");
    }

    /// Waits (up to 10 s) until the page's path is `path`.
    pub async fn wait_for_path(&self, path: &str) {
        for _ in 0..100 {
            let url = self.client.current_url().await.unwrap();
            if url.path() == path {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the page never reached {path}: {}", self.client.current_url().await.unwrap());
    }

    /// Saves a screenshot under `screenshots/` (not committed) for people to look at.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// Logs in through the form.
    pub async fn log_in(&self, base: &str, user: &str, password: &str) {
        self.goto(&format!("{base}/login")).await;
        self.find("#username").await.send_keys(user).await.unwrap();
        self.find("#password").await.send_keys(password).await.unwrap();
        self.find("#login-form button[type=submit]").await.click().await.unwrap();
        self.wait_for_path("/").await;
    }

    /// What axe-core (the accessibility engine browsers' own audits use; `TAGWARD_AXE` names its
    /// `axe.min.js`, which `scripts/dev test` installs from npm) finds on the page as it is now
    /// against WCAG 2.1 A and AA: one line per rule broken, with the elements that break it.
    pub async fn accessibility_violations(&self) -> Vec<String> {
        let path =
            std::env::var("TAGWARD_AXE").expect("TAGWARD_AXE names axe-core's axe.min.js (scripts/dev test sets it)");
        let axe = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("reading {path}: {error}"));
        self.client.execute(&axe, vec![]).await.expect("loading axe-core into the page");
        let run = "const done = arguments[arguments.length - 1];
            axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } })
              .then(result => done(result.violations.map(v => v.id + ' (' + v.impact + '): ' + v.help + ' at '
                  + v.nodes.map(n => n.target.join(' ')).join(', '))))
              .catch(error => done(['axe-core failed: ' + error]));";
        let found = self.client.execute_async(run, vec![]).await.expect("running axe-core");
        serde_json::from_value(found).expect("axe-core's findings as a list")
    }

    /// Waits until the WASM has hydrated the page (the hydrate entry point marks `<body>`).
    pub async fn wait_for_hydration(&self) {
        self.find("body[data-hydrated]").await;
    }
}

/// A Chrome DevTools Protocol command, sent through chromedriver's `goog/cdp/execute`.
#[derive(Debug)]
struct DevTools {
    command: String,
    params: serde_json::Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for DevTools {
    fn endpoint(&self, base_url: &url::Url, session_id: Option<&str>) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/goog/cdp/execute", session_id.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = serde_json::json!({ "cmd": self.command, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}

impl Browser {
    /// Sends a DevTools command (e.g. `Network.emulateNetworkConditions`) and returns its result.
    pub async fn devtools(&self, command: &str, params: serde_json::Value) -> serde_json::Value {
        self.client.issue_cmd(DevTools { command: command.to_owned(), params }).await.unwrap()
    }

    /// Ends the browser session (Chromium exits), then chromedriver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

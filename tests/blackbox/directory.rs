//! Signing in with an LDAP directory's password: a real OpenLDAP `slapd` the test starts (StartTLS
//! with a CA the test made), the portal configured to search it as its service account, a real
//! Chromium for the browser's path, and the Harbor API's Basic auth.

use std::time::Duration;
use tests::browser::Browser;
use tests::fixtures::PASSWORD;
use tests::ldap::{password_of, TestDirectory};
use tests::{fresh_database, spawn_app_with, TestApp};

/// A portal over a fresh database signing in at `directory`, with project `shop`, the local system
/// administrator `root`, and the groups mapped (`flags` are more `tagward serve` flags, taking the
/// place of the directory's own of the same name): shop-devs → developer, shop-leads → admin of
/// `shop`, platform-admins → system administrator.
async fn portal_with_directory(directory: &TestDirectory, member_of: bool, flags: &[&str]) -> TestApp {
    let db = fresh_database().await;
    let url = db.url.clone();
    let mut all = flags_with(directory, member_of, flags);
    all.extend(["--login-attempts-per-minute", "5"].map(str::to_owned));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let app = spawn_app_with(db, url, &all).await;
    app.db.user("root", PASSWORD, true).await;
    app.db.project("shop").await;
    let admin = app.logged_in("root", PASSWORD).await;
    app.map_groups(
        &admin,
        &[("shop-devs", "developer", "shop"), ("shop-leads", "admin", "shop"), ("platform-admins", "system-admin", "")],
    )
    .await;
    app
}

/// The directory's `tagward serve` flags with `flags` in place of its own of the same name.
fn flags_with(directory: &TestDirectory, member_of: bool, flags: &[&str]) -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    for pair in directory.portal_flags(member_of).chunks(2) {
        if !flags.contains(&pair[0].as_str()) {
            all.extend_from_slice(pair);
        }
    }
    all.extend(flags.iter().map(|flag| (*flag).to_owned()));
    all
}

async fn shop_members(app: &TestApp) -> Vec<(String, String)> {
    sqlx::query_as(
        r"select u.name, m.role from project_members m join users u on u.id = m.user_id
          join projects p on p.id = m.project_id where p.name = 'shop' order by u.name",
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap()
}

async fn user_count(app: &TestApp) -> i64 {
    let (count,): (i64,) = sqlx::query_as("select count(*) from users").fetch_one(&app.db.pool).await.unwrap();
    count
}

/// Logs in through the form as a script does: the status and the body.
async fn log_in(app: &TestApp, name: &str, password: &str) -> (reqwest::Client, u16, String) {
    let client = app.client();
    let response = app.login(&client, name, password).await;
    let status = response.status().as_u16();
    (client, status, response.text().await.unwrap())
}

#[tokio::test]
async fn directory_users_sign_in_with_their_groups_and_the_role_follows_a_group_change() {
    let directory = TestDirectory::start().await;
    let app = portal_with_directory(&directory, false, &[]).await;

    // The first sign-in creates the user from the directory, with what their groups grant.
    let (ann, status, body) = log_in(&app, "ann", &password_of("ann")).await;
    assert!(status < 400, "{status}: {body}");
    assert_eq!(app.whoami(&ann).await.as_deref(), Some("ann"));
    assert_eq!(shop_members(&app).await, [("ann".to_owned(), "developer".to_owned())]);
    // A DN with an escaped comma is a DN: carol's groups are found by it.
    let (carol, status, body) = log_in(&app, "carol", &password_of("carol")).await;
    assert!(status < 400, "{status}: {body}");
    assert_eq!(app.whoami(&carol).await.as_deref(), Some("carol"));
    let (admin,): (bool,) =
        sqlx::query_as("select is_system_admin from users where name = 'carol'").fetch_one(&app.db.pool).await.unwrap();
    assert!(admin, "platform-admins makes carol a system administrator");
    let (subject, email): (String, Option<String>) = sqlx::query_as(
        "select provider_subject, email from users where name = 'carol' and provider_issuer = 'directory'",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    // Her DN as the directory writes it (OpenLDAP escapes the comma as `\2C`).
    assert!(subject.starts_with("cn=Smith\\") && subject.ends_with(" Carol,ou=people,dc=example,dc=org"), "{subject}");
    assert_eq!(email.as_deref(), Some("carol@example.org"));

    // Ann moves from the developers to the leads: at her next sign-in she is shop's admin.
    directory.set_member("shop-devs", "ann", false).await;
    directory.set_member("shop-leads", "ann", true).await;
    let (_, status, _) = log_in(&app, "ann", &password_of("ann")).await;
    assert!(status < 400);
    assert_eq!(
        shop_members(&app).await,
        [("ann".to_owned(), "admin".to_owned()), ("carol".to_owned(), "developer".to_owned())]
    );
    // Out of every group: what groups gave is gone.
    directory.set_member("shop-leads", "ann", false).await;
    let (_, status, _) = log_in(&app, "ann", &password_of("ann")).await;
    assert!(status < 400);
    assert_eq!(shop_members(&app).await, [("carol".to_owned(), "developer".to_owned())]);

    // The trail names the groups' doing; a directory user has no tagward password to reset.
    let trail: Vec<(String, String)> =
        sqlx::query_as("select actor, kind from audit_events order by id").fetch_all(&app.db.pool).await.unwrap();
    for kind in ["user.create", "member.add", "member.role", "member.remove", "user.system_admin"] {
        assert!(trail.iter().any(|(actor, k)| k == kind && actor.contains("groups")), "{kind} in {trail:?}");
    }
    let root = app.logged_in("root", PASSWORD).await;
    let response = app.call(&root, "reset_password", &[("name", "ann"), ("password", "a-new-password-1")]).await;
    assert_eq!(response.status(), 400);

    // `tagward user list` tells where each user signs in.
    let listed = tokio::process::Command::new(tests::tagward_bin())
        .args(["user", "list"])
        .env("DATABASE_URL", &app.db.url)
        .output()
        .await
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.contains("ann\tdirectory\tann@example.org\tno\tyes\t"), "{listed}");
    assert!(listed.contains("carol\tdirectory\tcarol@example.org\tyes\tyes\t"), "{listed}");
    assert!(listed.contains("root\tlocal\t-\tyes\tyes\t"), "{listed}");

    // For the record (not asserted): what a directory sign-in costs, end to end through the form.
    let started = std::time::Instant::now();
    for _ in 0..10 {
        let (_, status, _) = log_in(&app, "carol", &password_of("carol")).await;
        assert!(status < 400);
    }
    let through_directory = started.elapsed();
    let started = std::time::Instant::now();
    for _ in 0..10 {
        let (_, status, _) = log_in(&app, "root", PASSWORD).await;
        assert!(status < 400);
    }
    let local = started.elapsed();
    println!(
        "a sign-in through the login form: directory {:.1} ms, local password {:.1} ms on average",
        through_directory.as_secs_f64() * 100.0,
        local.as_secs_f64() * 100.0
    );

    // The groups can come from the users' memberOf (Active Directory's way) as well.
    let app = portal_with_directory(&directory, true, &[]).await;
    let (_, status, body) = log_in(&app, "carol", &password_of("carol")).await;
    assert!(status < 400, "{status}: {body}");
    assert_eq!(shop_members(&app).await, [("carol".to_owned(), "developer".to_owned())]);
}

#[tokio::test]
async fn wrong_passwords_unknown_users_and_filter_injections_find_nobody() {
    let directory = TestDirectory::start().await;
    let app = portal_with_directory(&directory, false, &[]).await;
    let users = user_count(&app).await;
    for (name, password) in [
        ("ann", "not-her-password"),
        ("nobody", "whatever-password"),
        ("*", &password_of("ann")),
        ("*)(uid=*", &password_of("ann")),
        ("admin)(|(a=*", &password_of("ann")),
        ("ann)(|(uid=*", &password_of("ann")),
        ("an*", &password_of("ann")),
        ("cn=admin,dc=example,dc=org", "admin-secret"),
        // No password: a directory would take an unauthenticated bind as a success.
        ("bob", ""),
    ] {
        let (_, status, body) = log_in(&app, name, password).await;
        assert_eq!(status, 400, "{name:?}: {body}");
        assert!(body.contains("wrong user name or password"), "{name:?}: {body}");
    }
    assert_eq!(user_count(&app).await, users, "no user was created");

    // Attempts at a directory user count like password attempts: the sixth within a minute waits,
    // however the name is spelt (the directory matches it ignoring case).
    for name in ["bob", "BOB", "Bob", "bOb"] {
        log_in(&app, name, "still-not-his").await;
    }
    let (_, status, body) = log_in(&app, "bob", &password_of("bob")).await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("too many failed attempts"), "{body}");
}

#[tokio::test]
async fn a_directory_that_is_down_or_silent_is_named_and_local_administrators_still_get_in() {
    let mut directory = TestDirectory::start().await;
    let app = portal_with_directory(&directory, false, &[]).await;
    let (_, status, _) = log_in(&app, "ann", &password_of("ann")).await;
    assert!(status < 400);

    // A directory whose certificate does not chain to the CA given is not talked to.
    let other_ca = tests::registry::TestCa::new();
    let other_ca_file = other_ca.dir.0.join("ca.pem").display().to_string();
    let untrusting = portal_with_directory(&directory, false, &["--ldap-ca", &other_ca_file]).await;
    let (_, status, body) = log_in(&untrusting, "ann", &password_of("ann")).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("the directory cannot be reached right now"), "{body}");

    directory.stop().await;
    let (_, status, body) = log_in(&app, "ann", &password_of("ann")).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("the directory cannot be reached right now"), "{body}");
    // The Harbor API's Basic auth says so too, in Harbor's error body.
    let response = reqwest::Client::new()
        .get(app.url("/api/v2.0/projects"))
        .basic_auth("ann", Some(password_of("ann")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let error: serde_json::Value = response.json().await.unwrap();
    assert_eq!(error["errors"][0]["code"], "SERVICE_UNAVAILABLE", "{error}");
    let (root, status, body) = log_in(&app, "root", PASSWORD).await;
    assert!(status < 400, "the local administrator: {status} {body}");
    assert_eq!(app.whoami(&root).await.as_deref(), Some("root"));

    // A directory that takes the connection and never answers: told within the timeout (2 s).
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut kept = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            kept.push(connection);
        }
    });
    let url = format!("ldap://127.0.0.1:{port}");
    let app = portal_with_directory(&directory, false, &["--ldap-url", &url]).await;
    let started = std::time::Instant::now();
    let (_, status, body) = log_in(&app, "ann", &password_of("ann")).await;
    let took = started.elapsed();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("the directory did not answer within 2 s"), "{body}");
    println!("a silent directory was answered in {took:?}");
    assert!(took < Duration::from_secs(20), "answered within the client's patience: {took:?}");
    held.abort();
}

#[tokio::test]
async fn the_harbor_api_takes_directory_users_with_basic_auth_over_ldaps() {
    let directory = TestDirectory::start().await;
    let ldaps = format!("ldaps://127.0.0.1:{}", directory.tls_port);
    let app = portal_with_directory(&directory, false, &["--ldap-url", &ldaps]).await;
    let client = reqwest::Client::new();
    let projects = |user: &str, password: String| {
        client.get(app.url("/api/v2.0/projects")).basic_auth(user, Some(password)).send()
    };
    let response = projects("ann", password_of("ann")).await.unwrap();
    assert_eq!(response.status(), 200);
    let listed: serde_json::Value = response.json().await.unwrap();
    assert_eq!(listed[0]["name"], "shop", "{listed}");
    assert_eq!(projects("ann", "wrong-password".into()).await.unwrap().status(), 401);
    assert_eq!(projects("*", password_of("ann")).await.unwrap().status(), 401);
    assert_eq!(shop_members(&app).await, [("ann".to_owned(), "developer".to_owned())]);
}

#[tokio::test]
async fn signing_in_at_the_directory_in_chromium_with_and_without_javascript() {
    let directory = TestDirectory::start().await;
    let app = portal_with_directory(&directory, false, &[]).await;
    for javascript in [true, false] {
        let browser = Browser::start(1024, javascript).await;
        browser.goto(&app.url("/projects/shop")).await;
        browser.wait_for_path("/login").await;
        assert_eq!(browser.text("#directory-hint").await, "Use your Example directory user name and password.");
        browser.find("#username").await.send_keys("ann").await.unwrap();
        browser.find("#password").await.send_keys("not-her-password").await.unwrap();
        browser.find("#login-form button[type=submit]").await.click().await.unwrap();
        assert!(browser.text("#login-error").await.contains("wrong user name or password"));
        if javascript {
            assert_eq!(browser.accessibility_violations().await, Vec::<String>::new());
            browser.screenshot("login-with-directory-1024").await;
        }
        browser.goto(&app.url("/login?next=/projects/shop")).await;
        browser.find("#username").await.send_keys("ann").await.unwrap();
        browser.find("#password").await.send_keys(&password_of("ann")).await.unwrap();
        browser.find("#login-form button[type=submit]").await.click().await.unwrap();
        browser.wait_for_path("/projects/shop").await;
        assert_eq!(browser.text(".who-name").await, "ann");
        browser.close().await;
    }
    let browser = Browser::start(1280, true).await;
    browser.log_in(&app.url(""), "root", PASSWORD).await;
    browser.goto(&app.url("/admin/users")).await;
    assert!(browser.text("#user-ann").await.contains("directory"));
    assert_eq!(browser.accessibility_violations().await, Vec::<String>::new());
    browser.close().await;
}

#[tokio::test]
async fn settings_that_cannot_work_stop_the_server_naming_them() {
    let directory = TestDirectory::start().await;
    for (flag, value, named) in [
        ("--ldap-user-filter", "uid={name}", "TAGWARD_LDAP_USER_FILTER `uid={name}`"),
        ("--ldap-user-filter", "(uid=*)", "must use {name}"),
        ("--ldap-group-filter", "(member={user})", "`{user}` is not one of {dn}, {name}"),
        ("--ldap-url", "http://127.0.0.1:389", "the scheme `http` is not ldap or ldaps"),
        ("--ldap-group-name", "guid", "group name `guid` is not one of cn, dn"),
    ] {
        let flags = flags_with(&directory, false, &[flag, value]);
        let output = tokio::process::Command::new(tests::tagward_bin())
            .args(["serve", "--addr", "127.0.0.1:0"])
            .args(&flags)
            .env("DATABASE_URL", "postgres://127.0.0.1:1/never-reached")
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success() && stderr.contains(named), "{flag} {value}: {stderr}");
    }
}

//! Administration: users, projects, service tokens, members and one's own password — who may do
//! what (through the server functions), the invariants, and each action in a real browser.

use serde_json::Value;
use std::time::Duration;
use tests::browser::Browser;
use tests::{spawn_app, TestApp};

use tests::fixtures::PASSWORD;

/// `root` (system admin), `ann` (admin of shop), `dev` (developer of shop), `out` (no project).
async fn cast() -> TestApp {
    let app = spawn_app().await;
    app.db.user("root", PASSWORD, true).await;
    for user in ["ann", "dev", "out"] {
        app.db.user(user, PASSWORD, false).await;
    }
    app.db.project("shop").await;
    app.db.member("shop", "ann", "admin").await;
    app.db.member("shop", "dev", "developer").await;
    app
}

async fn status(app: &TestApp, client: &reqwest::Client, function: &str, fields: &[(&str, &str)]) -> u16 {
    app.call(client, function, fields).await.status().as_u16()
}

async fn audit_kinds(app: &TestApp) -> Vec<String> {
    sqlx::query_scalar("select kind from audit_events where actor <> 'tests' order by id")
        .fetch_all(&app.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn who_may_do_what() {
    let app = cast().await;
    let root = app.logged_in("root", PASSWORD).await;
    let ann = app.logged_in("ann", PASSWORD).await;
    let dev = app.logged_in("dev", PASSWORD).await;
    let out = app.logged_in("out", PASSWORD).await;
    let anonymous = app.client();

    let admin_only: &[(&str, &[(&str, &str)])] = &[
        ("admin_users", &[]),
        ("create_user", &[("name", "eve"), ("password", PASSWORD)]),
        ("reset_password", &[("name", "dev"), ("password", "another long password")]),
        ("set_user_active", &[("name", "dev"), ("active", "false")]),
        ("admin_projects", &[]),
        ("create_project", &[("name", "web")]),
        ("delete_project", &[("name", "shop")]),
        ("admin_tokens", &[]),
        ("create_token", &[("name", "registry")]),
        ("revoke_token", &[("name", "registry")]),
    ];
    for (function, fields) in admin_only {
        assert_eq!(status(&app, &anonymous, function, fields).await, 401, "anonymous {function}");
        for (who, client) in [("ann", &ann), ("dev", &dev), ("out", &out)] {
            assert_eq!(status(&app, client, function, fields).await, 403, "{who} {function}");
        }
    }
    assert_eq!(app.db.rule_count().await, 0);
    let (users,): (i64,) = sqlx::query_as("select count(*) from users").fetch_one(&app.db.pool).await.unwrap();
    assert_eq!(users, 4, "nothing was created by the refused calls");
    assert!(audit_kinds(&app).await.is_empty(), "refused calls leave no audit entry");

    // Members: the project's admins and system admins change them; members see them; others get 404.
    let add = [("project", "shop"), ("user", "out"), ("role", "guest")];
    assert_eq!(status(&app, &dev, "set_member", &add).await, 403);
    assert_eq!(status(&app, &out, "set_member", &add).await, 404);
    assert_eq!(status(&app, &out, "members", &[("project", "shop")]).await, 404);
    let listed: Value = app.call(&dev, "members", &[("project", "shop")]).await.json().await.unwrap();
    assert_eq!(listed["can_manage"], false);
    assert_eq!(status(&app, &ann, "set_member", &add).await, 200);
    let listed: Value = app.call(&ann, "members", &[("project", "shop")]).await.json().await.unwrap();
    assert_eq!(listed["can_manage"], true);
    assert_eq!(listed["members"].as_array().unwrap().len(), 3);
    assert_eq!(
        status(&app, &root, "set_member", &[("project", "shop"), ("user", "out"), ("role", "remove")]).await,
        200
    );

    // Everyone may change their own password, and only with the current one.
    let wrong = [("current", "not my password"), ("new", "a brand new password"), ("confirm", "a brand new password")];
    assert_eq!(status(&app, &dev, "change_password", &wrong).await, 400);
    let mismatch = [("current", PASSWORD), ("new", "a brand new password"), ("confirm", "a brand new passwore")];
    assert_eq!(status(&app, &dev, "change_password", &mismatch).await, 400);
    assert_eq!(status(&app, &anonymous, "change_password", &wrong).await, 401);
    assert_eq!(audit_kinds(&app).await, ["member.add", "member.remove"]);
}

#[tokio::test]
async fn a_project_keeps_at_least_one_admin() {
    let app = cast().await;
    let ann = app.logged_in("ann", PASSWORD).await;
    let demote = [("project", "shop"), ("user", "ann"), ("role", "maintainer")];
    let response = app.call(&ann, "set_member", &demote).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["Invalid"], "`ann` is the last admin of project `shop`; make another member admin first");
    assert_eq!(
        status(&app, &ann, "set_member", &[("project", "shop"), ("user", "ann"), ("role", "remove")]).await,
        400
    );

    // With a second admin, the first may step down.
    assert_eq!(status(&app, &ann, "set_member", &[("project", "shop"), ("user", "dev"), ("role", "admin")]).await, 200);
    assert_eq!(status(&app, &ann, "set_member", &demote).await, 200);
    let roles: Vec<(String, String)> =
        sqlx::query_as("select u.name, m.role from project_members m join users u on u.id = m.user_id order by u.name")
            .fetch_all(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(roles, [("ann".into(), "maintainer".into()), ("dev".into(), "admin".into())]);

    let unknown = app
        .call(
            &app.logged_in("root", PASSWORD).await,
            "set_member",
            &[("project", "shop"), ("user", "nobody"), ("role", "guest")],
        )
        .await;
    assert_eq!(unknown.status(), 404);
    let bad_role =
        app.call(&ann.clone(), "set_member", &[("project", "shop"), ("user", "out"), ("role", "owner")]).await;
    assert_eq!(bad_role.status(), 403, "ann is no longer an admin");
}

#[tokio::test]
async fn deactivation_and_password_changes_end_sessions() {
    let app = cast().await;
    let root = app.logged_in("root", PASSWORD).await;
    let dev_here = app.logged_in("dev", PASSWORD).await;
    let dev_there = app.logged_in("dev", PASSWORD).await;

    // Changing one's own password keeps this session and ends the others.
    let change = [("current", PASSWORD), ("new", "a brand new password"), ("confirm", "a brand new password")];
    assert_eq!(status(&app, &dev_here, "change_password", &change).await, 200);
    assert_eq!(app.whoami(&dev_here).await.as_deref(), Some("dev"));
    assert_eq!(app.whoami(&dev_there).await, None, "the other session ended");
    assert_eq!(app.login(&app.client(), "dev", PASSWORD).await.status(), 400, "the old password is gone");
    let dev_again = app.logged_in("dev", "a brand new password").await;

    // An admin's reset ends every session of the user.
    let reset = [("name", "dev"), ("password", "reset by the admin")];
    assert_eq!(status(&app, &root, "reset_password", &reset).await, 200);
    assert_eq!(app.whoami(&dev_again).await, None);
    assert_eq!(app.whoami(&root).await.as_deref(), Some("root"));

    // Deactivation ends sessions at once and refuses logins; reactivation allows them again.
    let ann = app.logged_in("ann", PASSWORD).await;
    assert_eq!(status(&app, &root, "set_user_active", &[("name", "ann"), ("active", "false")]).await, 200);
    assert_eq!(app.whoami(&ann).await, None);
    assert_eq!(app.login(&app.client(), "ann", PASSWORD).await.status(), 400);
    assert_eq!(
        status(&app, &root, "set_user_active", &[("name", "root"), ("active", "false")]).await,
        400,
        "not oneself"
    );
    assert_eq!(status(&app, &root, "set_user_active", &[("name", "ann"), ("active", "true")]).await, 200);
    app.logged_in("ann", PASSWORD).await;

    let bad = app.call(&root, "create_user", &[("name", "Eve"), ("password", PASSWORD)]).await;
    assert_eq!(bad.status(), 400);
    let error: Value = bad.json().await.unwrap();
    assert!(error["Invalid"].as_str().unwrap().starts_with("name: user name `Eve` is not valid"), "{error}");
    assert_eq!(
        audit_kinds(&app).await,
        ["user.password_change", "user.password_reset", "user.deactivate", "user.activate"]
    );
}

#[tokio::test]
async fn projects_with_rules_are_not_deleted_and_revoked_tokens_are_refused_at_once() {
    let app = cast().await;
    let root = app.logged_in("root", PASSWORD).await;
    app.db.rule("shop", "matching:**", "matching:v*").await;
    let refused = app.call(&root, "delete_project", &[("name", "shop")]).await;
    assert_eq!(refused.status(), 400);
    let error: Value = refused.json().await.unwrap();
    assert!(
        error["Invalid"].as_str().unwrap().contains("project `shop` still has 1 tag immutability rule(s)"),
        "{error}"
    );
    assert_eq!(status(&app, &root, "create_project", &[("name", "web")]).await, 200);
    assert_eq!(status(&app, &root, "delete_project", &[("name", "web")]).await, 200);
    assert_eq!(status(&app, &root, "create_project", &[("name", "shop")]).await, 400, "names are unique");

    // A token created in the portal is shown once, works, and stops working the moment it is revoked.
    assert_eq!(status(&app, &root, "create_token", &[("name", "registry")]).await, 200);
    let view: Value = app.call(&root, "admin_tokens", &[]).await.json().await.unwrap();
    let secret = view["created"]["secret"].as_str().unwrap().to_owned();
    let again: Value = app.call(&root, "admin_tokens", &[]).await.json().await.unwrap();
    assert_eq!(again["created"], Value::Null, "shown once");
    assert_eq!(again["tokens"][0]["name"], "registry");

    let body = serde_json::json!({"operation": "delete_tag", "repository": "shop/api", "tag": "v1"});
    tests::until("the new token never worked", Duration::from_secs(2), || async {
        app.check(&secret, tests::fixtures::CHECK, &body).await.0 == 200
    })
    .await;
    // Last use is written off the request path, every few seconds.
    tests::eventually("the token's last use recorded", Duration::from_secs(12), || async {
        let view: Value = app.call(&root, "admin_tokens", &[]).await.json().await.unwrap();
        if view["tokens"][0]["last_used_at"].is_string() {
            Ok(())
        } else {
            Err(view.to_string())
        }
    })
    .await;
    assert_eq!(status(&app, &root, "revoke_token", &[("name", "registry")]).await, 200);
    let waited = tests::until("the revoked token still worked", Duration::from_secs(1), || async {
        app.check(&secret, tests::fixtures::CHECK, &body).await.0 == 401
    })
    .await;
    println!("portal revocation effective after {:?}", waited);
    assert_eq!(audit_kinds(&app).await, ["project.create", "project.delete", "token.create", "token.revoke"]);
}

/// Fills an input, replacing what it held.
async fn fill(browser: &Browser, css: &str, value: &str) {
    let input = browser.find(css).await;
    input.clear().await.unwrap();
    input.send_keys(value).await.unwrap();
}

async fn submit(browser: &Browser, css: &str) {
    browser.find(css).await.click().await.unwrap();
}

#[tokio::test]
async fn administration_through_the_browser() {
    let app = cast().await;
    let browser = Browser::start(1280, true).await;
    browser.log_in(&app.url(""), "root", PASSWORD).await;
    browser.find("a[href='/admin']").await.click().await.unwrap();
    browser.wait_for_path("/admin").await;

    fill(&browser, "#new-user-name", "eve").await;
    fill(&browser, "#new-user-password", "eve's long password").await;
    submit(&browser, "#create-user button[type=submit]").await;
    browser.text_containing("#users", "eve").await;
    let eve = app.logged_in("eve", "eve's long password").await;
    assert!(
        browser.client.find(fantoccini::Locator::Css("button[aria-label='Deactivate root']")).await.is_err(),
        "no button to deactivate oneself"
    );
    browser.find("button[aria-label='Deactivate ann']").await;

    fill(&browser, "#user-eve input[type=password]", "short").await;
    // The browser's own check (minlength) stops a short password; the server's says the same.
    let reset = app
        .call(&app.logged_in("root", PASSWORD).await, "reset_password", &[("name", "eve"), ("password", "short")])
        .await;
    assert_eq!(reset.status(), 400);
    fill(&browser, "#user-eve input[type=password]", "eve's new password!").await;
    submit(&browser, "#user-eve .row-form button").await;
    browser.text_containing("#users", "eve").await;
    tests::until("reset did not end eve's session", Duration::from_secs(5), || async {
        app.whoami(&eve).await.is_none()
    })
    .await;
    let eve = app.logged_in("eve", "eve's new password!").await;
    submit(&browser, "#user-eve button[aria-label='Deactivate eve']").await;
    browser.text_containing("#user-eve", "deactivated").await;
    assert_eq!(app.whoami(&eve).await, None);
    browser.screenshot("admin-users-1280").await;

    browser.find("a[href='/admin/projects']").await.click().await.unwrap();
    fill(&browser, "#new-project-name", "web").await;
    submit(&browser, "#create-project button[type=submit]").await;
    browser.text_containing("#projects", "web").await;
    app.db.rule("shop", "matching:**", "matching:v*").await;
    submit(&browser, "button[aria-label='Delete project shop']").await;
    browser.text_containing("[role=alert]", "project `shop` still has 1 tag immutability rule(s)").await;
    submit(&browser, "button[aria-label='Delete project web']").await;
    tests::until("web was not deleted", Duration::from_secs(5), || async {
        !browser.text("#projects").await.contains("web")
    })
    .await;
    browser.screenshot("admin-projects-1280").await;

    browser.find("a[href='/admin/tokens']").await.click().await.unwrap();
    fill(&browser, "#new-token-name", "registry-eu").await;
    submit(&browser, "#create-token button[type=submit]").await;
    let secret = browser.text("#new-token").await;
    assert!(secret.starts_with("tw_") && secret.len() == 67, "{secret}");
    browser.screenshot("admin-tokens-1280").await;
    submit(&browser, "button[aria-label='Revoke token registry-eu']").await;
    browser.text_containing("#tokens", "revoked").await;
    assert!(browser.client.find(fantoccini::Locator::Css("#new-token")).await.is_err(), "the secret is shown once");
    browser.close().await;
}

#[tokio::test]
async fn members_and_password_through_the_browser_without_javascript() {
    let app = cast().await;
    let browser = Browser::start(390, false).await;
    browser.log_in(&app.url(""), "ann", PASSWORD).await;
    browser.goto(&app.url("/projects/shop/members")).await;
    fill(&browser, "#member-user", "out").await;
    submit(&browser, "#add-member button[type=submit]").await;
    browser.text_containing("#members", "out").await;

    // Demoting the last admin is refused, next to the list.
    submit(&browser, "#member-ann .row-form select option[value=guest]").await;
    submit(&browser, "#member-ann .row-form button").await;
    browser.text_containing("[role=alert]", "`ann` is the last admin of project `shop`").await;
    browser.screenshot("members-error-390").await;

    submit(&browser, "#member-out .row-form select option[value=maintainer]").await;
    submit(&browser, "#member-out .row-form button").await;
    tests::eventually("out's role changed to maintainer", Duration::from_secs(5), || async {
        let role: String = sqlx::query_scalar(
            "select m.role from project_members m join users u on u.id = m.user_id where u.name = 'out'",
        )
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
        if role == "maintainer" {
            Ok(())
        } else {
            Err(role)
        }
    })
    .await;
    submit(&browser, "button[aria-label='Remove out']").await;
    tests::until("out was not removed", Duration::from_secs(5), || async {
        !browser.text("#members").await.contains("out")
    })
    .await;

    let elsewhere = app.logged_in("ann", PASSWORD).await;
    browser.goto(&app.url("/account")).await;
    fill(&browser, "#current-password", PASSWORD).await;
    fill(&browser, "#new-password", "ann's brand new password").await;
    fill(&browser, "#confirm-password", "ann's brand new password").await;
    submit(&browser, "#change-password button[type=submit]").await;
    browser.text_containing("#password-changed", "Password changed").await;
    assert_eq!(app.whoami(&elsewhere).await, None, "the other session ended");
    browser.screenshot("account-390").await;
    browser.goto(&app.url("/projects/shop/members")).await;
    browser.text_containing("#members", "ann").await;
    browser.close().await;
}

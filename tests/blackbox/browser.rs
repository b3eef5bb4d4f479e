//! The portal in a real headless Chromium.

use tests::browser::Browser;
use tests::spawn_app;

const PASSWORD: &str = "correct horse battery";

#[tokio::test]
async fn log_in_see_projects_and_open_one_without_a_page_load() {
    let app = spawn_app().await;
    app.db.user("alice", PASSWORD, false).await;
    app.db.project("shop").await;
    app.db.member("shop", "alice", "admin").await;
    let browser = Browser::start(1280, true).await;

    browser.log_in(&app.url(""), "alice", PASSWORD).await;
    assert_eq!(browser.text(".project-list li .project-name").await, "shop");
    assert_eq!(browser.text(".who-name").await, "alice");
    browser.wait_for_hydration().await;
    browser.screenshot("projects-1280").await;

    // A marker on `window` survives only if the next page comes without a full load.
    browser.client.execute("window.__same_document = true", vec![]).await.unwrap();
    browser.find(".project-list a").await.click().await.unwrap();
    browser.wait_for_path("/projects/shop").await;
    assert_eq!(browser.text("h1.project-title").await, "shop");
    let marker = browser.client.execute("return window.__same_document === true", vec![]).await.unwrap();
    assert_eq!(marker, serde_json::Value::Bool(true), "navigation reloaded the page: not hydrated");
    browser.screenshot("project-1280").await;
    browser.close().await;
}

#[tokio::test]
async fn logging_in_works_without_javascript() {
    let app = spawn_app().await;
    app.db.user("alice", PASSWORD, false).await;
    let browser = Browser::start(390, false).await;

    browser.goto(&app.url("/login")).await;
    browser.find("#username").await.send_keys("alice").await.unwrap();
    browser.find("#password").await.send_keys("wrong password!").await.unwrap();
    browser.find("#login-form button[type=submit]").await.click().await.unwrap();
    assert_eq!(browser.text("#login-error").await, "wrong user name or password");
    browser.screenshot("login-error-390").await;

    browser.find("#username").await.send_keys("alice").await.unwrap();
    browser.find("#password").await.send_keys(PASSWORD).await.unwrap();
    browser.find("#login-form button[type=submit]").await.click().await.unwrap();
    browser.wait_for_path("/").await;
    assert!(browser.text("main").await.contains("not a member of any project"));
    browser.close().await;
}

use tests::{session_cookie, spawn_app};

use tests::fixtures::PASSWORD;

#[tokio::test]
async fn login_starts_a_session_and_logout_ends_it() {
    // Arrange
    let app = spawn_app().await;
    app.db.user("alice", PASSWORD, false).await;
    let client = app.client();

    // Act
    let response = app.login(&client, "alice", PASSWORD).await;

    // Assert
    // A script (not a form) gets the result and where to go next.
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers().get("location").unwrap(), "/");
    let cookie = session_cookie(&response).expect("a session cookie");
    let set_cookie = response.headers().get("set-cookie").unwrap().to_str().unwrap().to_owned();
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    assert_eq!(app.whoami(&client).await.as_deref(), Some("alice"));

    let logout = client.post(app.url("/portal/logout")).header("Origin", app.url("")).send().await.unwrap();
    assert_eq!(logout.status(), 200);
    assert_eq!(logout.headers().get("location").unwrap(), "/login");
    assert_eq!(app.whoami(&client).await, None);

    // The old cookie, replayed, no longer identifies anyone.
    let replay =
        reqwest::Client::new().post(app.url("/portal/current_user")).header("Cookie", cookie).send().await.unwrap();
    assert_eq!(replay.text().await.unwrap(), "null");
}

#[tokio::test]
async fn wrong_user_and_wrong_password_get_the_same_answer() {
    let app = spawn_app().await;
    app.db.user("alice", PASSWORD, false).await;
    let client = app.client();

    let wrong_password = app.login(&client, "alice", "not the password").await;
    let status = wrong_password.status();
    let wrong_password = wrong_password.text().await.unwrap();
    let wrong_user = app.login(&client, "mallory", PASSWORD).await;
    assert_eq!(status, 400);
    assert_eq!(wrong_user.status(), 400);
    assert_eq!(wrong_user.text().await.unwrap(), wrong_password);
    assert!(wrong_password.contains("wrong user name or password"), "{wrong_password}");
    assert_eq!(app.whoami(&client).await, None);
}

#[tokio::test]
async fn the_session_id_changes_on_login() {
    let app = spawn_app().await;
    app.db.user("alice", PASSWORD, false).await;
    let client = app.client();
    let first = session_cookie(&app.login(&client, "alice", PASSWORD).await).unwrap();
    let second = session_cookie(&app.login(&client, "alice", PASSWORD).await).unwrap();
    assert_ne!(first, second);
}

#[tokio::test]
async fn repeated_failures_are_throttled_per_user_name() {
    let app = spawn_app().await;
    app.db.user("alice", PASSWORD, false).await;
    let client = app.client();
    for _ in 0..5 {
        assert_eq!(app.login(&client, "alice", "wrong password!").await.status(), 400);
    }
    // Now even the right password waits: the answer says for how long.
    let throttled = app.login(&client, "alice", PASSWORD).await;
    assert_eq!(throttled.status(), 429);
    let body = throttled.text().await.unwrap();
    assert!(body.contains("retry_after"), "{body}");
    assert_eq!(app.whoami(&client).await, None);
}

#[tokio::test]
async fn throttled_form_posts_get_a_page_that_says_when_to_retry() {
    let app = spawn_app().await;
    let client = app.client();
    for _ in 0..5 {
        app.login(&client, "nobody", "wrong password!").await;
    }
    // As a browser without JavaScript posts it: back to the login page, which shows the error.
    let response = client
        .post(app.url("/portal/login"))
        .header("Origin", app.url(""))
        .header("Accept", "text/html")
        .header("Referer", app.url("/login"))
        .form(&[("username", "nobody"), ("password", "wrong password!")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    let location = response.headers().get("location").unwrap().to_str().unwrap().to_owned();
    assert!(location.starts_with(&app.url("/login?")), "{location}");
    let page = client.get(&location).header("Accept", "text/html").send().await.unwrap().text().await.unwrap();
    assert!(page.contains("too many failed attempts; try again in"), "{location}\n{page}");
}

#[tokio::test]
async fn cross_origin_posts_are_refused() {
    let app = spawn_app().await;
    app.db.user("alice", PASSWORD, false).await;
    let client = app.client();
    assert_eq!(app.login(&client, "alice", PASSWORD).await.status(), 200);

    let from_elsewhere =
        client.post(app.url("/portal/logout")).header("Origin", "https://evil.example").send().await.unwrap();
    assert_eq!(from_elsewhere.status(), 403);
    let cross_site =
        client.post(app.url("/portal/logout")).header("Sec-Fetch-Site", "cross-site").send().await.unwrap();
    assert_eq!(cross_site.status(), 403);
    assert_eq!(app.whoami(&client).await.as_deref(), Some("alice"), "still logged in");

    let same_origin = client
        .post(app.url("/portal/logout"))
        .header("Sec-Fetch-Site", "same-origin")
        .header("Origin", app.url(""))
        .send()
        .await
        .unwrap();
    assert_eq!(same_origin.status(), 200);
    assert_eq!(app.whoami(&client).await, None);
}

#[tokio::test]
async fn anonymous_visitors_are_sent_to_the_login_page() {
    let app = spawn_app().await;
    app.db.user("alice", PASSWORD, false).await;
    app.db.project("shop").await;
    app.db.member("shop", "alice", "developer").await;
    let response = app.page(&app.client(), "/").await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers().get("location").unwrap(), "/login?next=%2F");
    let deep = app.page(&app.client(), "/projects/shop/activity?page=2").await;
    assert_eq!(deep.headers().get("location").unwrap(), "/login?next=%2Fprojects%2Fshop%2Factivity%3Fpage%3D2");
    // A client that does not ask for HTML is told where to log in, not shown an empty page.
    let curl = app.client().get(app.url("/projects/shop")).header("Accept", "*/*").send().await.unwrap();
    assert_eq!(curl.status(), 401);
    let body = curl.text().await.unwrap();
    assert!(body.contains(r#"<a href="/login?next=%2Fprojects%2Fshop">log in to tagward</a>"#), "{body}");
    let missing = app.client().get(app.url("/no/such/page")).header("Accept", "*/*").send().await.unwrap();
    assert_eq!(missing.status(), 404, "a path that is no page stays 404");
    let login = app.page(&app.client(), "/login?next=%2Fprojects%2Fshop%2Factivity").await;
    assert_eq!(login.status(), 200);
    let html = login.text().await.unwrap();
    assert!(html.contains("Log in to tagward"));
    assert!(html.contains(r#"name="next" value="/projects/shop/activity""#), "{html}");

    // The plain form (no JavaScript) logs in and goes back where the visitor was sent from ...
    let client = app.client();
    let form = [("username", "alice"), ("password", PASSWORD), ("next", "/projects/shop/activity")];
    let back = client.post(app.url("/portal/login")).header("Accept", "text/html").form(&form).send().await.unwrap();
    assert_eq!(back.headers().get("location").unwrap(), "/projects/shop/activity");
    assert_eq!(app.page(&client, "/projects").await.status(), 200, "/projects lists the projects");
    // ... but never to another site.
    let client = app.client();
    let form = [("username", "alice"), ("password", PASSWORD), ("next", "//evil.example/x")];
    let home = client.post(app.url("/portal/login")).header("Accept", "text/html").form(&form).send().await.unwrap();
    assert_eq!(home.headers().get("location").unwrap(), "/");
}

#[tokio::test]
async fn members_see_their_project_and_others_get_404() {
    let app = spawn_app().await;
    app.db.user("alice", PASSWORD, false).await;
    app.db.user("bob", PASSWORD, false).await;
    app.db.user("root", PASSWORD, true).await;
    app.db.project("shop").await;
    app.db.project("internal").await;
    app.db.member("shop", "alice", "developer").await;

    let alice = app.client();
    app.login(&alice, "alice", PASSWORD).await;
    let list = app.page(&alice, "/").await.text().await.unwrap();
    assert!(list.contains("shop") && !list.contains("internal"), "{list}");
    let page = app.page(&alice, "/projects/shop").await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Tag Immutability"));
    // Not a member, and not existing at all, look the same.
    let hidden = app.page(&alice, "/projects/internal").await;
    assert_eq!(hidden.status(), 404);
    let missing = app.page(&alice, "/projects/nope").await;
    assert_eq!(missing.status(), 404);

    let bob = app.client();
    app.login(&bob, "bob", PASSWORD).await;
    assert_eq!(app.page(&bob, "/projects/shop").await.status(), 404);
    let empty = app.page(&bob, "/").await.text().await.unwrap();
    assert!(empty.contains("not a member of any project"), "{empty}");

    let root = app.client();
    app.login(&root, "root", PASSWORD).await;
    let all = app.page(&root, "/").await.text().await.unwrap();
    assert!(all.contains("shop") && all.contains("internal"), "{all}");
    assert_eq!(app.page(&root, "/projects/internal").await.status(), 200);
}

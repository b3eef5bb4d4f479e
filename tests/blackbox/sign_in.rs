//! Signing in through an identity provider: a real OpenID provider (npm's `oidc-provider`) run by
//! node, the portal configured to use it, a real Chromium for the browser's path.

use tests::browser::Browser;
use tests::fixtures::PASSWORD;
use tests::oidc::{follow_until_back, portal_with_provider, sign_in, PROVIDER_NAME};
use tests::TestApp;

/// The path and query a redirect sends the browser to.
fn location(response: &reqwest::Response) -> String {
    response.headers().get("location").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

/// Signs in as `login` with a fresh client; the client (signed in, or not) and the callback's response.
async fn fresh_sign_in(app: &TestApp, login: &str) -> (reqwest::Client, reqwest::Response) {
    let client = app.client();
    let response = sign_in(app, &client, login).await;
    (client, response)
}

async fn members_of(app: &TestApp, project: &str) -> Vec<(String, String, bool)> {
    sqlx::query_as(
        r"select u.name, m.role, m.from_groups from project_members m
          join users u on u.id = m.user_id join projects p on p.id = m.project_id
          where p.name = $1 order by u.name",
    )
    .bind(project)
    .fetch_all(&app.db.pool)
    .await
    .unwrap()
}

async fn is_system_admin(app: &TestApp, user: &str) -> bool {
    let (admin,): (bool,) = sqlx::query_as("select is_system_admin from users where name = $1")
        .bind(user)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    admin
}

#[tokio::test]
async fn a_first_sign_in_creates_the_user_and_groups_grant_roles_until_they_leave_them() {
    let (app, provider) = portal_with_provider(&[("alice", &["shop-devs", "platform-admins", "unmapped"])], &[]).await;
    app.db.user("root", PASSWORD, true).await;
    app.db.project("shop").await;
    app.db.project("web").await;
    let admin = app.logged_in("root", PASSWORD).await;
    app.map_groups(
        &admin,
        &[("shop-devs", "developer", "shop"), ("shop-leads", "admin", "shop"), ("platform-admins", "system-admin", "")],
    )
    .await;
    // A bad mapping names the field and the value, and stores nothing.
    let response =
        app.call(&admin, "add_group_mapping", &[("group", "x"), ("role", "owner"), ("project", "shop")]).await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("role: role `owner`"));

    let (alice, response) = fresh_sign_in(&app, "alice").await;
    assert_eq!(response.status(), 200, "the signed-in page");
    let page = response.text().await.unwrap();
    assert!(page.contains("http-equiv=\"refresh\" content=\"0;url=/projects\""), "{page}");
    assert_eq!(app.whoami(&alice).await.as_deref(), Some("alice"));
    assert!(is_system_admin(&app, "alice").await);
    assert_eq!(members_of(&app, "shop").await, vec![("alice".to_owned(), "developer".to_owned(), true)]);
    // The user comes from the provider: no password, nor can one be set for them.
    let response = app.call(&admin, "reset_password", &[("name", "alice"), ("password", "a-new-password-1")]).await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("`alice` signs in through the identity provider"));
    assert_eq!(app.login(&app.client(), "alice", "").await.status(), 400);

    // A role given by hand is never touched by sign-ins.
    let response =
        app.call(&admin, "set_member", &[("project", "web"), ("user", "alice"), ("role", "maintainer")]).await;
    assert!(response.status().is_success());

    // Now in the leads' group and out of the admins': at the next sign-in she is shop's admin and
    // no longer a system administrator.
    provider.set_groups("alice", &["shop-devs", "shop-leads"]);
    let (_, response) = fresh_sign_in(&app, "alice").await;
    assert_eq!(response.status(), 200);
    assert!(!is_system_admin(&app, "alice").await);
    assert_eq!(members_of(&app, "shop").await, vec![("alice".to_owned(), "admin".to_owned(), true)]);

    // Out of every group: the roles groups gave are gone; the one given by hand stays.
    provider.set_groups("alice", &[]);
    let (alice, _) = fresh_sign_in(&app, "alice").await;
    assert_eq!(app.whoami(&alice).await.as_deref(), Some("alice"));
    assert!(members_of(&app, "shop").await.is_empty());
    assert_eq!(members_of(&app, "web").await, vec![("alice".to_owned(), "maintainer".to_owned(), false)]);

    // The trail says what the sign-ins changed, and who changed the mappings.
    let trail: Vec<(String, String)> =
        sqlx::query_as("select actor, kind from audit_events order by id").fetch_all(&app.db.pool).await.unwrap();
    let kinds: Vec<&str> = trail.iter().map(|(_, kind)| kind.as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "group.add").count(), 3, "{trail:?}");
    for kind in ["user.create", "user.system_admin", "member.add", "member.role", "member.remove"] {
        assert!(kinds.contains(&kind), "{kind} in {trail:?}");
    }
    assert!(trail.iter().any(|(actor, kind)| actor == "tagward (identity provider groups)" && kind == "member.remove"));
    let activity = app.page(&admin, "/admin/activity?kind=member").await.text().await.unwrap();
    assert!(
        activity.contains("removed alice (admin) (from the identity provider&#x27;s groups)")
            || activity.contains("removed alice (admin) (from the identity provider's groups)"),
        "{activity}"
    );

    // Removing a mapping is audited too.
    let (id,): (i64,) = sqlx::query_as("select id from group_role_mappings where group_name = 'shop-leads'")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert!(app.call(&admin, "remove_group_mapping", &[("id", &id.to_string())]).await.status().is_success());
    let page = app.page(&admin, "/admin/groups").await.text().await.unwrap();
    assert!(page.contains("shop-devs") && !page.contains("shop-leads"), "{page}");
}

#[tokio::test]
async fn spoiled_id_tokens_and_forged_callbacks_are_refused() {
    let (app, provider) = portal_with_provider(&[("alice", &[])], &[]).await;
    for kind in ["tamper", "nonce", "audience", "expired"] {
        provider.spoil_next_token(kind).await;
        let (client, response) = fresh_sign_in(&app, "alice").await;
        assert_eq!(response.status(), 303, "{kind}");
        assert_eq!(location(&response), "/login?error=sign-in-failed", "{kind}");
        assert_eq!(app.whoami(&client).await, None, "{kind}");
    }
    let count: (i64,) = sqlx::query_as("select count(*) from users").fetch_one(&app.db.pool).await.unwrap();
    assert_eq!(count.0, 0, "no user was made from a refused token");

    // A callback whose `state` is not the one this browser's flow sent.
    let client = app.client();
    let start = client.get(app.url("/login/oidc")).send().await.unwrap();
    assert_eq!(start.status(), 303);
    let response = client.get(app.url("/login/oidc/callback?code=made-up&state=made-up")).send().await.unwrap();
    assert_eq!(location(&response), "/login?error=sign-in-failed");
    // The flow was taken by that attempt: it cannot be tried again.
    let response = client.get(app.url("/login/oidc/callback?code=made-up&state=made-up")).send().await.unwrap();
    assert_eq!(location(&response), "/login?error=expired");
    // A callback with no flow cookie at all (login CSRF: someone else's code pushed at this browser).
    let response = app.client().get(app.url("/login/oidc/callback?code=x&state=y")).send().await.unwrap();
    assert_eq!(location(&response), "/login?error=expired");

    // A good sign-in still works, and replaying its callback does not sign anyone in.
    let client = app.client();
    let start = client.get(app.url("/login/oidc")).send().await.unwrap();
    let form = follow_until_back(&app, &client, start).await;
    let action = format!("{}/login", form.url().as_str().split('?').next().unwrap());
    let to_callback = client.post(action).form(&[("login", "alice")]).send().await.unwrap();
    let mut response = to_callback;
    let mut callback_url = None;
    while response.status().is_redirection() {
        let next = response.url().join(&location(&response)).unwrap();
        if next.path() == "/login/oidc/callback" {
            callback_url = Some(next.clone());
        }
        response = client.get(next).send().await.unwrap();
        if callback_url.is_some() {
            break;
        }
    }
    assert_eq!(response.status(), 200);
    let replay = app.client().get(callback_url.unwrap()).send().await.unwrap();
    assert_eq!(location(&replay), "/login?error=expired");
}

#[tokio::test]
async fn rotated_keys_are_fetched_and_a_provider_that_is_down_is_reported() {
    let (app, mut provider) = portal_with_provider(&[("alice", &[])], &[]).await;
    app.db.user("root", PASSWORD, true).await;
    let (client, response) = fresh_sign_in(&app, "alice").await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.whoami(&client).await.as_deref(), Some("alice"));

    // A restart makes a new signing key (the old one is gone from its key set).
    provider.restart().await;
    let (client, response) = fresh_sign_in(&app, "alice").await;
    assert_eq!(response.status(), 200, "signed in with the rotated key");
    assert_eq!(app.whoami(&client).await.as_deref(), Some("alice"));

    provider.stop().await;
    let response = app.client().get(app.url("/login/oidc")).send().await.unwrap();
    assert_eq!(location(&response), "/login?error=provider-unavailable");
    let page = app.page(&app.client(), "/login?error=provider-unavailable").await.text().await.unwrap();
    assert!(page.contains(&format!("{PROVIDER_NAME} cannot be reached right now")), "{page}");
    // The password login still works meanwhile.
    let root = app.logged_in("root", PASSWORD).await;
    assert_eq!(app.whoami(&root).await.as_deref(), Some("root"));
    // And the outcomes are counted for an alert.
    let metrics = reqwest::get(app.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("tagward_sign_ins_total{outcome=\"signed-in\"} 2"), "{metrics}");
    assert!(metrics.contains("tagward_sign_ins_total{outcome=\"provider-unavailable\"} 1"), "{metrics}");
}

#[tokio::test]
async fn passwords_can_be_kept_for_break_glass_administrators_only() {
    let (app, _provider) = portal_with_provider(&[("alice", &[])], &["--password-login", "system-admins"]).await;
    app.db.user("root", PASSWORD, true).await;
    app.db.user("bob", PASSWORD, false).await;
    app.db.project("shop").await;
    app.db.member("shop", "bob", "admin").await;

    let response = app.login(&app.client(), "bob", PASSWORD).await;
    assert_eq!(response.status(), 403);
    assert!(response.text().await.unwrap().contains("password login is only for system administrators"));
    // The Harbor API's Basic auth follows the same setting; a script uses a service token instead.
    let harbor = reqwest::Client::new()
        .get(app.url("/api/v2.0/projects/shop/immutabletagrules"))
        .basic_auth("bob", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(harbor.status(), 403);
    let root = app.logged_in("root", PASSWORD).await;
    assert_eq!(app.whoami(&root).await.as_deref(), Some("root"));

    let page = app.page(&app.client(), "/login").await.text().await.unwrap();
    assert!(page.contains(&format!("Sign in with {PROVIDER_NAME}")), "{page}");
    assert!(page.contains("<details class=\"break-glass\""), "{page}");
}

#[tokio::test]
async fn deactivated_users_and_taken_names_stay_out_and_the_callback_is_throttled() {
    let (app, provider) = portal_with_provider(&[("alice", &[]), ("bob", &[])], &[]).await;
    app.db.user("root", PASSWORD, true).await;
    // A local `bob` exists: the provider's bob is not let into his account.
    app.db.user("bob", PASSWORD, false).await;
    let (_, response) = fresh_sign_in(&app, "bob").await;
    assert_eq!(location(&response), "/login?error=name-taken");

    let (alice, response) = fresh_sign_in(&app, "alice").await;
    assert_eq!(response.status(), 200);
    let root = app.logged_in("root", PASSWORD).await;
    let response = app.call(&root, "set_user_active", &[("name", "alice"), ("active", "false")]).await;
    assert!(response.status().is_success());
    assert_eq!(app.whoami(&alice).await, None, "her session ended");
    let (_, response) = fresh_sign_in(&app, "alice").await;
    assert_eq!(location(&response), "/login?error=deactivated", "whatever the provider says");
    drop(provider);

    // The callback counts against the address like a password attempt (20 a minute per address
    // here; a callback names no account). The two refused sign-ins above counted; the one that
    // succeeded did not.
    let client = app.client();
    let mut answers = Vec::new();
    for _ in 0..20 {
        let response = client.get(app.url("/login/oidc/callback?code=x&state=y")).send().await.unwrap();
        answers.push(location(&response));
    }
    assert!(answers[..18].iter().all(|a| a == "/login?error=expired"), "{answers:?}");
    assert!(answers[18..].iter().all(|a| a == "/login?error=too-many-attempts"), "{answers:?}");
}

#[tokio::test]
async fn a_required_claim_keeps_out_everyone_without_it() {
    let (app, _provider) = portal_with_provider(
        &[("alice", &["staff"]), ("eve", &["contractors"])],
        &["--oidc-required-claim", "groups=staff"],
    )
    .await;
    let (_, response) = fresh_sign_in(&app, "eve").await;
    assert_eq!(location(&response), "/login?error=not-allowed");
    let page = app.page(&app.client(), "/login?error=not-allowed").await.text().await.unwrap();
    assert!(page.contains("not one that may use tagward"), "{page}");
    let (alice, response) = fresh_sign_in(&app, "alice").await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.whoami(&alice).await.as_deref(), Some("alice"));
    let users: Vec<(String,)> = sqlx::query_as("select name from users").fetch_all(&app.db.pool).await.unwrap();
    assert_eq!(users, [("alice".to_owned(),)], "nobody was made for eve");
}

#[tokio::test]
async fn a_session_lasts_at_most_the_configured_time_and_logout_ends_the_providers_too() {
    let (app, _provider) = portal_with_provider(&[("alice", &[])], &["--oidc-session-max", "120"]).await;
    let (client, response) = fresh_sign_in(&app, "alice").await;
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("tagward_session="))
        .expect("a session cookie");
    let max_age: i64 =
        cookie.split(';').find_map(|part| part.trim().strip_prefix("Max-Age=")).expect("Max-Age").parse().unwrap();
    assert!((100..=120).contains(&max_age), "{cookie}");

    let response = app.call(&client, "logout", &[]).await;
    let to = location(&response);
    assert!(
        to.contains("/session/end?") && to.contains("id_token_hint=") && to.contains("post_logout_redirect_uri="),
        "{to}"
    );
    assert_eq!(app.whoami(&client).await, None);
}

#[tokio::test]
async fn signing_in_through_the_provider_in_chromium_with_and_without_javascript() {
    let (app, provider) = portal_with_provider(&[("carol", &["shop-devs"])], &[]).await;
    app.db.project("shop").await;
    sqlx::query("insert into group_role_mappings (group_name, project_id, role, created_by) select 'shop-devs', id, 'developer', 'test' from projects where name = 'shop'")
        .execute(&app.db.pool)
        .await
        .unwrap();
    for javascript in [true, false] {
        let browser = Browser::start(1024, javascript).await;
        browser.goto(&app.url("/projects/shop")).await;
        browser.wait_for_path("/login").await;
        assert_eq!(browser.text("#sign-in-provider").await, format!("Sign in with {PROVIDER_NAME}"));
        if javascript {
            assert_eq!(browser.accessibility_violations().await, Vec::<String>::new());
            browser.screenshot("login-with-provider-1024").await;
        }
        browser.find("#sign-in-provider").await.click().await.unwrap();
        browser.find("#login").await.send_keys("carol").await.unwrap();
        browser.find("button[type=submit]").await.click().await.unwrap();
        browser.wait_for_path("/projects/shop").await;
        assert_eq!(browser.text(".who-name").await, "carol");
        // Her account has no tagward password to change.
        browser.goto(&app.url("/account")).await;
        assert!(browser.text("#provider-account").await.contains("identity provider"));
        assert!(browser.client.find(fantoccini::Locator::Css("#change-password")).await.is_err());
        browser.close().await;
    }
    // Administration's Sign-in groups, as a system administrator sees it.
    app.db.user("root", PASSWORD, true).await;
    let browser = Browser::start(1280, true).await;
    browser.log_in(&app.url(""), "root", PASSWORD).await;
    browser.goto(&app.url("/admin/groups")).await;
    assert!(browser.text("#group-mappings").await.contains("developer of project `shop`"));
    // The form offers the projects (rendered on the server: the page has no code).
    browser.find("#mapping-project option[value='shop']").await;
    assert_eq!(browser.accessibility_violations().await, Vec::<String>::new());
    browser.screenshot("admin-groups-1280").await;
    browser.close().await;
    drop(provider);
    // With the provider gone, the login page says so in words.
    let browser = Browser::start(1024, false).await;
    browser.goto(&app.url("/login")).await;
    browser.find("#sign-in-provider").await.click().await.unwrap();
    let message = browser.text("#sign-in-error").await;
    assert_eq!(message, format!("{PROVIDER_NAME} cannot be reached right now; try again in a moment"));
    browser.screenshot("login-provider-down-1024").await;
    browser.close().await;
}

#[tokio::test]
async fn a_provider_serving_claims_only_at_userinfo_signs_people_in_with_their_groups() {
    // oidc-provider with its default settings: an access token is issued, so the user name and
    // groups are at UserInfo, and the ID token carries `sub` alone.
    let accounts: &[(&str, &[&str])] = &[("dana", &["shop-devs"])];
    let flags = ["--oidc-required-claim", "preferred_username=dana"];
    let (app, provider) = tests::oidc::portal_with_provider_conforming(accounts, &flags, true).await;
    app.db.project("shop").await;
    sqlx::query("insert into group_role_mappings (group_name, project_id, role, created_by) select 'shop-devs', id, 'developer', 'test' from projects where name = 'shop'")
        .execute(&app.db.pool)
        .await
        .unwrap();
    let (dana, response) = fresh_sign_in(&app, "dana").await;
    assert_eq!(response.status(), 200, "the signed-in page: {}", location(&response));
    assert_eq!(app.whoami(&dana).await.as_deref(), Some("dana"));
    assert_eq!(members_of(&app, "shop").await, vec![("dana".to_owned(), "developer".to_owned(), true)]);
    // The groups at UserInfo are read at every sign-in, like those in a token.
    provider.set_groups("dana", &[]);
    let (_, response) = fresh_sign_in(&app, "dana").await;
    assert_eq!(response.status(), 200);
    assert!(members_of(&app, "shop").await.is_empty());
    let (last,): (Option<time::OffsetDateTime>,) =
        sqlx::query_as("select last_sign_in_at from users where name = 'dana'").fetch_one(&app.db.pool).await.unwrap();
    assert!(last.is_some(), "the sign-in is recorded");

    // Too many groups for the token (Entra ID's overage): refused, and the page says why.
    provider.set_overage("dana");
    let (_, response) = fresh_sign_in(&app, "dana").await;
    assert_eq!(location(&response), "/login?error=groups-overage");
    let page = app.client().get(app.url("/login?error=groups-overage")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("sent none of your groups"), "{page}");
}

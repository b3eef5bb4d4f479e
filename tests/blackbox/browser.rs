//! The portal in a real headless Chromium.

use tests::browser::Browser;
use tests::spawn_app;

use tests::fixtures::PASSWORD;

/// The scripts and WASM the page loaded from the site's `/pkg/`, by file name.
async fn code_loaded(browser: &Browser) -> Vec<String> {
    let script = "return performance.getEntriesByType('resource').map(e => e.name).filter(n => n.includes('/pkg/') && !n.endsWith('.css')).map(n => n.split('/').pop())";
    serde_json::from_value(browser.client.execute(script, vec![]).await.unwrap()).unwrap()
}

#[tokio::test]
async fn log_in_see_projects_and_open_one_with_no_code_in_the_browser() {
    let app = spawn_app().await;
    app.db.user("alice", PASSWORD, false).await;
    app.db.project("shop").await;
    app.db.member("shop", "alice", "admin").await;
    let browser = Browser::start(1280, true).await;

    browser.log_in(&app.url(""), "alice", PASSWORD).await;
    assert_eq!(browser.text(".project-list li .project-name").await, "shop");
    assert_eq!(browser.text(".who-name").await, "alice");
    browser.screenshot("projects-1280").await;
    // Pages without islands are plain HTML: no script, no WASM.
    assert_eq!(code_loaded(&browser).await, Vec::<String>::new());

    browser.find(".project-list a").await.click().await.unwrap();
    browser.wait_for_path("/projects/shop").await;
    assert_eq!(browser.text("h1.project-title").await, "shop");
    // The Policy tab has the rule editor: its island, and only it, is code.
    browser.wait_for_hydration().await;
    let loaded = code_loaded(&browser).await;
    assert!(loaded.iter().any(|file| file.ends_with(".wasm")), "{loaded:?}");
    browser.screenshot("project-1280").await;
    browser.find("a[href='/projects/shop/members']").await.click().await.unwrap();
    browser.wait_for_path("/projects/shop/members").await;
    browser.find("#members").await;
    assert_eq!(code_loaded(&browser).await, Vec::<String>::new());
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

/// Fills the open rule dialog (JavaScript on) and adds the rule.
async fn add_rule(browser: &Browser, repositories_action: &str, repositories: &str, tags_action: &str, tags: &str) {
    browser.find("#add-rule").await.click().await.unwrap();
    browser.find("dialog.modal #repositories").await;
    // Opened in place, or (clicked before the page's island woke) as the dialog's own page: either
    // way, typing starts once the island is live and has moved focus into the dialog.
    browser.wait_for_hydration().await;
    set_field(browser, "#repositories_action", repositories_action).await;
    set_field(browser, "#repositories", repositories).await;
    set_field(browser, "#tags_action", tags_action).await;
    set_field(browser, "#tags", tags).await;
    browser.find("#save-rule").await.click().await.unwrap();
}

/// Replaces a field's value as a user would (select an option, or clear and type).
/// Tries again when the page re-rendered the field under our hands (it can, while its data settles).
async fn set_field(browser: &Browser, css: &str, value: &str) {
    let mut last_error = None;
    for _ in 0..5 {
        let field = browser.find(css).await;
        let result = async {
            if field.tag_name().await? == "select" {
                field.select_by_value(value).await
            } else {
                field.clear().await?;
                field.send_keys(value).await
            }
        }
        .await;
        match result {
            Ok(()) => return,
            Err(error) => last_error = Some(error),
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("could not set `{css}`: {last_error:?}");
}

/// The texts of the elements matching `css`, read in one step (the page may re-render between steps).
async fn texts(browser: &Browser, css: &str) -> Vec<String> {
    let script =
        "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.innerText.replace(/\\s+/g, ' ').trim())";
    let value = browser.client.execute(script, vec![serde_json::Value::from(css)]).await.unwrap();
    serde_json::from_value(value).unwrap()
}

async fn rule_sentences(browser: &Browser) -> Vec<String> {
    texts(browser, "#rules .rule-sentence").await
}

/// Waits (up to 10 s) until the list shows `count` rules.
async fn wait_for_rules(browser: &Browser, count: usize) -> Vec<String> {
    for _ in 0..100 {
        let sentences = rule_sentences(browser).await;
        if sentences.len() == count {
            return sentences;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the list never showed {count} rules: {:?}", rule_sentences(browser).await);
}

async fn admin_on_policy_tab(width: u32, javascript: bool) -> (tests::TestApp, Browser) {
    let app = tests::spawn_shop_with_admin_ann().await;
    let browser = Browser::start(width, javascript).await;
    browser.log_in(&app.url(""), "ann", PASSWORD).await;
    browser.goto(&app.url("/projects/shop/policy")).await;
    if javascript {
        browser.wait_for_hydration().await;
    }
    (app, browser)
}

#[tokio::test]
async fn the_seed_examples_through_the_dialog() {
    let (app, browser) = admin_on_policy_tab(1280, true).await;
    assert!(browser.text("#no-rules").await.contains("No rules yet"));
    browser.screenshot("policy-empty-1280").await;

    // The dialog opens as a modal with focus in it; Escape closes it and focus returns to the button.
    browser.find("#add-rule").await.click().await.unwrap();
    browser.find("dialog.modal #repositories").await;
    let focused = browser.client.execute("return document.activeElement.id", vec![]).await.unwrap();
    assert_eq!(focused, "repositories");
    let modal = browser
        .client
        .execute("return document.querySelector('dialog.modal').matches(':modal')", vec![])
        .await
        .unwrap();
    assert_eq!(modal, true, "a real modal dialog");
    browser.screenshot("dialog-1280").await;
    browser.client.active_element().await.unwrap().send_keys("\u{e00c}").await.unwrap(); // Escape
    browser.wait_for_path("/projects/shop/policy").await;
    for _ in 0..50 {
        if browser.client.execute("return document.activeElement.id", vec![]).await.unwrap() == "add-rule" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(browser.client.execute("return document.activeElement.id", vec![]).await.unwrap(), "add-rule");

    add_rule(&browser, "matching", "**", "matching", "**").await;
    wait_for_rules(&browser, 1).await;
    add_rule(&browser, "matching", "**", "excluding", "rc,test,nightly").await;
    wait_for_rules(&browser, 2).await;
    add_rule(&browser, "matching", "**", "matching", "v*.*.*").await;
    let sentences = wait_for_rules(&browser, 3).await;
    assert_eq!(
        sentences,
        [
            "For the repositories matching **, tags matching **",
            "For the repositories matching **, tags excluding rc, test, nightly",
            "For the repositories matching **, tags matching v*.*.*",
        ]
    );
    assert_eq!(browser.text(".counter").await, "3/15");
    assert_eq!(app.db.rule_count().await, 3);
    browser.screenshot("policy-list-1280").await;
    browser.close().await;
}

#[tokio::test]
async fn a_bad_pattern_is_shown_next_to_its_field_and_nothing_is_stored() {
    let (app, browser) = admin_on_policy_tab(1280, true).await;
    add_rule(&browser, "matching", "team/**", "matching", "v1, v[1").await;
    let error = browser.text("#tags-error").await;
    assert_eq!(error, "tags: item 2 \"v[1\" has an unclosed character class (a `[` without its `]`)");
    let typed = browser.find("#tags").await.prop("value").await.unwrap();
    assert_eq!(typed.as_deref(), Some("v1, v[1"), "what was typed stays");
    assert_eq!(browser.find("#tags").await.attr("aria-invalid").await.unwrap().as_deref(), Some("true"));
    assert_eq!(app.db.rule_count().await, 0);
    browser.screenshot("dialog-error-1280").await;
    browser.close().await;
}

/// Reads the preview table: (reference, this rule, whole policy) per row.
async fn preview_rows(browser: &Browser) -> Vec<String> {
    texts(browser, "#preview tbody tr").await
}

#[tokio::test]
async fn the_live_preview_agrees_with_the_server() {
    let (app, browser) = admin_on_policy_tab(1280, true).await;
    let existing = app.db.rule("shop", "matching:team/**", "matching:latest").await;
    browser.goto(&app.url("/projects/shop/policy/immutability/new")).await;
    browser.wait_for_hydration().await;
    set_field(&browser, "#tags", "v*.*.*").await;
    set_field(&browser, "#samples", "app:v1.2.3\napp:latest\nteam/web:latest\nteam/web:v2\nBad:ref").await;
    // Computed in the browser by the engine compiled to WASM, as the user types.
    let mut live = Vec::new();
    for _ in 0..50 {
        live = preview_rows(&browser).await;
        if live.len() == 5 && live[0].contains("immutable") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(live.len(), 5, "{live:?}");
    assert!(live[0].starts_with("app:v1.2.3 immutable immutable (this rule)"), "{live:?}");
    assert!(live[1].starts_with("app:latest mutable mutable"), "{live:?}");
    assert!(live[2].ends_with(&format!("mutable immutable (rule {existing})")), "{live:?}");
    assert!(live[4].contains("is not a repository name"), "{live:?}");
    browser.screenshot("dialog-preview-1280").await;

    // The same question without JavaScript: the server renders the preview from the query.
    let server = Browser::start(1280, false).await;
    server.log_in(&app.url(""), "ann", PASSWORD).await;
    let query = "repositories_action=matching&repositories=**&tags_action=matching&tags=v*.*.*&samples=app:v1.2.3%0Aapp:latest%0Ateam/web:latest%0Ateam/web:v2%0ABad:ref";
    server.goto(&app.url(&format!("/projects/shop/policy/immutability/new?{query}"))).await;
    server.find("#preview tbody tr").await;
    assert_eq!(preview_rows(&server).await, live);
    server.close().await;
    browser.close().await;
}

#[tokio::test]
async fn edit_disable_enable_and_delete_with_confirmation() {
    let (app, browser) = admin_on_policy_tab(1280, true).await;
    let id = app.db.rule("shop", "matching:**", "matching:v*").await;
    browser.goto(&app.url("/projects/shop/policy")).await;
    browser.wait_for_hydration().await;

    browser.find(&format!("#edit-{id}")).await.click().await.unwrap();
    assert_eq!(browser.find("#tags").await.prop("value").await.unwrap().as_deref(), Some("v*"));
    set_field(&browser, "#tags", "v*.*.*").await;
    browser.find("#save-rule").await.click().await.unwrap();
    browser.wait_for_path("/projects/shop/policy").await;
    for _ in 0..50 {
        if rule_sentences(&browser).await == ["For the repositories matching **, tags matching v*.*.*"] {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(rule_sentences(&browser).await, ["For the repositories matching **, tags matching v*.*.*"]);

    let row = format!("#rule-{id}");
    browser.find(&format!("#disable-{id}")).await.click().await.unwrap();
    wait_for_text(&browser, &format!("{row} .badge"), "disabled").await;
    browser.find(&format!("#enable-{id}")).await.click().await.unwrap();
    wait_for_text(&browser, &format!("{row} .badge"), "enforced").await;

    browser.find(&format!("{row} .button.danger")).await.click().await.unwrap();
    let question = browser.text(&format!("{row} .confirm p")).await;
    assert_eq!(question, format!("Delete rule {id}? Tags it protects become mutable."));
    assert_eq!(app.db.rule_count().await, 1, "nothing deleted before confirming");
    browser.screenshot("delete-confirm-1280").await;
    browser.find(&format!("#confirm-delete-{id}")).await.click().await.unwrap();
    browser.find("#no-rules").await;
    assert_eq!(app.db.rule_count().await, 0);
    browser.close().await;
}

async fn wait_for_text(browser: &Browser, css: &str, expected: &str) {
    for _ in 0..100 {
        if let Ok(element) = browser.client.find(fantoccini::Locator::Css(css)).await {
            if element.text().await.unwrap_or_default() == expected {
                return;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("`{css}` never read `{expected}`");
}

#[tokio::test]
async fn rules_can_be_added_without_javascript() {
    let (app, browser) = admin_on_policy_tab(390, false).await;
    browser.find("#add-rule").await.click().await.unwrap();
    set_field(&browser, "#tags_action", "excluding").await;
    set_field(&browser, "#tags", "rc, [").await;
    browser.find("#save-rule").await.click().await.unwrap();
    browser.text_containing("#tags-error", "item 2 \"[\" has an unclosed character class").await;
    assert_eq!(browser.find("#tags").await.prop("value").await.unwrap().as_deref(), Some("rc, ["));
    browser.screenshot("dialog-error-390").await;
    set_field(&browser, "#tags", "rc, test, nightly").await;
    browser.find("#save-rule").await.click().await.unwrap();
    browser.wait_for_path("/projects/shop/policy").await;
    assert_eq!(rule_sentences(&browser).await, ["For the repositories matching **, tags excluding rc, test, nightly"]);
    assert_eq!(app.db.rule_count().await, 1);
    browser.screenshot("policy-list-390").await;
    browser.close().await;
}

#[tokio::test]
async fn guests_see_the_list_read_only_and_the_limit_shows_in_the_page() {
    let app = spawn_app().await;
    app.db.user("ann", PASSWORD, false).await;
    app.db.user("gus", PASSWORD, false).await;
    app.db.project("shop").await;
    app.db.member("shop", "ann", "admin").await;
    app.db.member("shop", "gus", "guest").await;
    for i in 0..15 {
        app.db.rule("shop", "matching:**", &format!("matching:release-{i}")).await;
    }
    let browser = Browser::start(1280, true).await;
    browser.log_in(&app.url(""), "ann", PASSWORD).await;
    browser.goto(&app.url("/projects/shop/policy")).await;
    assert_eq!(browser.text(".counter").await, "15/15");
    let add = browser.find("#add-rule").await;
    assert_eq!(add.attr("disabled").await.unwrap().as_deref(), Some("true"));
    assert!(browser.text("#limit-reason").await.contains("This project has 15 rules, the most allowed"));
    browser.screenshot("policy-full-1280").await;
    browser.close().await;

    let guest = Browser::start(1280, true).await;
    guest.log_in(&app.url(""), "gus", PASSWORD).await;
    guest.goto(&app.url("/projects/shop/policy")).await;
    assert_eq!(wait_for_rules(&guest, 15).await.len(), 15);
    assert!(guest.text("main").await.contains("project admins and maintainers change them"));
    let controls = guest.client.find_all(fantoccini::Locator::Css("#add-rule, .rule-actions")).await.unwrap();
    assert!(controls.is_empty(), "a guest gets no controls");
    guest.close().await;
}

/// The first visit of the Tag Immutability tab over a slow link (1.6 Mbps down, 150 ms latency,
/// nothing cached): the page hydrates and Add Rule opens the modal dialog. The time it takes is
/// printed (and reported), not asserted: a timing is a benchmark, not a test.
#[tokio::test]
async fn on_a_slow_link_the_first_visit_hydrates_and_the_dialog_opens() {
    let app = tests::spawn_shop_with_admin_ann().await;
    let browser = Browser::start(1280, true).await;
    browser.log_in(&app.url(""), "ann", PASSWORD).await;
    browser.devtools("Network.enable", serde_json::json!({})).await;
    browser.devtools("Network.clearBrowserCache", serde_json::json!({})).await;
    browser.devtools("Network.setCacheDisabled", serde_json::json!({ "cacheDisabled": true })).await;
    let conditions = serde_json::json!({
        "offline": false,
        "latency": 150,
        "downloadThroughput": 1_600_000 / 8,
        "uploadThroughput": 750_000 / 8,
    });
    browser.devtools("Network.emulateNetworkConditions", conditions).await;

    let started = std::time::Instant::now();
    browser.goto(&app.url("/projects/shop/policy")).await;
    browser.wait_for_hydration().await;
    browser.find("#add-rule").await.click().await.unwrap();
    browser.find("dialog.modal #repositories").await;
    let modal = browser.client.execute("return document.querySelector('dialog.modal').matches(':modal')", vec![]);
    assert_eq!(modal.await.unwrap(), true, "the dialog opened as a modal, with JavaScript");
    let elapsed = started.elapsed();
    let transferred = browser
        .client
        .execute(
            "return performance.getEntriesByType('resource').filter(e => e.name.includes('/pkg/'))
                .map(e => e.name.split('/').pop() + ' ' + e.transferSize + ' B').join(', ')",
            vec![],
        )
        .await
        .unwrap();
    println!("slow link: Add Rule dialog open {:.2} s after navigation ({transferred})", elapsed.as_secs_f64());
    browser.close().await;
}

#[tokio::test]
async fn the_dialog_counts_existing_tags_as_the_rule_is_typed_and_the_tags_and_activity_tabs_show_them() {
    let (app, browser) = admin_on_policy_tab(1280, true).await;
    // Every tag points at one 2-platform index whose manifests tagward has read (as a sync would).
    let image = |arch: &str, layer_size: u64| {
        serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": format!("sha256:{}", "c".repeat(64)), "size": 1024},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": format!("sha256:{}", if arch == "amd64" { "d" } else { "e" }.repeat(64)), "size": layer_size}]})
        .to_string()
    };
    let (amd64, arm64) = (image("amd64", 3 << 20), image("arm64", 2 << 20));
    let hash = |bytes: &str| app::artifact::Sha256::of(bytes.as_bytes());
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": hash(&amd64).to_string(), "size": amd64.len(), "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": hash(&arm64).to_string(), "size": arm64.len(), "platform": {"os": "linux", "architecture": "arm64"}},
    ]}).to_string();
    let read: Vec<_> = [&index, &amd64, &arm64]
        .into_iter()
        .map(|manifest| {
            (hash(manifest), app::artifact::ManifestRefs::parse(hash(manifest), manifest.as_bytes()).unwrap())
        })
        .collect();
    let digest = hash(&index).to_string();
    for repository in ["shop/app", "shop/team/web", "shop/tools"] {
        let records: Vec<_> = read.iter().map(|(digest, refs)| (*digest, refs)).collect();
        app::store::record_manifests(&app.db.pool, repository, &records).await.unwrap();
    }
    for (repository, tags) in [("shop/app", 30), ("shop/team/web", 20), ("shop/tools", 5)] {
        for i in 0..tags {
            let tag = if i % 2 == 0 { format!("v1.{i}.0") } else { format!("build-{i}") };
            app.db.inventory_tag(repository, &tag, &digest).await;
        }
    }
    let existing = app.db.rule("shop", "matching:tools", "matching:**").await;
    let now = time::OffsetDateTime::now_utc();
    let denials: Vec<app::store::Denial> = (0..6)
        .map(|i| app::store::Denial {
            at: now - time::Duration::days(i),
            last_at: now - time::Duration::days(i),
            count: 3 + i,
            token: "ci".into(),
            operation: "push",
            project_id: None,
            repository: "shop/app".into(),
            tag: Some("v1.0.0".into()),
            digest: Some(digest.clone()),
            current_digest: None,
            rule_ids: vec![existing],
            message: "tag \"v1.0.0\" of \"shop/app\" is immutable".into(),
            evaluated: false,
        })
        .collect();
    let project_id: i64 =
        sqlx::query_scalar("select id from projects where name = 'shop'").fetch_one(&app.db.pool).await.unwrap();
    let denials: Vec<_> =
        denials.into_iter().map(|d| app::store::Denial { project_id: Some(project_id), ..d }).collect();
    app::store::insert_denials(&app.db.pool, &denials).await.unwrap();

    // The dialog opens on the default rule (every tag), counted on the server.
    browser.goto(&app.url("/projects/shop/policy")).await;
    browser.wait_for_hydration().await;
    browser.find("#add-rule").await.click().await.unwrap();
    browser.find("dialog.modal #repositories").await;
    wait_for_text(&browser, "#impact-rule", "This rule makes 55 tags in 3 repositories immutable.").await;
    // Typing asks again (the inventory lives on the server), a moment after the last key.
    set_field(&browser, "#tags", "v*").await;
    wait_for_text(&browser, "#impact-rule", "This rule makes 28 tags in 3 repositories immutable.").await;
    set_field(&browser, "#repositories", "app, team/**").await;
    wait_for_text(&browser, "#impact-rule", "This rule makes 25 tags in 2 repositories immutable.").await;
    let policy = browser.text("#impact-policy").await;
    assert!(policy.starts_with("With the rest of the policy: 25 tags in 2 repositories become immutable"), "{policy}");
    assert!(policy.ends_with("30 tags in 3 repositories immutable in all."), "{policy}");
    assert!(texts(&browser, "#impact .examples li").await.contains(&"app:v1.0.0".to_owned()));
    set_field(&browser, "#tags", "v*, [").await;
    browser.text_containing("#impact-invalid", "No impact until the rule is valid").await;
    set_field(&browser, "#tags", "v*").await;
    wait_for_text(&browser, "#impact-rule", "This rule makes 25 tags in 2 repositories immutable.").await;
    wait_for_text(
        &browser,
        "#impact-locked",
        "Together they hold 5.0 MiB of blobs, which garbage collection will have to keep.",
    )
    .await;
    browser.screenshot("dialog-impact-1280").await;
    browser.find("#save-rule").await.click().await.unwrap();
    wait_for_rules(&browser, 2).await;
    // Each rule says what it protects (what disabling it would release).
    let protects = texts(&browser, "#rules .rule-protects").await;
    assert_eq!(
        protects,
        ["Protects 5 existing tags, all by this rule alone", "Protects 25 existing tags, all by this rule alone"]
    );
    browser.screenshot("policy-counts-1280").await;

    // Deleting the older rule: what becomes mutable, before confirming.
    browser.goto(&app.url(&format!("/projects/shop/policy/immutability/{existing}/delete"))).await;
    browser
        .text_containing("#delete-impact", "Of 55 tags in 3 repositories the inventory holds, 5 become mutable")
        .await;

    // The Tags tab, filtered with its form (a GET, as without JavaScript).
    browser.goto(&app.url("/projects/shop/tags")).await;
    assert_eq!(browser.text("#tags-summary").await, "55 tags in 3 repositories (30 immutable).");
    // One 1 KiB config and two layers (3 and 2 MiB), each counted once however many tags hold them.
    let locked = browser.text("#tags-locked").await;
    assert!(locked.starts_with("Immutable tags keep 5.0 MiB of blobs from garbage collection"), "{locked}");
    let holds = texts(&browser, "#tags .holds").await;
    assert!(holds.iter().all(|h| h == "holds 2 platforms (linux/amd64, linux/arm64), 5.0 MiB"), "{holds:?}");
    set_field(&browser, "#filter-repositories", "team/**").await;
    browser.find("#tags-filter button[type=submit]").await.click().await.unwrap();
    browser
        .text_containing(
            "#tags-summary",
            "20 tags in 1 repository match the filter (10 immutable), of 55 tags in 3 repositories in all.",
        )
        .await;
    assert_eq!(texts(&browser, "#tags tbody tr").await.len(), 20);
    browser.screenshot("tags-1280").await;
    browser.goto(&app.url("/projects/shop/tags?repositories=app&tags=v*")).await;
    browser.text_containing("#tags-summary", "15 tags in 1 repository match the filter (15 immutable)").await;
    browser.screenshot("tags-immutable-1280").await;

    // The Activity tab's chart: six days with denials, their numbers in a table for screen readers.
    browser.goto(&app.url("/projects/shop/activity")).await;
    browser
        .text_containing("#denial-chart figcaption", "Denials per day, last 30 days: 33 in all (most in a day: 8)")
        .await;
    let bars =
        browser.client.execute("return document.querySelectorAll('#denial-chart rect').length", vec![]).await.unwrap();
    assert_eq!(bars, serde_json::json!(30));
    let rows = texts(&browser, "#denial-chart table tbody tr").await;
    assert_eq!(rows.len(), 30);
    assert!(rows.last().unwrap().ends_with(" 3"), "{rows:?}");
    assert!(browser.text("#denied-repositories").await.contains("shop/app"));
    browser.screenshot("activity-chart-1280").await;
    browser.close().await;
}

/// Every page, as a project admin who is also a system admin sees it, passes axe-core's WCAG 2.1
/// A/AA rules: with the site's code (the rule dialog open as a modal too) and without it.
#[tokio::test]
async fn every_page_passes_axe_core_with_and_without_javascript() {
    let app = tests::spawn_shop_with_admin_ann().await;
    app.db.user("root", PASSWORD, true).await;
    app.db.member("shop", "root", "admin").await;
    let rule = app.db.rule("shop", "matching:**", "matching:v*").await;
    app.db.inventory_tag("shop/app", "v1.0.0", tests::fixtures::DIGEST_A).await;
    app.db.inventory_tag("shop/app", "latest", tests::fixtures::DIGEST_B).await;
    // An immutable tag changed behind tagward's back: the Policy and Tags tabs show the notice with
    // its forms, the Activity tab the finding.
    let shop: i64 =
        sqlx::query_scalar("select id from projects where name = 'shop'").fetch_one(&app.db.pool).await.unwrap();
    let moved = app::store::TagMoved {
        repository: app::policy::RepositoryName::parse("shop/app").unwrap(),
        tag: app::policy::Tag::parse("v1.0.0").unwrap(),
        before: app::policy::Digest::parse(tests::fixtures::DIGEST_B).unwrap(),
        after: Some(app::policy::Digest::parse(tests::fixtures::DIGEST_A).unwrap()),
    };
    app::store::record_drift(&app.db.pool, shop, &[&moved], app::store::FoundBy::Event).await.unwrap();
    let tabs = [
        "policy",
        "policy/immutability/new",
        &format!("policy/immutability/{rule}/delete"),
        "tags",
        "members",
        "activity",
    ]
    .map(|tab| format!("/projects/shop/{tab}"));
    let admin = ["users", "projects", "tokens", "activity"].map(|section| format!("/admin/{section}"));
    let pages: Vec<String> = ["/".to_owned(), "/account".to_owned()].into_iter().chain(tabs).chain(admin).collect();
    for javascript in [true, false] {
        // axe-core is itself a script, so "without JavaScript" is the site's own code blocked: the
        // pages as they are before (or without) their islands.
        let browser = Browser::start(1280, true).await;
        if !javascript {
            browser.devtools("Network.enable", serde_json::json!({})).await;
            browser
                .devtools("Network.setBlockedURLs", serde_json::json!({ "urls": ["*/pkg/*.js", "*/pkg/*.wasm"] }))
                .await;
        }
        let mut found = Vec::new();
        browser.goto(&app.url("/login")).await;
        found.extend(browser.accessibility_violations().await.into_iter().map(|v| format!("/login: {v}")));
        browser.log_in(&app.url(""), "root", PASSWORD).await;
        for page in &pages {
            browser.goto(&app.url(page)).await;
            browser.find("main h1, main h2").await;
            found.extend(browser.accessibility_violations().await.into_iter().map(|v| format!("{page}: {v}")));
        }
        if javascript {
            browser.goto(&app.url("/projects/shop/policy")).await;
            browser.find("#drift-table").await;
            browser.screenshot("drift-policy-1280").await;
            // The dialog opened in place, as a modal over the list.
            browser.goto(&app.url("/projects/shop/policy")).await;
            browser.wait_for_hydration().await;
            browser.find("#add-rule").await.click().await.unwrap();
            browser.find("dialog.modal #repositories").await;
            browser.find("fieldset.impact[aria-busy=false] #impact").await;
            found.extend(browser.accessibility_violations().await.into_iter().map(|v| format!("dialog: {v}")));
        }
        assert!(found.is_empty(), "JavaScript {javascript}: {found:#?}");
        browser.close().await;
    }
}

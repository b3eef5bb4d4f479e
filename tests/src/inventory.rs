//! What the inventory tests (and the registry events' tests) read and write: the inventory's
//! rows, a page's text as a reader sees it, a project with its admin, many tags in a registry.

use crate::fixtures::PASSWORD;
use crate::registry::{push, OciLayout, Registry};
use crate::{fresh_database, TestApp, TestDb};
use futures::StreamExt as _;

/// The inventory's rows of `project`: (repository, tag, digest, source).
pub async fn inventory(db: &TestDb, project: &str) -> Vec<(String, String, String, String)> {
    sqlx::query_as("select repository, tag, digest, source from registry_tags where project = $1 order by 1, 2")
        .bind(project)
        .fetch_all(&db.pool)
        .await
        .unwrap()
}

/// The page at `path` as a reader sees its text (it must answer 200).
pub async fn page_text(app: &TestApp, client: &reqwest::Client, path: &str) -> String {
    let response = app.page(client, path).await;
    assert_eq!(response.status(), 200, "{path}");
    let html = response.text().await.unwrap();
    // Tags stripped, entities as the browser shows them, spaces collapsed: what a reader sees.
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.replace("&amp;", "&").replace("&#x27;", "'").split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A fresh database with project `shop` and its admin `ann`.
pub async fn shop_with_admin_ann() -> TestDb {
    crate::init_logging();
    let db = fresh_database().await;
    db.user("ann", PASSWORD, false).await;
    db.project("shop").await;
    db.member("shop", "ann", "admin").await;
    db
}

/// `repositories` repositories `shop/many0`, … with `tags` tags `t0000`, … each, of one image,
/// written straight to the registry.
pub async fn many_tags(registry: &Registry, repositories: usize, tags: usize) {
    let image = OciLayout::image_of("many");
    let manifest = bytes::Bytes::from(image.manifest());
    let client = reqwest::Client::new();
    for r in 0..repositories {
        let repository = format!("shop/many{r}");
        assert!(push(&image, registry.address, &format!("{repository}:t0000"), false).await.status.success());
        let puts = (1..tags).map(|i| {
            let request = client
                .put(format!("http://{}/v2/{repository}/manifests/t{i:04}", registry.address))
                .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                .body(manifest.clone());
            async move { request.send().await.unwrap().status().as_u16() }
        });
        let statuses: Vec<u16> = futures::stream::iter(puts).buffer_unordered(16).collect().await;
        assert!(statuses.iter().all(|status| *status == 201), "{statuses:?}");
    }
}

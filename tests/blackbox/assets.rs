//! The site's files as browsers get them: every page names files that exist, under content-hashed
//! names, sent precompressed (brotli or gzip, as the browser accepts) and cached for a year;
//! pages themselves are revalidated every time.

use tests::spawn_app;

/// The `/pkg/...` files a page's HTML refers to.
fn site_files(html: &str) -> Vec<String> {
    let mut files: Vec<String> = html
        .match_indices("/pkg/")
        .filter_map(|(at, _)| html.get(at..)?.split(['"', '\'', ' ', '>', ')']).next().map(str::to_owned))
        .collect();
    files.sort();
    files.dedup();
    files
}

#[tokio::test]
async fn pages_name_published_files_sent_precompressed_and_cached() {
    let app = spawn_app().await;
    let client = app.client();
    let page = app.page(&client, "/login").await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-cache", "pages are revalidated");
    let files = site_files(&page.text().await.unwrap());
    for kind in [".js", ".wasm", ".css"] {
        assert!(files.iter().any(|file| file.ends_with(kind)), "no {kind} in {files:?}");
    }
    for file in &files {
        let name = file.rsplit('/').next().unwrap();
        let hash = name.split('.').nth(1).unwrap_or_default();
        assert!(hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()), "{file} is not content-hashed");
        let mut sizes = Vec::new();
        for (accepted, sent) in [("br, gzip", Some("br")), ("gzip", Some("gzip")), ("identity", None)] {
            let response = client.get(app.url(file)).header("Accept-Encoding", accepted).send().await.unwrap();
            assert_eq!(response.status(), 200, "{file} ({accepted})");
            let headers = response.headers().clone();
            let encoding = headers.get("content-encoding").map(|v| v.to_str().unwrap().to_owned());
            assert_eq!(encoding.as_deref(), sent, "{file} asked with {accepted}");
            assert_eq!(headers["cache-control"], "public, max-age=31536000, immutable", "{file}");
            assert!(headers["vary"].to_str().unwrap().to_lowercase().contains("accept-encoding"), "{file}");
            sizes.push(response.bytes().await.unwrap().len());
        }
        let [br, gzip, identity] = sizes[..] else { unreachable!() };
        assert!(br < identity && gzip < identity, "{file}: br {br}, gzip {gzip}, identity {identity} bytes");
    }
    // A file that does not exist is a 404, not a page.
    let missing = client.get(app.url("/pkg/tagward.0000000000000000.wasm")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

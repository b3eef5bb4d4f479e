//! The site's files as browsers get them: every page names files that exist, under content-hashed
//! names, sent precompressed (brotli or gzip, as the browser accepts) and cached for a year;
//! pages themselves are revalidated every time.

use tests::fixtures::PASSWORD;

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
    let app = tests::spawn_shop_with_admin_ann().await;
    // A page without islands names the stylesheet and no code.
    let login = app.page(&app.client(), "/login").await;
    assert_eq!(login.status(), 200);
    assert_eq!(login.headers()["cache-control"], "no-cache", "pages are revalidated");
    let files = site_files(&login.text().await.unwrap());
    assert!(files.len() == 1 && files[0].ends_with(".css"), "{files:?}");
    // The Policy tab has the rule editor's island: its script and WASM too.
    let client = app.logged_in("ann", PASSWORD).await;
    let page = app.page(&client, "/projects/shop/policy").await;
    assert_eq!(page.status(), 200);
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

/// The budget in `frontend/budget.toml`.
fn budget() -> u64 {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../frontend/budget.toml")).unwrap();
    let line =
        text.lines().find_map(|line| line.trim().strip_prefix("brotli_bytes")).expect("brotli_bytes in the budget");
    line.trim_start_matches([' ', '=']).trim().parse().expect("a number of bytes")
}

/// The crate a (demangled) function name belongs to: `alloc::vec::Vec<T>::push` is `alloc`'s,
/// `<alloc::string::String as Clone>::clone` too, and `<T as tachys::view::Render>::build` (generic
/// code) is `tachys`'.
fn crate_of(name: &str) -> String {
    let first_path = |text: &str| {
        let text = text
            .trim_start_matches(['<', '&', '*', '(', '[', ' '])
            .trim_start_matches("mut ")
            .trim_start_matches("dyn ");
        let end = text.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(text.len());
        text[end..].starts_with("::").then(|| text[..end].to_owned())
    };
    let trait_of = || name.split_once(" as ").and_then(|(_, rest)| first_path(rest));
    first_path(name).or_else(trait_of).unwrap_or_else(|| "(other)".to_owned())
}

/// Code bytes per crate in the WASM at `path` (before wasm-opt, which drops the names), largest first.
fn contributors(path: &std::path::Path) -> Vec<(String, u64)> {
    use wasmparser::{KnownCustom, Name, Payload, TypeRef};
    let Ok(bytes) = std::fs::read(path) else { return Vec::new() };
    let (mut imported, mut bodies, mut names) = (0u32, Vec::new(), std::collections::HashMap::new());
    for payload in wasmparser::Parser::new(0).parse_all(&bytes) {
        match payload.unwrap() {
            Payload::ImportSection(imports) => {
                imported +=
                    imports.into_imports().filter(|i| matches!(i.as_ref().map(|i| i.ty), Ok(TypeRef::Func(_)))).count()
                        as u32;
            }
            Payload::CodeSectionEntry(body) => bodies.push(body.range().end - body.range().start),
            Payload::CustomSection(section) => {
                if let KnownCustom::Name(reader) = section.as_known() {
                    for name in reader.flatten() {
                        if let Name::Function(map) = name {
                            for naming in map.into_iter().flatten() {
                                names.insert(naming.index, rustc_demangle::demangle(naming.name).to_string());
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let mut by_crate = std::collections::HashMap::<String, u64>::new();
    for (i, size) in bodies.into_iter().enumerate() {
        let name = names.get(&(imported + i as u32)).map_or_else(|| "(unnamed)".to_owned(), |name| crate_of(name));
        *by_crate.entry(name).or_default() += size;
    }
    let mut sorted: Vec<(String, u64)> = by_crate.into_iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    sorted
}

/// The browser side's weight over the wire stays within the budget kept in the repository: sizes
/// are deterministic, so this is a test (the timings that follow from them are benchmarks).
#[tokio::test]
async fn the_browser_side_stays_within_its_size_budget() {
    let app = tests::spawn_shop_with_admin_ann().await;
    let client = app.logged_in("ann", PASSWORD).await;
    let page = app.page(&client, "/projects/shop/policy").await.text().await.unwrap();
    let mut sent = Vec::new();
    for file in site_files(&page).into_iter().filter(|file| file.ends_with(".js") || file.ends_with(".wasm")) {
        let response = client.get(app.url(&file)).header("Accept-Encoding", "br").send().await.unwrap();
        assert_eq!(response.headers()["content-encoding"], "br", "{file}");
        sent.push((file, response.bytes().await.unwrap().len() as u64));
    }
    let total: u64 = sent.iter().map(|(_, size)| size).sum();
    let target = std::env::var("CARGO_TARGET_DIR").map(std::path::PathBuf::from).unwrap_or_default();
    let wasm = target.join("wasm32-unknown-unknown/wasm-release/frontend.wasm");
    let top: Vec<String> = contributors(&wasm)
        .into_iter()
        .take(12)
        .map(|(name, bytes)| format!("{name} {:.1} KiB", bytes as f64 / 1024.0))
        .collect();
    let report = format!(
        "browser side: {total} bytes brotli ({}), budget {}; largest code by crate (before wasm-opt): {}",
        sent.iter()
            .map(|(file, size)| format!("{} {size}", file.rsplit('/').next().unwrap_or(file)))
            .collect::<Vec<_>>()
            .join(", "),
        budget(),
        if top.is_empty() { "unknown (no frontend.wasm under CARGO_TARGET_DIR)".to_owned() } else { top.join(", ") },
    );
    println!("{report}");
    assert!(sent.iter().any(|(file, _)| file.ends_with(".wasm")), "{report}");
    assert!(total <= budget(), "over budget: {report}");
}

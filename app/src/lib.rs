//! The tagward portal (compiled for the server with `ssr`; its islands, the parts that need code in
//! the browser, also with `hydrate`) and the rule engine every part of tagward decides with.

pub mod account;
pub mod activity;
pub mod admin;
#[cfg(feature = "ssr")]
pub mod artifact;
pub mod auth;
pub mod drift;
pub mod error;
pub mod exceptions;
pub mod format;
pub mod identity;
pub mod inventory;
pub mod locks;
mod pages;
#[cfg(feature = "ssr")]
pub mod password;
pub mod policy;
#[cfg(feature = "ssr")]
pub mod principal;
pub mod projects;
#[cfg(feature = "ssr")]
pub mod registry_events;
pub mod rules;
#[cfg(feature = "ssr")]
pub mod state;
#[cfg(feature = "ssr")]
pub mod store;
pub mod tags;
pub mod webhooks;

/// A stored time as every page shows it: `2026-11-27 14:02 UTC`.
#[cfg(feature = "ssr")]
pub fn shown_time(at: time::OffsetDateTime) -> String {
    at.format(time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC")).unwrap_or_default()
}

use account::User;
use auth::Logout;
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{path, SsrMode};

/// The HTML document around the app (server side only).
pub fn shell(options: LeptosOptions) -> impl IntoView {
    let stylesheet = format!("/{}/{}", options.site_pkg_dir, site_file(&options, "css", "tagward.css"));
    provide_context(options.clone());
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                // The brand mark, inline: no request for /favicon.ico on every page.
                <link rel="icon" href="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E%3Cpath d='M8 1l7 7-7 7-7-7z' fill='%232457c5'/%3E%3C/svg%3E"/>
                <link rel="stylesheet" href=stylesheet/>
                <AutoReload options=options.clone()/>
                // No hydration script here: only a page with an island loads one (`pages::Interactive`).
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The name under which the site serves a file of `kind` (`js`, `wasm`, `css`): content-hashed
/// (`tagward.<hash>.css`, as `scripts/dev` publishes it and its hash file says) when the server
/// runs with hashed files, else `unhashed`. Read once.
fn site_file(options: &LeptosOptions, kind: &str, unhashed: &str) -> String {
    static HASHES: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();
    if !options.hash_files {
        return unhashed.to_owned();
    }
    let hashes = HASHES.get_or_init(|| {
        let text = std::fs::read_to_string(options.hash_file.as_ref()).unwrap_or_default();
        text.lines()
            .filter_map(|line| line.split_once(':'))
            .map(|(kind, hash)| (kind.trim().to_owned(), hash.trim().to_owned()))
            .collect()
    });
    match hashes.iter().find(|(known, _)| known == kind) {
        Some((_, hash)) => format!("tagward.{hash}.{kind}"),
        None => unhashed.to_owned(),
    }
}

/// What every page can reach: the signed-in user, and logging out.
#[derive(Clone, Copy)]
pub struct Session {
    pub user: Resource<Result<Option<User>, error::AppError>>,
    pub logout: ServerAction<Logout>,
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Title formatter=|page: String| if page.is_empty() { "tagward".to_owned() } else { format!("{page} · tagward") }/>
        <Router>
            <Portal/>
        </Router>
    }
}

/// Everything inside the router.
#[component]
fn Portal() -> impl IntoView {
    let logout = ServerAction::<Logout>::new();
    // Every page is rendered on the server (navigation is a page load), so once per request.
    let user = Resource::new(|| (), |_| auth::current_user());
    provide_context(Session { user, logout });

    view! {
        <pages::layout::Header/>
        <main id="main">
            <Routes fallback=pages::not_found::NotFound>
                <Route path=path!("/login") view=pages::login::LoginPage ssr=SsrMode::Async/>
                <Route path=path!("/") view=pages::projects::ProjectsPage ssr=SsrMode::Async/>
                <Route path=path!("/projects") view=pages::projects::ProjectsPage ssr=SsrMode::Async/>
                <Route path=path!("/projects/:project") view=pages::project::ProjectPage ssr=SsrMode::Async/>
                <Route path=path!("/projects/:project/:tab") view=pages::project::ProjectPage ssr=SsrMode::Async/>
                <Route path=path!("/projects/:project/policy/immutability/new") view=pages::project::ProjectPage ssr=SsrMode::Async/>
                <Route path=path!("/projects/:project/exceptions/new") view=pages::project::ProjectPage ssr=SsrMode::Async/>
                <Route path=path!("/projects/:project/policy/immutability/:rule/:action") view=pages::project::ProjectPage ssr=SsrMode::Async/>
                <Route path=path!("/admin") view=pages::admin::AdminPage ssr=SsrMode::Async/>
                <Route path=path!("/admin/:section") view=pages::admin::AdminPage ssr=SsrMode::Async/>
                <Route path=path!("/account") view=pages::account::AccountPage ssr=SsrMode::Async/>
            </Routes>
        </main>
    }
}

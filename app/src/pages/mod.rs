//! One module per page.

pub mod account;
pub mod activity;
pub mod admin;
mod drift;
mod exceptions;
mod group_mappings;
pub mod immutability;
pub mod layout;
pub mod login;
pub mod not_found;
pub mod project;
pub mod projects;
mod rule_dialog;
pub mod tags;
mod webhooks;

use leptos::prelude::*;

/// Loads the browser side (leptos' island script, the JS and the WASM) for the islands on this
/// page. Only a page that renders an island renders this: every other page loads no code.
#[component]
pub fn Interactive() -> impl IntoView {
    use_context::<LeptosOptions>().map(|options| view! { <HydrationScripts options islands=true/> })
}

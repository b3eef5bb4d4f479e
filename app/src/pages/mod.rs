//! One module per page.

/// A tab's server actions, made together by its page (inside the route, so that a plain form's
/// error sent back in the URL reaches them), with one version that changes whenever any of them
/// has run (the tab's list reloads on it).
macro_rules! server_actions {
    ($(#[$meta:meta])* $name:ident { $($field:ident: $action:ty),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy)]
        pub struct $name {
            $(pub $field: ServerAction<$action>),+
        }

        impl $name {
            pub fn new() -> Self {
                Self { $($field: ServerAction::new()),+ }
            }

            /// Changes whenever one of them has run.
            pub fn version(&self) -> usize {
                0 $(+ self.$field.version().get())+
            }
        }
    };
}

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

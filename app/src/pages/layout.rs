//! The frame around every page: product name, the signed-in user, logout.

use crate::error::AppError;
use crate::Session;
use leptos::prelude::*;
use leptos_router::components::{Redirect, A};

#[component]
pub fn Header() -> impl IntoView {
    let session = expect_context::<Session>();
    view! {
        <header class="topbar">
            <a class="skip" href="#main">"Skip to content"</a>
            <A href="/" attr:class="brand">
                <span class="brand-mark" aria-hidden="true">"◆"</span>
                "tagward"
            </A>
            <Transition fallback=|| ()>
                {move || session.user.get().and_then(|user| user.ok().flatten()).map(|user| view! {
                    <div class="who">
                        {user.is_system_admin.then(|| view! { <A href="/admin" attr:class="top-link">"Administration"</A> })}
                        <A href="/account" attr:class="who-name" attr:title="Your account">{user.name.clone()}</A>
                        {user.is_system_admin.then(|| view! { <span class="badge">"system admin"</span> })}
                        <ActionForm action=session.logout attr:class="inline">
                            <button type="submit" class="button quiet">"Log out"</button>
                        </ActionForm>
                    </div>
                })}
            </Transition>
        </header>
    }
}

/// What a page shows when loading its data failed: the login page for someone not signed in, the
/// 404 page for what they may not see, else the error.
pub fn failure(error: AppError) -> AnyView {
    match error {
        AppError::Unauthorized => view! { <Redirect path="/login"/> }.into_any(),
        AppError::NotFound(_) => view! { <super::not_found::NotFound/> }.into_any(),
        error => view! { <p class="error" role="alert">{error.to_string()}</p> }.into_any(),
    }
}

//! The signed-in user's own account: changing their password (someone who signs in through the
//! identity provider has none here).

use super::admin::action_error;
use crate::admin::ChangePassword;
use crate::Session;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

#[component]
pub fn AccountPage() -> impl IntoView {
    let session = expect_context::<Session>();
    let change = ServerAction::<ChangePassword>::new();
    let query = use_query_map();
    let changed = move || {
        change.value().get().is_some_and(|result| result.is_ok())
            || (change.value().get().is_none() && query.read().get("changed").is_some())
    };
    view! {
        <Title text="Account"/>
        <section class="panel narrow" aria-labelledby="account-heading">
            <h1 id="account-heading">"Your account"</h1>
            <Transition fallback=|| ()>
                {move || session.user.get().map(|user| match user {
                    Ok(Some(user)) if user.from_provider => view! {
                        <p class="muted">"Signed in as " <strong>{user.name}</strong></p>
                        <p id="provider-account">"You sign in through your organisation's identity provider or directory: your password and your groups are managed there. Your roles here follow your groups at each sign-in."</p>
                    }.into_any(),
                    Ok(Some(user)) => view! { <p class="muted">"Signed in as " <strong>{user.name}</strong></p> <PasswordForm change changed/> }.into_any(),
                    Ok(None) => view! { <leptos_router::components::Redirect path="/login"/> }.into_any(),
                    Err(error) => super::layout::failure(error),
                })}
            </Transition>
        </section>
    }
}

/// Changing one's own password.
#[component]
fn PasswordForm(
    change: ServerAction<ChangePassword>,
    changed: impl Fn() -> bool + Send + Sync + Copy + 'static,
) -> impl IntoView {
    view! {
            <h2>"Change password"</h2>
            {move || changed().then(|| view! {
                <p class="notice" role="status" id="password-changed">"Password changed. Your other sessions have ended."</p>
            })}
            {action_error(change)}
            <ActionForm action=change attr:class="stack" attr:id="change-password">
                <label for="current-password">"Current password"</label>
                <input type="password" id="current-password" name="current" required autocomplete="current-password"/>
                <label for="new-password">"New password"</label>
                <input type="password" id="new-password" name="new" required minlength="12" autocomplete="new-password" aria-describedby="new-password-hint"/>
                <p class="hint" id="new-password-hint">"At least 12 characters. Every other session of yours ends."</p>
                <label for="confirm-password">"Confirm new password"</label>
                <input type="password" id="confirm-password" name="confirm" required minlength="12" autocomplete="new-password"/>
                <button type="submit" class="button primary">"Change password"</button>
            </ActionForm>
    }
}

//! The login page. A plain HTML form, with or without JavaScript: logging in ends in a full page
//! load, so every part of the page (the header too) is rendered afresh for the new session.

use crate::auth::Login;
use crate::Session;
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use leptos_router::components::Redirect;

#[component]
pub fn LoginPage() -> impl IntoView {
    let session = expect_context::<Session>();
    // Made here, inside the routes: the form comes back with its error in the URL, and only a page
    // under <Routes> can read it.
    let login = ServerAction::<Login>::new();
    let error = move || login.value().get().and_then(Result::err).map(|e| e.to_string());
    // Where to go after logging in (set when an anonymous visitor was sent here from a page).
    let query = leptos_router::hooks::use_query_map();
    let next = move || query.with(|q| q.get("next")).unwrap_or_default();
    view! {
        <Title text="Log in"/>
        <Suspense fallback=|| ()>
            {move || session.user.get().and_then(|u| u.ok().flatten()).map(|_| view! { <Redirect path=crate::auth::safe_next(&next())/> })}
        </Suspense>
        <section class="panel narrow login">
            <h1>"Log in to tagward"</h1>
            <p class="muted">"Tag immutability rules for your registry projects."</p>
            <form method="post" action=Login::PATH class="stack" id="login-form">
                <input type="hidden" name="next" value=next/>
                <label for="username">"User name"</label>
                <input id="username" name="username" type="text" autocomplete="username" required autofocus/>
                <label for="password">"Password"</label>
                <input id="password" name="password" type="password" autocomplete="current-password" required/>
                <Show when=move || error().is_some()>
                    <p class="error" role="alert" id="login-error">{error}</p>
                </Show>
                <button type="submit" class="button primary">"Log in"</button>
            </form>
        </section>
    }
}

//! The login page: "Sign in with <provider>" when an identity provider is configured, and the
//! password form (for tagward passwords, and directory passwords when a directory is configured;
//! folded away as the break-glass way in when passwords are for system
//! administrators only). Plain links and forms, with or without JavaScript: logging in ends in a
//! full page load, so every part of the page (the header too) is rendered afresh for the session.

use crate::auth::{sign_in_choices, Login, SignInOffer};
use crate::Session;
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use leptos_router::components::Redirect;

/// What the login page says for the error code a failed provider sign-in comes back with.
fn sign_in_failure(code: &str, provider: &str) -> String {
    match code {
        "provider-unavailable" => format!("{provider} cannot be reached right now; try again in a moment"),
        "expired" => "the sign-in took too long or was already used; start again".to_owned(),
        "deactivated" => "your tagward account is deactivated; ask a system administrator".to_owned(),
        "name-taken" => "the identity provider gives you a user name that another tagward account has; \
                         ask a system administrator"
            .to_owned(),
        "name-invalid" => "the identity provider gives no user name tagward can use; ask your administrator".to_owned(),
        "not-allowed" => {
            "your identity provider account is not one that may use tagward; ask your administrator".to_owned()
        }
        "groups-overage" => "the identity provider sent none of your groups (you are in too many for its token); \
                             ask your administrator to have it send only the groups assigned to tagward"
            .to_owned(),
        "too-many-attempts" => "too many sign-in attempts from your address; wait a minute and try again".to_owned(),
        _ => format!("signing in with {provider} failed; try again, and tell your administrator if it keeps failing"),
    }
}

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
    let sign_in_error = move || query.with(|q| q.get("error"));
    let choices = Resource::new(|| (), |_| sign_in_choices());
    view! {
        <Title text="Log in"/>
        <Suspense fallback=|| ()>
            {move || session.user.get().and_then(|u| u.ok().flatten()).map(|_| view! { <Redirect path=crate::auth::safe_next(&next())/> })}
        </Suspense>
        <section class="panel narrow login">
            <h1>"Log in to tagward"</h1>
            <p class="muted">"Tag immutability rules for your registry projects."</p>
            <Suspense fallback=|| ()>
                {move || choices.get().map(|choices| {
                    let choices = choices.unwrap_or(SignInOffer {
                        provider_name: None,
                        passwords_for_admins_only: false,
                        directory_name: None,
                    });
                    let directory_hint = choices.directory_name.clone().map(|name| view! {
                        <p class="hint" id="directory-hint">{format!("Use your {name} user name and password.")}</p>
                    });
                    let provider = choices.provider_name.clone();
                    let failure = sign_in_error().map(|code| {
                        sign_in_failure(&code, provider.as_deref().unwrap_or("the identity provider"))
                    });
                    let password_form = view! {
                        <form method="post" action=Login::PATH class="stack" id="login-form">
                            <input type="hidden" name="next" value=next/>
                            {directory_hint}
                            <label for="username">"User name"</label>
                            <input id="username" name="username" type="text" autocomplete="username" required
                                autofocus=provider.is_none()/>
                            <label for="password">"Password"</label>
                            <input id="password" name="password" type="password" autocomplete="current-password" required/>
                            <Show when=move || error().is_some()>
                                <p class="error" role="alert" id="login-error">{error}</p>
                            </Show>
                            <button type="submit" class=if provider.is_some() { "button" } else { "button primary" }>"Log in"</button>
                        </form>
                    };
                    let provider_link = choices.provider_name.clone().map(|name| {
                        let href = format!(
                            "/login/oidc?next={}",
                            form_urlencoded::byte_serialize(crate::auth::safe_next(&next()).as_bytes()).collect::<String>()
                        );
                        view! {
                            <a class="button primary sign-in-provider" id="sign-in-provider" href=href autofocus>
                                {format!("Sign in with {name}")}
                            </a>
                        }
                    });
                    let has_provider = provider_link.is_some();
                    let or_password = match &choices.directory_name {
                        Some(name) => format!("or with your {name} password"),
                        None => "or with a tagward password".to_owned(),
                    };
                    view! {
                        {failure.map(|message| view! { <p class="error" role="alert" id="sign-in-error">{message}</p> })}
                        {provider_link}
                        {if choices.passwords_for_admins_only {
                            view! {
                                <details class="break-glass" open=error().is_some()>
                                    <summary>"Local system administrator"</summary>
                                    <p class="hint">"For when the identity provider cannot be reached. Only system administrators can log in with a password here."</p>
                                    {password_form}
                                </details>
                            }.into_any()
                        } else if has_provider {
                            view! { <p class="or"><span>{or_password}</span></p> {password_form} }.into_any()
                        } else {
                            password_form.into_any()
                        }}
                    }
                })}
            </Suspense>
        </section>
    }
}

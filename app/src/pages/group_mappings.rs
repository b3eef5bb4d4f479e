//! Administration › Sign-in groups: which identity provider groups grant which roles. Plain forms
//! (they work without JavaScript); a change applies at each member's next sign-in.

use super::admin::{action_error, loaded};
use crate::account::Role;
use crate::admin::{AddGroupMapping, GroupMappingsView, RemoveGroupMapping};
use crate::error::AppError;
use leptos::prelude::*;

#[component]
pub fn GroupMappings(
    view: Resource<Result<Option<GroupMappingsView>, AppError>>,
    add: ServerAction<AddGroupMapping>,
    remove: ServerAction<RemoveGroupMapping>,
) -> impl IntoView {
    view! {
        <section class="panel" aria-labelledby="groups-heading">
            <h2 id="groups-heading">"Sign-in groups"</h2>
            <p class="muted intro">
                "People who sign in through the identity provider get their roles from its groups claim, checked at every "
                "sign-in: a role granted here is added, and taken away once they leave the group. Roles given by hand on a "
                "project's Members tab, and system administrators made by hand, are never changed by a sign-in."
            </p>
            {action_error(add)}
            {action_error(remove)}
            {loaded(view, move |view| {
                let projects = view.projects.clone();
                view! {
                <ActionForm action=add attr:class="create-row" attr:id="add-group-mapping">
                    <div class="grow">
                        <label for="mapping-group">"Group"</label>
                        <input type="text" id="mapping-group" name="group" required autocomplete="off" placeholder="e.g. shop-devs"/>
                    </div>
                    <div>
                        <label for="mapping-role">"Role"</label>
                        <select id="mapping-role" name="role">
                            <option value="developer">"developer"</option>
                            {Role::ALL.iter().filter(|r| **r != Role::Developer).map(|r| view! { <option value=r.as_str()>{r.as_str()}</option> }).collect_view()}
                            <option value="system-admin">"system administrator"</option>
                        </select>
                    </div>
                    <div>
                        <label for="mapping-project">"In project"</label>
                        <select id="mapping-project" name="project">
                            {projects.into_iter().map(|p| view! { <option value=p.clone()>{p.clone()}</option> }).collect_view()}
                            <option value="">"none (system administrator)"</option>
                        </select>
                    </div>
                    <button type="submit" class="button primary">"Add mapping"</button>
                </ActionForm>
                {view.provider.is_none().then(|| view! {
                    <p class="notice" role="status">"No identity provider is configured (TAGWARD_OIDC_ISSUER), so these mappings grant nothing yet."</p>
                })}
                {if view.mappings.is_empty() {
                    view! { <p class="empty">"No group mappings yet."</p> }.into_any()
                } else {
                    view! {
                        <table class="table" id="group-mappings">
                            <thead><tr>
                                <th scope="col">"Group"</th><th scope="col">"Grants"</th>
                                <th scope="col"><span class="visually-hidden">"Remove"</span></th>
                            </tr></thead>
                            <tbody>
                                {view.mappings.into_iter().map(|mapping| view! {
                                    <tr>
                                        <td><code>{mapping.group.clone()}</code></td>
                                        <td>{mapping.grants.clone()}</td>
                                        <td>
                                            <ActionForm action=remove attr:class="inline">
                                                <input type="hidden" name="id" value=mapping.id.to_string()/>
                                                <button type="submit" class="button danger"
                                                    aria-label=format!("Remove the mapping of group {}", mapping.group)>"Remove"</button>
                                            </ActionForm>
                                        </td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any()
                }}
            }.into_any()})}
        </section>
    }
}

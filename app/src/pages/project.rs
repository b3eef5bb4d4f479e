//! One project, with its tabs.

use super::immutability::{ImmutabilityTab, Mode};
use super::layout::failure;
use crate::error::AppError;
use crate::projects::{get_project, list_members, Member};
use crate::rules::{list_rules, DeleteRule, SaveRule, SetRuleEnabled};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_location, use_params_map};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tab {
    Policy(Mode),
    Members,
}

impl Tab {
    /// The tab (and, on the Policy tab, the dialog or confirmation) from the path after
    /// `/projects/<name>`: ``, `/policy`, `/policy/immutability/new`, `/policy/immutability/<id>/edit`,
    /// `/policy/immutability/<id>/delete`, `/members`.
    fn parse(rest: &str) -> Option<Tab> {
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        let rule = |id: &str| id.parse::<i64>().ok();
        Some(match segments.as_slice() {
            [] | ["policy"] => Tab::Policy(Mode::List),
            ["policy", "immutability", "new"] => Tab::Policy(Mode::New),
            ["policy", "immutability", id, "edit"] => Tab::Policy(Mode::Edit(rule(id)?)),
            ["policy", "immutability", id, "delete"] => Tab::Policy(Mode::ConfirmDelete(rule(id)?)),
            ["members"] => Tab::Members,
            _ => return None,
        })
    }
}

/// The page's data is loaded by resources made when the route renders (not inside the views that
/// show it), so a fetch never outlives the view that started it.
#[component]
pub fn ProjectPage() -> impl IntoView {
    let params = use_params_map();
    let location = use_location();
    let name = move || params.read().get("project").unwrap_or_default();
    let tab = move || {
        let prefix = format!("/projects/{}", name());
        location.pathname.with(|path| path.strip_prefix(&prefix).and_then(Tab::parse))
    };
    let project = Resource::new(name, get_project);
    let save = ServerAction::<SaveRule>::new();
    let toggle = ServerAction::<SetRuleEnabled>::new();
    let delete = ServerAction::<DeleteRule>::new();
    let rules = Resource::new(
        move || (name(), toggle.version().get(), delete.version().get(), save.version().get()),
        |(project, ..)| list_rules(project),
    );
    let members = Resource::new(
        move || (name(), tab()),
        |(project, tab)| async move {
            match tab {
                Some(Tab::Members) => list_members(project).await.map(Some),
                _ => Ok(None),
            }
        },
    );
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || project.get().map(|result| match (result, tab()) {
                (Ok(project), Some(tab)) => {
                    let base = format!("/projects/{}", project.name);
                    let current = |selected: bool| if selected { "page" } else { "false" };
                    view! {
                        <Title text=project.name.clone()/>
                        <nav class="crumbs" aria-label="Breadcrumb"><A href="/">"Projects"</A>" / "</nav>
                        <h1 class="project-title">{project.name.clone()}</h1>
                        <nav class="tabs" aria-label="Project">
                            <A href=format!("{base}/policy") attr:aria-current=current(matches!(tab, Tab::Policy(_)))>"Policy"</A>
                            <A href=format!("{base}/members") attr:aria-current=current(tab == Tab::Members)>"Members"</A>
                        </nav>
                        {match tab {
                            Tab::Policy(mode) => view! { <ImmutabilityTab rules mode save toggle delete/> }.into_any(),
                            Tab::Members => view! { <MembersTab members/> }.into_any(),
                        }}
                    }.into_any()
                }
                (Ok(_), None) => view! { <super::not_found::NotFound/> }.into_any(),
                (Err(error), _) => failure(error),
            })}
        </Suspense>
    }
}

/// The project's members; a plain list (managing them belongs to the administration pages).
#[component]
fn MembersTab(
    /// The members, loaded by the page (`None` while another tab is shown).
    members: Resource<Result<Option<Vec<Member>>, AppError>>,
) -> impl IntoView {
    view! {
        <section class="panel" aria-labelledby="members-heading">
            <h2 id="members-heading">"Members"</h2>
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || members.get().map(|result| match result {
                    Err(error) => view! { <p class="error" role="alert">{error.to_string()}</p> }.into_any(),
                    Ok(list) => view! {
                        <table class="table" id="members">
                            <thead><tr><th scope="col">"User"</th><th scope="col">"Role"</th></tr></thead>
                            <tbody>
                                {list.into_iter().flatten().map(|member| view! {
                                    <tr><td>{member.name}</td><td><span class="badge">{member.role.as_str()}</span></td></tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any(),
                })}
            </Suspense>
        </section>
    }
}

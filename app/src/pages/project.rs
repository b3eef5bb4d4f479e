//! One project, with its tabs.

use super::layout::failure;
use crate::error::AppError;
use crate::projects::{get_project, list_members, Member};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tab {
    Policy,
    Members,
}

impl Tab {
    fn parse(value: Option<&str>) -> Option<Tab> {
        match value {
            None | Some("policy") => Some(Tab::Policy),
            Some("members") => Some(Tab::Members),
            Some(_) => None,
        }
    }
}

/// The page's data is loaded by resources made when the route renders (not inside the views that
/// show it), so a fetch never outlives the view that started it.
#[component]
pub fn ProjectPage() -> impl IntoView {
    let params = use_params_map();
    let name = move || params.read().get("project").unwrap_or_default();
    let tab = move || Tab::parse(params.read().get("tab").as_deref());
    let project = Resource::new(name, get_project);
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
                    let current = move |t: Tab| if t == tab { "page" } else { "false" };
                    view! {
                        <Title text=project.name.clone()/>
                        <nav class="crumbs" aria-label="Breadcrumb"><A href="/">"Projects"</A>" / "</nav>
                        <h1 class="project-title">{project.name.clone()}</h1>
                        <nav class="tabs" aria-label="Project">
                            <A href=format!("{base}/policy") attr:aria-current=current(Tab::Policy)>"Policy"</A>
                            <A href=format!("{base}/members") attr:aria-current=current(Tab::Members)>"Members"</A>
                        </nav>
                        {match tab {
                            Tab::Policy => view! { <PolicyTab/> }.into_any(),
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

#[component]
fn PolicyTab() -> impl IntoView {
    view! {
        <section class="panel" aria-labelledby="immutability-heading">
            <h2 id="immutability-heading">"Tag Immutability"</h2>
            <p>
                "This is where the project's tag immutability rules will be listed and added: which repositories "
                "and which tags, once pushed, may never be overwritten or deleted. Rule management arrives with "
                "the Tag Immutability issue; until then no rules can be set here."
            </p>
        </section>
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

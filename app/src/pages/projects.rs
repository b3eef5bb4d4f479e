//! The projects the signed-in user belongs to.

use super::layout::failure;
use crate::projects::list_projects;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

#[component]
pub fn ProjectsPage() -> impl IntoView {
    // Each page loads its data in one resource made when the route renders; the server function
    // checks the session itself, and `failure` turns "not signed in" into the login page.
    let projects = Resource::new(|| (), |_| list_projects());
    view! {
        <Title text="Projects"/>
        <section class="panel">
            <h1>"Projects"</h1>
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || projects.get().map(|result| match result {
                    Err(error) => failure(error),
                    Ok(list) if list.is_empty() => view! {
                        <p class="empty">"You are not a member of any project yet. A system administrator can add you to one."</p>
                    }.into_any(),
                    Ok(list) => view! {
                        <ul class="project-list">
                            {list.into_iter().map(|project| {
                                let role = project.role.map_or("system admin", |role| role.as_str());
                                view! {
                                    <li>
                                        <A href=format!("/projects/{}", project.name)>
                                            <span class="project-name">{project.name.clone()}</span>
                                        </A>
                                        <span class="badge">{role}</span>
                                    </li>
                                }
                            }).collect_view()}
                        </ul>
                    }.into_any(),
                })}
            </Suspense>
        </section>
    }
}

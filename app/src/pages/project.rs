//! One project, with its tabs.

use super::immutability::{ImmutabilityTab, Mode};
use super::layout::failure;
use crate::account::Role;
use crate::admin::{list_members, MembersView, SetMember};
use crate::error::AppError;
use crate::policy::RuleInput;
use crate::projects::get_project;
use crate::rules::rule_impact;
use crate::rules::{list_rules, DeleteRule, SaveRule, SetRuleState};
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::{use_location, use_params_map, use_query_map};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tab {
    Policy(Mode),
    Tags,
    /// The project's one-time exceptions, or (`granting`) the form that grants one.
    Exceptions {
        granting: bool,
    },
    Members,
    Webhooks,
    Activity,
}

impl Tab {
    /// The tab (and, on the Policy tab, the dialog or confirmation) from the path after
    /// `/projects/<name>`: ``, `/policy`, `/policy/immutability/new`, `/policy/immutability/<id>/edit`,
    /// `/policy/immutability/<id>/delete`, `/tags`, `/exceptions`, `/exceptions/new`, `/members`,
    /// `/webhooks`, `/activity`.
    fn parse(rest: &str) -> Option<Tab> {
        let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
        let rule = |id: &str| id.parse::<i64>().ok();
        Some(match segments.as_slice() {
            [] | ["policy"] => Tab::Policy(Mode::List),
            ["policy", "immutability", "new"] => Tab::Policy(Mode::New),
            ["policy", "immutability", id, "edit"] => Tab::Policy(Mode::Edit(rule(id)?)),
            ["policy", "immutability", id, "delete"] => Tab::Policy(Mode::ConfirmDelete(rule(id)?)),
            ["tags"] => Tab::Tags,
            ["exceptions"] => Tab::Exceptions { granting: false },
            ["exceptions", "new"] => Tab::Exceptions { granting: true },
            ["members"] => Tab::Members,
            ["webhooks"] => Tab::Webhooks,
            ["activity"] => Tab::Activity,
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
    let toggle = ServerAction::<SetRuleState>::new();
    let delete = ServerAction::<DeleteRule>::new();
    let set_member = ServerAction::<SetMember>::new();
    let rules = Resource::new(
        move || (name(), toggle.version().get(), delete.version().get(), save.version().get()),
        |(project, ..)| list_rules(project),
    );
    let activity = tab_resource(
        name,
        tab,
        super::activity::query_filter(),
        |tab| *tab == Tab::Activity,
        |project, (kind, page)| crate::activity::activity(Some(project), kind, page),
    );
    // What the dialog (or the delete confirmation) shows of a change's impact on existing tags,
    // for the draft in the query (the no-JavaScript preview) or the rule as it is.
    let query = use_query_map();
    let draft = move || {
        query.with(|q| {
            q.get("repositories").map(|repositories| RuleInput {
                repositories_action: q.get("repositories_action").unwrap_or_else(|| "matching".into()),
                repositories,
                tags_action: q.get("tags_action").unwrap_or_else(|| "matching".into()),
                tags: q.get("tags").unwrap_or_default(),
            })
        })
    };
    let impact = Resource::new(
        move || (name(), tab(), draft()),
        |(project, tab, draft)| async move {
            let (rule, draft, remove) = match tab {
                Some(Tab::Policy(Mode::New)) => (None, Some(draft.unwrap_or_default()), false),
                Some(Tab::Policy(Mode::Edit(id))) => (Some(id), draft, false),
                Some(Tab::Policy(Mode::ConfirmDelete(id))) => (Some(id), None, true),
                _ => return Ok(None),
            };
            rule_impact(project, rule, draft, remove).await.map(Some)
        },
    );
    let tags = tab_resource(
        name,
        tab,
        super::tags::query_filter(),
        |tab| *tab == Tab::Tags,
        |project, (repositories, tags, page)| crate::tags::project_tags(project, repositories, tags, page),
    );
    let exception_actions = super::exceptions::ExceptionActions::new();
    let exceptions = tab_resource(
        name,
        tab,
        move || exception_actions.version(),
        |tab| matches!(tab, Tab::Exceptions { .. }),
        |project, _| crate::exceptions::list_exceptions(project),
    );
    let webhook_actions = super::webhooks::WebhookActions::new();
    let webhooks = tab_resource(
        name,
        tab,
        move || webhook_actions.version(),
        |tab| *tab == Tab::Webhooks,
        |project, _| crate::webhooks::list_webhooks(project),
    );
    let members = tab_resource(
        name,
        tab,
        move || set_member.version().get(),
        |tab| *tab == Tab::Members,
        |project, _| list_members(project),
    );
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || project.get().map(|result| match (result, tab()) {
                (Ok(project), Some(tab)) => {
                    view! {
                        <Title text=project.name.clone()/>
                        <nav class="crumbs" aria-label="Breadcrumb"><A href="/">"Projects"</A>" / "</nav>
                        <h1 class="project-title">{project.name.clone()}</h1>
                        <ProjectTabs project=project.name.clone() tab/>
                        {match tab {
                            Tab::Policy(mode) => view! { <ImmutabilityTab rules impact mode save toggle delete/> }.into_any(),
                            Tab::Tags => view! { <super::tags::TagsTab tags/> }.into_any(),
                            Tab::Exceptions { granting: false } => view! {
                                <super::exceptions::ExceptionsTab view=exceptions actions=exception_actions/>
                            }.into_any(),
                            Tab::Exceptions { granting: true } => view! {
                                <super::exceptions::GrantForm view=exceptions grant=exception_actions.grant/>
                            }.into_any(),
                            Tab::Members => view! { <MembersTab members set_member/> }.into_any(),
                            Tab::Webhooks => view! {
                                <super::webhooks::WebhooksTab view=webhooks actions=webhook_actions/>
                            }.into_any(),
                            Tab::Activity => view! { <super::activity::ActivityList activity show_project=false/> }.into_any(),
                        }}
                    }.into_any()
                }
                (Ok(_), None) => view! { <super::not_found::NotFound/> }.into_any(),
                (Err(error), _) => failure(error),
            })}
        </Suspense>
    }
}

/// The project's tabs, the one shown marked as the current page.
#[component]
fn ProjectTabs(project: String, tab: Tab) -> impl IntoView {
    let base = format!("/projects/{project}");
    let current = |selected: bool| if selected { "page" } else { "false" };
    view! {
        <nav class="tabs" aria-label="Project">
            <A href=format!("{base}/policy") attr:aria-current=current(matches!(tab, Tab::Policy(_)))>"Policy"</A>
            <A href=format!("{base}/tags") attr:aria-current=current(tab == Tab::Tags)>"Tags"</A>
            <A href=format!("{base}/exceptions") attr:aria-current=current(matches!(tab, Tab::Exceptions { .. }))>"Exceptions"</A>
            <A href=format!("{base}/members") attr:aria-current=current(tab == Tab::Members)>"Members"</A>
            <A href=format!("{base}/webhooks") attr:aria-current=current(tab == Tab::Webhooks)>"Webhooks"</A>
            <A href=format!("{base}/activity") attr:aria-current=current(tab == Tab::Activity)>"Activity"</A>
        </nav>
    }
}

/// What one tab shows, loaded only while `shown(tab)` (`None` on the other tabs): `load` of the
/// project and `key` (a filter from the URL, an action's version), again whenever either changes.
fn tab_resource<K, T, Fut>(
    name: impl Fn() -> String + Copy + Send + Sync + 'static,
    tab: impl Fn() -> Option<Tab> + Copy + Send + Sync + 'static,
    key: impl Fn() -> K + Send + Sync + 'static,
    shown: fn(&Tab) -> bool,
    load: fn(String, K) -> Fut,
) -> Resource<Result<Option<T>, AppError>>
where
    K: PartialEq + Clone + Send + Sync + 'static,
    T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<T, AppError>> + Send + 'static,
{
    Resource::new(
        move || (name(), tab(), key()),
        move |(project, tab, key)| {
            let loading = tab.as_ref().is_some_and(shown).then(|| load(project, key));
            async move {
                match loading {
                    Some(loading) => loading.await.map(Some),
                    None => Ok(None),
                }
            }
        },
    )
}

/// The project's members; project admins (and system admins) add, change and remove them.
#[component]
fn MembersTab(
    /// The members, loaded by the page (`None` while another tab is shown).
    members: Resource<Result<Option<MembersView>, AppError>>,
    set_member: ServerAction<SetMember>,
) -> impl IntoView {
    let role_options = move |selected: Option<Role>| {
        Role::ALL
            .into_iter()
            .map(|role| view! { <option value=role.as_str() selected=Some(role) == selected>{role.as_str()}</option> })
            .collect_view()
    };
    view! {
        <section class="panel" aria-labelledby="members-heading">
            <h2 id="members-heading">"Members"</h2>
            {super::admin::action_error(set_member)}
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || members.get().map(|result| match result {
                    Err(error) => view! { <p class="error" role="alert">{error.to_string()}</p> }.into_any(),
                    Ok(None) => ().into_any(),
                    Ok(Some(view)) => {
                        let MembersView { project, members, can_manage } = view;
                        let for_add = project.clone();
                        view! {
                            {can_manage.then(|| view! {
                                <ActionForm action=set_member attr:class="create-row" attr:id="add-member">
                                    <input type="hidden" name="project" value=for_add.clone()/>
                                    <super::admin::NameField id="member-user" name="user" label="User name" example="e.g. alice"/>
                                    <div>
                                        <label for="member-role">"Role"</label>
                                        <select id="member-role" name="role">{role_options(Some(Role::Developer))}</select>
                                    </div>
                                    <button type="submit" class="button primary">"Add member"</button>
                                </ActionForm>
                            })}
                            <table class="table" id="members">
                                <thead><tr>
                                    <th scope="col">"User"</th><th scope="col">"Role"</th>
                                    {can_manage.then(|| view! { <th scope="col"><span class="visually-hidden">"Remove"</span></th> })}
                                </tr></thead>
                                <tbody>
                                    {members.into_iter().map(|member| {
                                        let (project, for_remove) = (project.clone(), project.clone());
                                        let (name, user_for_role, user_for_remove) = (member.name.clone(), member.name.clone(), member.name.clone());
                                        view! {
                                            <tr id=format!("member-{name}")>
                                                <td>{name.clone()}</td>
                                                <td>{if can_manage {
                                                    view! {
                                                        <ActionForm action=set_member attr:class="row-form">
                                                            <input type="hidden" name="project" value=project.clone()/>
                                                            <input type="hidden" name="user" value=user_for_role.clone()/>
                                                            <select name="role" aria-label=format!("Role of {user_for_role}")>{role_options(Some(member.role))}</select>
                                                            <button type="submit" class="button">"Change role"</button>
                                                        </ActionForm>
                                                    }.into_any()
                                                } else {
                                                    view! { <span class="badge">{member.role.as_str()}</span> }.into_any()
                                                }}</td>
                                                {can_manage.then(|| view! {
                                                    <td>
                                                        <ActionForm action=set_member attr:class="inline">
                                                            <input type="hidden" name="project" value=for_remove.clone()/>
                                                            <input type="hidden" name="user" value=user_for_remove.clone()/>
                                                            <input type="hidden" name="role" value="remove"/>
                                                            <button type="submit" class="button danger" aria-label=format!("Remove {user_for_remove}")>"Remove"</button>
                                                        </ActionForm>
                                                    </td>
                                                })}
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                            {can_manage.then(|| view! {
                                <p class="hint">"Admins manage members and rules; maintainers manage rules; developers and guests see them. A project keeps at least one admin."</p>
                            })}
                        }.into_any()
                    }
                })}
            </Suspense>
        </section>
    }
}

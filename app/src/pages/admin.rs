//! Administration for system administrators: users, projects, service tokens, sign-in groups. Every form is a
//! plain form first (it works without JavaScript); with JavaScript the lists refresh in place.

use super::layout::failure;
use crate::account::UserSource;
use crate::admin::{
    admin_group_mappings, admin_projects, admin_tokens, admin_users, AddGroupMapping, CreateProject, CreateToken,
    CreateUser, DeleteProject, ProjectRow, RemoveGroupMapping, ResetPassword, RevokeToken, SetUserActive, TokenRow,
    TokensView, UserRow,
};
use crate::error::AppError;
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_meta::Title;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Users,
    Projects,
    Tokens,
    Groups,
    Activity,
}

impl Section {
    fn parse(value: &str) -> Option<Self> {
        match value {
            "" | "users" => Some(Section::Users),
            "projects" => Some(Section::Projects),
            "tokens" => Some(Section::Tokens),
            "groups" => Some(Section::Groups),
            "activity" => Some(Section::Activity),
            _ => None,
        }
    }
}

/// The error a form's last submission ended with, announced to screen readers.
pub fn action_error<A>(action: ServerAction<A>) -> impl IntoView
where
    A: ServerFn<Error = AppError> + Clone + Send + Sync + 'static,
    A::Output: Clone + Send + Sync + 'static,
{
    move || {
        action.value().get().and_then(Result::err).map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })
    }
}

/// The labelled name input of a create form.
#[component]
pub fn NameField(id: &'static str, name: &'static str, label: &'static str, example: &'static str) -> impl IntoView {
    view! {
        <div class="grow">
            <label for=id>{label}</label>
            <input type="text" id=id name=name required autocomplete="off" placeholder=example/>
        </div>
    }
}

/// `/admin` and `/admin/<section>`. The actions are made here, inside the routes, so a plain
/// form's error (sent back in the URL) reaches them.
#[component]
pub fn AdminPage() -> impl IntoView {
    let params = use_params_map();
    let section = move || Section::parse(&params.read().get("section").unwrap_or_default());
    let create_user = ServerAction::<CreateUser>::new();
    let reset_password = ServerAction::<ResetPassword>::new();
    let set_active = ServerAction::<SetUserActive>::new();
    let create_project = ServerAction::<CreateProject>::new();
    let delete_project = ServerAction::<DeleteProject>::new();
    let create_token = ServerAction::<CreateToken>::new();
    let revoke_token = ServerAction::<RevokeToken>::new();
    let add_mapping = ServerAction::<AddGroupMapping>::new();
    let remove_mapping = ServerAction::<RemoveGroupMapping>::new();
    let shown = move |wanted: Section| move || section() == Some(wanted);
    let users = section_data(
        shown(Section::Users),
        move || create_user.version().get() + reset_password.version().get() + set_active.version().get(),
        admin_users,
    );
    let projects = section_data(
        shown(Section::Projects),
        move || create_project.version().get() + delete_project.version().get(),
        admin_projects,
    );
    let tokens = section_data(
        shown(Section::Tokens),
        move || create_token.version().get() + revoke_token.version().get(),
        admin_tokens,
    );
    let mappings = section_data(
        shown(Section::Groups),
        move || add_mapping.version().get() + remove_mapping.version().get(),
        admin_group_mappings,
    );
    let filter = super::activity::query_filter();
    let activity = Resource::new(
        move || (section(), filter()),
        |(section, (kind, page))| async move {
            match section {
                Some(Section::Activity) => crate::activity::activity(None, kind, page).await.map(Some),
                _ => Ok(None),
            }
        },
    );
    view! {
        <Title text="Administration"/>
        <h1>"Administration"</h1>
        {move || match section() {
            None => view! { <super::not_found::NotFound/> }.into_any(),
            Some(current) => {
                let aria = move |s: Section| if s == current { "page" } else { "false" };
                view! {
                    <nav class="tabs" aria-label="Administration">
                        <A href="/admin/users" attr:aria-current=aria(Section::Users)>"Users"</A>
                        <A href="/admin/projects" attr:aria-current=aria(Section::Projects)>"Projects"</A>
                        <A href="/admin/tokens" attr:aria-current=aria(Section::Tokens)>"Service tokens"</A>
                        <A href="/admin/groups" attr:aria-current=aria(Section::Groups)>"Sign-in groups"</A>
                        <A href="/admin/activity" attr:aria-current=aria(Section::Activity)>"Activity"</A>
                    </nav>
                    {match current {
                        Section::Users => view! { <Users users create_user reset_password set_active/> }.into_any(),
                        Section::Projects => view! { <Projects projects create_project delete_project/> }.into_any(),
                        Section::Tokens => view! { <Tokens tokens create_token revoke_token/> }.into_any(),
                        Section::Groups => view! {
                            <super::group_mappings::GroupMappings view=mappings add=add_mapping remove=remove_mapping/>
                        }.into_any(),
                        Section::Activity => view! { <super::activity::ActivityList activity show_project=true/> }.into_any(),
                    }}
                }.into_any()
            }
        }}
    }
}

/// A section's data: loaded only while the section is shown, and again after each of its actions
/// (`versions` sums their version counters).
fn section_data<T, Fut>(
    shown: impl Fn() -> bool + Send + Sync + 'static,
    versions: impl Fn() -> usize + Send + Sync + 'static,
    fetch: fn() -> Fut,
) -> Resource<Result<Option<T>, AppError>>
where
    T: Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned + 'static,
    Fut: std::future::Future<Output = Result<T, AppError>> + Send + 'static,
{
    Resource::new(
        move || (shown(), versions()),
        move |(shown, _)| async move {
            if shown {
                fetch().await.map(Some)
            } else {
                Ok(None)
            }
        },
    )
}

/// Shows a section's data once loaded; "not allowed" and "not signed in" as the whole page would.
pub(super) fn loaded<T: Clone + Send + Sync + 'static>(
    resource: Resource<Result<Option<T>, AppError>>,
    show: impl Fn(T) -> AnyView + Send + Sync + 'static,
) -> impl IntoView {
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || resource.get().map(|result| match result {
                Ok(Some(data)) => show(data),
                Ok(None) => ().into_any(),
                Err(AppError::Forbidden(message)) => view! { <p class="error" role="alert">{message}</p> }.into_any(),
                Err(error) => failure(error),
            })}
        </Suspense>
    }
}

#[component]
fn Users(
    users: Resource<Result<Option<Vec<UserRow>>, AppError>>,
    create_user: ServerAction<CreateUser>,
    reset_password: ServerAction<ResetPassword>,
    set_active: ServerAction<SetUserActive>,
) -> impl IntoView {
    let session = expect_context::<crate::Session>();
    // Nobody deactivates themselves (the server refuses too): no button for it.
    let me = move || session.user.get().and_then(|user| user.ok().flatten()).map(|user| user.name);
    view! {
        <section class="panel" aria-labelledby="users-heading">
            <h2 id="users-heading">"Users"</h2>
            <ActionForm action=create_user attr:class="create-row" attr:id="create-user">
                <NameField id="new-user-name" name="name" label="User name" example="e.g. alice"/>
                <div class="grow">
                    <label for="new-user-password">"Initial password"</label>
                    <input type="password" id="new-user-password" name="password" required minlength="12" autocomplete="new-password"/>
                </div>
                <label class="check"><input type="checkbox" name="system_admin" id="new-user-admin"/>" System administrator"</label>
                <button type="submit" class="button primary">"Create user"</button>
            </ActionForm>
            {action_error(create_user)}
            {action_error(reset_password)}
            {action_error(set_active)}
            {loaded(users, move |users| view! {
                <table class="table" id="users">
                    <thead><tr>
                        <th scope="col">"User"</th><th scope="col">"State"</th><th scope="col">"Created"</th>
                        <th scope="col">"Reset password"</th><th scope="col"><span class="visually-hidden">"Activation"</span></th>
                    </tr></thead>
                    <tbody>
                        {users.into_iter().map(|user| {
                            let (name, for_reset, for_active) = (user.name.clone(), user.name.clone(), user.name.clone());
                            let action = if user.is_active { "Deactivate" } else { "Reactivate" };
                            view! {
                                <tr id=format!("user-{name}")>
                                    <td>
                                        <span class="strong">{user.name.clone()}</span>" "
                                        {user.is_system_admin.then(|| view! { <span class="badge">"system admin"</span> })}
                                        {match user.source {
                                            UserSource::Local => None,
                                            UserSource::Provider => Some(view! { <span class="badge" title="Signs in through the identity provider">"identity provider"</span> }),
                                            UserSource::Directory => Some(view! { <span class="badge" title="Signs in with their directory (LDAP) password">"directory"</span> }),
                                        }}
                                    </td>
                                    <td>{if user.is_active {
                                        view! { <span class="badge ok">"active"</span> }
                                    } else {
                                        view! { <span class="badge off">"deactivated"</span> }
                                    }}</td>
                                    <td class="muted">{user.created_at.clone()}</td>
                                    <td>{(user.source == UserSource::Local).then(|| view! {
                                        <ActionForm action=reset_password attr:class="row-form">
                                            <input type="hidden" name="name" value=for_reset.clone()/>
                                            <input type="password" name="password" required minlength="12" autocomplete="new-password"
                                                aria-label=format!("New password for {for_reset}")/>
                                            <button type="submit" class="button">"Reset"</button>
                                        </ActionForm>
                                    })}</td>
                                    <td>{(me().as_deref() != Some(for_active.as_str())).then(|| view! {
                                        <ActionForm action=set_active attr:class="inline">
                                            <input type="hidden" name="name" value=for_active.clone()/>
                                            <input type="hidden" name="active" value=(!user.is_active).to_string()/>
                                            <button type="submit" class=if user.is_active { "button danger" } else { "button" }
                                                aria-label=format!("{action} {for_active}")>
                                                {action}
                                            </button>
                                        </ActionForm>
                                    })}</td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
                <p class="hint">"Deactivating a user ends their sessions at once. A new password ends every session they have."</p>
            }.into_any())}
        </section>
    }
}

#[component]
fn Projects(
    projects: Resource<Result<Option<Vec<ProjectRow>>, AppError>>,
    create_project: ServerAction<CreateProject>,
    delete_project: ServerAction<DeleteProject>,
) -> impl IntoView {
    view! {
        <section class="panel" aria-labelledby="projects-heading">
            <h2 id="projects-heading">"Projects"</h2>
            <ActionForm action=create_project attr:class="create-row" attr:id="create-project">
                <NameField id="new-project-name" name="name" label="Project name" example="e.g. shop"/>
                <button type="submit" class="button primary">"Create project"</button>
            </ActionForm>
            {action_error(create_project)}
            {action_error(delete_project)}
            {loaded(projects, move |projects| if projects.is_empty() {
                view! { <p class="empty">"No projects yet."</p> }.into_any()
            } else {
                view! {
                    <table class="table" id="projects">
                        <thead><tr>
                            <th scope="col">"Project"</th><th scope="col">"Rules"</th><th scope="col">"Members"</th>
                            <th scope="col">"Created"</th><th scope="col"><span class="visually-hidden">"Delete"</span></th>
                        </tr></thead>
                        <tbody>
                            {projects.into_iter().map(|project| {
                                let (name, label, href, row) = (
                                    project.name.clone(),
                                    project.name.clone(),
                                    format!("/projects/{}", project.name),
                                    format!("project-{}", project.name),
                                );
                                view! {
                                <tr id=row>
                                    <td><A href=href>{label}</A></td>
                                    <td>{project.rules}</td>
                                    <td>{project.members}</td>
                                    <td class="muted">{project.created_at.clone()}</td>
                                    <td>
                                        <ActionForm action=delete_project attr:class="inline">
                                            <input type="hidden" name="name" value=name.clone()/>
                                            <button type="submit" class="button danger" aria-label=format!("Delete project {name}")>"Delete"</button>
                                        </ActionForm>
                                    </td>
                                </tr>
                            }}).collect_view()}
                        </tbody>
                    </table>
                    <p class="hint">"A project is deleted only once it has no rules: deleting rules makes tags mutable, so it is never done as a side effect."</p>
                }.into_any()
            })}
        </section>
    }
}

#[component]
fn Tokens(
    tokens: Resource<Result<Option<TokensView>, AppError>>,
    create_token: ServerAction<CreateToken>,
    revoke_token: ServerAction<RevokeToken>,
) -> impl IntoView {
    view! {
        <section class="panel" aria-labelledby="tokens-heading">
            <h2 id="tokens-heading">"Service tokens"</h2>
            <p class="muted intro">
                "Registry backends present a service token when they ask the decision API ("
                <code>"Authorization: Bearer …"</code>"). Only a hash is stored, so a token is shown once, when it is created. "
                "Give each token only what it needs: a registry backend needs decisions; scripts that manage rules through "
                "the Harbor API need rules:read or rules:write, which can be limited to some projects; a registry that sends "
                "its notifications to tagward needs events; a SIEM's collector reading the audit stream needs audit:read, "
                "which can be limited to some projects."
            </p>
            <ActionForm action=create_token attr:class="create-row" attr:id="create-token">
                <NameField id="new-token-name" name="name" label="Token name" example="e.g. registry-eu"/>
                <fieldset class="scopes">
                    <legend>"Scopes"</legend>
                    <label class="check"><input type="checkbox" name="decisions" id="scope-decisions" checked/>"decisions"</label>
                    <label class="check"><input type="checkbox" name="rules_read" id="scope-rules-read"/>"rules:read"</label>
                    <label class="check"><input type="checkbox" name="rules_write" id="scope-rules-write"/>"rules:write"</label>
                    <label class="check"><input type="checkbox" name="events" id="scope-events"/>"events"</label>
                    <label class="check"><input type="checkbox" name="audit_read" id="scope-audit-read"/>"audit:read"</label>
                </fieldset>
                <div class="grow">
                    <label for="new-token-projects">"Rule and audit scopes limited to projects"</label>
                    <input type="text" id="new-token-projects" name="projects" placeholder="all projects, or e.g. shop, web" autocomplete="off"/>
                </div>
                <button type="submit" class="button primary">"Create token"</button>
            </ActionForm>
            {action_error(create_token)}
            {action_error(revoke_token)}
            {loaded(tokens, move |view| view! {
                {view.created.map(|created| view! {
                    <div class="notice created-token" role="status">
                        <p>{format!("Token “{}” created. Copy it now: it is not shown again.", created.name)}</p>
                        <code id="new-token" class="secret">{created.secret}</code>
                    </div>
                })}
                {if view.tokens.is_empty() {
                    view! { <p class="empty">"No service tokens yet."</p> }.into_any()
                } else {
                    view! { <TokenTable tokens=view.tokens revoke_token/> }.into_any()
                }}
            }.into_any())}
        </section>
    }
}

#[component]
fn TokenTable(tokens: Vec<TokenRow>, revoke_token: ServerAction<RevokeToken>) -> impl IntoView {
    view! {
        <table class="table" id="tokens">
            <thead><tr>
                <th scope="col">"Name"</th><th scope="col">"Scopes"</th><th scope="col">"State"</th><th scope="col">"Created"</th>
                <th scope="col">"Last used"</th><th scope="col"><span class="visually-hidden">"Revoke"</span></th>
            </tr></thead>
            <tbody>
                {tokens.into_iter().map(|token| {
                    let revoked = token.revoked_at.is_some();
                    let name = token.name.clone();
                    view! {
                        <tr class:revoked=revoked>
                            <td class="strong">{token.name.clone()}</td>
                            <td>
                                <code>{token.scopes.clone()}</code>
                                {token.migrated_full_access.then(|| view! {
                                    <span class="badge warn" title="Made before tokens had scopes, so it kept every scope. Replace it with a token that has only what it needs.">
                                        "full access (pre-scopes)"
                                    </span>
                                })}
                            </td>
                            <td>{match &token.revoked_at {
                                Some(at) => view! { <span class="badge off">{format!("revoked {at}")}</span> }.into_any(),
                                None => view! { <span class="badge ok">"active"</span> }.into_any(),
                            }}</td>
                            <td class="muted">{format!("{} by {}", token.created_at, token.created_by)}</td>
                            <td class="muted">{token.last_used_at.clone().unwrap_or_else(|| "never".into())}</td>
                            <td>{(!revoked).then(|| view! {
                                <ActionForm action=revoke_token attr:class="inline">
                                    <input type="hidden" name="name" value=name.clone()/>
                                    <button type="submit" class="button danger" aria-label=format!("Revoke token {name}")>"Revoke"</button>
                                </ActionForm>
                            })}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}

//! A project's Exceptions tab: the one-time exceptions granted (active, pending, used, expired,
//! revoked), the project's setting, and the grant form the Tags tab's "Allow one change…" opens.
//! Plain forms and links: it all works without JavaScript.

use super::admin::{action_error, loaded};
use crate::error::AppError;
use crate::exceptions::{
    ApproveException, ExceptionsView, GrantException, RevokeException, SetExceptionsMode, LIFETIMES,
};
use crate::policy::ExceptionsMode;
use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_query_map;

server_actions! {
    /// What the forms of the Exceptions tab act with.
    ExceptionActions {
        grant: GrantException,
        revoke: RevokeException,
        approve: ApproveException,
        set_mode: SetExceptionsMode,
    }
}

/// Why the project cannot take an exception now, if it cannot.
fn unavailable(view: &ExceptionsView) -> Option<&'static str> {
    if view.switched_off {
        Some("Exceptions are switched off for this tagward (TAGWARD_EXCEPTIONS=off): none can be granted or used.")
    } else if view.mode == ExceptionsMode::Off.as_str() {
        Some("This project takes no exceptions (its setting below is off): none can be granted or used.")
    } else {
        None
    }
}

#[component]
pub fn ExceptionsTab(
    view: Resource<Result<Option<ExceptionsView>, AppError>>,
    actions: ExceptionActions,
) -> impl IntoView {
    view! {
        <section class="panel" aria-labelledby="exceptions-heading">
            <h2 id="exceptions-heading">"Exceptions"</h2>
            <p class="muted intro">
                "An exception lets one change the rules refuse through, once: one overwrite or delete of one tag (or one "
                "digest), with a reason, for a limited time. The first matching push or delete — through any gateway or "
                "the decision API — uses it up, and the Activity tab records who granted it, why, and what it let "
                "through. To grant one, open the Tags tab and choose “Allow one change…” on an immutable tag."
            </p>
            {action_error(actions.revoke)}
            {action_error(actions.approve)}
            {action_error(actions.set_mode)}
            {loaded(view, move |view| {
                let project = view.project.name.clone();
                let for_mode = project.clone();
                view! {
                    {match unavailable(&view) {
                        Some(why) => Some(view! { <p class="notice" role="status" id="exceptions-unavailable">{why}</p> }.into_any()),
                        None => view.can_grant.then(|| view! {
                            <p><A href=format!("/projects/{project}/exceptions/new") attr:class="button" attr:id="new-exception">"Grant an exception…"</A></p>
                        }.into_any()),
                    }}
                    <ExceptionList view=view.clone() actions/>
                    {view.can_grant.then(|| view! { <ModeForm project=for_mode.clone() mode=view.mode.clone() set_mode=actions.set_mode/> })}
                }
                .into_any()
            })}
        </section>
    }
}

#[component]
fn ExceptionList(view: ExceptionsView, actions: ExceptionActions) -> impl IntoView {
    if view.exceptions.is_empty() {
        return view! { <p class="empty" id="no-exceptions">"No exception has been granted in this project."</p> }
            .into_any();
    }
    let project = view.project.name.clone();
    view! {
        <table class="table" id="exceptions">
            <thead><tr>
                <th scope="col">"Id"</th><th scope="col">"Change"</th><th scope="col">"Status"</th>
                <th scope="col">"Granted"</th><th scope="col">"Reason"</th>
                <th scope="col"><span class="visually-hidden">"Actions"</span></th>
            </tr></thead>
            <tbody>
                {view.exceptions.into_iter().map(|row| {
                    let badge = match row.status.as_str() {
                        "active" => "badge ok",
                        "pending" => "badge warn",
                        _ => "badge",
                    };
                    let (for_revoke, for_approve) = (project.clone(), project.clone());
                    let id = row.id;
                    view! {
                        <tr id=format!("exception-{id}")>
                            <td>{id}</td>
                            <td class="mono">{row.change.clone()}</td>
                            <td>
                                <span class=badge>{row.status.clone()}</span>
                                {row.outcome.clone().map(|outcome| view! { <br/><span class="small muted">{outcome}</span> })}
                            </td>
                            <td class="nowrap">{row.granted_by.clone()}<br/>
                                <span class="small muted">{format!("{}, until {}", row.granted_at, row.expires_at)}</span>
                            </td>
                            <td>{row.reason.clone()}</td>
                            <td class="nowrap">
                                {row.can_approve.then(|| view! {
                                    <ActionForm action=actions.approve attr:class="inline">
                                        <input type="hidden" name="project" value=for_approve.clone()/>
                                        <input type="hidden" name="id" value=id.to_string()/>
                                        <button type="submit" class="button" id=format!("approve-{id}")>"Approve"</button>
                                    </ActionForm>
                                })}
                                {row.can_revoke.then(|| view! {
                                    <ActionForm action=actions.revoke attr:class="inline">
                                        <input type="hidden" name="project" value=for_revoke.clone()/>
                                        <input type="hidden" name="id" value=id.to_string()/>
                                        <button type="submit" class="button danger" id=format!("revoke-{id}")
                                            aria-label=format!("Revoke exception {id}")>"Revoke"</button>
                                    </ActionForm>
                                })}
                            </td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

/// The project's setting: allowed, four-eyes or off.
#[component]
fn ModeForm(project: String, mode: String, set_mode: ServerAction<SetExceptionsMode>) -> impl IntoView {
    let choices = [
        (ExceptionsMode::Allowed, "Allowed: an admin's exception is usable at once"),
        (ExceptionsMode::FourEyes, "Four-eyes: another admin approves each exception before it is usable"),
        (ExceptionsMode::Off, "Off: this project takes no exceptions"),
    ];
    view! {
        <ActionForm action=set_mode attr:id="exceptions-mode" attr:class="stack">
            <input type="hidden" name="project" value=project/>
            <fieldset>
                <legend>"This project's exceptions"</legend>
                {choices.into_iter().map(|(choice, label)| {
                    let id = format!("mode-{}", choice.as_str());
                    view! {
                        <div class="radio">
                            <input type="radio" id=id.clone() name="mode" value=choice.as_str() checked=mode == choice.as_str()/>
                            <label for=id>{label}</label>
                        </div>
                    }
                }).collect_view()}
            </fieldset>
            <div class="actions"><button type="submit" class="button">"Save setting"</button></div>
        </ActionForm>
    }
}

/// "Allow one change…": the grant form, filled from the query (`repository`, `target`, and
/// optionally `operation`) that the Tags tab's link carries.
#[component]
pub fn GrantForm(
    view: Resource<Result<Option<ExceptionsView>, AppError>>,
    grant: ServerAction<GrantException>,
) -> impl IntoView {
    let query = use_query_map();
    let field = move |name: &str| query.with(|q| q.get(name).unwrap_or_default());
    view! {
        <section class="panel" aria-labelledby="grant-heading">
            <h2 id="grant-heading">"Allow one change"</h2>
            {action_error(grant)}
            {loaded(view, move |view| {
                let project = view.project.name.clone();
                let back = format!("/projects/{project}/tags");
                if !view.can_grant {
                    return view! {
                        <p class="error" role="alert">"Only project admins and system administrators may grant exceptions."</p>
                        <A href=back>"Back to the tags"</A>
                    }.into_any();
                }
                if let Some(why) = unavailable(&view) {
                    return view! { <p class="notice" role="status">{why}</p><A href=back>"Back to the tags"</A> }.into_any();
                }
                let operation = field("operation");
                let four_eyes = view.mode == ExceptionsMode::FourEyes.as_str();
                view! {
                    <p class="muted intro">
                        "The first push or delete that matches uses it up; until then it can be revoked on the Exceptions tab. "
                        "A delete exception on a tag also lets one delete of what only that tag holds through (its manifest, "
                        "a platform image, a blob)."
                        {four_eyes.then_some(" This project uses four-eyes: another admin must approve it before it can be used.")}
                    </p>
                    <ActionForm action=grant attr:id="grant-exception" attr:class="stack">
                        <input type="hidden" name="project" value=project.clone()/>
                        <div>
                            <label for="exception-repository">"Repository"</label>
                            <input type="text" id="exception-repository" name="repository" required
                                value=field("repository") autocomplete="off" spellcheck="false"/>
                        </div>
                        <div>
                            <label for="exception-target">"Tag or digest"</label>
                            <input type="text" id="exception-target" name="target" required
                                value=field("target") autocomplete="off" spellcheck="false" aria-describedby="exception-target-hint"/>
                            <p class="hint" id="exception-target-hint">"A tag such as " <code>"v1.2"</code> ", or a digest " <code>"sha256:…"</code> " (to delete that manifest or blob)."</p>
                        </div>
                        <fieldset>
                            <legend>"Operation"</legend>
                            <div class="radio">
                                <input type="radio" id="operation-overwrite" name="operation" value="overwrite" checked=operation != "delete"/>
                                <label for="operation-overwrite">"Overwrite: push another image to the tag"</label>
                            </div>
                            <div class="radio">
                                <input type="radio" id="operation-delete" name="operation" value="delete" checked=operation == "delete"/>
                                <label for="operation-delete">"Delete: the tag, or what only it holds"</label>
                            </div>
                        </fieldset>
                        <div>
                            <label for="exception-to-digest">"Only with digest (overwrite, optional)"</label>
                            <input type="text" id="exception-to-digest" name="to_digest" autocomplete="off" spellcheck="false"
                                placeholder="sha256:… (empty: any image)"/>
                        </div>
                        <div>
                            <label for="exception-reason">"Reason"</label>
                            <textarea id="exception-reason" name="reason" required rows="3" maxlength="500"
                                placeholder="e.g. INC-1234: v1.2 was released with the wrong image"></textarea>
                        </div>
                        <div>
                            <label for="exception-expires">"Usable for"</label>
                            <select id="exception-expires" name="expires_in">
                                {LIFETIMES.into_iter().map(|(value, label)| view! {
                                    <option value=value selected=value == "1h">{label}</option>
                                }).collect_view()}
                            </select>
                        </div>
                        <div class="actions">
                            <button type="submit" class="button primary">"Grant exception"</button>
                            <A href=back attr:class="button">"Cancel"</A>
                        </div>
                    </ActionForm>
                }.into_any()
            })}
        </section>
    }
}

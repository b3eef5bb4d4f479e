//! A project's Webhooks tab: where its events are sent, each endpoint's state and last
//! deliveries, "Send test event", "Redeliver", and the form that adds one. Plain forms: it all
//! works without JavaScript.

use super::admin::{action_error, loaded};
use crate::error::AppError;
use crate::policy::{WebhookEvent, WebhookFormat};
use crate::webhooks::{
    AddWebhook, DeliveryRow, RedeliverWebhook, RemoveWebhook, ResumeWebhook, TestWebhook, WebhookRow, WebhooksView,
};
use leptos::prelude::*;

server_actions! {
    /// What the forms of the Webhooks tab act with.
    WebhookActions {
        add: AddWebhook,
        remove: RemoveWebhook,
        resume: ResumeWebhook,
        test: TestWebhook,
        redeliver: RedeliverWebhook,
    }
}

#[component]
pub fn WebhooksTab(view: Resource<Result<Option<WebhooksView>, AppError>>, actions: WebhookActions) -> impl IntoView {
    view! {
        <section class="panel" aria-labelledby="webhooks-heading">
            <h2 id="webhooks-heading">"Webhooks"</h2>
            <p class="muted intro">
                "tagward tells these endpoints when something happens in this project: drift found behind its back, "
                "exceptions granted, waiting for approval, used or running out, rules changed, pushes and deletes "
                "denied. Every body is signed (HMAC-SHA256 in " <code>"X-Tagward-Signature"</code> " over the "
                <code>"X-Tagward-Timestamp"</code> ", a dot and the body), and each notification is retried for up "
                "to 24 hours until the endpoint answers 2xx."
            </p>
            {action_error(actions.remove)}
            {action_error(actions.resume)}
            {action_error(actions.test)}
            {action_error(actions.redeliver)}
            {loaded(view, move |view| {
                let project = view.project.name.clone();
                view! {
                    {if view.webhooks.is_empty() {
                        view! { <p class="empty" id="no-webhooks">"No webhook is configured for this project."</p> }.into_any()
                    } else {
                        view.webhooks.iter().cloned().map(|webhook| view! {
                            <Endpoint webhook project=project.clone() can_manage=view.can_manage actions/>
                        }).collect_view().into_any()
                    }}
                    {view.can_manage.then(|| view! { <AddForm project=project.clone() add=actions.add/> })}
                }
                .into_any()
            })}
        </section>
    }
}

/// A small form of one endpoint or delivery: the project, `name` = `value`, and a button.
macro_rules! row_button {
    ($action:expr, $project:expr, $name:literal, $value:expr, $label:literal, $id:expr $(, $class:literal, $aria:expr)?) => {{
        let project: String = $project;
        view! {
            <ActionForm action=$action attr:class="inline">
                <input type="hidden" name="project" value=project/>
                <input type="hidden" name=$name value=$value.to_string()/>
                <button type="submit" class=row_button!(@class $($class)?) id=$id $(aria-label=$aria)?>{$label}</button>
            </ActionForm>
        }
    }};
    (@class) => { "button" };
    (@class $class:literal) => { $class };
}

#[component]
fn Endpoint(webhook: WebhookRow, project: String, can_manage: bool, actions: WebhookActions) -> impl IntoView {
    let id = webhook.id;
    let state = match &webhook.paused {
        Some(paused) => view! {
            <span class="badge off">{format!("{paused} after {} failures in a row", webhook.consecutive_failures)}</span>
        }
        .into_any(),
        None => view! { <span class="badge ok">"active"</span> }.into_any(),
    };
    let heading = format!("webhook-{id}-heading");
    let for_actions = project.clone();
    let url = webhook.url.clone();
    view! {
        <article class="webhook" id=format!("webhook-{id}") aria-labelledby=heading.clone()>
            <h3 id=heading.clone() class="mono">{webhook.url.clone()}</h3>
            <p class="small">
                {state}" "
                <span class="badge">{webhook.format.clone()}</span>
                {webhook.has_authorization.then(|| view! { " " <span class="badge">"Authorization header"</span> })}
                <span class="muted">{format!(" · {} pending · added {}", webhook.pending, webhook.created)}</span>
            </p>
            <p class="small">"Events: " <code>{webhook.events.join(", ")}</code></p>
            {can_manage.then(|| view! {
                // A div: forms inside a <p> would close it (HTML does not nest them).
                <div class="actions">
                    {row_button!(actions.test, for_actions.clone(), "id", id, "Send test event", format!("test-{id}"))}
                    {webhook.paused.is_some().then(|| row_button!(actions.resume, for_actions.clone(), "id", id, "Resume", format!("resume-{id}")))}
                    {row_button!(actions.remove, for_actions.clone(), "id", id, "Remove", format!("remove-{id}"),
                        "button danger", format!("Remove the webhook to {url}"))}
                </div>
            })}
            <Deliveries rows=webhook.deliveries project actions/>
        </article>
    }
}

#[component]
fn Deliveries(rows: Vec<DeliveryRow>, project: String, actions: WebhookActions) -> impl IntoView {
    if rows.is_empty() {
        return view! { <p class="small muted">"Nothing has been sent yet."</p> }.into_any();
    }
    view! {
        <table class="table deliveries">
            <caption class="visually-hidden">"Last deliveries"</caption>
            <thead><tr>
                <th scope="col">"Delivery"</th><th scope="col">"Event"</th><th scope="col">"State"</th>
                <th scope="col">"Last attempt"</th><th scope="col"><span class="visually-hidden">"Actions"</span></th>
            </tr></thead>
            <tbody>
                {rows.into_iter().map(|row| {
                    let badge = match row.state.as_str() {
                        "delivered" => "badge ok",
                        "failed" => "badge off",
                        _ => "badge warn",
                    };
                    let id = row.id;
                    let for_redeliver = project.clone();
                    view! {
                        <tr id=format!("delivery-{id}")>
                            <td>{id}<br/><span class="small muted">{row.created_at.clone()}</span></td>
                            <td class="mono">{row.event.clone()}</td>
                            <td>
                                <span class=badge>{row.state.clone()}</span>
                                <span class="small muted">{format!(" {} attempt{}", row.attempts, if row.attempts == 1 { "" } else { "s" })}</span>
                                {row.next_attempt.clone().map(|at| view! { <br/><span class="small muted">{format!("next try {at}")}</span> })}
                            </td>
                            <td>
                                {row.last_attempt.clone().unwrap_or_else(|| "—".to_owned())}
                                {row.last_error.clone().map(|error| view! { <br/><span class="small muted">{error}</span> })}
                            </td>
                            <td>{row.can_redeliver.then(|| {
                                row_button!(actions.redeliver, for_redeliver, "delivery", id, "Redeliver", format!("redeliver-{id}"))
                            })}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

#[component]
fn AddForm(project: String, add: ServerAction<AddWebhook>) -> impl IntoView {
    view! {
        <h3 id="add-webhook-heading">"Add a webhook"</h3>
        {action_error(add)}
        <ActionForm action=add attr:id="add-webhook" attr:class="stack" attr:aria-labelledby="add-webhook-heading">
            <input type="hidden" name="project" value=project/>
            <div>
                <label for="webhook-url">"URL"</label>
                <input type="url" id="webhook-url" name="url" required autocomplete="off" spellcheck="false"
                    placeholder="https://hooks.example.com/tagward" aria-describedby="webhook-url-hint"/>
                <p class="hint" id="webhook-url-hint">"Loopback, private and link-local addresses are refused unless the operator allows them."</p>
            </div>
            <fieldset class="events">
                <legend>"Events"</legend>
                {WebhookEvent::ALL.into_iter().map(|event| {
                    let id = format!("event-{}", event.as_str().replace('.', "-"));
                    view! {
                        <div class="check">
                            <input type="checkbox" id=id.clone() name="events[]" value=event.as_str() checked=true/>
                            <label for=id>{event.title()}" "<code class="small">{event.as_str()}</code></label>
                        </div>
                    }
                }).collect_view()}
            </fieldset>
            <div>
                <label for="webhook-format">"Format"</label>
                <select id="webhook-format" name="format">
                    {WebhookFormat::ALL.into_iter().map(|format| view! {
                        <option value=format.as_str()>{match format {
                            WebhookFormat::CloudEvents => "CloudEvents 1.0 (JSON)",
                            WebhookFormat::Slack => "Slack-compatible ({\"text\": …})",
                        }}</option>
                    }).collect_view()}
                </select>
            </div>
            <div>
                <label for="webhook-secret">"Secret"</label>
                <input type="password" id="webhook-secret" name="secret" required minlength="16" autocomplete="new-password"
                    aria-describedby="webhook-secret-hint"/>
                <p class="hint" id="webhook-secret-hint">"At least 16 characters; bodies are signed with it. It is not shown again."</p>
            </div>
            <div>
                <label for="webhook-authorization">"Authorization header (optional)"</label>
                <input type="password" id="webhook-authorization" name="authorization" autocomplete="off"
                    placeholder="e.g. Bearer …"/>
            </div>
            <div class="actions"><button type="submit" class="button primary">"Add webhook"</button></div>
        </ActionForm>
    }
}

//! The rule editor, the portal's one island (the only part of it compiled to WASM): the Add/Edit
//! Rule dialog with the registry's fields and their errors next to them, the live preview on sample
//! references (the rule engine, in the browser), and the impact on the tags the registry holds
//! (asked of the server as the rule is typed). Without JavaScript the same dialog is a server-rendered
//! page (`/new`, `/<id>/edit`); with it, the list's Add Rule and Edit links open it in place.

use crate::error::AppError;
use crate::format::thousands;
use crate::inventory::{Counted, Impact};
use crate::policy::{Field, RuleInput};
use crate::rules::rule_impact;
use crate::rules::{preview, RuleFormError, RuleRow, SaveRule, DRAFT_RULE_ID};
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use serde::{Deserialize, Serialize};

/// The sample references the preview starts with.
const SAMPLES: &str = "app:v1.2.3\napp:latest\nteam/web:nightly";

/// What an open dialog starts from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DialogState {
    /// The rule being edited, or `None` when adding one.
    pub editing: Option<i64>,
    pub input: RuleInput,
    pub samples: String,
    /// What the last save reported (a plain form's error, sent back in the URL).
    pub failed: Option<RuleFormError>,
    /// The impact the server counted for `input`; `None` to ask for it when the dialog opens.
    pub impact: Option<Result<Impact, AppError>>,
}

impl DialogState {
    /// The dialog as a page shows it open: the fields hold what was typed before a failed save,
    /// else the no-JavaScript preview's query, else the rule being edited, else the defaults.
    pub fn from_page(
        editing: Option<RuleRow>,
        failed: Option<RuleFormError>,
        query: &leptos_router::params::ParamsMap,
        impact: Option<Result<Impact, AppError>>,
    ) -> Self {
        let input = failed.as_ref().map(|e| e.input.clone()).unwrap_or_else(|| match query.get("repositories") {
            Some(repositories) => RuleInput {
                repositories_action: query.get("repositories_action").unwrap_or_else(|| "matching".into()),
                repositories,
                tags_action: query.get("tags_action").unwrap_or_else(|| "matching".into()),
                tags: query.get("tags").unwrap_or_default(),
            },
            None => editing.as_ref().map(|r| r.input.clone()).unwrap_or_default(),
        });
        DialogState {
            editing: editing.map(|r| r.id),
            input,
            samples: query.get("samples").unwrap_or_else(|| SAMPLES.to_owned()),
            failed,
            impact,
        }
    }

    /// The dialog as a link opens it in place: on the rule (or the defaults), the impact still to count.
    #[cfg(feature = "hydrate")]
    fn opened(editing: Option<&RuleRow>) -> Self {
        DialogState {
            editing: editing.map(|r| r.id),
            input: editing.map(|r| r.input.clone()).unwrap_or_default(),
            samples: SAMPLES.to_owned(),
            failed: None,
            impact: None,
        }
    }
}

/// The dialog, open or ready to open. With JavaScript, a click on a link marked `data-rule-dialog`
/// (`new`, or a rule's id) opens it in place instead of loading the page the link names.
#[island]
pub fn RuleEditor(
    project: String,
    /// The project's rules, for the preview of the whole policy and to open one for editing.
    rules: Vec<RuleRow>,
    /// The dialog as the page shows it, or `None` when closed.
    open: Option<DialogState>,
) -> impl IntoView {
    let shown = RwSignal::new(open);
    let list_url = format!("/projects/{project}/policy");
    #[cfg(feature = "hydrate")]
    {
        let opens = rules.clone();
        let handle = window_event_listener(leptos::ev::click, move |ev| {
            use wasm_bindgen::JsCast;
            let plain = ev.button() == 0 && !(ev.ctrl_key() || ev.meta_key() || ev.shift_key() || ev.alt_key());
            let link = ev
                .target()
                .and_then(|target| target.dyn_into::<web_sys::Element>().ok())
                .and_then(|element| element.closest("a[data-rule-dialog]").ok().flatten());
            let (Some(link), true) = (link, plain) else { return };
            let which = link.get_attribute("data-rule-dialog").unwrap_or_default();
            let editing = which.parse::<i64>().ok().and_then(|id| opens.iter().find(|r| r.id == id));
            if which != "new" && editing.is_none() {
                return;
            }
            ev.prevent_default();
            if let (Some(href), Ok(history)) = (link.get_attribute("href"), window().history()) {
                let _ = history.push_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&href));
            }
            shown.set(Some(DialogState::opened(editing)));
        });
        // Back (or forward) past the dialog's own history entry: the page the browser now shows.
        let list = list_url.clone();
        let back = window_event_listener(leptos::ev::popstate, move |_| {
            if window().location().pathname().is_ok_and(|path| path == list) {
                shown.set(None);
            } else {
                let _ = window().location().reload();
            }
        });
        // The island lives as long as the page.
        std::mem::forget((handle, back));
        // Tells browser tests (and curious people) that the page is interactive now.
        Effect::new(|_| {
            if let Some(body) = document().body() {
                let _ = body.set_attribute("data-hydrated", "");
            }
        });
    }
    let close = Callback::new(move |opener: String| {
        shown.set(None);
        #[cfg(feature = "hydrate")]
        if let Ok(history) = window().history() {
            let _ = history.push_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&list_url));
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = &list_url;
        focus_element(&opener);
    });
    move || shown.get().map(|state| view! { <RuleDialog project=project.clone() rules=rules.clone() state close/> })
}

/// The Add/Edit Rule dialog: the registry's fields, errors next to them, and a live preview.
#[component]
fn RuleDialog(
    project: String,
    rules: Vec<RuleRow>,
    state: DialogState,
    /// Closes the dialog and moves focus to the element with the given id (what opened it).
    close: Callback<String>,
) -> impl IntoView {
    let DialogState { editing: editing_id, input: initial, samples, failed, impact } = state;
    let save = ServerAction::<SaveRule>::new();
    let repositories_action = RwSignal::new(initial.repositories_action.clone());
    let repositories = RwSignal::new(initial.repositories.clone());
    let tags_action = RwSignal::new(initial.tags_action.clone());
    let tags = RwSignal::new(initial.tags.clone());
    let samples = RwSignal::new(samples);
    let title = if editing_id.is_some() { "Edit Tag Immutability Rule" } else { "Add Tag Immutability Rule" };
    let submit = if editing_id.is_some() { "Save" } else { "Add" };
    let list_url = format!("/projects/{project}/policy");
    let here = match editing_id {
        Some(id) => format!("/projects/{project}/policy/immutability/{id}/edit"),
        None => format!("/projects/{project}/policy/immutability/new"),
    };

    // Errors from the last save: after a failed save with JavaScript, or from the URL without it.
    let errors = Memo::new(move |_| save.value().get().and_then(Result::err).or_else(|| failed.clone()));
    let repositories_error = move || errors.get().and_then(|e| e.fields.repositories).map(|e| e.to_string());
    let tags_error = move || errors.get().and_then(|e| e.fields.tags).map(|e| e.to_string());
    let form_error = move || errors.get().and_then(|e| e.message);

    let preview_project = project.clone();
    // The rule as typed, for both previews.
    let draft = Memo::new(move |_| RuleInput {
        repositories_action: repositories_action.get(),
        repositories: repositories.get(),
        tags_action: tags_action.get(),
        tags: tags.get(),
    });
    let outcome = Memo::new(move |_| {
        draft
            .with(|draft| preview(&preview_project, &rules, editing_id, draft, &samples.get()))
            .map_err(|e| e.to_string())
    });

    let (shown_impact, impact_pending) = live_impact(project.clone(), editing_id, draft, impact);
    let dialog = NodeRef::<leptos::html::Dialog>::new();
    let opener = editing_id.map_or_else(|| "add-rule".to_owned(), |id| format!("edit-{id}"));
    become_modal(dialog);
    let close_dialog = move || {
        if let Some(dialog) = dialog.get_untracked() {
            dialog.close();
        }
        close.run(opener.clone());
    };
    // With JavaScript the form is sent from the fields' values (a plain form post without it); a
    // failed save shows its errors in place, a saved rule brings back the list, loaded afresh.
    let save_project = project.clone();
    let evaluate_first = RwSignal::new(false);
    let on_submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        save.dispatch(SaveRule {
            project: save_project.clone(),
            rule_id: editing_id,
            repositories_action: repositories_action.get_untracked(),
            repositories: repositories.get_untracked(),
            tags_action: tags_action.get_untracked(),
            tags: tags.get_untracked(),
            evaluate_first: evaluate_first.get_untracked().then(|| "on".to_owned()),
        });
    };
    let saved_url = list_url.clone();
    Effect::new(move |_| {
        if let Some(Ok(())) = save.value().get() {
            #[cfg(feature = "hydrate")]
            let _ = window().location().set_href(&saved_url);
            #[cfg(not(feature = "hydrate"))]
            let _ = &saved_url;
        }
    });
    let on_cancel = {
        let close_dialog = close_dialog.clone();
        move |ev: leptos::ev::Event| {
            ev.prevent_default();
            close_dialog();
        }
    };

    view! {
        <dialog node_ref=dialog class="modal" open aria-labelledby="rule-dialog-title" on:cancel=on_cancel>
            <form id="rule-form" class="rule-form" method="post" action=SaveRule::PATH on:submit=on_submit>
                <h2 id="rule-dialog-title">{title}</h2>
                <p class="muted">
                    "A tag is immutable when any enforced rule matches it: rules are evaluated on their own and their results combined."
                </p>
                <input type="hidden" name="project" value=project.clone()/>
                {editing_id.map(|id| view! { <input type="hidden" name="rule_id" value=id/> })}
                {move || form_error().map(|message| view! { <p class="error" role="alert" id="rule-form-error">{message}</p> })}

                <RuleSide field=Field::Repositories action=repositories_action patterns=repositories
                    error=Signal::derive(repositories_error)>
                    "Comma-separated repository names inside the project, e.g. " <code>"api, team/**"</code>
                    ". " <code>"*"</code> " matches within one path segment, " <code>"**"</code> " matches all repositories."
                </RuleSide>
                <RuleSide field=Field::Tags action=tags_action patterns=tags error=Signal::derive(tags_error)>
                    "Comma-separated tags, e.g. " <code>"rc, test, nightly"</code> ". " <code>"*"</code>
                    " matches any sequence of characters, " <code>"**"</code> " matches all tags."
                </RuleSide>

                <ImpactPreview impact=shown_impact pending=impact_pending/>
                <SamplePreview samples outcome here/>

                {editing_id.is_none().then(|| view! {
                    <label class="check evaluate-first">
                        <input type="checkbox" name="evaluate_first" id="evaluate-first"
                            on:change=move |ev| evaluate_first.set(event_target_checked(&ev))/>
                        " Evaluate first: deny nothing, record every push and delete this rule would have refused, and promote it when that looks right"
                    </label>
                })}
                <div class="dialog-actions">
                    <a href=list_url.clone() class="button" id="cancel-rule"
                        on:click=move |ev| { ev.prevent_default(); close_dialog(); }>"Cancel"</a>
                    <button type="submit" class="button primary" id="save-rule">{submit}</button>
                </div>
            </form>
        </dialog>
    }
}

/// The impact the dialog shows (and whether a newer one is on its way): `counted`, what the page
/// came with, until the draft changes. With JavaScript the impact follows the typing: asked of the
/// server a moment after the last change (the inventory lives there), and at once when the dialog
/// opens uncounted.
fn live_impact(
    project: String,
    editing_id: Option<i64>,
    draft: Memo<RuleInput>,
    counted: Option<Result<Impact, AppError>>,
) -> (Signal<Option<Result<Impact, AppError>>>, Memo<bool>) {
    let asked = Action::new(|(project, rule, draft): &(String, Option<i64>, RuleInput)| {
        rule_impact(project.clone(), *rule, Some(draft.clone()), false)
    });
    let came_counted = counted.is_some();
    let typed = RwSignal::new(0u64);
    Effect::new(move |previous: Option<()>| {
        let draft = draft.get();
        if previous.is_none() && came_counted {
            return;
        }
        let version = typed.get_untracked() + 1;
        typed.set(version);
        let project = project.clone();
        #[cfg(feature = "hydrate")]
        set_timeout(
            move || {
                if typed.get_untracked() == version {
                    asked.dispatch((project, editing_id, draft));
                }
            },
            std::time::Duration::from_millis(if previous.is_none() { 0 } else { 250 }),
        );
        #[cfg(not(feature = "hydrate"))]
        let _ = (project, draft, asked, editing_id);
    });
    (Signal::derive(move || asked.value().get().or_else(|| counted.clone())), asked.pending())
}

/// With JavaScript the server-rendered, plainly open `dialog` becomes a real modal: the page behind
/// it goes inert, focus moves in, Escape closes it.
fn become_modal(dialog: NodeRef<leptos::html::Dialog>) {
    Effect::new(move |_| {
        #[cfg(feature = "hydrate")]
        if let Some(dialog) = dialog.get() {
            if !dialog.matches(":modal").unwrap_or(false) {
                dialog.close();
                let _ = dialog.show_modal();
            }
            focus_element("repositories");
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = dialog;
    });
}

/// The draft tried on sample references as they are typed; without JavaScript, "Update preview"
/// sends the form to the dialog's own address (`here`) to be shown again with the preview.
#[component]
fn SamplePreview(
    samples: RwSignal<String>,
    outcome: Memo<Result<Vec<crate::rules::PreviewLine>, String>>,
    here: String,
) -> impl IntoView {
    view! {
        <fieldset class="preview">
            <legend>"Preview on sample references"</legend>
            <label for="samples">"Sample references, one a line (" <code>"repository:tag"</code> ")"</label>
            <textarea id="samples" name="samples" rows="3" spellcheck="false"
                on:input=move |ev| samples.set(event_target_value(&ev))>{samples.get_untracked()}</textarea>
            <PreviewTable outcome/>
            <noscript>
                <button type="submit" class="button" formmethod="get" formaction=here>"Update preview"</button>
            </noscript>
        </fieldset>
    }
}

/// What the draft does to the tags the registry holds: on its own, and to the whole policy.
#[component]
fn ImpactPreview(
    impact: Signal<Option<Result<Impact, AppError>>>,
    /// Whether a newer answer is on its way.
    pending: Memo<bool>,
) -> impl IntoView {
    let examples = |counted: &Counted| {
        (!counted.examples.is_empty()).then(|| {
            let more = counted.tags > counted.examples.len() as u64;
            view! {
                <ul class="examples">
                    {counted.examples.iter().map(|reference| view! { <li class="mono">{reference.clone()}</li> }).collect_view()}
                    {more.then(|| view! { <li class="muted">"…"</li> })}
                </ul>
            }
        })
    };
    view! {
        <fieldset class="impact" aria-busy=move || pending.get().to_string()>
            <legend>"Impact on existing tags"</legend>
            // Only this part follows the answers: they never re-render the dialog around it.
            <div aria-live="polite" id="impact">
                {move || match impact.get() {
                    None => view! { <p class="muted">"Counting…"</p> }.into_any(),
                    Some(Err(error)) => view! {
                        <p class="muted" id="impact-invalid">{format!("No impact until the rule is valid: {error}")}</p>
                    }.into_any(),
                    Some(Ok(impact)) if impact.total.tags == 0 => view! {
                        <p class="muted" id="impact-none">"tagward knows no tags of this project yet."</p>
                        <p class="muted small">{impact.freshness.summary}</p>
                    }.into_any(),
                    Some(Ok(impact)) => {
                        let by_rule = impact.by_rule.clone().unwrap_or_default();
                        view! {
                            <p id="impact-rule"><strong>{format!("This rule makes {} immutable.", by_rule.phrase())}</strong></p>
                            {examples(&by_rule)}
                            {impact.locked_by_rule.filter(|locked| locked.bytes > 0 || locked.unread > 0).map(|locked| view! {
                                <p id="impact-locked">{format!(
                                    "Together they hold {}, which garbage collection will have to keep.",
                                    locked.phrase()
                                )}</p>
                            })}
                            <p id="impact-policy">{format!(
                                "With the rest of the policy: {} become immutable that are not now{}; {} immutable in all.",
                                impact.becoming_immutable.phrase(),
                                if impact.ceasing_immutable.tags > 0 {
                                    format!(", {} stop being immutable", impact.ceasing_immutable.phrase())
                                } else {
                                    String::new()
                                },
                                impact.immutable_after.phrase(),
                            )}</p>
                            {(impact.lists_becoming_append_only > 0).then(|| view! {
                                <p id="impact-lists">{format!(
                                    "{} of signatures, SBOMs or attestations (sha256-… tags) become append-only: \
                                     they keep every entry and can still gain new ones ({} append-only in all).",
                                    match impact.lists_becoming_append_only {
                                        1 => "1 attachment list".to_owned(),
                                        n => format!("{} attachment lists", thousands(n)),
                                    },
                                    thousands(impact.lists_append_only_after)
                                )}</p>
                            })}
                            {(impact.ceasing_immutable.tags > 0).then(|| view! {
                                <p class="notice" id="impact-ceasing">{format!("Stop being immutable: {}", impact.ceasing_immutable.phrase())}</p>
                                {examples(&impact.ceasing_immutable)}
                            })}
                            <p class="muted small">{format!(
                                "Of {} the inventory holds (counted in {} ms). {}",
                                impact.total.phrase(), impact.millis, impact.freshness.summary
                            )}</p>
                            {impact.freshness.problem.map(|problem| view! { <p class="notice" role="status">{problem}</p> })}
                        }.into_any()
                    }
                }}
            </div>
        </fieldset>
    }
}

/// One side of a rule in the dialog: the action and the pattern list, with its hint and its error.
/// The form fields are named as the server function's arguments (`repositories_action`, `tags`, ...).
#[component]
fn RuleSide(
    field: Field,
    /// The action as selected, starting from the value to show.
    action: RwSignal<String>,
    /// The pattern list as typed, starting from the value to show.
    patterns: RwSignal<String>,
    /// The error the last save reported for this side.
    error: Signal<Option<String>>,
    /// The hint under the fields.
    children: Children,
) -> impl IntoView {
    let name = field.as_str();
    let (legend, patterns_label) = match field {
        Field::Repositories => ("Repositories", "Repository patterns"),
        Field::Tags => ("Tags", "Tag patterns"),
    };
    let action_name = format!("{name}_action");
    let initial_action = action.get_untracked();
    view! {
        <fieldset class="rule-side">
            <legend>{legend}</legend>
            <div class="side-row">
                <label class="visually-hidden" for=action_name.clone()>{format!("{legend} action")}</label>
                <select id=action_name.clone() name=action_name
                    prop:value=move || action.get()
                    on:change=move |ev| action.set(event_target_value(&ev))>
                    <option value="matching" selected=initial_action == "matching">"matching"</option>
                    <option value="excluding" selected=initial_action == "excluding">"excluding"</option>
                </select>
                <label class="visually-hidden" for=name>{patterns_label}</label>
                <input type="text" id=name name=name autocomplete="off" spellcheck="false"
                    value=patterns.get_untracked()
                    aria-describedby=format!("{name}-hint {name}-error")
                    aria-invalid=move || error.get().is_some().to_string()
                    on:input=move |ev| patterns.set(event_target_value(&ev))/>
            </div>
            <p class="hint" id=format!("{name}-hint")>{children()}</p>
            <p class="field-error" id=format!("{name}-error") role="alert">{move || error.get()}</p>
        </fieldset>
    }
}

/// The preview's answers: immutable under the draft rule, and under the whole policy with it.
#[component]
fn PreviewTable(outcome: Memo<Result<Vec<crate::rules::PreviewLine>, String>>) -> impl IntoView {
    let rule_name = |id: i64| if id == DRAFT_RULE_ID { "this rule".to_owned() } else { format!("rule {id}") };
    view! {
        <div aria-live="polite" id="preview">
            {move || match outcome.get() {
                Err(error) => view! { <p class="muted" id="preview-invalid">{format!("No preview until the rule is valid: {error}")}</p> }.into_any(),
                Ok(lines) if lines.is_empty() => view! { <p class="muted">"Type a reference to see whether it would be immutable."</p> }.into_any(),
                Ok(lines) => view! {
                    <table class="table preview-table">
                        <thead><tr><th scope="col">"Reference"</th><th scope="col">"This rule"</th><th scope="col">"Whole policy"</th></tr></thead>
                        <tbody>
                            {lines.into_iter().map(|line| match line.outcome {
                                Err(error) => view! {
                                    <tr><td class="mono">{line.reference}</td><td colspan="2" class="field-error">{error}</td></tr>
                                }.into_any(),
                                Ok((by_draft, by)) => {
                                    let whole = if by.is_empty() {
                                        "mutable".to_owned()
                                    } else {
                                        format!("immutable ({})", by.into_iter().map(rule_name).collect::<Vec<_>>().join(", "))
                                    };
                                    view! {
                                        <tr>
                                            <td class="mono">{line.reference}</td>
                                            <td class=if by_draft { "yes" } else { "no" }>{if by_draft { "immutable" } else { "mutable" }}</td>
                                            <td>{whole}</td>
                                        </tr>
                                    }.into_any()
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any(),
            }}
        </div>
    }
}

/// Moves keyboard focus to the element with `id`, if it is on the page (in the browser; on the
/// server there is no focus to move).
fn focus_element(id: &str) -> bool {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        let element = document().get_element_by_id(id).and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok());
        element
            .is_some_and(|element| element.focus().is_ok() && document().active_element().is_some_and(|a| a.id() == id))
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = id;
        false
    }
}

//! Policy > Tag Immutability: the rule list, the Add/Edit Rule dialog with its live preview, and
//! the in-page delete confirmation. Every form works without JavaScript; with it, the dialog (the
//! page's one island) opens in place as a real modal and its previews follow the typing.

use super::rule_dialog::{DialogState, RuleEditor};
use crate::error::AppError;
use crate::format::thousands;
use crate::inventory::Impact;
use crate::policy::RuleState;
use crate::policy::MAX_RULES;
use crate::rules::{DeleteRule, RuleRow, RulesView, SaveRule, SetRuleState};
use leptos::prelude::*;
use leptos_router::components::A;

/// What the tab shows besides the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    List,
    New,
    Edit(i64),
    ConfirmDelete(i64),
}

/// A change's impact on existing tags, as the page loads it (`None` on other tabs).
pub type ImpactResource = Resource<Result<Option<Impact>, AppError>>;

#[component]
pub fn ImmutabilityTab(
    /// The project's rules, loaded by the page.
    rules: Resource<Result<RulesView, AppError>>,
    /// The impact on existing tags of the rule being added, edited or deleted, loaded by the page.
    impact: ImpactResource,
    mode: Mode,
    /// Adds or changes a rule (the dialog's form).
    save: ServerAction<SaveRule>,
    /// Enables or disables a rule.
    toggle: ServerAction<SetRuleState>,
    /// Deletes a rule, once confirmed.
    delete: ServerAction<DeleteRule>,
) -> impl IntoView {
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || rules.get().map(|result| match result {
                Err(error) => super::layout::failure(error),
                Ok(view) => view! { <RuleList view impact mode save toggle delete/> }.into_any(),
            })}
        </Suspense>
    }
}

#[component]
fn RuleList(
    view: RulesView,
    impact: ImpactResource,
    mode: Mode,
    save: ServerAction<SaveRule>,
    toggle: ServerAction<SetRuleState>,
    delete: ServerAction<DeleteRule>,
) -> impl IntoView {
    let project = view.project.name.clone();
    let manage = view.project.can_manage_rules;
    let count = view.rules.len();
    let full = count >= MAX_RULES;
    let base = format!("/projects/{project}/policy/immutability");
    let error =
        move || toggle.value().get().and_then(Result::err).or_else(|| delete.value().get().and_then(Result::err));
    let dialog = match mode {
        Mode::New if manage && !full => Some(None),
        Mode::Edit(id) if manage => view.rules.iter().find(|r| r.id == id).cloned().map(Some),
        _ => None,
    };
    let rules = view.rules.clone();
    view! {
        <super::drift::DriftNotice project=project.clone() drift=view.drift.clone() back="policy"/>
        <section class="panel" aria-labelledby="immutability-heading">
            <div class="section-head">
                <h2 id="immutability-heading">"Tag Immutability"</h2>
                <span class="counter" title="Rules in this project, of the most allowed">{format!("{count}/{MAX_RULES}")}</span>
                <div class="spacer"></div>
                {manage.then(|| if full {
                    view! {
                        <button class="button primary" id="add-rule" disabled aria-describedby="limit-reason">"Add Rule"</button>
                    }.into_any()
                } else {
                    view! {
                        <a href=format!("{base}/new") class="button primary" id="add-rule" data-rule-dialog="new">"Add Rule"</a>
                    }.into_any()
                })}
            </div>
            {(manage && full).then(|| view! {
                <p class="notice" id="limit-reason">
                    {format!("This project has {MAX_RULES} rules, the most allowed. Edit or delete one to add another.")}
                </p>
            })}
            <p class="muted intro">
                "A tag matched by any enforced rule is immutable: once pushed, it keeps pointing at the same image. "
                "Pushing a different image to it, deleting it, or deleting the image behind it is refused. "
                "Re-pushing the same image is fine."
            </p>
            {view.policy_problem.clone().map(|problem| view! {
                <p class="error" role="alert" id="policy-problem">
                    <strong>"This policy cannot be evaluated: "</strong>{problem}". "
                    "Until it is fixed, pushes that would change an existing tag of this project, and deletes, are refused. "
                    "Edit, disable or delete the rules at fault."
                </p>
            })}
            {(!manage).then(|| view! {
                <p class="notice">"You can see these rules; project admins and maintainers change them."</p>
            })}
            {move || error().map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })}
            {view.counted.clone().map(|freshness| (!view.rules.is_empty()).then(|| view! {
                <p class="muted small" id="counts-freshness">{format!("Tag counts: {}", freshness.summary)}</p>
            }))}
            {if view.rules.is_empty() {
                view! {
                    <div class="empty" id="no-rules">
                        <p>"No rules yet, so every tag of this project can be overwritten by the next push."</p>
                        <p>"A rule names repositories and tags, e.g. repositories matching " <code>"**"</code>
                           ", tags matching " <code>"v*.*.*"</code> " protects every release tag."</p>
                    </div>
                }.into_any()
            } else {
                view! {
                    <ul class="rule-list" id="rules">
                        {view.rules.into_iter().map(|rule| view! {
                            <RuleItem rule project=project.clone() manage mode impact toggle delete/>
                        }).collect_view()}
                    </ul>
                }.into_any()
            }}
        </section>
        {manage.then(|| view! { <EditorIsland project=project.clone() rules dialog impact save/> })}
    }
}

/// The rule editor island with what it starts from: the dialog open (on `/new` or `/<id>/edit`,
/// with what a failed save or the no-JavaScript preview left in the URL, and the impact the server
/// counted) or closed, ready to open in place.
#[component]
fn EditorIsland(
    project: String,
    rules: Vec<RuleRow>,
    /// The rule the dialog opens on (`Some(None)` to add one), or `None` for a closed dialog.
    dialog: Option<Option<RuleRow>>,
    impact: ImpactResource,
    save: ServerAction<SaveRule>,
) -> impl IntoView {
    let query = leptos_router::hooks::use_query_map();
    let failed = save.value().get_untracked().and_then(Result::err);
    view! {
        <Suspense fallback=|| ()>
            {move || impact.get().map(|impact| {
                let open = dialog.clone().map(|editing| DialogState::from_page(
                    editing,
                    failed.clone(),
                    &query.read_untracked(),
                    impact.transpose(),
                ));
                view! { <RuleEditor project=project.clone() rules=rules.clone() open/> }
            })}
        </Suspense>
        <super::Interactive/>
    }
}

#[component]
fn RuleItem(
    rule: RuleRow,
    project: String,
    manage: bool,
    mode: Mode,
    impact: ImpactResource,
    toggle: ServerAction<SetRuleState>,
    delete: ServerAction<DeleteRule>,
) -> impl IntoView {
    let base = format!("/projects/{project}/policy/immutability/{}", rule.id);
    let list_url = format!("/projects/{project}/policy");
    let project_for_delete = project.clone();
    let confirming = mode == Mode::ConfirmDelete(rule.id);
    let id = rule.id;
    let (state, class) = match rule.state {
        RuleState::Enforced => ("enforced", "badge ok"),
        RuleState::Evaluating => ("evaluating", "badge warn"),
        RuleState::Disabled => ("disabled", "badge off"),
    };
    // The other two states, as buttons: (state, label, what a screen reader hears).
    let moves: Vec<(RuleState, &str, String)> = match rule.state {
        RuleState::Enforced => vec![
            (RuleState::Evaluating, "Evaluate", format!("Stop enforcing rule {id} and evaluate it")),
            (RuleState::Disabled, "Disable", format!("Disable rule {id}")),
        ],
        RuleState::Evaluating => vec![
            (RuleState::Enforced, "Promote", format!("Promote rule {id} to enforced")),
            (RuleState::Disabled, "Disable", format!("Disable rule {id}")),
        ],
        RuleState::Disabled => vec![
            (RuleState::Enforced, "Enable", format!("Enable rule {id}")),
            (RuleState::Evaluating, "Evaluate", format!("Evaluate rule {id}")),
        ],
    };
    let evaluation = rule.evaluation.clone().map(|evaluation| {
        let activity = format!("/projects/{project}/activity?kind=evaluation");
        let met_some = evaluation.first.is_some();
        view! {
            <span class="rule-meta rule-evaluation" id=format!("evaluation-{id}")>
                {evaluation_sentence(&evaluation)}
                {met_some.then(|| view! { " " <a href=activity>"See them in Activity"</a> })}
            </span>
        }
    });
    view! {
        <li class="rule" class:disabled=rule.state == RuleState::Disabled class:evaluating=rule.state == RuleState::Evaluating id=format!("rule-{}", rule.id)>
            <div class="rule-main">
                <span class="rule-sentence">{rule.sentence.clone()}</span>
                <span class="rule-meta">
                    <span class=class>{state}</span>
                    {format!(" rule {} · changed by {} on {}", rule.id, rule.updated_by, rule.updated_at)}
                </span>
                {rule.protects.map(|(tags, alone)| view! {
                    <span class="rule-meta rule-protects">{format!(
                        "Protects {} existing tag{}{}",
                        thousands(tags),
                        if tags == 1 { "" } else { "s" },
                        if tags == 0 { String::new() } else if alone == tags { ", all by this rule alone".to_owned() } else {
                            format!(", {} by this rule alone (disabling it makes those mutable)", thousands(alone))
                        }
                    )}</span>
                })}
                {evaluation}
            </div>
            {(manage && !confirming).then(|| view! {
                <div class="rule-actions">
                    <a href=format!("{base}/edit") class="button" id=format!("edit-{id}") data-rule-dialog=id>"Edit"</a>
                    {moves.into_iter().map(|(to, label, aria)| { let project = project.clone(); view! {
                        <ActionForm action=toggle attr:class="inline">
                            <input type="hidden" name="project" value=project/>
                            <input type="hidden" name="rule_id" value=id/>
                            <input type="hidden" name="state" value=to.as_str()/>
                            <button type="submit" class=if to == RuleState::Enforced && rule.state == RuleState::Evaluating { "button primary" } else { "button" }
                                id=format!("{}-{id}", label.to_lowercase()) aria-label=aria>{label}</button>
                        </ActionForm>
                    }}).collect_view()}
                    <A href=format!("{base}/delete") attr:class="button danger">"Delete"</A>
                </div>
            })}
            {(manage && confirming).then(|| view! {
                <div class="confirm" role="alertdialog" aria-labelledby=format!("confirm-text-{id}")>
                    <p id=format!("confirm-text-{id}")>{format!("Delete rule {id}? Tags it protects become mutable.")}</p>
                    <Suspense fallback=|| ()>
                        {move || impact.get().and_then(Result::ok).flatten().map(|impact| view! {
                            <p class="impact-line" id="delete-impact">{ceasing_sentence(&impact)}</p>
                            <p class="impact-line small">{impact.freshness.summary.clone()}</p>
                        })}
                    </Suspense>
                    <ActionForm action=delete attr:class="inline">
                        <input type="hidden" name="project" value=project_for_delete.clone()/>
                        <input type="hidden" name="rule_id" value=id/>
                        <button type="submit" class="button danger solid" id=format!("confirm-delete-{id}") autofocus>"Delete rule"</button>
                    </ActionForm>
                    <A href=list_url.clone() attr:class="button">"Cancel"</A>
                </div>
            })}
        </li>
    }
}

/// What an evaluating rule would have denied so far, in one sentence.
fn evaluation_sentence(evaluation: &crate::rules::Evaluation) -> String {
    let plural =
        |n: i64, one: &str, many: &str| format!("{} {}", thousands(n.unsigned_abs()), if n == 1 { one } else { many });
    match (&evaluation.first, &evaluation.last) {
        (Some(first), Some(last)) => format!(
            "Evaluating: would have denied {} and {} since {first}, the last at {last}.",
            plural(evaluation.pushes, "push", "pushes"),
            plural(evaluation.deletes, "delete", "deletes"),
        ),
        _ => "Evaluating: it denies nothing, and has not yet met a push or delete it would have denied.".to_owned(),
    }
}

/// What deleting (or disabling) a rule does, in one sentence.
fn ceasing_sentence(impact: &Impact) -> String {
    let ceasing = &impact.ceasing_immutable;
    if impact.total.tags == 0 {
        return "tagward knows no tags of this project yet.".to_owned();
    }
    let examples =
        if ceasing.examples.is_empty() { String::new() } else { format!(" (e.g. {})", ceasing.examples.join(", ")) };
    format!(
        "Of {} the inventory holds, {} become mutable{examples}; {} stay immutable.",
        impact.total.phrase(),
        thousands(ceasing.tags),
        thousands(impact.immutable_after.tags)
    )
}

//! The audit trail, newest first, filterable by kind and paginated; a project's Activity tab and
//! the administration's view of every project. Filtering is a plain GET form, paging plain links.

use crate::activity::{ActivityView, Counted, DenialChart, DENIAL_DAYS, KINDS};
use crate::error::AppError;
use leptos::prelude::*;
use leptos_router::components::{Form, A};
use leptos_router::hooks::use_query_map;

/// The `kind` and `page` of the page's query, for the resource that loads the trail.
pub fn query_filter() -> impl Fn() -> (Option<String>, Option<u32>) + Clone + Send + Sync + 'static {
    let query = use_query_map();
    move || query.with(|q| (q.get("kind").filter(|k| !k.is_empty()), q.get("page").and_then(|p| p.parse().ok())))
}

#[component]
pub fn ActivityList(
    /// The trail, loaded by the page (`None` while another tab is shown).
    activity: Resource<Result<Option<ActivityView>, AppError>>,
    /// Whether to show each entry's project (the all-projects view).
    show_project: bool,
) -> impl IntoView {
    let filter = query_filter();
    let kind = Memo::new(move |_| filter().0.unwrap_or_default());
    view! {
        <section class="panel" aria-labelledby="activity-heading">
            <div class="section-head">
                <h2 id="activity-heading">"Activity"</h2>
                <div class="spacer"></div>
                <Form method="GET" action="" attr:class="row-form" attr:id="activity-filter">
                    <label for="activity-kind" class="visually-hidden">"Show"</label>
                    <select id="activity-kind" name="kind">
                        <option value="" selected=move || kind.read().is_empty()>"Everything"</option>
                        {KINDS.into_iter().map(|(value, label)| view! {
                            <option value=value selected=move || kind.read().as_str() == value>{label}</option>
                        }).collect_view()}
                    </select>
                    <button type="submit" class="button">"Filter"</button>
                </Form>
            </div>
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || activity.get().map(|result| match result {
                    Err(error) => view! { <p class="error" role="alert">{error.to_string()}</p> }.into_any(),
                    Ok(None) => ().into_any(),
                    Ok(Some(view)) if view.entries.is_empty() => view! {
                        <p class="empty" id="no-activity">"Nothing recorded yet."</p>
                    }.into_any(),
                    Ok(Some(mut view)) => {
                        let chart = view.denials.take().map(|chart| view! { <DenialsAtAGlance chart/> });
                        let kind = kind.get_untracked();
                        let link = move |page: u32| {
                            if kind.is_empty() { format!("?page={page}") } else { format!("?kind={kind}&page={page}") }
                        };
                        view! {
                            {chart}
                            <table class="table activity" id="activity">
                                <thead><tr>
                                    <th scope="col">"When"</th><th scope="col">"Who"</th>
                                    {show_project.then(|| view! { <th scope="col">"Project"</th> })}
                                    <th scope="col">"What"</th>
                                </tr></thead>
                                <tbody>
                                    {view.entries.into_iter().map(|entry| {
                                        let denial = entry.kind.starts_with("denial.");
                                        view! {
                                            <tr class:denial=denial>
                                                <td class="muted nowrap">{entry.at}</td>
                                                <td>{entry.actor}</td>
                                                {show_project.then(|| view! { <td>{entry.project.clone().unwrap_or_default()}</td> })}
                                                <td>
                                                    <span class=if denial { "badge off" } else { "badge" }>{entry.kind}</span>" "
                                                    <span class="summary">{entry.summary}</span>
                                                </td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                            <nav class="pager" aria-label="Pages">
                                {(view.page > 1).then(|| view! { <A href=link(view.page - 1) attr:rel="prev">"← Newer"</A> })}
                                <span class="muted">{format!("Page {} of {} · {} entries", view.page, view.pages, view.total)}</span>
                                {(view.page < view.pages).then(|| view! { <A href=link(view.page + 1) attr:rel="next">"Older →"</A> })}
                            </nav>
                        }.into_any()
                    }
                })}
            </Suspense>
        </section>
    }
}

/// Denials per day as bars (server-rendered SVG, no script), with the same numbers as a table for
/// screen readers, and the repositories and callers denied most.
#[component]
fn DenialsAtAGlance(chart: DenialChart) -> impl IntoView {
    if chart.total == 0 {
        return view! {
            <p class="muted" id="denial-chart-empty">{format!("No denials in the last {DENIAL_DAYS} days.")}</p>
        }
        .into_any();
    }
    // Bars of a 300 x 80 box: 30 days x 10 units, the tallest 60 high over a base line at 66.
    let most = chart.days.iter().map(|day| day.count).max().unwrap_or(1).max(1);
    let bars = chart
        .days
        .iter()
        .enumerate()
        .map(|(i, day)| {
            let height = (day.count as f64 / most as f64 * 60.0).max(if day.count > 0 { 1.5 } else { 0.0 });
            let title = format!("{}: {} denial{}", day.name, day.count, if day.count == 1 { "" } else { "s" });
            view! {
                <rect x=format!("{}", i * 10 + 1) y=format!("{:.1}", 66.0 - height) width="8"
                    height=format!("{height:.1}")><title>{title}</title></rect>
            }
        })
        .collect_view();
    let first = chart.days.first().map(|day| day.name.clone()).unwrap_or_default();
    let last = chart.days.last().map(|day| day.name.clone()).unwrap_or_default();
    let list = |title: &'static str, id: &'static str, rows: Vec<Counted>| {
        view! {
            <div class="denial-top" id=id>
                <h3>{title}</h3>
                <ol>{rows.into_iter().map(|row| view! {
                    <li><span class="name">{row.name}</span>" "<span class="muted">{row.count}</span></li>
                }).collect_view()}</ol>
            </div>
        }
    };
    view! {
        <figure class="denial-chart" id="denial-chart">
            <figcaption>{format!("Denials per day, last {DENIAL_DAYS} days: {} in all (most in a day: {most})", chart.total)}</figcaption>
            <svg viewBox="0 0 300 80" aria-hidden="true" focusable="false">
                <line x1="0" y1="66.5" x2="300" y2="66.5" class="base"></line>
                {bars}
                <text x="1" y="77">{first}</text>
                <text x="299" y="77" text-anchor="end">{last}</text>
            </svg>
            <table class="visually-hidden">
                <caption>"Denials per day"</caption>
                <thead><tr><th scope="col">"Day"</th><th scope="col">"Denials"</th></tr></thead>
                <tbody>{chart.days.into_iter().map(|day| view! {
                    <tr><th scope="row">{day.name}</th><td>{day.count}</td></tr>
                }).collect_view()}</tbody>
            </table>
        </figure>
        <div class="denial-tops">
            {list("Most denied repositories", "denied-repositories", chart.top_repositories)}
            {list("Most denied callers", "denied-callers", chart.top_callers)}
        </div>
    }
    .into_any()
}

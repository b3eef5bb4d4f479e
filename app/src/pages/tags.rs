//! A project's Tags tab: the repositories and tags the registry holds (as the inventory knows
//! them), whether each is immutable and by which rule; filtered by patterns, paged. Plain links
//! and a GET form: it works without JavaScript.

use crate::error::AppError;
use crate::format::{bytes, thousands};
use crate::inventory::{Freshness, Holding, TagRow, MAX_WEIGHED_TAGS};
use crate::tags::TagsView;
use leptos::prelude::*;
use leptos_router::components::{Form, A};
use leptos_router::hooks::use_query_map;

/// The tab's query: repository patterns, tag patterns, page.
pub fn query_filter() -> impl Fn() -> (String, String, usize) + Clone + Send + Sync + 'static {
    let query = use_query_map();
    move || {
        query.with(|q| {
            (
                q.get("repositories").unwrap_or_default(),
                q.get("tags").unwrap_or_default(),
                q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1),
            )
        })
    }
}

/// The inventory's freshness and, if the registry could not be read, the notice.
#[component]
pub fn FreshnessNote(freshness: Freshness) -> impl IntoView {
    view! {
        <p class="muted freshness" id="freshness">{freshness.summary}</p>
        {freshness.problem.map(|problem| view! { <p class="notice" role="status" id="registry-problem">{problem}</p> })}
    }
}

#[component]
pub fn TagsTab(
    /// The tags, loaded by the page (`None` while another tab is shown).
    tags: Resource<Result<Option<TagsView>, AppError>>,
) -> impl IntoView {
    let filter = query_filter();
    let panel = |content: AnyView| {
        view! {
            <section class="panel" aria-labelledby="tags-heading">
                <div class="section-head">
                    <h2 id="tags-heading">"Tags"</h2>
                </div>
                {content}
            </section>
        }
    };
    view! {
        <Suspense fallback=move || panel(view! { <p class="muted">"Loading…"</p> }.into_any())>
            {move || tags.get().map(|result| match result {
                Err(error) => panel(view! { <p class="error" role="alert">{error.to_string()}</p> }.into_any()).into_any(),
                Ok(None) => ().into_any(),
                Ok(Some(view)) => {
                    let (repositories, tag_patterns, _) = filter();
                    let (project, drift) = (view.project.name.clone(), view.drift.clone());
                    view! {
                        <super::drift::DriftNotice project drift back="tags"/>
                        {panel(view! { <TagsTable view repositories tag_patterns/> }.into_any())}
                    }
                    .into_any()
                }
            })}
        </Suspense>
    }
}

#[component]
fn TagsTable(view: TagsView, repositories: String, tag_patterns: String) -> impl IntoView {
    let encode = |text: &str| percent_encode(text);
    let link = {
        let (repositories, tag_patterns) = (encode(&repositories), encode(&tag_patterns));
        move |page: usize| format!("?repositories={repositories}&tags={tag_patterns}&page={page}")
    };
    let project = view.project.name.clone();
    // Project admins and system administrators (who may manage members) may grant exceptions.
    let can_grant = view.project.can_manage_members;
    let filtered = !repositories.trim().is_empty() || !tag_patterns.trim().is_empty();
    let summary = if filtered && view.filter_error.is_none() {
        format!(
            "{} match the filter ({} immutable), of {} in all.",
            view.matched.phrase(),
            thousands(view.immutable),
            view.total.phrase()
        )
    } else {
        format!("{} ({} immutable).", view.total.phrase(), thousands(view.immutable))
    };
    view! {
        <FreshnessNote freshness=view.freshness.clone()/>
        <TagsFilter repositories=repositories.clone() tag_patterns=tag_patterns.clone() filtered/>
        <p class="hint">"Patterns as in a rule: comma-separated, " <code>"*"</code> " within a segment, " <code>"**"</code> " anything."</p>
        {view.filter_error.clone().map(|error| view! { <p class="error" role="alert" id="filter-error">{format!("Not filtered: {error}")}</p> })}
        {view.policy_problem.clone().map(|problem| view! {
            <p class="error" role="alert">{format!("The policy cannot be evaluated ({problem}), so no tag is shown as immutable or mutable.")}</p>
        })}
        <p id="tags-summary">{summary}</p>
        {(view.attachment_lists > 0).then(|| view! {
            <p class="muted" id="tags-lists">{match view.attachment_lists {
                1 => "1 attachment list (a sha256-… tag) is not listed as a tag: it holds signatures, SBOMs or \
                      attestations of another tag's image, shown with that tag. While an immutable tag holds the \
                      image, the list only grows.".to_owned(),
                n => format!(
                    "{} attachment lists (sha256-… tags) are not listed as tags: they hold the signatures, SBOMs and \
                     attestations of other tags' images, shown with those tags. While an immutable tag holds an \
                     image, its lists only grow.",
                    thousands(n)
                ),
            }}</p>
        })}
        {match view.locked {
            Some(locked) if locked.bytes > 0 || locked.unread > 0 => Some(view! {
                <p id="tags-locked">{format!(
                    "Immutable tags keep {} from garbage collection: every layer, config, platform image and \
                     signature they hold stays, so leave them out of retention and clean-up plans.",
                    locked.phrase()
                )}</p>
            }.into_any()),
            None => Some(view! {
                <p class="muted" id="tags-locked">{format!(
                    "More than {} immutable tags: what they keep from garbage collection is not weighed here.",
                    thousands(MAX_WEIGHED_TAGS as u64)
                )}</p>
            }.into_any()),
            _ => None,
        }}
        {if view.rows.is_empty() {
            view! {
                <p class="empty" id="no-tags">{if view.total.tags == 0 {
                    "tagward knows no tags of this project yet.".to_owned()
                } else if view.page > view.pages {
                    format!("There is no page {}: the last is page {}.", view.page, view.pages)
                } else {
                    "No tag matches the filter.".to_owned()
                }}</p>
            }.into_any()
        } else {
            let policy_broken = view.policy_problem.is_some();
            view! {
                <table class="table tags" id="tags">
                    <thead><tr>
                        <th scope="col">"Repository"</th><th scope="col">"Tag"</th><th scope="col">"Digest"</th>
                        <th scope="col" title="When the tag came to point at this digest: the push through tagward's gateway, or when a sync first found it">"Pushed or found"</th><th scope="col">"Immutable"</th>
                    </tr></thead>
                    <tbody>
                        {view.rows.into_iter().map(|row| view! {
                            <TagRowView row project=project.clone() can_grant policy_broken/>
                        }).collect_view()}
                    </tbody>
                </table>
                <nav class="pager" aria-label="Pages">
                    {(view.page > 1).then(|| view! { <A href=link(view.page - 1) attr:rel="prev">"← Previous"</A> })}
                    <span class="muted">{format!("Page {} of {}", view.page, view.pages)}</span>
                    {(view.page < view.pages).then(|| view! { <A href=link(view.page + 1) attr:rel="next">"Next →"</A> })}
                </nav>
            }.into_any()
        }}
    }
}

/// The Tags tab's filter: repository and tag patterns, a plain GET form.
#[component]
fn TagsFilter(repositories: String, tag_patterns: String, filtered: bool) -> impl IntoView {
    view! {
        <Form method="GET" action="" attr:class="filter-row" attr:id="tags-filter">
            <div>
                <label for="filter-repositories">"Repositories"</label>
                <input type="text" id="filter-repositories" name="repositories" value=repositories.clone()
                    placeholder="e.g. app, team/**" autocomplete="off" spellcheck="false"/>
            </div>
            <div>
                <label for="filter-tags">"Tags"</label>
                <input type="text" id="filter-tags" name="tags" value=tag_patterns.clone()
                    placeholder="e.g. v*, release-*" autocomplete="off" spellcheck="false"/>
            </div>
            <button type="submit" class="button">"Filter"</button>
            {filtered.then(|| view! { <A href="?" attr:class="button">"Clear"</A> })}
        </Form>
    }
}

/// One tag of the Tags tab: where it points, since when and how tagward learnt it, and what makes
/// it immutable (with what it holds, and the way to allow one change for those who may).
#[component]
fn TagRowView(row: TagRow, project: String, can_grant: bool, policy_broken: bool) -> impl IntoView {
    let rule_link = |project: &str, id: i64| format!("/projects/{project}/policy#rule-{id}");
    let short = crate::format::short_digest(&row.digest);
    let allow_one = format!(
        "/projects/{project}/exceptions/new?repository={}&target={}",
        percent_encode(&format!("{project}/{}", row.repository)),
        percent_encode(&row.tag)
    );
    let allow_label = format!("Allow one change of {project}/{}:{}…", row.repository, row.tag);
    view! {
        <tr>
            <td class="mono">{row.repository}</td>
            <td class="mono">{row.tag}</td>
            <td class="mono" title=row.digest.clone()>{short}</td>
            <td class="muted nowrap">{row.pushed_at}<br/>
                <span class="small">{match row.source.as_str() {
                    "gateway" => "pushed through the gateway",
                    "event" => "reported by the registry",
                    _ => "found by a sync",
                }}</span>
            </td>
            <td>{if policy_broken {
                view! { <span class="muted">"unknown"</span> }.into_any()
            } else if row.immutable_by.is_empty() {
                view! { <span class="badge">"mutable"</span> }.into_any()
            } else {
                view! {
                    <span class="badge ok">"immutable"</span>" by "
                    {row.immutable_by.into_iter().enumerate().map(|(i, id)| view! {
                        {(i > 0).then_some(", ")}
                        <a href=rule_link(&project, id)>{format!("rule {id}")}</a>
                    }).collect_view()}
                    {row.holds.map(|holds| view! { <br/><span class="small muted holds">{holding(&holds)}</span> })}
                    {can_grant.then(|| view! {
                        <br/><a class="small allow-one" href=allow_one aria-label=allow_label>"Allow one change…"</a>
                    })}
                }.into_any()
            }}</td>
        </tr>
    }
}

/// What an immutable tag holds, in a few words: "holds 2 platforms (linux/amd64, linux/arm64),
/// 3.1 MiB; attached: 2 signatures, 1 SBOM".
fn holding(holds: &Holding) -> String {
    if holds.unread >= holds.manifests {
        return "what it holds is not read yet".to_owned();
    }
    let mut parts = Vec::new();
    if !holds.platforms.is_empty() {
        let n = holds.platforms.len();
        parts.push(format!("{n} platform{} ({})", if n == 1 { "" } else { "s" }, holds.platforms.join(", ")));
    }
    if holds.attachments.is_empty() && holds.referrers > 0 {
        parts.push(format!("{} referrer{}", holds.referrers, if holds.referrers == 1 { "" } else { "s" }));
    }
    parts.push(bytes(holds.bytes));
    if holds.unread > 0 {
        parts.push(format!("{} manifest{} not read yet", holds.unread, if holds.unread == 1 { "" } else { "s" }));
    }
    let attached: Vec<String> = holds.attachments.iter().map(|(kind, n)| kind.counted(*n)).collect();
    if attached.is_empty() {
        format!("holds {}", parts.join(", "))
    } else {
        format!("holds {}; attached: {}", parts.join(", "), attached.join(", "))
    }
}

/// `text` for a query string value.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

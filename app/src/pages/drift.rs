//! The notice the Policy and Tags tabs show while immutable tags of the project have changed
//! behind tagward's back: each one, and (for those who manage rules) Restore and Acknowledge.
//! Plain forms: they work without JavaScript.

use crate::drift::{AcknowledgeDrift, DriftView, RestoreDrift};
use crate::format::short_digest as short;
use leptos::prelude::*;

#[component]
pub fn DriftNotice(
    project: String,
    drift: DriftView,
    /// The tab the forms return to: `policy` or `tags`.
    back: &'static str,
) -> impl IntoView {
    let acknowledge = ServerAction::<AcknowledgeDrift>::new();
    let restore = ServerAction::<RestoreDrift>::new();
    let error =
        move || restore.value().get().and_then(Result::err).or_else(|| acknowledge.value().get().and_then(Result::err));
    let count = drift.rows.len();
    let DriftView { rows, can_manage, can_restore } = drift;
    (count > 0).then(|| view! {
        <section class="panel drift" aria-labelledby="drift-heading" id="drift">
            <h2 id="drift-heading">{if count == 1 {
                "1 immutable tag changed behind tagward's back".to_owned()
            } else {
                format!("{count} immutable tags changed behind tagward's back")
            }}</h2>
            <p class="small">
                "A registry event or the inventory sync found these immutable tags moved to another image or deleted, "
                "by a push or delete that did not go through tagward. Restore puts the image tagward held back on the "
                "tag; Acknowledge keeps the registry as it is. Either is recorded in the Activity tab."
            </p>
            {(can_manage && !can_restore).then(|| view! {
                <p class="small muted" id="drift-no-registry">
                    "Restore needs the registry's address and credentials (TAGWARD_REGISTRY_URL); none is configured."
                </p>
            })}
            {move || error().map(|e| view! { <p class="error" role="alert" id="drift-error">{e.to_string()}</p> })}
            <table class="table" id="drift-table">
                <thead><tr>
                    <th scope="col">"Tag"</th><th scope="col">"Held"</th><th scope="col">"Found"</th>
                    <th scope="col">"Found by"</th>
                    {can_manage.then(|| view! { <th scope="col"><span class="visually-hidden">"Actions"</span></th> })}
                </tr></thead>
                <tbody>
                    {rows.into_iter().map(|row| {
                        let (for_restore, for_acknowledge) = (project.clone(), project.clone());
                        let id = row.id;
                        view! {
                            <tr id=format!("drift-{id}")>
                                <td>{format!("{}:{}", row.repository, row.tag)}</td>
                                <td><code title=row.held.clone()>{short(&row.held)}</code></td>
                                <td>{match &row.found {
                                    Some(found) => view! { <code title=found.clone()>{short(found)}</code> }.into_any(),
                                    None => view! { <span>"deleted"</span> }.into_any(),
                                }}</td>
                                <td>{format!("{}, {}", row.found_by, row.found_at)}</td>
                                {can_manage.then(|| view! {
                                    <td><div class="row-actions">
                                        <ActionForm action=restore attr:class="inline">
                                            <input type="hidden" name="project" value=for_restore/>
                                            <input type="hidden" name="drift_id" value=id/>
                                            <input type="hidden" name="back" value=back/>
                                            <button type="submit" class="button primary" id=format!("restore-{id}")
                                                disabled=!can_restore
                                                aria-describedby=(!can_restore).then_some("drift-no-registry")>
                                                "Restore"
                                            </button>
                                        </ActionForm>
                                        <ActionForm action=acknowledge attr:class="inline">
                                            <input type="hidden" name="project" value=for_acknowledge/>
                                            <input type="hidden" name="drift_id" value=id/>
                                            <input type="hidden" name="back" value=back/>
                                            <button type="submit" class="button" id=format!("acknowledge-{id}")>"Acknowledge"</button>
                                        </ActionForm>
                                    </div></td>
                                })}
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </section>
    })
}

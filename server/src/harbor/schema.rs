//! The Harbor-compatible API's exact request shapes, for the OpenAPI document (the handlers read
//! looser ones, so that their errors can name the field at fault).

use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

/// Harbor's `{project_name_or_id}`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct ProjectNameOrId {
    /// The project's name, or its id (a name when `X-Is-Resource-Name: true`).
    project_name_or_id: String,
}

/// What any operation of the Harbor-compatible API may answer instead of its result.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum HarborRefusals {
    /// A parameter does not parse; the message names it.
    #[response(status = 400)]
    BadRequest(super::HarborErrors),
    /// No valid credentials.
    #[response(status = 401, headers(("WWW-Authenticate" = String)))]
    Unauthorized(super::HarborErrors),
    /// The token lacks the scope (the message names it), or the request is cross-site.
    #[response(status = 403)]
    Forbidden(super::HarborErrors),
    /// Too many password attempts, or too many being checked.
    #[response(status = 429, headers(("Retry-After" = i64)))]
    TooManyRequests(super::HarborErrors),
}

/// What the Harbor-compatible API may answer to a body besides [`HarborRefusals`].
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum BodyRefusals {
    /// An identical rule exists.
    #[response(status = 409)]
    Conflict(super::HarborErrors),
    /// The body is too large.
    #[response(status = 413)]
    TooLarge(super::HarborErrors),
    /// The body is not `application/json`.
    #[response(status = 415)]
    UnsupportedMediaType(super::HarborErrors),
}

/// Harbor's `X-Is-Resource-Name` header.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct ResourceName {
    /// `true`: `project_name_or_id` is a name even if it looks like a number.
    #[serde(default, rename = "X-Is-Resource-Name")]
    x_is_resource_name: bool,
}

/// A rule as Harbor's clients send it: one tag selector and one repository selector, both
/// `doublestar`. Patterns are tagward's (a comma list, or Harbor's `{a,b}`); one that does not
/// parse is answered 400 naming the field, as is a body whose `id` differs from the path's.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct NewImmutableRule {
    id: Option<i64>,
    priority: Option<i64>,
    disabled: Option<bool>,
    #[schema(inline)]
    action: Option<Action>,
    #[schema(inline)]
    template: Option<Template>,
    #[schema(value_type = Option<Object>)]
    params: Option<serde_json::Map<String, serde_json::Value>>,
    #[schema(min_items = 1, max_items = 1)]
    tag_selectors: Vec<TagSelector>,
    scope_selectors: ScopeSelectors,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum Action {
    Immutable,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum Template {
    ImmutableTemplate,
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct TagSelector {
    #[schema(inline)]
    kind: Doublestar,
    #[schema(inline)]
    decoration: TagDecoration,
    /// Tag patterns, e.g. `v*` or `{rc,test}`.
    #[schema(min_length = 1)]
    pattern: String,
    extras: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct RepositorySelector {
    #[schema(inline)]
    kind: Doublestar,
    #[schema(inline)]
    decoration: RepositoryDecoration,
    /// Repository patterns inside the project, e.g. `**` or `team/**`.
    #[schema(min_length = 1)]
    pattern: String,
    extras: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct ScopeSelectors {
    #[schema(min_items = 1, max_items = 1)]
    repository: Vec<RepositorySelector>,
    /// Other scopes are read and ignored, as Harbor does.
    #[serde(flatten)]
    others: std::collections::HashMap<String, Vec<super::ImmutableSelector>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum Doublestar {
    Doublestar,
}

#[derive(Deserialize, ToSchema)]
enum TagDecoration {
    #[serde(rename = "matches")]
    Matches,
    #[serde(rename = "excludes")]
    Excludes,
}

#[derive(Deserialize, ToSchema)]
enum RepositoryDecoration {
    #[serde(rename = "repoMatches")]
    Matches,
    #[serde(rename = "repoExcludes")]
    Excludes,
}

//! Harbor's API for tag immutability rules (`/api/v2.0/...`), so Harbor's Terraform provider,
//! generated Harbor clients and harbor-cli manage tagward's rules unchanged — validated by the same
//! engine and stored by the same transaction as the portal's, which Harbor itself does not do.

mod auth;
mod error;
mod schema;

pub use auth::{Caller, CredentialCache};
use error::method_not_allowed;

type Path<T> = crate::extract::Checked<axum::extract::Path<T>, HarborError>;
type Query<T> = crate::extract::Checked<axum::extract::Query<T>, HarborError>;
pub use error::{HarborError, HarborErrors};

use crate::enforcement::Enforcer;
use app::policy::{RuleInput, RuleSpec, RuleState};
use app::state::LoginThrottle;
use app::store::{self, RuleChange};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::Arc;
use utoipa::OpenApi;

#[derive(Clone)]
pub struct HarborState {
    pub pool: PgPool,
    pub enforcer: Enforcer,
    pub credentials: Arc<CredentialCache>,
    /// The portal's throttle: one count of password attempts, whichever door they come through.
    pub throttle: Arc<LoginThrottle>,
    /// The portal's directory: its users log in with HTTP Basic as they do at the login form.
    pub directory: Option<Arc<dyn app::state::PasswordDirectory>>,
    pub trusted_proxies: Arc<Vec<ipnet::IpNet>>,
}

impl HarborState {
    pub fn new(pool: PgPool, enforcer: Enforcer, portal: &app::state::AppState) -> Self {
        Self {
            pool,
            enforcer,
            credentials: Arc::new(CredentialCache::default()),
            throttle: portal.login_throttle.clone(),
            directory: portal.directory.clone(),
            trusted_proxies: portal.trusted_proxies.clone(),
        }
    }
}

pub fn router(state: HarborState) -> Router {
    Router::new()
        .route("/api/v2.0/projects", get(list_projects))
        .route("/api/v2.0/projects/{project}", get(get_project))
        .route("/api/v2.0/projects/{project}/immutabletagrules", get(list_rules).post(create_rule))
        .route(
            "/api/v2.0/projects/{project}/immutabletagrules/{id}",
            axum::routing::put(update_rule).delete(delete_rule),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// A request body that must be JSON. Browsers remember Basic credentials and send them along with
/// requests other sites make, and a cross-site form or `text/plain` post cannot be JSON without a
/// CORS preflight, which this API never grants (cross-site requests are refused by [`Caller`] too).
pub struct JsonBody(Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for JsonBody {
    type Rejection = HarborError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, HarborError> {
        let json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(HarborError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the body must be `Content-Type: application/json`",
            ));
        }
        let crate::extract::Body(bytes, _) = crate::extract::Body::<HarborError>::from_request(request, state).await?;
        Ok(Self(bytes))
    }
}

/// Harbor's `page` and `page_size` (1 and 10 by default, at most 100 a page).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Paging {
    #[param(minimum = 1, maximum = 1_000_000)]
    pub page: Option<i64>,
    #[param(minimum = 1, maximum = 100)]
    pub page_size: Option<i64>,
}

/// Pages past this are refused (a client paging that far is lost, not listing).
const MAX_PAGE: i64 = 1_000_000;

impl Paging {
    fn resolve(&self) -> Result<(usize, usize), HarborError> {
        let page = self.page.unwrap_or(1);
        let size = self.page_size.unwrap_or(10);
        if !(1..=MAX_PAGE).contains(&page) {
            return Err(HarborError::bad_request(format!("page: must be 1 to {MAX_PAGE}, got {page}")));
        }
        if !(1..=100).contains(&size) {
            return Err(HarborError::bad_request(format!("page_size: must be 1 to 100, got {size}")));
        }
        Ok((page as usize, size as usize))
    }

    /// One page of `items`, with Harbor's `X-Total-Count` and `Link` headers.
    fn apply<T>(&self, path: &str, items: Vec<T>) -> Result<(HeaderMap, Vec<T>), HarborError> {
        let (page, size) = self.resolve()?;
        let total = items.len();
        let mut headers = HeaderMap::new();
        headers.insert("x-total-count", HeaderValue::from(total));
        let link = |page: usize, rel: &str| format!("<{path}?page={page}&page_size={size}>; rel=\"{rel}\"");
        let mut links = Vec::new();
        if page > 1 {
            links.push(link(page - 1, "prev"));
        }
        // Saturating: `page` may be anything up to i64::MAX.
        if page.saturating_mul(size) < total {
            links.push(link(page + 1, "next"));
        }
        if let Ok(value) = HeaderValue::from_str(&links.join(" , ")) {
            if !links.is_empty() {
                headers.insert(header::LINK, value);
            }
        }
        Ok((headers, items.into_iter().skip((page - 1).saturating_mul(size)).take(size).collect()))
    }
}

/// A project as Harbor describes it (the fields clients read to resolve one).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HarborProject {
    pub project_id: i64,
    pub name: String,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// The caller's role in the project, Harbor's numbering (1 admin, 2 developer, 3 guest, 4 maintainer).
    pub current_user_role_id: i64,
}

fn harbor_project(access: app::account::ProjectAccess) -> HarborProject {
    use app::account::Role;
    let role = match access.role {
        Some(Role::Admin) => 1,
        Some(Role::Developer) => 2,
        Some(Role::Guest) => 3,
        Some(Role::Maintainer) => 4,
        None => 0,
    };
    HarborProject {
        project_id: access.id,
        name: access.name,
        metadata: serde_json::json!({ "public": "false" }),
        current_user_role_id: role,
    }
}

/// The projects the caller can see.
#[utoipa::path(get, path = "/api/v2.0/projects", params(Paging), tag = "harbor",
    responses(
        (status = 200, description = "The projects the caller can see", body = Vec<HarborProject>,
            headers(("X-Total-Count" = i64), ("Link" = String, description = "`rel=\"prev\"`/`rel=\"next\"` pages"))),
        schema::HarborRefusals,
    ),
    security(("basic" = []), ("bearer" = ["rules:read"])))]
async fn list_projects(
    State(state): State<HarborState>,
    caller: Caller,
    crate::extract::Checked(axum::extract::Query(paging), _): Query<Paging>,
) -> Result<impl IntoResponse, HarborError> {
    caller.0.may_read_rules()?;
    let projects = store::visible_projects(&state.pool, &caller.0).await?;
    let (headers, page) = paging.apply("/api/v2.0/projects", projects.into_iter().map(harbor_project).collect())?;
    Ok((headers, Json(page)))
}

/// Resolves `{project_name_or_id}` as Harbor does: a name when `X-Is-Resource-Name: true` or when
/// it is not a number, else an id. Not visible and not existing are both 404.
async fn project(
    state: &HarborState,
    caller: &Caller,
    headers: &HeaderMap,
    name_or_id: &str,
) -> Result<app::account::ProjectAccess, HarborError> {
    let by_name = match headers.get("x-is-resource-name").map(|v| v.to_str().unwrap_or_default()) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(HarborError::bad_request(format!(
                "X-Is-Resource-Name: must be `true` or `false`, got `{other}`"
            )))
        }
    };
    let name = match name_or_id.parse::<i64>() {
        Ok(id) if !by_name => store::project_name(&state.pool, id).await?.unwrap_or_default(),
        _ => name_or_id.to_owned(),
    };
    caller.0.may_read_rules()?;
    // A token limited to other projects is told so (it knows its grant; nothing leaks).
    caller.0.may_reach(&name)?;
    let access = store::visible_project(&state.pool, &caller.0, &name)
        .await?
        .ok_or_else(|| HarborError::new(StatusCode::NOT_FOUND, format!("project {name_or_id} not found")))?;
    Ok(access)
}

#[utoipa::path(get, path = "/api/v2.0/projects/{project_name_or_id}", tag = "harbor",
    params(schema::ProjectNameOrId, schema::ResourceName),
    responses(
        (status = 200, description = "The project", body = HarborProject),
        schema::HarborRefusals,
        (status = 404, description = "No such project, or not visible to the caller", body = HarborErrors),
    ),
    security(("basic" = []), ("bearer" = ["rules:read"])))]
async fn get_project(
    State(state): State<HarborState>,
    caller: Caller,
    headers: HeaderMap,
    crate::extract::Checked(axum::extract::Path(name_or_id), _): Path<String>,
) -> Result<Json<HarborProject>, HarborError> {
    Ok(Json(harbor_project(project(&state, &caller, &headers, &name_or_id).await?)))
}

/// Harbor's `ImmutableRule`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImmutableRule {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub priority: Option<i64>,
    #[serde(default)]
    pub disabled: Option<bool>,
    /// Always `immutable`.
    #[serde(default)]
    pub action: Option<String>,
    /// Always `immutable_template`.
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub params: Option<serde_json::Map<String, serde_json::Value>>,
    pub tag_selectors: Vec<ImmutableSelector>,
    /// `{"repository": [selector]}`
    pub scope_selectors: HashMap<String, Vec<ImmutableSelector>>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImmutableSelector {
    /// Always `doublestar`.
    pub kind: String,
    /// `repoMatches` / `repoExcludes` (repositories), `matches` / `excludes` (tags).
    pub decoration: String,
    /// One pattern, or Harbor's brace list `{a,b,c}`.
    pub pattern: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extras: Option<String>,
}

/// Harbor writes a list as one brace pattern, `{rc,test,nightly}`; tagward as a comma list.
fn from_harbor(pattern: &str) -> String {
    let pattern = pattern.trim();
    let Some(inner) = pattern.strip_prefix('{').and_then(|p| p.strip_suffix('}')) else {
        return pattern.to_owned();
    };
    // Only when the outer braces are one group around the whole pattern (not `{a,b}-x-{c,d}`).
    let mut depth = 0i32;
    for c in inner.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return pattern.to_owned();
        }
    }
    inner.to_owned()
}

fn to_harbor(selector: &app::policy::Selector) -> String {
    let patterns: Vec<&str> = selector.patterns().iter().map(|p| p.as_str()).collect();
    match patterns.as_slice() {
        [one] => (*one).to_owned(),
        many => format!("{{{}}}", many.join(",")),
    }
}

/// A rule in Harbor's shape: its input as stored, written from the parsed rule when it parses.
/// Harbor has only on and off: an evaluating rule is not `disabled` (it runs), and a Harbor
/// client's update that leaves `disabled: false` leaves it evaluating.
fn immutable_rule(id: i64, state: RuleState, input: &RuleInput, spec: Option<&RuleSpec>) -> ImmutableRule {
    let selector = |decoration: &str, pattern: String| ImmutableSelector {
        kind: "doublestar".into(),
        decoration: decoration.into(),
        pattern,
        extras: None,
    };
    let (repositories, tags) = match spec {
        Some(spec) => (to_harbor(spec.repositories()), to_harbor(spec.tags())),
        None => (input.repositories.clone(), input.tags.clone()),
    };
    let repo_decoration = if input.repositories_action == "excluding" { "repoExcludes" } else { "repoMatches" };
    let tag_decoration = if input.tags_action == "excluding" { "excludes" } else { "matches" };
    ImmutableRule {
        id: Some(id),
        priority: Some(0),
        disabled: Some(state == RuleState::Disabled),
        action: Some("immutable".into()),
        template: Some("immutable_template".into()),
        params: Some(serde_json::Map::new()),
        tag_selectors: vec![selector(tag_decoration, tags)],
        scope_selectors: HashMap::from([("repository".to_owned(), vec![selector(repo_decoration, repositories)])]),
    }
}

/// The one `doublestar` selector of a selector list (Harbor's UI makes exactly one).
fn one<'a>(field: &str, selectors: Option<&'a Vec<ImmutableSelector>>) -> Result<&'a ImmutableSelector, HarborError> {
    match selectors.map(Vec::as_slice) {
        Some([selector]) if selector.kind == "doublestar" => Ok(selector),
        Some([selector]) => {
            Err(HarborError::bad_request(format!("{field}[0].kind: must be `doublestar`, got `{}`", selector.kind)))
        }
        _ => Err(HarborError::bad_request(format!("{field}: exactly one selector is needed"))),
    }
}

/// Harbor's JSON as a validated rule: the rule, whether it is disabled, and the id the body names.
struct ParsedRule {
    spec: RuleSpec,
    disabled: bool,
    id: Option<i64>,
}

/// Parses Harbor's JSON into a validated rule; errors name the field.
fn parse_rule(body: &Bytes) -> Result<ParsedRule, HarborError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    let rule: ImmutableRule = serde_path_to_error::deserialize(deserializer)
        .map_err(|e| HarborError::bad_request(format!("{}: {}", e.path(), e.inner())))?;
    if let Some(action) = rule.action.as_deref().filter(|a| *a != "immutable") {
        return Err(HarborError::bad_request(format!("action: must be `immutable`, got `{action}`")));
    }
    if let Some(template) = rule.template.as_deref().filter(|t| *t != "immutable_template") {
        return Err(HarborError::bad_request(format!("template: must be `immutable_template`, got `{template}`")));
    }
    let repository = one("scope_selectors.repository", rule.scope_selectors.get("repository"))?;
    let tag = one("tag_selectors", Some(&rule.tag_selectors))?;
    let repositories_action = match repository.decoration.as_str() {
        "repoMatches" => "matching",
        "repoExcludes" => "excluding",
        other => {
            return Err(HarborError::bad_request(format!(
                "scope_selectors.repository[0].decoration: must be `repoMatches` or `repoExcludes`, got `{other}`"
            )))
        }
    };
    let tags_action = match tag.decoration.as_str() {
        "matches" => "matching",
        "excludes" => "excluding",
        other => {
            return Err(HarborError::bad_request(format!(
                "tag_selectors[0].decoration: must be `matches` or `excludes`, got `{other}`"
            )))
        }
    };
    let input = RuleInput {
        repositories_action: repositories_action.into(),
        repositories: from_harbor(&repository.pattern),
        tags_action: tags_action.into(),
        tags: from_harbor(&tag.pattern),
    };
    let spec = RuleSpec::parse(&input).map_err(|errors| HarborError::bad_request(errors.to_string()))?;
    Ok(ParsedRule { spec, disabled: rule.disabled.unwrap_or(false), id: rule.id })
}

/// The project's rules, Harbor's shape.
#[utoipa::path(get, path = "/api/v2.0/projects/{project_name_or_id}/immutabletagrules", tag = "harbor",
    params(schema::ProjectNameOrId, schema::ResourceName, Paging),
    responses(
        (status = 200, description = "The project's rules", body = Vec<ImmutableRule>,
            headers(("X-Total-Count" = i64), ("Link" = String, description = "`rel=\"prev\"`/`rel=\"next\"` pages"))),
        schema::HarborRefusals,
        (status = 404, description = "No such project, or not visible to the caller", body = HarborErrors),
    ),
    security(("basic" = []), ("bearer" = ["rules:read"])))]
async fn list_rules(
    State(state): State<HarborState>,
    caller: Caller,
    headers: HeaderMap,
    crate::extract::Checked(axum::extract::Path(name_or_id), _): Path<String>,
    crate::extract::Checked(axum::extract::Query(paging), _): Query<Paging>,
) -> Result<impl IntoResponse, HarborError> {
    let access = project(&state, &caller, &headers, &name_or_id).await?;
    let rules: Vec<ImmutableRule> = store::project_rules(&state.pool, access.id)
        .await?
        .iter()
        .map(|rule| immutable_rule(rule.id, rule.state, &rule.input, rule.spec.as_ref().ok()))
        .collect();
    let path = format!("/api/v2.0/projects/{name_or_id}/immutabletagrules");
    let (headers, page) = paging.apply(&path, rules)?;
    Ok((headers, Json(page)))
}

/// The project, if the caller may change its rules (admins and maintainers, system admins,
/// tokens with `rules:write`); asked here before the body is read, and again by the store.
async fn managed_project(
    state: &HarborState,
    caller: &Caller,
    headers: &HeaderMap,
    name_or_id: &str,
) -> Result<app::account::ProjectAccess, HarborError> {
    caller.0.may_write_rules()?;
    let access = project(state, caller, headers, name_or_id).await?;
    caller.0.may_change_rules(&access.name, access.role)?;
    Ok(access)
}

/// Adds a rule: 201 with its `Location`; 400 for a bad pattern or a 16th rule; 409 for a duplicate.
#[utoipa::path(post, path = "/api/v2.0/projects/{project_name_or_id}/immutabletagrules", tag = "harbor",
    params(schema::ProjectNameOrId, schema::ResourceName),
    request_body = schema::NewImmutableRule,
    responses(
        (status = 201, description = "Created; `Location` is its URL, the body the rule as stored", body = ImmutableRule,
            headers(("Location" = String))),
        schema::HarborRefusals,
        (status = 404, description = "No such project (or rule), or not visible to the caller", body = HarborErrors),
        schema::BodyRefusals,
    ),
    security(("basic" = []), ("bearer" = ["rules:write"])))]
async fn create_rule(
    State(state): State<HarborState>,
    caller: Caller,
    headers: HeaderMap,
    crate::extract::Checked(axum::extract::Path(name_or_id), _): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, HarborError> {
    let access = managed_project(&state, &caller, &headers, &name_or_id).await?;
    let rule = parse_rule(&body)?;
    let change = RuleChange::Create(&rule.spec, if rule.disabled { RuleState::Disabled } else { RuleState::Enforced });
    let id = store::change_rules(&state.pool, &caller.0, access.id, change).await?;
    let location = format!("/api/v2.0/projects/{name_or_id}/immutabletagrules/{id}");
    // Harbor answers with `Location` only; the rule in the body is extra (its clients ignore it)
    // and lets a client, or an OpenAPI link, go on with the id. It is what was stored.
    let created = immutable_rule(
        id,
        if rule.disabled { RuleState::Disabled } else { RuleState::Enforced },
        &rule.spec.to_input(),
        Some(&rule.spec),
    );
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(created)))
}

/// Changes a rule's patterns and whether it is disabled.
#[utoipa::path(put, path = "/api/v2.0/projects/{project_name_or_id}/immutabletagrules/{immutable_rule_id}", tag = "harbor",
    params(schema::ProjectNameOrId, schema::ResourceName, ("immutable_rule_id" = i64, Path, description = "The rule's id")),
    request_body = schema::NewImmutableRule,
    responses(
        (status = 200, description = "Changed"),
        schema::HarborRefusals,
        (status = 404, description = "No such project (or rule), or not visible to the caller", body = HarborErrors),
        schema::BodyRefusals,
    ),
    security(("basic" = []), ("bearer" = ["rules:write"])))]
async fn update_rule(
    State(state): State<HarborState>,
    caller: Caller,
    headers: HeaderMap,
    crate::extract::Checked(axum::extract::Path((name_or_id, id)), _): Path<(String, i64)>,
    JsonBody(body): JsonBody,
) -> Result<StatusCode, HarborError> {
    let access = managed_project(&state, &caller, &headers, &name_or_id).await?;
    let current = store::project_rules(&state.pool, access.id).await?;
    // As Harbor: a rule that does not exist is 404 whatever the body (its own tests send `null`).
    let rule = current
        .iter()
        .find(|r| r.id == id)
        .ok_or_else(|| HarborError::new(StatusCode::NOT_FOUND, format!("rule {id} not found")))?;
    let ParsedRule { spec, disabled, id: body_id } = parse_rule(&body)?;
    if let Some(body_id) = body_id.filter(|body_id| *body_id != id) {
        return Err(HarborError::bad_request(format!("id: the body names rule {body_id}, the path rule {id}")));
    }
    let mut changes = Vec::new();
    if !rule.spec.as_ref().is_ok_and(|old| old.same_as(&spec)) {
        changes.push(RuleChange::Update(id, &spec));
    }
    // `disabled` moves a rule between off and on; an evaluating rule sent back `disabled: false`
    // stays evaluating (promoting it is the portal's, the CLI's or a policy file's).
    match (rule.state, disabled) {
        (RuleState::Disabled, false) => changes.push(RuleChange::SetState(id, RuleState::Enforced)),
        (RuleState::Enforced | RuleState::Evaluating, true) => {
            changes.push(RuleChange::SetState(id, RuleState::Disabled))
        }
        _ => {}
    }
    if !changes.is_empty() {
        // Both in one transaction, checked against the rules as they were read.
        store::change_rules_together(&state.pool, &caller.0, access.id, Some(&current), &changes).await?;
    }
    Ok(StatusCode::OK)
}

#[utoipa::path(delete, path = "/api/v2.0/projects/{project_name_or_id}/immutabletagrules/{immutable_rule_id}", tag = "harbor",
    params(schema::ProjectNameOrId, schema::ResourceName, ("immutable_rule_id" = i64, Path, description = "The rule's id")),
    responses(
        (status = 200, description = "Deleted"),
        schema::HarborRefusals,
        (status = 404, description = "No such project or rule, or not visible to the caller", body = HarborErrors),
    ),
    security(("basic" = []), ("bearer" = ["rules:write"])))]
async fn delete_rule(
    State(state): State<HarborState>,
    caller: Caller,
    headers: HeaderMap,
    crate::extract::Checked(axum::extract::Path((name_or_id, id)), _): Path<(String, i64)>,
) -> Result<StatusCode, HarborError> {
    let access = managed_project(&state, &caller, &headers, &name_or_id).await?;
    store::change_rules(&state.pool, &caller.0, access.id, RuleChange::Delete(id)).await?;
    Ok(StatusCode::OK)
}

#[derive(OpenApi)]
#[openapi(
    paths(list_projects, get_project, list_rules, create_rule, update_rule, delete_rule),
    modifiers(&BasicAuth),
    tags((name = "harbor", description = "Harbor-compatible tag immutability rules"))
)]
pub struct HarborDoc;

struct BasicAuth;

impl utoipa::Modify for BasicAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("basic", SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)));
    }
}

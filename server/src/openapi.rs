//! The OpenAPI 3.1 document (`GET /api/v1/openapi.json`): each operation is described where it is
//! handled (`enforcement/api.rs`, `harbor.rs`); the exact request shapes and name grammars are
//! here. The handlers read looser shapes on purpose, so that their errors can name the field at
//! fault; these types say what they accept. The contract test (schemathesis) holds the two equal.

use serde::Deserialize;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, OpenApi, ToSchema};

/// A project name: lowercase letters and digits separated by single `.`, `_` or `-`.
const PROJECT: &str = r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$";
/// One `/`-separated component of a repository path (the OCI grammar).
const COMPONENT: &str = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
/// An OCI tag.
const TAG: &str = r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$";
/// The only digest algorithm tagward takes.
const DIGEST: &str = r"^sha256:[a-f0-9]{64}$";
/// Repository names are at most this long, as the registry has them.
pub const MAX_NAME: usize = 255;

fn string(pattern: String, max_length: Option<usize>, description: &str, example: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .max_length(max_length)
        .description(Some(description))
        .examples([serde_json::json!(example)])
}

pub fn project() -> Schema {
    string(PROJECT.into(), Some(MAX_NAME), "A project name", "shop").into()
}

pub fn repository() -> Schema {
    let pattern = format!(r"^{}(?:/{COMPONENT})+$", &PROJECT[1..PROJECT.len() - 1]);
    string(pattern, Some(MAX_NAME), "`<project>/<path>`, at most 255 characters", "shop/api/web").into()
}

/// The path inside a project (with the project, at most 255 characters in all).
pub fn path() -> Schema {
    let pattern = format!(r"^{COMPONENT}(?:/{COMPONENT})*$");
    string(pattern, Some(MAX_NAME - 2), "The repository's path inside the project", "api/web").into()
}

pub fn tag() -> Schema {
    string(TAG.into(), None, "An OCI tag", "v1.2.3").into()
}

pub fn digest() -> Schema {
    string(DIGEST.into(), None, "`sha256:` and 64 lowercase hex digits", &format!("sha256:{}", "a".repeat(64))).into()
}

/// A digest or `null`.
pub fn current_digest() -> Schema {
    string(DIGEST.into(), None, "The digest the tag points at now, or null when it does not exist", "")
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .examples([serde_json::Value::Null])
        .into()
}

pub fn tags() -> Schema {
    ArrayBuilder::new().items(RefOr::T(tag())).description(Some("The tags pointing at the manifest now")).into()
}

/// `push`: allowed unless the tag is immutable, exists, and points at another digest.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct PushCheck {
    #[schema(inline)]
    operation: PushOperation,
    #[schema(schema_with = repository)]
    repository: String,
    #[schema(schema_with = tag)]
    tag: String,
    #[schema(schema_with = digest)]
    digest: String,
    #[schema(schema_with = current_digest)]
    current_digest: String,
}

/// `delete_tag`: allowed unless the tag is immutable.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct DeleteTagCheck {
    #[schema(inline)]
    operation: DeleteTagOperation,
    #[schema(schema_with = repository)]
    repository: String,
    #[schema(schema_with = tag)]
    tag: String,
}

/// `delete_manifest`: allowed unless a tag pointing at the manifest, or a tag of a manifest
/// holding it (`held_by`: an index above it, the subject it is attached to), is immutable.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct DeleteManifestCheck {
    #[schema(inline)]
    operation: DeleteManifestOperation,
    #[schema(schema_with = repository)]
    repository: String,
    #[schema(schema_with = digest)]
    digest: String,
    #[schema(schema_with = tags)]
    tags: Vec<String>,
    /// The manifests that reference this one, if the registry knows them (indexes listing it, at
    /// any depth; the manifest its `subject` names).
    #[serde(default)]
    held_by: Option<Vec<HeldBy>>,
}

/// `delete_blob`: allowed unless a manifest holding the blob (`held_by`) has an immutable tag.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct DeleteBlobCheck {
    #[schema(inline)]
    operation: DeleteBlobOperation,
    #[schema(schema_with = repository)]
    repository: String,
    #[schema(schema_with = digest)]
    digest: String,
    /// The manifests that reference the blob, at any depth (`[]` for none): images whose config
    /// or layer it is, indexes above them, and the subjects of referrers it belongs to.
    held_by: Vec<HeldBy>,
}

/// A manifest that references the target of a delete, directly or through others.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct HeldBy {
    #[schema(schema_with = digest)]
    digest: String,
    /// The manifest's tags now.
    #[schema(schema_with = holder_tags)]
    tags: Vec<String>,
    #[schema(inline)]
    relation: HeldAs,
}

fn holder_tags() -> Schema {
    ArrayBuilder::new().items(RefOr::T(tag())).description(Some("The tags pointing at the holding manifest now")).into()
}

/// What the target is to the holding manifest.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum HeldAs {
    /// A manifest an index lists (at any depth).
    Child,
    /// The config blob of its image (or of an image below it).
    Config,
    /// A layer blob of its image (or of an image below it).
    Layer,
    /// A manifest whose `subject` it is (a signature, SBOM, attestation), or a blob of one.
    Referrer,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum PushOperation {
    Push,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum DeleteTagOperation {
    DeleteTag,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum DeleteManifestOperation {
    DeleteManifest,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum DeleteBlobOperation {
    DeleteBlob,
}

/// One check: what the registry is about to do, with what it knows now.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum CheckRequest {
    Push(PushCheck),
    DeleteTag(DeleteTagCheck),
    DeleteManifest(DeleteManifestCheck),
    DeleteBlob(DeleteBlobCheck),
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct BatchRequest {
    /// 1 to 100 checks, e.g. one push per tag of `PUT /v2/<name>/manifests/<digest>?tag=a&tag=b`.
    #[schema(min_items = 1, max_items = 100)]
    checks: Vec<CheckRequest>,
}

/// A project in the path.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct ProjectParam {
    #[param(schema_with = project)]
    project: String,
}

/// `GET /api/v1/projects/{project}/immutable`'s query.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct TagQuery {
    /// The repository's path inside the project (with the project, at most 255 characters).
    #[param(schema_with = path)]
    repository: String,
    #[param(schema_with = tag)]
    tag: String,
}

/// What any decision API operation may answer instead of its result (OCI error bodies).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum DecisionRefusals {
    /// Malformed request; `detail.field` names the field or parameter (`checks[1].tag` in a batch).
    #[response(status = 400)]
    BadRequest(crate::oci_error::OciErrors),
    /// Missing, unknown or revoked service token.
    #[response(status = 401, headers(("WWW-Authenticate" = String)))]
    Unauthorized(crate::oci_error::OciErrors),
    /// The token lacks the `decisions` scope.
    #[response(status = 403)]
    Forbidden(crate::oci_error::OciErrors),
}

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
    BadRequest(crate::harbor::HarborErrors),
    /// No valid credentials.
    #[response(status = 401, headers(("WWW-Authenticate" = String)))]
    Unauthorized(crate::harbor::HarborErrors),
    /// The token lacks the scope (the message names it), or the request is cross-site.
    #[response(status = 403)]
    Forbidden(crate::harbor::HarborErrors),
    /// Too many password attempts, or too many being checked.
    #[response(status = 429, headers(("Retry-After" = i64)))]
    TooManyRequests(crate::harbor::HarborErrors),
}

/// What the Harbor-compatible API may answer to a body besides [`HarborRefusals`].
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum BodyRefusals {
    /// An identical rule exists.
    #[response(status = 409)]
    Conflict(crate::harbor::HarborErrors),
    /// The body is too large.
    #[response(status = 413)]
    TooLarge(crate::harbor::HarborErrors),
    /// The body is not `application/json`.
    #[response(status = 415)]
    UnsupportedMediaType(crate::harbor::HarborErrors),
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
    others: std::collections::HashMap<String, Vec<crate::harbor::ImmutableSelector>>,
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

/// The whole document: the decision API and the Harbor-compatible API, as JSON.
pub fn document() -> serde_json::Value {
    let mut document = crate::enforcement::api::ApiDoc::openapi();
    document.merge(crate::harbor::HarborDoc::openapi());
    let mut document = serde_json::to_value(document).unwrap_or_default();
    link_the_rule_life_cycle(&mut document);
    document
}

/// A rule created (its id in the body) can be listed, changed and deleted. Written as JSON:
/// utoipa 5.5 serialises a Link's `operationId` as `operation_id`.
fn link_the_rule_life_cycle(document: &mut serde_json::Value) {
    let rules = "/api/v2.0/projects/{project_name_or_id}/immutabletagrules";
    let Some(created) = document.pointer_mut(&format!("/paths/{}/post/responses/201", rules.replace('/', "~1"))) else {
        return;
    };
    let project = "$request.path.project_name_or_id";
    created["links"] = serde_json::json!({
        "ListRules": { "operationId": "list_rules", "parameters": { "project_name_or_id": project } },
        "UpdateRule": { "operationId": "update_rule",
            "parameters": { "project_name_or_id": project, "immutable_rule_id": "$response.body#/id" } },
        "DeleteRule": { "operationId": "delete_rule",
            "parameters": { "project_name_or_id": project, "immutable_rule_id": "$response.body#/id" } },
    });
}

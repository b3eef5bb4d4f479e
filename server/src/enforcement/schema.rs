//! The decision API's exact request shapes and name grammars, for the OpenAPI document. The
//! handlers (`api.rs`) read looser shapes on purpose, so that their errors can name the field at
//! fault; these types say what they accept. The contract test (schemathesis) holds the two equal.

use serde::Deserialize;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, ToSchema};

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

fn entries() -> Schema {
    ArrayBuilder::new()
        .items(RefOr::T(digest()))
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .description(Some("Attachment lists only: the pushed list's entries (a referrers index's `manifests[].digest`, a cosign image's layer digests); null as if left out"))
        .into()
}

fn current_entries() -> Schema {
    ArrayBuilder::new()
        .items(RefOr::T(digest()))
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .description(Some("Attachment lists only, with `entries`: the current list's entries, or null when the list does not exist yet"))
        .into()
}

fn subject_tags() -> Schema {
    ArrayBuilder::new()
        .items(RefOr::T(tag()))
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .description(Some("Attachment lists only: the tags pointing at the list's subject now; null as if left out"))
        .into()
}

/// `push`: allowed unless the tag is immutable, exists, and points at another digest. A tag
/// that is an attachment list (`sha256-<hex>`, `.sig`, `.att`, `.sbom`) only grows while a rule
/// makes it immutable or an immutable tag holds its subject: send `entries` and
/// `current_entries` (without both, any change of such a list is refused), and what holds the
/// subject (`subject_tags`, `held_by`). These fields are accepted on every push and read only for
/// attachment lists.
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
    #[serde(default)]
    #[schema(schema_with = entries)]
    entries: Option<Vec<String>>,
    #[serde(default)]
    #[schema(schema_with = current_entries)]
    current_entries: Option<Vec<String>>,
    #[serde(default)]
    #[schema(schema_with = subject_tags)]
    subject_tags: Option<Vec<String>>,
    /// Attachment lists only: the manifests holding the list's subject (an index above it).
    #[serde(default)]
    held_by: Option<Vec<HeldBy>>,
}

/// `delete_tag`: allowed unless the tag is immutable, or it is an attachment list whose subject
/// an immutable tag holds (`subject_tags`, `held_by`: read only for attachment lists).
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
    #[serde(default)]
    #[schema(schema_with = subject_tags)]
    subject_tags: Option<Vec<String>>,
    /// Attachment lists only: the manifests holding the list's subject (an index above it).
    #[serde(default)]
    held_by: Option<Vec<HeldBy>>,
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

//! The decision API, `/api/v1/...`, for registry backends holding a service token. Errors use the
//! OCI distribution error format, since whoever reads them is a registry.

use super::cache::ServiceToken;
use super::{Check, Enforcer, Protection, Verdict};
use crate::oci_error::OciErrors;
use app::policy::{
    AttachmentList, Digest, FieldError, Holder, ListDelete, ListEntries, ListPush, ListUpdate, NameError, ProjectName,
    Relation, RepositoryName, RuleInfo, Tag,
};
use axum::body::Bytes;
use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Deserializer, Serialize};
use std::sync::Arc;
use utoipa::OpenApi;

/// Checks one batch may hold, at most (a manifest list push names a handful of tags).
pub const MAX_BATCH: usize = 100;
/// The largest request body read: a full batch of checks with long names fits in well under this.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

pub fn router(enforcer: Enforcer) -> Router {
    Router::new()
        .route("/api/v1/enforcement/check", post(check))
        .route("/api/v1/enforcement/check/batch", post(check_batch))
        .route("/api/v1/projects/{project}/immutable", get(immutable))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(enforcer)
}

/// An error in the OCI distribution format: `{"errors":[{"code","message","detail"}]}`.
#[derive(Debug)]
pub enum ApiError {
    /// No token, or one that is not (or no longer) valid.
    Unauthorized(&'static str),
    /// A valid token without the scope this needs.
    Forbidden(String),
    /// A malformed request; the error names the input at fault (`tag`, `checks[2].digest`).
    Invalid { code: &'static str, error: FieldError },
    /// The database could not take what the request reports; the sender should send it again.
    Unavailable(String),
    /// The database refused what the request reports for what it is (a value no column takes):
    /// sending it again can never succeed, so the sender is told not to.
    Unprocessable(String),
    /// A request refused before it was read: a path or query that does not parse, a body too
    /// large or too slow, a method the path does not take.
    Rejected { status: StatusCode, message: String },
}

impl crate::extract::Rejection for ApiError {
    fn rejected(status: StatusCode, message: String) -> Self {
        ApiError::Rejected { status, message }
    }
}

type Path<T> = crate::extract::Checked<axum::extract::Path<T>, ApiError>;
type Query<T> = crate::extract::Checked<axum::extract::Query<T>, ApiError>;
type Body = crate::extract::Body<ApiError>;

/// A method the path does not take (axum keeps the `Allow` header).
async fn method_not_allowed() -> ApiError {
    ApiError::Rejected { status: StatusCode::METHOD_NOT_ALLOWED, message: "this method is not allowed here".into() }
}

impl ApiError {
    pub(crate) fn invalid(error: FieldError) -> Self {
        ApiError::Invalid { code: "INVALID_REQUEST", error }
    }

    /// `field` refused with no value to show (missing, not used here, or not the JSON it must be).
    fn refused(field: impl Into<String>, why: impl Into<String>) -> Self {
        Self::invalid(FieldError::without_value(field, why))
    }

    fn name(code: &'static str, field: impl Into<String>, error: NameError) -> Self {
        ApiError::Invalid { code, error: FieldError::name(field, error) }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Unauthorized(why) => {
                let challenge = HeaderValue::from_static(r#"Bearer realm="tagward", error="invalid_token""#);
                let body = OciErrors::one("UNAUTHORIZED", why.to_owned(), serde_json::json!({}));
                (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, challenge)], Json(body)).into_response()
            }
            ApiError::Forbidden(message) => {
                (StatusCode::FORBIDDEN, Json(OciErrors::one("DENIED", message, serde_json::json!({})))).into_response()
            }
            ApiError::Unavailable(message) => (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, HeaderValue::from_static("5"))],
                Json(OciErrors::one("UNAVAILABLE", message, serde_json::json!({}))),
            )
                .into_response(),
            ApiError::Unprocessable(message) => {
                (StatusCode::UNPROCESSABLE_ENTITY, Json(OciErrors::one("UNSUPPORTED", message, serde_json::json!({}))))
                    .into_response()
            }
            ApiError::Rejected { status, message } => {
                let code = match status {
                    StatusCode::PAYLOAD_TOO_LARGE => "SIZE_INVALID",
                    StatusCode::METHOD_NOT_ALLOWED => "UNSUPPORTED",
                    _ => "INVALID_REQUEST",
                };
                (status, Json(OciErrors::one(code, message, serde_json::json!({})))).into_response()
            }
            ApiError::Invalid { code, error } => {
                let message = error.to_string();
                let detail = serde_json::json!({ "field": error.field, "value": error.value });
                (StatusCode::BAD_REQUEST, Json(OciErrors::one(code, message, detail))).into_response()
            }
        }
    }
}

/// A store operation that failed: what a retry can fix is 503 with `Retry-After`, what it cannot
/// (a constraint, a value the database refuses, a refusal of the store's own) is 4xx, so that a
/// sender does not redeliver it forever.
impl From<app::store::StoreError> for ApiError {
    fn from(error: app::store::StoreError) -> Self {
        use app::store::StoreError;
        match error {
            StoreError::Forbidden(message) => ApiError::Forbidden(message),
            StoreError::NotFound(message) | StoreError::Conflict { message, .. } | StoreError::Refused(message) => {
                ApiError::Unprocessable(message)
            }
            error if error.is_permanent() => {
                tracing::warn!(%error, "the database refused a request's content");
                ApiError::Unprocessable(format!("the database refused it: {error}"))
            }
            error => {
                tracing::warn!(%error, "not written; the sender sends it again");
                ApiError::Unavailable(format!("not written, send it again: {error}"))
            }
        }
    }
}

/// What a service token must be granted for a route: the decision API's [`AskDecisions`], the
/// registry events' `SendEvents`.
pub trait TokenNeeds {
    fn check(principal: &app::principal::Principal) -> Result<(), app::principal::Denied>;
}

/// The decision API: the scope `decisions`.
pub struct AskDecisions;

impl TokenNeeds for AskDecisions {
    fn check(principal: &app::principal::Principal) -> Result<(), app::principal::Denied> {
        principal.may_ask_decisions()
    }
}

/// The service token a request presented, found in the token cache (no database round trip),
/// granted what `N` needs.
pub struct Caller<N = AskDecisions>(pub Arc<ServiceToken>, std::marker::PhantomData<fn() -> N>);

impl<S, N> FromRequestParts<S> for Caller<N>
where
    S: Send + Sync,
    Enforcer: FromRef<S>,
    N: TokenNeeds,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = presented_token(parts, &Enforcer::from_ref(state))?;
        N::check(&token.principal).map_err(|denied| ApiError::Forbidden(denied.0))?;
        Ok(Caller(token, std::marker::PhantomData))
    }
}

/// The service token the request's `Authorization: Bearer` names (from memory), whatever its scopes.
fn presented_token(parts: &Parts, enforcer: &Enforcer) -> Result<Arc<ServiceToken>, ApiError> {
    let presented = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
        .ok_or(ApiError::Unauthorized("a service token is required: `Authorization: Bearer <token>`"))?;
    enforcer.token(presented).ok_or(ApiError::Unauthorized("the service token is not valid, or has been revoked"))
}

/// One check as the registry sends it. Which fields an operation takes: `push` takes `tag`,
/// `digest` and `current_digest` (null when the tag does not exist yet; required, so that a
/// registry that forgot it is told rather than every push passing as a first one); `delete_tag`
/// takes `tag`; `delete_manifest` takes `digest` and `tags` (those pointing at it now).
/// Strings are borrowed from the body where JSON allows (no escapes): a check is parsed into
/// owned, validated names at once, so copying each field first would only feed the allocator.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest<'a> {
    /// `push`, `delete_tag` or `delete_manifest`
    #[serde(borrow)]
    pub operation: Option<Text<'a>>,
    /// `<project>/<path>`, e.g. `shop/api/web`
    #[serde(borrow)]
    pub repository: Option<Text<'a>>,
    #[serde(borrow)]
    pub tag: Option<Text<'a>>,
    /// `sha256:` and 64 lowercase hex digits
    #[serde(borrow)]
    pub digest: Option<Text<'a>>,
    /// The digest the tag points at now, or null when it does not exist.
    #[serde(borrow, default, deserialize_with = "present")]
    pub current_digest: Option<Option<Text<'a>>>,
    #[serde(borrow)]
    pub tags: Option<Vec<Text<'a>>>,
    #[serde(borrow)]
    pub held_by: Option<Vec<HolderRequest<'a>>>,
    /// A push to an attachment list (`sha256-<hex>[.sig|.att|.sbom]`): the pushed list's entries
    /// (a referrers index's `manifests[].digest`, a cosign image's layer digests).
    #[serde(borrow)]
    pub entries: Option<Vec<Text<'a>>>,
    /// With `entries`: the current list's, or null when the list does not exist yet.
    #[serde(borrow, default, deserialize_with = "present_list")]
    pub current_entries: Option<Option<Vec<Text<'a>>>>,
    /// A push to, or delete of, an attachment list: the tags pointing at its subject now.
    #[serde(borrow)]
    pub subject_tags: Option<Vec<Text<'a>>>,
}

/// A manifest that references the target of a delete, at any depth: an index above it, the
/// subject it is attached to, an image whose config or layer it is.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolderRequest<'a> {
    #[serde(borrow)]
    pub digest: Option<Text<'a>>,
    /// The manifest's tags now (`[]` for none).
    #[serde(borrow)]
    pub tags: Option<Vec<Text<'a>>>,
    /// What the target is to it: `child`, `config`, `layer` or `referrer`.
    #[serde(borrow)]
    pub relation: Option<Text<'a>>,
}

/// A JSON string, borrowed from the body unless it holds escapes.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct Text<'a>(#[serde(borrow)] std::borrow::Cow<'a, str>);

impl std::fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// Tells a field given as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<Text<'de>>>, D::Error> {
    Option::<Text<'de>>::deserialize(deserializer).map(Some)
}

/// As [`present`], for a list.
fn present_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<Vec<Text<'de>>>>, D::Error> {
    Option::<Vec<Text<'de>>>::deserialize(deserializer).map(Some)
}

/// How a check's fields are named in errors (`checks[2].tag`) and the operation they are read for.
struct Fields<'p> {
    at: &'p str,
    operation: &'p str,
}

impl Fields<'_> {
    fn name(&self, name: &str) -> String {
        format!("{}{name}", self.at)
    }

    fn required<'a>(&self, name: &str, value: Option<Text<'a>>) -> Result<Text<'a>, ApiError> {
        value.ok_or_else(|| ApiError::refused(self.name(name), format!("is required for {}", self.operation)))
    }

    /// Refuses each of `given` (a field's name, and whether the request has it) that is there.
    fn unused(&self, given: &[(&str, bool)]) -> Result<(), ApiError> {
        match given.iter().find(|(_, given)| *given) {
            Some((name, _)) => Err(ApiError::refused(self.name(name), format!("is not used by {}", self.operation))),
            None => Ok(()),
        }
    }

    fn tag(&self, value: &str, name: &str) -> Result<Tag, ApiError> {
        Tag::parse(value).map_err(|error| ApiError::name("TAG_INVALID", self.name(name), error))
    }

    fn digest(&self, value: &str, name: &str) -> Result<Digest, ApiError> {
        Digest::parse(value).map_err(|error| ApiError::name("DIGEST_INVALID", self.name(name), error))
    }

    fn tags(&self, values: Vec<Text<'_>>, name: &str) -> Result<Vec<Tag>, ApiError> {
        values.iter().enumerate().map(|(i, value)| self.tag(value, &format!("{name}[{i}]"))).collect()
    }

    fn digests(&self, values: Vec<Text<'_>>, name: &str) -> Result<Vec<Digest>, ApiError> {
        values.iter().enumerate().map(|(i, value)| self.digest(value, &format!("{name}[{i}]"))).collect()
    }

    fn held_by(&self, holders: Vec<HolderRequest<'_>>) -> Result<Vec<Holder>, ApiError> {
        holders.into_iter().enumerate().map(|(i, holder)| self.holder(&format!("held_by[{i}]."), holder)).collect()
    }

    fn holder(&self, at: &str, holder: HolderRequest<'_>) -> Result<Holder, ApiError> {
        let missing = |name: &str| {
            ApiError::refused(self.name(&format!("{at}{name}")), "is required for each manifest holding the target")
        };
        let relation = holder.relation.ok_or_else(|| missing("relation"))?;
        let relation = match &*relation {
            "child" => Relation::Child,
            "config" => Relation::Config,
            "layer" => Relation::Layer,
            "referrer" => Relation::Referrer,
            other => {
                return Err(ApiError::invalid(FieldError::new(
                    self.name(&format!("{at}relation")),
                    other,
                    "is not a relation: use child, config, layer or referrer",
                )));
            }
        };
        let held = holder.digest.ok_or_else(|| missing("digest"))?;
        Ok(Holder {
            digest: self.digest(&held, &format!("{at}digest"))?,
            tags: self.tags(holder.tags.ok_or_else(|| missing("tags"))?, &format!("{at}tags"))?,
            relation,
        })
    }
}

/// What a registry knows of an attachment list's subject: the manifests holding it (`held`), and
/// the tags pointing at it as one more holder.
fn subject_held_by(list: &AttachmentList, subject_tags: Vec<Tag>, mut held: Vec<Holder>) -> Vec<Holder> {
    if !subject_tags.is_empty() {
        held.insert(0, Holder { digest: list.subject().clone(), tags: subject_tags, relation: Relation::Referrer });
    }
    held
}

impl<'a> CheckRequest<'a> {
    /// Parses into a [`Check`]; `at` prefixes the field names in errors (`checks[2].`).
    fn parse(mut self, at: &str) -> Result<Check, ApiError> {
        let operation = self.operation.take().ok_or_else(|| {
            ApiError::refused(format!("{at}operation"), "is required: push, delete_tag, delete_manifest or delete_blob")
        })?;
        let fields = Fields { at, operation: &operation };
        let repository = fields.required("repository", self.repository.take())?;
        let repository = RepositoryName::parse(&repository)
            .map_err(|error| ApiError::name("NAME_INVALID", fields.name("repository"), error))?;
        match &*operation {
            "push" => self.push(&fields, repository),
            "delete_tag" => self.delete_tag(&fields, repository),
            "delete_manifest" => self.delete_manifest(&fields, repository),
            "delete_blob" => self.delete_blob(&fields, repository),
            other => Err(ApiError::invalid(FieldError::new(
                fields.name("operation"),
                other,
                "is not an operation: use push, delete_tag, delete_manifest or delete_blob",
            ))),
        }
    }

    fn push(self, fields: &Fields<'_>, repository: RepositoryName) -> Result<Check, ApiError> {
        fields.unused(&[("tags", self.tags.is_some())])?;
        let tag = fields.tag(&fields.required("tag", self.tag)?, "tag")?;
        let pushed = fields.digest(&fields.required("digest", self.digest)?, "digest")?;
        let current = self.current_digest.ok_or_else(|| {
            ApiError::refused(
                fields.name("current_digest"),
                "is required for push: the digest the tag points at now, or null when it does not exist",
            )
        })?;
        let current = current.map(|value| fields.digest(&value, "current_digest")).transpose()?;
        // Read (and checked) whatever the tag; used only when it names an attachment list, so a
        // registry may send them with every push.
        let pushed_entries = self.entries.map(|entries| fields.digests(entries, "entries")).transpose()?;
        let current_entries = self
            .current_entries
            .map(|entries| entries.map(|entries| fields.digests(entries, "current_entries")).transpose())
            .transpose()?;
        let held_by = fields.held_by(self.held_by.unwrap_or_default())?;
        let subject_tags = fields.tags(self.subject_tags.unwrap_or_default(), "subject_tags")?;
        let Some(list) = AttachmentList::of(&tag) else {
            return Ok(Check::Push { repository, tag, digest: pushed, current, list: None });
        };
        // Without both lists an append cannot be told from a rewrite.
        let update = match (pushed_entries, current_entries) {
            (Some(entries), Some(current_entries)) => Some(ListUpdate {
                current: current_entries.map(ListEntries::from_entries),
                pushed: ListEntries::from_entries(entries),
                foreign: Vec::new(),
            }),
            _ => None,
        };
        let subject_held_by = subject_held_by(&list, subject_tags, held_by);
        let list = Some(Box::new(ListPush { list, update, subject_held_by }));
        Ok(Check::Push { repository, tag, digest: pushed, current, list })
    }

    fn delete_tag(self, fields: &Fields<'_>, repository: RepositoryName) -> Result<Check, ApiError> {
        fields.unused(&[
            ("digest", self.digest.is_some()),
            ("current_digest", self.current_digest.is_some()),
            ("tags", self.tags.is_some()),
            ("entries", self.entries.is_some()),
            ("current_entries", self.current_entries.is_some()),
        ])?;
        let tag = fields.tag(&fields.required("tag", self.tag)?, "tag")?;
        let held_by = fields.held_by(self.held_by.unwrap_or_default())?;
        let subject_tags = fields.tags(self.subject_tags.unwrap_or_default(), "subject_tags")?;
        let Some(list) = AttachmentList::of(&tag) else {
            return Ok(Check::DeleteTag { repository, tag, list: None });
        };
        let subject_held_by = subject_held_by(&list, subject_tags, held_by);
        Ok(Check::DeleteTag { repository, tag, list: Some(ListDelete { list, subject_held_by }) })
    }

    /// The fields a delete by digest does not use.
    fn unused_by_digest_deletes(&self) -> [(&'static str, bool); 5] {
        [
            ("tag", self.tag.is_some()),
            ("entries", self.entries.is_some()),
            ("current_entries", self.current_entries.is_some()),
            ("subject_tags", self.subject_tags.is_some()),
            ("current_digest", self.current_digest.is_some()),
        ]
    }

    fn delete_manifest(self, fields: &Fields<'_>, repository: RepositoryName) -> Result<Check, ApiError> {
        fields.unused(&self.unused_by_digest_deletes())?;
        let manifest = fields.digest(&fields.required("digest", self.digest)?, "digest")?;
        let tagged = self.tags.ok_or_else(|| {
            ApiError::refused(
                fields.name("tags"),
                "is required for delete_manifest: the tags pointing at the manifest now ([] for none)",
            )
        })?;
        let tagged = fields.tags(tagged, "tags")?;
        let held_by = fields.held_by(self.held_by.unwrap_or_default())?;
        Ok(Check::DeleteManifest { repository, digest: manifest, tags: tagged, held_by })
    }

    fn delete_blob(self, fields: &Fields<'_>, repository: RepositoryName) -> Result<Check, ApiError> {
        fields.unused(&self.unused_by_digest_deletes())?;
        fields.unused(&[("tags", self.tags.is_some())])?;
        let blob = fields.digest(&fields.required("digest", self.digest)?, "digest")?;
        let holders = self.held_by.ok_or_else(|| {
            ApiError::refused(
                fields.name("held_by"),
                "is required for delete_blob: the manifests referencing the blob ([] for none)",
            )
        })?;
        Ok(Check::DeleteBlob { repository, digest: blob, held_by: fields.held_by(holders)? })
    }
}

/// Parses a JSON body, naming the field at fault when it does not fit. A body that fits is read
/// once without tracking the path (what every well-formed request pays); only one that does not
/// is read again to find the field.
fn json_body<'a, T: Deserialize<'a>>(body: &'a Bytes) -> Result<T, ApiError> {
    if let Ok(value) = serde_json::from_slice(body) {
        return Ok(value);
    }
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let field = if path == "." { "body".to_owned() } else { path };
        ApiError::refused(field, error.inner().to_string())
    })
}

/// Decide one push or delete.
#[utoipa::path(
    post,
    path = "/api/v1/enforcement/check",
    request_body = super::schema::CheckRequest,
    responses(
        (status = 200, description = "The decision (allowed or not)", body = Verdict),
        super::schema::DecisionRefusals,
        (status = 413, description = "The body is larger than 256 KiB", body = OciErrors),
    ),
    security(("bearer" = ["decisions"])),
    tag = "enforcement"
)]
async fn check(
    State(enforcer): State<Enforcer>,
    Caller(token, _): Caller,
    crate::extract::Body(body, _): Body,
) -> Result<Json<Verdict>, ApiError> {
    let check = json_body::<CheckRequest>(&body)?.parse("")?;
    Ok(Json(enforcer.check(&token.principal, &check).await))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest<'a> {
    /// 1 to 100 checks, e.g. one push per tag of `PUT /v2/<name>/manifests/<digest>?tag=a&tag=b`.
    #[serde(borrow)]
    pub checks: Vec<CheckRequest<'a>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchVerdict {
    /// True when every check is allowed.
    pub allowed: bool,
    /// One decision per check, in order.
    pub decisions: Vec<Verdict>,
}

/// Decide several checks at once (all parsed before any is decided).
#[utoipa::path(
    post,
    path = "/api/v1/enforcement/check/batch",
    request_body = super::schema::BatchRequest,
    responses(
        (status = 200, description = "One decision per check", body = BatchVerdict),
        super::schema::DecisionRefusals,
        (status = 413, description = "The body is larger than 256 KiB", body = OciErrors),
    ),
    security(("bearer" = ["decisions"])),
    tag = "enforcement"
)]
async fn check_batch(
    State(enforcer): State<Enforcer>,
    Caller(token, _): Caller,
    crate::extract::Body(body, _): Body,
) -> Result<Json<BatchVerdict>, ApiError> {
    let batch = json_body::<BatchRequest>(&body)?;
    if batch.checks.is_empty() || batch.checks.len() > MAX_BATCH {
        return Err(ApiError::refused(
            "checks",
            format!("holds {} checks; a batch holds 1 to {MAX_BATCH}", batch.checks.len()),
        ));
    }
    let checks: Vec<Check> = batch
        .checks
        .into_iter()
        .enumerate()
        .map(|(i, check)| check.parse(&format!("checks[{i}].")))
        .collect::<Result<_, _>>()?;
    let mut decisions: Vec<Verdict> = Vec::with_capacity(checks.len());
    for check in &checks {
        decisions.push(enforcer.check(&token.principal, check).await);
    }
    Ok(Json(BatchVerdict { allowed: decisions.iter().all(|d| d.allowed), decisions }))
}

#[derive(Debug, Deserialize)]
pub struct TagQuery {
    /// The repository's path inside the project, e.g. `api/web`.
    pub repository: Option<String>,
    pub tag: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TagStatus {
    /// `<project>/<path>`
    pub repository: String,
    pub tag: String,
    pub immutable: bool,
    /// The rules that make it immutable.
    #[schema(value_type = Vec<super::RuleRef>)]
    pub rules: Vec<RuleInfo>,
    /// False when the project is not known to tagward (then nothing in it is immutable).
    pub project_known: bool,
    /// Why the project's policy cannot be evaluated; while it cannot, every tag counts as immutable.
    pub policy_error: Option<String>,
}

/// Whether one tag is immutable, and by which rules.
#[utoipa::path(
    get,
    path = "/api/v1/projects/{project}/immutable",
    params(super::schema::ProjectParam, super::schema::TagQuery),
    responses(
        (status = 200, description = "Whether the tag is immutable", body = TagStatus),
        super::schema::DecisionRefusals,
    ),
    security(("bearer" = ["decisions"])),
    tag = "enforcement"
)]
async fn immutable(
    State(enforcer): State<Enforcer>,
    _caller: Caller,
    crate::extract::Checked(axum::extract::Path(project), _): Path<String>,
    crate::extract::Checked(axum::extract::Query(query), _): Query<TagQuery>,
) -> Result<Json<TagStatus>, ApiError> {
    let project = ProjectName::parse(&project).map_err(|error| ApiError::name("NAME_INVALID", "project", error))?;
    let path = query.repository.ok_or_else(|| ApiError::refused("repository", "is required"))?;
    let repository = RepositoryName::parse(&format!("{project}/{path}"))
        .map_err(|error| ApiError::name("NAME_INVALID", "repository", error))?;
    let tag = query.tag.ok_or_else(|| ApiError::refused("tag", "is required"))?;
    let tag = Tag::parse(&tag).map_err(|error| ApiError::name("TAG_INVALID", "tag", error))?;
    let protection = enforcer.protection(project.as_str()).await;
    let (rules, policy_error) = match &protection {
        Protection::Policy(cached) => (
            cached.ready().map_or_else(Vec::new, |policy| {
                policy.rules(policy.immutable_rules(repository.path(), tag.as_str())).collect()
            }),
            None,
        ),
        Protection::Unevaluable(_, reason) => (Vec::new(), Some(reason.clone())),
        Protection::UnknownProject => (Vec::new(), None),
    };
    Ok(Json(TagStatus {
        repository: repository.to_string(),
        tag: tag.to_string(),
        immutable: protection.may_protect(&repository, &tag),
        rules,
        project_known: protection.project().is_some(),
        policy_error,
    }))
}

#[derive(OpenApi)]
#[openapi(
    info(title = "tagward API", description = "The decision API (ask before a push overwrites, or a delete removes, what a tag immutability rule protects) and the Harbor-compatible rules API."),
    paths(check, check_batch, immutable),
    modifiers(&BearerToken),
    tags((name = "enforcement", description = "Decisions for the registry's push path"))
)]
pub struct ApiDoc;

struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

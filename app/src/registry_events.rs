//! The registry's notifications as tagward reads them: distribution's notification envelope
//! (`application/vnd.docker.distribution.events.v1+json`) and Harbor's webhook payload, each made
//! into the pushes and deletes of tags and manifests it reports. What else they carry (pulls, blob
//! uploads, scans, names no project can have) is counted as ignored, never refused: a sender
//! retries what is refused, and a queue stuck behind one event would starve the inventory.

use crate::policy::route::Reference;
use crate::policy::{Digest, FieldError, RepositoryName, Tag};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A change the registry reported, at the registry's time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryChange {
    /// `tag` came to point at `digest`.
    Pushed { repository: RepositoryName, tag: Tag, digest: Digest, at: OffsetDateTime },
    /// A tag was removed (its manifest stays), or a manifest with every tag on it.
    Deleted { repository: RepositoryName, reference: Reference, at: OffsetDateTime },
}

/// Which sender's format a notification was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// CNCF distribution (`docker-registry`, and registries built on it such as zot's compatible mode).
    Distribution,
    /// Harbor's webhook (`PUSH_ARTIFACT`, `DELETE_ARTIFACT`).
    Harbor,
}

/// One notification, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub sender: Sender,
    pub changes: Vec<RegistryChange>,
    /// Events that report nothing the inventory keeps (pulls, blobs, manifests pushed by digest,
    /// other webhook types, repositories whose names no project can have).
    pub ignored: usize,
}

/// `field` (e.g. `events[2].timestamp`) of a notification holds `value` (as JSON holds it), which
/// tagward cannot read.
fn refused(field: impl Into<String>, value: Option<&Value>, why: &str) -> FieldError {
    let value = value.map(|value| match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    });
    FieldError { field: field.into(), value, why: why.to_owned() }
}

/// Reads a notification in either format (told apart by its shape: distribution's has `events`,
/// Harbor's `type` and `event_data`).
pub fn parse_notification(body: &[u8]) -> Result<Notification, FieldError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|error| refused("body", None, &format!("is not JSON: {error}")))?;
    if let Some(events) = value.get("events") {
        let events = events.as_array().ok_or_else(|| refused("events", Some(events), "is not an array"))?;
        let mut notification = Notification { sender: Sender::Distribution, changes: Vec::new(), ignored: 0 };
        for (index, event) in events.iter().enumerate() {
            match distribution_event(&format!("events[{index}]"), event)? {
                Some(change) => notification.changes.push(change),
                None => notification.ignored += 1,
            }
        }
        return Ok(notification);
    }
    if value.get("type").is_some() && value.get("event_data").is_some() {
        return harbor_webhook(&value);
    }
    Err(refused(
        "body",
        None,
        "is neither distribution's notification envelope (`events`) nor Harbor's webhook payload (`type`, `event_data`)",
    ))
}

/// One event of distribution's envelope: `{"action", "timestamp", "target": {"repository", "tag",
/// "digest", "mediaType"}}`.
fn distribution_event(field: &str, event: &Value) -> Result<Option<RegistryChange>, FieldError> {
    let action = text(event, field, "action")?;
    if action != "push" && action != "delete" {
        return Ok(None);
    }
    let target = event
        .get("target")
        .filter(|target| target.is_object())
        .ok_or_else(|| refused(format!("{field}.target"), event.get("target"), "is not an object"))?;
    let target_field = format!("{field}.target");
    let at = timestamp(event, field)?;
    let Some(repository) = repository(text(target, &target_field, "repository")?) else { return Ok(None) };
    let tag = optional_text(target, &target_field, "tag")?;
    let digest = optional_text(target, &target_field, "digest")?;
    let change = match (action, tag, digest) {
        // A manifest pushed by digest alone (an index's child) moves no tag; a blob has no tag either.
        ("push", None, _) => return Ok(None),
        ("push", Some(tag), digest) => {
            let digest = digest
                .ok_or_else(|| refused(format!("{target_field}.digest"), None, "is missing from a tag's push"))?;
            RegistryChange::Pushed {
                tag: parse_tag(&format!("{target_field}.tag"), tag)?,
                digest: parse_digest(&format!("{target_field}.digest"), digest)?,
                repository,
                at,
            }
        }
        (_, Some(tag), _) => {
            let reference = Reference::Tag(parse_tag(&format!("{target_field}.tag"), tag)?);
            RegistryChange::Deleted { reference, repository, at }
        }
        (_, None, Some(digest)) => {
            let reference = Reference::Digest(parse_digest(&format!("{target_field}.digest"), digest)?);
            RegistryChange::Deleted { reference, repository, at }
        }
        (_, None, None) => return Err(refused(target_field, None, "names neither a tag nor a digest to delete")),
    };
    Ok(Some(change))
}

/// Harbor's webhook: `{"type", "occur_at" (Unix seconds), "event_data": {"repository":
/// {"repo_full_name"}, "resources": [{"digest", "tag"}]}}`.
fn harbor_webhook(value: &Value) -> Result<Notification, FieldError> {
    let kind = text(value, "", "type")?;
    let mut notification = Notification { sender: Sender::Harbor, changes: Vec::new(), ignored: 0 };
    if kind != "PUSH_ARTIFACT" && kind != "DELETE_ARTIFACT" {
        notification.ignored = 1;
        return Ok(notification);
    }
    let seconds = value
        .get("occur_at")
        .and_then(Value::as_i64)
        .ok_or_else(|| refused("occur_at", value.get("occur_at"), "is not a time in Unix seconds"))?;
    let at = OffsetDateTime::from_unix_timestamp(seconds)
        .map_err(|_| refused("occur_at", value.get("occur_at"), "is not a time in Unix seconds"))?;
    let data = &value["event_data"];
    let name = text(&data["repository"], "event_data.repository", "repo_full_name")?;
    let resources = data["resources"]
        .as_array()
        .ok_or_else(|| refused("event_data.resources", data.get("resources"), "is not an array"))?;
    let Some(repository) = repository(name) else {
        notification.ignored = resources.len().max(1);
        return Ok(notification);
    };
    for (index, resource) in resources.iter().enumerate() {
        let field = format!("event_data.resources[{index}]");
        let digest = optional_text(resource, &field, "digest")?;
        let tag = optional_text(resource, &field, "tag")?;
        let digest = || {
            let digest = digest.ok_or_else(|| refused(format!("{field}.digest"), None, "is missing"))?;
            parse_digest(&format!("{field}.digest"), digest)
        };
        let change = match (kind, tag) {
            ("PUSH_ARTIFACT", None) => {
                notification.ignored += 1;
                continue;
            }
            ("PUSH_ARTIFACT", Some(tag)) => RegistryChange::Pushed {
                tag: parse_tag(&format!("{field}.tag"), tag)?,
                digest: digest()?,
                repository: repository.clone(),
                at,
            },
            // Harbor deletes an artifact with every tag on it.
            _ => {
                RegistryChange::Deleted { reference: Reference::Digest(digest()?), repository: repository.clone(), at }
            }
        };
        notification.changes.push(change);
    }
    Ok(notification)
}

fn text<'a>(value: &'a Value, field: &str, key: &str) -> Result<&'a str, FieldError> {
    optional_text(value, field, key)?.ok_or_else(|| refused(joined(field, key), None, "is missing"))
}

/// `key` of `value` if present and not empty (Harbor sends `""` for no tag).
fn optional_text<'a>(value: &'a Value, field: &str, key: &str) -> Result<Option<&'a str>, FieldError> {
    match value.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.is_empty() => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(refused(joined(field, key), Some(other), "is not a string")),
    }
}

fn joined(field: &str, key: &str) -> String {
    if field.is_empty() {
        key.to_owned()
    } else {
        format!("{field}.{key}")
    }
}

fn timestamp(event: &Value, field: &str) -> Result<OffsetDateTime, FieldError> {
    let value = text(event, field, "timestamp")?;
    OffsetDateTime::parse(value, &Rfc3339)
        .map_err(|_| refused(format!("{field}.timestamp"), event.get("timestamp"), "is not an RFC 3339 time"))
}

/// The repository, or `None` for a name no tagward project can have (such events are ignored,
/// as the sync skips such repositories).
fn repository(name: &str) -> Option<RepositoryName> {
    RepositoryName::parse(name).ok()
}

fn parse_tag(field: &str, value: &str) -> Result<Tag, FieldError> {
    Tag::parse(value).map_err(|error| FieldError::name(field, error))
}

fn parse_digest(field: &str, value: &str) -> Result<Digest, FieldError> {
    Digest::parse(value).map_err(|error| FieldError::name(field, error))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:4f8fd5bc1c81a2f6b1b5cfa2b4dd1ec6b6cd2b9b54bbcbb5b2a0d45bd7c66f1d";

    fn at(text: &str) -> OffsetDateTime {
        OffsetDateTime::parse(text, &Rfc3339).unwrap()
    }

    fn envelope(events: serde_json::Value) -> Vec<u8> {
        serde_json::json!({ "events": events }).to_string().into_bytes()
    }

    #[test]
    fn distribution_pushes_and_deletes_become_changes_and_the_rest_is_ignored() {
        let body = envelope(serde_json::json!([
            {"id": "1", "timestamp": "2026-12-02T10:00:00.123456789Z", "action": "push",
             "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "repository": "shop/web",
                        "tag": "v1", "digest": DIGEST}},
            {"id": "2", "timestamp": "2026-12-02T10:00:01Z", "action": "push",
             "target": {"mediaType": "application/octet-stream", "repository": "shop/web", "digest": DIGEST}},
            {"id": "3", "timestamp": "2026-12-02T10:00:02Z", "action": "pull",
             "target": {"repository": "shop/web", "tag": "v1", "digest": DIGEST}},
            {"id": "4", "timestamp": "2026-12-02T11:00:00+01:00", "action": "delete",
             "target": {"repository": "shop/web", "digest": DIGEST}},
            {"id": "5", "timestamp": "2026-12-02T10:00:04Z", "action": "delete",
             "target": {"repository": "shop/web", "tag": "v1"}},
            {"id": "6", "timestamp": "2026-12-02T10:00:05Z", "action": "push",
             "target": {"repository": "Not A Name", "tag": "v1", "digest": DIGEST}},
        ]));
        let read = parse_notification(&body).unwrap();
        let repository = RepositoryName::parse("shop/web").unwrap();
        let tag = Tag::parse("v1").unwrap();
        let digest = Digest::parse(DIGEST).unwrap();
        assert_eq!(read.sender, Sender::Distribution);
        assert_eq!(
            read.changes,
            vec![
                RegistryChange::Pushed {
                    repository: repository.clone(),
                    tag: tag.clone(),
                    digest: digest.clone(),
                    at: at("2026-12-02T10:00:00.123456789Z")
                },
                RegistryChange::Deleted {
                    repository: repository.clone(),
                    reference: Reference::Digest(digest),
                    at: at("2026-12-02T10:00:00Z")
                },
                RegistryChange::Deleted { repository, reference: Reference::Tag(tag), at: at("2026-12-02T10:00:04Z") },
            ]
        );
        assert_eq!(read.ignored, 3);
    }

    #[test]
    fn a_malformed_event_names_its_field_and_value() {
        let bad = |event: serde_json::Value| parse_notification(&envelope(serde_json::json!([event]))).unwrap_err();
        let error = bad(serde_json::json!({"action": "push", "timestamp": "yesterday",
                                           "target": {"repository": "shop/web", "tag": "v1", "digest": DIGEST}}));
        assert_eq!((error.field.as_str(), error.value.as_deref()), ("events[0].timestamp", Some("yesterday")));
        let error = bad(serde_json::json!({"action": "push", "timestamp": "2026-12-02T10:00:00Z",
                                           "target": {"repository": "shop/web", "tag": "v1", "digest": "sha256:nope"}}));
        assert_eq!((error.field.as_str(), error.value.as_deref()), ("events[0].target.digest", Some("sha256:nope")));
        assert!(error.to_string().starts_with("events[0].target.digest: "), "{error}");
        let error = bad(serde_json::json!({"action": "push", "timestamp": "2026-12-02T10:00:00Z",
                                           "target": {"repository": "shop/web", "tag": "v1"}}));
        assert_eq!(error.field, "events[0].target.digest");
        let error = bad(serde_json::json!({"timestamp": "2026-12-02T10:00:00Z", "target": {}}));
        assert_eq!(error.field, "events[0].action");
        let error = parse_notification(b"{\"hello\": 1}").unwrap_err();
        assert_eq!(error.field, "body");
        let error = parse_notification(b"not json").unwrap_err();
        assert_eq!(error.field, "body");
    }

    #[test]
    fn harbor_webhooks_push_tags_and_delete_artifacts() {
        let webhook = |kind: &str, resources: serde_json::Value| {
            serde_json::json!({
                "type": kind, "occur_at": 1_780_000_000, "operator": "admin",
                "event_data": {"resources": resources,
                               "repository": {"name": "web", "namespace": "shop", "repo_full_name": "shop/web"}}
            })
            .to_string()
            .into_bytes()
        };
        let repository = RepositoryName::parse("shop/web").unwrap();
        let digest = Digest::parse(DIGEST).unwrap();
        let when = OffsetDateTime::from_unix_timestamp(1_780_000_000).unwrap();
        let pushed = parse_notification(&webhook(
            "PUSH_ARTIFACT",
            serde_json::json!([{"digest": DIGEST, "tag": "v2", "resource_url": "harbor/shop/web:v2"},
                               {"digest": DIGEST, "tag": ""}]),
        ))
        .unwrap();
        assert_eq!(pushed.sender, Sender::Harbor);
        assert_eq!(
            pushed.changes,
            vec![RegistryChange::Pushed {
                repository: repository.clone(),
                tag: Tag::parse("v2").unwrap(),
                digest: digest.clone(),
                at: when
            }]
        );
        assert_eq!(pushed.ignored, 1);
        let deleted =
            parse_notification(&webhook("DELETE_ARTIFACT", serde_json::json!([{"digest": DIGEST, "tag": "v2"}])))
                .unwrap();
        assert_eq!(
            deleted.changes,
            vec![RegistryChange::Deleted { repository, reference: Reference::Digest(digest), at: when }]
        );
        let scanned = parse_notification(&webhook("SCANNING_COMPLETED", serde_json::json!([]))).unwrap();
        assert_eq!((scanned.changes.len(), scanned.ignored), (0, 1));
        let error = parse_notification(&webhook("PUSH_ARTIFACT", serde_json::json!([{"tag": "v2"}]))).unwrap_err();
        assert_eq!(error.field, "event_data.resources[0].digest");
    }
}

//! Input refused, in the one shape every surface reports it: the field that held it, the value,
//! and why. The portal shows it beside the field, the decision API and the events endpoint put
//! `field` and `value` in the OCI error's `detail`, the CLI prints it.

use super::NameError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// `field` (`repository`, `checks[2].digest`, `events[0].timestamp`) held `value` (absent when the
/// field was missing or had no text to show), refused because it `why` (`is not a tag: …`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "Written", from = "Written")]
pub struct FieldError {
    pub field: String,
    pub value: Option<String>,
    pub why: String,
}

/// As a field error is sent (a server function's error body, a form's answer): with the message a
/// reader without this type shows.
#[derive(Serialize, Deserialize)]
struct Written {
    field: String,
    value: Option<String>,
    why: String,
    #[serde(default)]
    message: String,
}

impl From<FieldError> for Written {
    fn from(error: FieldError) -> Self {
        let message = error.to_string();
        Written { field: error.field, value: error.value, why: error.why, message }
    }
}

impl From<Written> for FieldError {
    fn from(written: Written) -> Self {
        FieldError { field: written.field, value: written.value, why: written.why }
    }
}

impl FieldError {
    pub fn new(field: impl Into<String>, value: &str, why: impl Into<String>) -> Self {
        Self { field: field.into(), value: Some(value.to_owned()), why: why.into() }
    }

    /// A field that is missing or whose value cannot be shown as text.
    pub fn without_value(field: impl Into<String>, why: impl Into<String>) -> Self {
        Self { field: field.into(), value: None, why: why.into() }
    }

    /// A name (project, repository, tag, digest) the grammar refused, in `field`.
    pub fn name(field: impl Into<String>, error: NameError) -> Self {
        Self {
            field: field.into(),
            why: format!("is not a valid {}: {}", error.what, error.why),
            value: Some(error.value),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "{}: `{value}` {}", self.field, self.why),
            None => write!(f, "{}: {}", self.field, self.why),
        }
    }
}

impl std::error::Error for FieldError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Tag;

    #[test]
    fn names_the_field_and_the_value() {
        let error = FieldError::new("expires_in", "2d", "must be between 1 minute and 24 hours");
        assert_eq!(error.to_string(), "expires_in: `2d` must be between 1 minute and 24 hours");
        let missing = FieldError::without_value("checks[1].digest", "is missing");
        assert_eq!(missing.to_string(), "checks[1].digest: is missing");
        let tag = FieldError::name("tag", Tag::parse("-v1").unwrap_err());
        assert_eq!(tag.value.as_deref(), Some("-v1"));
        assert!(tag.to_string().starts_with("tag: `-v1` is not a valid tag: "), "{tag}");
    }
}

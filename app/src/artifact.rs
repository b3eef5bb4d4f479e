//! What a manifest references, read from its bytes: an index's children, an image's config and
//! layers, the `subject` a referrer is attached to. Manifests are content-addressed, so what a
//! digest references never changes: once its bytes are checked against its digest, the answer can
//! be kept for good (the gateway's manifest cache, the tag inventory).

use crate::policy::Digest;
use sha2::Digest as _;
use std::fmt;

/// A SHA-256 digest as its 32 bytes: what the cache holds (a `sha256:<hex>` string is 71 bytes
/// on the heap plus its own 24).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256([u8; 32]);

impl Sha256 {
    pub fn of(bytes: &[u8]) -> Self {
        Self(sha2::Sha256::digest(bytes).into())
    }

    pub fn digest(self) -> Digest {
        // A `sha256:` and 64 lowercase hex digits always parses.
        Digest::parse(&self.to_string()).unwrap_or_else(|_| unreachable!("a formatted SHA-256 is a digest"))
    }

    /// The referrers tag schema's tag for this digest: `sha256-<hex>`.
    pub fn referrers_tag(self) -> String {
        format!("sha256-{}", hex::encode(self.0))
    }
}

impl From<&Digest> for Sha256 {
    fn from(digest: &Digest) -> Self {
        let mut bytes = [0; 32];
        // `Digest` holds exactly `sha256:` and 64 lowercase hex digits.
        let decoded = digest.as_str().strip_prefix("sha256:").map(|hex| hex::decode_to_slice(hex, &mut bytes));
        debug_assert!(matches!(decoded, Some(Ok(()))), "{digest}");
        Self(bytes)
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A manifest listed by an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    pub digest: Sha256,
    /// `os/architecture[/variant]`, when the index says.
    pub platform: Option<Box<str>>,
}

/// What a blob is to the manifest that lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobRole {
    Config,
    Layer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    pub digest: Sha256,
    pub size: u64,
    pub role: BlobRole,
}

/// Everything one manifest references.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ManifestRefs {
    /// An index's manifests (empty for an image).
    pub children: Box<[Child]>,
    /// An image's config and layers (an OCI 1.1 artifact manifest's `blobs` count as layers).
    pub blobs: Box<[BlobRef]>,
    /// The manifest this one is attached to (a signature's, SBOM's or attestation's image).
    pub subject: Option<Sha256>,
    /// `artifactType`, or for an image whose config is not an image config, the config's type
    /// (how signatures and SBOMs say what they are).
    pub artifact_type: Option<Box<str>>,
}

/// Why a manifest's bytes were not believed or not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("the registry answered bytes for {expected} that hash to {actual}: not believed")]
    DigestMismatch { expected: Sha256, actual: Sha256 },
    #[error("manifest {digest} cannot be read: {why}")]
    Unreadable { digest: Sha256, why: String },
}

/// The image config type: an image's config that is anything else names an artifact.
const IMAGE_CONFIG_TYPES: [&str; 2] =
    ["application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"];

impl ManifestRefs {
    /// Reads the manifest `digest` from `bytes`, which must hash to it.
    pub fn parse(digest: Sha256, bytes: &[u8]) -> Result<Self, ManifestError> {
        let actual = Sha256::of(bytes);
        if actual != digest {
            return Err(ManifestError::DigestMismatch { expected: digest, actual });
        }
        Self::parse_unchecked(bytes).map_err(|why| ManifestError::Unreadable { digest, why })
    }

    /// Reads a manifest whose digest is not known (the referrers API's answer, a referrers tag's index).
    pub fn parse_unchecked(bytes: &[u8]) -> Result<Self, String> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Raw {
            schema_version: Option<u32>,
            config: Option<Descriptor>,
            layers: Option<Vec<Descriptor>>,
            manifests: Option<Vec<Descriptor>>,
            blobs: Option<Vec<Descriptor>>,
            subject: Option<Descriptor>,
            artifact_type: Option<String>,
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Descriptor {
            media_type: Option<String>,
            digest: String,
            #[serde(default)]
            size: u64,
            platform: Option<Platform>,
        }
        #[derive(serde::Deserialize)]
        struct Platform {
            os: String,
            architecture: String,
            variant: Option<String>,
        }
        let raw: Raw = serde_json::from_slice(bytes).map_err(|e| format!("not a manifest: {e}"))?;
        if raw.schema_version == Some(1) {
            return Err("Docker schema 1 manifests are not read (their digest cannot be checked)".into());
        }
        let hash = |descriptor: &Descriptor| -> Result<Sha256, String> {
            Digest::parse(&descriptor.digest)
                .map(|digest| Sha256::from(&digest))
                .map_err(|_| format!("it references `{}`, which is no sha256 digest", descriptor.digest))
        };
        let children = raw
            .manifests
            .iter()
            .flatten()
            .map(|child| {
                let platform = child.platform.as_ref().map(|p| {
                    let variant = p.variant.as_deref().map(|v| format!("/{v}")).unwrap_or_default();
                    format!("{}/{}{variant}", p.os, p.architecture).into_boxed_str()
                });
                Ok(Child { digest: hash(child)?, platform })
            })
            .collect::<Result<_, String>>()?;
        let config = raw.config.iter().map(|config| (config, BlobRole::Config));
        let layers = raw.layers.iter().chain(&raw.blobs).flatten().map(|layer| (layer, BlobRole::Layer));
        let blobs = config
            .chain(layers)
            .map(|(blob, role)| Ok(BlobRef { digest: hash(blob)?, size: blob.size, role }))
            .collect::<Result<_, String>>()?;
        if raw.manifests.is_none() && raw.config.is_none() && raw.blobs.is_none() {
            return Err("it has neither `manifests`, `config` nor `blobs`".into());
        }
        let artifact_type = raw.artifact_type.or_else(|| {
            raw.config
                .and_then(|config| config.media_type)
                .filter(|media_type| !IMAGE_CONFIG_TYPES.contains(&media_type.as_str()))
        });
        Ok(ManifestRefs {
            children,
            blobs,
            subject: raw.subject.as_ref().map(hash).transpose()?,
            artifact_type: artifact_type.map(String::into_boxed_str),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn descriptor(digest: Sha256, size: u64) -> serde_json::Value {
        serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest.to_string(), "size": size})
    }

    #[test]
    fn images_indexes_and_referrers_are_read() {
        let (config, layer, child, subject) =
            (Sha256::of(b"config"), Sha256::of(b"layer"), Sha256::of(b"child"), Sha256::of(b"subject"));
        let image = serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.dev.cosign.artifact.sig.v1+json", "digest": config.to_string(), "size": 2},
            "layers": [descriptor(layer, 1024)],
            "subject": descriptor(subject, 10),
        })
        .to_string();
        let refs = ManifestRefs::parse(Sha256::of(image.as_bytes()), image.as_bytes()).unwrap();
        assert_eq!(
            refs.blobs.as_ref(),
            [
                BlobRef { digest: config, size: 2, role: BlobRole::Config },
                BlobRef { digest: layer, size: 1024, role: BlobRole::Layer }
            ]
        );
        assert_eq!(refs.subject, Some(subject));
        assert_eq!(refs.artifact_type.as_deref(), Some("application/vnd.dev.cosign.artifact.sig.v1+json"));

        let index = serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
            "manifests": [{"digest": child.to_string(), "size": 5, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}],
        })
        .to_string();
        let refs = ManifestRefs::parse(Sha256::of(index.as_bytes()), index.as_bytes()).unwrap();
        assert_eq!(refs.children.as_ref(), [Child { digest: child, platform: Some("linux/arm64/v8".into()) }]);
        assert!(refs.blobs.is_empty());
    }

    #[test]
    fn bytes_that_do_not_hash_to_the_digest_are_not_believed() {
        let error = ManifestRefs::parse(Sha256::of(b"other"), br#"{"schemaVersion":2,"manifests":[]}"#).unwrap_err();
        assert!(matches!(error, ManifestError::DigestMismatch { .. }), "{error}");
        assert!(error.to_string().ends_with("not believed"), "{error}");
    }

    #[test]
    fn what_cannot_be_read_is_an_error() {
        for bytes in [
            &br#"{"schemaVersion":1,"fsLayers":[]}"#[..],
            br#"{"schemaVersion":2}"#,
            br#"{"schemaVersion":2,"manifests":[{"digest":"sha512:ab","size":1}]}"#,
            b"not json",
        ] {
            let error = ManifestRefs::parse(Sha256::of(bytes), bytes).unwrap_err();
            assert!(matches!(error, ManifestError::Unreadable { .. }), "{error}");
        }
    }

    #[test]
    fn digests_round_trip() {
        let digest = Digest::parse(&format!("sha256:{}", "0123456789abcdef".repeat(4))).unwrap();
        assert_eq!(Sha256::from(&digest).digest(), digest);
        assert_eq!(Sha256::from(&digest).referrers_tag(), format!("sha256-{}", "0123456789abcdef".repeat(4)));
    }
}

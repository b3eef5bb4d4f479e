//! Typed columns: a `text` column read as a `RepositoryName`, `Tag`, `Digest` or `ProjectName`
//! (or one of the store's keywords, such as a tag's source, how a drift was found, a webhook's
//! format or event) is parsed
//! once, here, as the row is decoded, so nothing downstream parses it again. A row whose text does not parse is a decode error (the database holds only what these
//! types let through), never a value carried on as a string.

use super::drift::FoundBy;
use super::inventory::TagSource;
use crate::account::UserSource;
use crate::policy::{Digest, ProjectName, RepositoryName, Tag, WebhookEvent, WebhookFormat};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};

macro_rules! text_column {
    ($($name:ty),*) => {$(
        text_column!(@parsed_by $name, <$name>::parse);
    )*};
    (@parsed_by $name:ty, $parse:expr) => {
        impl Type<Postgres> for $name {
            fn type_info() -> PgTypeInfo {
                <&str as Type<Postgres>>::type_info()
            }
            fn compatible(ty: &PgTypeInfo) -> bool {
                <&str as Type<Postgres>>::compatible(ty)
            }
        }

        impl PgHasArrayType for $name {
            fn array_type_info() -> PgTypeInfo {
                <&str as PgHasArrayType>::array_type_info()
            }
        }

        impl<'r> Decode<'r, Postgres> for $name {
            fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
                Ok(($parse)(<&str as Decode<Postgres>>::decode(value)?)?)
            }
        }

        impl Encode<'_, Postgres> for $name {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <&str as Encode<Postgres>>::encode(self.as_str(), buf)
            }
        }
    };
}

text_column!(ProjectName, RepositoryName, Tag, Digest, TagSource, FoundBy, UserSource);
text_column!(@parsed_by WebhookFormat, |text| WebhookFormat::parse("format", text));
text_column!(@parsed_by WebhookEvent, |text: &str| {
    WebhookEvent::parse(text).ok_or_else(|| format!("`{text}` is not a webhook event"))
});

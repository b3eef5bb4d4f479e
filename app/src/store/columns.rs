//! Typed columns: a `text` column read as a `RepositoryName`, `Tag`, `Digest` or `ProjectName`
//! (or one of the store's keywords, such as a tag's source or how a drift was found) is parsed
//! once, here, as the row is decoded, so nothing downstream parses it again. A row whose text does not parse is a decode error (the database holds only what these
//! types let through), never a value carried on as a string.

use super::drift::FoundBy;
use super::inventory::TagSource;
use crate::policy::{Digest, ProjectName, RepositoryName, Tag};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};

macro_rules! text_column {
    ($($name:ty),*) => {$(
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
                Ok(<$name>::parse(<&str as Decode<Postgres>>::decode(value)?)?)
            }
        }

        impl Encode<'_, Postgres> for $name {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <&str as Encode<Postgres>>::encode(self.as_str(), buf)
            }
        }
    )*};
}

text_column!(ProjectName, RepositoryName, Tag, Digest, TagSource, FoundBy);

//! Typed identifiers, so that an organization's id can never be passed where a team's is meant.
//! Each is a UUIDv7 (time-ordered, so that indexes stay compact) written in its hyphenated form.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn generate() -> Self {
                $name(Uuid::now_v7())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::try_parse(s).map($name)
            }
        }
    };
}

typed_id!(
    /// An organization: the tenant every other record belongs to.
    OrgId
);
typed_id!(
    /// A team within an organization.
    TeamId
);
typed_id!(
    /// A person who can log in; may belong to several organizations.
    UserId
);
typed_id!(
    /// A virtual API key.
    KeyId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text_and_reject_garbage() {
        let id = OrgId::generate();
        assert_eq!(id.to_string().parse::<OrgId>().unwrap(), id);
        assert!("'; DROP TABLE users; --".parse::<OrgId>().is_err());
        assert!("".parse::<TeamId>().is_err());
    }
}

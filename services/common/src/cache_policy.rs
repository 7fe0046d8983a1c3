//! Cache defaults an organization, a team or a key sets for its requests.
//!
//! Each level may set any field or leave it to the level above: a key's setting wins over its
//! team's, which wins over the organization's, which wins over the deployment's `cache`
//! section. A request's own headers may then narrow the result (never widen it), and the
//! deployment's mode is a ceiling no setting can lift.

use serde::{Deserialize, Serialize};

/// How requests may use the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CachePolicyMode {
    Off,
    /// Identical requests only.
    Exact,
    /// Identical requests, then the same question in other words.
    Semantic,
}

/// Who shares cached answers within an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheShare {
    /// Every key of the organization (the default).
    Organization,
    /// Only keys of the same team.
    Team,
}

/// The cache settings of one level; `None` inherits from the level above.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CachePolicy {
    #[serde(default)]
    pub mode: Option<CachePolicyMode>,
    /// How long answers are kept, in seconds.
    #[serde(default)]
    pub ttl_secs: Option<u64>,
    #[serde(default)]
    pub share: Option<CacheShare>,
}

impl CachePolicy {
    /// The longest TTL a policy or request may ask for: thirty days.
    pub const MAX_TTL_SECS: u64 = 30 * 86_400;

    /// This level's settings, with what it leaves open taken from `above`.
    pub fn over(self, above: CachePolicy) -> CachePolicy {
        CachePolicy {
            mode: self.mode.or(above.mode),
            ttl_secs: self.ttl_secs.or(above.ttl_secs),
            share: self.share.or(above.share),
        }
    }

    /// The first problem with this policy, as (field, message).
    pub fn problem(&self) -> Option<(&'static str, String)> {
        match self.ttl_secs {
            Some(ttl) if !(1..=Self::MAX_TTL_SECS).contains(&ttl) => Some((
                "ttl_secs",
                format!(
                    "`ttl_secs` must be from 1 to {} seconds.",
                    Self::MAX_TTL_SECS
                ),
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_narrowest_level_wins_field_by_field() {
        let org = CachePolicy {
            mode: Some(CachePolicyMode::Semantic),
            ttl_secs: Some(600),
            share: Some(CacheShare::Organization),
        };
        let team = CachePolicy {
            share: Some(CacheShare::Team),
            ..CachePolicy::default()
        };
        let key = CachePolicy {
            mode: Some(CachePolicyMode::Exact),
            ..CachePolicy::default()
        };
        assert_eq!(
            key.over(team.over(org)),
            CachePolicy {
                mode: Some(CachePolicyMode::Exact),
                ttl_secs: Some(600),
                share: Some(CacheShare::Team),
            }
        );
    }

    #[test]
    fn ttl_is_bounded_and_unknown_fields_are_refused() {
        let zero = CachePolicy {
            ttl_secs: Some(0),
            ..CachePolicy::default()
        };
        assert_eq!(zero.problem().map(|p| p.0), Some("ttl_secs"));
        assert!(CachePolicy::default().problem().is_none());
        assert!(serde_json::from_str::<CachePolicy>(r#"{"mood":"exact"}"#).is_err());
        assert!(serde_json::from_str::<CachePolicy>(r#"{"mode":"sometimes"}"#).is_err());
    }
}

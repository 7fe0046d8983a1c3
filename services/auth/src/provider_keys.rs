//! Organizations' own provider keys (bring your own key): sealed with AES-256-GCM before they
//! are stored, opened only where a gateway loads the organization's virtual keys.
//!
//! Each sealed key is bound to its organization and provider (the additional authenticated
//! data), so a sealed value copied into another organization's row, or moved to another
//! provider, does not open. Only the gateway's in-memory key context ever holds a key in the
//! clear; in a split deployment the auth service hands gateways the sealed form.

use serde::{Deserialize, Serialize};
use tollgate_common::{OrgId, Secret};

pub use crate::seal::SealError;
use crate::seal::SecretSeal;

/// An organization's key for one configured provider, as stored: never in the clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedProviderKey {
    /// The provider's name in the deployment's config (`openai`, `anthropic`...).
    pub provider: String,
    /// base64 of the nonce followed by the ciphertext and its tag.
    pub sealed: String,
}

/// Seals and opens provider keys with the deployment's `encryption_key`.
#[derive(Debug)]
pub struct ProviderKeySeal {
    seal: SecretSeal,
}

impl ProviderKeySeal {
    /// From the base64 encryption key of `billing.bring_your_own_key.encryption_key`.
    pub fn new(encryption_key: &Secret) -> Result<Self, SealError> {
        Ok(ProviderKeySeal {
            seal: SecretSeal::new(encryption_key)?,
        })
    }

    /// Seals `api_key` for `org`'s use with `provider`; a fresh random nonce each time.
    pub fn seal(
        &self,
        org: OrgId,
        provider: &str,
        api_key: &str,
    ) -> Result<SealedProviderKey, SealError> {
        Ok(SealedProviderKey {
            provider: provider.to_owned(),
            sealed: self
                .seal
                .seal(&associated_data(org, provider), api_key.as_bytes())?,
        })
    }

    /// The key `sealed` holds, if it was sealed with this encryption key for `org` and its
    /// provider.
    pub fn open(&self, org: OrgId, sealed: &SealedProviderKey) -> Result<Secret, SealError> {
        let plain = self
            .seal
            .open(&associated_data(org, &sealed.provider), &sealed.sealed)?;
        let text = String::from_utf8(plain).map_err(|_| SealError::DoesNotOpen)?;
        Ok(Secret::new(text))
    }
}

fn associated_data(org: OrgId, provider: &str) -> Vec<u8> {
    format!("tollgate provider key\n{org}\n{provider}").into_bytes()
}

/// The last four characters of a key, all that is ever shown of it again.
pub fn key_hint(api_key: &str) -> String {
    let chars: Vec<char> = api_key.chars().collect();
    let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
    format!("…{tail}")
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    use super::*;

    fn seal() -> ProviderKeySeal {
        ProviderKeySeal::new(&Secret::new(STANDARD.encode([7u8; 32]))).unwrap()
    }

    #[test]
    fn a_sealed_key_opens_only_for_its_organization_and_provider() {
        let seal = seal();
        let (org, other) = (OrgId::generate(), OrgId::generate());
        let sealed = seal.seal(org, "openai", "sk-own-1234").unwrap();
        assert!(!sealed.sealed.contains("sk-own"));
        assert_eq!(seal.open(org, &sealed).unwrap().expose(), "sk-own-1234");
        assert_eq!(seal.open(other, &sealed), Err(SealError::DoesNotOpen));
        let moved = SealedProviderKey {
            provider: "anthropic".into(),
            ..sealed.clone()
        };
        assert_eq!(seal.open(org, &moved), Err(SealError::DoesNotOpen));
        let other_key = ProviderKeySeal::new(&Secret::new(STANDARD.encode([8u8; 32]))).unwrap();
        assert_eq!(other_key.open(org, &sealed), Err(SealError::DoesNotOpen));
        // a fresh nonce each time
        assert_ne!(seal.seal(org, "openai", "sk-own-1234").unwrap(), sealed);
    }

    #[test]
    fn bad_encryption_keys_and_damaged_values_are_refused() {
        assert_eq!(
            ProviderKeySeal::new(&Secret::new("short")).err(),
            Some(SealError::BadKey)
        );
        let seal = seal();
        let org = OrgId::generate();
        let damaged = SealedProviderKey {
            provider: "openai".into(),
            sealed: "AAAA".into(),
        };
        assert_eq!(seal.open(org, &damaged), Err(SealError::DoesNotOpen));
    }

    #[test]
    fn only_the_last_four_characters_are_shown() {
        assert_eq!(key_hint("sk-abcdefgh1234"), "…1234");
        assert_eq!(key_hint("ab"), "…ab");
    }
}

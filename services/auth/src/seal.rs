//! Sealing of secrets kept in the database (organizations' own provider keys, the generated
//! JWT signing key) with AES-256-GCM under a key from the deployment's configuration, so that
//! a copy of the database alone does not give them away.
//!
//! Each sealed value is bound to a context (the additional authenticated data): the row it
//! belongs to, so that a sealed value copied into another row does not open.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tollgate_common::Secret;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("the encryption key must be 32 bytes in base64")]
    BadKey,
    #[error("the system random source failed")]
    Random,
    #[error("a sealed value does not open with this deployment's encryption key")]
    DoesNotOpen,
}

/// Seals and opens values with one AES-256 key.
pub struct SecretSeal {
    key: LessSafeKey,
    random: SystemRandom,
}

impl fmt::Debug for SecretSeal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretSeal(***)")
    }
}

impl SecretSeal {
    /// From a 32-byte key in base64, as the configuration holds it.
    pub fn new(encryption_key: &Secret) -> Result<Self, SealError> {
        let bytes = STANDARD
            .decode(encryption_key.expose().trim())
            .map_err(|_| SealError::BadKey)?;
        let unbound = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| SealError::BadKey)?;
        Ok(SecretSeal {
            key: LessSafeKey::new(unbound),
            random: SystemRandom::new(),
        })
    }

    /// base64 of a fresh random nonce followed by the ciphertext and its tag.
    pub fn seal(&self, context: &[u8], plain: &[u8]) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| SealError::Random)?;
        let mut data = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context),
                &mut data,
            )
            .map_err(|_| SealError::Random)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(STANDARD.encode(out))
    }

    /// What `sealed` holds, if it was sealed with this key for `context`.
    pub fn open(&self, context: &[u8], sealed: &str) -> Result<Vec<u8>, SealError> {
        let bytes = STANDARD
            .decode(sealed)
            .map_err(|_| SealError::DoesNotOpen)?;
        if bytes.len() < NONCE_LEN {
            return Err(SealError::DoesNotOpen);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::DoesNotOpen)?;
        let mut data = ciphertext.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context), &mut data)
            .map_err(|_| SealError::DoesNotOpen)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal(byte: u8) -> SecretSeal {
        SecretSeal::new(&Secret::new(STANDARD.encode([byte; 32]))).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_only_with_its_key_and_context() {
        let sealed = seal(7).seal(b"row 1", b"the secret").unwrap();
        assert!(!sealed.contains("the secret"));
        assert_eq!(seal(7).open(b"row 1", &sealed).unwrap(), b"the secret");
        assert_eq!(seal(7).open(b"row 2", &sealed), Err(SealError::DoesNotOpen));
        assert_eq!(seal(8).open(b"row 1", &sealed), Err(SealError::DoesNotOpen));
        assert_eq!(seal(7).open(b"row 1", "AAAA"), Err(SealError::DoesNotOpen));
        assert_ne!(seal(7).seal(b"row 1", b"the secret").unwrap(), sealed);
        assert_eq!(
            SecretSeal::new(&Secret::new("short")).err(),
            Some(SealError::BadKey)
        );
    }
}

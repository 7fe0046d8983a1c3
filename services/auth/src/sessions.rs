//! Access tokens: short-lived HS256 JWTs carrying a `kid`, so that signing keys can rotate.
//! Refresh tokens are opaque random strings kept as hashes (see [`crate::store`]). A signing
//! key the platform generates for itself is kept in the database, sealed when the deployment
//! has an `auth.encryption_key`.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tollgate_common::{OrgId, UserId};

use crate::seal::{SealError, SecretSeal};

/// What an access token says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AccessClaims {
    /// The user.
    pub sub: UserId,
    /// The organization this session acts in.
    pub org: OrgId,
    /// The session (refresh-token family): logging out ends it, and the token with it.
    pub sid: String,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
}

/// Why an access token was refused. The message never says more than the client needs.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("The access token has expired; refresh it or log in again.")]
    Expired,
    #[error("The access token is not valid.")]
    Invalid,
}

struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// Issues and verifies access tokens with a set of HMAC keys: the first signs, all verify.
pub struct AccessTokens {
    keys: Vec<SigningKey>,
    validation: Validation,
    issuer: String,
    ttl_secs: i64,
}

impl AccessTokens {
    /// `keys` are `(kid, secret)` pairs, the signing one first; there must be at least one.
    pub fn new(keys: &[(String, Vec<u8>)], issuer: &str, ttl_secs: u64) -> Option<Self> {
        if keys.is_empty() {
            return None;
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        Some(AccessTokens {
            keys: keys
                .iter()
                .map(|(kid, secret)| SigningKey {
                    kid: kid.clone(),
                    encoding: EncodingKey::from_secret(secret),
                    decoding: DecodingKey::from_secret(secret),
                })
                .collect(),
            validation,
            issuer: issuer.to_owned(),
            ttl_secs: i64::try_from(ttl_secs).unwrap_or(900),
        })
    }

    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    /// A signed token for `user` acting in `org` within session `sid`.
    pub fn issue(&self, user: UserId, org: OrgId, sid: &str) -> Result<String, String> {
        let now = unix_secs();
        let claims = AccessClaims {
            sub: user,
            org,
            sid: sid.to_owned(),
            iat: now,
            exp: now + self.ttl_secs,
            iss: self.issuer.clone(),
            aud: self.issuer.clone(),
        };
        let signer = self.keys.first().ok_or("no signing key")?;
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(signer.kid.clone());
        jsonwebtoken::encode(&header, &claims, &signer.encoding).map_err(|e| e.to_string())
    }

    /// Checks signature (with the key the `kid` names), algorithm, issuer, audience and expiry.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != Algorithm::HS256 {
            return Err(TokenError::Invalid);
        }
        let kid = header.kid.ok_or(TokenError::Invalid)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(TokenError::Invalid)?;
        jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }
}

/// Marks a stored signing secret as sealed; a generated secret (base64url) never contains `:`.
const SEALED_PREFIX: &str = "sealed:";

/// A generated signing key's secret as the database holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredSigningSecret<'a> {
    /// Kept as is (no encryption key was configured when it was stored).
    Plain(&'a str),
    /// Sealed; the base64 of nonce, ciphertext and tag.
    Sealed(&'a str),
}

impl<'a> StoredSigningSecret<'a> {
    pub fn parse(stored: &'a str) -> Self {
        match stored.strip_prefix(SEALED_PREFIX) {
            Some(sealed) => StoredSigningSecret::Sealed(sealed),
            None => StoredSigningSecret::Plain(stored),
        }
    }
}

/// The sealed form of signing key `kid`'s `secret`, bound to its kid.
pub fn seal_signing_secret(
    seal: &SecretSeal,
    kid: &str,
    secret: &str,
) -> Result<String, SealError> {
    let sealed = seal.seal(&signing_key_context(kid), secret.as_bytes())?;
    Ok(format!("{SEALED_PREFIX}{sealed}"))
}

/// The secret of a sealed signing key.
pub fn open_signing_secret(
    seal: &SecretSeal,
    kid: &str,
    sealed: &str,
) -> Result<Vec<u8>, SealError> {
    seal.open(&signing_key_context(kid), sealed)
}

fn signing_key_context(kid: &str) -> Vec<u8> {
    format!("tollgate jwt signing key\n{kid}").into_bytes()
}

fn unix_secs() -> i64 {
    crate::store::now_ms() / 1000
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    fn tokens(keys: &[(&str, &str)]) -> AccessTokens {
        let keys: Vec<_> = keys
            .iter()
            .map(|(k, s)| (k.to_string(), s.as_bytes().to_vec()))
            .collect();
        AccessTokens::new(&keys, "tollgate", 900).unwrap()
    }

    const SECRET_A: &str = "a-secret-that-is-long-enough-to-sign-with";
    const SECRET_B: &str = "another-secret-that-is-long-enough-to-sign";

    #[test]
    fn issued_tokens_verify_and_carry_the_session() {
        let t = tokens(&[("k1", SECRET_A)]);
        let (user, org) = (UserId::generate(), OrgId::generate());
        let claims = t.verify(&t.issue(user, org, "fam").unwrap()).unwrap();
        assert_eq!(
            (claims.sub, claims.org, claims.sid.as_str()),
            (user, org, "fam")
        );
    }

    #[test]
    fn rotation_keeps_old_tokens_valid_while_the_old_key_is_listed() {
        let old = tokens(&[("k1", SECRET_A)]);
        let token = old
            .issue(UserId::generate(), OrgId::generate(), "s")
            .unwrap();
        let rotated = tokens(&[("k2", SECRET_B), ("k1", SECRET_A)]);
        assert!(rotated.verify(&token).is_ok());
        let retired = tokens(&[("k2", SECRET_B)]);
        assert_eq!(retired.verify(&token), Err(TokenError::Invalid));
    }

    #[test]
    fn forged_tokens_are_refused() {
        let t = tokens(&[("k1", SECRET_A)]);
        let token = t.issue(UserId::generate(), OrgId::generate(), "s").unwrap();
        let parts: Vec<&str> = token.split('.').collect();

        // wrong signature: same kid, other secret
        let forger = tokens(&[("k1", SECRET_B)]);
        let forged = forger
            .issue(UserId::generate(), OrgId::generate(), "s")
            .unwrap();
        assert_eq!(t.verify(&forged), Err(TokenError::Invalid));

        // alg: none, no signature
        let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#);
        assert_eq!(
            t.verify(&format!("{none}.{}.", parts[1])),
            Err(TokenError::Invalid)
        );

        // unknown kid
        let other_kid = tokens(&[("k9", SECRET_A)]);
        let token9 = other_kid
            .issue(UserId::generate(), OrgId::generate(), "s")
            .unwrap();
        assert_eq!(t.verify(&token9), Err(TokenError::Invalid));

        // no kid at all
        let nokid = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        assert_eq!(
            t.verify(&format!("{nokid}.{}.{}", parts[1], parts[2])),
            Err(TokenError::Invalid)
        );

        // tampered claims
        let claims = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&serde_json::json!({"sub": UserId::generate(), "org": OrgId::generate(), "sid": "s", "iat": 0, "exp": 9999999999i64, "iss": "tollgate", "aud": "tollgate"})).unwrap(),
        );
        assert_eq!(
            t.verify(&format!("{}.{claims}.{}", parts[0], parts[2])),
            Err(TokenError::Invalid)
        );
        assert_eq!(t.verify("garbage"), Err(TokenError::Invalid));
    }

    #[test]
    fn expired_tokens_are_refused_as_expired() {
        let t = tokens(&[("k1", SECRET_A)]);
        let claims = AccessClaims {
            sub: UserId::generate(),
            org: OrgId::generate(),
            sid: "s".into(),
            iat: 1,
            exp: unix_secs() - 60,
            iss: "tollgate".into(),
            aud: "tollgate".into(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k1".into());
        let token = jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(SECRET_A.as_bytes()),
        )
        .unwrap();
        assert_eq!(t.verify(&token), Err(TokenError::Expired));
    }
}

//! Organizations' own provider keys, for the bring-your-own-key plan: owners set and remove
//! them, admins see which providers have one (and the last four characters only).

use std::sync::Arc;

use super::{AuthError, AuthService, Caller};
use crate::provider_keys::{ProviderKeySeal, key_hint};
use crate::roles::Role;
use crate::store::ProviderKeyRecord;

/// Longest provider key accepted; real ones are well under 200 characters.
const MAX_KEY_LEN: usize = 512;

/// What the deployment allows of organizations' own provider keys.
pub struct OwnProviderKeys {
    pub seal: Arc<ProviderKeySeal>,
    /// The configured providers' names, the only ones a key can be set for.
    pub providers: Vec<String>,
}

impl AuthService {
    /// Whether organizations may bring their own provider keys here, and for which providers.
    pub fn own_provider_keys(&self) -> Option<&OwnProviderKeys> {
        self.own_keys.as_ref()
    }

    /// The organization's own provider keys as shown (admins and owners).
    pub async fn provider_keys(
        &self,
        caller: &Caller,
    ) -> Result<Vec<ProviderKeyRecord>, AuthError> {
        caller.require(Role::Admin, "see provider keys")?;
        Ok(self.store.provider_keys(caller.org).await?)
    }

    /// Sets the organization's key for `provider` (owners), replacing any it had. Its gateways
    /// use it from their next request on.
    pub async fn set_provider_key(
        &self,
        caller: &Caller,
        provider: &str,
        api_key: &str,
    ) -> Result<ProviderKeyRecord, AuthError> {
        caller.require(Role::Owner, "set provider keys")?;
        let own = self.own_keys_for(provider)?;
        let api_key = api_key.trim();
        if api_key.is_empty() || api_key.len() > MAX_KEY_LEN {
            return Err(AuthError::InvalidField {
                param: "apiKey".into(),
                message: format!("The key must be 1 to {MAX_KEY_LEN} characters."),
            });
        }
        // It is sent as an HTTP header value: visible ASCII only.
        if !api_key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(AuthError::InvalidField {
                param: "apiKey".into(),
                message: "The key may hold only visible ASCII characters, without spaces.".into(),
            });
        }
        let sealed = own
            .seal
            .seal(caller.org, provider, api_key)
            .map_err(|e| AuthError::Internal(e.to_string()))?;
        let record = self
            .store
            .set_provider_key(caller.org, &sealed, &key_hint(api_key), caller.user)
            .await?;
        self.organization_changed(caller.org).await?;
        Ok(record)
    }

    /// Removes the organization's key for `provider` (owners).
    pub async fn delete_provider_key(
        &self,
        caller: &Caller,
        provider: &str,
    ) -> Result<(), AuthError> {
        caller.require(Role::Owner, "remove provider keys")?;
        if !self
            .store
            .delete_provider_key(caller.org, provider, caller.user)
            .await?
        {
            return Err(AuthError::NotFound("provider key"));
        }
        self.organization_changed(caller.org).await?;
        Ok(())
    }

    fn own_keys_for(&self, provider: &str) -> Result<&OwnProviderKeys, AuthError> {
        let Some(own) = &self.own_keys else {
            return Err(AuthError::Forbidden(
                "This deployment does not let organizations bring their own provider keys.".into(),
            ));
        };
        if !own.providers.iter().any(|p| p == provider) {
            return Err(AuthError::InvalidField {
                param: "provider".into(),
                message: format!(
                    "`{provider}` is not a provider of this deployment; it has {}.",
                    own.providers.join(", ")
                ),
            });
        }
        Ok(own)
    }
}

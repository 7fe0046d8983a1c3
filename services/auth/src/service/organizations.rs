//! Organizations: changes made elsewhere that their keys' cached contexts carry.

use tollgate_common::OrgId;

use super::AuthService;
use crate::error::AuthError;

impl AuthService {
    /// Something about `org` that its keys' contexts carry changed outside this service (its
    /// payment standing, card or credit): every gateway reloads its keys.
    pub async fn organization_changed(&self, org: OrgId) -> Result<(), AuthError> {
        let hashes = self.store.organization_key_hashes(org).await?;
        self.stale_keys(hashes).await;
        Ok(())
    }
}

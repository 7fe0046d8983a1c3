//! Reloading an organization's keys in every gateway when its payments change.

use std::sync::Arc;

use async_trait::async_trait;
use tollgate_auth::{AuthService, AuthStore, KeyChangeFeed};
use tollgate_billing::payments::http::OrganizationChanged;
use tollgate_common::OrgId;

/// Reloads an organization's keys in every gateway when its payments change, through the auth
/// service of this process.
pub struct ReloadThroughAuth(pub Arc<AuthService>);

#[async_trait]
impl OrganizationChanged for ReloadThroughAuth {
    async fn organization_changed(&self, org: &str) {
        let Ok(org) = org.parse::<OrgId>() else {
            return;
        };
        if let Err(err) = self.0.organization_changed(org).await {
            tracing::warn!(%err, "cannot reload the keys of an organization whose payments changed");
        }
    }
}

/// The same for a process without the auth service (`serve --only billing`): the change is
/// published on the key-change feed that every gateway listens to.
pub struct ReloadThroughFeed {
    pub store: AuthStore,
    pub feed: KeyChangeFeed,
}

#[async_trait]
impl OrganizationChanged for ReloadThroughFeed {
    async fn organization_changed(&self, org: &str) {
        let Ok(org) = org.parse::<OrgId>() else {
            return;
        };
        match self.store.organization_key_hashes(org).await {
            Ok(hashes) => {
                for hash in hashes {
                    self.feed.key_changed(&hash).await;
                }
            }
            Err(err) => tracing::warn!(%err, "cannot list the keys of an organization"),
        }
    }
}

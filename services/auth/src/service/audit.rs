//! The audit log, for admins.

use super::{AuthService, Caller};
use crate::error::AuthError;
use crate::roles::Role;
use crate::store::AuditRecord;

impl AuthService {
    pub async fn audit_log(
        &self,
        caller: &Caller,
        limit: Option<i64>,
    ) -> Result<Vec<AuditRecord>, AuthError> {
        caller.require(Role::Admin, "read the audit log")?;
        let limit = limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(AuthError::invalid("limit", "must be between 1 and 1000"));
        }
        Ok(self.store.audit_log(caller.org, limit).await?)
    }
}

//! The sliding-window log in Redis, shared by every gateway replica: the admission and
//! settlement scripts ([`crate::script`]) check and charge all of a request's buckets, and
//! correct its token estimates, in one round trip each.

use redis::aio::ConnectionManager;

use super::{Bucket, Decision, LimitError};
use crate::script::{AdmissionRequest, Settlement, Verdict, run_script, run_settle};

/// Sliding windows in Redis.
pub struct RedisWindows {
    redis: ConnectionManager,
}

impl RedisWindows {
    pub fn new(redis: ConnectionManager) -> Self {
        RedisWindows { redis }
    }

    pub fn connection(&self) -> &ConnectionManager {
        &self.redis
    }

    pub async fn acquire(&self, id: &str, buckets: &[Bucket]) -> Result<Decision, LimitError> {
        let request = AdmissionRequest {
            id,
            buckets,
            charges: &[],
            amount: 0,
        };
        match run_script(&self.redis, request).await {
            Ok(Verdict::Admitted { decision, .. } | Verdict::Limited { decision }) => Ok(decision),
            Ok(other) => Err(LimitError::Redis(format!("unexpected verdict {other:?}"))),
            Err(err) => Err(LimitError::Redis(err.to_string())),
        }
    }

    pub async fn adjust(&self, id: &str, costs: &[(String, u64)]) -> Result<(), LimitError> {
        let settlement = Settlement {
            id: id.to_owned(),
            token_costs: costs.to_vec(),
            ..Settlement::default()
        };
        run_settle(&self.redis, &settlement)
            .await
            .map_err(|e| LimitError::Redis(e.to_string()))
    }
}

//! The sliding-window log in Redis, shared by every gateway replica: the admission script
//! ([`crate::admission`]) checks and charges all of a request's buckets in one round trip;
//! corrections of token estimates go through [`ADJUST`].

use redis::Script;
use redis::aio::ConnectionManager;

use super::{Bucket, Decision, LimitError};
use crate::admission::{AdmissionRequest, Verdict, run_script};

const ADJUST: &str = r"
local id = ARGV[1]
for i = 1, #KEYS do
  local w, s = KEYS[i] .. ':w', KEYS[i] .. ':s'
  local old = redis.call('HGET', w, id)
  if old then
    local cost = tonumber(ARGV[1 + i])
    redis.call('HSET', w, id, cost)
    redis.call('INCRBY', s, cost - tonumber(old))
  end
end
return 1";

/// Sliding windows in Redis.
pub struct RedisWindows {
    redis: ConnectionManager,
    adjust: Script,
}

impl RedisWindows {
    pub fn new(redis: ConnectionManager) -> Self {
        RedisWindows {
            redis,
            adjust: Script::new(ADJUST),
        }
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
        let mut invocation = self.adjust.prepare_invoke();
        invocation.arg(id);
        for (key, cost) in costs {
            invocation.key(key).arg(*cost);
        }
        let mut conn = self.redis.clone();
        let _: i64 = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(|e| LimitError::Redis(e.to_string()))?;
        Ok(())
    }
}

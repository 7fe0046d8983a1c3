//! Budget counters in Redis, shared by every gateway replica. A counter is a hash with the
//! fields `spent` and `reserved`; the admission script ([`crate::admission`]) checks and
//! charges all of a request's budgets, [`SETTLE`] replaces a reservation by the real cost.

use redis::Script;
use redis::aio::ConnectionManager;

use super::{BudgetError, Charge, Reservation};
use crate::admission::{AdmissionRequest, Verdict, run_script};
use crate::fallback::Counted;

/// KEYS: the counters. ARGV: the reserved amount, the actual cost. A counter that has expired
/// meanwhile (its period ended) is left alone.
const SETTLE: &str = r"
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    local left = redis.call('HINCRBY', KEYS[i], 'reserved', -tonumber(ARGV[1]))
    if left < 0 then redis.call('HSET', KEYS[i], 'reserved', 0) end
    redis.call('HINCRBY', KEYS[i], 'spent', ARGV[2])
  end
end
return 1";

pub struct RedisCounters {
    redis: ConnectionManager,
    settle: Script,
}

impl RedisCounters {
    pub fn new(redis: ConnectionManager) -> Self {
        RedisCounters {
            redis,
            settle: Script::new(SETTLE),
        }
    }

    pub async fn reserve(
        &self,
        charges: &[Charge],
        amount: i64,
    ) -> Result<Reservation, BudgetError> {
        let request = AdmissionRequest {
            id: "",
            buckets: &[],
            charges,
            amount,
        };
        match run_script(&self.redis, request).await {
            Ok(Verdict::Admitted { .. }) => Ok(Reservation::Admitted(Counted::Redis)),
            Ok(Verdict::OverBudget {
                index,
                spent,
                reserved,
                ..
            }) => Ok(Reservation::Exhausted {
                index,
                spent,
                reserved,
            }),
            Ok(other) => Err(BudgetError::Redis(format!("unexpected verdict {other:?}"))),
            Err(err) => Err(BudgetError::Redis(err.to_string())),
        }
    }

    pub async fn settle(
        &self,
        counters: &[String],
        reserved: i64,
        actual: i64,
    ) -> Result<(), BudgetError> {
        let mut invocation = self.settle.prepare_invoke();
        invocation.arg(reserved).arg(actual);
        for counter in counters {
            invocation.key(counter);
        }
        let mut conn = self.redis.clone();
        let _: i64 = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(|e| BudgetError::Redis(e.to_string()))?;
        Ok(())
    }

    pub async fn read(&self, counter: &str) -> Result<Option<(i64, i64)>, BudgetError> {
        let mut conn = self.redis.clone();
        let (spent, reserved): (Option<i64>, Option<i64>) = redis::cmd("HMGET")
            .arg(counter)
            .arg("spent")
            .arg("reserved")
            .query_async(&mut conn)
            .await
            .map_err(|e| BudgetError::Redis(e.to_string()))?;
        Ok(spent.map(|spent| (spent, reserved.unwrap_or(0))))
    }
}

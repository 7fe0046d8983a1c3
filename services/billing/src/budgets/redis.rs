//! Budget counters in Redis, shared by every gateway replica. A counter is a hash with the
//! fields `spent` and `reserved`; the admission and settlement scripts ([`crate::script`])
//! check and charge all of a request's budgets, and replace a reservation by the real cost.

use redis::aio::ConnectionManager;

use super::{BudgetError, Charge, Reservation};
use crate::fallback::Counted;
use crate::script::{AdmissionRequest, Settlement, Verdict, run_script, run_settle};

pub struct RedisCounters {
    redis: ConnectionManager,
}

impl RedisCounters {
    pub fn new(redis: ConnectionManager) -> Self {
        RedisCounters { redis }
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
        let settlement = Settlement {
            counters: counters.to_vec(),
            reserved,
            actual,
            ..Settlement::default()
        };
        run_settle(&self.redis, &settlement)
            .await
            .map_err(|e| BudgetError::Redis(e.to_string()))
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

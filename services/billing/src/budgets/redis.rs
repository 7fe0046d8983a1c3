//! Budget counters in Redis, shared by every gateway replica. A counter is a hash with the
//! fields `spent` and `reserved`; one script checks and charges all of a request's budgets.

use redis::Script;
use redis::aio::ConnectionManager;

use super::{BudgetError, Charge, Reservation};
use crate::fallback::Counted;

/// KEYS: the counters. ARGV: the amount, then per counter its limit, baseline and TTL
/// (0 for none). Answers `{0}` when admitted, else `{index, spent, reserved}`.
const RESERVE: &str = r"
local amount = tonumber(ARGV[1])
for i = 1, #KEYS do
  local limit = tonumber(ARGV[3 * i - 1])
  if redis.call('HSETNX', KEYS[i], 'spent', ARGV[3 * i]) == 1 then
    local ttl = tonumber(ARGV[3 * i + 1])
    if ttl > 0 then redis.call('EXPIRE', KEYS[i], ttl) end
  end
  local spent = tonumber(redis.call('HGET', KEYS[i], 'spent'))
  local reserved = tonumber(redis.call('HGET', KEYS[i], 'reserved') or '0')
  if spent + reserved + amount > limit then
    return {i, spent, reserved}
  end
end
for i = 1, #KEYS do
  redis.call('HINCRBY', KEYS[i], 'reserved', amount)
end
return {0}";

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
    reserve: Script,
    settle: Script,
}

impl RedisCounters {
    pub fn new(redis: ConnectionManager) -> Self {
        RedisCounters {
            redis,
            reserve: Script::new(RESERVE),
            settle: Script::new(SETTLE),
        }
    }

    pub async fn reserve(
        &self,
        charges: &[Charge],
        amount: i64,
    ) -> Result<Reservation, BudgetError> {
        let mut invocation = self.reserve.prepare_invoke();
        invocation.arg(amount);
        for charge in charges {
            invocation
                .key(&charge.counter)
                .arg(charge.limit)
                .arg(charge.baseline)
                .arg(charge.ttl_secs.unwrap_or(0));
        }
        let mut conn = self.redis.clone();
        let out: Vec<i64> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(|e| BudgetError::Redis(e.to_string()))?;
        match out.as_slice() {
            [0] => Ok(Reservation::Admitted(Counted::Redis)),
            [index, spent, reserved] => Ok(Reservation::Exhausted {
                index: usize::try_from(*index - 1).unwrap_or(0),
                spent: *spent,
                reserved: *reserved,
            }),
            _ => Err(BudgetError::Redis(format!(
                "unexpected script answer {out:?}"
            ))),
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

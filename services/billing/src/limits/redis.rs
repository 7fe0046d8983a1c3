//! The sliding-window log in Redis, shared by every gateway replica: one Lua script checks and
//! charges all of a request's buckets in one round trip, on Redis's clock (so replicas with
//! skewed clocks still agree).
//!
//! A bucket `B` is three keys: `B:z` (reservation ids scored by admission time), `B:w` (each
//! reservation's cost) and `B:s` (the sum of costs in the window). All expire a second after
//! the window when unused.

use redis::Script;
use redis::aio::ConnectionManager;

use super::{Bucket, BucketState, Decision, LimitError, WINDOW_MS};

const ACQUIRE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local id = ARGV[2]
local cutoff = now - window
local n = #KEYS
local used = {}
local denied = 0
local wait = 0
for i = 1, n do
  local z, w, s = KEYS[i] .. ':z', KEYS[i] .. ':w', KEYS[i] .. ':s'
  local limit = tonumber(ARGV[1 + 2 * i])
  local cost = tonumber(ARGV[2 + 2 * i])
  while true do
    local old = redis.call('ZRANGEBYSCORE', z, '-inf', cutoff, 'LIMIT', 0, 500)
    if #old == 0 then break end
    local weights = redis.call('HMGET', w, unpack(old))
    local freed = 0
    for j = 1, #old do freed = freed + (tonumber(weights[j]) or 0) end
    redis.call('ZREM', z, unpack(old))
    redis.call('HDEL', w, unpack(old))
    redis.call('DECRBY', s, freed)
  end
  local u = tonumber(redis.call('GET', s) or '0')
  if u < 0 then u = 0 end
  used[i] = u
  if denied == 0 and u + cost > limit then
    denied = i
    wait = window
    if cost <= limit then
      local entries = redis.call('ZRANGE', z, 0, -1, 'WITHSCORES')
      local left = u
      for j = 1, #entries, 2 do
        left = left - (tonumber(redis.call('HGET', w, entries[j])) or 0)
        if left + cost <= limit then
          wait = tonumber(entries[j + 1]) + window - now
          break
        end
      end
    end
  end
end
local out = {denied, wait}
for i = 1, n do
  local z, w, s = KEYS[i] .. ':z', KEYS[i] .. ':w', KEYS[i] .. ':s'
  if denied == 0 then
    local cost = tonumber(ARGV[2 + 2 * i])
    redis.call('ZADD', z, now, id)
    redis.call('HSET', w, id, cost)
    used[i] = redis.call('INCRBY', s, cost)
    redis.call('PEXPIRE', z, window + 1000)
    redis.call('PEXPIRE', w, window + 1000)
    redis.call('PEXPIRE', s, window + 1000)
  end
  local oldest = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
  local reset = 0
  if #oldest > 0 then reset = tonumber(oldest[2]) + window - now end
  out[#out + 1] = used[i]
  out[#out + 1] = reset
end
return out";

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
    acquire: Script,
    adjust: Script,
}

impl RedisWindows {
    pub fn new(redis: ConnectionManager) -> Self {
        RedisWindows {
            redis,
            acquire: Script::new(ACQUIRE),
            adjust: Script::new(ADJUST),
        }
    }

    pub async fn acquire(&self, id: &str, buckets: &[Bucket]) -> Result<Decision, LimitError> {
        let mut invocation = self.acquire.prepare_invoke();
        invocation.arg(WINDOW_MS).arg(id);
        for bucket in buckets {
            invocation
                .key(&bucket.key)
                .arg(bucket.limit)
                .arg(bucket.cost);
        }
        let mut conn = self.redis.clone();
        let out: Vec<i64> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(|e| LimitError::Redis(e.to_string()))?;
        if out.len() != 2 + 2 * buckets.len() {
            return Err(LimitError::Redis(format!(
                "unexpected script answer {out:?}"
            )));
        }
        let denied = usize::try_from(out[0]).unwrap_or(0);
        let states = buckets
            .iter()
            .enumerate()
            .map(|(i, bucket)| {
                let used = u64::try_from(out[2 + 2 * i]).unwrap_or(0);
                BucketState {
                    limit: bucket.limit,
                    remaining: bucket.limit.saturating_sub(used),
                    reset_ms: u64::try_from(out[3 + 2 * i]).unwrap_or(0),
                }
            })
            .collect();
        Ok(Decision {
            allowed: denied == 0,
            denied_by: denied.checked_sub(1),
            retry_after_ms: u64::try_from(out[1]).unwrap_or(0),
            states,
        })
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

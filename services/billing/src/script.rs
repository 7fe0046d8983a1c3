//! The Redis scripts that admit and settle a request in one round trip each, and the types
//! they read and answer: the bottom of the billing service, under both the rate limits
//! ([`crate::limits`]) and the budgets ([`crate::budgets`]), which use them through
//! [`crate::admission`] and their own Redis halves.

use std::sync::LazyLock;

use redis::Script;
use redis::aio::ConnectionManager;

use crate::fallback::Counted;

/// The window every limit is counted over.
pub const WINDOW_MS: i64 = 60_000;

/// One limit a request is counted against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    /// Names the counter, e.g. `tollgate:rl:key:<id>:rpm`.
    pub key: String,
    pub limit: u64,
    /// What this request takes: 1 for a request limit, the estimated tokens for a token limit.
    pub cost: u64,
}

/// A bucket after a decision, for the response headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketState {
    pub limit: u64,
    pub remaining: u64,
    /// Milliseconds until the oldest admission in the window leaves it.
    pub reset_ms: u64,
}

/// The outcome of one admission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// One state per bucket, in the order given.
    pub states: Vec<BucketState>,
    /// The index of the bucket that refused the request.
    pub denied_by: Option<usize>,
    /// When a denied request could fit, in milliseconds.
    pub retry_after_ms: u64,
}

impl Decision {
    pub(crate) fn unlimited(buckets: &[Bucket]) -> Self {
        Decision {
            allowed: true,
            states: buckets
                .iter()
                .map(|b| BucketState {
                    limit: b.limit,
                    remaining: b.limit,
                    reset_ms: 0,
                })
                .collect(),
            denied_by: None,
            retry_after_ms: 0,
        }
    }
}

/// One budget a request is charged against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// The counter's key: the budget, the end user for a per-user budget, and the period.
    pub counter: String,
    /// Nanodollars.
    pub limit: i64,
    /// Nanodollars already spent in the period when the counter does not exist yet.
    pub baseline: i64,
    /// How long the counter lives (`None`: for ever, for a lifetime budget).
    pub ttl_secs: Option<u64>,
}

/// KEYS: the `n` rate-limit buckets, then the budget counters. ARGV: the window (ms), the
/// reservation id, `n`, each bucket's limit and cost, the budget amount (nanodollars), then
/// each counter's limit, baseline and TTL in seconds (0 for none).
///
/// Answers `{denied, wait, used_1, reset_1, …, used_n, reset_n, over, spent, reserved}`:
/// `denied` is the refusing bucket and `over` the refusing counter (1-based, 0 for none),
/// `wait` when a refused request could fit, `spent`/`reserved` the refusing counter's.
///
/// A bucket `B` is three keys: `B:z` (reservation ids scored by admission time), `B:w` (each
/// reservation's cost) and `B:s` (the sum of costs in the window); all expire a second after
/// the window when unused. A counter is a hash with `spent` and `reserved`. Time is Redis's
/// own, so replicas with skewed clocks agree.
const ADMIT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local id = ARGV[2]
local n = tonumber(ARGV[3])
local base = 3 + 2 * n
local amount = tonumber(ARGV[base + 1])
local m = #KEYS - n
local cutoff = now - window
local used = {}
local denied = 0
local wait = 0
for i = 1, n do
  local z, w, s = KEYS[i] .. ':z', KEYS[i] .. ':w', KEYS[i] .. ':s'
  local limit = tonumber(ARGV[2 + 2 * i])
  local cost = tonumber(ARGV[3 + 2 * i])
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
local over, over_spent, over_reserved = 0, 0, 0
if denied == 0 then
  for j = 1, m do
    local key = KEYS[n + j]
    local limit = tonumber(ARGV[base + 3 * j - 1])
    if redis.call('HSETNX', key, 'spent', ARGV[base + 3 * j]) == 1 then
      local ttl = tonumber(ARGV[base + 3 * j + 1])
      if ttl > 0 then redis.call('EXPIRE', key, ttl) end
    end
    local spent = tonumber(redis.call('HGET', key, 'spent'))
    local reserved = tonumber(redis.call('HGET', key, 'reserved') or '0')
    if spent + reserved + amount > limit then
      over, over_spent, over_reserved = j, spent, reserved
      break
    end
  end
end
local admit = denied == 0 and over == 0
local out = {denied, wait}
for i = 1, n do
  local z, w, s = KEYS[i] .. ':z', KEYS[i] .. ':w', KEYS[i] .. ':s'
  if admit then
    local cost = tonumber(ARGV[3 + 2 * i])
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
if admit then
  for j = 1, m do redis.call('HINCRBY', KEYS[n + j], 'reserved', amount) end
end
out[#out + 1] = over
out[#out + 1] = over_spent
out[#out + 1] = over_reserved
return out";

static ADMIT_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(ADMIT));

/// KEYS: the `n` token buckets, then the budget counters. ARGV: the reservation id, `n`, each
/// bucket's real cost, then the budget amount reserved and the real cost (nanodollars).
///
/// Replaces the reservation's token estimate in each bucket by its real cost, and its budget
/// reservation by its real cost (a counter whose period ended meanwhile is left alone).
const SETTLE: &str = r"
local id = ARGV[1]
local n = tonumber(ARGV[2])
for i = 1, n do
  local w, s = KEYS[i] .. ':w', KEYS[i] .. ':s'
  local old = redis.call('HGET', w, id)
  if old then
    local cost = tonumber(ARGV[2 + i])
    redis.call('HSET', w, id, cost)
    redis.call('INCRBY', s, cost - tonumber(old))
  end
end
local reserved = tonumber(ARGV[3 + n])
local actual = ARGV[4 + n]
for j = n + 1, #KEYS do
  if redis.call('EXISTS', KEYS[j]) == 1 then
    local left = redis.call('HINCRBY', KEYS[j], 'reserved', -reserved)
    if left < 0 then redis.call('HSET', KEYS[j], 'reserved', 0) end
    redis.call('HINCRBY', KEYS[j], 'spent', actual)
  end
end
return 1";

static SETTLE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(SETTLE));

/// What a finished request corrects: its token estimates, and its budget reservation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settlement {
    /// The reservation's id, as admitted.
    pub id: String,
    /// Each token bucket and the tokens really used.
    pub token_costs: Vec<(String, u64)>,
    /// The budget counters charged.
    pub counters: Vec<String>,
    /// Nanodollars reserved against each counter, and the real cost.
    pub reserved: i64,
    pub actual: i64,
}

/// Runs the settlement script: one round trip.
pub(crate) async fn run_settle(
    redis: &ConnectionManager,
    settlement: &Settlement,
) -> Result<(), redis::RedisError> {
    let mut invocation = SETTLE_SCRIPT.prepare_invoke();
    invocation
        .arg(&settlement.id)
        .arg(settlement.token_costs.len());
    for (bucket, cost) in &settlement.token_costs {
        invocation.key(bucket).arg(*cost);
    }
    invocation.arg(settlement.reserved).arg(settlement.actual);
    for counter in &settlement.counters {
        invocation.key(counter);
    }
    let mut conn = redis.clone();
    let _: i64 = invocation.invoke_async(&mut conn).await?;
    Ok(())
}

/// What one request asks to be admitted against.
#[derive(Debug, Clone, Copy)]
pub struct AdmissionRequest<'a> {
    /// The reservation's id, by which token estimates are corrected later.
    pub id: &'a str,
    pub buckets: &'a [Bucket],
    pub charges: &'a [Charge],
    /// Nanodollars reserved against every charge.
    pub amount: i64,
}

/// The decision on a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every bucket and budget had room and all were charged.
    Admitted {
        decision: Decision,
        limits: Counted,
        /// Where the budgets were charged; `None` when no budget applies.
        budgets: Option<Counted>,
    },
    /// A rate limit refused (`decision.denied_by`); nothing was charged.
    Limited { decision: Decision },
    /// The budget at `index` of the charges has no room; nothing was charged. `spent` and
    /// `reserved` are its counter's, in nanodollars.
    OverBudget {
        decision: Decision,
        index: usize,
        spent: i64,
        reserved: i64,
    },
}

/// Runs the admission script: one round trip.
pub(crate) async fn run_script(
    redis: &ConnectionManager,
    request: AdmissionRequest<'_>,
) -> Result<Verdict, redis::RedisError> {
    let mut invocation = ADMIT_SCRIPT.prepare_invoke();
    invocation
        .arg(WINDOW_MS)
        .arg(request.id)
        .arg(request.buckets.len());
    for bucket in request.buckets {
        invocation
            .key(&bucket.key)
            .arg(bucket.limit)
            .arg(bucket.cost);
    }
    invocation.arg(request.amount);
    for charge in request.charges {
        invocation
            .key(&charge.counter)
            .arg(charge.limit)
            .arg(charge.baseline)
            .arg(charge.ttl_secs.unwrap_or(0));
    }
    let mut conn = redis.clone();
    let out: Vec<i64> = invocation.invoke_async(&mut conn).await?;
    let n = request.buckets.len();
    if out.len() != 5 + 2 * n {
        return Err(redis::RedisError::from((
            redis::ErrorKind::Parse,
            "unexpected admission script answer",
            format!("{out:?}"),
        )));
    }
    let denied = usize::try_from(out[0]).unwrap_or(0);
    let states = request
        .buckets
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
    let decision = Decision {
        allowed: denied == 0,
        denied_by: denied.checked_sub(1),
        retry_after_ms: u64::try_from(out[1]).unwrap_or(0),
        states,
    };
    let over = usize::try_from(out[2 + 2 * n]).unwrap_or(0);
    Ok(if denied != 0 {
        Verdict::Limited { decision }
    } else if let Some(index) = over.checked_sub(1) {
        Verdict::OverBudget {
            decision,
            index,
            spent: out[3 + 2 * n],
            reserved: out[4 + 2 * n],
        }
    } else {
        Verdict::Admitted {
            decision,
            limits: Counted::Redis,
            budgets: (!request.charges.is_empty()).then_some(Counted::Redis),
        }
    })
}

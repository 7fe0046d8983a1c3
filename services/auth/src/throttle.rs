//! Throttling of failed logins: shared through Redis when it is configured (so that replicas
//! count together), in-process otherwise or while Redis is down.
//!
//! An attempt is counted before its password is checked, as a reservation, atomically with
//! the check of the limits (one Redis script, or one lock in process): checking first and
//! counting after the password was found wrong would let a burst of concurrent guesses all
//! pass the check before the first failure is counted. An attempt that succeeds, or never got
//! to check a password, gives its reservation back.
//!
//! Each attempt counts against three limits of `auth.login_throttle`:
//! - `per_email_per_client`: the account from this client. This is the one that stops a
//!   guesser, and it names the client so that failures elsewhere cannot lock the owner out.
//! - `per_ip`: the client, whatever the accounts (a client trying many accounts).
//! - `per_email`: the account from all clients together, a far higher ceiling on guessing
//!   from many addresses at once.
//!
//! Accounts are named in the counters by a hash of their email, so that Redis holds no
//! addresses.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use tollgate_common::config::{LoginThrottleConfig, SignupThrottleConfig};

use crate::secrets::hash_token;

/// Checks every counter against its limit and, only if none is reached, increments them all
/// (starting each one's window at its first count). Returns 0 when the attempt is counted,
/// otherwise the milliseconds until the full counter resets.
const RESERVE_SCRIPT: &str = r"
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[i + 1]) then
    local ttl = redis.call('PTTL', key)
    if ttl > 0 then return ttl end
    return tonumber(ARGV[1])
  end
end
for _, key in ipairs(KEYS) do
  if redis.call('INCR', key) == 1 then redis.call('PEXPIRE', key, ARGV[1]) end
end
return 0";

/// Gives a reservation back: decrements each counter still above zero (never creating one, which
/// would have no expiry), and with ARGV[1] = '1' clears the first counter altogether.
const SETTLE_SCRIPT: &str = r"
for i, key in ipairs(KEYS) do
  if i == 1 and ARGV[1] == '1' then
    redis.call('DEL', key)
  elseif tonumber(redis.call('GET', key) or '0') > 0 then
    redis.call('DECR', key)
  end
end
return 0";

/// Counters are versioned, so that a process counting differently during a rolling deploy does
/// not read them.
const KEY_PREFIX: &str = "tollgate:login:v2";
const SIGNUP_KEY_PREFIX: &str = "tollgate:signup:v1";

/// Local counters kept before expired ones are swept.
const LOCAL_SWEEP_AT: usize = 100_000;

/// Counts login attempts against the limits of `auth.login_throttle`.
pub struct LoginThrottle {
    config: LoginThrottleConfig,
    /// The counters' name space in Redis: what is counted (logins, sign-ups) never mixes.
    prefix: &'static str,
    redis: Option<ConnectionManager>,
    reserve_script: redis::Script,
    settle_script: redis::Script,
    /// Counters of this process: all of them without Redis, those counted while it was down
    /// otherwise. Each is a count and the end of its window.
    local: Mutex<HashMap<String, (u32, Instant)>>,
}

/// An attempt, counted; settle it with [`LoginThrottle::failed`], [`LoginThrottle::succeeded`]
/// or [`LoginThrottle::release`].
#[must_use = "a reservation is settled as a failure, a success or a release"]
#[derive(Debug)]
pub struct Reservation {
    /// The counters, the account-from-this-client one first.
    counters: Vec<String>,
    in_redis: bool,
}

impl LoginThrottle {
    pub fn new(config: LoginThrottleConfig, redis: Option<ConnectionManager>) -> Self {
        Self::named(KEY_PREFIX, config, redis)
    }

    /// Sign-ups per client: every sign-up counts, successful ones included (see
    /// [`SignupThrottleConfig`]). Reserve with the one account `signup` and settle as failed.
    pub fn for_signups(config: &SignupThrottleConfig, redis: Option<ConnectionManager>) -> Self {
        let limits = LoginThrottleConfig {
            per_email_per_client: config.per_ip,
            per_ip: config.per_ip,
            // One account name for every sign-up: its all-clients counter must never bind.
            per_email: u32::MAX,
            window_secs: config.window_secs,
        };
        Self::named(SIGNUP_KEY_PREFIX, limits, redis)
    }

    fn named(
        prefix: &'static str,
        config: LoginThrottleConfig,
        redis: Option<ConnectionManager>,
    ) -> Self {
        LoginThrottle {
            config,
            prefix,
            redis,
            reserve_script: redis::Script::new(RESERVE_SCRIPT),
            settle_script: redis::Script::new(SETTLE_SCRIPT),
            local: Mutex::new(HashMap::new()),
        }
    }

    /// The counters of an attempt on `account` (an email, or another name for what is guessed
    /// at) from `client`, with their limits.
    fn counters(&self, account: &str, client: Option<&str>) -> Vec<(String, u32)> {
        let account = hash_token(account);
        let mut counters = vec![
            (
                format!(
                    "{}:account-client:{account}:{}",
                    self.prefix,
                    client.unwrap_or("unknown")
                ),
                self.config.per_email_per_client,
            ),
            (
                format!("{}:account:{account}", self.prefix),
                self.config.per_email,
            ),
        ];
        if let Some(client) = client {
            counters.push((
                format!("{}:client:{client}", self.prefix),
                self.config.per_ip,
            ));
        }
        counters
    }

    fn window(&self) -> Duration {
        Duration::from_secs(self.config.window_secs)
    }

    /// Counts an attempt on `account` from `client`, or refuses it with the seconds until it
    /// may be tried again.
    pub async fn reserve(&self, account: &str, client: Option<&str>) -> Result<Reservation, u64> {
        let counters = self.counters(account, client);
        let keys = counters.iter().map(|(key, _)| key.clone()).collect();
        if let Some(redis) = &self.redis {
            // Failures counted here while Redis was down still count.
            if let Some(wait) = self.exhausted_locally(&counters) {
                return Err(retry_secs(wait));
            }
            let mut conn = redis.clone();
            let mut invocation = self.reserve_script.prepare_invoke();
            invocation.arg(duration_ms(self.window()));
            for (key, limit) in &counters {
                invocation.key(key).arg(*limit);
            }
            match invocation.invoke_async::<i64>(&mut conn).await {
                Ok(0) => {
                    return Ok(Reservation {
                        counters: keys,
                        in_redis: true,
                    });
                }
                Ok(wait_ms) => {
                    return Err(retry_secs(Duration::from_millis(
                        u64::try_from(wait_ms).unwrap_or(1),
                    )));
                }
                Err(err) => {
                    tracing::warn!(%err, "login throttle: Redis unavailable, counting locally");
                }
            }
        }
        self.reserve_locally(&counters).map_err(retry_secs)?;
        Ok(Reservation {
            counters: keys,
            in_redis: false,
        })
    }

    /// The attempt failed: it stays counted.
    pub fn failed(&self, reservation: Reservation) {
        drop(reservation);
    }

    /// The attempt succeeded: it is given back, and the account's failures from this client
    /// are cleared.
    pub async fn succeeded(&self, reservation: Reservation) {
        self.settle(reservation, true).await;
    }

    /// The attempt did not get to check a password (the server was busy or failed): it is
    /// given back.
    pub async fn release(&self, reservation: Reservation) {
        self.settle(reservation, false).await;
    }

    async fn settle(&self, reservation: Reservation, clear_client_failures: bool) {
        if reservation.in_redis
            && let Some(redis) = &self.redis
        {
            let mut conn = redis.clone();
            let mut invocation = self.settle_script.prepare_invoke();
            invocation.arg(if clear_client_failures { "1" } else { "0" });
            for key in &reservation.counters {
                invocation.key(key);
            }
            match invocation.invoke_async::<i64>(&mut conn).await {
                Ok(_) => return,
                Err(err) => {
                    // The count stands until its window ends: the safe side.
                    tracing::warn!(%err, "login throttle: Redis unavailable, attempt stays counted");
                    return;
                }
            }
        }
        let mut local = self.lock_local();
        for (i, key) in reservation.counters.iter().enumerate() {
            if i == 0 && clear_client_failures {
                local.remove(key);
            } else if let Some((count, _)) = local.get_mut(key) {
                *count = count.saturating_sub(1);
            }
        }
    }

    fn lock_local(&self) -> MutexGuard<'_, HashMap<String, (u32, Instant)>> {
        // A panic elsewhere while holding the lock leaves counts that are still counts.
        self.local.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How long until the first of `counters` that is full locally resets, if one is.
    fn exhausted_locally(&self, counters: &[(String, u32)]) -> Option<Duration> {
        let local = self.lock_local();
        let now = Instant::now();
        counters
            .iter()
            .find_map(|(key, limit)| match local.get(key) {
                Some((count, reset)) if *reset > now && *count >= *limit => Some(*reset - now),
                _ => None,
            })
    }

    /// The in-process twin of [`RESERVE_SCRIPT`], under one lock.
    fn reserve_locally(&self, counters: &[(String, u32)]) -> Result<(), Duration> {
        let mut local = self.lock_local();
        let now = Instant::now();
        if local.len() > LOCAL_SWEEP_AT {
            local.retain(|_, (_, reset)| *reset > now);
        }
        for (key, limit) in counters {
            if let Some((count, reset)) = local.get(key)
                && *reset > now
                && *count >= *limit
            {
                return Err(*reset - now);
            }
        }
        let window = self.window();
        for (key, _) in counters {
            let entry = local.entry(key.clone()).or_insert((0, now + window));
            if entry.1 <= now {
                *entry = (0, now + window);
            }
            entry.0 = entry.0.saturating_add(1);
        }
        Ok(())
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Whole seconds for `Retry-After`, at least one.
fn retry_secs(wait: Duration) -> u64 {
    duration_ms(wait).div_ceil(1000).max(1)
}

#[cfg(test)]
mod tests {
    use futures_util::future::join_all;

    use super::*;

    fn config() -> LoginThrottleConfig {
        LoginThrottleConfig {
            per_email_per_client: 3,
            per_ip: 8,
            per_email: 5,
            window_secs: 60,
        }
    }

    async fn redis() -> ConnectionManager {
        let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
        client.get_connection_manager().await.unwrap()
    }

    /// A name unique to this run, so that runs do not share Redis counters.
    fn unique(name: &str) -> String {
        format!("{name}-{}", uuid::Uuid::now_v7())
    }

    async fn fail(throttle: &LoginThrottle, account: &str, client: &str) -> Result<(), u64> {
        throttle
            .reserve(account, Some(client))
            .await
            .map(|r| throttle.failed(r))
    }

    async fn concurrent_attempts_stop_at_the_limit(throttle: LoginThrottle) {
        let (account, client) = (unique("burst@example.com"), unique("client"));
        let attempts = (0..50).map(|_| throttle.reserve(&account, Some(&client)));
        let granted = join_all(attempts)
            .await
            .into_iter()
            .filter_map(Result::ok)
            .count();
        assert_eq!(granted, 10);
    }

    fn burst_config() -> LoginThrottleConfig {
        LoginThrottleConfig {
            per_email_per_client: 10,
            per_ip: 100,
            per_email: 1000,
            window_secs: 60,
        }
    }

    #[tokio::test]
    async fn in_process_concurrent_attempts_stop_at_the_limit() {
        concurrent_attempts_stop_at_the_limit(LoginThrottle::new(burst_config(), None)).await;
    }

    #[tokio::test]
    async fn redis_concurrent_attempts_stop_at_the_limit() {
        let throttle = LoginThrottle::new(burst_config(), Some(redis().await));
        concurrent_attempts_stop_at_the_limit(throttle).await;
    }

    async fn limits_name_the_account_and_the_client(throttle: LoginThrottle) {
        let victim = unique("victim@example.com");
        let (attacker, owner, third) = (unique("attacker"), unique("owner"), unique("third"));
        for _ in 0..3 {
            fail(&throttle, &victim, &attacker).await.unwrap();
        }
        let retry = fail(&throttle, &victim, &attacker).await.unwrap_err();
        assert!((1..=60).contains(&retry), "{retry}");
        // The owner, elsewhere, is not locked out by the attacker's failures, and succeeding
        // gives the attempt back.
        let attempt = throttle.reserve(&victim, Some(&owner)).await.unwrap();
        throttle.succeeded(attempt).await;
        // A client that fails on other accounts runs out of its own allowance.
        for i in 0..3 {
            fail(&throttle, &format!("{victim}-other-{i}"), &attacker)
                .await
                .unwrap();
        }
        for i in 0..2 {
            fail(&throttle, &format!("{victim}-more-{i}"), &attacker)
                .await
                .unwrap();
        }
        assert!(fail(&throttle, &unique("fresh"), &attacker).await.is_err());
        // The account's ceiling over all clients: 3 failures from the attacker, 2 more from a
        // third client reach 5, and then the account is closed to everyone for the window.
        fail(&throttle, &victim, &third).await.unwrap();
        fail(&throttle, &victim, &third).await.unwrap();
        assert!(throttle.reserve(&victim, Some(&owner)).await.is_err());
    }

    #[tokio::test]
    async fn in_process_limits_name_the_account_and_the_client() {
        limits_name_the_account_and_the_client(LoginThrottle::new(config(), None)).await;
    }

    #[tokio::test]
    async fn redis_limits_name_the_account_and_the_client() {
        let throttle = LoginThrottle::new(config(), Some(redis().await));
        limits_name_the_account_and_the_client(throttle).await;
    }

    async fn settled_attempts_are_given_back(throttle: LoginThrottle) {
        let (account, client) = (unique("owner@example.com"), unique("client"));
        fail(&throttle, &account, &client).await.unwrap();
        fail(&throttle, &account, &client).await.unwrap();
        // A success clears this client's failures on the account...
        let attempt = throttle.reserve(&account, Some(&client)).await.unwrap();
        throttle.succeeded(attempt).await;
        for _ in 0..2 {
            fail(&throttle, &account, &client).await.unwrap();
        }
        // ...and an attempt released (never checked) does not count.
        for _ in 0..5 {
            let attempt = throttle.reserve(&account, Some(&client)).await.unwrap();
            throttle.release(attempt).await;
        }
        fail(&throttle, &account, &client).await.unwrap();
        assert!(fail(&throttle, &account, &client).await.is_err());
    }

    #[tokio::test]
    async fn in_process_settled_attempts_are_given_back() {
        settled_attempts_are_given_back(LoginThrottle::new(config(), None)).await;
    }

    #[tokio::test]
    async fn redis_settled_attempts_are_given_back() {
        settled_attempts_are_given_back(LoginThrottle::new(config(), Some(redis().await))).await;
    }

    #[tokio::test]
    async fn replicas_share_the_counts_through_redis() {
        let redis = redis().await;
        let (account, client) = (unique("shared@example.com"), unique("client"));
        let first = LoginThrottle::new(config(), Some(redis.clone()));
        for _ in 0..3 {
            fail(&first, &account, &client).await.unwrap();
        }
        let replica = LoginThrottle::new(config(), Some(redis));
        assert!(replica.reserve(&account, Some(&client)).await.is_err());
        assert!(
            replica
                .reserve(&account, Some(&unique("elsewhere")))
                .await
                .is_ok()
        );
    }
}

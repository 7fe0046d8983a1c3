//! Throttling of failed logins per email and per client IP: shared through Redis when it is
//! configured (so that replicas count together), in-process otherwise or while Redis is down.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use tollgate_common::config::LoginThrottleConfig;

/// Counts failures in fixed windows.
pub struct LoginThrottle {
    config: LoginThrottleConfig,
    redis: Option<ConnectionManager>,
    local: Mutex<HashMap<String, (u32, Instant)>>,
}

/// Increments a failure counter, starting its window on the first failure.
const FAIL_SCRIPT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n";

impl LoginThrottle {
    pub fn new(config: LoginThrottleConfig, redis: Option<ConnectionManager>) -> Self {
        LoginThrottle {
            config,
            redis,
            local: Mutex::new(HashMap::new()),
        }
    }

    fn subjects(&self, email: &str, ip: Option<&str>) -> Vec<(String, u32)> {
        let mut subjects = vec![(
            format!("tollgate:login:email:{email}"),
            self.config.per_email,
        )];
        if let Some(ip) = ip {
            subjects.push((format!("tollgate:login:ip:{ip}"), self.config.per_ip));
        }
        subjects
    }

    fn window(&self) -> Duration {
        Duration::from_secs(self.config.window_secs)
    }

    /// `Err(seconds)` when either the email or the IP has used up its failures.
    pub async fn check(&self, email: &str, ip: Option<&str>) -> Result<(), u64> {
        for (key, limit) in self.subjects(email, ip) {
            let (count, ttl_ms) = self.read(&key).await;
            if count >= limit {
                return Err(ttl_ms.div_ceil(1000).max(1));
            }
        }
        Ok(())
    }

    /// Counts a failed attempt against the email and the IP.
    pub async fn failed(&self, email: &str, ip: Option<&str>) {
        for (key, _) in self.subjects(email, ip) {
            if let Some(redis) = &self.redis {
                let mut conn = redis.clone();
                let window_ms = self.config.window_secs.saturating_mul(1000);
                let counted: Result<i64, _> = redis::Script::new(FAIL_SCRIPT)
                    .key(&key)
                    .arg(window_ms)
                    .invoke_async(&mut conn)
                    .await;
                match counted {
                    Ok(_) => continue,
                    Err(err) => {
                        tracing::warn!(%err, "login throttle: Redis unavailable, counting locally")
                    }
                }
            }
            self.count_locally(&key);
        }
    }

    /// A successful login clears the email's failures (not the IP's).
    pub async fn succeeded(&self, email: &str) {
        let key = format!("tollgate:login:email:{email}");
        if let Some(redis) = &self.redis {
            let mut conn = redis.clone();
            let _: Result<i64, _> = redis::cmd("DEL").arg(&key).query_async(&mut conn).await;
        }
        if let Ok(mut local) = self.local.lock() {
            local.remove(&key);
        }
    }

    async fn read(&self, key: &str) -> (u32, u64) {
        if let Some(redis) = &self.redis {
            let mut conn = redis.clone();
            let read: Result<(Option<u32>, i64), _> = redis::pipe()
                .get(key)
                .pttl(key)
                .query_async(&mut conn)
                .await;
            match read {
                Ok((count, ttl)) => {
                    let remote = (count.unwrap_or(0), u64::try_from(ttl).unwrap_or(0));
                    // Failures counted locally during a Redis outage still count.
                    let local = self.read_locally(key);
                    return if local.0 > remote.0 { local } else { remote };
                }
                Err(err) => {
                    tracing::warn!(%err, "login throttle: Redis unavailable, reading locally")
                }
            }
        }
        self.read_locally(key)
    }

    fn read_locally(&self, key: &str) -> (u32, u64) {
        let Ok(local) = self.local.lock() else {
            return (0, 0);
        };
        match local.get(key) {
            Some((count, reset)) if *reset > Instant::now() => (
                *count,
                u64::try_from(reset.duration_since(Instant::now()).as_millis()).unwrap_or(0),
            ),
            _ => (0, 0),
        }
    }

    fn count_locally(&self, key: &str) {
        let Ok(mut local) = self.local.lock() else {
            return;
        };
        let now = Instant::now();
        if local.len() > 100_000 {
            local.retain(|_, (_, reset)| *reset > now);
        }
        let window = self.window();
        let entry = local.entry(key.to_owned()).or_insert((0, now + window));
        if entry.1 <= now {
            *entry = (0, now + window);
        }
        entry.0 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LoginThrottleConfig {
        LoginThrottleConfig {
            per_email: 3,
            per_ip: 5,
            window_secs: 60,
        }
    }

    async fn exercise(throttle: &LoginThrottle, email: &str, ip: &str) {
        let ip = Some(ip);
        for _ in 0..3 {
            assert!(throttle.check(email, ip).await.is_ok());
            throttle.failed(email, ip).await;
        }
        let retry = throttle.check(email, ip).await.unwrap_err();
        assert!((1..=60).contains(&retry), "{retry}");
        // another email from the same IP still has attempts, until the IP runs out
        let other = format!("other-{email}");
        assert!(throttle.check(&other, ip).await.is_ok());
        throttle.failed(&other, ip).await;
        throttle.failed(&other, ip).await;
        assert!(throttle.check(&other, ip).await.is_err());
        // a success clears the email, not the IP
        throttle.succeeded(email).await;
        assert!(throttle.check(email, None).await.is_ok());
        assert!(throttle.check(email, ip).await.is_err());
    }

    #[tokio::test]
    async fn in_process_throttle_counts_failures_per_email_and_ip() {
        exercise(
            &LoginThrottle::new(config(), None),
            "a@example.com",
            "198.51.100.7",
        )
        .await;
    }

    #[tokio::test]
    async fn redis_throttle_counts_failures_per_email_and_ip() {
        let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
        let redis = client.get_connection_manager().await.unwrap();
        // unique subjects per run, so that runs do not share counters
        let run = uuid::Uuid::now_v7();
        let email = format!("{run}@example.com");
        let ip = format!("ip-{run}");
        exercise(
            &LoginThrottle::new(config(), Some(redis.clone())),
            &email,
            &ip,
        )
        .await;
        // the counts live in Redis: another replica (with empty local state) sees them
        let replica = LoginThrottle::new(config(), Some(redis));
        assert!(
            replica
                .check("someone-else@example.com", Some(&ip))
                .await
                .is_err()
        );
        assert!(
            replica
                .check("someone-else@example.com", None)
                .await
                .is_ok()
        );
    }
}

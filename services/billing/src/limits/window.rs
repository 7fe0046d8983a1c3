//! The in-process sliding-window log: for one process, and for any process while Redis is
//! unreachable. The Redis implementation (`redis.rs`) is the same algorithm in a Lua script.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use super::{Bucket, BucketState, Decision, WINDOW_MS};

/// One bucket's admitted requests in the last window: (time, reservation id, cost).
#[derive(Default)]
struct Window {
    entries: VecDeque<(i64, String, u64)>,
    used: u64,
}

impl Window {
    fn prune(&mut self, now: i64) {
        while let Some((at, _, cost)) = self.entries.front() {
            if *at > now - WINDOW_MS {
                break;
            }
            self.used = self.used.saturating_sub(*cost);
            self.entries.pop_front();
        }
    }

    /// Milliseconds until the oldest entry leaves the window (0 when empty).
    fn reset_ms(&self, now: i64) -> u64 {
        self.entries.front().map_or(0, |(at, _, _)| {
            u64::try_from(at + WINDOW_MS - now).unwrap_or(0)
        })
    }

    /// Milliseconds until `cost` more fits under `limit`.
    fn wait_for(&self, cost: u64, limit: u64, now: i64) -> u64 {
        let mut used = self.used;
        for (at, _, entry_cost) in &self.entries {
            if used + cost <= limit {
                break;
            }
            used = used.saturating_sub(*entry_cost);
            if used + cost <= limit {
                return u64::try_from(at + WINDOW_MS - now).unwrap_or(0);
            }
        }
        // More than the limit on its own: it never fits; tell the client a full window.
        u64::try_from(WINDOW_MS).unwrap_or(60_000)
    }
}

/// Sliding windows kept in this process.
#[derive(Default)]
pub struct LocalWindows {
    windows: Mutex<HashMap<String, Window>>,
}

impl LocalWindows {
    pub fn acquire(&self, id: &str, buckets: &[Bucket], now: i64) -> Decision {
        let Ok(mut windows) = self.windows.lock() else {
            return Decision::unlimited(buckets);
        };
        if windows.len() > 100_000 {
            windows.retain(|_, w| {
                w.prune(now);
                !w.entries.is_empty()
            });
        }
        let mut denied = None;
        for (i, bucket) in buckets.iter().enumerate() {
            let window = windows.entry(bucket.key.clone()).or_default();
            window.prune(now);
            if denied.is_none() && window.used + bucket.cost > bucket.limit {
                denied = Some((i, window.wait_for(bucket.cost, bucket.limit, now)));
            }
        }
        if denied.is_none() {
            for bucket in buckets {
                let window = windows.entry(bucket.key.clone()).or_default();
                window.entries.push_back((now, id.to_owned(), bucket.cost));
                window.used += bucket.cost;
            }
        }
        let states = buckets
            .iter()
            .map(|bucket| {
                let window = windows.entry(bucket.key.clone()).or_default();
                BucketState {
                    limit: bucket.limit,
                    remaining: bucket.limit.saturating_sub(window.used),
                    reset_ms: window.reset_ms(now),
                }
            })
            .collect();
        Decision {
            allowed: denied.is_none(),
            denied_by: denied.map(|(i, _)| i),
            retry_after_ms: denied.map_or(0, |(_, wait)| wait),
            states,
        }
    }

    /// Replaces the cost recorded for reservation `id` in each named bucket.
    pub fn adjust(&self, id: &str, costs: &[(String, u64)]) {
        let Ok(mut windows) = self.windows.lock() else {
            return;
        };
        for (key, cost) in costs {
            // Settled soon after admission: the entry is near the newest end.
            if let Some(window) = windows.get_mut(key)
                && let Some(entry) = window
                    .entries
                    .iter_mut()
                    .rev()
                    .find(|(_, entry, _)| entry == id)
            {
                window.used = window.used.saturating_sub(entry.2) + cost;
                entry.2 = *cost;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rpm(key: &str, limit: u64) -> Bucket {
        Bucket {
            key: key.into(),
            limit,
            cost: 1,
        }
    }

    #[test]
    fn no_more_than_the_limit_in_any_window() {
        let windows = LocalWindows::default();
        let buckets = [rpm("k", 3)];
        for (i, at) in [0, 10_000, 20_000].into_iter().enumerate() {
            assert!(windows.acquire(&format!("r{i}"), &buckets, at).allowed);
        }
        let denied = windows.acquire("r3", &buckets, 59_999);
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after_ms, 1);
        assert_eq!(denied.states[0].remaining, 0);
        // the first entry leaves the window at 60 000: exactly one slot frees
        assert!(windows.acquire("r4", &buckets, 60_000).allowed);
        assert!(!windows.acquire("r5", &buckets, 60_001).allowed);
        assert!(windows.acquire("r6", &buckets, 70_000).allowed);
    }

    #[test]
    fn a_denied_request_takes_nothing_from_any_bucket() {
        let windows = LocalWindows::default();
        let tokens = |cost| Bucket {
            key: "t".into(),
            limit: 100,
            cost,
        };
        assert!(windows.acquire("a", &[rpm("r", 10), tokens(90)], 0).allowed);
        let denied = windows.acquire("b", &[rpm("r", 10), tokens(20)], 1);
        assert!(!denied.allowed);
        assert_eq!(denied.denied_by, Some(1));
        assert_eq!(
            denied.states[0].remaining, 9,
            "the request bucket was not charged"
        );
        assert_eq!(denied.retry_after_ms, 59_999);
    }

    #[test]
    fn token_reservations_are_corrected_to_the_real_usage() {
        let windows = LocalWindows::default();
        let tokens = |cost| Bucket {
            key: "t".into(),
            limit: 1000,
            cost,
        };
        assert!(windows.acquire("a", &[tokens(900)], 0).allowed);
        assert!(!windows.acquire("b", &[tokens(200)], 1).allowed);
        windows.adjust("a", &[("t".into(), 120)]);
        let after = windows.acquire("c", &[tokens(200)], 2);
        assert!(after.allowed);
        assert_eq!(after.states[0].remaining, 680);
    }

    #[test]
    fn a_request_larger_than_the_limit_never_fits() {
        let windows = LocalWindows::default();
        let denied = windows.acquire(
            "a",
            &[Bucket {
                key: "t".into(),
                limit: 10,
                cost: 11,
            }],
            0,
        );
        assert!(!denied.allowed);
        assert_eq!(denied.retry_after_ms, 60_000);
    }
}

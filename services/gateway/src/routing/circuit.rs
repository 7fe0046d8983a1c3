//! Circuit breaking per target: a target that keeps failing is skipped for a cool-down, then
//! one probe request is let through to see whether it has recovered.
//!
//! A provider's 429 on the deployment's account is counted per organization instead
//! ([`OrgBreakers`]): one tenant sending more than the account allows would otherwise open the
//! target for every tenant. Its own requests skip the target for the cool-down (trying the
//! route's other targets, or getting a quick 503), which also stops it hammering the shared
//! account; everyone else goes on. Errors a tenant cannot cause on a healthy provider
//! (5xx, timeouts, refused connections) still count against the target for all.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tollgate_common::OrgId;
use tollgate_common::config::CircuitBreakerConfig;

#[derive(Debug)]
enum Phase {
    /// Serving; the times of recent failures inside the window.
    Closed { failures: VecDeque<Instant> },
    /// Skipped until `until`.
    Open { until: Instant },
    /// One probe is out; everyone else is still skipped. A probe that never reports (its
    /// client went away) is replaced after a cool-down.
    HalfOpen { probe_since: Instant },
}

/// What the breaker currently lets through, for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: usize,
    window: Duration,
    cooldown: Duration,
    phase: Mutex<Phase>,
}

impl CircuitBreaker {
    pub fn new(config: &CircuitBreakerConfig) -> Self {
        CircuitBreaker {
            threshold: config.failures.max(1) as usize,
            window: Duration::from_millis(config.window_ms),
            cooldown: Duration::from_millis(config.cooldown_ms),
            phase: Mutex::new(Phase::Closed {
                failures: VecDeque::new(),
            }),
        }
    }

    /// Whether a request may go to this target now. An open circuit whose cool-down has passed
    /// turns half-open and lets exactly this caller through as the probe.
    pub fn try_acquire(&self) -> bool {
        self.try_acquire_at(Instant::now())
    }

    pub fn record_success(&self) {
        let mut phase = self.lock();
        *phase = Phase::Closed {
            failures: VecDeque::new(),
        };
    }

    pub fn record_failure(&self) {
        self.record_failure_at(Instant::now());
    }

    pub fn state(&self) -> CircuitState {
        match *self.lock() {
            Phase::Closed { .. } => CircuitState::Closed,
            Phase::Open { .. } => CircuitState::Open,
            Phase::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    fn try_acquire_at(&self, now: Instant) -> bool {
        let mut phase = self.lock();
        match &*phase {
            Phase::Closed { .. } => true,
            Phase::Open { until } if now < *until => false,
            Phase::HalfOpen { probe_since } if now < *probe_since + self.cooldown => false,
            Phase::Open { .. } | Phase::HalfOpen { .. } => {
                *phase = Phase::HalfOpen { probe_since: now };
                true
            }
        }
    }

    fn record_failure_at(&self, now: Instant) {
        let mut phase = self.lock();
        match &mut *phase {
            Phase::Closed { failures } => {
                while failures
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > self.window)
                {
                    failures.pop_front();
                }
                failures.push_back(now);
                if failures.len() >= self.threshold {
                    *phase = Phase::Open {
                        until: now + self.cooldown,
                    };
                }
            }
            Phase::HalfOpen { .. } | Phase::Open { .. } => {
                *phase = Phase::Open {
                    until: now + self.cooldown,
                };
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Phase> {
        // The phase is plain data: a panic elsewhere cannot leave it inconsistent.
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Closed with no failure in its window: it holds nothing worth keeping.
    fn is_idle_at(&self, now: Instant) -> bool {
        match &*self.lock() {
            Phase::Closed { failures } => failures
                .back()
                .is_none_or(|last| now.duration_since(*last) > self.window),
            Phase::Open { .. } | Phase::HalfOpen { .. } => false,
        }
    }
}

/// Organizations tracked per target at most: past it, idle breakers are dropped, and an
/// organization that still finds no room is simply not throttled per organization.
const MAX_TRACKED_ORGS: usize = 10_000;

/// One breaker per organization for a target's throttling (429) answers.
#[derive(Debug)]
pub struct OrgBreakers {
    config: CircuitBreakerConfig,
    breakers: Mutex<HashMap<OrgId, CircuitBreaker>>,
    /// Whether any organization is tracked: while none is (a provider that never throttles),
    /// a request checks one atomic instead of taking the lock every worker shares.
    any: AtomicBool,
}

impl OrgBreakers {
    pub fn new(config: &CircuitBreakerConfig) -> Self {
        OrgBreakers {
            config: config.clone(),
            breakers: Mutex::new(HashMap::new()),
            any: AtomicBool::new(false),
        }
    }

    /// Whether `org`'s requests may go to the target now (see [`CircuitBreaker::try_acquire`]).
    pub fn try_acquire(&self, org: OrgId) -> bool {
        if !self.any.load(Ordering::Relaxed) {
            return true;
        }
        self.lock()
            .get(&org)
            .is_none_or(CircuitBreaker::try_acquire)
    }

    /// The target throttled one of `org`'s requests.
    pub fn record_throttled(&self, org: OrgId) {
        let now = Instant::now();
        let mut breakers = self.lock();
        if !breakers.contains_key(&org) && breakers.len() >= MAX_TRACKED_ORGS {
            breakers.retain(|_, breaker| !breaker.is_idle_at(now));
            if breakers.len() >= MAX_TRACKED_ORGS {
                return;
            }
        }
        breakers
            .entry(org)
            .or_insert_with(|| CircuitBreaker::new(&self.config))
            .record_failure_at(now);
        self.any.store(true, Ordering::Relaxed);
    }

    /// The target answered one of `org`'s requests.
    pub fn record_success(&self, org: OrgId) {
        if !self.any.load(Ordering::Relaxed) {
            return;
        }
        let mut breakers = self.lock();
        // A breaker closed again holds nothing: forget it, and with the last one, the lock.
        if breakers.remove(&org).is_some() && breakers.is_empty() {
            self.any.store(false, Ordering::Relaxed);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<OrgId, CircuitBreaker>> {
        self.breakers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> CircuitBreaker {
        CircuitBreaker::new(&CircuitBreakerConfig {
            failures: 3,
            window_ms: 1_000,
            cooldown_ms: 5_000,
        })
    }

    #[test]
    fn opens_after_threshold_failures_in_window() {
        let b = breaker();
        let t0 = Instant::now();
        b.record_failure_at(t0);
        b.record_failure_at(t0 + Duration::from_millis(10));
        assert!(b.try_acquire_at(t0 + Duration::from_millis(20)));
        b.record_failure_at(t0 + Duration::from_millis(30));
        assert_eq!(b.state(), CircuitState::Open);
        assert!(!b.try_acquire_at(t0 + Duration::from_millis(40)));
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let b = breaker();
        let t0 = Instant::now();
        b.record_failure_at(t0);
        b.record_failure_at(t0 + Duration::from_millis(10));
        b.record_failure_at(t0 + Duration::from_millis(2_000));
        assert_eq!(b.state(), CircuitState::Closed);
    }

    #[test]
    fn after_cooldown_one_probe_passes_and_its_outcome_decides() {
        let b = breaker();
        let t0 = Instant::now();
        for i in 0..3 {
            b.record_failure_at(t0 + Duration::from_millis(i));
        }
        let later = t0 + Duration::from_millis(5_100);
        assert!(b.try_acquire_at(later), "the probe");
        assert!(!b.try_acquire_at(later), "only one probe at a time");
        b.record_failure_at(later);
        assert_eq!(b.state(), CircuitState::Open);

        let again = later + Duration::from_millis(5_100);
        assert!(b.try_acquire_at(again));
        b.record_success();
        assert_eq!(b.state(), CircuitState::Closed);
        assert!(b.try_acquire_at(again));
    }

    #[test]
    fn one_organizations_throttling_opens_its_own_breaker_only() {
        let breakers = OrgBreakers::new(&CircuitBreakerConfig {
            failures: 3,
            window_ms: 1_000,
            cooldown_ms: 5_000,
        });
        let (noisy, quiet) = (OrgId::generate(), OrgId::generate());
        for _ in 0..3 {
            breakers.record_throttled(noisy);
        }
        assert!(!breakers.try_acquire(noisy));
        assert!(breakers.try_acquire(quiet));
    }

    #[test]
    fn a_probe_that_never_reports_is_replaced_after_a_cooldown() {
        let b = breaker();
        let t0 = Instant::now();
        for i in 0..3 {
            b.record_failure_at(t0 + Duration::from_millis(i));
        }
        let probe = t0 + Duration::from_millis(5_100);
        assert!(b.try_acquire_at(probe));
        assert!(!b.try_acquire_at(probe + Duration::from_millis(100)));
        assert!(b.try_acquire_at(probe + Duration::from_millis(5_001)));
    }
}

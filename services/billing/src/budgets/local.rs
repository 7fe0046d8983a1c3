//! Budget counters kept in this process: for a deployment without Redis, and while Redis is
//! unreachable.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Charge, Reservation};
use crate::fallback::Counted;

#[derive(Debug)]
struct Counter {
    spent: i64,
    reserved: i64,
    expires: Option<Instant>,
}

/// Counters behind one lock: a reservation checks and charges all its budgets at once.
#[derive(Debug, Default)]
pub struct LocalCounters {
    counters: Mutex<HashMap<String, Counter>>,
}

impl LocalCounters {
    pub fn reserve(&self, charges: &[Charge], amount: i64) -> Reservation {
        let now = Instant::now();
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        // Expired periods go when a new one is first charged; cheap, since this runs rarely
        // compared with the map's size only at period boundaries.
        if counters.len() > 10_000 {
            counters.retain(|_, c| c.expires.is_none_or(|at| at > now));
        }
        for (index, charge) in charges.iter().enumerate() {
            let counter = counters
                .entry(charge.counter.clone())
                .or_insert_with(|| Counter {
                    spent: charge.baseline,
                    reserved: 0,
                    expires: charge.ttl_secs.map(|s| now + Duration::from_secs(s)),
                });
            if counter.spent + counter.reserved + amount > charge.limit {
                return Reservation::Exhausted {
                    index,
                    spent: counter.spent,
                    reserved: counter.reserved,
                };
            }
        }
        for charge in charges {
            if let Some(counter) = counters.get_mut(&charge.counter) {
                counter.reserved += amount;
            }
        }
        Reservation::Admitted(Counted::Local)
    }

    pub fn settle(&self, counters: &[String], reserved: i64, actual: i64) {
        let mut map = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        for name in counters {
            if let Some(counter) = map.get_mut(name) {
                counter.reserved = (counter.reserved - reserved).max(0);
                counter.spent += actual;
            }
        }
    }

    pub fn read(&self, counter: &str) -> Option<(i64, i64)> {
        let map = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        map.get(counter).map(|c| (c.spent, c.reserved))
    }
}

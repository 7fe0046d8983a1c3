//! The latency histogram kept in every usage rollup row, so that analytics can give
//! percentiles without reading the raw ledger.
//!
//! Buckets grow by about 1.5× from 5 ms to 38 s: the estimate of a percentile is within its
//! bucket, so its error is at most half a bucket's width (about ±20 %), which is what a
//! dashboard needs while each rollup row stays a fixed set of integer columns.

/// Upper bounds (inclusive), in milliseconds, of every bucket but the last, which takes the
/// rest.
pub const LATENCY_BOUNDS_MS: [u64; 23] = [
    5, 8, 12, 18, 27, 40, 60, 90, 135, 200, 300, 450, 675, 1_000, 1_500, 2_250, 3_400, 5_000,
    7_500, 11_000, 17_000, 25_000, 38_000,
];

/// How many buckets a histogram has.
pub const LATENCY_BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;

/// The rollup columns holding the buckets, in order.
pub fn latency_column(bucket: usize) -> String {
    format!("latency_b{bucket:02}")
}

/// The bucket a latency falls in.
pub fn latency_bucket(latency_ms: u64) -> usize {
    LATENCY_BOUNDS_MS.partition_point(|&bound| bound < latency_ms)
}

/// Requests per latency bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencyHistogram(pub [i64; LATENCY_BUCKETS]);

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram([0; LATENCY_BUCKETS])
    }
}

impl LatencyHistogram {
    pub fn record(&mut self, latency_ms: u64) {
        self.0[latency_bucket(latency_ms)] += 1;
    }

    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            *mine += theirs;
        }
    }

    pub fn count(&self) -> i64 {
        self.0.iter().sum()
    }

    /// The latency below which a fraction `q` (0..=1) of requests fall, interpolated within
    /// its bucket; `None` for an empty histogram. The open last bucket answers its lower bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total <= 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0i64;
        for (bucket, &count) in self.0.iter().enumerate() {
            if count > 0 && (below + count) as f64 >= rank {
                let lower = if bucket == 0 {
                    0.0
                } else {
                    LATENCY_BOUNDS_MS[bucket - 1] as f64
                };
                let Some(&upper) = LATENCY_BOUNDS_MS.get(bucket) else {
                    return Some(lower);
                };
                let within = ((rank - below as f64) / count as f64).clamp(0.0, 1.0);
                return Some(lower + within * (upper as f64 - lower));
            }
            below += count;
        }
        LATENCY_BOUNDS_MS.last().map(|&b| b as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_fall_in_the_bucket_whose_bound_covers_them() {
        assert_eq!(latency_bucket(0), 0);
        assert_eq!(latency_bucket(5), 0);
        assert_eq!(latency_bucket(6), 1);
        assert_eq!(latency_bucket(1_000), 13);
        assert_eq!(latency_bucket(1_001), 14);
        assert_eq!(latency_bucket(38_000), 22);
        assert_eq!(latency_bucket(u64::MAX), LATENCY_BUCKETS - 1);
        assert_eq!(latency_column(3), "latency_b03");
    }

    #[test]
    fn quantiles_are_estimated_within_a_bucket() {
        let mut h = LatencyHistogram::default();
        assert_eq!(h.quantile(0.5), None);
        // 100 requests spread evenly over 200..300 ms land in the (200, 300] bucket
        for ms in 201..=300 {
            h.record(ms);
        }
        let p50 = h.quantile(0.5).unwrap();
        assert!((p50 - 250.0).abs() < 1.0, "{p50}");
        let p95 = h.quantile(0.95).unwrap();
        assert!((p95 - 295.0).abs() < 1.0, "{p95}");

        // 90 fast and 10 slow requests: p50 among the fast, p95 among the slow
        let mut h = LatencyHistogram::default();
        for _ in 0..90 {
            h.record(10);
        }
        for _ in 0..10 {
            h.record(2_000);
        }
        assert!(h.quantile(0.5).unwrap() <= 12.0);
        let p95 = h.quantile(0.95).unwrap();
        assert!((1_500.0..=2_250.0).contains(&p95), "{p95}");

        let mut other = LatencyHistogram::default();
        other.record(60_000);
        h.merge(&other);
        assert_eq!(h.count(), 101);
        assert_eq!(h.quantile(1.0), Some(38_000.0));
    }
}

//! Percentiles and duration parsing: the small pure parts of the load generator.

use std::time::Duration;

/// The `p`-th percentile (0..=100) of `sorted` by the nearest-rank method: the smallest value
/// such that at least `p`% of the values are at or below it. `None` for an empty slice.
///
/// `sorted` must be sorted ascending.
pub(crate) fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    let last = sorted.len().checked_sub(1)?;
    let p = p.clamp(0.0, 100.0);
    // Rank 1..=n; p = 0 maps to the minimum.
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    let index = rank.saturating_sub(1).min(last);
    sorted.get(index).copied()
}

/// p50, p90, p99 and max of `values` (sorted in place), as a JSON object in whole units.
pub(crate) fn summary(values: &mut [u64]) -> serde_json::Value {
    values.sort_unstable();
    let pick = |p: f64| percentile(values, p).map_or(serde_json::Value::Null, Into::into);
    serde_json::json!({
        "p50": pick(50.0),
        "p90": pick(90.0),
        "p99": pick(99.0),
        "max": pick(100.0),
    })
}

/// Parses `10s`, `500ms`, `1.5s`, `2m`, `250us` or a bare number of seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}`: expected a duration such as 10s, 500ms or 2m"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "m" | "min" => value * 60.0,
        other => {
            return Err(format!(
                "`{text}`: unknown unit `{other}` (use us, ms, s or m)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|err| format!("`{text}`: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_of_empty_is_none() {
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn percentile_of_one_value_is_that_value() {
        for p in [0.0, 1.0, 50.0, 99.0, 100.0] {
            assert_eq!(percentile(&[7], p), Some(7));
        }
    }

    #[test]
    fn percentile_nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 0.0), Some(1));
        assert_eq!(percentile(&values, 1.0), Some(1));
        assert_eq!(percentile(&values, 50.0), Some(50));
        assert_eq!(percentile(&values, 90.0), Some(90));
        assert_eq!(percentile(&values, 99.0), Some(99));
        assert_eq!(percentile(&values, 99.9), Some(100));
        assert_eq!(percentile(&values, 100.0), Some(100));
    }

    #[test]
    fn percentile_small_sets_round_up() {
        let values = [10, 20, 30, 40];
        assert_eq!(percentile(&values, 25.0), Some(10));
        assert_eq!(percentile(&values, 26.0), Some(20));
        assert_eq!(percentile(&values, 50.0), Some(20));
        assert_eq!(percentile(&values, 75.0), Some(30));
        assert_eq!(percentile(&values, 99.0), Some(40));
    }

    #[test]
    fn percentile_clamps_out_of_range() {
        let values = [1, 2, 3];
        assert_eq!(percentile(&values, -5.0), Some(1));
        assert_eq!(percentile(&values, 250.0), Some(3));
    }

    #[test]
    fn summary_sorts_and_reports() {
        let mut values = vec![5, 1, 4, 2, 3];
        let json = summary(&mut values);
        assert_eq!(json["p50"], 3);
        assert_eq!(json["p90"], 5);
        assert_eq!(json["max"], 5);
        assert_eq!(values, [1, 2, 3, 4, 5]);
        assert_eq!(summary(&mut [])["p50"], serde_json::Value::Null);
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("").is_err());
    }
}

//! The mock's notion of "now", which tests may move forward, and calendar arithmetic for
//! billing periods.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Unix seconds of the real clock.
pub(crate) fn real_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The real clock plus an offset that [`Clock::advance`] grows. Object timestamps, validation
/// windows (meter event timestamps, idempotency key expiry) use it; webhook signatures use the
/// real clock, because receivers check them against theirs.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    offset: AtomicI64,
}

impl Clock {
    pub fn now(&self) -> i64 {
        real_now().saturating_add(self.offset.load(Ordering::Relaxed))
    }

    pub fn advance(&self, seconds: i64) {
        self.offset.fetch_add(seconds, Ordering::Relaxed);
    }
}

/// `(year, month 1..=12, day 1..=31)` of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

/// Days since 1970-01-01 of a civil date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The calendar year of a Unix timestamp.
pub(crate) fn year_of(timestamp: i64) -> i64 {
    civil_from_days(timestamp.div_euclid(86_400)).0
}

/// `timestamp` moved by `count` billing intervals (`day`, `week`, `month`, `year`); months keep
/// the day of the month where it exists and clamp to the month's end where it does not.
pub(crate) fn add_interval(timestamp: i64, interval: &str, count: i64) -> i64 {
    let days = timestamp.div_euclid(86_400);
    let seconds = timestamp.rem_euclid(86_400);
    match interval {
        "day" => timestamp + 86_400 * count,
        "week" => timestamp + 7 * 86_400 * count,
        "month" | "year" => {
            let months = if interval == "year" {
                12 * count
            } else {
                count
            };
            let (year, month, day) = civil_from_days(days);
            let index = year * 12 + i64::from(month) - 1 + months;
            let (new_year, new_month) = (
                index.div_euclid(12),
                u32::try_from(index.rem_euclid(12) + 1).unwrap_or(1),
            );
            let new_day = day.min(days_in_month(new_year, new_month));
            days_from_civil(new_year, new_month, new_day) * 86_400 + seconds
        }
        _ => timestamp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_round_trips() {
        for days in [-1000, 0, 59, 60, 10_957, 19_782, 20_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        // 2024-01-31T10:00:00Z plus one month is 2024-02-29T10:00:00Z.
        assert_eq!(add_interval(1_706_695_200, "month", 1), 1_709_200_800);
        assert_eq!(add_interval(1_706_695_200, "year", 1), 1_738_317_600);
        assert_eq!(year_of(1_706_695_200), 2024);
    }

    #[test]
    fn clock_moves_forward() {
        let clock = Clock::default();
        let before = clock.now();
        clock.advance(86_400);
        assert!(clock.now() >= before + 86_400);
    }
}

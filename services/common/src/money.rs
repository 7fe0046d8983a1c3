//! Money in storage: an integer count of picodollars (10⁻¹² USD).
//!
//! Every catalog price has at most six decimals per million tokens, so the cost of any whole
//! number of tokens is a whole number of picodollars: the conversion is exact, and the
//! databases can sum it without decimal types (an `i64` holds about 9.2 million USD).

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};

/// 10¹²: picodollars per dollar.
const PICO_PER_USD: Decimal = Decimal::from_parts(3_567_587_328, 232, 0, false, 0);

/// An amount of USD as whole picodollars.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Picodollars(pub i64);

impl Picodollars {
    pub const ZERO: Picodollars = Picodollars(0);

    /// Rounds up, so that a fraction of a picodollar is never dropped from a charge; `None`
    /// when the amount does not fit.
    pub fn from_usd(usd: Decimal) -> Option<Picodollars> {
        usd.checked_mul(PICO_PER_USD)?
            .ceil()
            .to_i64()
            .map(Picodollars)
    }

    pub fn to_usd(self) -> Decimal {
        Decimal::from(self.0) / PICO_PER_USD
    }

    /// Whole nanodollars, rounded up: the unit of the shared budget counters, whose Lua
    /// arithmetic is exact only up to 2⁵³ (about 9 million USD in nanodollars).
    pub fn to_nanos_ceil(self) -> i64 {
        self.0.div_euclid(1000) + i64::from(self.0.rem_euclid(1000) != 0)
    }

    pub fn from_nanos(nanos: i64) -> Picodollars {
        Picodollars(nanos.saturating_mul(1000))
    }

    pub fn saturating_add(self, other: Picodollars) -> Picodollars {
        Picodollars(self.0.saturating_add(other.0))
    }
}

impl std::fmt::Display for Picodollars {
    /// As USD with no trailing zeros beyond cents: `$0.0123`, `$5.00`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let usd = self.to_usd().normalize();
        if usd.scale() < 2 {
            write!(f, "${usd:.2}")
        } else {
            write!(f, "${usd}")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn usd(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap_or_default()
    }

    #[test]
    fn conversion_is_exact_for_catalog_precision() {
        // 1 token at $0.0375 per million: 37.5 nanodollars.
        let one_token = usd("0.0375") / Decimal::from(1_000_000);
        let pico = Picodollars::from_usd(one_token);
        assert_eq!(pico, Some(Picodollars(37_500)));
        assert_eq!(Picodollars(37_500).to_usd(), one_token);
        assert_eq!(PICO_PER_USD, Decimal::from(1_000_000_000_000_i64));
    }

    #[test]
    fn sub_picodollar_fractions_round_up_and_nanos_round_up() {
        assert_eq!(
            Picodollars::from_usd(usd("0.0000000000001")),
            Some(Picodollars(1))
        );
        assert_eq!(Picodollars(37_500).to_nanos_ceil(), 38);
        assert_eq!(Picodollars(38_000).to_nanos_ceil(), 38);
        assert_eq!(Picodollars(0).to_nanos_ceil(), 0);
        assert_eq!(Picodollars::from_usd(usd("10000000")), None);
    }

    #[test]
    fn displays_as_dollars() {
        assert_eq!(
            Picodollars::from_usd(usd("5"))
                .unwrap_or_default()
                .to_string(),
            "$5.00"
        );
        assert_eq!(
            Picodollars::from_usd(usd("0.0123"))
                .unwrap_or_default()
                .to_string(),
            "$0.0123"
        );
    }
}

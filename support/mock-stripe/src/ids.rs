//! Object ids with Stripe's prefixes (`cus_`, `cs_test_`, `pm_`, ...) and random bodies.

use rand::Rng as _;
use rand::distr::Alphanumeric;

/// `prefix` followed by `len` random letters and digits, like Stripe's ids.
pub(crate) fn new(prefix: &str, len: usize) -> String {
    let mut id = String::with_capacity(prefix.len() + len);
    id.push_str(prefix);
    id.extend(
        rand::rng()
            .sample_iter(Alphanumeric)
            .take(len)
            .map(char::from),
    );
    id
}

/// Random hex, for fingerprints and webhook secrets.
pub(crate) fn hex(len: usize) -> String {
    let bytes: Vec<u8> = (0..len.div_ceil(2)).map(|_| rand::random::<u8>()).collect();
    let mut text = ::hex::encode(bytes);
    text.truncate(len);
    text
}

/// Ids for each kind of object.
pub(crate) mod kind {
    pub const CUSTOMER: (&str, usize) = ("cus_", 14);
    pub const CHECKOUT_SESSION: (&str, usize) = ("cs_test_", 58);
    pub const PORTAL_SESSION: (&str, usize) = ("bps_", 24);
    pub const PORTAL_CONFIGURATION: (&str, usize) = ("bpc_", 24);
    pub const PAYMENT_METHOD: (&str, usize) = ("pm_", 24);
    pub const SETUP_INTENT: (&str, usize) = ("seti_", 24);
    pub const PAYMENT_INTENT: (&str, usize) = ("pi_", 24);
    pub const INVOICE: (&str, usize) = ("in_", 24);
    pub const INVOICE_LINE: (&str, usize) = ("il_", 24);
    pub const PRICE: (&str, usize) = ("price_", 24);
    pub const PRODUCT: (&str, usize) = ("prod_", 14);
    pub const SUBSCRIPTION: (&str, usize) = ("sub_", 24);
    pub const SUBSCRIPTION_ITEM: (&str, usize) = ("si_", 14);
    pub const METER: (&str, usize) = ("mtr_test_", 32);
    pub const EVENT: (&str, usize) = ("evt_", 24);
    pub const REQUEST: (&str, usize) = ("req_", 14);
    pub const CHECKOUT_LINE_ITEM: (&str, usize) = ("li_", 24);
}

/// A new id of `kind`.
pub(crate) fn of(kind: (&str, usize)) -> String {
    new(kind.0, kind.1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_have_prefix_and_length() {
        let id = super::of(super::kind::CHECKOUT_SESSION);
        assert!(id.starts_with("cs_test_"));
        assert_eq!(id.len(), 8 + 58);
        assert!(id.chars().all(|c| c == '_' || c.is_ascii_alphanumeric()));
        assert_eq!(super::hex(16).len(), 16);
    }
}

//! Payments: what organizations owe for their usage, and how they pay it through Stripe.
//!
//! - [`pricing`]: billable amounts (provider cost plus markup, sell prices, platform fees).
//! - [`accounts`]: each organization's billing account (customer, card, plan, standing,
//!   prepaid credit), processed Stripe events, invoices, credit top-ups.
//! - [`reports`]: hourly usage reports from the ledger's rollups, drawn from the free
//!   allowance and credit first, the rest queued for Stripe's meter.
//! - [`outbox`]: calls to Stripe, queued in the database and sent with retries, exactly once.
//! - [`stripe`]: the Stripe API calls themselves.

pub mod accounts;
pub mod outbox;
pub mod pricing;
pub mod reports;
pub mod stripe;
pub mod webhooks;

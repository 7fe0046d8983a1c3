//! The near-miss guard.

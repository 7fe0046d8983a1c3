//! The case counts and failure files of the workspace's property tests. Every crate's fuzz
//! tests include this file by path, so each compiles it with its own manifest directory and
//! test name: failures are kept in `tests/proptest-regressions/<test name>.txt` of that crate.

#![allow(dead_code, reason = "not every property test scales its cases down")]

use proptest::test_runner::{Config, FileFailurePersistence};

const REGRESSIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/proptest-regressions/",
    env!("CARGO_CRATE_NAME"),
    ".txt"
);

/// `cases` unless `PROPTEST_CASES` asks for another number.
pub fn config(cases: u32) -> Config {
    scaled_config(cases, 1)
}

/// `cases`, or a `share`th of the number `PROPTEST_CASES` asks for: for properties whose cases
/// cost far more than the others'.
pub fn scaled_config(cases: u32, share: u32) -> Config {
    let defaults = Config::default();
    Config {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            (defaults.cases / share).max(1)
        } else {
            cases
        },
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(REGRESSIONS))),
        ..defaults
    }
}

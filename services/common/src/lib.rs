//! What several Tollgate services share: configuration, the price catalog and telemetry.

pub mod catalog;
pub mod config;
pub mod telemetry;

pub use catalog::{ModelPrice, PriceCatalog, TokenUsage};
pub use config::{Config, ConfigError, ConfigProblem, ProviderKind, Secret};

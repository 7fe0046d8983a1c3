//! Tollgate's auth service: organizations, teams, users and roles; sign-up, login and JWT
//! sessions; virtual keys and their verification on the gateway's hot path.
//!
//! - [`store`]: the tables, on SQLite or PostgreSQL, every tenant query scoped by organization.
//! - [`service`]: the operations, each checked against the caller's role.
//! - [`http`]: the REST surface under `/auth`.
//! - [`verify`]: [`KeyVerifier`], the trait the gateway calls, and [`KeyCache`], its in-memory
//!   implementation over a [`KeySource`] (the database, or [`client::HttpKeySource`] when split).
//! - [`feed`]: key changes reaching every process through Redis pub/sub.
//! - [`throttle`], [`client_address`]: failed logins counted per account and client.
//! - [`mailer`]: sign-up confirmations and notices to account owners.
//! - [`seal`]: secrets kept in the database, encrypted.
//! - [`startup`]: wiring all of it from the configuration.

pub mod client;
pub mod client_address;
pub mod error;
pub mod feed;
pub mod http;
pub mod mailer;
pub mod provider_keys;
pub mod roles;
pub mod seal;
pub mod secrets;
pub mod service;
pub mod sessions;
pub mod startup;
pub mod store;
pub mod throttle;
pub mod verify;

pub use error::AuthError;
pub use feed::KeyChangeFeed;
pub use roles::Role;
pub use service::{Actor, AuthService, Caller};
pub use startup::{AuthRuntime, StartError};
pub use store::AuthStore;
pub use verify::{KeyCache, KeyRejection, KeySource, KeyVerifier};

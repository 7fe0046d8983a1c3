//! Building the auth service from the configuration: storage, signing keys, Redis, the key
//! cache and its change feed, mail.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tollgate_common::Config;
use tollgate_common::body::BodyLimits;
use tollgate_common::outbound::OutboundPolicy;

use crate::client::HttpKeySource;
use crate::feed::{KeyChangeFeed, spawn_listener};
use crate::http::AuthHttp;
use crate::mailer::{self, Mailer};
use crate::provider_keys::ProviderKeySeal;
use crate::seal::SecretSeal;
use crate::service::{AuthService, OwnProviderKeys};
use crate::sessions::{
    AccessTokens, StoredSigningSecret, open_signing_secret, seal_signing_secret,
};
use crate::store::{AuthStore, StoreError};
use crate::throttle::LoginThrottle;
use crate::verify::{KeyCache, KeySource};

/// How often last-used times are written back.
const LAST_USED_FLUSH: Duration = Duration::from_secs(30);

/// Kid of the signing key the platform generates when the config names none.
const GENERATED_KID: &str = "generated-1";

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the database: {0}")]
    Store(#[from] StoreError),
    #[error("invalid redis.url: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("cannot set up the auth service: {0}")]
    Setup(String),
}

/// What the rest of the platform uses of the auth service.
pub struct AuthRuntime {
    /// Present when this process runs the auth service itself.
    pub http: Option<Arc<AuthHttp>>,
    /// The gateway's key verifier.
    pub keys: Arc<KeyCache>,
    /// This process's Redis connection, for the other services to share.
    pub redis: Option<ConnectionManager>,
    /// The Redis client, for services that need a connection of their own.
    pub redis_client: Option<redis::Client>,
    /// The database, when this process opened it (not a gateway verifying keys remotely).
    pub store: Option<AuthStore>,
}

/// The shared Redis connection of this process, when `redis.url` is set (lazy: the platform
/// starts and serves while Redis is down).
pub fn redis_manager(
    config: &Config,
) -> Result<Option<(redis::Client, ConnectionManager)>, StartError> {
    let Some(url) = &config.redis.url else {
        return Ok(None);
    };
    let client = redis::Client::open(url.as_str())?;
    // Lazy: the platform starts (and serves, with per-process state) while Redis is down.
    let manager = ConnectionManager::new_lazy_with_config(
        client.clone(),
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2),
    )?;
    Ok(Some((client, manager)))
}

/// The seal of organizations' own provider keys, where the deployment lets them bring some.
fn provider_key_seal(config: &Config) -> Result<Option<Arc<ProviderKeySeal>>, StartError> {
    let byok = &config.billing.bring_your_own_key;
    match (&byok.encryption_key, byok.enabled) {
        (Some(key), true) => ProviderKeySeal::new(key)
            .map(|seal| Some(Arc::new(seal)))
            .map_err(|e| {
                StartError::Setup(format!("billing.bring_your_own_key.encryption_key: {e}"))
            }),
        _ => Ok(None),
    }
}

/// Opens storage and runs the migrations.
pub async fn open_store(config: &Config) -> Result<AuthStore, StartError> {
    let store = AuthStore::connect(&config.storage.effective_database_url()).await?;
    store.migrate().await?;
    Ok(store)
}

/// The mailer `auth.mailer` describes, if any.
fn configured_mailer(config: &Config) -> Result<Option<Arc<dyn Mailer>>, StartError> {
    config
        .auth
        .mailer
        .as_ref()
        .map(|mailer| {
            mailer::configured(mailer)
                .map(Arc::from)
                .map_err(|e| StartError::Setup(format!("auth.mailer: {e}")))
        })
        .transpose()
}

/// Starts the auth service in this process (with `serve_api`) and the gateway's key verifier.
/// With `auth.service_url` set and `serve_api` false, keys are verified over HTTP instead.
pub async fn start(config: &Config, serve_api: bool) -> Result<AuthRuntime, StartError> {
    start_with_mailer(config, serve_api, configured_mailer(config)?).await
}

/// [`start`], with mail sent through `mailer` rather than the configured one.
pub async fn start_with_mailer(
    config: &Config,
    serve_api: bool,
    mailer: Option<Arc<dyn Mailer>>,
) -> Result<AuthRuntime, StartError> {
    if serve_api && config.auth.verifies_signups() && mailer.is_none() {
        return Err(StartError::Setup(
            "auth.signup.verify_email needs auth.mailer".into(),
        ));
    }
    let redis = redis_manager(config)?;
    let ttl = Duration::from_secs(config.auth.key_cache_ttl_secs);
    let remote = match (&config.auth.service_url, &config.auth.service_token) {
        (Some(url), Some(token)) if !serve_api => Some(
            HttpKeySource::new(url, token.clone()).map_err(|e| StartError::Setup(e.to_string()))?,
        ),
        _ => None,
    };
    let (store, source): (Option<AuthStore>, Arc<dyn KeySource>) = match remote {
        Some(remote) => (None, Arc::new(remote)),
        None => {
            let store = open_store(config).await?;
            (Some(store.clone()), Arc::new(store))
        }
    };
    let seal = provider_key_seal(config)?;
    let keys = Arc::new(KeyCache::new(source, ttl).with_provider_key_seal(seal.clone()));
    keys.spawn_last_used_flusher(LAST_USED_FLUSH);
    if let Some((client, _)) = &redis {
        spawn_listener(client.clone(), keys.clone());
    }
    let http = match (serve_api, store.clone()) {
        (true, Some(store)) => {
            let tokens = access_tokens(config, &store).await?;
            let feed = match &redis {
                Some((_, manager)) => {
                    KeyChangeFeed::with_redis(Some(keys.clone()), manager.clone())
                }
                None => KeyChangeFeed::local(Some(keys.clone())),
            };
            let throttle = LoginThrottle::new(
                config.auth.login_throttle.clone(),
                redis.as_ref().map(|(_, m)| m.clone()),
            );
            let own_keys = seal.map(|seal| OwnProviderKeys {
                seal,
                providers: config.providers.keys().cloned().collect(),
            });
            let service = AuthService::new(store, tokens, throttle, feed, config.auth.clone())
                .await
                .map_err(|e| StartError::Setup(e.to_string()))?
                .with_own_provider_keys(own_keys)
                .with_outbound_policy(OutboundPolicy::new(&config.outbound))
                .with_mailer(mailer)
                .with_ceilings(config.limits.clone(), config.billing.stripe.is_some())
                .with_signup_throttle(LoginThrottle::for_signups(
                    &config.auth.signup_throttle,
                    redis.as_ref().map(|(_, m)| m.clone()),
                ));
            Some(Arc::new(AuthHttp {
                service: Arc::new(service),
                service_token: config.auth.service_token.clone(),
                body_limits: BodyLimits::admin(&config.server),
                trusted_proxies: config.auth.trusted_proxies.clone(),
            }))
        }
        _ => None,
    };
    Ok(AuthRuntime {
        http,
        keys,
        redis_client: redis.as_ref().map(|(client, _)| client.clone()),
        redis: redis.map(|(_, manager)| manager),
        store,
    })
}

/// The configured signing keys, or the one generated once and kept in the database.
async fn access_tokens(config: &Config, store: &AuthStore) -> Result<AccessTokens, StartError> {
    let keys: Vec<(String, Vec<u8>)> = if config.auth.signing_keys.is_empty() {
        generated_signing_keys(config, store).await?
    } else {
        config
            .auth
            .signing_keys
            .iter()
            .map(|k| (k.kid.clone(), k.secret.expose().as_bytes().to_vec()))
            .collect()
    };
    AccessTokens::new(
        &keys,
        &config.auth.issuer,
        config.auth.access_token_ttl_secs,
    )
    .ok_or_else(|| StartError::Setup("no JWT signing key".into()))
}

/// The generated signing keys, kept in the database: sealed with `auth.encryption_key` when
/// it is set (a key stored before it was set is sealed now), as they are otherwise.
async fn generated_signing_keys(
    config: &Config,
    store: &AuthStore,
) -> Result<Vec<(String, Vec<u8>)>, StartError> {
    let seal = config
        .auth
        .encryption_key
        .as_ref()
        .map(SecretSeal::new)
        .transpose()
        .map_err(|e| StartError::Setup(format!("auth.encryption_key: {e}")))?;
    let candidate = crate::secrets::random_token();
    let stored_candidate = match &seal {
        Some(seal) => seal_signing_secret(seal, GENERATED_KID, &candidate)
            .map_err(|e| StartError::Setup(format!("auth.encryption_key: {e}")))?,
        None => candidate,
    };
    let mut keys = Vec::new();
    for (kid, stored) in store
        .signing_keys_or_create(GENERATED_KID, &stored_candidate)
        .await?
    {
        let secret = match (StoredSigningSecret::parse(&stored), &seal) {
            (StoredSigningSecret::Sealed(sealed), Some(seal)) => {
                open_signing_secret(seal, &kid, sealed).map_err(|_| {
                    StartError::Setup(format!(
                        "the JWT signing key `{kid}` in the database does not open with \
                         auth.encryption_key (was it sealed with another key?)"
                    ))
                })?
            }
            (StoredSigningSecret::Sealed(_), None) => {
                return Err(StartError::Setup(format!(
                    "the JWT signing key `{kid}` in the database is encrypted: set \
                     auth.encryption_key to the key it was encrypted with"
                )));
            }
            (StoredSigningSecret::Plain(plain), Some(seal)) => {
                let sealed = seal_signing_secret(seal, &kid, plain)
                    .map_err(|e| StartError::Setup(format!("auth.encryption_key: {e}")))?;
                // Another replica starting at the same time may have sealed it first; either
                // way the secret is the same.
                if store.replace_signing_secret(&kid, plain, &sealed).await? {
                    tracing::info!(kid, "the JWT signing key in the database is now encrypted");
                }
                plain.as_bytes().to_vec()
            }
            (StoredSigningSecret::Plain(plain), None) => {
                tracing::warn!(
                    kid,
                    "the JWT signing key is kept unencrypted in the database: set \
                     auth.encryption_key (or auth.signing_keys) so that a copy of the database \
                     cannot forge sessions"
                );
                plain.as_bytes().to_vec()
            }
        };
        keys.push((kid, secret));
    }
    Ok(keys)
}

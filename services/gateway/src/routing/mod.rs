//! Routing: from the model name a client sends to an ordered list of targets to try.
//!
//! A name resolves, in this order, to a configured model group, to `provider/model` for any
//! configured provider, or to the one configured provider whose kind publishes that model in the
//! price catalog (so `gpt-4o` works out of the box with `OPENAI_API_KEY` set). The group's
//! strategy orders its targets per request; circuit breakers take failing targets out.

pub mod circuit;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use actix_web::http::header::HeaderValue;
use rand::Rng;
use rust_decimal::Decimal;
use tollgate_common::PriceCatalog;
use tollgate_common::config::{
    CircuitBreakerConfig, Config, ProviderKind, RetryPolicy, RoutingDefaults, Strategy,
};

use crate::error::GatewayError;
use crate::providers::{ProviderAdapter, adapter_for};
use circuit::{CircuitBreaker, OrgBreakers};

/// Direct `provider/model` routes are remembered (to keep their breaker and latency state), up
/// to this many; past it they are built per request.
const MAX_DIRECT_ROUTES: usize = 4_096;

/// A configured upstream account and its adapter.
pub struct Provider {
    pub name: String,
    pub kind: ProviderKind,
    pub adapter: Box<dyn ProviderAdapter>,
}

/// One provider model a group can send to.
pub struct Target {
    pub provider: Arc<Provider>,
    /// The model name the provider knows.
    pub model: String,
    pub weight: u32,
    pub breaker: CircuitBreaker,
    /// Throttling (429) counted per organization, so that no one tenant trips `breaker`.
    pub throttled: OrgBreakers,
    pub latency: LatencyAverage,
    /// Input plus output list price per 1M tokens, when the catalog knows the model.
    pub blended_price: Option<Decimal>,
    /// Input and output list prices per 1M tokens, when the catalog knows the model.
    pub price: Option<(Decimal, Decimal)>,
    /// The most output tokens the model gives one answer, when the catalog knows it.
    pub max_output: Option<u64>,
    /// `x-tollgate-provider` and `x-tollgate-model` for answers from this target, built once
    /// (`None` for a name that cannot be a header value).
    pub provider_header: Option<HeaderValue>,
    pub model_header: Option<HeaderValue>,
}

impl Target {
    /// `provider/model`, as logged and shown in metrics.
    pub fn label(&self) -> String {
        format!("{}/{}", self.provider.name, self.model)
    }

    /// The most output tokens one answer (one choice) from this target can have: the client's
    /// limit, capped by the model's maximum; without one, what the dialect sends by default
    /// (Anthropic requires a limit), else the model's maximum. `unknown` stands in for a
    /// maximum the catalog does not know.
    pub fn worst_case_output(&self, requested: Option<u32>, unknown: u64) -> u64 {
        let most = self.max_output.unwrap_or(unknown);
        match requested.or(self.provider.adapter.default_max_output()) {
            Some(limit) => u64::from(limit).min(most),
            None => most,
        }
    }
}

/// What clients can call by one name.
pub struct RouteGroup {
    pub name: String,
    pub strategy: Strategy,
    pub retry: RetryPolicy,
    pub timeout: Duration,
    pub targets: Vec<Arc<Target>>,
}

impl std::fmt::Debug for RouteGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteGroup")
            .field("name", &self.name)
            .field("targets", &self.targets.len())
            .finish_non_exhaustive()
    }
}

impl RouteGroup {
    /// The highest input and the highest output price per 1M tokens among the group's priced
    /// targets: what a request routed here can cost at most. `None` when none has a price.
    pub fn worst_case_price(&self) -> Option<(Decimal, Decimal)> {
        self.targets
            .iter()
            .filter_map(|t| t.price)
            .reduce(|(i, o), (i2, o2)| (i.max(i2), o.max(o2)))
    }

    /// The most output tokens one choice can have wherever the request is routed: see
    /// [`Target::worst_case_output`].
    pub fn worst_case_output(&self, requested: Option<u32>, unknown: u64) -> u64 {
        self.targets
            .iter()
            .map(|t| t.worst_case_output(requested, unknown))
            .max()
            .unwrap_or(unknown)
    }
}

/// An exponentially weighted moving average of a target's latency, lock-free. A lost update
/// under a race only drops one sample.
#[derive(Debug, Default)]
pub struct LatencyAverage {
    micros: AtomicU64,
    samples: AtomicU64,
}

impl LatencyAverage {
    const WEIGHT_OF_NEW: f64 = 0.2;

    pub fn record(&self, elapsed: Duration) {
        let sample = elapsed.as_micros() as f64;
        let previous = self.samples.fetch_add(1, Ordering::Relaxed);
        let next = if previous == 0 {
            sample
        } else {
            let old = f64::from_bits(self.micros.load(Ordering::Relaxed));
            old + Self::WEIGHT_OF_NEW * (sample - old)
        };
        self.micros.store(next.to_bits(), Ordering::Relaxed);
    }

    /// The average in microseconds; `None` before the first sample.
    pub fn micros(&self) -> Option<f64> {
        (self.samples.load(Ordering::Relaxed) > 0)
            .then(|| f64::from_bits(self.micros.load(Ordering::Relaxed)))
    }
}

impl RouteGroup {
    /// The targets in the order this request should try them.
    pub fn plan(&self) -> Vec<Arc<Target>> {
        let mut order = self.targets.clone();
        match self.strategy {
            Strategy::Fallback => {}
            Strategy::Weighted => {
                let total: u64 = order.iter().map(|t| u64::from(t.weight)).sum();
                if total > 0 {
                    let mut pick = rand::rng().random_range(0..total);
                    let first = order
                        .iter()
                        .position(|t| {
                            let w = u64::from(t.weight);
                            if pick < w {
                                true
                            } else {
                                pick -= w;
                                false
                            }
                        })
                        .unwrap_or(0);
                    let chosen = order.remove(first);
                    order.sort_by_key(|t| std::cmp::Reverse(t.weight));
                    order.insert(0, chosen);
                }
            }
            Strategy::LeastLatency => {
                // Targets never measured go first, so each gets a sample.
                order.sort_by(|a, b| {
                    let a = a.latency.micros().unwrap_or(-1.0);
                    let b = b.latency.micros().unwrap_or(-1.0);
                    a.total_cmp(&b)
                });
            }
            Strategy::Cheapest => {
                // Unpriced targets go last; ties keep the written order (stable sort).
                order.sort_by_key(|t| (t.blended_price.is_none(), t.blended_price));
            }
        }
        order
    }
}

/// A model a client may call, for `GET /v1/models`.
#[derive(Debug, Clone)]
pub struct ModelListing {
    pub id: String,
    pub owned_by: String,
}

pub struct Router {
    groups: HashMap<String, Arc<RouteGroup>>,
    providers: BTreeMap<String, Arc<Provider>>,
    direct: RwLock<HashMap<String, Arc<RouteGroup>>>,
    defaults: RoutingDefaults,
    catalog: Arc<PriceCatalog>,
}

impl Router {
    pub fn new(config: &Config, catalog: Arc<PriceCatalog>) -> Result<Router, String> {
        let mut providers = BTreeMap::new();
        for (name, provider) in &config.providers {
            let adapter = adapter_for(provider).map_err(|e| format!("providers.{name}: {e}"))?;
            providers.insert(
                name.clone(),
                Arc::new(Provider {
                    name: name.clone(),
                    kind: provider.kind,
                    adapter,
                }),
            );
        }
        let mut router = Router {
            groups: HashMap::new(),
            providers,
            direct: RwLock::new(HashMap::new()),
            defaults: config.routing.clone(),
            catalog,
        };
        for group in &config.models {
            let mut targets = Vec::with_capacity(group.targets.len());
            for target in &group.targets {
                let provider = router
                    .providers
                    .get(&target.provider)
                    .ok_or_else(|| {
                        format!("model {}: no provider {}", group.name, target.provider)
                    })?
                    .clone();
                targets.push(router.target(
                    provider,
                    &target.model,
                    target.weight.unwrap_or(1),
                    &group.circuit_breaker,
                ));
            }
            router.groups.insert(
                group.name.clone(),
                Arc::new(RouteGroup {
                    name: group.name.clone(),
                    strategy: group.strategy,
                    retry: group.retry.clone(),
                    timeout: Duration::from_millis(group.timeout_ms),
                    targets,
                }),
            );
        }
        Ok(router)
    }

    fn target(
        &self,
        provider: Arc<Provider>,
        model: &str,
        weight: u32,
        breaker: &CircuitBreakerConfig,
    ) -> Arc<Target> {
        Arc::new(Target {
            blended_price: self.catalog.price(model).map(|p| p.blended()),
            price: self.catalog.price(model).map(|p| (p.input, p.output)),
            max_output: self.catalog.price(model).and_then(|p| p.max_output),
            provider_header: HeaderValue::from_str(&provider.name).ok(),
            model_header: HeaderValue::from_str(model).ok(),
            provider,
            model: model.to_owned(),
            weight,
            breaker: CircuitBreaker::new(breaker),
            throttled: OrgBreakers::new(breaker),
            latency: LatencyAverage::default(),
        })
    }

    pub fn providers(&self) -> impl Iterator<Item = &Arc<Provider>> {
        self.providers.values()
    }

    /// The route for a model name, or 404 `model_not_found`.
    pub fn resolve(&self, model: &str) -> Result<Arc<RouteGroup>, GatewayError> {
        if let Some(group) = self.groups.get(model) {
            return Ok(group.clone());
        }
        if let Some(group) = self.read_direct().get(model) {
            return Ok(group.clone());
        }
        let (provider, provider_model) = self.direct_target(model)?;
        let group = Arc::new(RouteGroup {
            name: model.to_owned(),
            strategy: Strategy::Fallback,
            retry: self.defaults.retry.clone(),
            timeout: Duration::from_millis(self.defaults.timeout_ms),
            targets: vec![self.target(provider, provider_model, 1, &self.defaults.circuit_breaker)],
        });
        let mut direct = self.direct.write().unwrap_or_else(|e| e.into_inner());
        if direct.len() < MAX_DIRECT_ROUTES {
            return Ok(direct.entry(model.to_owned()).or_insert(group).clone());
        }
        Ok(group)
    }

    fn read_direct(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<RouteGroup>>> {
        self.direct.read().unwrap_or_else(|e| e.into_inner())
    }

    /// `provider/model`, or a bare model name whose catalog family matches exactly one
    /// configured provider (or the provider named after the family).
    fn direct_target<'m>(&self, model: &'m str) -> Result<(Arc<Provider>, &'m str), GatewayError> {
        if let Some((provider, provider_model)) = model.split_once('/')
            && let Some(provider) = self.providers.get(provider)
            && !provider_model.is_empty()
        {
            return Ok((provider.clone(), provider_model));
        }
        let unknown = || GatewayError::UnknownModel(model.to_owned());
        let family = self
            .catalog
            .price(model)
            .ok_or_else(unknown)?
            .family
            .as_str();
        let kind = ProviderKind::of_catalog_family(family).ok_or_else(unknown)?;
        if let Some(named) = self.providers.get(family).filter(|p| p.kind == kind) {
            return Ok((named.clone(), model));
        }
        let mut candidates = self.providers.values().filter(|p| p.kind == kind);
        match (candidates.next(), candidates.next()) {
            (Some(only), None) => Ok((only.clone(), model)),
            _ => Err(unknown()),
        }
    }

    /// The models clients can call: every group, then each provider's catalog models.
    pub fn listings(&self) -> Vec<ModelListing> {
        let mut out: Vec<ModelListing> = self
            .groups
            .values()
            .map(|g| ModelListing {
                id: g.name.clone(),
                owned_by: "tollgate".into(),
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        for provider in self.providers.values() {
            let facts = provider.kind.facts();
            let family = facts.catalog_family;
            // Azure serves deployments, not model names, and compatible servers serve their own
            // models: list catalog models only where the provider is the family's own API, or
            // is named after the family.
            let own_api = (facts.serves_its_family_first_hand() && !facts.compatible_servers)
                || provider.name == family;
            if !own_api {
                continue;
            }
            let mut models: Vec<&str> = self
                .catalog
                .entries()
                .filter(|p| p.family == family)
                .map(|p| p.model.as_str())
                .collect();
            models.sort_unstable();
            out.extend(models.into_iter().map(|m| ModelListing {
                id: format!("{}/{}", provider.name, m),
                owned_by: provider.name.clone(),
            }));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap as Map;
    use tollgate_common::config::Env;

    fn router(yaml: &str) -> Router {
        let env: Map<String, String> = Map::new();
        let _ = &env as &dyn Env;
        let config = Config::parse(yaml, &env).unwrap();
        Router::new(&config, Arc::new(PriceCatalog::built_in().unwrap())).unwrap()
    }

    const TWO_PROVIDERS: &str = r#"
providers:
  openai: { kind: openai, api_key: k }
  anthropic: { kind: anthropic, api_key: k }
models:
  - name: smart
    strategy: weighted
    targets:
      - { provider: anthropic, model: claude-sonnet-4-20250514, weight: 70 }
      - { provider: openai, model: gpt-4o, weight: 30 }
  - name: thrifty
    strategy: cheapest
    targets:
      - { provider: openai, model: gpt-4o }
      - { provider: openai, model: private-finetune }
      - { provider: openai, model: gpt-4o-mini }
"#;

    #[test]
    fn names_resolve_to_groups_direct_targets_and_catalog_families() {
        let r = router(TWO_PROVIDERS);
        assert_eq!(r.resolve("smart").unwrap().targets.len(), 2);
        let direct = r.resolve("anthropic/claude-3-haiku-20240307").unwrap();
        assert_eq!(direct.targets[0].provider.name, "anthropic");
        assert_eq!(direct.targets[0].model, "claude-3-haiku-20240307");
        assert!(Arc::ptr_eq(
            &direct,
            &r.resolve("anthropic/claude-3-haiku-20240307").unwrap()
        ));
        let bare = r.resolve("gpt-4o-mini").unwrap();
        assert_eq!(bare.targets[0].provider.name, "openai");
        assert!(matches!(
            r.resolve("nope"),
            Err(GatewayError::UnknownModel(_))
        ));
        assert!(matches!(
            r.resolve("nobody/gpt-4o"),
            Err(GatewayError::UnknownModel(_))
        ));
        assert!(matches!(
            r.resolve("gemini-2.5-pro"),
            Err(GatewayError::UnknownModel(_))
        ));
    }

    #[test]
    fn weighted_split_follows_the_weights() {
        let r = router(TWO_PROVIDERS);
        let group = r.resolve("smart").unwrap();
        let runs = 20_000;
        let anthropic_first = (0..runs)
            .filter(|_| group.plan()[0].provider.name == "anthropic")
            .count();
        let share = anthropic_first as f64 / runs as f64;
        assert!((share - 0.70).abs() < 0.02, "anthropic share {share}");
        assert_eq!(group.plan().len(), 2, "the other target stays as fallback");
    }

    #[test]
    fn cheapest_orders_by_catalog_price_with_unpriced_last() {
        let r = router(TWO_PROVIDERS);
        let plan = r.resolve("thrifty").unwrap().plan();
        let models: Vec<&str> = plan.iter().map(|t| t.model.as_str()).collect();
        assert_eq!(models, ["gpt-4o-mini", "gpt-4o", "private-finetune"]);
    }

    #[test]
    fn least_latency_tries_unmeasured_then_fastest() {
        let r = router(
            r#"
providers: { a: { kind: openai, api_base: "http://127.0.0.1:1/v1" } }
models:
  - name: fast
    strategy: least-latency
    targets: [ { provider: a, model: one }, { provider: a, model: two }, { provider: a, model: three } ]
"#,
        );
        let group = r.resolve("fast").unwrap();
        group.targets[0].latency.record(Duration::from_millis(50));
        group.targets[1].latency.record(Duration::from_millis(5));
        let order: Vec<String> = group.plan().iter().map(|t| t.model.clone()).collect();
        assert_eq!(order, ["three", "two", "one"]);
    }

    #[test]
    fn listings_show_groups_and_provider_models() {
        let r = router(TWO_PROVIDERS);
        let ids: Vec<String> = r.listings().into_iter().map(|l| l.id).collect();
        assert!(ids.contains(&"smart".to_owned()));
        assert!(ids.contains(&"openai/gpt-4o".to_owned()));
        assert!(ids.iter().any(|id| id.starts_with("anthropic/claude")));
    }

    #[test]
    fn bedrock_models_priced_by_the_deployment_are_listed_and_reachable_by_name() {
        let yaml = r#"
providers:
  aws: { kind: bedrock, region: us-east-1, aws_access_key_id: AKID, aws_secret_access_key: s }
prices:
  - { family: bedrock, model: "amazon.nova-lite-v1:0", input: "0.06", output: "0.24", as_of: 2026-01-01 }
"#;
        let env: Map<String, String> = Map::new();
        let config = Config::parse(yaml, &env).unwrap();
        let catalog = PriceCatalog::with_overrides(&config.prices).unwrap();
        let r = Router::new(&config, Arc::new(catalog)).unwrap();
        let ids: Vec<String> = r.listings().into_iter().map(|l| l.id).collect();
        assert_eq!(ids, ["aws/amazon.nova-lite-v1:0"]);
        let bare = r.resolve("amazon.nova-lite-v1:0").unwrap();
        assert_eq!(bare.targets[0].provider.name, "aws");
        assert_eq!(bare.targets[0].provider.kind, ProviderKind::Bedrock);
        // Unpriced Bedrock models are reached as provider/model.
        let direct = r.resolve("aws/meta.llama3-70b-instruct-v1:0").unwrap();
        assert_eq!(direct.targets[0].model, "meta.llama3-70b-instruct-v1:0");
        assert!(direct.targets[0].price.is_none());
    }
}

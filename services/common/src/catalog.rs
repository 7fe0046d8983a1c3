//! The price catalog: what a model costs per million tokens, and the cost of one request.
//!
//! Money is `rust_decimal::Decimal` throughout; a float never touches a price.

use std::collections::HashMap;

use rust_decimal::Decimal;
use serde::Deserialize;

/// The catalog that ships with Tollgate (see `data/prices.yaml`).
const BUILT_IN: &str = include_str!("../data/prices.yaml");

/// Catalog families with no built-in prices: Bedrock's model ids and regional prices are not
/// the publishers' own, so a deployment prices the Bedrock models it uses under `prices:`
/// (`family: bedrock`, `model:` the Bedrock model id); unpriced, their usage is metered
/// without a cost.
///
/// Cohere has none yet either: its list prices could not be read from its own pricing page
/// when the kind was added (only third-party copies), and a wrong built-in price is worse than
/// none. Deployments price the Cohere models they use under `prices:` (`family: cohere`) until
/// entries with an `as_of` date are added to `data/prices.yaml`.
pub const UNPRICED_FAMILIES: &[&str] = &["bedrock", "cohere"];

const PER_MILLION: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

/// Prices of one model, in USD per 1M tokens.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// Who publishes the model (`openai`, `anthropic`, `gemini`, `deepseek`, ...).
    pub family: String,
    pub model: String,
    pub input: Decimal,
    pub output: Decimal,
    /// Price of prompt tokens served from the provider's prompt cache; `input` when absent.
    #[serde(default)]
    pub cached_input: Option<Decimal>,
    /// The day the price was read from the provider's price page (YYYY-MM-DD).
    pub as_of: String,
    /// The most output tokens the model produces for one answer, per the provider's model
    /// documentation: what a budget reserves for a request that sets no output limit.
    #[serde(default)]
    pub max_output: Option<u64>,
}

/// Token counts reported for one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// The part of `input_tokens` read from the provider's prompt cache.
    pub cached_input_tokens: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("price catalog is not valid YAML: {0}")]
    Parse(#[from] serde_yaml::Error),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    models: Vec<ModelPrice>,
}

/// All known prices, looked up by model name.
#[derive(Debug, Clone, Default)]
pub struct PriceCatalog {
    by_model: HashMap<String, ModelPrice>,
}

impl PriceCatalog {
    /// The built-in catalog with `overrides` laid over it (an override replaces the entry of
    /// the same model name, or adds a new one).
    pub fn with_overrides(overrides: &[ModelPrice]) -> Result<Self, CatalogError> {
        let file: CatalogFile = serde_yaml::from_str(BUILT_IN)?;
        let mut catalog = PriceCatalog::default();
        for price in file.models.into_iter().chain(overrides.iter().cloned()) {
            catalog.by_model.insert(price.model.clone(), price);
        }
        Ok(catalog)
    }

    /// The built-in catalog alone.
    pub fn built_in() -> Result<Self, CatalogError> {
        Self::with_overrides(&[])
    }

    /// The price of `model`: an exact entry, else the longest entry that prefixes the name at a
    /// `-` boundary (so `gpt-4o-2024-08-06` is priced as `gpt-4o`, never as `gpt-4`), or at an
    /// `@`, which Vertex AI puts before a version (`claude-sonnet-4@20250514`).
    pub fn price(&self, model: &str) -> Option<&ModelPrice> {
        if let Some(price) = self.by_model.get(model) {
            return Some(price);
        }
        let mut end = model.len();
        while let Some(dash) = model[..end].rfind(['-', '@']) {
            if let Some(price) = self.by_model.get(&model[..dash]) {
                return Some(price);
            }
            end = dash;
        }
        None
    }

    /// Every entry, in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = &ModelPrice> {
        self.by_model.values()
    }

    /// The cost of `usage` on `model`, or `None` when the model has no price.
    pub fn cost(&self, model: &str, usage: TokenUsage) -> Option<Decimal> {
        self.price(model).map(|price| price.cost(usage))
    }
}

impl ModelPrice {
    /// Cost in USD of one request with this usage.
    pub fn cost(&self, usage: TokenUsage) -> Decimal {
        let cached = usage.cached_input_tokens.min(usage.input_tokens);
        let uncached = usage.input_tokens - cached;
        let cached_price = self.cached_input.unwrap_or(self.input);
        (Decimal::from(uncached) * self.input
            + Decimal::from(cached) * cached_price
            + Decimal::from(usage.output_tokens) * self.output)
            / PER_MILLION
    }

    /// Input plus output price per 1M tokens: the figure the `cheapest` strategy orders by.
    pub fn blended(&self) -> Decimal {
        self.input + self.output
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn built_in_catalog_parses_and_covers_every_provider_family() {
        let catalog = PriceCatalog::built_in().unwrap();
        for family in crate::config::PROVIDERS.iter().map(|p| p.catalog_family) {
            let priced = catalog.entries().any(|p| p.family == family);
            assert_eq!(
                priced,
                !UNPRICED_FAMILIES.contains(&family),
                "{family}: priced {priced}"
            );
        }
    }

    #[test]
    fn dated_snapshots_resolve_to_their_family_not_a_shorter_model() {
        let catalog = PriceCatalog::built_in().unwrap();
        assert_eq!(catalog.price("gpt-4o-2024-08-06").unwrap().model, "gpt-4o");
        assert_eq!(
            catalog.price("gpt-4o-mini-2024-07-18").unwrap().model,
            "gpt-4o-mini"
        );
        assert_eq!(
            catalog.price("claude-sonnet-4-20250514").unwrap().model,
            "claude-sonnet-4"
        );
        assert_eq!(
            catalog.price("claude-sonnet-4@20250514").unwrap().model,
            "claude-sonnet-4"
        );
        assert_eq!(
            catalog.price("gemini-2.5-flash@001").unwrap().model,
            "gemini-2.5-flash"
        );
        assert!(catalog.price("gpt-4oo").is_none());
        assert!(catalog.price("unknown-model").is_none());
    }

    #[test]
    fn cost_is_exact_decimal_with_cached_tokens_priced_separately() {
        let catalog = PriceCatalog::built_in().unwrap();
        let usage = TokenUsage {
            input_tokens: 1_000,
            output_tokens: 500,
            cached_input_tokens: 200,
        };
        // 800 × 2.50 + 200 × 1.25 + 500 × 10.00, per million.
        assert_eq!(catalog.cost("gpt-4o", usage).unwrap(), dec("0.00725"));
        // One token of gpt-4o-mini output is 0.0000006 USD exactly.
        let one = TokenUsage {
            output_tokens: 1,
            ..TokenUsage::default()
        };
        assert_eq!(catalog.cost("gpt-4o-mini", one).unwrap(), dec("0.0000006"));
    }

    #[test]
    fn overrides_replace_and_extend() {
        let overrides = vec![
            ModelPrice {
                family: "openai".into(),
                model: "gpt-4o".into(),
                input: dec("1"),
                output: dec("2"),
                cached_input: None,
                as_of: "2026-01-01".into(),
                max_output: None,
            },
            ModelPrice {
                family: "local".into(),
                model: "llama-3-70b".into(),
                input: dec("0.1"),
                output: dec("0.1"),
                cached_input: None,
                as_of: "2026-01-01".into(),
                max_output: None,
            },
        ];
        let catalog = PriceCatalog::with_overrides(&overrides).unwrap();
        assert_eq!(catalog.price("gpt-4o").unwrap().input, dec("1"));
        assert!(catalog.price("llama-3-70b").is_some());
    }
}

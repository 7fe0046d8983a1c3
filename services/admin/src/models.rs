//! The price catalog as the GraphQL API shows it (`models` in the schema): each model's
//! prices, used for costs and budgets.

use std::sync::Arc;

use async_graphql::{Context, Error, Object, SimpleObject};
use tollgate_common::{ModelPrice, PriceCatalog};

use crate::schema::caller;

/// A model's prices, USD per million tokens, exact decimals.
#[derive(SimpleObject)]
pub struct ModelPricing {
    /// Who publishes the model (`openai`, `anthropic`, `gemini`, ...).
    pub family: String,
    pub model: String,
    pub input_per_million: String,
    pub output_per_million: String,
    /// Prompt tokens served from the provider's prompt cache.
    pub cached_input_per_million: Option<String>,
    /// The day the price was read from the provider's price page.
    pub as_of: String,
}

impl From<&ModelPrice> for ModelPricing {
    fn from(price: &ModelPrice) -> Self {
        ModelPricing {
            family: price.family.clone(),
            model: price.model.clone(),
            input_per_million: price.input.normalize().to_string(),
            output_per_million: price.output.normalize().to_string(),
            cached_input_per_million: price.cached_input.map(|p| p.normalize().to_string()),
            as_of: price.as_of.clone(),
        }
    }
}

#[derive(Default)]
pub struct ModelsQuery;

#[Object]
impl ModelsQuery {
    /// The price catalog used for costs and budgets, by family and model.
    async fn models(&self, ctx: &Context<'_>) -> Result<Vec<ModelPricing>, Error> {
        caller(ctx)?;
        let catalog = ctx.data_unchecked::<Arc<PriceCatalog>>();
        let mut models: Vec<ModelPricing> = catalog.entries().map(ModelPricing::from).collect();
        models.sort_by(|a, b| (&a.family, &a.model).cmp(&(&b.family, &b.model)));
        Ok(models)
    }
}

//! What one caller may ask of the admin API at once, beyond the schema's depth and complexity
//! limits: how wide an operation may be, and how many changes a user may make a minute.
//!
//! - [`OperationShape`] refuses, as soon as a document is parsed and before it is validated or
//!   run, one with more than [`MAX_ROOT_FIELDS`] root fields in an operation (each one a
//!   resolver that goes to the database, repeated ones included) or more than [`MAX_ALIASES`]
//!   aliases (the way to ask for the same expensive field many times). Validation itself costs
//!   more the wider a document is, which is why this comes first.
//! - [`IntrospectionGate`] answers `__schema` and `__type` with an `UNAUTHENTICATED` error
//!   (rather than a silent null) for a request marked [`IntrospectionClosed`].
//! - [`MutationRateLimit`] takes a token from the caller's bucket in a [`MutationLimiter`]
//!   for every root field of a mutation it runs, so that aliases cannot pack many changes
//!   into one request; a refused one is an error with `extensions.code` `RATE_LIMITED`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextResolve, ResolveInfo,
};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Error, ErrorExtensions, Pos, ServerError, ServerResult, Value, Variables};
use tollgate_common::UserId;

use crate::schema::RequestCaller;

/// Root fields one operation may select (after its fragments are spread): the dashboard's
/// widest screen selects six.
pub const MAX_ROOT_FIELDS: usize = 20;
/// Aliases one document may write, at any depth: the dashboard's widest screen writes four.
pub const MAX_ALIASES: usize = 30;

/// The number of buckets past which full ones (no different from absent ones) are dropped.
const PRUNE_AT: usize = 10_000;

/// Refuses documents wider than [`MAX_ROOT_FIELDS`] and [`MAX_ALIASES`] allow.
pub struct OperationShape;

impl ExtensionFactory for OperationShape {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(OperationShape)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for OperationShape {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        check_shape(&document)?;
        Ok(document)
    }
}

/// The document's aliases and each operation's root fields, against the caps.
fn check_shape(document: &ExecutableDocument) -> ServerResult<()> {
    let mut aliases = 0;
    for (_, operation) in document.operations.iter() {
        aliases += count_aliases(&operation.node.selection_set.node);
        let mut spread = Vec::new();
        let root_fields =
            count_root_fields(&operation.node.selection_set.node, document, &mut spread);
        if root_fields > MAX_ROOT_FIELDS {
            return Err(too_wide(
                format!(
                    "An operation may select at most {MAX_ROOT_FIELDS} root fields; this one selects {root_fields}."
                ),
                operation.pos,
            ));
        }
    }
    for fragment in document.fragments.values() {
        aliases += count_aliases(&fragment.node.selection_set.node);
    }
    if aliases > MAX_ALIASES {
        return Err(too_wide(
            format!("A document may use at most {MAX_ALIASES} aliases; this one uses {aliases}."),
            Pos::default(),
        ));
    }
    Ok(())
}

/// Aliases written in `set` and the selections under it (fragments are counted where they are
/// defined, once).
fn count_aliases(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|selection| match &selection.node {
            Selection::Field(field) => {
                usize::from(field.node.alias.is_some())
                    + count_aliases(&field.node.selection_set.node)
            }
            Selection::InlineFragment(inline) => count_aliases(&inline.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

/// Fields selected at the level of `set`, through its fragments; `spread` holds the fragments
/// being spread, so that a cycle (refused later by validation) ends here.
fn count_root_fields<'a>(
    set: &'a SelectionSet,
    document: &'a ExecutableDocument,
    spread: &mut Vec<&'a str>,
) -> usize {
    let mut fields = 0;
    for selection in &set.items {
        fields += match &selection.node {
            Selection::Field(_) => 1,
            Selection::InlineFragment(inline) => {
                count_root_fields(&inline.node.selection_set.node, document, spread)
            }
            Selection::FragmentSpread(fragment_spread) => {
                let name = fragment_spread.node.fragment_name.node.as_str();
                match document.fragments.get(name) {
                    Some(fragment) if !spread.contains(&name) => {
                        spread.push(name);
                        let inner =
                            count_root_fields(&fragment.node.selection_set.node, document, spread);
                        spread.pop();
                        inner
                    }
                    _ => 0,
                }
            }
        };
    }
    fields
}

fn too_wide(message: String, pos: Pos) -> ServerError {
    Error::new(message)
        .extend_with(|_, extensions| extensions.set("code", "BAD_USER_INPUT"))
        .into_server_error(pos)
}

/// Request data that closes introspection: set for callers without a valid token unless
/// `admin.graphiql` is on.
pub struct IntrospectionClosed;

/// Refuses `__schema` and `__type` in requests marked [`IntrospectionClosed`].
pub struct IntrospectionGate;

impl ExtensionFactory for IntrospectionGate {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(IntrospectionGate)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for IntrospectionGate {
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        if info.path_node.parent.is_none()
            && matches!(info.name, "__schema" | "__type")
            && ctx.data_opt::<IntrospectionClosed>().is_some()
        {
            return Err(field_error(
                Error::new("Introspection needs a login on this deployment.")
                    .extend_with(|_, extensions| extensions.set("code", "UNAUTHENTICATED")),
            ));
        }
        next.run(ctx, info).await
    }
}

/// A resolver's error, placed by async-graphql at the field that raised it.
fn field_error(error: Error) -> ServerError {
    let mut refused = ServerError::new(error.message, None);
    refused.extensions = error.extensions;
    refused
}

/// A token bucket per user: `per_minute` mutations in a burst, refilled at `per_minute` a
/// minute. In-process: each replica counts its own.
pub struct MutationLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<UserId, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl MutationLimiter {
    pub fn new(per_minute: u32) -> Self {
        MutationLimiter {
            per_minute: per_minute.max(1),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one mutation from `user`'s bucket at `now`, or says how long until one is there.
    pub fn try_take(&self, user: UserId, now: Instant) -> Result<(), Duration> {
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let refilled = |bucket: &Bucket| {
            let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
            (bucket.tokens + elapsed * per_second).min(capacity)
        };
        // A poisoned lock still holds consistent buckets: each update is one assignment.
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= PRUNE_AT && !buckets.contains_key(&user) {
            buckets.retain(|_, bucket| refilled(bucket) < capacity);
        }
        let bucket = buckets.entry(user).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let tokens = refilled(bucket);
        if tokens >= 1.0 {
            *bucket = Bucket {
                tokens: tokens - 1.0,
                updated: now,
            };
            Ok(())
        } else {
            *bucket = Bucket {
                tokens,
                updated: now,
            };
            Err(Duration::from_secs_f64((1.0 - tokens) / per_second))
        }
    }
}

/// Charges every root field of a mutation to its caller's bucket.
pub struct MutationRateLimit {
    limiter: Arc<MutationLimiter>,
    /// The schema's mutation type, whose fields are charged.
    mutation_type: String,
}

impl MutationRateLimit {
    pub fn new(limiter: Arc<MutationLimiter>, mutation_type: impl Into<String>) -> Self {
        MutationRateLimit {
            limiter,
            mutation_type: mutation_type.into(),
        }
    }
}

impl ExtensionFactory for MutationRateLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(MutationRateLimit {
            limiter: self.limiter.clone(),
            mutation_type: self.mutation_type.clone(),
        })
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for MutationRateLimit {
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let is_mutation = info.path_node.parent.is_none() && info.parent_type == self.mutation_type;
        // A caller without a valid token is refused by the resolver itself; it has no bucket.
        if is_mutation
            && let Some(RequestCaller(Ok(caller))) = ctx.data_opt::<RequestCaller>()
            && let Err(wait) = self.limiter.try_take(caller.user, Instant::now())
        {
            return Err(rate_limited(self.limiter.per_minute, wait));
        }
        next.run(ctx, info).await
    }
}

fn rate_limited(per_minute: u32, wait: Duration) -> ServerError {
    let retry_after = wait.as_secs().max(1);
    field_error(
        Error::new(format!(
            "Too many changes: at most {per_minute} mutations a minute; try again in {retry_after} s."
        ))
        .extend_with(|_, extensions| {
            extensions.set("code", "RATE_LIMITED");
            extensions.set("retryAfterSeconds", retry_after);
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(query: &str) -> ServerResult<()> {
        check_shape(&async_graphql::parser::parse_query(query).unwrap())
    }

    fn code(error: &ServerError) -> Option<String> {
        error
            .extensions
            .as_ref()
            .and_then(|e| e.get("code"))
            .map(|v| v.to_string().trim_matches('"').to_owned())
    }

    #[test]
    fn the_dashboards_widest_documents_pass() {
        shape(
            "query Overview($m: UsageInput!, $w: UsageInput!) {
               month: usageTotals(input: $m) { key }
               week: usageSeries(input: $w) { key }
               weekModels: usageTotals(input: $w) { key }
               budgets { id } teams { id name } keys { id name }
             }",
        )
        .unwrap();
    }

    #[test]
    fn too_many_aliases_anywhere_are_refused() {
        let few_roots: String = (0..=MAX_ALIASES)
            .map(|i| format!("a{i}: __typename "))
            .collect();
        let refused = shape(&format!("{{ viewer {{ {few_roots} }} }}")).unwrap_err();
        assert!(refused.message.contains("aliases"), "{}", refused.message);
        assert_eq!(code(&refused).as_deref(), Some("BAD_USER_INPUT"));

        // Nested, and in a fragment: the same count.
        let nested: String = (0..=MAX_ALIASES).map(|i| format!("a{i}: id ")).collect();
        assert!(shape(&format!("{{ keys {{ {nested} }} }}")).is_err());
        assert!(
            shape(&format!(
                "{{ keys {{ ...F }} }} fragment F on VirtualKey {{ {nested} }}"
            ))
            .is_err()
        );
        let within: String = (0..MAX_ALIASES).map(|i| format!("a{i}: id ")).collect();
        shape(&format!("{{ keys {{ {within} }} }}")).unwrap();
    }

    #[test]
    fn too_many_root_fields_are_refused_through_fragments_and_repeats() {
        let repeated = "teams { id } ".repeat(MAX_ROOT_FIELDS + 1);
        let refused = shape(&format!("{{ {repeated} }}")).unwrap_err();
        assert!(
            refused.message.contains("root fields"),
            "{}",
            refused.message
        );
        assert_eq!(code(&refused).as_deref(), Some("BAD_USER_INPUT"));

        let half = "teams { id } ".repeat(MAX_ROOT_FIELDS / 2 + 1);
        let spread = format!("{{ ...A ...A }} fragment A on QueryRoot {{ {half} }}");
        assert!(shape(&spread).is_err());
        let inline = format!("{{ ... on QueryRoot {{ {half} }} {half} }}");
        assert!(shape(&inline).is_err());
        // A cycle is left to validation to refuse, not followed for ever here.
        shape("{ ...A } fragment A on QueryRoot { teams { id } ...A }").unwrap();
        shape(&format!(
            "{{ {} }}",
            "teams { id } ".repeat(MAX_ROOT_FIELDS)
        ))
        .unwrap();
    }

    #[test]
    fn the_bucket_allows_a_burst_then_refills_at_the_rate() {
        let limiter = MutationLimiter::new(60);
        let user = UserId::generate();
        let other = UserId::generate();
        let start = Instant::now();
        for _ in 0..60 {
            limiter.try_take(user, start).unwrap();
        }
        let wait = limiter.try_take(user, start).unwrap_err();
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        // Someone else is not affected.
        limiter.try_take(other, start).unwrap();
        // One a second comes back.
        limiter
            .try_take(user, start + Duration::from_millis(1_000))
            .unwrap();
        assert!(
            limiter
                .try_take(user, start + Duration::from_millis(1_100))
                .is_err()
        );
        // A minute later the whole burst is back, not more.
        let later = start + Duration::from_secs(120);
        for _ in 0..60 {
            limiter.try_take(user, later).unwrap();
        }
        assert!(limiter.try_take(user, later).is_err());
    }

    #[test]
    fn full_buckets_are_forgotten_when_there_are_many() {
        let limiter = MutationLimiter::new(5);
        let start = Instant::now();
        for _ in 0..PRUNE_AT {
            limiter.try_take(UserId::generate(), start).unwrap();
        }
        let busy = UserId::generate();
        limiter.try_take(busy, start).unwrap();
        // A minute on, every bucket but none is full again: the next newcomer clears them.
        limiter
            .try_take(UserId::generate(), start + Duration::from_secs(60))
            .unwrap();
        let held = limiter.buckets.lock().unwrap().len();
        assert!(held <= 2, "{held} buckets kept");
    }
}

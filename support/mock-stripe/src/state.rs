//! Everything the mock holds: the objects, idempotency results, meter events, the request log,
//! injected failures, and the webhook hub.
//!
//! Objects are kept as the JSON Stripe would return, keyed by id, so one store serves
//! retrieval, lists, `expand[]` and event payloads alike. A request runs with the store locked
//! from its idempotency lookup to saving its result ([`State::run`]), so concurrent requests
//! apply one at a time and events are published in the order they were made.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde_json::{Value, json};

use crate::clock::Clock;
use crate::config::{API_VERSION, MockStripeConfig};
use crate::error::ApiError;
use crate::ids;
use crate::records::{MeterEventRecord, Outage, RecordedRequest, RefusedMeterEvent};
use crate::webhooks::Hub;

/// Locks a mutex, carrying on past a panic in another holder (the data stays usable).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) struct State {
    pub config: MockStripeConfig,
    /// Base of the links the mock hands out (Checkout pages and the like).
    pub base_url: String,
    pub clock: Clock,
    pub hub: Hub,
    store: Mutex<Store>,
    failures: Mutex<Failures>,
    log: Mutex<Vec<RecordedRequest>>,
}

/// A saved answer to an idempotent request.
#[derive(Debug, Clone)]
pub(crate) struct IdempotentResult {
    pub method: String,
    pub path: String,
    pub params: Vec<(String, String)>,
    pub status: u16,
    pub body: Value,
    pub request_id: String,
    pub at: i64,
}

#[derive(Debug)]
struct Stored {
    seq: u64,
    value: Value,
}

#[derive(Debug, Default)]
pub(crate) struct Store {
    seq: u64,
    objects: HashMap<String, Stored>,
    pub idempotency: HashMap<String, IdempotentResult>,
    pub meter_events: Vec<MeterEventRecord>,
    pub refused_meter_events: Vec<RefusedMeterEvent>,
    /// Every meter event identifier ever accepted.
    pub identifiers: HashSet<String>,
    /// Checkout line items by session id (Stripe returns them only on request).
    pub checkout_items: HashMap<String, Vec<Value>>,
    /// `payment_intent_data` / `setup_intent_data` of Checkout Sessions, for the intents their
    /// completion creates.
    pub checkout_intent_data: HashMap<String, Value>,
    pub portal_configuration: String,
}

impl Store {
    /// Adds (or replaces) an object under its `id`; a replaced object keeps its place in lists.
    pub fn put(&mut self, value: Value) {
        let Some(id) = value.get("id").and_then(Value::as_str).map(str::to_owned) else {
            return;
        };
        match self.objects.get_mut(&id) {
            Some(stored) => stored.value = value,
            None => {
                self.seq += 1;
                let seq = self.seq;
                self.objects.insert(id, Stored { seq, value });
            }
        }
    }

    pub fn get(&self, id: &str) -> Option<&Value> {
        self.objects.get(id).map(|stored| &stored.value)
    }

    /// An object of type `object` (`"customer"`, `"invoice"`, ...).
    pub fn typed(&self, id: &str, object: &str) -> Option<&Value> {
        self.get(id)
            .filter(|value| value.get("object").and_then(Value::as_str) == Some(object))
    }

    /// All objects of type `object`, newest first, as Stripe lists them.
    pub fn all(&self, object: &str) -> Vec<&Value> {
        let mut found: Vec<&Stored> = self
            .objects
            .values()
            .filter(|stored| stored.value.get("object").and_then(Value::as_str) == Some(object))
            .collect();
        found.sort_by_key(|stored| std::cmp::Reverse(stored.seq));
        found.into_iter().map(|stored| &stored.value).collect()
    }
}

#[derive(Debug, Default)]
struct Failures {
    fail_next: u32,
    outage: Option<Outage>,
}

/// The context one operation runs in: the locked store, the time, and the events it emits.
pub(crate) struct Ctx<'a> {
    pub store: &'a mut Store,
    pub now: i64,
    pub base_url: &'a str,
    pub config: &'a MockStripeConfig,
    /// The API request behind this operation (request id, idempotency key), if any; events
    /// carry it in their `request` field.
    pub request: Option<(String, Option<String>)>,
    pub emitted: Vec<Value>,
    webhooks_enabled: &'a dyn Fn(&str) -> bool,
}

impl Ctx<'_> {
    /// Records an event about `object` and queues it for delivery once the operation ends.
    /// `previous` becomes `data.previous_attributes` (for `*.updated` events).
    pub fn emit(&mut self, event_type: &str, object: &Value, previous: Option<Value>) -> Value {
        let mut data = json!({ "object": object });
        if let Some(previous) = previous {
            data["previous_attributes"] = previous;
        }
        let (request_id, idempotency_key) = match &self.request {
            Some((id, key)) => (json!(id), json!(key)),
            None => (Value::Null, Value::Null),
        };
        let event = json!({
            "id": ids::of(ids::kind::EVENT),
            "object": "event",
            "api_version": API_VERSION,
            "created": self.now,
            "data": data,
            "livemode": false,
            "pending_webhooks": u32::from((self.webhooks_enabled)(event_type)),
            "request": { "id": request_id, "idempotency_key": idempotency_key },
            "type": event_type,
        });
        self.store.put(event.clone());
        self.emitted.push(event.clone());
        event
    }

    /// An existing object of type `object`, or Stripe's "No such ..." error.
    pub fn find(
        &self,
        id: &str,
        object: &str,
        what: &str,
        param: Option<&str>,
    ) -> Result<Value, ApiError> {
        self.store
            .typed(id, object)
            .cloned()
            .ok_or_else(|| ApiError::no_such(what, id, param))
    }

    /// A link on the mock's own server.
    pub fn link(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }
}

impl State {
    pub fn new(config: MockStripeConfig, base_url: String, hub: Hub) -> State {
        let store = Store {
            portal_configuration: ids::of(ids::kind::PORTAL_CONFIGURATION),
            ..Store::default()
        };
        State {
            config,
            base_url,
            clock: Clock::default(),
            hub,
            store: Mutex::new(store),
            failures: Mutex::new(Failures::default()),
            log: Mutex::new(Vec::new()),
        }
    }

    /// Runs `operation` with the store locked and publishes the events it emitted.
    pub fn run<T>(
        &self,
        request: Option<(String, Option<String>)>,
        operation: impl FnOnce(&mut Ctx<'_>) -> T,
    ) -> T {
        let enabled = |event_type: &str| self.hub.would_deliver(event_type);
        let mut store = lock(&self.store);
        let mut ctx = Ctx {
            store: &mut store,
            now: self.clock.now(),
            base_url: &self.base_url,
            config: &self.config,
            request,
            emitted: Vec::new(),
            webhooks_enabled: &enabled,
        };
        let result = operation(&mut ctx);
        // Published before the store is unlocked, so events queue in the order they were made
        // even when a test control runs beside an API request. Publishing only queues.
        self.hub.publish(ctx.emitted);
        result
    }

    /// Read access to the store.
    pub fn read<T>(&self, read: impl FnOnce(&Store) -> T) -> T {
        read(&lock(&self.store))
    }

    /// The failure this request must suffer, if any; counts down `fail_next`.
    pub fn take_failure(&self) -> Option<Outage> {
        let mut failures = lock(&self.failures);
        if let Some(outage) = failures.outage {
            return Some(outage);
        }
        if failures.fail_next > 0 {
            failures.fail_next -= 1;
            return Some(Outage::Error500);
        }
        None
    }

    pub fn fail_next(&self, count: u32) {
        lock(&self.failures).fail_next = count;
    }

    pub fn set_outage(&self, outage: Option<Outage>) {
        lock(&self.failures).outage = outage;
    }

    pub fn clear_failures(&self) {
        *lock(&self.failures) = Failures::default();
    }

    pub fn log_request(&self, request: RecordedRequest) {
        lock(&self.log).push(request);
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.log).clone()
    }

    pub fn clear_requests(&self) {
        lock(&self.log).clear();
    }
}

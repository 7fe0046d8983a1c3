//! Sending to providers: one shared, pooled HTTP client; retries with exponential backoff and
//! full jitter; `Retry-After`; fail-over along the route's plan; circuit breakers fed with every
//! outcome.
//!
//! A failure is either the client's (an upstream 4xx such as 400 or 422: passed back at once,
//! trying elsewhere would fail the same way) or the target's (connection error, timeout, 429,
//! 5xx, or a 401/403 that says our provider credentials are wrong): those are retried on the
//! same target while the policy allows, then the next target is tried.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use tollgate_common::config::RetryPolicy;
use tollgate_common::{KeyContext, OrgId};
use tracing::Instrument;

use crate::error::GatewayError;
use crate::providers::UpstreamRequest;
use crate::routing::{RouteGroup, Target};

/// The one HTTP client every upstream call goes through.
pub fn build_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .connect_timeout(Duration::from_secs(10))
        .tcp_keepalive(Duration::from_secs(30))
        .build()
}

/// The body of a successful upstream answer.
pub enum UpstreamBody {
    /// A whole (non-streaming) answer.
    Complete(Bytes),
    /// A stream whose first chunk has already arrived (so fail-over was still possible until
    /// then), followed by the rest.
    Stream {
        first: Bytes,
        rest: BoxStream<'static, reqwest::Result<Bytes>>,
    },
}

/// A target that answered successfully.
pub struct UpstreamSuccess {
    pub target: Arc<Target>,
    pub body: UpstreamBody,
    /// Upstream tries made, across all targets.
    pub attempts: u32,
}

/// Why a route failed, with how many tries it made and the last target tried.
pub struct UpstreamFailure {
    pub error: GatewayError,
    pub attempts: u32,
    pub target: Option<Arc<Target>>,
}

/// One try's outcome against one target.
enum Outcome {
    Success(UpstreamBody),
    /// The upstream rejected the request itself: stop and tell the client.
    Rejected(GatewayError),
    /// The target failed; `status` is the upstream status when there was one.
    Failed {
        status: Option<u16>,
        retry_after: Option<Duration>,
        reason: String,
    },
}

/// Sends along `group`'s plan until a target answers. `build` makes each target's request; an
/// error from it (the request cannot be expressed for that provider) skips the target. `org`
/// is whose request it is: a target's throttling counts against that organization alone.
pub async fn send(
    client: &reqwest::Client,
    group: &RouteGroup,
    stream: bool,
    org: Option<OrgId>,
    build: impl Fn(&Target) -> Result<UpstreamRequest, GatewayError>,
) -> Result<UpstreamSuccess, UpstreamFailure> {
    let usable = |target: &Target| {
        org.is_none_or(|org| target.throttled.try_acquire(org)) && target.breaker.try_acquire()
    };
    let mut attempts = 0;
    let mut last_failure: Option<(Option<u16>, String)> = None;
    let mut untranslatable: Option<GatewayError> = None;
    let mut last_target = None;
    let mut skipped_open = 0;

    for target in group.plan() {
        // A Vertex AI target without a usable access token fetches one first (see
        // `ProviderAdapter::credentials_ready`); failing that, the target failed.
        if let Some(ready) = target.provider.adapter.credentials_ready()
            && let Err(reason) = ready.await
        {
            tracing::debug!(target = %target.label(), %reason, "upstream credentials unavailable");
            last_failure = Some((None, format!("{}: {reason}", target.label())));
            last_target = Some(target.clone());
            continue;
        }
        let request = match build(&target) {
            Ok(request) => request,
            Err(err) => {
                untranslatable.get_or_insert(err);
                continue;
            }
        };
        if !usable(&target) {
            skipped_open += 1;
            continue;
        }
        last_target = Some(target.clone());
        for try_number in 1..=group.retry.attempts.max(1) {
            attempts += 1;
            let started = Instant::now();
            let span = tracing::info_span!(
                "gen_ai.upstream",
                otel.kind = "client",
                gen_ai.system = target.provider.kind.otel_system(),
                gen_ai.request.model = target.model.as_str(),
                tollgate.provider = target.provider.name.as_str(),
                tollgate.try = try_number,
                http.response.status_code = tracing::field::Empty,
                error.type = tracing::field::Empty,
            );
            let outcome = attempt(client, &target, &request, stream, group.timeout)
                .instrument(span.clone())
                .await;
            if !span.is_disabled() {
                match &outcome {
                    Outcome::Success(_) => span.record("http.response.status_code", 200),
                    Outcome::Rejected(error) => {
                        span.record("http.response.status_code", error.status().as_u16())
                    }
                    Outcome::Failed { status, reason, .. } => {
                        if let Some(status) = status {
                            span.record("http.response.status_code", status);
                        }
                        span.record("error.type", reason.as_str())
                    }
                };
            }
            match outcome {
                Outcome::Success(body) => {
                    target.breaker.record_success();
                    if let Some(org) = org {
                        target.throttled.record_success(org);
                    }
                    target.latency.record(started.elapsed());
                    return Ok(UpstreamSuccess {
                        target,
                        body,
                        attempts,
                    });
                }
                Outcome::Rejected(error) => {
                    // The target is healthy; the request is not.
                    target.breaker.record_success();
                    return Err(UpstreamFailure {
                        error,
                        attempts,
                        target: Some(target),
                    });
                }
                Outcome::Failed {
                    status,
                    retry_after,
                    reason,
                } => {
                    // Throttling says nothing of the target's health for everyone else: on an
                    // organization's own key it is that organization's matter, and on the
                    // deployment's account it counts against the organization whose request
                    // it was (see `routing::circuit`).
                    match (status, org) {
                        (Some(429), _) if request.own_credentials => {}
                        (Some(429), Some(org)) => target.throttled.record_throttled(org),
                        _ => target.breaker.record_failure(),
                    }
                    tracing::debug!(target = %target.label(), try_number, %reason, "upstream attempt failed");
                    last_failure = Some((status, format!("{}: {reason}", target.label())));
                    let retryable = status.is_none_or(|s| group.retry.on_status.contains(&s));
                    if !retryable || try_number >= group.retry.attempts {
                        break;
                    }
                    match backoff(&group.retry, try_number, retry_after) {
                        Some(wait) => tokio::time::sleep(wait).await,
                        // The upstream wants more time than the policy waits: go elsewhere.
                        None => break,
                    }
                    if !usable(&target) {
                        break;
                    }
                }
            }
        }
    }

    let error = match (last_failure, untranslatable) {
        (Some((status, reason)), _) => GatewayError::AllTargetsFailed {
            unavailable: matches!(status, Some(429 | 503)),
            message: format!(
                "All upstream targets for `{}` failed after {attempts} attempt(s); last: {reason}",
                group.name
            ),
        },
        (None, Some(err)) => err,
        (None, None) if skipped_open > 0 => GatewayError::AllTargetsFailed {
            unavailable: true,
            message: format!(
                "Every target for `{}` is temporarily unavailable (circuit open); retry shortly.",
                group.name
            ),
        },
        (None, None) => GatewayError::AllTargetsFailed {
            unavailable: true,
            message: format!("No target is configured for `{}`.", group.name),
        },
    };
    Err(UpstreamFailure {
        error,
        attempts,
        target: last_target,
    })
}

/// Puts the organization's own key for `target`'s provider on `request` when it brings its own
/// keys; without one for this provider the target cannot serve it (the deployment's key is
/// not theirs to use).
pub fn own_key(
    key: &KeyContext,
    target: &Target,
    mut request: UpstreamRequest,
) -> Result<UpstreamRequest, GatewayError> {
    if !key.billing.own_provider_keys {
        return Ok(request);
    }
    let provider = &target.provider.name;
    let Some(api_key) = key.provider_keys.get(provider) else {
        return Err(GatewayError::ProviderKey {
            message: format!(
                "This organization uses its own provider keys and has none for `{provider}`. \
                 Add one on the dashboard's Billing page."
            ),
            code: "provider_key_missing",
        });
    };
    target
        .provider
        .adapter
        .authenticate(&mut request.headers, api_key.expose())
        .map_err(|reason| GatewayError::ProviderKey {
            message: format!("This organization's key for `{provider}` cannot be sent: {reason}."),
            code: "provider_key_rejected",
        })?;
    request.own_credentials = true;
    Ok(request)
}

/// How long to wait before retry number `try_number + 1`: the upstream's `Retry-After` when it
/// gave one within the policy's cap, else exponential backoff with full jitter. `None` when the
/// upstream asks for longer than the cap.
fn backoff(
    policy: &RetryPolicy,
    try_number: u32,
    retry_after: Option<Duration>,
) -> Option<Duration> {
    let cap = Duration::from_millis(policy.max_backoff_ms);
    if let Some(wait) = retry_after {
        return (wait <= cap).then_some(wait);
    }
    let exp = policy
        .backoff_ms
        .saturating_mul(1u64 << (try_number - 1).min(20))
        .min(policy.max_backoff_ms);
    if exp == 0 {
        return Some(Duration::ZERO);
    }
    Some(Duration::from_millis(rand::rng().random_range(0..=exp)))
}

async fn attempt(
    client: &reqwest::Client,
    target: &Target,
    request: &UpstreamRequest,
    stream: bool,
    timeout: Duration,
) -> Outcome {
    let deadline = tokio::time::Instant::now() + timeout;
    let send = client
        .post(request.url.clone())
        .headers(request.headers.clone())
        .body(request.body.clone())
        .send();
    let response = match tokio::time::timeout_at(deadline, send).await {
        Ok(Ok(response)) => response,
        Ok(Err(err)) => {
            return Outcome::Failed {
                status: None,
                retry_after: None,
                reason: connection_reason(err),
            };
        }
        Err(_) => return timed_out(timeout),
    };
    let status = response.status();
    if status.is_success() {
        if stream {
            let mut rest = response.bytes_stream().boxed();
            // Wait for the first bytes: until then the client has seen nothing and the request
            // can still go elsewhere.
            loop {
                return match tokio::time::timeout_at(deadline, rest.next()).await {
                    Ok(Some(Ok(first))) if first.is_empty() => continue,
                    Ok(Some(Ok(first))) => Outcome::Success(UpstreamBody::Stream { first, rest }),
                    Ok(Some(Err(err))) => Outcome::Failed {
                        status: None,
                        retry_after: None,
                        reason: connection_reason(err),
                    },
                    Ok(None) => Outcome::Failed {
                        status: None,
                        retry_after: None,
                        reason: "the stream ended before its first event".into(),
                    },
                    Err(_) => timed_out(timeout),
                };
            }
        }
        return match tokio::time::timeout_at(deadline, response.bytes()).await {
            Ok(Ok(body)) => Outcome::Success(UpstreamBody::Complete(body)),
            Ok(Err(err)) => Outcome::Failed {
                status: None,
                retry_after: None,
                reason: connection_reason(err),
            },
            Err(_) => timed_out(timeout),
        };
    }

    let retry_after = retry_after(response.headers());
    let body = match tokio::time::timeout_at(deadline, response.bytes()).await {
        Ok(Ok(body)) => body,
        _ => Bytes::new(),
    };
    let details = target
        .provider
        .adapter
        .error_details(status.as_u16(), &body);
    if request.own_credentials && matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
    {
        // Never echo the provider's message: it may quote part of the key.
        return Outcome::Rejected(GatewayError::ProviderKey {
            message: format!(
                "The provider `{}` refused your organization's own API key ({status}). Replace \
                 it on the dashboard's Billing page.",
                target.provider.name
            ),
            code: "provider_key_rejected",
        });
    }
    if is_client_error(status) {
        return Outcome::Rejected(GatewayError::UpstreamRejected {
            status: status.as_u16(),
            message: details.message,
            kind: details.kind,
            param: details.param,
            code: details.code,
        });
    }
    // What a client is told of a target's failure. The provider's own message about the
    // deployment's account is never echoed: rate-limit and server errors name the operator's
    // provider organization, project or deployment ids, and auth errors may quote part of the
    // key. On an organization's own key, its provider's message is its own to read.
    tracing::debug!(target = %target.label(), %status, message = %details.message, "upstream failure");
    let reason = match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            format!("{status}: the provider rejected the gateway's credentials")
        }
        _ if request.own_credentials => format!("{status}: {}", details.message),
        StatusCode::TOO_MANY_REQUESTS => format!("{status}: the provider is rate limiting"),
        _ => format!("{status}: the provider failed"),
    };
    Outcome::Failed {
        status: Some(status.as_u16()),
        // The header wins; some providers give the wait only in the error body.
        retry_after: retry_after.or(details.retry_after),
        reason,
    }
}

/// A 4xx that says the request itself is wrong; 401/403 (our credentials), 408 (slow) and 429
/// (busy) are the target's problem instead.
fn is_client_error(status: StatusCode) -> bool {
    status.is_client_error()
        && !matches!(
            status,
            StatusCode::UNAUTHORIZED
                | StatusCode::FORBIDDEN
                | StatusCode::REQUEST_TIMEOUT
                | StatusCode::TOO_MANY_REQUESTS
        )
}

fn timed_out(timeout: Duration) -> Outcome {
    Outcome::Failed {
        status: None,
        retry_after: None,
        reason: format!("no answer within {} ms", timeout.as_millis()),
    }
}

fn connection_reason(err: reqwest::Error) -> String {
    // reqwest's messages name the URL; ours must not carry query strings with keys, and do not.
    if err.is_connect() {
        "connection failed".into()
    } else if err.is_timeout() {
        "timed out".into()
    } else {
        format!("transport error: {}", err.without_url())
    }
}

/// `retry-after-ms` (OpenAI, Azure) or `retry-after` in seconds.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let read = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok();
    if let Some(ms) = read("retry-after-ms").filter(|v| v.is_finite() && *v >= 0.0) {
        return Some(Duration::from_micros((ms * 1000.0) as u64));
    }
    read("retry-after")
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|s| Duration::from_millis((s * 1000.0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_within_the_cap_and_honours_retry_after() {
        let policy = RetryPolicy {
            attempts: 5,
            on_status: vec![503],
            backoff_ms: 100,
            max_backoff_ms: 300,
        };
        for _ in 0..200 {
            assert!(backoff(&policy, 1, None).unwrap() <= Duration::from_millis(100));
            assert!(backoff(&policy, 2, None).unwrap() <= Duration::from_millis(200));
            assert!(backoff(&policy, 9, None).unwrap() <= Duration::from_millis(300));
        }
        assert_eq!(
            backoff(&policy, 1, Some(Duration::from_millis(250))),
            Some(Duration::from_millis(250))
        );
        assert_eq!(backoff(&policy, 1, Some(Duration::from_secs(30))), None);
    }

    #[test]
    fn retry_after_reads_seconds_and_milliseconds() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert("retry-after-ms", "150".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(150)));
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn credentials_and_throttling_are_the_targets_problem() {
        assert!(is_client_error(StatusCode::BAD_REQUEST));
        assert!(is_client_error(StatusCode::UNPROCESSABLE_ENTITY));
        assert!(!is_client_error(StatusCode::UNAUTHORIZED));
        assert!(!is_client_error(StatusCode::TOO_MANY_REQUESTS));
        assert!(!is_client_error(StatusCode::BAD_GATEWAY));
    }
}

//! Request bodies read under a size limit and a deadline, for every HTTP endpoint.
//!
//! [`read_capped`] reads a body chunk by chunk: a declared `Content-Length` over the limit is
//! refused before any byte is read, and a body that grows past the limit is refused as soon as
//! it does, so no more than the limit is ever held. The whole body must arrive within the read
//! timeout, so a client trickling bytes is cut off instead of holding the request's task.
//! Each service maps a [`BodyError`] to its own error shape.
//!
//! [`CloseUnreadBodies`] wraps a server so that an answer given while the request's body is
//! still unread (an early 401, 413 or 408) closes the connection. Left alone, actix drains a
//! chunked body the handler did not read to its end, with no timer: a client could keep the
//! connection for as long as it trickles, and the server would read every byte of a body it
//! already refused.

use std::cell::{Cell, RefCell};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::HttpMessage;
use actix_web::HttpRequest;
use actix_web::body::{BodySize, BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::error::PayloadError;
use actix_web::http::header::{CONTENT_LENGTH, HeaderMap};
use bytes::{Bytes, BytesMut};
use futures_util::future::{Either, LocalBoxFuture, MapOk, Ready, TryFutureExt, ready};
use futures_util::{Stream, StreamExt};

use crate::config::ServerConfig;

/// How much of a request body is accepted, and how long it may take to arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    pub max_bytes: usize,
    /// For the whole body, from the first read: a deadline, not an idle timeout, so that a
    /// byte now and then does not keep a request alive.
    pub read_timeout: Duration,
}

impl BodyLimits {
    /// The limits of the model endpoints (`/v1/*`): `server.max_body_bytes`.
    pub fn model_calls(server: &ServerConfig) -> BodyLimits {
        BodyLimits {
            max_bytes: server.max_body_bytes,
            read_timeout: server.body_read_timeout(),
        }
    }

    /// The limits of the admin API and the auth endpoints: `server.max_admin_body_bytes`.
    pub fn admin(server: &ServerConfig) -> BodyLimits {
        BodyLimits {
            max_bytes: server.max_admin_body_bytes,
            read_timeout: server.body_read_timeout(),
        }
    }

    /// The same deadline with a smaller size limit, for endpoints whose bodies are known to be
    /// small whatever the configuration allows.
    pub fn at_most(self, max_bytes: usize) -> BodyLimits {
        BodyLimits {
            max_bytes: self.max_bytes.min(max_bytes),
            read_timeout: self.read_timeout,
        }
    }
}

/// Why a body was not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Declared or found larger than the limit; what came of it is dropped.
    #[error("The request body is larger than the limit of {limit} bytes.")]
    TooLarge { limit: usize },
    /// The body had not all arrived when the read timeout ran out.
    #[error("The request body did not arrive within {} ms.", .after.as_millis())]
    TimedOut { after: Duration },
    /// The connection broke or the transfer encoding was invalid.
    #[error("The request body could not be read: {0}")]
    Unreadable(String),
}

/// The `Content-Length` a request declares, when it declares a valid one.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Reads an actix request's body under `limits`.
pub async fn read_payload(
    req: &HttpRequest,
    mut payload: actix_web::web::Payload,
    limits: BodyLimits,
) -> Result<Bytes, BodyError> {
    read_capped(&mut payload, declared_length(req.headers()), limits).await
}

/// Reads `body` to its end under `limits`; `declared` is the length the client announced.
///
/// A body that arrives as one chunk (most small requests) is returned as that chunk, without
/// a copy; a longer one is gathered in a buffer that grows with what actually arrived, never
/// with what the client announced.
pub async fn read_capped<S, E>(
    body: &mut S,
    declared: Option<u64>,
    limits: BodyLimits,
) -> Result<Bytes, BodyError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let too_large = BodyError::TooLarge {
        limit: limits.max_bytes,
    };
    if declared.is_some_and(|size| size > limits.max_bytes as u64) {
        return Err(too_large);
    }
    // One timer for the whole body; it is not even registered when the body is already there.
    let deadline = tokio::time::sleep(limits.read_timeout);
    tokio::pin!(deadline);
    let mut first: Option<Bytes> = None;
    let mut gathered = BytesMut::new();
    loop {
        let next = tokio::select! {
            biased;
            next = body.next() => next,
            () = &mut deadline => {
                return Err(BodyError::TimedOut { after: limits.read_timeout });
            }
        };
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| BodyError::Unreadable(e.to_string()))?;
        if chunk.is_empty() {
            continue;
        }
        let held = first.as_ref().map_or(gathered.len(), Bytes::len);
        if held + chunk.len() > limits.max_bytes {
            return Err(too_large);
        }
        match first.take() {
            None if gathered.is_empty() => first = Some(chunk),
            None => gathered.extend_from_slice(&chunk),
            Some(earlier) => {
                gathered.reserve(earlier.len() + chunk.len());
                gathered.extend_from_slice(&earlier);
                gathered.extend_from_slice(&chunk);
            }
        }
    }
    Ok(first.unwrap_or_else(|| gathered.freeze()))
}

/// Middleware that closes the connection after an answer given before the request's body was
/// read to its end (see the module documentation). Requests without a body pass untouched.
#[derive(Debug, Clone, Copy, Default)]
pub struct CloseUnreadBodies;

impl<S, B> Transform<S, ServiceRequest> for CloseUnreadBodies
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B, UnreadBodyHeld>>;
    type Error = actix_web::Error;
    type Transform = CloseUnreadBodiesService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(CloseUnreadBodiesService { service }))
    }
}

/// [`CloseUnreadBodies`] around one service.
pub struct CloseUnreadBodiesService<S> {
    service: S,
}

type Passed<B> = fn(ServiceResponse<B>) -> ServiceResponse<EitherBody<B, UnreadBodyHeld>>;

impl<S, B> Service<ServiceRequest> for CloseUnreadBodiesService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B, UnreadBodyHeld>>;
    type Error = actix_web::Error;
    type Future = Either<
        MapOk<S::Future, Passed<B>>,
        LocalBoxFuture<'static, Result<Self::Response, Self::Error>>,
    >;

    actix_web::dev::forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        let payload = req.take_payload();
        if matches!(payload, Payload::None) {
            let passed: Passed<B> = ServiceResponse::map_into_left_body;
            return Either::Left(self.service.call(req).map_ok(passed));
        }
        let shared = Rc::new(SharedBody {
            payload: RefCell::new(payload),
            ended: Cell::new(false),
        });
        req.set_payload(Payload::Stream {
            payload: Box::pin(SharedBodyStream(shared.clone())),
        });
        let answer = self.service.call(req);
        Either::Right(Box::pin(async move {
            let response = answer.await?;
            if shared.ended.get() {
                return Ok(response.map_into_left_body());
            }
            // The server decides whether to drain or to close when it sends the answer's last
            // byte; the body still being referenced then (by the answer) makes it close.
            Ok(response.map_body(|_, body| {
                EitherBody::right(UnreadBodyHeld {
                    body: body.boxed(),
                    _unread: shared,
                })
            }))
        }))
    }
}

/// The request's body, shared between the handler (which reads it) and the middleware (which
/// keeps it referenced until the answer is sent when it was not read to its end).
struct SharedBody {
    payload: RefCell<Payload>,
    ended: Cell<bool>,
}

struct SharedBodyStream(Rc<SharedBody>);

impl Stream for SharedBodyStream {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let shared = &self.0;
        let polled = Pin::new(&mut *shared.payload.borrow_mut()).poll_next(cx);
        // After an error the server has given up on the body itself: nothing is left to drain.
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            shared.ended.set(true);
        }
        polled
    }
}

/// An answer's body that keeps the unread request body referenced until it has been sent.
pub struct UnreadBodyHeld {
    body: BoxBody,
    _unread: Rc<SharedBody>,
}

impl MessageBody for UnreadBodyHeld {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.body).poll_next(cx)
    }

    // No `try_into_bytes`: turning the answer into plain bytes would drop the reference before
    // the server looks at it.
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;

    use actix_web::{App, HttpResponse, HttpServer, web};
    use futures_util::stream;

    use super::*;

    const LIMITS: BodyLimits = BodyLimits {
        max_bytes: 1024,
        read_timeout: Duration::from_millis(200),
    };

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, String>> + Unpin {
        stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    /// Counts what the reader pulled, to show it stops at the limit.
    struct Counted<S> {
        inner: S,
        pulled: Rc<Cell<usize>>,
    }

    impl<S: Stream<Item = Result<Bytes, String>> + Unpin> Stream for Counted<S> {
        type Item = Result<Bytes, String>;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            let polled = Pin::new(&mut self.inner).poll_next(cx);
            if let Poll::Ready(Some(Ok(chunk))) = &polled {
                self.pulled.set(self.pulled.get() + chunk.len());
            }
            polled
        }
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_read_whole() {
        let body = read_capped(&mut chunks(&[b"{\"a\":", b"", b"1}"]), Some(7), LIMITS).await;
        assert_eq!(body.unwrap(), Bytes::from_static(b"{\"a\":1}"));
        let one = read_capped(&mut chunks(&[b"hello"]), None, LIMITS).await;
        assert_eq!(one.unwrap(), Bytes::from_static(b"hello"));
        let empty = read_capped(&mut chunks(&[]), None, LIMITS).await;
        assert!(empty.unwrap().is_empty());
        let exact = read_capped(&mut chunks(&[&[b'x'; 1024]]), Some(1024), LIMITS).await;
        assert_eq!(exact.unwrap().len(), 1024);
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_before_any_read() {
        let pulled = Rc::new(Cell::new(0));
        let mut body = Counted {
            inner: chunks(&[b"x"]),
            pulled: pulled.clone(),
        };
        let refused = read_capped(&mut body, Some(64 * 1024 * 1024), LIMITS).await;
        assert_eq!(refused, Err(BodyError::TooLarge { limit: 1024 }));
        assert_eq!(pulled.get(), 0);
    }

    #[tokio::test]
    async fn a_body_is_refused_at_the_chunk_that_crosses_the_limit() {
        // An endless body, as a chunked upload that never ends would be.
        let pulled = Rc::new(Cell::new(0));
        let mut body = Counted {
            inner: stream::repeat_with(|| Ok(Bytes::from_static(&[b'x'; 300]))),
            pulled: pulled.clone(),
        };
        let refused = read_capped(&mut body, None, LIMITS).await;
        assert_eq!(refused, Err(BodyError::TooLarge { limit: 1024 }));
        assert_eq!(pulled.get(), 1200, "four chunks pulled, the fourth refused");
        // A Content-Length that understates the body does not get it through either.
        let mut lying = chunks(&[&[b'x'; 1000], &[b'x'; 100]]);
        let refused = read_capped(&mut lying, Some(10), LIMITS).await;
        assert_eq!(refused, Err(BodyError::TooLarge { limit: 1024 }));
    }

    #[tokio::test]
    async fn a_trickling_body_is_cut_off_at_the_deadline() {
        // A byte every 50 ms: each arrives well within any idle timeout, the whole never does.
        let trickle = stream::unfold(0, |n| async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Some((Ok::<_, String>(Bytes::from_static(b"x")), n + 1))
        });
        let started = Instant::now();
        let refused = read_capped(&mut Box::pin(trickle), Some(1000), LIMITS).await;
        assert_eq!(
            refused,
            Err(BodyError::TimedOut {
                after: Duration::from_millis(200)
            })
        );
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(2),
            "{took:?}"
        );
        let mut stalled = stream::pending::<Result<Bytes, String>>();
        let refused = read_capped(&mut stalled, None, LIMITS).await;
        assert!(matches!(refused, Err(BodyError::TimedOut { .. })));
    }

    #[tokio::test]
    async fn a_broken_body_is_unreadable() {
        let broken = stream::iter([Ok(Bytes::from_static(b"{")), Err("connection reset")]);
        let refused = read_capped(&mut Box::pin(broken), None, LIMITS).await;
        assert_eq!(
            refused,
            Err(BodyError::Unreadable("connection reset".into()))
        );
    }

    fn routes(cfg: &mut web::ServiceConfig) {
        cfg.route(
            "/refuse",
            web::post().to(|| async { HttpResponse::Unauthorized().body("no key") }),
        )
        .route(
            "/read",
            web::put().to(|body: web::Bytes| async move {
                HttpResponse::Ok().body(format!("{} bytes", body.len()))
            }),
        );
    }

    /// Starts a server whose `/refuse` answers 401 without reading the body, and returns its
    /// address.
    async fn refusing_server(
        close_unread: bool,
    ) -> (std::net::SocketAddr, actix_web::dev::ServerHandle) {
        let (addr, server) = if close_unread {
            let bound = HttpServer::new(|| App::new().wrap(CloseUnreadBodies).configure(routes))
                .workers(1)
                .disable_signals()
                .bind("127.0.0.1:0")
                .unwrap();
            (bound.addrs()[0], bound.run())
        } else {
            let bound = HttpServer::new(|| App::new().configure(routes))
                .workers(1)
                .disable_signals()
                .bind("127.0.0.1:0")
                .unwrap();
            (bound.addrs()[0], bound.run())
        };
        let handle = server.handle();
        actix_web::rt::spawn(server);
        (addr, handle)
    }

    /// Sends the head of a chunked upload and one chunk, reads the answer, then waits without
    /// sending more: whether the server closes the connection (`true`) or keeps waiting for
    /// the rest of the body.
    fn closes_after_refusing(addr: std::net::SocketAddr) -> (String, bool) {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .write_all(b"POST /refuse HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            .unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => return (String::from_utf8_lossy(&answer).into_owned(), true),
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return (String::from_utf8_lossy(&answer).into_owned(), true);
                }
                Err(_) => return (String::from_utf8_lossy(&answer).into_owned(), false),
            }
        }
    }

    #[actix_web::test]
    async fn an_answer_before_the_body_is_read_closes_the_connection() {
        let (addr, handle) = refusing_server(true).await;
        let (answer, closed) = tokio::task::spawn_blocking(move || closes_after_refusing(addr))
            .await
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
        assert!(
            answer.to_lowercase().contains("connection: close"),
            "{answer}"
        );
        assert!(closed, "the connection stays open for the rest of the body");

        // A body read to its end keeps the connection alive for the next request.
        let reused = tokio::task::spawn_blocking(move || {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(3)))
                .unwrap();
            let mut answers = String::new();
            for _ in 0..2 {
                stream
                    .write_all(b"PUT /read HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
                    .unwrap();
                let mut buf = [0u8; 4096];
                let n = stream.read(&mut buf).unwrap();
                answers.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            answers
        })
        .await
        .unwrap();
        assert_eq!(reused.matches("HTTP/1.1 200").count(), 2, "{reused}");
        assert!(
            !reused.to_lowercase().contains("connection: close"),
            "{reused}"
        );
        handle.stop(false).await;
    }

    /// Without the middleware the same exchange leaves the connection open: what it is for.
    #[actix_web::test]
    async fn without_it_the_server_waits_for_the_rest_of_a_refused_body() {
        let (addr, handle) = refusing_server(false).await;
        let (answer, closed) = tokio::task::spawn_blocking(move || closes_after_refusing(addr))
            .await
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
        assert!(!closed);
        handle.stop(false).await;
    }
}

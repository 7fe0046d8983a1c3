//! Work that finishes even when its caller stops waiting.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Runs a future in place, on the caller's task (no spawn, no hop); if it is dropped before it
/// completes (the client disconnected), what is left of it is handed to the runtime to finish
/// in the background. So a provider call the client abandoned still completes and is metered,
/// while the common case costs one allocation.
pub struct FinishDetached<T: Send + 'static> {
    future: Option<Pin<Box<dyn Future<Output = T> + Send>>>,
}

impl<T: Send + 'static> FinishDetached<T> {
    pub fn new(future: impl Future<Output = T> + Send + 'static) -> Self {
        FinishDetached {
            future: Some(Box::pin(future)),
        }
    }
}

impl<T: Send + 'static> Future for FinishDetached<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = self.get_mut();
        // Polled again after completing: a caller bug; never ready again rather than panic.
        let Some(future) = this.future.as_mut() else {
            return Poll::Pending;
        };
        let output = std::task::ready!(future.as_mut().poll(cx));
        this.future = None;
        Poll::Ready(output)
    }
}

impl<T: Send + 'static> Drop for FinishDetached<T> {
    fn drop(&mut self) {
        if let Some(future) = self.future.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(async move {
                        future.await;
                    });
                }
                Err(_) => tracing::warn!("runtime is gone; an abandoned request was not finished"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn completes_in_place_when_awaited() {
        assert_eq!(FinishDetached::new(async { 7 }).await, 7);
    }

    #[tokio::test]
    async fn finishes_in_the_background_when_dropped_midway() {
        let finished = Arc::new(AtomicBool::new(false));
        let flag = finished.clone();
        let work = FinishDetached::new(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            flag.store(true, Ordering::SeqCst);
        });
        // Start it, then give up waiting, as a disconnecting client does.
        let _ = tokio::time::timeout(Duration::from_millis(1), work).await;
        assert!(!finished.load(Ordering::SeqCst));
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(
            finished.load(Ordering::SeqCst),
            "the abandoned work did not finish"
        );
    }
}

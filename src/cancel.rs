//! Why a running request stops early, and the token that carries it.

use std::sync::Arc;
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// The request ran past its timeout.
    Timeout,
    /// The caller's AbortSignal fired.
    Aborted,
    /// The engine is shutting down.
    Shutdown,
    /// restart(): the request goes back to the queue for a fresh worker.
    Restart,
}

/// Cloneable; the first `cancel` wins and every waiter sees its reason.
#[derive(Clone)]
pub struct CancelToken(Arc<watch::Sender<Option<CancelReason>>>);

impl Default for CancelToken {
    fn default() -> Self {
        CancelToken(Arc::new(watch::channel(None).0))
    }
}

impl CancelToken {
    pub fn cancel(&self, reason: CancelReason) -> bool {
        self.0.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(reason);
                true
            } else {
                false
            }
        })
    }

    /// Whether it was cancelled, for any reason.
    pub fn is_cancelled(&self) -> bool {
        self.0.borrow().is_some()
    }

    pub async fn cancelled(&self) -> CancelReason {
        let mut rx = self.0.subscribe();
        let reason = rx
            .wait_for(Option::is_some)
            .await
            .expect("the sender lives in self");
        reason.expect("waited for Some")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_reason_wins_and_reaches_every_waiter() {
        let token = CancelToken::default();
        let waiter = tokio::spawn({
            let t = token.clone();
            async move { t.cancelled().await }
        });
        assert!(token.cancel(CancelReason::Aborted));
        assert!(!token.cancel(CancelReason::Shutdown));
        assert_eq!(waiter.await.unwrap(), CancelReason::Aborted);
        // A waiter that arrives late still sees it.
        assert_eq!(token.cancelled().await, CancelReason::Aborted);
    }
}

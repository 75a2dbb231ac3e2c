//! "Something changed": async code waits on it for a condition, without
//! missing a notification that lands between its check and its wait.

use tokio::sync::Notify;

#[derive(Default)]
pub struct Changed(Notify);

impl Changed {
    pub fn notify(&self) {
        self.0.notify_waiters();
    }

    /// Waits until `done()` holds, re-checking after every notification.
    pub async fn wait_until(&self, mut done: impl FnMut() -> bool) {
        loop {
            let notified = self.0.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if done() {
                return;
            }
            notified.await;
        }
    }
}

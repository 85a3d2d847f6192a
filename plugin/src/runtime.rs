//! The tokio runtime the integration owns while Microsoft integration is switched on.
//!
//! Never a `static`: libraries are never unloaded, so a static runtime could never be stopped.
//! One runtime per integration object, started when Microsoft integration is switched on and
//! stopped (its threads joined, within a deadline) when it is switched off or the host shuts the
//! plugin down. A `Handle` never crosses the boundary: the host has its own tokio, if any.

use std::{future::Future, io, time::Duration};

use tokio::runtime::{Builder, Handle, Runtime};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Name of every thread the plugin starts (tests count them by this name).
pub const THREAD_NAME: &str = "contact-ms365";

/// A running runtime plus the token that asks its tasks to stop.
pub struct PluginRuntime {
    runtime: Option<Runtime>,
    cancel: CancellationToken,
}

impl PluginRuntime {
    /// Starts two worker threads (the plugin's work is I/O-bound and light).
    pub fn start() -> io::Result<Self> {
        let runtime = Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(4)
            .thread_name(THREAD_NAME)
            .enable_all()
            .build()?;
        Ok(Self {
            runtime: Some(runtime),
            cancel: CancellationToken::new(),
        })
    }

    /// A handle for spawning; valid until [`stop`](Self::stop).
    pub fn handle(&self) -> &Handle {
        self.runtime
            .as_ref()
            .expect("the runtime is present until stop() consumes it")
            .handle()
    }

    /// Cancelled when the runtime stops: long-lived tasks select on it and end cleanly.
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.child_token()
    }

    /// Spawns a task on the runtime.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle().spawn(future)
    }

    /// Cancels every task and joins the runtime's threads, waiting at most `deadline`.
    /// Must be called from a host thread, never from a task of this runtime.
    pub fn stop(mut self, deadline: Duration) {
        self.shutdown(deadline);
    }

    fn shutdown(&mut self, deadline: Duration) {
        self.cancel.cancel();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(deadline);
        }
    }
}

impl Drop for PluginRuntime {
    fn drop(&mut self) {
        self.shutdown(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Thread counts are checked end to end (tests/), in a process of their own.
    #[test]
    fn stop_returns_even_with_a_task_that_never_ends() {
        let rt = PluginRuntime::start().unwrap();
        let token = rt.cancel_token();
        let cancelled = rt.spawn(async move { token.cancelled().await });
        rt.spawn(std::future::pending::<()>());
        rt.stop(Duration::from_secs(2));
        assert!(cancelled.is_finished());
    }
}

//! The process around the controllers: its long-running tasks and their shutdown (one
//! [`CancellationToken`]), readiness, the HTTP servers, leader election, and the work queue
//! that drives every controller.

pub mod admin;
pub mod http;
pub mod leader;
pub mod queue;
pub mod readiness;

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A task of the process failed.
#[derive(Debug, thiserror::Error)]
#[error("{task}: {source}")]
pub struct TaskError {
    /// The task's name.
    pub task: &'static str,
    /// Why it failed.
    #[source]
    pub source: BoxError,
}

/// The long-running tasks of the process (servers, controllers). The first failure, or
/// SIGTERM/SIGINT, cancels the token every task stops on.
pub struct Tasks {
    set: JoinSet<(&'static str, Result<(), BoxError>)>,
    cancel: CancellationToken,
}

impl Tasks {
    /// No tasks yet; `cancel` is cancelled when the first task fails or a signal arrives.
    pub fn new(cancel: CancellationToken) -> Tasks {
        Tasks {
            set: JoinSet::new(),
            cancel,
        }
    }

    /// Starts `task`, named `name` in logs and errors.
    pub fn spawn<E>(
        &mut self,
        name: &'static str,
        task: impl Future<Output = Result<(), E>> + Send + 'static,
    ) where
        E: Into<BoxError> + 'static,
    {
        self.set
            .spawn(async move { (name, task.await.map_err(Into::into)) });
    }

    /// Runs until a signal, a cancellation or the first failure, then cancels every task
    /// and waits at most `grace` for them. A task that ends without error (e.g. a server
    /// that is turned off) leaves the others running. Returns the first failure.
    pub async fn run(mut self, grace: Duration) -> Result<(), TaskError> {
        let mut failure = None;
        let signal = os_signal();
        tokio::pin!(signal);
        loop {
            tokio::select! {
                () = &mut signal => {
                    tracing::info!("signal received, shutting down");
                    break;
                }
                () = self.cancel.cancelled() => break,
                joined = self.set.join_next() => match joined {
                    None => return Ok(()),
                    Some(joined) => {
                        if let Some(error) = outcome(joined) {
                            failure = Some(error);
                            break;
                        }
                    }
                },
            }
        }
        self.cancel.cancel();
        let drain = async {
            while let Some(joined) = self.set.join_next().await {
                if let Some(error) = outcome(joined) {
                    failure.get_or_insert(error);
                }
            }
        };
        if tokio::time::timeout(grace, drain).await.is_err() {
            tracing::warn!(?grace, "tasks did not stop in time; exiting anyway");
            self.set.abort_all();
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

fn outcome(
    joined: Result<(&'static str, Result<(), BoxError>), tokio::task::JoinError>,
) -> Option<TaskError> {
    match joined {
        Ok((task, Ok(()))) => {
            tracing::debug!(task, "task finished");
            None
        }
        Ok((task, Err(source))) => {
            tracing::error!(task, error = %source, "task failed");
            Some(TaskError { task, source })
        }
        Err(error) => Some(TaskError {
            task: "task",
            source: Box::new(error),
        }),
    }
}

/// Waits for SIGTERM or SIGINT.
pub async fn os_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_failure_stops_every_task_and_is_returned() {
        let cancel = CancellationToken::new();
        let mut tasks = Tasks::new(cancel.clone());
        let server = cancel.clone();
        tasks.spawn("server", async move {
            server.cancelled().await;
            Ok::<(), std::io::Error>(())
        });
        tasks.spawn("broken", async { Err(std::io::Error::other("boom")) });
        let error = tasks.run(Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(error.task, "broken");
        assert!(cancel.is_cancelled());
    }

    // Virtual time: the sleep below returns once every task has nothing left to do.
    #[tokio::test(start_paused = true)]
    async fn a_task_that_ends_cleanly_leaves_the_others_running() {
        let cancel = CancellationToken::new();
        let mut tasks = Tasks::new(cancel.clone());
        tasks.spawn("disabled", async { Ok::<(), std::io::Error>(()) });
        let server = cancel.clone();
        tasks.spawn("server", async move {
            server.cancelled().await;
            Ok::<(), std::io::Error>(())
        });
        let running = tokio::spawn(tasks.run(Duration::from_secs(5)));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!cancel.is_cancelled(), "the server is still running");
        assert!(!running.is_finished());
        cancel.cancel();
        running.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_cancellation_ends_cleanly() {
        let cancel = CancellationToken::new();
        let mut tasks = Tasks::new(cancel.clone());
        let server = cancel.clone();
        tasks.spawn("server", async move {
            server.cancelled().await;
            Ok::<(), std::io::Error>(())
        });
        cancel.cancel();
        tasks.run(Duration::from_secs(5)).await.unwrap();
    }
}

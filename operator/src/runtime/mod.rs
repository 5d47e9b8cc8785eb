//! The process around the controllers: tasks and their shutdown, readiness, the admin
//! server, leader election, and the work queue the controllers share.

pub mod admin;
pub mod leader;
pub mod queue;
pub mod readiness;
pub mod shutdown;

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinSet;

use shutdown::{Shutdown, ShutdownSignal};

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
/// SIGTERM/SIGINT, starts the shutdown of all of them.
pub struct Tasks {
    set: JoinSet<(&'static str, Result<(), BoxError>)>,
    shutdown: Shutdown,
}

impl Tasks {
    /// No tasks yet; `shutdown` is triggered when the first task ends or a signal arrives.
    pub fn new(shutdown: Shutdown) -> Tasks {
        Tasks {
            set: JoinSet::new(),
            shutdown,
        }
    }

    /// The signal every task should stop on.
    pub fn shutdown_signal(&self) -> ShutdownSignal {
        self.shutdown.signal()
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

    /// Runs until a signal, a triggered shutdown or the first failure, then stops every
    /// task, waiting at most `grace` for them. A task that ends without error (e.g. a server
    /// that is turned off) leaves the others running. Returns the first failure.
    pub async fn run(mut self, grace: Duration) -> Result<(), TaskError> {
        let mut failure = None;
        let signal = shutdown::os_signal();
        tokio::pin!(signal);
        loop {
            tokio::select! {
                () = &mut signal => {
                    tracing::info!("signal received, shutting down");
                    break;
                }
                () = self.shutdown.signal().wait() => break,
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
        self.shutdown.trigger();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_failure_stops_every_task_and_is_returned() {
        let shutdown = Shutdown::new();
        let mut tasks = Tasks::new(shutdown.clone());
        let signal = tasks.shutdown_signal();
        tasks.spawn("server", async move {
            signal.wait().await;
            Ok::<(), std::io::Error>(())
        });
        tasks.spawn("broken", async { Err(std::io::Error::other("boom")) });
        let error = tasks.run(Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(error.task, "broken");
    }

    #[tokio::test]
    async fn a_task_that_ends_cleanly_leaves_the_others_running() {
        let shutdown = Shutdown::new();
        let mut tasks = Tasks::new(shutdown.clone());
        let signal = tasks.shutdown_signal();
        tasks.spawn("disabled", async { Ok::<(), std::io::Error>(()) });
        tasks.spawn("server", async move {
            signal.wait().await;
            Ok::<(), std::io::Error>(())
        });
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            trigger.trigger();
        });
        tasks.run(Duration::from_secs(5)).await.unwrap();
    }

    #[tokio::test]
    async fn a_triggered_shutdown_ends_cleanly() {
        let shutdown = Shutdown::new();
        let mut tasks = Tasks::new(shutdown.clone());
        let signal = tasks.shutdown_signal();
        tasks.spawn("server", async move {
            signal.wait().await;
            Ok::<(), std::io::Error>(())
        });
        shutdown.trigger();
        tasks.run(Duration::from_secs(5)).await.unwrap();
    }
}

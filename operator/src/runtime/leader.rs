//! Leader election with a coordination.k8s.io Lease (`kube-lease-manager`): only the leader
//! refreshes KeyManagers and writes statuses and ConfigMaps, so two replicas are safe. The
//! standby keeps its watches warm (and stays Ready, so a webhook in the same process keeps
//! serving).

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::args::LeaderArgs;
use crate::error::Error;

/// This replica's view of the leadership.
pub struct Leadership {
    receiver: Option<watch::Receiver<bool>>,
    task: Option<JoinHandle<kube_lease_manager::Result<LeaseManager>>>,
}

/// The identity of this replica: `--identity`, else hostname and process id.
pub fn identity(args: &LeaderArgs) -> String {
    args.identity.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "outband-operator".into());
        format!("{host}-{}", std::process::id())
    })
}

impl Leadership {
    /// Starts campaigning for the lease (or, with leader election off, leads at once).
    pub async fn start(client: Client, args: &LeaderArgs) -> Result<Leadership, Error> {
        if !args.leader_election {
            return Ok(Leadership {
                receiver: None,
                task: None,
            });
        }
        let seconds = |d: Duration| d.as_secs().max(1);
        let manager = LeaseManagerBuilder::new(client, &args.lease_name)
            .with_namespace(&args.lease_namespace)
            .with_identity(identity(args))
            .with_duration(seconds(args.lease_duration))
            .with_grace(
                seconds(args.lease_renew_before)
                    .min(seconds(args.lease_duration) - 1)
                    .max(1),
            )
            .with_field_manager(format!("{}-lease", crate::context::FIELD_MANAGER))
            .build()
            .await?;
        let (receiver, task) = manager.watch().await;
        Ok(Leadership {
            receiver: Some(receiver),
            task: Some(task),
        })
    }

    /// Waits until this replica leads. Returns at once without leader election.
    pub async fn acquired(&mut self) -> Result<(), Error> {
        match &mut self.receiver {
            None => Ok(()),
            Some(receiver) => receiver
                .wait_for(|leading| *leading)
                .await
                .map(|_| ())
                .map_err(|_| Error::LeadershipLost),
        }
    }

    /// Waits until this replica stops leading. Never returns without leader election.
    pub async fn lost(&mut self) {
        match &mut self.receiver {
            None => std::future::pending().await,
            Some(receiver) => {
                let _ = receiver.wait_for(|leading| !*leading).await;
            }
        }
    }

    /// Releases the lease (if held) so another replica takes over at once.
    pub async fn release(mut self) {
        drop(self.receiver.take());
        if let Some(task) = self.task.take() {
            match tokio::time::timeout(Duration::from_secs(5), task).await {
                Ok(Ok(Ok(_))) => tracing::info!("leader lease released"),
                Ok(Ok(Err(error))) => tracing::warn!(%error, "releasing the leader lease failed"),
                Ok(Err(_)) | Err(_) => tracing::warn!("releasing the leader lease timed out"),
            }
        }
    }
}

//! Keeping the embedded server up under `tally serve`.
//!
//! A postmaster that dies (OOM killer, `kill -9`, a crash) is reaped at once,
//! so no zombie is left, and started again on the same cluster after a
//! back-off (PostgreSQL replays its WAL). Health reports NOT_SERVING while it
//! is down and SERVING once it answers again. If it cannot be brought back
//! within the policy's attempts, the supervisor gives up and `serve` exits
//! non-zero, so that whatever supervises Tally (systemd, Kubernetes) restarts
//! the whole process.

use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{EmbeddedPgError, EmbeddedPostgres};

/// How many restarts are tried, and how fast.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Restarts allowed within `window`; one more failure and Tally exits.
    pub max_restarts: u32,
    pub window: Duration,
    /// The first back-off; each further attempt in the window doubles it.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            max_restarts: 5,
            window: Duration::from_secs(300),
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
        }
    }
}

impl RestartPolicy {
    /// The wait before restart number `attempt` (0-based) of the window.
    pub fn backoff(&self, attempt: u32) -> Duration {
        self.initial_backoff
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max_backoff)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error(
        "the embedded PostgreSQL could not be kept running: {restarts} restarts within {window:?}, last error: {last}"
    )]
    GaveUp {
        restarts: u32,
        window: Duration,
        last: String,
    },
    #[error("stopping the embedded PostgreSQL: {0}")]
    Stop(#[source] EmbeddedPgError),
    #[error("the supervisor task failed: {0}")]
    Task(String),
}

/// The supervisor task of one embedded server.
pub struct Supervised {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), SupervisorError>>,
}

impl Supervised {
    /// Watches `pg` until [`stop`](Self::stop) or until it gives up.
    pub fn start(pg: EmbeddedPostgres, policy: RestartPolicy) -> Supervised {
        let (tx, rx) = oneshot::channel();
        Supervised {
            stop: Some(tx),
            task: tokio::spawn(supervise(pg, policy, rx)),
        }
    }

    /// Resolves only if the supervisor gave up (or failed): the server is
    /// down for good and the process should exit non-zero.
    pub async fn failed(&mut self) -> SupervisorError {
        match (&mut self.task).await {
            Ok(Err(e)) => e,
            Ok(Ok(())) => SupervisorError::Task("supervisor ended without a stop".into()),
            Err(e) => SupervisorError::Task(e.to_string()),
        }
    }

    /// Stops the server (fast shutdown) and waits for it.
    pub async fn stop(mut self) -> Result<(), SupervisorError> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(SupervisorError::Task(e.to_string())),
        }
    }
}

async fn supervise(
    mut pg: EmbeddedPostgres,
    policy: RestartPolicy,
    mut stop: oneshot::Receiver<()>,
) -> Result<(), SupervisorError> {
    // Restarts within the current window.
    let mut recent: Vec<Instant> = Vec::new();
    let mut last;
    loop {
        tokio::select! {
            _ = &mut stop => return pg.stop().await.map_err(SupervisorError::Stop),
            how = pg.exited() => {
                tracing::error!(pid = pg.pid(), status = %how,
                    "embedded PostgreSQL exited unexpectedly; restarting it");
                last = format!("exited: {how}");
            }
        }
        loop {
            recent.retain(|t| t.elapsed() < policy.window);
            let attempt = u32::try_from(recent.len()).unwrap_or(u32::MAX);
            if attempt >= policy.max_restarts {
                return Err(SupervisorError::GaveUp {
                    restarts: attempt,
                    window: policy.window,
                    last,
                });
            }
            tokio::select! {
                _ = &mut stop => return pg.stop().await.map_err(SupervisorError::Stop),
                _ = tokio::time::sleep(policy.backoff(attempt)) => {}
            }
            recent.push(Instant::now());
            // A stop must not wait out a slow start (up to 30 s): dropping
            // the restart leaves the new child in `pg`, which stop() ends.
            let restarted = tokio::select! {
                _ = &mut stop => None,
                r = pg.restart() => Some(r),
            };
            let Some(restarted) = restarted else {
                return pg.stop().await.map_err(SupervisorError::Stop);
            };
            match restarted {
                Ok(()) => {
                    tracing::info!(pid = pg.pid(), "embedded PostgreSQL restarted");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, attempt = attempt + 1,
                        "restarting the embedded PostgreSQL failed");
                    last = e.to_string();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded_pg::sys;

    /// With no restarts allowed, a dead server ends the supervisor with an
    /// error saying how it ended (and the process would exit non-zero).
    #[tokio::test]
    async fn gives_up_once_its_restarts_are_spent() {
        let settings = crate::config::embedded_settings_from_env();
        let pg = EmbeddedPostgres::start_temporary(&settings)
            .await
            .expect("start_temporary");
        let pid = pg.pid().expect("pid");
        let policy = RestartPolicy {
            max_restarts: 0,
            ..RestartPolicy::default()
        };
        let mut supervised = Supervised::start(pg, policy);
        assert!(sys::kill(pid, sys::Signal::Kill));
        let err = tokio::time::timeout(Duration::from_secs(10), supervised.failed())
            .await
            .expect("the supervisor noticed");
        assert!(
            matches!(err, SupervisorError::GaveUp { restarts: 0, ref last, .. } if last.contains("exited")),
            "{err}"
        );
        assert!(!sys::pid_alive(pid), "reaped, not a zombie");
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let p = RestartPolicy::default();
        assert_eq!(p.backoff(0), Duration::from_millis(500));
        assert_eq!(p.backoff(1), Duration::from_secs(1));
        assert_eq!(p.backoff(3), Duration::from_secs(4));
        assert_eq!(p.backoff(10), Duration::from_secs(8));
        assert_eq!(p.backoff(u32::MAX), Duration::from_secs(8));
    }
}

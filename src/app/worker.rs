//! The worker: `concurrency` loops, each claiming due jobs merchant by merchant
//! until there are none, then polling; each pass also delivers the due
//! exception alerts (`alerts.rs`: claimed with a lease, POSTed with no
//! transaction open). Used by `tally worker` and, in process, by
//! `tally serve`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use super::App;
use super::cash::{JobOutcome, RetryPolicy};
use crate::error::Result;
use crate::storage::jobs;

#[derive(Debug, Clone, Copy)]
pub struct WorkerConfig {
    pub concurrency: usize,
    /// Jobs claimed and committed together (each in its own savepoint): one
    /// commit for many jobs.
    pub batch: usize,
    /// How long an idle loop sleeps before looking for work again.
    pub idle_poll: Duration,
    pub retry: RetryPolicy,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            concurrency: 2,
            batch: 32,
            idle_poll: Duration::from_millis(250),
            retry: RetryPolicy::default(),
        }
    }
}

/// Counts for logs and tests.
#[derive(Debug, Default)]
pub struct WorkerStats {
    pub done: AtomicU64,
    pub failed: AtomicU64,
    pub alerts_delivered: AtomicU64,
}

/// Runs the loops until `shutdown` turns true; a job in progress finishes first.
pub async fn run(
    app: App,
    config: WorkerConfig,
    shutdown: watch::Receiver<bool>,
) -> Arc<WorkerStats> {
    let stats = Arc::new(WorkerStats::default());
    let mut handles = Vec::new();
    for n in 0..config.concurrency.max(1) {
        let (app, stats, shutdown) = (app.clone(), stats.clone(), shutdown.clone());
        handles.push(tokio::spawn(async move {
            worker_loop(n, app, config, stats, shutdown).await
        }));
    }
    for h in handles {
        let _ = h.await;
    }
    stats
}

async fn worker_loop(
    n: usize,
    app: App,
    config: WorkerConfig,
    stats: Arc<WorkerStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    while !*shutdown.borrow() {
        let busy = match drain_once(n, &app, &config, &stats, &shutdown).await {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(worker = n, error = %e, "worker could not reach the database");
                false
            }
        };
        let alerted = match app.deliver_alerts().await {
            Ok(sent) => {
                stats
                    .alerts_delivered
                    .fetch_add(sent as u64, Ordering::Relaxed);
                sent > 0
            }
            Err(e) => {
                tracing::warn!(worker = n, error = %e, "alert delivery could not reach the database");
                false
            }
        };
        let busy = busy || alerted;
        if !busy {
            tokio::select! {
                _ = tokio::time::sleep(config.idle_poll) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

/// One pass over the merchants with due work; whether any job ran.
async fn drain_once(
    n: usize,
    app: &App,
    config: &WorkerConfig,
    stats: &WorkerStats,
    shutdown: &watch::Receiver<bool>,
) -> Result<bool> {
    let mut merchants = {
        let mut conn = app.store().conn().await?;
        jobs::merchants_with_work(&mut conn, 1000).await?
    };
    // Loops start at different merchants so they spread out.
    if !merchants.is_empty() {
        let k = n % merchants.len();
        merchants.rotate_left(k);
    }
    let mut ran = false;
    for merchant in merchants {
        while !*shutdown.borrow() {
            let outcomes = app.run_jobs(&merchant, &config.retry, config.batch).await?;
            let mut progress = false;
            for o in &outcomes {
                match o {
                    JobOutcome::Postponed => {}
                    JobOutcome::Done { .. } => {
                        stats.done.fetch_add(1, Ordering::Relaxed);
                        progress = true;
                    }
                    JobOutcome::Failed { .. } => {
                        stats.failed.fetch_add(1, Ordering::Relaxed);
                        progress = true;
                    }
                }
            }
            ran |= progress;
            // None free, or only busy ones (postponed): the next merchant.
            if !progress {
                break;
            }
        }
    }
    Ok(ran)
}

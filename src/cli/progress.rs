//! Progress for long reads: a bar (bytes and records, rate, ETA) when
//! stderr is a terminal, a plain line every few seconds otherwise, so logs
//! and CI output stay readable.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Shared counters the work updates and the reporter reads.
#[derive(Debug, Default)]
pub struct Counters {
    pub bytes: Arc<AtomicU64>,
    pub records: AtomicU64,
}

pub struct Reporter {
    done: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Reporter {
    /// Starts reporting on `counters` against `total` bytes. `plain`: print
    /// lines when stderr is not a terminal (an import); else stay quiet.
    pub fn start(what: &'static str, total: u64, counters: Arc<Counters>, plain: bool) -> Reporter {
        let done = Arc::new(AtomicBool::new(false));
        let terminal = std::io::stderr().is_terminal();
        if !terminal && !plain {
            return Reporter { done, handle: None };
        }
        let stop = done.clone();
        let handle = std::thread::spawn(move || {
            let bar = terminal.then(|| {
                let b = indicatif::ProgressBar::new(total);
                if let Ok(style) = indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                ) {
                    b.set_style(style.progress_chars("=> "));
                }
                b
            });
            let started = Instant::now();
            let mut last_line = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let bytes = counters.bytes.load(Ordering::Relaxed);
                let records = counters.records.load(Ordering::Relaxed);
                match &bar {
                    Some(b) => {
                        b.set_position(bytes.min(total));
                        b.set_message(format!("{what} {records} records"));
                    }
                    None if last_line.elapsed() >= Duration::from_secs(5) => {
                        last_line = Instant::now();
                        let secs = started.elapsed().as_secs_f64().max(0.001);
                        eprintln!(
                            "{what}: {bytes}/{total} bytes, {records} records, {:.0} records/s",
                            records as f64 / secs
                        );
                    }
                    None => {}
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if let Some(b) = bar {
                b.finish_and_clear();
            }
        });
        Reporter {
            done,
            handle: Some(handle),
        }
    }

    pub fn stop(mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

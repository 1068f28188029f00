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

/// What a reporter shows at one moment: the stage, how far it is of how
/// much (in bytes, or in items), and records read so far.
pub struct Reading {
    pub stage: &'static str,
    pub done: u64,
    pub total: u64,
    /// `done` and `total` are bytes (else items: orders, rows).
    pub bytes: bool,
    /// Records read so far, where the work counts them.
    pub records: Option<u64>,
}

impl Reporter {
    /// Starts reporting on `counters` against `total` bytes. `plain`: print
    /// lines when stderr is not a terminal (an import); else stay quiet.
    pub fn start(what: &'static str, total: u64, counters: Arc<Counters>, plain: bool) -> Reporter {
        Reporter::watch(plain, move || Reading {
            stage: what,
            done: counters.bytes.load(Ordering::Relaxed),
            total,
            bytes: true,
            records: Some(counters.records.load(Ordering::Relaxed)),
        })
    }

    /// Reports what `read` says, every tenth of a second: a bar whose
    /// units, rate and ETA start again when its units change (bytes to
    /// orders), its message the stage.
    pub fn watch(plain: bool, read: impl Fn() -> Reading + Send + 'static) -> Reporter {
        let done = Arc::new(AtomicBool::new(false));
        let terminal = std::io::stderr().is_terminal();
        if !terminal && !plain {
            return Reporter { done, handle: None };
        }
        let stop = done.clone();
        let handle = std::thread::spawn(move || {
            let bar = terminal.then(|| indicatif::ProgressBar::new(0));
            let mut units = None;
            let started = Instant::now();
            let mut last_line = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let now = read();
                match &bar {
                    Some(b) => {
                        if units != Some(now.bytes) {
                            units = Some(now.bytes);
                            restyle(b, now.bytes);
                        }
                        b.set_length(now.total);
                        b.set_position(now.done.min(now.total));
                        b.set_message(match now.records {
                            Some(n) => format!("{} {n} records", now.stage),
                            None => now.stage.to_string(),
                        });
                    }
                    None if last_line.elapsed() >= Duration::from_secs(5) => {
                        last_line = Instant::now();
                        let secs = started.elapsed().as_secs_f64().max(0.001);
                        let unit = if now.bytes { " bytes" } else { "" };
                        let records = now.records.map_or_else(String::new, |n| {
                            format!(", {n} records, {:.0} records/s", n as f64 / secs)
                        });
                        eprintln!("{}: {}/{}{unit}{records}", now.stage, now.done, now.total);
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

/// New units on the bar: bytes or items, the rate and ETA from now.
fn restyle(b: &indicatif::ProgressBar, bytes: bool) {
    let template = if bytes {
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}"
    } else {
        "{msg} [{bar:30}] {human_pos}/{human_len} ETA {eta}"
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        b.set_style(style.progress_chars("=> "));
    }
    b.reset();
}

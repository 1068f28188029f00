//! `tally import --merchant M FILE...|DIR`: parses exports (see `import`)
//! and submits their records to a running Tally through StreamRecords, in
//! chunks, printing what became of each: accepted, duplicate, updated,
//! conflict, refused (with the file:line and the reason).
//!
//! Idempotency: records are idempotent on their own keys, so importing a
//! file again changes nothing and reports duplicates; a corrected
//! re-export's records become new versions. Each chunk also carries a
//! request id derived from its content, its position and this run, so a
//! chunk resent after a broken stream is applied once, never twice.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use sha2::{Digest, Sha256};
use tonic::transport::Channel;

use super::ImportArgs;
use super::progress::{Counters, Reporter};
use crate::import::{FileReader, Format, Item, Options, erp, to_proto};
use crate::proto::tally::v1 as pb;
use crate::proto::tally::v1::ingest_service_client::IngestServiceClient;

/// What became of the records, and why some were refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub files: u64,
    pub accepted: u64,
    pub duplicate: u64,
    pub updated: u64,
    pub conflict: u64,
    pub refused: u64,
    /// "file:line: reason", the first `KEEP` of them.
    pub reasons: Vec<String>,
}

const KEEP: usize = 200;

impl Summary {
    fn refuse(&mut self, why: String) {
        self.refused += 1;
        if self.reasons.len() < KEEP {
            self.reasons.push(why);
        }
    }

    pub fn render(&self, dry_run: bool) -> String {
        let mut out = format!(
            "{} file(s): {} {}, {} duplicate, {} updated, {} conflict, {} refused\n",
            self.files,
            self.accepted,
            if dry_run {
                "valid (dry run, nothing sent)"
            } else {
                "accepted"
            },
            self.duplicate,
            self.updated,
            self.conflict,
            self.refused
        );
        for r in &self.reasons {
            out.push_str("  refused ");
            out.push_str(r);
            out.push('\n');
        }
        if self.refused as usize > self.reasons.len() {
            out.push_str(&format!(
                "  ... and {} more\n",
                self.refused as usize - self.reasons.len()
            ));
        }
        out
    }
}

/// The files named, directories expanded to their files in name order.
pub fn files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = vec![];
    for p in paths {
        if p.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| format!("{}: {e}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.is_file()
                        && !f
                            .file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect();
            inside.sort();
            out.extend(inside);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

pub fn main(args: &ImportArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tally import: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli(args)) {
        Ok(s) => {
            print!("{}", s.render(args.dry_run));
            if s.refused > 0 || s.conflict > 0 {
                ExitCode::from(3)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("tally import: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn cli(args: &ImportArgs) -> Result<Summary, String> {
    let options = Options {
        format: args.format.as_deref().and_then(Format::parse),
        mapping: match &args.mapping {
            Some(p) => Some(erp::Mapping::load(p)?),
            None => None,
        },
    };
    let files = files(&args.paths)?;
    let channel = if args.dry_run {
        None
    } else {
        Some(super::trace::channel(&args.server.addr).await?)
    };
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok().map(|m| m.len()))
        .sum();
    let counters = Arc::new(Counters::default());
    let reporter = Reporter::start("import", total, counters.clone(), true);
    let job = Job {
        merchant: &args.merchant,
        options: &options,
        chunk: args.chunk as usize,
        counters: &counters,
        key: args.server.key.as_deref(),
    };
    let result = job.run(channel, &files).await;
    reporter.stop();
    result
}

/// One import: where to send, how, and the progress counters.
pub struct Job<'a> {
    pub merchant: &'a str,
    pub options: &'a Options,
    pub chunk: usize,
    pub counters: &'a Counters,
    /// An API key, for a server that requires one.
    pub key: Option<&'a str>,
}

/// A chunk ready to send: its records, the line each came from, its id.
struct Chunk {
    request_id: String,
    records: Vec<pb::Record>,
    lines: Vec<u64>,
}

impl Job<'_> {
    /// Imports `files` in order; `None` channel: a dry run (validated
    /// locally by the API's own checks, nothing sent).
    pub async fn run(
        &self,
        channel: Option<Channel>,
        files: &[PathBuf],
    ) -> Result<Summary, String> {
        let mut summary = Summary::default();
        // Retries within this run reuse a chunk's id; another run gets new
        // ones, and the records' own keys make it a duplicate there.
        let run = uuid::Uuid::new_v4().to_string();
        let mut client = channel.map(IngestServiceClient::new);
        for f in files {
            summary.files += 1;
            self.file(f, &run, client.as_mut(), &mut summary).await?;
        }
        Ok(summary)
    }

    async fn file(
        &self,
        path: &Path,
        run: &str,
        mut client: Option<&mut IngestServiceClient<Channel>>,
        summary: &mut Summary,
    ) -> Result<(), String> {
        let name = path.display().to_string();
        let reader = match FileReader::open(path, self.options) {
            Ok(r) => r,
            Err(e) => {
                summary.refuse(e.to_string());
                return Ok(());
            }
        };
        // Exports carry no version time: the file's own is when its source
        // said this. A corrected re-export is newer, so its changed records
        // become new versions, not conflicts; the same file again is a
        // duplicate (the version time is not content).
        let exported = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .map(chrono::DateTime::<chrono::Utc>::from)
            // Whole seconds: the database keeps microseconds, and the same
            // file read again must carry the very same version time.
            .map(|t| chrono::SubsecRound::trunc_subsecs(t.min(chrono::Utc::now()), 0));
        let mut chunk = Chunk {
            request_id: String::new(),
            records: vec![],
            lines: vec![],
        };
        let mut index = 0u64;
        let mut reader = reader;
        let mut seen = 0u64;
        while let Some(item) = reader.next() {
            match item {
                Item::Record(mut p) => {
                    if p.record.source_update_time.is_none() {
                        p.record.source_update_time = exported;
                    }
                    chunk.records.push(to_proto::record(&p.record));
                    chunk.lines.push(p.line);
                }
                Item::Error(e) => summary.refuse(e.to_string()),
            }
            if chunk.records.len() >= self.chunk {
                let full = std::mem::replace(
                    &mut chunk,
                    Chunk {
                        request_id: String::new(),
                        records: vec![],
                        lines: vec![],
                    },
                );
                self.send(full, &name, run, index, client.as_deref_mut(), summary)
                    .await?;
                index += 1;
            }
            let pos = reader.position();
            self.counters
                .bytes
                .fetch_add(pos.saturating_sub(seen), Ordering::Relaxed);
            seen = pos;
        }
        if !chunk.records.is_empty() {
            self.send(chunk, &name, run, index, client, summary).await?;
        }
        Ok(())
    }

    async fn send(
        &self,
        mut chunk: Chunk,
        file: &str,
        run: &str,
        index: u64,
        client: Option<&mut IngestServiceClient<Channel>>,
        summary: &mut Summary,
    ) -> Result<(), String> {
        self.counters
            .records
            .fetch_add(chunk.records.len() as u64, Ordering::Relaxed);
        let Some(client) = client else {
            dry_run(&chunk, file, summary);
            return Ok(());
        };
        chunk.request_id = request_id(self.merchant, run, index, &chunk.records);
        let request = pb::StreamRecordsRequest {
            parent: format!("merchants/{}", self.merchant),
            request_id: chunk.request_id.clone(),
            records: chunk.records.clone(),
        };
        let mut last = String::new();
        // A broken stream is retried with the same id: the server answers
        // a chunk it already stored from its record of the first answer.
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
            }
            let call = super::trace::keyed(tokio_stream::once(request.clone()), self.key)?;
            let reply = client.stream_records(call).await;
            let mut stream = match reply {
                Ok(s) => s.into_inner(),
                Err(s) if retryable(&s) => {
                    last = format!("{:?}: {}", s.code(), s.message());
                    continue;
                }
                Err(s) => return Err(format!("{file}: {:?}: {}", s.code(), s.message())),
            };
            match stream.message().await {
                Ok(Some(resp)) => {
                    tally(&resp.results, &chunk, file, summary);
                    return Ok(());
                }
                Ok(None) => last = "the stream ended without an answer".into(),
                Err(s) if retryable(&s) => last = format!("{:?}: {}", s.code(), s.message()),
                Err(s) => return Err(format!("{file}: {:?}: {}", s.code(), s.message())),
            }
        }
        Err(format!(
            "{file}: chunk {index} not stored after 3 tries: {last}"
        ))
    }
}

fn retryable(s: &tonic::Status) -> bool {
    matches!(
        s.code(),
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::ResourceExhausted
    )
}

/// Same merchant, run, position and records: same id.
fn request_id(merchant: &str, run: &str, index: u64, records: &[pb::Record]) -> String {
    let mut h = Sha256::new();
    h.update(merchant.as_bytes());
    h.update([0]);
    h.update(run.as_bytes());
    h.update(index.to_be_bytes());
    for r in records {
        h.update(prost::Message::encode_to_vec(r));
    }
    format!("import-{}", &hex::encode(h.finalize())[..40])
}

fn dry_run(chunk: &Chunk, file: &str, summary: &mut Summary) {
    for (i, (r, line)) in chunk.records.iter().zip(&chunk.lines).enumerate() {
        let mut violations = vec![];
        if crate::api::validate::record(i, r, &mut violations).is_some() {
            summary.accepted += 1;
        } else {
            let why: Vec<String> = violations
                .iter()
                .map(|v| format!("{}: {}", v.field, v.description))
                .collect();
            summary.refuse(format!("{file}:{line}: {}", why.join("; ")));
        }
    }
}

fn tally(results: &[pb::RecordResult], chunk: &Chunk, file: &str, summary: &mut Summary) {
    for r in results {
        let line = usize::try_from(r.index)
            .ok()
            .and_then(|i| chunk.lines.get(i))
            .copied()
            .unwrap_or(0);
        match pb::RecordOutcome::try_from(r.outcome).unwrap_or(pb::RecordOutcome::Unspecified) {
            pb::RecordOutcome::Accepted => summary.accepted += 1,
            // An older version than the stored one changes nothing either.
            pb::RecordOutcome::Duplicate | pb::RecordOutcome::Stale => summary.duplicate += 1,
            pb::RecordOutcome::Updated => summary.updated += 1,
            pb::RecordOutcome::Conflict => summary.conflict += 1,
            pb::RecordOutcome::Rejected | pb::RecordOutcome::Unspecified => {
                let why = r
                    .error
                    .as_ref()
                    .map_or_else(|| "refused".to_string(), |e| e.message.clone());
                summary.refuse(format!("{file}:{line}: {} {why}", r.source_id));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dry run validates with the service's own checks and names every
    /// refusal by file and line; a directory is read in name order.
    #[tokio::test]
    async fn a_dry_run_validates_and_names_refusals() {
        let dir = std::env::temp_dir().join(format!("tally-dry-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let m = crate::import::generate::month(&dir, 50).unwrap();
        let records: u64 = [&m.storefront, &m.processor]
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap().lines().count() as u64 - 1)
            .sum::<u64>()
            + (std::fs::read_to_string(&m.ledger).unwrap().lines().count() as u64 - 1) / 2
            + m.planted
                .iter()
                .filter(|p| p.rule == "refund_not_at_processor")
                .count() as u64
            + m.planted
                .iter()
                .filter(|p| p.rule == "refund_not_credited")
                .count() as u64
            - m.planted
                .iter()
                .filter(|p| p.rule == "ledger_line_rounding")
                .count() as u64;
        std::fs::write(
            dir.join("zz_bad.csv"),
            "Payout Date,Status,Total,Currency\n2026-09-01,paid,12.00,USD\nnot a date,paid,1.00,USD\n",
        )
        .unwrap();
        let files = files(std::slice::from_ref(&dir)).unwrap();
        assert_eq!(files.len(), 4);
        assert!(files[3].ends_with("zz_bad.csv"));
        let (options, counters) = (Options::default(), Counters::default());
        let job = Job {
            merchant: "acme",
            options: &options,
            chunk: 100,
            counters: &counters,
            key: None,
        };
        let s = job.run(None, &files).await.unwrap();
        assert_eq!(s.accepted, records + 1, "{s:?}");
        assert_eq!(s.refused, 1);
        assert!(
            s.reasons[0].ends_with("zz_bad.csv:3:1: column 'Payout Date': 'not a date' is not a date or time this reader knows (2026-09-01 14:03:22, 2026-07-01 07:33:09 +0200, 8/6/2026 12:00, 2026/6/12)"),
            "{:?}",
            s.reasons
        );
        let text = s.render(true);
        assert!(
            text.starts_with("4 file(s):") && text.contains("1 refused"),
            "{text}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

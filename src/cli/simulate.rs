//! `tally simulate`: generates a seeded month (see `sim`), streams it to a
//! running Tally through StreamRecords (or writes it to files with
//! `--out`), and with `--score` waits for Tally to settle and scores its
//! exceptions against the month's ground truth.
//!
//! The handoff contracts' lags are shortened to `--lag` seconds for the
//! simulated merchant first: a month arrives in minutes, and a handoff
//! that never happens must be late before the score is taken (a clean
//! order's step that arrives after it was briefly late resolves its
//! exception; only unresolved ones are scored).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use tonic::transport::Channel;

use super::SimulateArgs;
use crate::proto::tally::v1 as pb;
use crate::proto::tally::v1::exception_service_client::ExceptionServiceClient;
use crate::proto::tally::v1::handoff_service_client::HandoffServiceClient;
use crate::proto::tally::v1::ingest_service_client::IngestServiceClient;
use crate::proto::tally::v1::ledger_service_client::LedgerServiceClient;
use crate::proto::tally::v1::transaction_service_client::TransactionServiceClient;
use crate::sim::score::{self, Seen};
use crate::sim::{self, Config, Month, faults};

const CONTRACTS: [&str; 5] = [
    "order-to-fulfillment",
    "fulfillment-to-invoice",
    "invoice-to-payment",
    "payment-to-cash-application",
    "reconciliation-to-reporting",
];

pub fn main(args: &SimulateArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tally simulate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        // Scored and not perfect.
        Ok(false) => ExitCode::from(3),
        Err(e) => {
            eprintln!("tally simulate: {e}");
            ExitCode::FAILURE
        }
    }
}

pub fn config(args: &SimulateArgs) -> Result<Config, String> {
    let rates = match (&args.faults, args.fault_rate) {
        (Some(_), Some(_)) => return Err("give --fault-rate or --faults, not both".into()),
        (Some(spec), None) => faults::parse_rates(spec)?,
        (None, Some(r)) if (0.0..=1.0).contains(&r) => {
            // One rate for every kind, mixed: each order draws at most one.
            let order_kinds = faults::FaultKind::ALL
                .iter()
                .filter(|k| !k.per_payout())
                .count();
            let payout_kinds = faults::FaultKind::ALL.len() - order_kinds;
            faults::FaultKind::ALL
                .iter()
                .map(|k| {
                    let n = if k.per_payout() {
                        payout_kinds
                    } else {
                        order_kinds
                    };
                    (*k, (r / n as f64).min(1.0))
                })
                .collect()
        }
        (None, Some(_)) => return Err("--fault-rate must be from 0 to 1".into()),
        (None, None) => vec![],
    };
    let total: f64 = rates
        .iter()
        .filter(|(k, _)| !k.per_payout())
        .map(|(_, r)| r)
        .sum();
    let payouts: f64 = rates
        .iter()
        .filter(|(k, _)| k.per_payout())
        .map(|(_, r)| r)
        .sum();
    if total > 1.0 || payouts > 1.0 {
        return Err("--faults: the rates of order (or payout) kinds add up to more than 1".into());
    }
    Ok(Config {
        orders: args.orders,
        seed: args.seed,
        rates,
    })
}

async fn run(args: &SimulateArgs) -> Result<bool, String> {
    let started = Instant::now();
    let month = sim::generate(&config(args)?)?;
    eprintln!(
        "generated {} orders, {} payouts, {} records, {} faults in {:.1}s",
        month.orders,
        month.payouts,
        month.records.len(),
        month.truth.len(),
        started.elapsed().as_secs_f64()
    );
    let mut perfect = true;
    if let Some(dir) = &args.out {
        write_files(dir, &month)?;
        let files =
            sim::export::write(dir, &month).map_err(|e| format!("{}: {e}", dir.display()))?;
        eprintln!("wrote {}", dir.display());
        if args.audit {
            let t = Instant::now();
            let audited = sim::offline::audit_files(files, &month)?;
            print!(
                "{}",
                audited.score.table(&format!(
                    "tally simulate --orders {} --seed {}: tally audit on the exports",
                    args.orders, args.seed
                ))
            );
            eprintln!(
                "audited {} orders in {:.1}s",
                audited.report.orders,
                t.elapsed().as_secs_f64()
            );
            perfect = audited.score.perfect();
        }
        if !args.score {
            return Ok(perfect);
        }
    }
    let channel = super::trace::channel(&args.server.addr).await?;
    let api = Api {
        channel,
        merchant: args.merchant.clone(),
        key: args.server.key.clone(),
    };
    let run = Run {
        lag: args.lag,
        wait: args.wait,
        chunk: args.chunk as usize,
        score: args.score,
    };
    let Some(outcome) = service(&api, month, &run).await? else {
        return Ok(true);
    };
    print!(
        "{}",
        outcome.score.table(&format!(
            "tally simulate --orders {} --seed {}: the service",
            args.orders, args.seed
        ))
    );
    println!("{}", outcome.render_clearing());
    eprintln!("done in {:.1}s", started.elapsed().as_secs_f64());
    Ok(perfect && outcome.score.perfect() && outcome.clearing_ok())
}

/// How to send and wait.
pub struct Run {
    pub lag: u64,
    pub wait: u64,
    pub chunk: usize,
    pub score: bool,
}

pub struct Outcome {
    pub score: score::Score,
    /// Clearing accounts' balances as the trial balance states them.
    pub clearing: BTreeMap<String, Decimal>,
    /// What the ground truth says processor clearing must hold in USD.
    pub expected_clearing: Decimal,
}

impl Outcome {
    /// Processor clearing holds exactly what the faults left on it, and
    /// every other clearing balance is zero.
    pub fn clearing_ok(&self) -> bool {
        self.clearing.iter().all(|(k, v)| {
            if k == "processor_clearing USD" {
                *v == self.expected_clearing
            } else {
                v.is_zero()
            }
        }) && (self.expected_clearing.is_zero()
            || self.clearing.contains_key("processor_clearing USD"))
    }

    pub fn render_clearing(&self) -> String {
        let got: Vec<String> = self
            .clearing
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        format!(
            "ledger: {} (expected processor_clearing USD {}: the refunds never credited; {})",
            if got.is_empty() {
                "no clearing entries".to_string()
            } else {
                got.join(", ")
            },
            self.expected_clearing,
            if self.clearing_ok() { "ok" } else { "WRONG" }
        )
    }
}

/// Streams `month` to the service and, when asked, scores it.
pub async fn service(api: &Api, mut month: Month, run: &Run) -> Result<Option<Outcome>, String> {
    api.shorten_lags(run.lag).await?;
    let sent_at = Instant::now();
    let records = std::mem::take(&mut month.records);
    let n = records.len();
    api.stream(records, run.chunk).await?;
    eprintln!(
        "streamed {n} records in {:.1}s",
        sent_at.elapsed().as_secs_f64()
    );
    if !run.score {
        return Ok(None);
    }
    let seen = api
        .settle(
            Duration::from_secs(run.lag + 2),
            Duration::from_secs(run.wait),
        )
        .await?;
    let checks = api.absorbed_checks(&month).await?;
    Ok(Some(Outcome {
        expected_clearing: Decimal::new(month.clearing, 2),
        score: score::score(&month.truth, &seen, &checks),
        clearing: api.clearing().await?,
    }))
}

/// The month as files: the ground truth (one fault a line) and the
/// records (one JSON-encoded proto a line, in arrival order).
fn write_files(dir: &Path, month: &Month) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = dir.join("truth.csv");
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?,
    );
    let mut w = || -> std::io::Result<()> {
        writeln!(f, "fault,order_id,payouts")?;
        for t in &month.truth {
            writeln!(
                f,
                "{},{},{}",
                t.kind.as_str(),
                t.order_id,
                t.payouts.join(" ")
            )?;
        }
        f.flush()
    };
    w().map_err(|e| format!("{}: {e}", path.display()))
}

/// Same merchant, month size, position and records: same id (a resent
/// chunk is applied once); another month's chunk never shares it.
fn request_id(parent: &str, total: usize, index: usize, records: &[pb::Record]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(parent.as_bytes());
    h.update(total.to_be_bytes());
    h.update(index.to_be_bytes());
    for r in records {
        h.update(prost::Message::encode_to_vec(r));
    }
    format!("sim-{}", &hex::encode(h.finalize())[..40])
}

/// A running Tally, as one merchant's client.
pub struct Api {
    pub channel: Channel,
    pub merchant: String,
    pub key: Option<String>,
}

impl Api {
    fn parent(&self) -> String {
        format!("merchants/{}", self.merchant)
    }

    fn req<T>(&self, m: T) -> Result<tonic::Request<T>, String> {
        super::trace::keyed(m, self.key.as_deref())
    }

    async fn shorten_lags(&self, seconds: u64) -> Result<(), String> {
        let mut c = HandoffServiceClient::new(self.channel.clone());
        for contract in CONTRACTS {
            let r = pb::UpdateHandoffContractRequest {
                handoff_contract: Some(pb::HandoffContract {
                    name: format!("{}/handoffContracts/{contract}", self.parent()),
                    max_lag: Some(prost_types::Duration {
                        seconds: seconds as i64,
                        nanos: 0,
                    }),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["max_lag".into()],
                }),
            };
            c.update_handoff_contract(self.req(r)?)
                .await
                .map_err(|s| format!("UpdateHandoffContract {contract}: {}", s.message()))?;
        }
        Ok(())
    }

    /// One stream, `chunk` records a message, built as it is sent (a
    /// large month is not held twice).
    async fn stream(&self, records: Vec<pb::Record>, chunk: usize) -> Result<(), String> {
        let mut c = IngestServiceClient::new(self.channel.clone());
        let n = records.len().div_ceil(chunk.max(1));
        let (parent, total) = (self.parent(), records.len());
        let mut it = records.into_iter();
        let mut i = 0usize;
        let requests = std::iter::from_fn(move || {
            let rs: Vec<pb::Record> = it.by_ref().take(chunk.max(1)).collect();
            i += 1;
            (!rs.is_empty()).then(|| pb::StreamRecordsRequest {
                parent: parent.clone(),
                request_id: request_id(&parent, total, i, &rs),
                records: rs,
            })
        });
        let mut replies = c
            .stream_records(self.req(tokio_stream::iter(requests))?)
            .await
            .map_err(|s| format!("StreamRecords: {:?}: {}", s.code(), s.message()))?
            .into_inner();
        let mut got = 0;
        while let Some(r) = replies
            .message()
            .await
            .map_err(|s| format!("StreamRecords: {:?}: {}", s.code(), s.message()))?
        {
            got += 1;
            if let Some(bad) = r
                .results
                .iter()
                .find(|x| x.outcome() == pb::RecordOutcome::Rejected)
            {
                return Err(format!(
                    "record {} refused: {}",
                    bad.source_id,
                    bad.error.as_ref().map(|e| e.message.as_str()).unwrap_or("")
                ));
            }
        }
        if got != n {
            return Err(format!("StreamRecords answered {got} of {n} chunks"));
        }
        Ok(())
    }

    async fn open_exceptions(&self) -> Result<Vec<pb::Exception>, String> {
        let mut c = ExceptionServiceClient::new(self.channel.clone());
        let mut out = vec![];
        for state in [pb::ExceptionState::Open, pb::ExceptionState::Acknowledged] {
            let mut token = String::new();
            loop {
                let r = c
                    .list_exceptions(self.req(pb::ListExceptionsRequest {
                        parent: self.parent(),
                        page_size: 1000,
                        page_token: token.clone(),
                        state: state as i32,
                        ..Default::default()
                    })?)
                    .await
                    .map_err(|s| format!("ListExceptions: {}", s.message()))?
                    .into_inner();
                out.extend(r.exceptions);
                if r.next_page_token.is_empty() {
                    break;
                }
                token = r.next_page_token;
            }
        }
        Ok(out)
    }

    async fn waiting_payouts(&self) -> Result<usize, String> {
        let mut c = LedgerServiceClient::new(self.channel.clone());
        let r = c
            .list_payouts(self.req(pb::ListPayoutsRequest {
                parent: self.parent(),
                page_size: 1000,
                state: pb::PayoutState::Waiting as i32,
                ..Default::default()
            })?)
            .await
            .map_err(|s| format!("ListPayouts: {}", s.message()))?
            .into_inner();
        Ok(r.payouts.len())
    }

    /// Waits out the lags, then until the worker has drained (no job due,
    /// running or retrying, so every deadline check that is due has run;
    /// no payout waiting) and the open exceptions stop changing.
    async fn settle(&self, lag: Duration, limit: Duration) -> Result<Vec<Seen>, String> {
        tokio::time::sleep(lag).await;
        let start = Instant::now();
        let mut last: Option<Vec<String>> = None;
        loop {
            let jobs = self.pending_jobs().await?;
            let open = self.open_exceptions().await?;
            let mut names: Vec<String> = open
                .iter()
                .map(|e| format!("{}{}", e.name, e.etag))
                .collect();
            names.sort();
            let waiting = self.waiting_payouts().await?;
            // Jobs read first: none pending then, and the exceptions read
            // after it the same as the poll before.
            if jobs == 0 && waiting == 0 && last.as_ref() == Some(&names) {
                return Ok(open.iter().map(Seen::from_pb).collect());
            }
            if start.elapsed() > limit {
                return Err(format!(
                    "Tally did not settle within {}s ({jobs} jobs pending, {waiting} payouts waiting, {} open exceptions)",
                    limit.as_secs(),
                    open.len()
                ));
            }
            last = Some(names);
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    /// For orders hit by an absorbed fault: no unresolved exception, and
    /// the captured total counted once.
    async fn absorbed_checks(
        &self,
        month: &Month,
    ) -> Result<BTreeMap<String, Result<(), String>>, String> {
        let mut c = TransactionServiceClient::new(self.channel.clone());
        let mut out = BTreeMap::new();
        for x in &month.absorbed {
            let name = format!("{}/transactions/{}", self.parent(), x.order_id);
            let status = c
                .get_reconciliation_status(
                    self.req(pb::GetReconciliationStatusRequest { name: name.clone() })?,
                )
                .await
                .map_err(|s| format!("GetReconciliationStatus {name}: {}", s.message()))?
                .into_inner();
            let tx = c
                .get_transaction(self.req(pb::GetTransactionRequest { name: name.clone() })?)
                .await
                .map_err(|s| format!("GetTransaction {name}: {}", s.message()))?
                .into_inner()
                .transaction
                .unwrap_or_default();
            let captured = tx
                .totals
                .and_then(|t| t.captured)
                .map(|m| (m.currency_code, m.amount));
            let want = (x.currency.to_string(), sim::build::major(x.captured));
            let verdict = if !status.exceptions.is_empty() {
                Err(format!(
                    "{} exception(s): {}",
                    status.exceptions.len(),
                    status.exceptions[0].summary
                ))
            } else if captured
                .as_ref()
                .map(|(c, a)| (c.as_str(), a.parse::<rust_decimal::Decimal>().ok()))
                != Some((want.0.as_str(), want.1.parse().ok()))
            {
                Err(format!("captured {captured:?}, expected {want:?}"))
            } else {
                Ok(())
            };
            out.insert(x.order_id.clone(), verdict);
        }
        Ok(out)
    }

    /// The worker's jobs for the merchant that are work now (the trial
    /// balance's `pending_jobs`).
    async fn pending_jobs(&self) -> Result<i64, String> {
        let mut c = LedgerServiceClient::new(self.channel.clone());
        Ok(c.get_trial_balance(self.req(pb::GetTrialBalanceRequest {
            parent: self.parent(),
            as_of: None,
        })?)
        .await
        .map_err(|s| format!("GetTrialBalance: {}", s.message()))?
        .into_inner()
        .pending_jobs)
    }

    /// Clearing accounts' balances ("account currency" -> amount), from
    /// the trial balance.
    async fn clearing(&self) -> Result<BTreeMap<String, Decimal>, String> {
        let mut c = LedgerServiceClient::new(self.channel.clone());
        let r = c
            .get_trial_balance(self.req(pb::GetTrialBalanceRequest {
                parent: self.parent(),
                as_of: None,
            })?)
            .await
            .map_err(|s| format!("GetTrialBalance: {}", s.message()))?
            .into_inner();
        let mut out = BTreeMap::new();
        for b in r.balances.iter().filter(|b| b.account.contains("clearing")) {
            let m = b.balance.clone().unwrap_or_default();
            let amount = m
                .amount
                .parse::<Decimal>()
                .map_err(|e| format!("GetTrialBalance: {}: {e}", m.amount))?;
            out.insert(format!("{} {}", b.account, m.currency_code), amount);
        }
        Ok(out)
    }
}

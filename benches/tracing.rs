//! What tracing costs ingest: two `tally serve` processes on one database,
//! one exporting every span (OTEL_TRACES_SAMPLER=always_on) over OTLP/gRPC
//! to a sink in this process, one with no endpoint (the default: no
//! exporter). Rounds alternate between them; each submits a new
//! 1,000-record batch (333 orders with their capture and invoice, plus
//! one). Same run, same machine, so the ratio travels.
//!
//! Both run without the in-process worker, so a round times ingest alone,
//! not cash application catching up with the round before. Besides wall
//! time, each server's own CPU time (all its threads, the exporter's
//! included, from /proc) is read over all rounds: on a shared 2-core
//! machine it moves far less with the neighbours than wall time does.
//!
//!   cargo bench --bench tracing     (TALLY_BENCH_DATABASE_URL, else
//!                                     postgres://postgres@127.0.0.1:5432/postgres)

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tally::proto::tally::v1::ingest_service_client::IngestServiceClient;

fn batch(tag: &str) -> Vec<tally::proto::tally::v1::Record> {
    batch_of(|i| format!("{tag}-{i}"), |_| 0)
}

#[path = "support/mod.rs"]
mod support;
use support::{BATCH, batch_of, median, scratch_database};

const ROUNDS: usize = 31;

/// Counts what it is sent and keeps nothing.
#[derive(Clone, Default)]
struct Sink(Arc<AtomicUsize>);

#[tonic::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let n: usize = req
            .into_inner()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.0.fetch_add(n, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve(url: &str, port: u16, otlp: Option<u16>) -> Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tally"));
    c.arg("serve")
        .env("DATABASE_URL", url)
        .env("TALLY_GRPC_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "info")
        .env("TALLY_IN_PROCESS_WORKER", "false")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(p) = otlp {
        c.env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{p}"),
        )
        .env("OTEL_TRACES_SAMPLER", "always_on")
        // Room for every span of a round, so none is dropped unexported.
        .env("OTEL_BSP_MAX_QUEUE_SIZE", "65536");
    }
    c.spawn().expect("start tally serve")
}

/// User plus system CPU time of process `pid`, all threads, from
/// /proc/PID/stat (clock ticks of 10 ms).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of stat(5), 12 and 13 of `rest`.
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

async fn client(port: u16) -> IngestServiceClient<tonic::transport::Channel> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(ch) = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
        {
            return IngestServiceClient::new(ch).max_encoding_message_size(64 << 20);
        }
        assert!(Instant::now() < deadline, "tally did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn submit(c: &support::Ingest, tag: &str) -> Duration {
    let records = batch(tag);
    let start = Instant::now();
    support::submit(c, "bench", records).await;
    start.elapsed()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (admin, db, url) = scratch_database("tally_bench_tracing").await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = listener.local_addr().unwrap().port();
    let sink = Sink::default();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(sink.clone()))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );

    // One at a time: the first applies the migrations.
    let (plain_port, traced_port) = (free_port(), free_port());
    let mut plain = serve(&url, plain_port, None);
    let c_plain = client(plain_port).await;
    let mut traced = serve(&url, traced_port, Some(otlp));
    let c_traced = client(traced_port).await;

    // Warm-up: connections, statement caches, the exporter's channel.
    submit(&c_plain, "warm-p").await;
    submit(&c_traced, "warm-t").await;

    let cpu_before = (cpu_time(plain.id()), cpu_time(traced.id()));
    let (mut off, mut on, mut pairs) = (vec![], vec![], vec![]);
    for round in 0..ROUNDS {
        // Alternate which goes first, so drift hits both alike.
        let (o, t) = if round % 2 == 0 {
            let o = submit(&c_plain, &format!("p{round}")).await;
            (o, submit(&c_traced, &format!("t{round}")).await)
        } else {
            let t = submit(&c_traced, &format!("t{round}")).await;
            (submit(&c_plain, &format!("p{round}")).await, t)
        };
        off.push(o);
        on.push(t);
        pairs.push(t.as_secs_f64() / o.as_secs_f64());
    }
    // The exporter sends on its schedule (5 s by default); its CPU counts.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let cpu = (
        cpu_time(plain.id()) - cpu_before.0,
        cpu_time(traced.id()) - cpu_before.1,
    );
    let (off, on) = (median(off), median(on));
    pairs.sort_by(f64::total_cmp);
    println!(
        "| path | ms per 1,000 records | records/s | time vs tracing off | server CPU ms per 1,000 | CPU vs tracing off |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, m, c) in [
        ("SubmitRecords, no OTLP endpoint (default)", off, cpu.0),
        ("SubmitRecords, every span exported (always_on)", on, cpu.1),
    ] {
        let c = c.as_secs_f64() * 1e3 / ROUNDS as f64;
        println!(
            "| {name} | {:.1} | {:.0} | {:.3}x | {c:.1} | {:.3}x |",
            m.as_secs_f64() * 1e3,
            BATCH as f64 / m.as_secs_f64(),
            m.as_secs_f64() / off.as_secs_f64(),
            c / (cpu.0.as_secs_f64() * 1e3 / ROUNDS as f64),
        );
    }
    println!(
        "median of the {ROUNDS} same-round ratios (traced / off): {:.3}x",
        pairs[pairs.len() / 2]
    );
    println!(
        "spans received by the sink: {} ({} rounds + warm-up)",
        sink.0.load(Ordering::Relaxed),
        ROUNDS
    );
    for child in [&mut plain, &mut traced] {
        tally::embedded_pg::sys::kill(child.id(), tally::embedded_pg::sys::Signal::Terminate);
        let _ = child.wait();
    }
    let _ = admin
        .execute(&format!("DROP DATABASE {db} WITH (FORCE)"), &[])
        .await;
}

//! `tally trace ORDER --merchant M`: asks a running Tally for the order's
//! handoff trace (GetHandoffTrace) and prints it as a timeline a person
//! reads at a glance: one block per handoff, the lagging one marked.

use std::fmt::Write as _;

use crate::proto::tally::v1 as pb;
use crate::proto::tally::v1::transaction_service_client::TransactionServiceClient;

/// A channel to a running Tally at `addr`; an `https://` address is
/// reached over TLS, trusting Mozilla's roots. Errors are for people.
pub async fn channel(addr: &str) -> Result<tonic::transport::Channel, String> {
    let uri = if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    };
    let tls = uri.starts_with("https://");
    let mut endpoint =
        tonic::transport::Endpoint::from_shared(uri).map_err(|e| format!("--addr {addr}: {e}"))?;
    if tls {
        endpoint = endpoint
            .tls_config(tonic::transport::ClientTlsConfig::new().with_webpki_roots())
            .map_err(|e| format!("--addr {addr}: {e}"))?;
    }
    endpoint
        .connect()
        .await
        .map_err(|e| format!("cannot reach Tally at {addr}: {e}"))
}

/// `message` as a request carrying `key` (an API key, for a server that
/// requires one: `--auth keys`).
pub fn keyed<T>(message: T, key: Option<&str>) -> Result<tonic::Request<T>, String> {
    let mut request = tonic::Request::new(message);
    if let Some(key) = key {
        // Never quoted back: a bad key is "not a valid header value", alone.
        let value = format!("Bearer {key}")
            .parse()
            .map_err(|_| "--key: not a valid header value".to_string())?;
        request.metadata_mut().insert("authorization", value);
    }
    Ok(request)
}

/// Fetches and renders; errors are for people (the address, the status).
pub async fn fetch(
    addr: &str,
    merchant: &str,
    order_id: &str,
    key: Option<&str>,
) -> Result<String, String> {
    let request = keyed(
        pb::GetHandoffTraceRequest {
            name: format!("merchants/{merchant}/transactions/{order_id}"),
        },
        key,
    )?;
    let reply = TransactionServiceClient::new(channel(addr).await?)
        .get_handoff_trace(request)
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
        .into_inner();
    let trace = reply.handoff_trace.ok_or("an empty reply")?;
    Ok(render(&trace))
}

/// "3d 2h", "45m 10s", "-5m": the two largest units.
pub fn human(d: &prost_types::Duration) -> String {
    let (sign, mut s) = if d.seconds < 0 || (d.seconds == 0 && d.nanos < 0) {
        ("-", d.seconds.unsigned_abs())
    } else {
        ("", d.seconds.unsigned_abs())
    };
    if s == 0 {
        return format!("{sign}{}ms", d.nanos.unsigned_abs() / 1_000_000);
    }
    let mut parts = vec![];
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if s >= size {
            parts.push(format!("{}{unit}", s / size));
            s %= size;
        }
    }
    parts.truncate(2);
    format!("{sign}{}", parts.join(" "))
}

fn time(t: &Option<prost_types::Timestamp>) -> String {
    t.as_ref()
        .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "-".into())
}

fn side(out: &mut String, label: &str, r: &Option<pb::HandoffTraceRecord>) {
    let Some(r) = r else {
        let _ = writeln!(out, "    {label:<9} (none)");
        return;
    };
    let _ = writeln!(
        out,
        "    {label:<9} {} {} {}\n              in {}: {}   in tally: {}",
        r.source_system,
        r.kind,
        r.source_id,
        r.source_system,
        time(&r.event_time),
        time(&r.receive_time)
    );
    if !r.trace_id.is_empty() {
        let _ = writeln!(out, "              trace {} span {}", r.trace_id, r.span_id);
    }
    if !r.payload_digest.is_empty() {
        let _ = writeln!(out, "              payload {}", r.payload_digest);
    }
}

pub fn render(t: &pb::HandoffTrace) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", t.transaction);
    if t.lagging_handoff.is_empty() {
        let _ = writeln!(out, "no handoff is past its maximum lag");
    } else {
        let _ = writeln!(out, "lagging handoff: {}", t.lagging_handoff);
    }
    for s in &t.steps {
        let id = s
            .handoff_contract
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let status = s.status().as_str_name();
        let status = status
            .strip_prefix("HANDOFF_TRACE_STATUS_")
            .unwrap_or(status);
        let lag = s.lag.as_ref().map(human).unwrap_or_else(|| "-".into());
        let max = s.max_lag.as_ref().map(human).unwrap_or_else(|| "-".into());
        let mark = if s.lagging { "  <== lagging" } else { "" };
        let _ = writeln!(
            out,
            "\n{}{id:<28} {status:<11} lag {lag} (max {max}){mark}",
            if s.lagging { "> " } else { "  " }
        );
        side(&mut out, "sent", &s.sent);
        side(&mut out, "received", &s.received);
        for e in &s.exceptions {
            let _ = writeln!(out, "    exception {e}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_at_a_glance() {
        let d = |seconds, nanos| prost_types::Duration { seconds, nanos };
        assert_eq!(human(&d(3 * 86_400 + 7_200 + 60, 0)), "3d 2h");
        assert_eq!(human(&d(2_710, 0)), "45m 10s");
        assert_eq!(human(&d(-300, 0)), "-5m");
        assert_eq!(human(&d(0, 250_000_000)), "250ms");
    }

    #[test]
    fn the_lagging_handoff_is_marked() {
        let t = pb::HandoffTrace {
            transaction: "merchants/acme/transactions/1".into(),
            lagging_handoff: "order-to-fulfillment".into(),
            steps: vec![pb::HandoffTraceStep {
                handoff_contract: "merchants/acme/handoffContracts/order-to-fulfillment".into(),
                status: pb::HandoffTraceStatus::Late as i32,
                lag: Some(prost_types::Duration {
                    seconds: 3 * 86_400,
                    nanos: 0,
                }),
                max_lag: Some(prost_types::Duration {
                    seconds: 86_400,
                    nanos: 0,
                }),
                lagging: true,
                ..Default::default()
            }],
        };
        let text = render(&t);
        assert!(
            text.contains("lagging handoff: order-to-fulfillment"),
            "{text}"
        );
        assert!(
            text.contains(
                "> order-to-fulfillment         LATE        lag 3d (max 1d)  <== lagging"
            ),
            "{text}"
        );
    }
}

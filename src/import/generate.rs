//! A generated month of exports with planted variances, for the audit's
//! benchmark and tests: a Shopify orders export (storefront), a Stripe
//! payout reconciliation report (processor) and a NetSuite journal import
//! (ledger, two lines per clean journal). Every planted fault is listed
//! with the rule and subject the matcher must report, and nothing else is
//! wrong.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// What the matcher must find for one planted fault.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Planted {
    pub order_id: String,
    pub rule: &'static str,
    pub subject: String,
}

#[derive(Debug, Clone)]
pub struct Month {
    pub storefront: PathBuf,
    pub processor: PathBuf,
    pub ledger: PathBuf,
    pub planted: Vec<Planted>,
    /// Orders only the storefront has, and only the processor has.
    pub storefront_only: u64,
    pub processor_only: u64,
}

/// Which fault order `i` carries; most carry none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    /// The ERP booked the net, the fee nowhere.
    FeeUnallocated,
    /// Refunded in the storefront, never at the processor.
    RefundNotAtProcessor,
    /// Refunded at the processor, no ERP credit memo.
    RefundNotCredited,
    /// Three ledger lines that each round and miss the gross by 0.02.
    LedgerRounding,
    /// The processor captured a dollar more than the order.
    CaptureMismatch,
    StorefrontOnly,
    ProcessorOnly,
}

fn fault(i: u64) -> Fault {
    match i % 97 {
        11 => Fault::FeeUnallocated,
        23 => Fault::RefundNotAtProcessor,
        37 => Fault::RefundNotCredited,
        41 => Fault::LedgerRounding,
        53 => Fault::CaptureMismatch,
        67 => Fault::StorefrontOnly,
        79 => Fault::ProcessorOnly,
        _ => Fault::None,
    }
}

/// Cents to "12.34".
fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

/// 2026-09-01 plus `secs`, as "YYYY-MM-DD HH:MM:SS".
fn time(secs: u64) -> String {
    let t = chrono::DateTime::from_timestamp(1_788_220_800 + secs as i64, 0).unwrap_or_default();
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Writes `orders` orders' worth of exports into `dir`.
pub fn month(dir: &Path, orders: u64) -> io::Result<Month> {
    let storefront = dir.join("orders_export.csv");
    let processor = dir.join("payout_reconciliation.itemized.csv");
    let ledger = dir.join("journal_import.csv");
    let mut sf = BufWriter::with_capacity(1 << 20, File::create(&storefront)?);
    let mut pr = BufWriter::with_capacity(1 << 20, File::create(&processor)?);
    let mut gl = BufWriter::with_capacity(1 << 20, File::create(&ledger)?);
    writeln!(
        sf,
        "Name,Email,Financial Status,Paid at,Fulfillment Status,Currency,Subtotal,Shipping,Taxes,Total,Discount Code,Discount Amount,Created at,Lineitem quantity,Lineitem name,Lineitem price,Lineitem sku,Payment Method,Payment Reference,Refunded Amount,Id"
    )?;
    writeln!(
        pr,
        "balance_transaction_id,created_utc,available_on_utc,currency,gross,fee,net,reporting_category,source_id,description,automatic_payout_id,charge_id,payment_intent_id,payment_metadata[order_id],order_id,destination_payment_id"
    )?;
    writeln!(
        gl,
        "External ID,Date,Posting Period,Subsidiary,Currency,Exchange Rate,Memo,Account,Debit,Credit,Line Memo,Name,Department,Class,Location"
    )?;
    let mut m = Month {
        storefront: storefront.clone(),
        processor: processor.clone(),
        ledger: ledger.clone(),
        planted: vec![],
        storefront_only: 0,
        processor_only: 0,
    };
    for i in 0..orders {
        let f = fault(i);
        let name = 1000 + i;
        let order = name.to_string();
        let total = 1000 + ((i * 7919) % 20_000) as i64;
        let fee = (total * 29 + 5_000) / 1000 + 30;
        let at = i * 2;
        let (ch, pi) = (format!("ch_{i:08}"), format!("pi_{i:08}"));
        let refund = 500;
        if f != Fault::ProcessorOnly {
            let refunded = matches!(f, Fault::RefundNotAtProcessor | Fault::RefundNotCredited);
            writeln!(
                sf,
                "#{name},c{i}@example.com,paid,{t} +0000,fulfilled,USD,{tot},0.00,0.00,{tot},,,{t} +0000,1,Tee,{tot},TEE-{sku},Stripe,{pi},{r},{id}",
                t = time(at),
                tot = money(total),
                sku = i % 50,
                r = if refunded {
                    money(refund)
                } else {
                    "0.00".into()
                },
                id = 5_000_000 + i,
            )?;
        }
        if f == Fault::StorefrontOnly {
            m.storefront_only += 1;
            continue;
        }
        let gross = if f == Fault::CaptureMismatch {
            total + 100
        } else {
            total
        };
        writeln!(
            pr,
            "txn_{i:08},{t},{a},usd,{g},{fe},{n},charge,{ch},Shopify order #{name},po_{p:06},{ch},{pi},#{name},,",
            t = time(at + 5),
            a = time(at + 172_800),
            g = money(gross),
            fe = money(fee),
            n = money(gross - fee),
            p = i / 1000,
        )?;
        if f == Fault::RefundNotCredited {
            writeln!(
                pr,
                "txn_r{i:08},{t},{t},usd,{g},0.00,{g},refund,re_{i:08},,po_{p:06},{ch},{pi},#{name},,",
                t = time(at + 3_600),
                g = money(-refund),
                p = i / 1000,
            )?;
        }
        if f == Fault::ProcessorOnly {
            m.processor_only += 1;
            continue;
        }
        let je = format!("JE-{i:08}");
        let day = &time(at)[..10];
        let line = |gl: &mut BufWriter<File>, acct: &str, dr: i64, cr: i64, memo: &str| {
            let (d, c) = (
                if dr > 0 { money(dr) } else { String::new() },
                if cr > 0 { money(cr) } else { String::new() },
            );
            writeln!(
                gl,
                "{je},{day},Sep 2026,US,USD,1,Shopify #{name},{acct},{d},{c},{memo},,,,"
            )
        };
        match f {
            Fault::FeeUnallocated => {
                line(&mut gl, "1200 Stripe Clearing", gross - fee, 0, &ch)?;
                line(&mut gl, "4000 Sales", 0, gross - fee, "")?;
            }
            Fault::LedgerRounding => {
                let part = (gross - 2) / 3;
                let last = gross - 2 - 2 * part;
                for p in [part, part, last] {
                    line(&mut gl, "1200 Stripe Clearing", p, 0, &ch)?;
                }
                line(&mut gl, "4000 Sales", 0, gross - 2, "")?;
            }
            _ => {
                line(&mut gl, "1200 Stripe Clearing", gross, 0, &ch)?;
                line(&mut gl, "4000 Sales", 0, gross, "")?;
            }
        }
        let plant = |rule: &'static str, subject: String| Planted {
            order_id: order.clone(),
            rule,
            subject,
        };
        match f {
            Fault::FeeUnallocated => m.planted.push(plant("fee_unallocated", ch.clone())),
            Fault::RefundNotAtProcessor => m.planted.push(plant(
                "refund_not_at_processor",
                format!("shopify/storefront_transaction/{}-refund", 5_000_000 + i),
            )),
            Fault::RefundNotCredited => m.planted.push(plant(
                "refund_not_credited",
                format!("stripe/processor_payment/re_{i:08}"),
            )),
            Fault::LedgerRounding => m.planted.push(plant("ledger_line_rounding", ch.clone())),
            Fault::CaptureMismatch => m
                .planted
                .push(plant("order_total_vs_captured", order.clone())),
            _ => {}
        }
    }
    sf.flush()?;
    pr.flush()?;
    gl.flush()?;
    m.planted.sort();
    Ok(m)
}

/// The month's ledger again as a GL export with a `Type` column (its lines
/// `Journal`), and after them a credit memo of `amount` for `order`'s
/// refund, naming the refund `refund` (may be empty): written to `out`.
pub fn ledger_with_credit_memo(
    m: &Month,
    order: &str,
    amount: &str,
    refund: &str,
    out: &Path,
) -> io::Result<()> {
    let gl = std::fs::read_to_string(&m.ledger)?;
    let mut text = String::with_capacity(gl.len() + gl.len() / 8);
    for (i, l) in gl.lines().enumerate() {
        text.push_str(l);
        text.push_str(if i == 0 { ",Type\n" } else { ",Journal\n" });
    }
    for (acct, dr, cr) in [
        ("4100 Sales Returns", amount, ""),
        ("1100 Receivables", "", amount),
    ] {
        text.push_str(&format!(
            "CM-{order},2026-09-02,Sep 2026,US,USD,1,Refund of #{order},{acct},{dr},{cr},{refund},,,,,Credit Memo\n"
        ));
    }
    std::fs::write(out, text)
}

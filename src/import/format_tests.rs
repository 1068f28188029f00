//! Every header variant issue 21 names, in files shaped like the real
//! exports: detected by its columns, read into the right records.

use super::*;
use crate::domain::record::{Body, PaymentType, TxnKind};

fn read(text: &str) -> (Format, Vec<Record>, Vec<String>) {
    read_with(text, &Options::default())
}

fn read_with(text: &str, opts: &Options) -> (Format, Vec<Record>, Vec<String>) {
    let r = FileReader::from_reader(
        "x.csv".into(),
        Box::new(std::io::Cursor::new(text.as_bytes().to_vec())),
        opts,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    collect(r)
}

/// A file's format, records and errors (as text), read to the end.
pub(super) fn collect(r: FileReader) -> (Format, Vec<Record>, Vec<String>) {
    let format = r.format;
    let (mut recs, mut errs) = (vec![], vec![]);
    for i in r {
        match i {
            Item::Record(p) => recs.push(p.record),
            Item::Error(e) => errs.push(e.to_string()),
        }
    }
    (format, recs, errs)
}

const V3: &str = "balance_transaction_id,created_utc,created,available_on_utc,available_on,currency,gross,fee,net,reporting_category,source_id,description,customer_facing_amount,customer_facing_currency,automatic_payout_id,automatic_payout_effective_at_utc,automatic_payout_effective_at,charge_id,payment_intent_id,charge_created_utc,charge_created,invoice_id,payment_metadata[order_id]\n\
txn_1AAAA,2026-09-01 14:03:22,2026-09-01 10:03:22,2026-09-03 00:00:00,2026-09-02 20:00:00,usd,100.00,3.20,96.80,charge,ch_1AAAA,Shopify order,100.00,usd,po_1PPPP,2026-09-03 00:00:00,2026-09-02 20:00:00,ch_1AAAA,pi_1AAAA,2026-09-01 14:03:20,2026-09-01 10:03:20,,#1001\n\
txn_1BBBB,2026-09-02 09:00:00,2026-09-02 05:00:00,2026-09-04 00:00:00,2026-09-03 20:00:00,usd,-20.00,0.00,-20.00,refund,re_1BBBB,,,,po_1PPPP,,,ch_1AAAA,pi_1AAAA,,,,1001\n\
txn_1CCCC,2026-09-03 00:00:00,2026-09-02 20:00:00,2026-09-03 00:00:00,2026-09-02 20:00:00,usd,-76.80,0.00,-76.80,payout,po_1PPPP,STRIPE PAYOUT,,,,,,,,,,,\n\
txn_1DDDD,2026-09-03 01:00:00,2026-09-02 21:00:00,2026-09-03 01:00:00,2026-09-02 21:00:00,usd,-15.00,0.00,-15.00,fee,,Radar fees,,,po_1PPPP,,,,,,,,\n";

#[test]
fn stripe_itemized_v3() {
    let (f, recs, errs) = read(V3);
    assert_eq!(f, Format::StripeItemized);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(recs.len(), 4);
    let Body::ProcessorPayment(p) = &recs[0].body else {
        panic!("{:?}", recs[0])
    };
    assert_eq!(recs[0].source_id, "ch_1AAAA");
    assert_eq!(recs[0].order_id.as_deref(), Some("1001"));
    assert_eq!(recs[0].event_time.to_rfc3339(), "2026-09-01T14:03:22+00:00");
    assert_eq!(p.amount.to_string(), "100.00 USD");
    assert_eq!(p.fee.unwrap().to_string(), "3.20 USD");
    assert_eq!(p.payment_intent_id.as_deref(), Some("pi_1AAAA"));
    let Body::ProcessorPayment(r) = &recs[1].body else {
        panic!("{:?}", recs[1])
    };
    assert_eq!(r.payment_type, PaymentType::Refund);
    assert_eq!(recs[1].source_id, "re_1BBBB");
    assert_eq!(r.charge_id.as_deref(), Some("ch_1AAAA"));
    assert_eq!(r.amount.to_string(), "20.00 USD");
    assert!(matches!(&recs[2].body, Body::Payout(p) if p.amount.to_string() == "76.80 USD"));
    assert_eq!(recs[2].source_id, "po_1PPPP");
    assert!(matches!(&recs[3].body, Body::BalanceTransaction(b) if b.reporting_category == "fee"));
}

#[test]
fn stripe_itemized_v5_columns_in_another_order() {
    let text = "order_id,destination_payment_id,reporting_category,gross,net,fee,currency,created_utc,balance_transaction_id,charge_id,description,extra_column\n\
                ,,charge,\"1,500\",1455,45,jpy,2026-09-01 00:00:00,txn_2,ch_2JPY1,Order #2002,ignored\n\
                ,,charge,1.250,1.200,0.050,kwd,2026-09-01 00:00:00,txn_3,ch_3KWD1,Order #2003,\n";
    let (f, recs, errs) = read(text);
    assert_eq!(f, Format::StripeItemized);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(recs[0].order_id.as_deref(), Some("2002"));
    assert!(
        matches!(&recs[0].body, Body::ProcessorPayment(p) if p.amount.to_string() == "1500 JPY")
    );
    assert!(
        matches!(&recs[1].body, Body::ProcessorPayment(p) if p.amount.to_string() == "1.250 KWD")
    );
}

#[test]
fn stripe_dashboard_default_and_orderless_charges() {
    let text = "balance_transaction_id,created_utc,available_on_utc,currency,gross,fee,net,reporting_category,description\n\
                txn_9,2026-09-01 14:03:22,2026-09-03 00:00:00,eur,50.00,1.75,48.25,charge,Payment for ch_9ABCDEF\n\
                txn_10,2026-09-01 14:03:22,2026-09-03 00:00:00,eur,5.0.0,1.75,48.25,charge,\n";
    let (f, recs, errs) = read(text);
    assert_eq!(f, Format::StripeItemized);
    // No order: a balance transaction naming its charge.
    assert!(
        matches!(&recs[0].body, Body::BalanceTransaction(b) if b.source.as_deref() == Some("ch_9ABCDEF"))
    );
    assert_eq!(
        errs,
        vec!["x.csv:3:5: column 'gross': '5.0.0' is not an amount"]
    );
}

#[test]
fn stripe_balance_history_export() {
    let text = "id,Type,Source,Amount,Fee,Net,Currency,Created (UTC),Available On (UTC),Description,Transfer,Customer Email\n\
                txn_11,charge,ch_11ABCD,10.00,0.59,9.41,usd,2026-09-01 14:03,2026-09-03 00:00,Order #3001,po_11ABCD,a@b.c\n\
                txn_12,payout,po_11ABCD,-9.41,0.00,-9.41,usd,8/6/2026 12:00,8/6/2026 12:00,,,\n";
    let (f, recs, errs) = read(text);
    assert_eq!(f, Format::StripeBalanceHistory);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(recs[0].source_id, "ch_11ABCD");
    assert_eq!(recs[0].order_id.as_deref(), Some("3001"));
    assert_eq!(recs[1].event_time.to_rfc3339(), "2026-08-06T12:00:00+00:00");
}

#[test]
fn shopify_payments_newest_and_older() {
    let newest = "Transaction Date,Type,Order,Card Brand,Card Source,Payout Status,Payout Date,Payout ID,Available On,Amount,Fee,Net,Checkout,Payment Method Name,Presentment Amount,Presentment Currency,Currency,VAT\n\
                  2026-07-01 07:33:09 +0200,charge,#1001,visa,online,paid,2026-07-03,123,2026-07-03,$21.83,0.93,20.90,c1.1,card,20.00,EUR,USD,0\n\
                  2026-07-02 08:00:00 +0200,refund,#1001,visa,online,paid,2026-07-03,123,2026-07-03,-5.00,0,-5.00,,card,,,USD,0\n\
                  2026-07-02 08:00:00 +0200,adjustment,,,,paid,2026-07-03,123,2026-07-03,-1.00,0,-1.00,,,,,USD,0\n";
    let (f, recs, errs) = read(newest);
    assert_eq!(f, Format::ShopifyPayments);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(recs.len(), 2, "the adjustment is no storefront payment");
    assert_eq!(recs[0].event_time.to_rfc3339(), "2026-07-01T05:33:09+00:00");
    assert!(
        matches!(&recs[0].body, Body::StorefrontTransaction(t) if t.amount.to_string() == "20.00 EUR" && t.kind == TxnKind::Sale)
    );
    assert!(
        matches!(&recs[1].body, Body::StorefrontTransaction(t) if t.amount.to_string() == "5.00 USD" && t.kind == TxnKind::Refund)
    );

    let older = "Business Entity Name,Transaction Date,Type,Order,Card Brand,Payout Status,Payout Date,Available On,Amount,Fee,Net,Currency\n\
                 Acme,2026/6/12,charge,#1002,visa,paid,2026/6/14,2026/6/14,\"1,021.83\",0.93,\"1,020.90\",usd\n";
    let (f, recs, errs) = read(older);
    assert_eq!(f, Format::ShopifyPayments);
    assert!(errs.is_empty(), "{errs:?}");
    assert!(
        matches!(&recs[0].body, Body::StorefrontTransaction(t) if t.amount.to_string() == "1021.83 USD")
    );
}

#[test]
fn shopify_payouts_export() {
    let text = "Payout Date,Status,Charges,Refunds,Adjustments,Reserved Funds,Fees,Retried Amount,Total,Currency\n\
                2026-07-03,paid,100.00,-5.00,0.00,0.00,-3.20,0.00,91.80,USD\n";
    let (f, recs, errs) = read(text);
    assert_eq!(f, Format::ShopifyPayouts);
    assert!(errs.is_empty(), "{errs:?}");
    assert!(matches!(&recs[0].body, Body::Payout(p) if p.amount.to_string() == "91.80 USD"));
}

#[test]
fn shopify_orders_one_row_per_line_item() {
    let text = "Name,Email,Financial Status,Paid at,Fulfillment Status,Fulfilled at,Currency,Subtotal,Shipping,Taxes,Total,Discount Code,Discount Amount,Created at,Lineitem quantity,Lineitem name,Lineitem price,Lineitem sku,Payment Method,Payment Reference,Refunded Amount,Id\n\
                #1001,a@b.c,paid,2026-07-01 07:33:09 +0200,fulfilled,,USD,90.00,5.00,5.00,90.00,SAVE10,10.00,2026-07-01 07:30:00 +0200,2,Tee,40.00,TEE-1,Stripe,pi_1AAAA,20.00,5001\n\
                #1001,,,,,,,,,,,,,,1,Cap,20.00,CAP-1,,,,\n\
                #1002,a@b.c,paid,2026-07-01 08:00:00 +0200,fulfilled,,USD,10.00,0,0,10.00,,,2026-07-01 08:00:00 +0200,x,Tee,10.00,TEE-1,Stripe,pi_1BBBB,0,5002\n";
    let (f, recs, errs) = read(text);
    assert_eq!(f, Format::ShopifyOrders);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("x.csv:4:15: column 'Lineitem quantity'"),
        "{errs:?}"
    );
    let Body::StorefrontOrder(o) = &recs[0].body else {
        panic!("{:?}", recs[0])
    };
    assert_eq!(recs[0].order_id.as_deref(), Some("1001"));
    assert_eq!(o.line_items.len(), 2);
    assert_eq!(o.discounts[0].code, "SAVE10");
    assert_eq!(
        o.tenders[0].processor_reference.as_deref(),
        Some("pi_1AAAA")
    );
    assert!(
        matches!(&recs[1].body, Body::StorefrontTransaction(t) if t.kind == TxnKind::Refund && t.amount.to_string() == "20.00 USD")
    );
    // The order with the bad line is still read.
    assert_eq!(recs[2].order_id.as_deref(), Some("1002"));
}

#[test]
fn netsuite_journal_import_and_a_mapping() {
    let text = "External ID,Date,Posting Period,Subsidiary,Currency,Exchange Rate,Memo,Account,Debit,Credit,Line Memo,Name,Department,Class,Location\n\
                JE-1,2026-09-01,Sep 2026,US,USD,1,Shopify #1001,1200 Stripe Clearing,100.00,,Stripe ch_1AAAA,,,,\n\
                JE-1,2026-09-01,Sep 2026,US,USD,1,Shopify #1001,4000 Sales,,100.00,,,,,\n\
                JE-2,2026-09-01,Sep 2026,US,USD,1,,1000 Bank,10.00,,po_1PPPP,,,,\n\
                JE-2,2026-09-01,Sep 2026,US,USD,1,,1200 Stripe Clearing,,9.00,,,,,\n";
    let (f, recs, errs) = read(text);
    assert_eq!(f, Format::NetsuiteJournal);
    assert_eq!(recs.len(), 1);
    let Body::JournalEntry(j) = &recs[0].body else {
        panic!()
    };
    assert_eq!(j.lines[0].reference.as_deref(), Some("ch_1AAAA"));
    // The second line names no id but its journal's Memo: the order.
    assert_eq!(j.lines[1].reference.as_deref(), Some("1001"));
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("x.csv:4:0: column 'Debit': journal JE-2"),
        "{errs:?}"
    );

    let other = "Journal No,Posting Date,Acct,Dr,Cr,Reference\nG1,2026-09-01,1200,5.00,,ch_1AAAA\nG1,2026-09-01,4000,,5.00,\n";
    let mapping: erp::Mapping = toml::from_str(
        "currency = \"EUR\"\n[columns]\n\"External ID\" = \"Journal No\"\n\"Date\" = \"Posting Date\"\n\"Account\" = \"Acct\"\n\"Debit\" = \"Dr\"\n\"Credit\" = \"Cr\"\n\"Line Memo\" = \"Reference\"\n",
    )
    .unwrap();
    let opts = Options {
        format: None,
        mapping: Some(mapping),
    };
    let (f, recs, errs) = read_with(other, &opts);
    assert_eq!(f, Format::NetsuiteJournal);
    assert!(errs.is_empty(), "{errs:?}");
    assert!(
        matches!(&recs[0].body, Body::JournalEntry(j) if j.currency.code() == "EUR" && j.lines[0].reference.as_deref() == Some("ch_1AAAA"))
    );
}

#[test]
fn unknown_columns_are_refused_with_their_names() {
    let e = FileReader::from_reader(
        "y.csv".into(),
        Box::new(std::io::Cursor::new(b"foo,bar\n1,2\n".to_vec())),
        &Options::default(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.starts_with("y.csv:1:0: no known export has these columns (foo, bar)"),
        "{e}"
    );
}

#[test]
fn stripe_api_objects_in_minor_units() {
    let text = r##"{"object":"list","data":[
        {"object":"balance_transaction","id":"txn_1","amount":1500,"currency":"jpy","created":1788000000,"available_on":1788100000,"fee":45,"net":1455,"reporting_category":"charge","source":"ch_1ZZZZ","type":"charge"},
        {"object":"charge","id":"ch_2ZZZZ","amount":1250,"currency":"kwd","created":1788000000,"metadata":{"order_id":"#4001"},"payment_intent":"pi_2ZZZZ","balance_transaction":"txn_2"},
        {"object":"refund","id":"re_3ZZZZ","amount":500,"currency":"usd","created":1788000000,"charge":"ch_2ZZZZ","metadata":{}},
        {"object":"payout","id":"po_4ZZZZ","amount":1000,"currency":"usd","created":1788000000,"arrival_date":1788100000,"status":"paid"},
        {"object":"charge","id":"ch_bad","amount":"ten","currency":"usd","created":1}
    ]}"##;
    let (f, recs, errs) = read(text);
    assert_eq!(f, Format::StripeJson);
    assert_eq!(recs.len(), 4);
    assert!(
        matches!(&recs[0].body, Body::BalanceTransaction(b) if b.amount.to_string() == "1500 JPY")
    );
    assert!(
        matches!(&recs[1].body, Body::ProcessorPayment(p) if p.amount.to_string() == "1.250 KWD")
    );
    assert_eq!(recs[1].order_id.as_deref(), Some("4001"));
    assert!(
        matches!(&recs[2].body, Body::BalanceTransaction(b) if b.amount.to_string() == "-5.00 USD")
    );
    assert!(matches!(&recs[3].body, Body::Payout(_)));
    assert_eq!(
        errs,
        vec!["x.csv: column '$.data[4].amount': an integer amount in minor units is required"]
    );
}

/// Every documentation example parses without a panic; the Stripe and
/// Shopify ones yield records. The team's shared copies are read too when
/// they sit beside the checkout.
#[test]
fn documentation_fixtures_parse() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![];
    let mut dirs = vec![root.join("tests/fixtures"), root.join("../shared/fixtures")];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "json" || x == "csv") {
                files.push(p);
            }
        }
    }
    assert!(files.len() >= 8, "{files:?}");
    for p in files {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let r = FileReader::open(&p, &Options::default()).unwrap_or_else(|e| panic!("{e}"));
        let format = r.format;
        let (mut recs, mut errs) = (0, vec![]);
        for i in r {
            match i {
                Item::Record(_) => recs += 1,
                Item::Error(e) => errs.push(e.to_string()),
            }
        }
        if name.starts_with("stripe") || name.contains("fixtures3") {
            assert_eq!(format, Format::StripeJson, "{name}");
        }
        eprintln!(
            "{name}: {} records, {} errors {:?}",
            recs,
            errs.len(),
            errs.first()
        );
        if name.ends_with("_transactions.json") && !name.contains("tender")
            || name == "transactions.json"
            || name.contains("orders")
        {
            assert_eq!(format, Format::ShopifyJson, "{name}");
            assert!(recs > 0, "{name}: {errs:?}");
        }
        if name.starts_with("netsuite2") {
            assert!(format.side() == Side::Ledger || !errs.is_empty(), "{name}");
        }
    }
}

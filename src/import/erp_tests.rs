//! GL lines with a Type column: credit memos read as the ERP's credit
//! memos (and clear the audit's `refund_not_credited`), journals as before,
//! a malformed credit memo refused with file:line:column.

use super::audit::{Input, run};
use super::audit_tests::scratch;
use super::erp::TranType;
use super::*;
use crate::domain::record::{Body, RefKind};

fn read(text: &str) -> (Vec<Record>, Vec<String>) {
    let r = FileReader::from_reader(
        "gl.csv".into(),
        Box::new(std::io::Cursor::new(text.as_bytes().to_vec())),
        &Options::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.format, Format::NetsuiteJournal);
    let (mut recs, mut errs) = (vec![], vec![]);
    for i in r {
        match i {
            Item::Record(p) => recs.push(p.record),
            Item::Error(e) => errs.push(e.to_string()),
        }
    }
    (recs, errs)
}

const HEAD: &str = "Type,External ID,Date,Posting Period,Subsidiary,Currency,Memo,Account,Debit,Credit,Line Memo\n";

#[test]
fn types_by_name_and_by_code() {
    for (text, want) in [
        ("Credit Memo", TranType::CreditMemo),
        ("CustCred", TranType::CreditMemo),
        (" credit  memo ", TranType::CreditMemo),
        ("Journal", TranType::Journal),
        ("CustInvc", TranType::Journal),
        ("Invoice", TranType::Journal),
    ] {
        assert_eq!(TranType::of(text), want, "{text}");
    }
}

#[test]
fn a_credit_memo_group_is_a_credit_memo_and_the_rest_journals() {
    let text = format!(
        "{HEAD}\
         Journal,JE-1,2026-09-01,Sep 2026,US,USD,Shopify #1001,1200 Stripe Clearing,100.00,,ch_1AAAA\n\
         Journal,JE-1,2026-09-01,Sep 2026,US,USD,Shopify #1001,4000 Sales,,100.00,\n\
         Credit Memo,CM-1001,2026-09-03 10:00:00,Sep 2026,US,USD,Refund of #1001,4100 Sales Returns,18.00,,re_1BBBB\n\
         Credit Memo,CM-1001,2026-09-03 10:00:00,Sep 2026,US,USD,Refund of #1001,2200 Sales Tax,2.00,,\n\
         Credit Memo,CM-1001,2026-09-03 10:00:00,Sep 2026,US,USD,Refund of #1001,1100 Receivables,,20.00,\n\
         CustCred,CM-9,2026-09-04,Sep 2026,US,EUR,,4100 Sales Returns,\"1,000.50\",,re_1CCCC\n\
         CustCred,CM-9,2026-09-04,Sep 2026,US,EUR,,1100 Receivables,,\"1,000.50\",\n\
         Invoice,INV-7,2026-09-05,Sep 2026,US,USD,#1007,1100 Receivables,5.00,,\n\
         Invoice,INV-7,2026-09-05,Sep 2026,US,USD,#1007,4000 Sales,,5.00,\n"
    );
    let (recs, errs) = read(&text);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(recs.len(), 4);
    assert!(matches!(recs[0].body, Body::JournalEntry(_)));
    assert!(
        matches!(recs[3].body, Body::JournalEntry(_)),
        "other types stay journals"
    );
    let cm = &recs[1];
    assert_eq!(cm.source_id, "CM-1001");
    assert_eq!(cm.source_system, "netsuite");
    assert_eq!(cm.order_id.as_deref(), Some("1001"));
    assert_eq!(cm.event_time.to_rfc3339(), "2026-09-03T10:00:00+00:00");
    let Body::CreditMemo(m) = &cm.body else {
        panic!("{cm:?}")
    };
    assert_eq!(m.total.to_string(), "20.00 USD");
    assert_eq!(cm.references.len(), 1);
    assert_eq!(
        (cm.references[0].kind, cm.references[0].id.as_str()),
        (RefKind::Refund, "re_1BBBB")
    );
    // Named by its refund only: no order of its own, linked by the id.
    let cm9 = &recs[2];
    assert_eq!(cm9.order_id, None);
    assert!(matches!(&cm9.body, Body::CreditMemo(m) if m.total.to_string() == "1000.50 EUR"));
    assert_eq!(cm9.pointer_ids(), vec!["re_1CCCC"]);
}

#[test]
fn a_malformed_credit_memo_is_refused_where_it_is_wrong() {
    let text = format!(
        "{HEAD}\
         Credit Memo,CM-1,2026-09-03,Sep 2026,US,USD,#1001,4100 Sales Returns,abc,,\n\
         Credit Memo,CM-1,2026-09-03,Sep 2026,US,USD,#1001,1100 Receivables,,20.00,\n\
         Credit Memo,CM-2,2026-09-03,Sep 2026,US,USD,#1002,4100 Sales Returns,20.00,,\n\
         Journal,CM-2,2026-09-03,Sep 2026,US,USD,#1002,1100 Receivables,,20.00,\n\
         Credit Memo,CM-3,2026-09-03,Sep 2026,US,USD,no id here,4100 Sales Returns,20.00,,\n\
         Credit Memo,CM-3,2026-09-03,Sep 2026,US,USD,no id here,1100 Receivables,,20.00,\n\
         Credit Memo,CM-4,2026-09-03,Sep 2026,US,USD,#1004,4100 Sales Returns,20.00,,\n\
         Credit Memo,CM-4,2026-09-03,Sep 2026,US,USD,#1004,1100 Receivables,,19.00,\n\
         Credit Memo,CM-5,2026-09-03,Sep 2026,US,USD,#1005,4100 Sales Returns,7.00,,\n\
         Credit Memo,CM-5,2026-09-03,Sep 2026,US,USD,#1005,1100 Receivables,,7.00,\n"
    );
    let (recs, errs) = read(&text);
    assert_eq!(errs.len(), 4, "{errs:?}");
    assert!(
        errs[0].starts_with("gl.csv:2:9: column 'Debit': 'abc'"),
        "{errs:?}"
    );
    assert!(
        errs[1].starts_with("gl.csv:5:1: column 'Type': credit memo CM-2 began as a credit memo"),
        "{errs:?}"
    );
    assert!(
        errs[2].starts_with("gl.csv:6:0: column 'Memo': credit memo CM-3: names no order"),
        "{errs:?}"
    );
    assert!(
        errs[3].starts_with(
            "gl.csv:8:0: column 'Debit': credit memo CM-4: debits (20) do not equal credits (19)"
        ),
        "{errs:?}"
    );
    // The rows around the bad ones still read.
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].source_id, "CM-5");
}

/// The generated month's uncredited refunds, then the same ledger with a
/// credit memo for one of them: its `refund_not_credited` is gone, and
/// nothing takes its place; a memo of the wrong amount is a variance.
#[test]
fn a_credit_memo_clears_refund_not_credited_in_the_audit() {
    let dir = scratch("erp-credit-memo");
    let m = generate::month(&dir, 200).unwrap();
    let audit = |ledger: &std::path::Path| {
        let input = Input {
            files: vec![
                (Side::Storefront, m.storefront.clone()),
                (Side::Processor, m.processor.clone()),
                (Side::Ledger, ledger.to_path_buf()),
            ],
            options: Default::default(),
        };
        let r = run(&input, chrono::Utc::now(), &Default::default());
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        r.exceptions
            .into_iter()
            .map(|e| (e.order_id, e.rule))
            .collect::<Vec<_>>()
    };
    let before = audit(&m.ledger);
    let uncredited: Vec<&String> = before
        .iter()
        .filter(|(_, rule)| rule == "refund_not_credited")
        .map(|(o, _)| o)
        .collect();
    assert!(!uncredited.is_empty());
    let order = uncredited[0].clone();

    // The same journals under a Type column, and the refund's credit memo.
    let with_memo = |amount: &str| {
        let p = dir.join(format!("gl-{amount}.csv"));
        generate::ledger_with_credit_memo(&m, &order, amount, "", &p).unwrap();
        p
    };
    let after = audit(&with_memo("5.00"));
    let mut want = before.clone();
    want.retain(|(o, rule)| !(o == &order && rule == "refund_not_credited"));
    assert_eq!(after, want, "only the credited refund's row is gone");

    let short = audit(&with_memo("4.00"));
    assert!(
        short.contains(&(order.clone(), "refunded_vs_credited".into())),
        "{short:?}"
    );
    assert!(!short.contains(&(order, "refund_not_credited".into())));
    let _ = std::fs::remove_dir_all(&dir);
}

//! SuiteAnalytics tables joined into journals and credit memos; Fivetran's
//! copies of the documentation's tables read without an error.

use super::audit_tests::scratch;
use super::*;
use crate::domain::record::{Body, Record};

fn read(path: &std::path::Path) -> (Format, Vec<Record>, Vec<String>) {
    let r = FileReader::open(path, &Options::default()).unwrap_or_else(|e| panic!("{e}"));
    super::format_tests::collect(r)
}

#[test]
fn the_tables_join_into_journals_and_credit_memos() {
    let d = scratch("suiteanalytics");
    let w = |name: &str, text: &str| std::fs::write(d.join(name), text).unwrap();
    w(
        "currency.csv",
        "id,_fivetran_deleted,name,symbol,currencyprecision\n1,FALSE,US dollar,USD,2\n4,FALSE,Euro,EUR,2\n",
    );
    w(
        "account.csv",
        "id,_fivetran_deleted,acctnumber,accttype,fullname\n1,FALSE,1200,Bank,Stripe Clearing\n2,FALSE,4000,Income,Sales\n3,FALSE,1100,AcctRec,Receivables\n",
    );
    w(
        "transaction.csv",
        "id,_fivetran_deleted,_fivetran_active,transactionnumber,type,memo,trandate,currency,postingperiod,posting\n\
         10,FALSE,TRUE,JE10,Journal,Shopify #1001,2026-09-01 0:00:00,1,300,T\n\
         11,FALSE,TRUE,CM11,CustCred,Refund of #1001,2026-09-03 0:00:00,4,300,T\n\
         11,FALSE,FALSE,CM11-old,CustCred,old version,2026-09-02 0:00:00,4,300,T\n\
         12,TRUE,TRUE,JE12,Journal,,2026-09-04 0:00:00,1,300,T\n\
         13,FALSE,TRUE,SO13,SalesOrd,,2026-09-04 0:00:00,1,300,F\n\
         14,FALSE,TRUE,INV14,CustInvc,#1002,2026-09-05 0:00:00,1,300,T\n\
         15,FALSE,TRUE,JE15,Journal,,2026-09-05 0:00:00,1,300,T\n",
    );
    w(
        "transactionline.csv",
        "id,transaction,_fivetran_deleted,mainline,memo\n1,10,FALSE,F,Stripe ch_1AAAA\n2,10,FALSE,F,\n1,11,FALSE,F,re_1BBBB\n",
    );
    let lines = d.join("transactionaccountingline.csv");
    std::fs::write(
        &lines,
        "accountingbook,transaction,transactionline,_fivetran_deleted,account,amount,credit,debit,posting\n\
         1,10,1,FALSE,1,,,100.00,T\n\
         1,10,2,FALSE,2,,100.00,,T\n\
         1,10,3,TRUE,2,,999.00,,T\n\
         1,10,4,FALSE,2,,5.00,,F\n\
         1,11,1,FALSE,2,20.00,,,T\n\
         1,11,2,FALSE,3,-20.00,,,T\n\
         1,12,1,FALSE,1,7.00,,,T\n\
         1,12,2,FALSE,2,-7.00,,,T\n\
         1,13,1,FALSE,1,3.00,,,T\n\
         1,13,2,FALSE,2,-3.00,,,T\n\
         1,14,1,FALSE,3,9.00,,,T\n\
         1,14,2,FALSE,2,-9.00,,,T\n\
         1,14,3,FALSE,2,,,,T\n\
         1,15,1,FALSE,1,9.00,,,T\n\
         1,15,2,FALSE,2,-8.00,,,T\n\
         1,10,5,FALSE,1,1.00,,,T\n\
         1,99,1,FALSE,1,1.00,,,T\n\
         1,99,2,FALSE,2,-1.00,,,T\n",
    )
    .unwrap();
    let (format, recs, errs) = read(&lines);
    assert_eq!(format, Format::NetsuiteSuiteAnalytics);
    let ids: Vec<&str> = recs.iter().map(|r| r.source_id.as_str()).collect();
    assert_eq!(ids, ["JE10", "CM11", "INV14"], "{errs:?}");
    let Body::JournalEntry(j) = &recs[0].body else {
        panic!("{:?}", recs[0])
    };
    assert_eq!(j.currency.code(), "USD");
    assert_eq!(j.lines.len(), 2, "deleted and non-posting lines skipped");
    assert_eq!(j.lines[0].account, "1200 Stripe Clearing");
    assert_eq!(j.lines[0].reference.as_deref(), Some("ch_1AAAA"));
    // No line memo: the transaction's memo names the order.
    assert_eq!(j.lines[1].reference.as_deref(), Some("1001"));
    let cm = &recs[1];
    assert_eq!(cm.order_id.as_deref(), Some("1001"));
    assert_eq!(cm.event_time.to_rfc3339(), "2026-09-03T00:00:00+00:00");
    assert!(matches!(&cm.body, Body::CreditMemo(m) if m.total.to_string() == "20.00 EUR"));
    assert!(matches!(recs[2].body, Body::JournalEntry(_)));
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(
        errs[0].contains(":15:0: column 'Debit': transaction 15: debits (9"),
        "{errs:?}"
    );
    assert!(
        errs[1].contains(":17:") && errs[1].contains("not together"),
        "{errs:?}"
    );
    assert!(
        errs[2].contains("transaction 99 is not in the transaction table"),
        "{errs:?}"
    );

    // The other tables, read as files of their own, give nothing.
    for t in [
        "transaction.csv",
        "transactionline.csv",
        "account.csv",
        "currency.csv",
    ] {
        let (format, recs, errs) = read(&d.join(t));
        assert_eq!(format, Format::NetsuiteSuiteAnalytics, "{t}");
        assert!(recs.is_empty() && errs.is_empty(), "{t}: {errs:?}");
    }
    let _ = std::fs::remove_dir_all(&d);
}

/// Fivetran's sample tables (duplicated ids, history rows, lines of
/// transactions the sample lacks, lines with no amount): read without an
/// error; what they hold that does not add up is for the audit to say.
#[test]
fn fivetran_s_sample_tables_read_without_an_error() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/fivetran_dbt_netsuite");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("no {}: nothing to read", dir.display());
        return;
    };
    let mut read_lines = false;
    for e in entries.flatten() {
        let (format, _, errs) = read(&e.path());
        assert_eq!(format, Format::NetsuiteSuiteAnalytics, "{:?}", e.path());
        assert!(errs.is_empty(), "{:?}: {errs:?}", e.path());
        read_lines |= e.file_name() == "netsuite2_tran_acct_line_data.csv";
    }
    assert!(read_lines);
}

/// The generated month's GL lines as SuiteAnalytics tables: the audit
/// over the folder of tables says what it says over the GL CSV, every
/// planted variance an exception row, none an error.
#[test]
fn the_audit_over_the_tables_matches_the_gl_csv() {
    use super::audit::{Input, run};
    let d = scratch("suiteanalytics-audit");
    let m = generate::month(&d, 300).unwrap();
    let tables = d.join("netsuite");
    std::fs::create_dir_all(&tables).unwrap();
    let gl = std::fs::read_to_string(&m.ledger).unwrap();
    let (mut trans, mut lines, mut acct_lines) = (
        String::from(
            "id,_fivetran_deleted,transactionnumber,type,memo,trandate,currency,postingperiod,posting\n",
        ),
        String::from("id,transaction,_fivetran_deleted,mainline,memo\n"),
        String::from(
            "accountingbook,transaction,transactionline,_fivetran_deleted,account,amount,credit,debit,posting\n",
        ),
    );
    let mut accounts: Vec<String> = vec![];
    let (mut last, mut tran, mut k) = (String::new(), 0, 0);
    for row in gl.lines().skip(1) {
        // External ID,Date,Posting Period,Subsidiary,Currency,Exchange Rate,Memo,Account,Debit,Credit,Line Memo
        let f: Vec<&str> = row.split(',').collect();
        if f[0] != last {
            last = f[0].to_string();
            tran += 1;
            k = 0;
            trans.push_str(&format!(
                "{tran},FALSE,{},Journal,{},{},1,300,T\n",
                f[0], f[6], f[1]
            ));
        }
        k += 1;
        let acct = match accounts.iter().position(|a| a == f[7]) {
            Some(i) => i + 1,
            None => {
                accounts.push(f[7].to_string());
                accounts.len()
            }
        };
        lines.push_str(&format!("{k},{tran},FALSE,F,{}\n", f[10]));
        acct_lines.push_str(&format!("1,{tran},{k},FALSE,{acct},,{},{},T\n", f[9], f[8]));
    }
    let mut account = String::from("id,_fivetran_deleted,acctnumber,accttype,fullname\n");
    for (i, a) in accounts.iter().enumerate() {
        let (number, name) = a.split_once(' ').unwrap_or((a, ""));
        account.push_str(&format!("{},FALSE,{number},Bank,{name}\n", i + 1));
    }
    for (name, text) in [
        ("netsuite2_transaction_data.csv", trans),
        ("netsuite2_transaction_line_data.csv", lines),
        ("netsuite2_tran_acct_line_data.csv", acct_lines),
        ("netsuite2_account_data.csv", account),
        (
            "netsuite2_currency_data.csv",
            "id,_fivetran_deleted,name,symbol,currencyprecision\n1,FALSE,US dollar,USD,2\n".into(),
        ),
    ] {
        std::fs::write(tables.join(name), text).unwrap();
    }
    let audit = |ledger: Vec<std::path::PathBuf>| {
        let mut files = vec![
            (Side::Storefront, m.storefront.clone()),
            (Side::Processor, m.processor.clone()),
        ];
        files.extend(ledger.into_iter().map(|p| (Side::Ledger, p)));
        let input = Input {
            files,
            options: Default::default(),
        };
        let r = run(&input, chrono::Utc::now(), &Default::default());
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        let rows: Vec<(String, String, String)> = r
            .exceptions
            .into_iter()
            .map(|e| (e.order_id, e.rule, e.subject))
            .collect();
        (rows, r.sides[&Side::Ledger].records)
    };
    let (gl_rows, gl_records) = audit(vec![m.ledger.clone()]);
    let mut folder: Vec<_> = std::fs::read_dir(&tables)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    folder.sort();
    let (sa_rows, sa_records) = audit(folder);
    assert!(gl_rows.len() >= 10, "{gl_rows:?}");
    assert_eq!(sa_records, gl_records);
    assert_eq!(sa_rows, gl_rows);
    let _ = std::fs::remove_dir_all(&d);
}

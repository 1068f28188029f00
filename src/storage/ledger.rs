//! The ledger's tables: journal entries and lines (with the export sequence),
//! order cash events, applications, fee shares, invoices and payouts. SQL only:
//! what to write is decided in `app::cash_application`.
//!
//! The writers that take `&AsyncPgConnection` execute through a shared
//! reference (`&mut { conn }`), so a caller can send several before awaiting
//! any (pipelined: one round trip; `app::cash::group::write_applied`).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Bool, Date, Integer, Nullable, Numeric, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;

use super::statement::{Bind, statement};
use crate::domain::cash_application::plan::{AppliedCash, CashEvent, EventKind};
use crate::domain::ledger::posting::{FeeShare, InvoiceBooking, Tender};
use crate::domain::ledger::{LedgerEntry, SourceRef};
use crate::domain::money::Money;
use crate::error::{Error, Result};

/// Stores entries (and their lines) not stored yet. Entries are keyed by their
/// external id, so a retry inserts nothing twice. The export sequence comes
/// from the merchant's counter row, taken here: call this last in the
/// transaction so the row lock (which orders commits) is held briefly.
pub async fn insert_entries(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    entries: &[LedgerEntry],
    payout_id: Option<&str>,
) -> Result<()> {
    insert_entry_groups(conn, merchant, &[(entries, payout_id)]).await
}

/// [`insert_entries`] for several groups of entries, each with its payout (or
/// none), in one statement: one take of the counter, one run of the balance
/// trigger. Export sequence follows the groups' order.
pub async fn insert_entry_groups(
    conn: &AsyncPgConnection,
    merchant: &str,
    groups: &[(&[LedgerEntry], Option<&str>)],
) -> Result<()> {
    let n: usize = groups.iter().map(|(e, _)| e.len()).sum();
    if n == 0 {
        return Ok(());
    }
    let mut entries: Vec<(&LedgerEntry, Option<&str>)> = Vec::with_capacity(n);
    for (group, payout_id) in groups {
        entries.extend(group.iter().map(|e| (e, *payout_id)));
    }
    let lines: usize = entries.iter().map(|(e, _)| e.lines().len()).sum();
    let n = n as i64;
    let mut e_ext = Vec::with_capacity(entries.len());
    let mut e_ord = Vec::with_capacity(entries.len());
    let mut e_date: Vec<NaiveDate> = Vec::with_capacity(entries.len());
    let mut e_memo = Vec::with_capacity(entries.len());
    let mut e_refs = Vec::with_capacity(entries.len());
    let mut e_payout = Vec::with_capacity(entries.len());
    let (mut l_ord, mut l_no, mut l_acc, mut l_cur) = (vec![], vec![], vec![], vec![]);
    let (mut l_debit, mut l_credit, mut l_memo, mut l_order) = (vec![], vec![], vec![], vec![]);
    for (i, (e, payout_id)) in entries.into_iter().enumerate() {
        let ord = i as i64;
        e_payout.push(payout_id);
        e_ext.push(e.external_id().as_str());
        e_ord.push(ord);
        e_date.push(e.effective_date());
        e_memo.push(e.memo());
        e_refs.push(refs_json(e.source_refs())?);
        for (no, l) in e.lines().iter().enumerate() {
            l_ord.push(ord);
            l_no.push(no as i32);
            l_acc.push(l.account.key());
            l_cur.push(l.debit.currency.code());
            l_debit.push(l.debit.amount);
            l_credit.push(l.credit.amount);
            l_memo.push(l.memo.as_str());
            l_order.push(l.order_id.as_deref());
        }
    }
    // The counter is taken in the same statement as the insert (one round
    // trip), still the transaction's last booking write; `$3` is each
    // entry's place in the batch, and a line names its entry by that place
    // (`export_seq` is the counter's first value plus it): an integer join.
    let inserted = statement(
        "WITH c AS (
           INSERT INTO ledger_counters (merchant_id, next_seq) VALUES ($1, 1 + $16)
           ON CONFLICT (merchant_id) DO UPDATE SET next_seq = ledger_counters.next_seq + $16
           RETURNING next_seq - $16 AS first),
         e AS (
           INSERT INTO journal_entries (merchant_id, external_id, export_seq, effective_date, memo,
               payout_id, source_refs)
           SELECT $1, t.external_id, c.first + t.ord, t.effective_date, t.memo, t.payout_id,
               t.source_refs::jsonb
           FROM c, UNNEST($2::text[], $3::bigint[], $4::date[], $5::text[], $6::text[],
               $7::text[]) AS t(external_id, ord, effective_date, memo, source_refs, payout_id)
           ON CONFLICT (merchant_id, external_id) DO NOTHING
           RETURNING entry_id, export_seq)
         INSERT INTO journal_lines (merchant_id, entry_id, line_no, account, currency_code, debit,
             credit, memo, order_id)
         SELECT $1, e.entry_id, l.line_no, l.account, l.currency_code, l.debit, l.credit, l.memo,
             l.order_id
         FROM c CROSS JOIN UNNEST($8::bigint[], $9::int[], $10::text[], $11::text[],
             $12::numeric[], $13::numeric[], $14::text[], $15::text[])
           AS l(ord, line_no, account, currency_code, debit, credit, memo, order_id)
         JOIN e ON e.export_seq = c.first + l.ord",
    )
    .bind::<Text, _>(merchant)
    .bind::<Array<Text>, _>(e_ext)
    .bind::<Array<BigInt>, _>(e_ord)
    .bind::<Array<Date>, _>(e_date)
    .bind::<Array<Text>, _>(e_memo)
    .bind::<Array<Text>, _>(e_refs)
    .bind::<Array<Nullable<Text>>, _>(e_payout)
    .bind::<Array<BigInt>, _>(l_ord)
    .bind::<Array<Integer>, _>(l_no)
    .bind::<Array<Text>, _>(l_acc)
    .bind::<Array<Text>, _>(l_cur)
    .bind::<Array<Numeric>, _>(l_debit)
    .bind::<Array<Numeric>, _>(l_credit)
    .bind::<Array<Text>, _>(l_memo)
    .bind::<Array<Nullable<Text>>, _>(l_order)
    .bind::<BigInt, _>(n)
    .execute(&mut { conn })
    .await?;
    // An entry whose id was booked before is skipped by the insert: never
    // silently. Every path books an id once (payouts derived again key their
    // entries by round, money booked again gets a fresh id), so this is a
    // bug to stop at, not a retry to absorb.
    if inserted != lines {
        return Err(Error::Internal(format!(
            "{} of {lines} journal lines were written: an entry of this booking was booked before",
            inserted
        )));
    }
    Ok(())
}

/// An entry's source references as JSON text, written straight from the
/// refs (no `serde_json::Value` built per entry); cast to jsonb in SQL.
fn refs_json(refs: &[SourceRef]) -> Result<String> {
    #[derive(serde::Serialize)]
    struct Ref<'a> {
        kind: &'a str,
        id: &'a str,
    }
    let refs: Vec<Ref> = refs
        .iter()
        .map(|r| Ref {
            kind: r.kind.key(),
            id: &r.id,
        })
        .collect();
    serde_json::to_string(&refs).map_err(|e| Error::Internal(format!("source refs: {e}")))
}

#[derive(QueryableByName)]
struct EventRow {
    #[diesel(sql_type = Text)]
    order_id: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    ref_id: String,
    #[diesel(sql_type = Nullable<Text>)]
    target_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    tender: Option<String>,
    #[diesel(sql_type = Date)]
    event_date: NaiveDate,
    #[diesel(sql_type = Text)]
    currency_code: String,
    #[diesel(sql_type = Numeric)]
    amount: Decimal,
}

use super::stored_currency as currency;

/// Order by order (a key probe each): `order_id = ANY($2)` let the planner
/// scan the merchant's whole history and filter it. `OFFSET 0` keeps the
/// probe from being flattened into a join: a plan made on empty tables
/// turned it round, the merchant's events outside and the orders inside.
pub const LOAD_EVENTS: &str = "
    SELECT e.order_id, e.kind, e.ref_id, e.target_id, e.tender, e.event_date,
        e.currency_code, e.amount
    FROM (SELECT DISTINCT unnest($2::text[])) AS o(order_id)
    CROSS JOIN LATERAL (
      SELECT * FROM order_cash_events c
      WHERE c.merchant_id = $1 AND c.order_id = o.order_id
      OFFSET 0) e
    ORDER BY e.order_id, e.event_no";

/// Each order's cash events, in the order they were applied.
pub async fn load_events(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    orders: &[String],
) -> Result<BTreeMap<String, Vec<CashEvent>>> {
    let rows: Vec<EventRow> = statement(LOAD_EVENTS)
        .bind::<Text, _>(merchant)
        .bind::<Array<Text>, _>(orders)
        .load(conn)
        .await?;
    let mut out: BTreeMap<String, Vec<CashEvent>> = BTreeMap::new();
    for r in rows {
        let kind = EventKind::from_key(&r.kind)
            .ok_or_else(|| Error::corrupt("a cash event kind", r.kind.clone()))?;
        let tender = r
            .tender
            .as_deref()
            .and_then(Tender::from_key)
            .unwrap_or(Tender::Processor);
        out.entry(r.order_id).or_default().push(CashEvent {
            kind,
            ref_id: r.ref_id,
            target_id: r.target_id,
            tender,
            date: r.event_date,
            amount: Money::new(r.amount, currency(&r.currency_code)?),
        });
    }
    Ok(out)
}

/// Appends events after each order's last, the groups' in order. `stored`:
/// how many events each order had when the caller read them, under the
/// order's lock (events are numbered from 1 and never removed, so that count
/// is the last number). A wrong count cannot overwrite anything: the number
/// is in the primary key, and the insert would fail.
pub async fn insert_events(
    conn: &AsyncPgConnection,
    merchant: &str,
    groups: &[&[(String, CashEvent)]],
    stored: &BTreeMap<String, usize>,
) -> Result<()> {
    let events: Vec<&(String, CashEvent)> = groups.iter().flat_map(|g| g.iter()).collect();
    if events.is_empty() {
        return Ok(());
    }
    let mut next: BTreeMap<&str, i32> = BTreeMap::new();
    let mut numbers = Vec::with_capacity(events.len());
    for (order, _) in &events {
        let n = match next.get_mut(order.as_str()) {
            Some(n) => n,
            None => {
                let count = stored.get(order).ok_or_else(|| {
                    Error::Internal(format!("events of order {order} planned unread"))
                })?;
                let count = i32::try_from(*count)
                    .map_err(|_| Error::corrupt("an order's event count", count.to_string()))?;
                next.entry(order.as_str()).or_insert(count)
            }
        };
        *n = n
            .checked_add(1)
            .ok_or_else(|| Error::corrupt("an order's event count", n.to_string()))?;
        numbers.push(*n);
    }
    let col =
        |f: fn(&(String, CashEvent)) -> String| events.iter().map(|e| f(e)).collect::<Vec<_>>();
    statement(
        "INSERT INTO order_cash_events (merchant_id, order_id, event_no, kind, ref_id, target_id,
             tender, event_date, currency_code, amount)
         SELECT $1, t.*
         FROM UNNEST($2::text[], $10::int[], $3::text[], $4::text[], $5::text[], $6::text[],
             $7::date[], $8::text[], $9::numeric[])
           AS t(order_id, event_no, kind, ref_id, target_id, tender, event_date, currency_code,
             amount)",
    )
    .bind::<Text, _>(merchant)
    .bind::<Array<Text>, _>(col(|e| e.0.clone()))
    .bind::<Array<Text>, _>(col(|e| e.1.kind.key().to_string()))
    .bind::<Array<Text>, _>(col(|e| e.1.ref_id.clone()))
    .bind::<Array<Nullable<Text>>, _>(
        events
            .iter()
            .map(|e| e.1.target_id.clone())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Text>, _>(col(|e| e.1.tender.key().to_string()))
    .bind::<Array<Date>, _>(events.iter().map(|e| e.1.date).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(col(|e| e.1.amount.currency.code().to_string()))
    .bind::<Array<Numeric>, _>(events.iter().map(|e| e.1.amount.amount).collect::<Vec<_>>())
    .bind::<Array<Integer>, _>(numbers)
    .execute(&mut { conn })
    .await?;
    Ok(())
}

/// Books invoices into AR and adds what was applied to each, in one
/// statement: an invoice booked here is inserted with its applications'
/// sum (no second version of the row, as an `UPDATE` of it would make), one
/// booked earlier is updated. `applied` comes in groups, each with the payout
/// that applied it (or none); rows are stored in the groups' order.
pub async fn record_invoices(
    conn: &AsyncPgConnection,
    merchant: &str,
    booked: &[&[InvoiceBooking]],
    applied: &[(&[AppliedCash], Option<&str>)],
) -> Result<()> {
    let booked: Vec<&InvoiceBooking> = booked.iter().flat_map(|g| g.iter()).collect();
    let applied: Vec<(&AppliedCash, Option<&str>)> = applied
        .iter()
        .flat_map(|(g, payout)| g.iter().map(move |a| (a, *payout)))
        .collect();
    if booked.is_empty() && applied.is_empty() {
        return Ok(());
    }
    let b = |f: fn(&InvoiceBooking) -> String| booked.iter().map(|i| f(i)).collect::<Vec<_>>();
    let a = |f: fn(&AppliedCash) -> String| applied.iter().map(|x| f(x.0)).collect::<Vec<_>>();
    statement(
        // Reversals give back: applied is the net of every application row.
        // The `UPDATE` cannot see the rows `booked` inserts (one snapshot),
        // so it adds only to invoices booked before; it probes them by key
        // (`= ANY`), whatever the table's statistics say.
        "WITH a AS (
           SELECT * FROM UNNEST($7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
               $12::numeric[], $13::bool[], $14::text[], $15::text[]) WITH ORDINALITY
             AS t(order_id, payment_id, invoice_id, tender, currency_code, amount,
               from_unapplied, payout_id, external_id, ord)),
         s AS (SELECT invoice_id, sum(amount) AS amount FROM a GROUP BY invoice_id),
         booked AS (
           INSERT INTO invoices (merchant_id, invoice_id, order_id, invoice_date, currency_code,
               total, applied)
           SELECT $1, b.invoice_id, b.order_id, b.invoice_date, b.currency_code, b.total,
               coalesce(s.amount, 0)
           FROM UNNEST($2::text[], $3::text[], $4::date[], $5::text[], $6::numeric[])
               AS b(invoice_id, order_id, invoice_date, currency_code, total)
           LEFT JOIN s USING (invoice_id)
           ON CONFLICT (merchant_id, invoice_id) DO NOTHING
           RETURNING invoice_id),
         stored AS (
           INSERT INTO cash_applications (merchant_id, order_id, payment_id, invoice_id, tender,
               currency_code, amount, from_unapplied, payout_id, external_id)
           SELECT $1, order_id, payment_id, invoice_id, tender, currency_code, amount,
               from_unapplied, payout_id, external_id
           FROM a ORDER BY ord)
         UPDATE invoices i SET applied = i.applied + s.amount
         FROM s
         WHERE i.merchant_id = $1 AND i.invoice_id = s.invoice_id
           AND i.invoice_id = ANY(ARRAY(
             SELECT invoice_id FROM s EXCEPT SELECT invoice_id FROM booked))",
    )
    .bind::<Text, _>(merchant)
    .bind::<Array<Text>, _>(b(|i| i.invoice_id.clone()))
    .bind::<Array<Text>, _>(b(|i| i.order_id.clone()))
    .bind::<Array<Date>, _>(booked.iter().map(|i| i.date).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(b(|i| i.total.currency.code().to_string()))
    .bind::<Array<Numeric>, _>(booked.iter().map(|i| i.total.amount).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(a(|x| x.order_id.clone()))
    .bind::<Array<Text>, _>(a(|x| x.application.payment_id.clone()))
    .bind::<Array<Text>, _>(a(|x| x.application.invoice_id.clone()))
    .bind::<Array<Text>, _>(a(|x| x.application.tender.key().to_string()))
    .bind::<Array<Text>, _>(a(|x| x.application.amount.currency.code().to_string()))
    .bind::<Array<Numeric>, _>(
        applied
            .iter()
            .map(|x| x.0.application.amount.amount)
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Bool>, _>(
        applied
            .iter()
            .map(|x| x.0.application.from_unapplied)
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Nullable<Text>>, _>(applied.iter().map(|x| x.1).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(a(|x| x.external_id.clone()))
    .execute(&mut { conn })
    .await?;
    Ok(())
}

/// Each payout's fee shares, for several payouts in one statement.
pub async fn insert_fee_shares(
    conn: &AsyncPgConnection,
    merchant: &str,
    payouts: &[(&str, &[FeeShare])],
) -> Result<()> {
    let shares: Vec<(&str, &FeeShare)> = payouts
        .iter()
        .flat_map(|(payout, shares)| shares.iter().map(move |s| (*payout, s)))
        .collect();
    if shares.is_empty() {
        return Ok(());
    }
    statement(
        "INSERT INTO fee_shares (merchant_id, payout_id, order_id, currency_code, amount)
         SELECT $1, t.* FROM UNNEST($2::text[], $3::text[], $4::text[], $5::numeric[])
           AS t(payout_id, order_id, currency_code, amount)
         ON CONFLICT DO NOTHING",
    )
    .bind::<Text, _>(merchant)
    .bind::<Array<Text>, _>(shares.iter().map(|(p, _)| *p).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(
        shares
            .iter()
            .map(|(_, s)| s.order_id.clone().unwrap_or_default())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Text>, _>(
        shares
            .iter()
            .map(|(_, s)| s.amount.currency.code().to_string())
            .collect::<Vec<_>>(),
    )
    .bind::<Array<Numeric>, _>(
        shares
            .iter()
            .map(|(_, s)| s.amount.amount)
            .collect::<Vec<_>>(),
    )
    .execute(&mut { conn })
    .await?;
    Ok(())
}

/// A primary-key probe per id, whatever the statistics say (a payout asks
/// for hundreds at once).
pub const ORDERS_OF_REFS: &str = "
    SELECT x.ref_id, o.order_id FROM (SELECT DISTINCT unnest($2::text[])) AS x(ref_id)
    CROSS JOIN LATERAL (
      SELECT r.order_id FROM order_refs r
      WHERE r.merchant_id = $1 AND r.ref_id = x.ref_id
      ORDER BY r.order_id LIMIT 1) AS o";

/// The order each external id belongs to (the first, if several claim it).
pub async fn orders_of_refs(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    refs: &[String],
) -> Result<BTreeMap<String, String>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        ref_id: String,
        #[diesel(sql_type = Text)]
        order_id: String,
    }
    let rows: Vec<Row> = statement(ORDERS_OF_REFS)
        .bind::<Text, _>(merchant)
        .bind::<Array<Text>, _>(refs)
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(|r| (r.ref_id, r.order_id)).collect())
}

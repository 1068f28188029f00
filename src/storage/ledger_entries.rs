//! Journal entries and applications read back as domain values, for the
//! bookings that undo them (a payout that failed after it was paid).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Date, Jsonb, Numeric, Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use rust_decimal::Decimal;

use super::statement::{Bind, statement};
use crate::domain::cash_application::order::Application;
use crate::domain::cash_application::plan::AppliedCash;
use crate::domain::ledger::accounts::AccountRole;
use crate::domain::ledger::journal::{EntryDraft, ExternalId, SourceKind};
use crate::domain::ledger::posting::Tender;
use crate::domain::ledger::{JournalLine, LedgerEntry, SourceRef};
use crate::domain::money::Money;
use crate::error::{Error, Result};

#[derive(QueryableByName)]
struct LineRow {
    #[diesel(sql_type = BigInt)]
    entry_id: i64,
    #[diesel(sql_type = Text)]
    external_id: String,
    #[diesel(sql_type = Date)]
    effective_date: NaiveDate,
    #[diesel(sql_type = Text)]
    entry_memo: String,
    #[diesel(sql_type = Jsonb)]
    source_refs: serde_json::Value,
    #[diesel(sql_type = Text)]
    account: String,
    #[diesel(sql_type = Text)]
    currency_code: String,
    #[diesel(sql_type = Numeric)]
    debit: Decimal,
    #[diesel(sql_type = Numeric)]
    credit: Decimal,
    #[diesel(sql_type = Text)]
    memo: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    order_id: Option<String>,
}

use super::stored_currency as currency;

fn source_refs(v: &serde_json::Value) -> Vec<SourceRef> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let kind = SourceKind::from_key(r.get("kind")?.as_str()?)?;
            Some(SourceRef::new(kind, r.get("id")?.as_str()?))
        })
        .collect()
}

/// The entries booked for a payout, in booking order, each checked again as
/// it is rebuilt (a stored entry that no longer balances is corrupt data).
pub async fn payout_entries(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    payout_id: &str,
) -> Result<Vec<LedgerEntry>> {
    let rows: Vec<LineRow> = statement(
        "SELECT e.entry_id, e.external_id, e.effective_date, e.memo AS entry_memo, e.source_refs,
             l.account, l.currency_code, l.debit, l.credit, l.memo, l.order_id
         FROM journal_entries e JOIN journal_lines l USING (merchant_id, entry_id)
         WHERE e.merchant_id = $1 AND e.payout_id = $2
         ORDER BY e.export_seq, l.line_no",
    )
    .bind::<Text, _>(merchant)
    .bind::<Text, _>(payout_id)
    .load(conn)
    .await?;
    let mut drafts: BTreeMap<i64, EntryDraft> = BTreeMap::new();
    let mut order = Vec::new();
    for r in rows {
        let c = currency(&r.currency_code)?;
        let account = AccountRole::from_key(&r.account)
            .ok_or_else(|| Error::corrupt("a stored account", r.account.clone()))?;
        let draft = drafts.entry(r.entry_id).or_insert_with(|| {
            order.push(r.entry_id);
            EntryDraft {
                external_id: ExternalId::stored(r.external_id.clone()),
                merchant_id: merchant.to_string(),
                effective_date: r.effective_date,
                memo: r.entry_memo.clone(),
                source_refs: source_refs(&r.source_refs),
                lines: vec![],
            }
        });
        draft.lines.push(JournalLine {
            account,
            debit: Money::new(r.debit, c),
            credit: Money::new(r.credit, c),
            memo: r.memo,
            order_id: r.order_id,
        });
    }
    order
        .into_iter()
        .filter_map(|id| drafts.remove(&id))
        .map(|d| {
            let id = d.external_id.as_str().to_string();
            LedgerEntry::new(d).map_err(|e| Error::corrupt(format!("journal entry {id}"), e))
        })
        .collect()
}

#[derive(QueryableByName)]
struct ApplicationRow {
    #[diesel(sql_type = Text)]
    order_id: String,
    #[diesel(sql_type = Text)]
    payment_id: String,
    #[diesel(sql_type = Text)]
    invoice_id: String,
    #[diesel(sql_type = Text)]
    tender: String,
    #[diesel(sql_type = Text)]
    currency_code: String,
    #[diesel(sql_type = Numeric)]
    amount: Decimal,
    #[diesel(sql_type = Bool)]
    from_unapplied: bool,
    #[diesel(sql_type = Text)]
    external_id: String,
}

/// What a payout applied to invoices (net of its own reversals' rows).
pub async fn payout_applications(
    conn: &mut AsyncPgConnection,
    merchant: &str,
    payout_id: &str,
) -> Result<Vec<AppliedCash>> {
    let rows: Vec<ApplicationRow> = statement(
        // Fenced from the sort, as `ledger_reads::APPLICATIONS_OF_PAYOUT`.
        "SELECT order_id, payment_id, invoice_id, tender, currency_code, amount, from_unapplied,
             external_id
         FROM (SELECT * FROM cash_applications WHERE merchant_id = $1 AND payout_id = $2
               OFFSET 0) a
         ORDER BY application_id",
    )
    .bind::<Text, _>(merchant)
    .bind::<Text, _>(payout_id)
    .load(conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(AppliedCash {
                order_id: r.order_id,
                external_id: r.external_id,
                application: Application {
                    payment_id: r.payment_id,
                    tender: Tender::from_key(&r.tender)
                        .ok_or_else(|| Error::corrupt("a stored tender", r.tender.clone()))?,
                    invoice_id: r.invoice_id,
                    amount: Money::new(r.amount, currency(&r.currency_code)?),
                    from_unapplied: r.from_unapplied,
                },
            })
        })
        .collect()
}

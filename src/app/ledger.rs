//! What LedgerService reads: payouts with their bridge, invoices with what
//! is open, journal entries in export order, the trial balance.

use crate::domain::cash_application::payout_state::PayoutState;
use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};

use super::App;
use crate::domain::currency::Currency;
use crate::domain::ledger::{
    AccountRole, ChartOfAccounts, EntryDraft, ExternalId, JournalLine, LedgerEntry,
    NetsuiteOptions, netsuite_csv,
};
use crate::domain::money::Money;
use crate::error::{Error, Result};
use crate::storage::ledger_reads::{
    self, ApplicationView, ApplicationsOf, BalanceView, EntryFilter, EntryLineView, InvoiceView,
    PayoutView,
};
use crate::storage::{Page, page, payout_facts};

/// A page of open invoices, by (invoice date, id).
pub type InvoicePage = Page<InvoiceView, (NaiveDate, String)>;

/// One category of a payout's bridge: gross, fees, net.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeLine {
    pub category: String,
    pub gross: Money,
    pub fees: Money,
    pub net: Money,
}

pub struct PayoutDetail {
    pub payout: PayoutView,
    pub bridge: Vec<BridgeLine>,
    pub applications: Vec<ApplicationView>,
    pub entries: Vec<Vec<EntryLineView>>,
    /// Each booking of the payout, oldest first.
    pub history: Vec<payout_facts::BookingRow>,
}

pub struct InvoiceDetail {
    pub invoice: InvoiceView,
    pub applications: Vec<ApplicationView>,
}

/// Ageing buckets of open receivables, by days since the invoice date.
pub fn ageing_bucket(days: i64) -> &'static str {
    match days {
        ..=0 => "current",
        1..=30 => "1-30",
        31..=60 => "31-60",
        61..=90 => "61-90",
        _ => "over-90",
    }
}

/// Groups entry rows (one per line, in export order) into entries.
pub fn group_entries(rows: Vec<EntryLineView>) -> Vec<Vec<EntryLineView>> {
    let mut out: Vec<Vec<EntryLineView>> = vec![];
    for r in rows {
        match out.last_mut() {
            Some(last) if last[0].entry_id == r.entry_id => last.push(r),
            _ => out.push(vec![r]),
        }
    }
    out
}

impl App {
    pub async fn get_payout(&self, merchant: &str, payout_id: &str) -> Result<PayoutDetail> {
        let mut conn = self.store.conn().await?;
        let payout = ledger_reads::payout(&mut conn, merchant, payout_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("merchants/{merchant}/payouts/{payout_id}")))?;
        let txns = payout_facts::payout_records(&mut conn, merchant, payout_id)
            .await?
            .txns;
        let history = payout_facts::payout_bookings(&mut conn, merchant, payout_id).await?;
        let mut bridge: BTreeMap<String, BridgeLine> = BTreeMap::new();
        for r in &txns {
            let Some((t, _, _)) = super::cash::balance_txn(r) else {
                continue;
            };
            let zero = Money::zero(t.amount.currency);
            let line = bridge.entry(t.category.clone()).or_insert(BridgeLine {
                category: t.category.clone(),
                gross: zero,
                fees: zero,
                net: zero,
            });
            let overflow = || Error::corrupt("a payout's bridge", "amounts overflow");
            line.gross = line.gross.checked_add(&t.amount).ok_or_else(overflow)?;
            line.fees = line.fees.checked_add(&t.fee).ok_or_else(overflow)?;
            line.net = line.net.checked_add(&t.net).ok_or_else(overflow)?;
        }
        let applications =
            ledger_reads::applications(&mut conn, merchant, ApplicationsOf::Payout(payout_id))
                .await?;
        let filter = EntryFilter {
            payout_id: Some(payout_id.to_string()),
            ..EntryFilter::default()
        };
        let rows = ledger_reads::entries(&mut conn, merchant, &filter, 0, 1000).await?;
        Ok(PayoutDetail {
            payout,
            bridge: bridge.into_values().collect(),
            applications,
            entries: group_entries(rows),
            history,
        })
    }

    /// A page of payouts by id, after `after`.
    pub async fn list_payouts(
        &self,
        merchant: &str,
        state: Option<PayoutState>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<PayoutView, String>> {
        let mut conn = self.store.conn().await?;
        let state = state.map(PayoutState::key);
        let rows = ledger_reads::payouts(
            &mut conn,
            merchant,
            state,
            after.unwrap_or(""),
            limit as i64 + 1,
        )
        .await?;
        let (items, next) = page(rows, limit, |p| p.payout_id.clone());
        Ok(Page { items, next })
    }

    pub async fn get_invoice(&self, merchant: &str, invoice_id: &str) -> Result<InvoiceDetail> {
        let mut conn = self.store.conn().await?;
        let invoice = ledger_reads::invoice(&mut conn, merchant, invoice_id)
            .await?
            .ok_or_else(|| {
                Error::not_found(format!("merchants/{merchant}/invoices/{invoice_id}"))
            })?;
        let applications =
            ledger_reads::applications(&mut conn, merchant, ApplicationsOf::Invoice(invoice_id))
                .await?;
        Ok(InvoiceDetail {
            invoice,
            applications,
        })
    }

    /// A page of open invoices, and the open total per (bucket, currency).
    pub async fn list_open_invoices(
        &self,
        merchant: &str,
        after: Option<(NaiveDate, String)>,
        limit: usize,
        today: NaiveDate,
    ) -> Result<(InvoicePage, Vec<(&'static str, Money)>)> {
        let mut conn = self.store.conn().await?;
        let rows =
            ledger_reads::open_invoices(&mut conn, merchant, after, limit as i64 + 1).await?;
        let (items, next) = page(rows, limit, |i| (i.invoice_date, i.invoice_id.clone()));
        let page = Page { items, next };
        let mut totals: BTreeMap<(&'static str, String), Money> = BTreeMap::new();
        for i in ledger_reads::open_amounts(&mut conn, merchant).await? {
            let currency = Currency::from_code(&i.currency_code)
                .ok_or_else(|| Error::corrupt("an invoice currency", i.currency_code.clone()))?;
            let open = i
                .total
                .checked_sub(i.applied)
                .ok_or_else(|| Error::corrupt("an invoice", "amounts overflow"))?;
            let bucket = ageing_bucket((today - i.invoice_date).num_days());
            let slot = totals
                .entry((bucket, i.currency_code.clone()))
                .or_insert(Money::zero(currency));
            *slot = slot
                .checked_add(&Money::new(open, currency))
                .ok_or_else(|| Error::corrupt("open receivables", "amounts overflow"))?;
        }
        Ok((page, totals.into_iter().map(|((b, _), m)| (b, m)).collect()))
    }

    /// A page of entries after the export sequence `after_seq`, in export
    /// order, each with its lines; the next page starts after the last.
    pub async fn list_journal_entries(
        &self,
        merchant: &str,
        filter: &EntryFilter,
        after_seq: i64,
        limit: usize,
    ) -> Result<Page<Vec<EntryLineView>, i64>> {
        let mut conn = self.store.conn().await?;
        let rows =
            ledger_reads::entries(&mut conn, merchant, filter, after_seq, limit as i64 + 1).await?;
        let (items, next) = page(group_entries(rows), limit, |e| e[0].export_seq);
        Ok(Page { items, next })
    }

    pub async fn trial_balance(
        &self,
        merchant: &str,
        as_of: Option<DateTime<Utc>>,
    ) -> Result<Vec<BalanceView>> {
        let mut conn = self.store.conn().await?;
        ledger_reads::trial_balance(&mut conn, merchant, as_of).await
    }

    /// The merchant's jobs that are work now (`jobs::pending`): while not
    /// zero, what the worker books may still change.
    pub async fn pending_jobs(&self, merchant: &str) -> Result<i64> {
        let mut conn = self.store.conn().await?;
        crate::storage::jobs::pending(&mut conn, merchant).await
    }
}

/// Rebuilds stored entries (one row per line) as domain entries, checked
/// again on the way: a stored entry that no longer balances is corrupt data.
pub fn rebuild(merchant: &str, rows: Vec<Vec<EntryLineView>>) -> Result<Vec<LedgerEntry>> {
    rows.into_iter()
        .map(|lines| {
            let head = &lines[0];
            let mut out = Vec::with_capacity(lines.len());
            for l in &lines {
                let account = AccountRole::from_key(&l.account)
                    .ok_or_else(|| Error::corrupt("a journal line's account", l.account.clone()))?;
                let currency = Currency::from_code(&l.currency_code).ok_or_else(|| {
                    Error::corrupt("a journal line's currency", l.currency_code.clone())
                })?;
                let line = if l.debit.is_zero() {
                    JournalLine::credit(account, Money::new(l.credit, currency))
                } else {
                    JournalLine::debit(account, Money::new(l.debit, currency))
                };
                out.push(line.memo(l.memo.clone()).order(l.order_id.as_deref()));
            }
            LedgerEntry::new(EntryDraft {
                external_id: ExternalId::stored(head.external_id.clone()),
                merchant_id: merchant.to_string(),
                effective_date: head.effective_date,
                memo: head.entry_memo.clone(),
                source_refs: vec![],
                lines: out,
            })
            .map_err(|e| Error::corrupt(format!("journal entry {}", head.external_id), e))
        })
        .collect()
}

impl App {
    /// Entries after the export cursor `after_seq` as NetSuite journal-import
    /// CSV, and the cursor to continue from.
    pub async fn export_netsuite(
        &self,
        merchant: &str,
        after_seq: i64,
        limit: i64,
        chart: &ChartOfAccounts,
        options: &NetsuiteOptions,
    ) -> Result<(String, i64)> {
        let mut conn = self.store.conn().await?;
        let filter = EntryFilter::default();
        let rows = group_entries(
            ledger_reads::entries(&mut conn, merchant, &filter, after_seq, limit).await?,
        );
        let last = rows.last().map_or(after_seq, |e| e[0].export_seq);
        let entries = rebuild(merchant, rows)?;
        let csv = netsuite_csv(&entries, chart, options)
            .map_err(|e| Error::corrupt("journal entries to export", e.to_string()))?;
        Ok((csv, last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ageing_buckets_have_their_edges() {
        assert_eq!(ageing_bucket(-3), "current");
        assert_eq!(ageing_bucket(0), "current");
        assert_eq!(ageing_bucket(1), "1-30");
        assert_eq!(ageing_bucket(30), "1-30");
        assert_eq!(ageing_bucket(31), "31-60");
        assert_eq!(ageing_bucket(90), "61-90");
        assert_eq!(ageing_bucket(91), "over-90");
    }
}

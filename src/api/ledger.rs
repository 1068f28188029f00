//! LedgerService: validate, ask the ledger queries, render.

use chrono::{NaiveDate, Utc};
use rust_decimal::Decimal;
use tonic::{Request, Response, Status};

use crate::api::auth;
use crate::api::convert::{money, timestamp};
use crate::api::names::{invoice_name, parse_child, parse_parent, payout_name, transaction_name};
use crate::api::pagination::{ListScope, time_range};
use crate::api::validate::ID_MAX;
use crate::api::validate::fields;
use crate::api::validate::text::shown;
use crate::app::App;
use crate::app::ledger::ageing_bucket;
use crate::domain::cash_application::payout_state::{BookingAction, PayoutState};
use crate::domain::currency::Currency;
use crate::domain::ledger::AccountRole;
use crate::domain::ledger::posting::Tender;
use crate::domain::money::Money;
use crate::error::{Error, Result};
use crate::proto::tally::v1 as pb;
use crate::proto::tally::v1::ledger_service_server::LedgerService;
use crate::storage::ledger_reads::{
    ApplicationView, EntryFilter, EntryLineView, InvoiceView, PayoutView,
};
use crate::storage::payout_facts::BookingRow;

#[derive(Clone)]
pub struct LedgerApi {
    app: App,
}

impl LedgerApi {
    pub fn new(app: App) -> Self {
        LedgerApi { app }
    }
}

fn stored_money(amount: Decimal, code: &str) -> Result<Money> {
    let c = Currency::from_code(code)
        .ok_or_else(|| Error::corrupt("a stored currency", code.to_string()))?;
    Ok(Money::new(amount, c))
}

/// The one map between the domain's payout states and the API's.
fn state_key(s: pb::PayoutState) -> Option<PayoutState> {
    match s {
        pb::PayoutState::Unspecified => None,
        pb::PayoutState::Waiting => Some(PayoutState::Waiting),
        pb::PayoutState::Applied => Some(PayoutState::Applied),
        pb::PayoutState::Parked => Some(PayoutState::Parked),
        // A payout that failed after it was paid was called reversed.
        pb::PayoutState::Reversed | pb::PayoutState::Failed => Some(PayoutState::Failed),
    }
}

fn state_of(key: &str) -> Result<pb::PayoutState> {
    let state = PayoutState::from_key(key)
        .ok_or_else(|| Error::corrupt("a stored payout state", key.to_string()))?;
    Ok(match state {
        PayoutState::Waiting => pb::PayoutState::Waiting,
        PayoutState::Applied => pb::PayoutState::Applied,
        PayoutState::Parked => pb::PayoutState::Parked,
        PayoutState::Failed => pb::PayoutState::Failed,
    })
}

fn booking(b: &BookingRow) -> Result<pb::PayoutBooking> {
    let action = match BookingAction::from_key(&b.action) {
        Some(BookingAction::Applied) => pb::PayoutBookingAction::Applied,
        Some(BookingAction::Reversed) => pb::PayoutBookingAction::Reversed,
        Some(BookingAction::Reapplied) => pb::PayoutBookingAction::Reapplied,
        None => return Err(Error::corrupt("a payout booking", b.action.clone())),
    };
    let update_time = b
        .source_update_time
        .as_deref()
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|t| timestamp(t.with_timezone(&chrono::Utc)))
                .map_err(|e| Error::corrupt("a record's source_update_time", e))
        })
        .transpose()?;
    Ok(pb::PayoutBooking {
        action: action as i32,
        cause_source_system: b.source_system.clone(),
        cause_source_id: b.source_id.clone(),
        cause_source_update_time: update_time,
        cause_receive_time: Some(timestamp(b.receive_time)),
        entries: b.entries,
        round: b.round,
        book_time: Some(timestamp(b.booked_at)),
    })
}

fn payout(merchant: &str, p: &PayoutView) -> Result<pb::LedgerPayout> {
    let m = |a| stored_money(a, &p.currency_code).map(|m| Some(money(&m)));
    Ok(pb::LedgerPayout {
        name: payout_name(merchant, &p.payout_id),
        state: state_of(&p.state)? as i32,
        state_reason: p.reason.clone(),
        amount: m(p.amount)?,
        gross: m(p.gross)?,
        fees: m(p.fees)?,
        net: m(p.net)?,
        missing: m(p.missing)?,
        clearing_residual: m(p.residual)?,
        ..Default::default()
    })
}

/// The enums of the ledger's closed sets, each mapped here once from the
/// string storage and the ledger queries use (the string fields they
/// replace are still filled with it).
///
/// An ageing bucket as `ageing_bucket` spells it.
pub fn ageing_enum(bucket: &str) -> pb::AgeingBucket {
    match bucket {
        "current" => pb::AgeingBucket::Current,
        "1-30" => pb::AgeingBucket::Days1To30,
        "31-60" => pb::AgeingBucket::Days31To60,
        "61-90" => pb::AgeingBucket::Days61To90,
        "over-90" => pb::AgeingBucket::Over90,
        _ => pb::AgeingBucket::Unspecified,
    }
}

/// A processor reporting category: the processor may add categories, so
/// one not known here is OTHER (its string stays in `category`), never an
/// error.
pub fn bridge_category(category: &str) -> pb::BridgeCategory {
    match category {
        "charge" => pb::BridgeCategory::Charge,
        "payment" => pb::BridgeCategory::Payment,
        "refund" => pb::BridgeCategory::Refund,
        "partial_capture_reversal" => pb::BridgeCategory::PartialCaptureReversal,
        "dispute" => pb::BridgeCategory::Dispute,
        "dispute_reversal" => pb::BridgeCategory::DisputeReversal,
        "fee" => pb::BridgeCategory::Fee,
        "tax" => pb::BridgeCategory::Tax,
        "other_adjustment" => pb::BridgeCategory::OtherAdjustment,
        "payout_reversal" => pb::BridgeCategory::PayoutReversal,
        _ => pb::BridgeCategory::Other,
    }
}

/// A cash application's tender as storage keys it.
pub fn application_tender(key: &str) -> pb::ApplicationTender {
    match Tender::from_key(key) {
        Some(Tender::Processor) => pb::ApplicationTender::Processor,
        Some(Tender::GiftCard) => pb::ApplicationTender::GiftCard,
        Some(Tender::StoreCredit) => pb::ApplicationTender::StoreCredit,
        None => pb::ApplicationTender::Unspecified,
    }
}

/// The name of the transaction of an order id, empty for none.
fn order_name(merchant: &str, order_id: &str) -> String {
    if order_id.is_empty() {
        String::new()
    } else {
        transaction_name(merchant, order_id)
    }
}

fn application(merchant: &str, a: &ApplicationView) -> Result<pb::CashApplication> {
    Ok(pb::CashApplication {
        order_id: a.order_id.clone(),
        payment_id: a.payment_id.clone(),
        invoice_id: a.invoice_id.clone(),
        amount: Some(money(&stored_money(a.amount, &a.currency_code)?)),
        from_unapplied: a.from_unapplied,
        #[allow(deprecated)]
        tender: a.tender.clone(),
        tender_type: application_tender(&a.tender) as i32,
        order: order_name(merchant, &a.order_id),
        invoice: invoice_name(merchant, &a.invoice_id),
    })
}

fn entry(merchant: &str, lines: &[EntryLineView]) -> Result<pb::LedgerEntry> {
    let head = &lines[0];
    Ok(pb::LedgerEntry {
        external_id: head.external_id.clone(),
        export_sequence: head.export_seq,
        effective_date: head.effective_date.to_string(),
        memo: head.entry_memo.clone(),
        payout_id: head.payout_id.clone().unwrap_or_default(),
        payout: head
            .payout_id
            .as_deref()
            .map(|p| payout_name(merchant, p))
            .unwrap_or_default(),
        create_time: Some(timestamp(head.booked_at)),
        lines: lines
            .iter()
            .map(|l| {
                Ok(pb::LedgerLine {
                    account: l.account.clone(),
                    debit: Some(money(&stored_money(l.debit, &l.currency_code)?)),
                    credit: Some(money(&stored_money(l.credit, &l.currency_code)?)),
                    memo: l.memo.clone(),
                    order_id: l.order_id.clone().unwrap_or_default(),
                    order: order_name(merchant, l.order_id.as_deref().unwrap_or_default()),
                })
            })
            .collect::<Result<_>>()?,
    })
}

fn invoice(merchant: &str, i: &InvoiceView, today: NaiveDate) -> Result<pb::LedgerInvoice> {
    let total = stored_money(i.total, &i.currency_code)?;
    let applied = stored_money(i.applied, &i.currency_code)?;
    let open = total
        .checked_sub(&applied)
        .ok_or_else(|| Error::corrupt("an invoice", "amounts overflow"))?;
    let age = (today - i.invoice_date).num_days();
    Ok(pb::LedgerInvoice {
        name: invoice_name(merchant, &i.invoice_id),
        order_id: i.order_id.clone(),
        order: order_name(merchant, &i.order_id),
        invoice_date: i.invoice_date.to_string(),
        total: Some(money(&total)),
        amount_applied: Some(money(&applied)),
        amount_open: Some(money(&open)),
        age_days: i32::try_from(age.max(0)).unwrap_or(i32::MAX),
        #[allow(deprecated)]
        ageing_bucket: ageing_bucket(age).to_string(),
        ageing: ageing_enum(ageing_bucket(age)) as i32,
        applications: vec![],
    })
}

#[tonic::async_trait]
impl LedgerService for LedgerApi {
    async fn get_payout(
        &self,
        request: Request<pb::GetPayoutRequest>,
    ) -> Result<Response<pb::GetPayoutResponse>, Status> {
        let (merchant, id) = parse_child("name", &request.get_ref().name, "payouts")?;
        let merchant = auth::tenant(&request, merchant)?;
        let d = self.app.get_payout(&merchant, &id).await?;
        let mut p = payout(&merchant, &d.payout)?;
        p.bridge = d
            .bridge
            .iter()
            .map(|b| pb::BridgeLine {
                category: b.category.clone(),
                reporting_category: bridge_category(&b.category) as i32,
                gross: Some(money(&b.gross)),
                fees: Some(money(&b.fees)),
                net: Some(money(&b.net)),
            })
            .collect();
        p.applications = d
            .applications
            .iter()
            .map(|a| application(&merchant, a))
            .collect::<Result<_>>()?;
        p.journal_entries = d
            .entries
            .iter()
            .map(|e| entry(&merchant, e))
            .collect::<Result<_>>()?;
        p.history = d.history.iter().map(booking).collect::<Result<_>>()?;
        Ok(Response::new(pb::GetPayoutResponse { payout: Some(p) }))
    }

    async fn list_payouts(
        &self,
        request: Request<pb::ListPayoutsRequest>,
    ) -> Result<Response<pb::ListPayoutsResponse>, Status> {
        let scope = ListScope::of(&request)?;
        let req = request.into_inner();
        let state = pb::PayoutState::try_from(req.state)
            .map_err(|_| Error::invalid("state", "not a PayoutState"))?;
        let filter = state_key(state);
        let page_start = scope.resume::<String>(&filter)?;
        let page = self
            .app
            .list_payouts(
                &scope.merchant,
                filter,
                page_start.after.as_deref(),
                scope.limit,
            )
            .await?;
        Ok(Response::new(pb::ListPayoutsResponse {
            payouts: page
                .items
                .iter()
                .map(|p| payout(&scope.merchant, p))
                .collect::<Result<_>>()?,
            next_page_token: page_start.next_token(page.next),
        }))
    }

    async fn get_invoice(
        &self,
        request: Request<pb::GetInvoiceRequest>,
    ) -> Result<Response<pb::GetInvoiceResponse>, Status> {
        let (merchant, id) = parse_child("name", &request.get_ref().name, "invoices")?;
        let merchant = auth::tenant(&request, merchant)?;
        let d = self.app.get_invoice(&merchant, &id).await?;
        let mut i = invoice(&merchant, &d.invoice, Utc::now().date_naive())?;
        i.applications = d
            .applications
            .iter()
            .map(|a| application(&merchant, a))
            .collect::<Result<_>>()?;
        Ok(Response::new(pb::GetInvoiceResponse { invoice: Some(i) }))
    }

    async fn list_open_invoices(
        &self,
        request: Request<pb::ListOpenInvoicesRequest>,
    ) -> Result<Response<pb::ListOpenInvoicesResponse>, Status> {
        let scope = ListScope::of(&request)?;
        // No filter: the token is bound to the list and the merchant.
        let page_start = scope.resume(&())?;
        let today = Utc::now().date_naive();
        let (page, totals) = self
            .app
            .list_open_invoices(
                &scope.merchant,
                page_start.after.clone(),
                scope.limit,
                today,
            )
            .await?;
        Ok(Response::new(pb::ListOpenInvoicesResponse {
            invoices: page
                .items
                .iter()
                .map(|i| invoice(&scope.merchant, i, today))
                .collect::<Result<_>>()?,
            next_page_token: page_start.next_token(page.next),
            ageing: totals
                .iter()
                .map(|(b, m)| pb::AgeingTotal {
                    #[allow(deprecated)]
                    bucket: b.to_string(),
                    ageing: ageing_enum(b) as i32,
                    amount_open: Some(money(m)),
                })
                .collect(),
        }))
    }

    async fn list_journal_entries(
        &self,
        request: Request<pb::ListJournalEntriesRequest>,
    ) -> Result<Response<pb::ListJournalEntriesResponse>, Status> {
        let scope = ListScope::of(&request)?;
        let req = request.into_inner();
        fields::id("payout_id", &req.payout_id, ID_MAX)?;
        fields::id("order_id", &req.order_id, ID_MAX)?;
        fields::id("account", &req.account, 64)?;
        if !req.account.is_empty() && AccountRole::from_key(&req.account).is_none() {
            return Err(Error::invalid(
                "account",
                format!("{} is not an account role", shown(&req.account)),
            )
            .into());
        }
        if req.after_export_sequence < 0 {
            return Err(Error::invalid("after_export_sequence", "must not be negative").into());
        }
        let nonempty = |s: String| (!s.is_empty()).then_some(s);
        let filter = EntryFilter {
            payout_id: nonempty(req.payout_id),
            order_id: nonempty(req.order_id),
            account: nonempty(req.account),
            start: scope.window.start,
            end: scope.window.end,
        };
        // The poll cursor is a filter like the others: a page token is bound
        // to it, and resumes after an entry past it.
        let page_start = scope.resume::<i64>(&(&filter, req.after_export_sequence))?;
        let after = page_start.after.unwrap_or(req.after_export_sequence);
        let page = self
            .app
            .list_journal_entries(&scope.merchant, &filter, after, scope.limit)
            .await?;
        Ok(Response::new(pb::ListJournalEntriesResponse {
            journal_entries: page
                .items
                .iter()
                .map(|e| entry(&scope.merchant, e))
                .collect::<Result<_>>()?,
            next_page_token: page_start.next_token(page.next),
        }))
    }

    async fn get_trial_balance(
        &self,
        request: Request<pb::GetTrialBalanceRequest>,
    ) -> Result<Response<pb::GetTrialBalanceResponse>, Status> {
        let merchant = auth::tenant(&request, parse_parent("parent", &request.get_ref().parent)?)?;
        let req = request.into_inner();
        let (as_of, _) = time_range(req.as_of.as_ref(), None)
            .map_err(|_| Error::invalid("as_of", "not a valid timestamp"))?;
        let rows = self.app.trial_balance(&merchant, as_of).await?;
        let pending_jobs = self.app.pending_jobs(&merchant).await?;
        let chart = self.app.chart();
        Ok(Response::new(pb::GetTrialBalanceResponse {
            balances: rows
                .iter()
                .map(|b| {
                    Ok(pb::AccountBalance {
                        account: b.account.clone(),
                        account_code: AccountRole::from_key(&b.account)
                            .map(|r| chart.account(r).code.clone())
                            .unwrap_or_default(),
                        balance: Some(money(&stored_money(b.balance, &b.currency_code)?)),
                    })
                })
                .collect::<Result<_>>()?,
            pending_jobs,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ageing_bucket_has_its_enum() {
        for (days, want) in [
            (-3, pb::AgeingBucket::Current),
            (0, pb::AgeingBucket::Current),
            (1, pb::AgeingBucket::Days1To30),
            (30, pb::AgeingBucket::Days1To30),
            (31, pb::AgeingBucket::Days31To60),
            (60, pb::AgeingBucket::Days31To60),
            (61, pb::AgeingBucket::Days61To90),
            (90, pb::AgeingBucket::Days61To90),
            (91, pb::AgeingBucket::Over90),
        ] {
            assert_eq!(ageing_enum(ageing_bucket(days)), want, "{days}");
        }
        assert_eq!(ageing_enum("later"), pb::AgeingBucket::Unspecified);
    }

    #[test]
    fn a_category_not_known_is_other_never_an_error() {
        assert_eq!(bridge_category("charge"), pb::BridgeCategory::Charge);
        assert_eq!(bridge_category("refund"), pb::BridgeCategory::Refund);
        assert_eq!(
            bridge_category("dispute_reversal"),
            pb::BridgeCategory::DisputeReversal
        );
        assert_eq!(
            bridge_category("payout_reversal"),
            pb::BridgeCategory::PayoutReversal
        );
        for unknown in ["climate_order_purchase", "", "Charge", "charge "] {
            assert_eq!(
                bridge_category(unknown),
                pb::BridgeCategory::Other,
                "{unknown:?}"
            );
        }
    }

    #[test]
    fn every_tender_key_has_its_enum() {
        for (t, want) in [
            (Tender::Processor, pb::ApplicationTender::Processor),
            (Tender::GiftCard, pb::ApplicationTender::GiftCard),
            (Tender::StoreCredit, pb::ApplicationTender::StoreCredit),
        ] {
            assert_eq!(application_tender(t.key()), want);
        }
        assert_eq!(
            application_tender("cash"),
            pb::ApplicationTender::Unspecified
        );
    }
}

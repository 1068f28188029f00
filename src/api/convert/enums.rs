//! Enum conversions, each once: domain -> proto with `From`, proto -> domain
//! filters with `TryFrom` (UNSPECIFIED is "no filter", so `Option`).

use crate::domain::matching::ExceptionType;
use crate::domain::record::{Handoff, RecordKind, Stage};
use crate::domain::transaction::ReconciliationState;
use crate::error::{Error, Result};
use crate::proto::tally::v1 as pb;
use crate::storage::exceptions::ExceptionState;

impl From<ReconciliationState> for pb::ReconciliationState {
    fn from(s: ReconciliationState) -> Self {
        match s {
            ReconciliationState::Pending => pb::ReconciliationState::Pending,
            ReconciliationState::Matched => pb::ReconciliationState::Matched,
            ReconciliationState::Exception => pb::ReconciliationState::Exception,
        }
    }
}

impl From<RecordKind> for pb::RecordKind {
    fn from(k: RecordKind) -> Self {
        match k {
            RecordKind::StorefrontOrder => pb::RecordKind::StorefrontOrder,
            RecordKind::StorefrontTransaction => pb::RecordKind::StorefrontTransaction,
            RecordKind::Fulfillment => pb::RecordKind::Fulfillment,
            RecordKind::Invoice => pb::RecordKind::Invoice,
            RecordKind::CreditMemo => pb::RecordKind::CreditMemo,
            RecordKind::JournalEntry => pb::RecordKind::JournalEntry,
            RecordKind::ProcessorPayment => pb::RecordKind::ProcessorPayment,
            RecordKind::BalanceTransaction => pb::RecordKind::BalanceTransaction,
            RecordKind::Payout => pb::RecordKind::Payout,
            RecordKind::BankDeposit => pb::RecordKind::BankDeposit,
        }
    }
}

impl From<Stage> for pb::Stage {
    fn from(s: Stage) -> Self {
        match s {
            Stage::OrderCapture => pb::Stage::OrderCapture,
            Stage::Fulfillment => pb::Stage::Fulfillment,
            Stage::Invoice => pb::Stage::Invoice,
            Stage::PaymentCapture => pb::Stage::PaymentCapture,
            Stage::CashApplication => pb::Stage::CashApplication,
            Stage::Reporting => pb::Stage::Reporting,
        }
    }
}

impl From<Handoff> for pb::Handoff {
    fn from(h: Handoff) -> Self {
        match h {
            Handoff::OrderToFulfillment => pb::Handoff::OrderToFulfillment,
            Handoff::FulfillmentToInvoice => pb::Handoff::FulfillmentToInvoice,
            Handoff::InvoiceToPayment => pb::Handoff::InvoiceToPayment,
            Handoff::PaymentToCashApplication => pb::Handoff::PaymentToCashApplication,
            Handoff::ReconciliationToReporting => pb::Handoff::ReconciliationToReporting,
        }
    }
}

impl From<ExceptionType> for pb::ExceptionType {
    fn from(t: ExceptionType) -> Self {
        match t {
            ExceptionType::AmountMismatch => pb::ExceptionType::AmountMismatch,
            ExceptionType::OutOfSequence => pb::ExceptionType::OutOfSequence,
            ExceptionType::RecordConflict => pb::ExceptionType::RecordConflict,
            ExceptionType::ValidationFailed => pb::ExceptionType::ValidationFailed,
            ExceptionType::LateHandoff => pb::ExceptionType::LateHandoff,
            ExceptionType::NotPropagated => pb::ExceptionType::NotPropagated,
            ExceptionType::RefundNotPropagated => pb::ExceptionType::RefundNotPropagated,
            ExceptionType::FeeUnallocated => pb::ExceptionType::FeeUnallocated,
            ExceptionType::RoundingVariance => pb::ExceptionType::RoundingVariance,
            ExceptionType::FxVariance => pb::ExceptionType::FxVariance,
            ExceptionType::DiscountUnmapped => pb::ExceptionType::DiscountUnmapped,
        }
    }
}

impl From<ExceptionState> for pb::ExceptionState {
    fn from(s: ExceptionState) -> Self {
        match s {
            ExceptionState::Open => pb::ExceptionState::Open,
            ExceptionState::Acknowledged => pb::ExceptionState::Acknowledged,
            ExceptionState::Resolved => pb::ExceptionState::Resolved,
        }
    }
}

/// A filter value: UNSPECIFIED is no filter; the rest is the domain value
/// whose `From` gives it back, so each mapping above exists once.
pub trait Filter: Sized + Copy + 'static {
    type Proto: PartialEq + Copy + TryFrom<i32> + From<Self>;
    const ALL: &'static [Self];
    fn from_proto(p: Self::Proto) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|d| Self::Proto::from(*d) == p)
    }
}

impl Filter for ReconciliationState {
    type Proto = pb::ReconciliationState;
    const ALL: &'static [Self] = &[
        ReconciliationState::Pending,
        ReconciliationState::Matched,
        ReconciliationState::Exception,
    ];
}

impl Filter for Handoff {
    type Proto = pb::Handoff;
    const ALL: &'static [Self] = &Handoff::ALL;
}

impl Filter for ExceptionType {
    type Proto = pb::ExceptionType;
    const ALL: &'static [Self] = &ExceptionType::ALL;
}

impl Filter for ExceptionState {
    type Proto = pb::ExceptionState;
    const ALL: &'static [Self] = &[
        ExceptionState::Open,
        ExceptionState::Acknowledged,
        ExceptionState::Resolved,
    ];
}

/// A filter field of a request: None for UNSPECIFIED, INVALID_ARGUMENT
/// naming `field` for a value the proto does not define.
pub fn known<T: Filter>(field: &str, v: i32) -> Result<Option<T>> {
    let proto =
        T::Proto::try_from(v).map_err(|_| Error::invalid(field, format!("unknown value {v}")))?;
    Ok(T::from_proto(proto))
}

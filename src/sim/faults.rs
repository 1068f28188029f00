//! The faults the simulator plants, and what Tally should make of each:
//! the exceptions that name it (type, rule, handoff), the consequences a
//! fault may also have on its payout, or why no exception is expected and
//! what is checked instead.

use crate::proto::tally::v1::{ExceptionType as T, Handoff as H};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    RefundNotPropagated,
    FeeNotJournaled,
    SplitTenderRounding,
    FxRateMismatch,
    DiscountNotMapped,
    LateFulfilment,
    MissingInvoice,
    OutOfSequence,
    DuplicateResubmission,
    ChangedResubmission,
    PayoutFailedAfterPaid,
    DepositNeverArrives,
}

/// An exception's shape: its type, rule and handoff (None: any handoff).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sig {
    pub exception_type: T,
    pub rule: &'static str,
    pub handoff: Option<H>,
}

pub(crate) const fn sig(exception_type: T, rule: &'static str, handoff: Option<H>) -> Sig {
    Sig {
        exception_type,
        rule,
        handoff,
    }
}

/// What Tally should do with a fault.
#[derive(Debug, Clone, Copy)]
pub enum Expect {
    /// An exception of one of `on_order` on the faulted order (or of
    /// `on_payout` on its payout, for payout-level faults); `consequences`
    /// on the payout that swept it are explained by the fault too.
    Raised {
        on_order: &'static [Sig],
        on_payout: &'static [Sig],
        consequences: &'static [Sig],
    },
    /// No exception is right; `check` names what the score verifies
    /// instead.
    Absorbed {
        why: &'static str,
        check: &'static str,
    },
    /// Detectable from what Tally receives, but no rule of Tally's looks:
    /// a gap, scored as missed (never as found).
    NoRule { why: &'static str },
    /// Not in the data this view gets, by its nature (the offline audit's
    /// files carry no shipments, say): listed with why, never counted.
    NotDetectable { why: &'static str },
}

const REFUND_NOT_CREDITED: &[Sig] = &[sig(
    T::RefundNotPropagated,
    "refund_not_credited",
    Some(H::PaymentToCashApplication),
)];
/// The refund's money left clearing with no credit memo to book it
/// against: its payout's residual names it.
const RESIDUAL: &[Sig] = &[sig(T::AmountMismatch, "ledger.clearing_residual", None)];
const FEE: &[Sig] = &[sig(T::FeeUnallocated, "cash.payout_fee_unallocated", None)];
const TENDERS: &[Sig] = &[sig(T::RoundingVariance, "split_tender_rounding", None)];
const FX: &[Sig] = &[sig(T::FxVariance, "fx_rate_variance", None)];
const DISCOUNT: &[Sig] = &[sig(T::DiscountUnmapped, "discount_unmapped", None)];
const NO_SHIPMENT: &[Sig] = &[sig(
    T::LateHandoff,
    "late_handoff",
    Some(H::OrderToFulfillment),
)];
const NO_INVOICE: &[Sig] = &[sig(
    T::LateHandoff,
    "late_handoff",
    Some(H::FulfillmentToInvoice),
)];
const CONFLICT: &[Sig] = &[sig(T::RecordConflict, "record_conflict", None)];
const FAILED: &[Sig] = &[sig(T::ValidationFailed, "cash.payout_failed", None)];
/// The bank showed money for a payout that then failed: matched before the
/// failure, the match is undone; after it, the deposit names no payout.
const FAILED_DEPOSIT: &[Sig] = &[
    sig(T::ValidationFailed, "cash.deposited_payout_changed", None),
    sig(T::ValidationFailed, "cash.deposit_without_payout", None),
];
/// The bank feed passed the payout's arrival date plus the
/// payment-to-cash-application lag without its deposit.
const DEPOSIT_MISSING: &[Sig] = &[sig(
    T::LateHandoff,
    "cash.deposit_missing",
    Some(H::PaymentToCashApplication),
)];
const NONE: &[Sig] = &[];

impl FaultKind {
    pub const ALL: [FaultKind; 12] = [
        FaultKind::RefundNotPropagated,
        FaultKind::FeeNotJournaled,
        FaultKind::SplitTenderRounding,
        FaultKind::FxRateMismatch,
        FaultKind::DiscountNotMapped,
        FaultKind::LateFulfilment,
        FaultKind::MissingInvoice,
        FaultKind::OutOfSequence,
        FaultKind::DuplicateResubmission,
        FaultKind::ChangedResubmission,
        FaultKind::PayoutFailedAfterPaid,
        FaultKind::DepositNeverArrives,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::RefundNotPropagated => "refund_not_propagated",
            FaultKind::FeeNotJournaled => "fee_not_journaled",
            FaultKind::SplitTenderRounding => "split_tender_rounding",
            FaultKind::FxRateMismatch => "fx_rate_mismatch",
            FaultKind::DiscountNotMapped => "discount_not_mapped",
            FaultKind::LateFulfilment => "late_fulfilment",
            FaultKind::MissingInvoice => "missing_invoice",
            FaultKind::OutOfSequence => "out_of_sequence",
            FaultKind::DuplicateResubmission => "duplicate_resubmission",
            FaultKind::ChangedResubmission => "changed_resubmission",
            FaultKind::PayoutFailedAfterPaid => "payout_failed_after_paid",
            FaultKind::DepositNeverArrives => "deposit_never_arrives",
        }
    }

    pub fn parse(s: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Faults of a payout rather than of an order.
    pub fn per_payout(self) -> bool {
        matches!(
            self,
            FaultKind::FeeNotJournaled
                | FaultKind::PayoutFailedAfterPaid
                | FaultKind::DepositNeverArrives
        )
    }

    pub fn expect(self) -> Expect {
        let raised = |on_order, on_payout, consequences| Expect::Raised {
            on_order,
            on_payout,
            consequences,
        };
        match self {
            FaultKind::RefundNotPropagated => raised(REFUND_NOT_CREDITED, NONE, RESIDUAL),
            FaultKind::FeeNotJournaled => raised(NONE, FEE, NONE),
            FaultKind::SplitTenderRounding => raised(TENDERS, NONE, NONE),
            FaultKind::FxRateMismatch => raised(FX, NONE, NONE),
            FaultKind::DiscountNotMapped => raised(DISCOUNT, NONE, NONE),
            FaultKind::LateFulfilment => raised(NO_SHIPMENT, NONE, NONE),
            FaultKind::MissingInvoice => raised(NO_INVOICE, NONE, NONE),
            FaultKind::OutOfSequence => Expect::Absorbed {
                why: "records arriving out of order are merged by their event times; nothing is wrong",
                check: "no exception on the order; its captured total as on a clean order",
            },
            FaultKind::DuplicateResubmission => Expect::Absorbed {
                why: "the same key and content again is a DUPLICATE, stored once",
                check: "no exception on the order; its captured total counted once",
            },
            FaultKind::ChangedResubmission => raised(CONFLICT, NONE, NONE),
            FaultKind::PayoutFailedAfterPaid => raised(NONE, FAILED, FAILED_DEPOSIT),
            FaultKind::DepositNeverArrives => raised(NONE, DEPOSIT_MISSING, NONE),
        }
    }
}

/// Parses `--faults kind=rate,...` (rates 0..=1).
pub fn parse_rates(spec: &str) -> Result<Vec<(FaultKind, f64)>, String> {
    let mut out = vec![];
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, rate) = part
            .split_once('=')
            .ok_or_else(|| format!("--faults: '{part}' is not KIND=RATE"))?;
        let kind = FaultKind::parse(name.trim()).ok_or_else(|| {
            let known: Vec<&str> = FaultKind::ALL.iter().map(|k| k.as_str()).collect();
            format!(
                "--faults: unknown kind '{name}' (known: {})",
                known.join(", ")
            )
        })?;
        let rate: f64 = rate
            .trim()
            .parse()
            .ok()
            .filter(|r: &f64| (0.0..=1.0).contains(r))
            .ok_or_else(|| format!("--faults: rate of {name} must be a number from 0 to 1"))?;
        out.push((kind, rate));
    }
    Ok(out)
}

//! Proto -> domain conversions of the enums a record carries. UNSPECIFIED
//! has no domain value: the conversion fails and validation names the field.

use crate::domain::record as d;
use crate::proto::tally::v1 as pb;

/// The proto value had no domain meaning (UNSPECIFIED).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unspecified;

impl TryFrom<pb::StorefrontTransactionKind> for d::TxnKind {
    type Error = Unspecified;
    fn try_from(v: pb::StorefrontTransactionKind) -> Result<Self, Unspecified> {
        Ok(match v {
            pb::StorefrontTransactionKind::Unspecified => return Err(Unspecified),
            pb::StorefrontTransactionKind::Authorization => d::TxnKind::Authorization,
            pb::StorefrontTransactionKind::Capture => d::TxnKind::Capture,
            pb::StorefrontTransactionKind::Sale => d::TxnKind::Sale,
            pb::StorefrontTransactionKind::Refund => d::TxnKind::Refund,
            pb::StorefrontTransactionKind::Void => d::TxnKind::Void,
        })
    }
}

impl TryFrom<pb::StorefrontTransactionStatus> for d::TxnStatus {
    type Error = Unspecified;
    fn try_from(v: pb::StorefrontTransactionStatus) -> Result<Self, Unspecified> {
        Ok(match v {
            pb::StorefrontTransactionStatus::Unspecified => return Err(Unspecified),
            pb::StorefrontTransactionStatus::Success => d::TxnStatus::Success,
            pb::StorefrontTransactionStatus::Pending => d::TxnStatus::Pending,
            pb::StorefrontTransactionStatus::Failure => d::TxnStatus::Failure,
            pb::StorefrontTransactionStatus::Error => d::TxnStatus::Error,
        })
    }
}

impl TryFrom<pb::ProcessorPaymentType> for d::PaymentType {
    type Error = Unspecified;
    fn try_from(v: pb::ProcessorPaymentType) -> Result<Self, Unspecified> {
        Ok(match v {
            pb::ProcessorPaymentType::Unspecified => return Err(Unspecified),
            pb::ProcessorPaymentType::Charge => d::PaymentType::Charge,
            pb::ProcessorPaymentType::Capture => d::PaymentType::Capture,
            pb::ProcessorPaymentType::Refund => d::PaymentType::Refund,
        })
    }
}

impl TryFrom<pb::PayoutStatus> for d::PayoutStatus {
    type Error = Unspecified;
    fn try_from(v: pb::PayoutStatus) -> Result<Self, Unspecified> {
        Ok(match v {
            pb::PayoutStatus::Unspecified => return Err(Unspecified),
            pb::PayoutStatus::Pending => d::PayoutStatus::Pending,
            pb::PayoutStatus::InTransit => d::PayoutStatus::InTransit,
            pb::PayoutStatus::Paid => d::PayoutStatus::Paid,
            pb::PayoutStatus::Failed => d::PayoutStatus::Failed,
            pb::PayoutStatus::Canceled => d::PayoutStatus::Canceled,
        })
    }
}

impl TryFrom<pb::TenderType> for d::TenderType {
    type Error = Unspecified;
    fn try_from(v: pb::TenderType) -> Result<Self, Unspecified> {
        Ok(match v {
            pb::TenderType::Unspecified => return Err(Unspecified),
            pb::TenderType::Card => d::TenderType::Card,
            pb::TenderType::GiftCard => d::TenderType::GiftCard,
            pb::TenderType::StoreCredit => d::TenderType::StoreCredit,
            pb::TenderType::Cash => d::TenderType::Cash,
            pb::TenderType::Other => d::TenderType::Other,
        })
    }
}

impl TryFrom<pb::ReferenceType> for d::RefKind {
    type Error = Unspecified;
    fn try_from(v: pb::ReferenceType) -> Result<Self, Unspecified> {
        Ok(match v {
            pb::ReferenceType::Unspecified => return Err(Unspecified),
            pb::ReferenceType::Order => d::RefKind::Order,
            pb::ReferenceType::PaymentIntent => d::RefKind::PaymentIntent,
            pb::ReferenceType::Charge => d::RefKind::Charge,
            pb::ReferenceType::Refund => d::RefKind::Refund,
            pb::ReferenceType::BalanceTransaction => d::RefKind::BalanceTransaction,
            pb::ReferenceType::Payout => d::RefKind::Payout,
            pb::ReferenceType::Fulfillment => d::RefKind::Fulfillment,
            pb::ReferenceType::Invoice => d::RefKind::Invoice,
            pb::ReferenceType::CreditMemo => d::RefKind::CreditMemo,
            pb::ReferenceType::JournalEntry => d::RefKind::JournalEntry,
            pb::ReferenceType::BankDeposit => d::RefKind::BankDeposit,
        })
    }
}

//! The wire of the audit's packed records (`compact`): the byte writer and
//! reader, and the enums' tags. Split from `compact.rs`, which says what a
//! record's bytes are; this says how a field becomes bytes.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::domain::currency::Currency;
use crate::domain::money::Money;
use crate::domain::record::*;

// The enums' tags: written with `as u8`, read back by the same order.

const REF_KINDS: [RefKind; 11] = [
    RefKind::Order,
    RefKind::PaymentIntent,
    RefKind::Charge,
    RefKind::Refund,
    RefKind::BalanceTransaction,
    RefKind::Payout,
    RefKind::Fulfillment,
    RefKind::Invoice,
    RefKind::CreditMemo,
    RefKind::JournalEntry,
    RefKind::BankDeposit,
];

pub(super) fn ref_kind(k: RefKind) -> u8 {
    REF_KINDS.iter().position(|x| *x == k).unwrap_or(0) as u8
}

pub(super) fn ref_kind_of(b: u8) -> Option<RefKind> {
    REF_KINDS.get(usize::from(b)).copied()
}

pub(super) fn tender_type(b: u8) -> Option<TenderType> {
    [
        TenderType::Card,
        TenderType::GiftCard,
        TenderType::StoreCredit,
        TenderType::Cash,
        TenderType::Other,
    ]
    .into_iter()
    .find(|t| *t as u8 == b)
}

pub(super) fn txn_kind(b: u8) -> Option<TxnKind> {
    [
        TxnKind::Authorization,
        TxnKind::Capture,
        TxnKind::Sale,
        TxnKind::Refund,
        TxnKind::Void,
    ]
    .into_iter()
    .find(|t| *t as u8 == b)
}

pub(super) fn txn_status(b: u8) -> Option<TxnStatus> {
    [
        TxnStatus::Success,
        TxnStatus::Pending,
        TxnStatus::Failure,
        TxnStatus::Error,
    ]
    .into_iter()
    .find(|t| *t as u8 == b)
}

pub(super) fn payment_type(b: u8) -> Option<PaymentType> {
    [
        PaymentType::Charge,
        PaymentType::Capture,
        PaymentType::Refund,
    ]
    .into_iter()
    .find(|t| *t as u8 == b)
}

pub(super) fn payout_status(b: u8) -> Option<PayoutStatus> {
    [
        PayoutStatus::Pending,
        PayoutStatus::InTransit,
        PayoutStatus::Paid,
        PayoutStatus::Failed,
        PayoutStatus::Canceled,
    ]
    .into_iter()
    .find(|t| *t as u8 == b)
}

pub(super) struct W<'a>(pub(super) &'a mut Vec<u8>);

impl W<'_> {
    pub(super) fn byte(&mut self, b: u8) {
        self.0.push(b);
    }

    /// LEB128: most lengths, quantities and amounts take one to three bytes.
    pub(super) fn varint(&mut self, mut v: u128) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    pub(super) fn len(&mut self, n: usize) {
        self.varint(n as u128);
    }

    pub(super) fn int(&mut self, v: i64) {
        // Zigzag: small negatives stay small.
        self.varint(((v << 1) ^ (v >> 63)) as u64 as u128);
    }

    pub(super) fn str(&mut self, s: &str) {
        self.len(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }

    pub(super) fn opt<T>(&mut self, v: Option<T>, f: impl FnOnce(&mut Self, T)) {
        match v {
            Some(v) => {
                self.byte(1);
                f(self, v);
            }
            None => self.byte(0),
        }
    }

    /// Scale and sign in one byte, then the 96-bit magnitude.
    pub(super) fn decimal(&mut self, d: Decimal) {
        let raw = d.serialize();
        let scale = raw[2];
        let negative = raw[3] & 0x80 != 0;
        self.byte(scale | if negative { 0x80 } else { 0 });
        let mut m = [0u8; 16];
        m[..12].copy_from_slice(&raw[4..16]);
        self.varint(u128::from_le_bytes(m));
    }

    pub(super) fn currency(&mut self, c: Currency) {
        self.0.extend_from_slice(c.code().as_bytes());
    }

    pub(super) fn money(&mut self, m: &Money) {
        self.currency(m.currency);
        self.decimal(m.amount);
    }

    pub(super) fn opt_money(&mut self, m: &Option<Money>) {
        self.opt(m.as_ref(), W::money);
    }

    pub(super) fn time(&mut self, t: DateTime<Utc>) {
        self.int(t.timestamp());
        self.varint(u128::from(t.timestamp_subsec_nanos()));
    }
}

pub(super) struct R<'a, 'b> {
    pub(super) buf: &'b mut &'a [u8],
    /// The last currency read: a record's amounts are nearly always in one.
    pub(super) currency: Option<Currency>,
}

impl R<'_, '_> {
    pub(super) fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.buf.split_first()?;
        *self.buf = rest;
        Some(*b)
    }

    pub(super) fn bytes(&mut self, n: usize) -> Option<&[u8]> {
        if n > self.buf.len() {
            return None;
        }
        let (head, rest) = self.buf.split_at(n);
        *self.buf = rest;
        Some(head)
    }

    pub(super) fn varint(&mut self) -> Option<u128> {
        let mut v = 0u128;
        for shift in (0..128).step_by(7) {
            let b = self.byte()?;
            v |= u128::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    pub(super) fn len(&mut self) -> Option<usize> {
        // No length is longer than what is left to read: a corrupt length
        // cannot make `with_capacity` reserve gigabytes.
        usize::try_from(self.varint()?)
            .ok()
            .filter(|n| *n <= self.buf.len())
    }

    pub(super) fn int(&mut self) -> Option<i64> {
        let z = u64::try_from(self.varint()?).ok()?;
        Some(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    pub(super) fn str(&mut self) -> Option<String> {
        let n = self.len()?;
        String::from_utf8(self.bytes(n)?.to_vec()).ok()
    }

    pub(super) fn opt<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        match self.byte()? {
            0 => Some(None),
            1 => f(self).map(Some),
            _ => None,
        }
    }

    pub(super) fn decimal(&mut self) -> Option<Decimal> {
        let head = self.byte()?;
        let (scale, negative) = (head & 0x7f, head & 0x80 != 0);
        let m = self.varint()?;
        if scale > 28 || m >> 96 != 0 {
            return None;
        }
        let mut raw = [0u8; 16];
        raw[2] = scale;
        raw[3] = if negative { 0x80 } else { 0 };
        raw[4..16].copy_from_slice(&m.to_le_bytes()[..12]);
        Some(Decimal::deserialize(raw))
    }

    pub(super) fn currency(&mut self) -> Option<Currency> {
        let last = self.currency;
        let code = self.bytes(3)?;
        if let Some(c) = last.filter(|c| c.code().as_bytes() == code) {
            return Some(c);
        }
        let c = Currency::from_code(std::str::from_utf8(code).ok()?)?;
        self.currency = Some(c);
        Some(c)
    }

    pub(super) fn money(&mut self) -> Option<Money> {
        let currency = self.currency()?;
        Some(Money::new(self.decimal()?, currency))
    }

    pub(super) fn opt_money(&mut self) -> Option<Option<Money>> {
        self.opt(R::money)
    }

    pub(super) fn time(&mut self) -> Option<DateTime<Utc>> {
        let secs = self.int()?;
        let nanos = u32::try_from(self.varint()?).ok()?;
        DateTime::from_timestamp(secs, nanos)
    }
}

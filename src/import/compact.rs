//! Records packed into bytes for the audit: a parsed `Record` holds a
//! dozen heap strings, each with its own allocation, where its packed form
//! is one run of bytes a few times smaller, so a month of a million orders
//! per file is held once and matched in one pass instead of being parsed
//! again per partition.
//!
//! Lossless by construction: every field of every body is written
//! (destructured exhaustively, so a new field fails to compile here until
//! it is packed), decimals keep their scale and the sign of a zero, times
//! their nanoseconds. Unpacking allocates the record's strings again; a
//! malformed buffer (never written by `pack`) yields None, not a panic.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::domain::currency::Currency;
use crate::domain::money::Money;
use crate::domain::record::*;

/// Appends `r` to `out`.
pub fn pack(r: &Record, out: &mut Vec<u8>) {
    let Record {
        source_id,
        source_system,
        order_id,
        references,
        event_time,
        source_update_time,
        body,
    } = r;
    let w = &mut W(out);
    w.str(source_id);
    w.str(source_system);
    w.opt(order_id.as_deref(), W::str);
    w.len(references.len());
    for Reference { kind, id } in references {
        w.byte(ref_kind(*kind));
        w.str(id);
    }
    w.time(*event_time);
    w.opt(source_update_time.as_ref(), |w, t| w.time(*t));
    body_pack(w, body);
}

/// Reads one record back from the front of `buf`, advancing it.
pub fn unpack(buf: &mut &[u8]) -> Option<Record> {
    let r = &mut R {
        buf,
        currency: None,
    };
    let source_id = r.str()?;
    let source_system = r.str()?;
    let order_id = r.opt(R::str)?;
    let n = r.len()?;
    let mut references = Vec::with_capacity(n);
    for _ in 0..n {
        let kind = ref_kind_of(r.byte()?)?;
        references.push(Reference { kind, id: r.str()? });
    }
    Some(Record {
        source_id,
        source_system,
        order_id,
        references,
        event_time: r.time()?,
        source_update_time: r.opt(R::time)?,
        body: body_unpack(r)?,
    })
}

fn body_pack(w: &mut W<'_>, body: &Body) {
    match body {
        Body::StorefrontOrder(StorefrontOrder {
            name,
            total,
            subtotal,
            total_discount,
            total_tax,
            total_shipping,
            line_items,
            discounts,
            tenders,
        }) => {
            w.byte(0);
            w.str(name);
            w.money(total);
            for m in [subtotal, total_discount, total_tax, total_shipping] {
                w.opt_money(m);
            }
            w.len(line_items.len());
            for LineItem {
                sku,
                quantity,
                unit_price,
                discount,
                tax,
            } in line_items
            {
                w.str(sku);
                w.int(*quantity);
                for m in [unit_price, discount, tax] {
                    w.opt_money(m);
                }
            }
            w.len(discounts.len());
            for Discount { code, amount } in discounts {
                w.str(code);
                w.money(amount);
            }
            w.len(tenders.len());
            for Tender {
                tender_type,
                gateway,
                amount,
                processor_reference,
            } in tenders
            {
                w.byte(*tender_type as u8);
                w.str(gateway);
                w.money(amount);
                w.opt(processor_reference.as_deref(), W::str);
            }
        }
        Body::StorefrontTransaction(StorefrontTransaction {
            kind,
            status,
            gateway,
            amount,
            parent_id,
            processor_reference,
        }) => {
            w.byte(1);
            w.byte(*kind as u8);
            w.byte(*status as u8);
            w.str(gateway);
            w.money(amount);
            w.opt(parent_id.as_deref(), W::str);
            w.opt(processor_reference.as_deref(), W::str);
        }
        Body::Fulfillment(Fulfillment {
            lines,
            tracking_number,
            location,
        }) => {
            w.byte(2);
            w.len(lines.len());
            for FulfillmentLine { sku, quantity } in lines {
                w.str(sku);
                w.int(*quantity);
            }
            w.str(tracking_number);
            w.str(location);
        }
        Body::Invoice(Invoice {
            total,
            discount,
            tax,
            shipping,
            lines,
        }) => {
            w.byte(3);
            w.money(total);
            for m in [discount, tax, shipping] {
                w.opt_money(m);
            }
            invoice_lines(w, lines);
        }
        Body::CreditMemo(CreditMemo {
            total,
            tax,
            lines,
            shipping,
        }) => {
            w.byte(4);
            w.money(total);
            w.opt_money(tax);
            w.opt_money(shipping);
            invoice_lines(w, lines);
        }
        Body::JournalEntry(JournalEntry {
            currency,
            exchange_rate,
            posting_period,
            subsidiary,
            memo,
            lines,
        }) => {
            w.byte(5);
            w.currency(*currency);
            w.opt(exchange_rate.as_ref(), |w, d| w.decimal(*d));
            w.str(posting_period);
            w.str(subsidiary);
            w.str(memo);
            w.len(lines.len());
            for JournalLine {
                account,
                debit,
                credit,
                memo,
                name,
                reference,
            } in lines
            {
                w.str(account);
                w.decimal(*debit);
                w.decimal(*credit);
                w.str(memo);
                w.str(name);
                w.opt(reference.as_deref(), W::str);
            }
        }
        Body::ProcessorPayment(ProcessorPayment {
            payment_type,
            amount,
            fee,
            exchange_rate,
            payment_intent_id,
            charge_id,
            balance_transaction_id,
        }) => {
            w.byte(6);
            w.byte(*payment_type as u8);
            w.money(amount);
            w.opt_money(fee);
            w.opt(exchange_rate.as_ref(), |w, d| w.decimal(*d));
            for id in [payment_intent_id, charge_id, balance_transaction_id] {
                w.opt(id.as_deref(), W::str);
            }
        }
        Body::BalanceTransaction(BalanceTransaction {
            reporting_category,
            amount,
            fee,
            net,
            exchange_rate,
            source,
            payout_id,
            available_time,
        }) => {
            w.byte(7);
            w.str(reporting_category);
            w.money(amount);
            w.opt_money(fee);
            w.opt_money(net);
            w.opt(exchange_rate.as_ref(), |w, d| w.decimal(*d));
            w.opt(source.as_deref(), W::str);
            w.opt(payout_id.as_deref(), W::str);
            w.opt(available_time.as_ref(), |w, t| w.time(*t));
        }
        Body::Payout(Payout {
            amount,
            status,
            arrival_time,
        }) => {
            w.byte(8);
            w.money(amount);
            w.byte(*status as u8);
            w.opt(arrival_time.as_ref(), |w, t| w.time(*t));
        }
        Body::BankDeposit(BankDeposit {
            amount,
            account,
            description,
        }) => {
            w.byte(9);
            w.money(amount);
            w.str(account);
            w.str(description);
        }
    }
}

fn invoice_lines(w: &mut W<'_>, lines: &[InvoiceLine]) {
    w.len(lines.len());
    for InvoiceLine {
        sku,
        quantity,
        amount,
    } in lines
    {
        w.str(sku);
        w.int(*quantity);
        w.opt_money(amount);
    }
}

fn body_unpack(r: &mut R<'_, '_>) -> Option<Body> {
    Some(match r.byte()? {
        0 => {
            let name = r.str()?;
            let total = r.money()?;
            let [subtotal, total_discount, total_tax, total_shipping] = [
                r.opt_money()?,
                r.opt_money()?,
                r.opt_money()?,
                r.opt_money()?,
            ];
            let n = r.len()?;
            let mut line_items = Vec::with_capacity(n);
            for _ in 0..n {
                line_items.push(LineItem {
                    sku: r.str()?,
                    quantity: r.int()?,
                    unit_price: r.opt_money()?,
                    discount: r.opt_money()?,
                    tax: r.opt_money()?,
                });
            }
            let n = r.len()?;
            let mut discounts = Vec::with_capacity(n);
            for _ in 0..n {
                discounts.push(Discount {
                    code: r.str()?,
                    amount: r.money()?,
                });
            }
            let n = r.len()?;
            let mut tenders = Vec::with_capacity(n);
            for _ in 0..n {
                tenders.push(Tender {
                    tender_type: tender_type(r.byte()?)?,
                    gateway: r.str()?,
                    amount: r.money()?,
                    processor_reference: r.opt(R::str)?,
                });
            }
            Body::StorefrontOrder(StorefrontOrder {
                name,
                total,
                subtotal,
                total_discount,
                total_tax,
                total_shipping,
                line_items,
                discounts,
                tenders,
            })
        }
        1 => Body::StorefrontTransaction(StorefrontTransaction {
            kind: txn_kind(r.byte()?)?,
            status: txn_status(r.byte()?)?,
            gateway: r.str()?,
            amount: r.money()?,
            parent_id: r.opt(R::str)?,
            processor_reference: r.opt(R::str)?,
        }),
        2 => {
            let n = r.len()?;
            let mut lines = Vec::with_capacity(n);
            for _ in 0..n {
                lines.push(FulfillmentLine {
                    sku: r.str()?,
                    quantity: r.int()?,
                });
            }
            Body::Fulfillment(Fulfillment {
                lines,
                tracking_number: r.str()?,
                location: r.str()?,
            })
        }
        3 => Body::Invoice(Invoice {
            total: r.money()?,
            discount: r.opt_money()?,
            tax: r.opt_money()?,
            shipping: r.opt_money()?,
            lines: invoice_lines_of(r)?,
        }),
        4 => Body::CreditMemo(CreditMemo {
            total: r.money()?,
            tax: r.opt_money()?,
            shipping: r.opt_money()?,
            lines: invoice_lines_of(r)?,
        }),
        5 => {
            let currency = r.currency()?;
            let exchange_rate = r.opt(R::decimal)?;
            let (posting_period, subsidiary, memo) = (r.str()?, r.str()?, r.str()?);
            let n = r.len()?;
            let mut lines = Vec::with_capacity(n);
            for _ in 0..n {
                lines.push(JournalLine {
                    account: r.str()?,
                    debit: r.decimal()?,
                    credit: r.decimal()?,
                    memo: r.str()?,
                    name: r.str()?,
                    reference: r.opt(R::str)?,
                });
            }
            Body::JournalEntry(JournalEntry {
                currency,
                exchange_rate,
                posting_period,
                subsidiary,
                memo,
                lines,
            })
        }
        6 => Body::ProcessorPayment(ProcessorPayment {
            payment_type: payment_type(r.byte()?)?,
            amount: r.money()?,
            fee: r.opt_money()?,
            exchange_rate: r.opt(R::decimal)?,
            payment_intent_id: r.opt(R::str)?,
            charge_id: r.opt(R::str)?,
            balance_transaction_id: r.opt(R::str)?,
        }),
        7 => Body::BalanceTransaction(BalanceTransaction {
            reporting_category: r.str()?,
            amount: r.money()?,
            fee: r.opt_money()?,
            net: r.opt_money()?,
            exchange_rate: r.opt(R::decimal)?,
            source: r.opt(R::str)?,
            payout_id: r.opt(R::str)?,
            available_time: r.opt(R::time)?,
        }),
        8 => Body::Payout(Payout {
            amount: r.money()?,
            status: payout_status(r.byte()?)?,
            arrival_time: r.opt(R::time)?,
        }),
        9 => Body::BankDeposit(BankDeposit {
            amount: r.money()?,
            account: r.str()?,
            description: r.str()?,
        }),
        _ => return None,
    })
}

fn invoice_lines_of(r: &mut R<'_, '_>) -> Option<Vec<InvoiceLine>> {
    let n = r.len()?;
    let mut lines = Vec::with_capacity(n);
    for _ in 0..n {
        lines.push(InvoiceLine {
            sku: r.str()?,
            quantity: r.int()?,
            amount: r.opt_money()?,
        });
    }
    Some(lines)
}

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

fn ref_kind(k: RefKind) -> u8 {
    REF_KINDS.iter().position(|x| *x == k).unwrap_or(0) as u8
}

fn ref_kind_of(b: u8) -> Option<RefKind> {
    REF_KINDS.get(usize::from(b)).copied()
}

fn tender_type(b: u8) -> Option<TenderType> {
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

fn txn_kind(b: u8) -> Option<TxnKind> {
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

fn txn_status(b: u8) -> Option<TxnStatus> {
    [
        TxnStatus::Success,
        TxnStatus::Pending,
        TxnStatus::Failure,
        TxnStatus::Error,
    ]
    .into_iter()
    .find(|t| *t as u8 == b)
}

fn payment_type(b: u8) -> Option<PaymentType> {
    [
        PaymentType::Charge,
        PaymentType::Capture,
        PaymentType::Refund,
    ]
    .into_iter()
    .find(|t| *t as u8 == b)
}

fn payout_status(b: u8) -> Option<PayoutStatus> {
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

struct W<'a>(&'a mut Vec<u8>);

impl W<'_> {
    fn byte(&mut self, b: u8) {
        self.0.push(b);
    }

    /// LEB128: most lengths, quantities and amounts take one to three bytes.
    fn varint(&mut self, mut v: u128) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn len(&mut self, n: usize) {
        self.varint(n as u128);
    }

    fn int(&mut self, v: i64) {
        // Zigzag: small negatives stay small.
        self.varint(((v << 1) ^ (v >> 63)) as u64 as u128);
    }

    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }

    fn opt<T>(&mut self, v: Option<T>, f: impl FnOnce(&mut Self, T)) {
        match v {
            Some(v) => {
                self.byte(1);
                f(self, v);
            }
            None => self.byte(0),
        }
    }

    /// Scale and sign in one byte, then the 96-bit magnitude.
    fn decimal(&mut self, d: Decimal) {
        let raw = d.serialize();
        let scale = raw[2];
        let negative = raw[3] & 0x80 != 0;
        self.byte(scale | if negative { 0x80 } else { 0 });
        let mut m = [0u8; 16];
        m[..12].copy_from_slice(&raw[4..16]);
        self.varint(u128::from_le_bytes(m));
    }

    fn currency(&mut self, c: Currency) {
        self.0.extend_from_slice(c.code().as_bytes());
    }

    fn money(&mut self, m: &Money) {
        self.currency(m.currency);
        self.decimal(m.amount);
    }

    fn opt_money(&mut self, m: &Option<Money>) {
        self.opt(m.as_ref(), W::money);
    }

    fn time(&mut self, t: DateTime<Utc>) {
        self.int(t.timestamp());
        self.varint(u128::from(t.timestamp_subsec_nanos()));
    }
}

struct R<'a, 'b> {
    buf: &'b mut &'a [u8],
    /// The last currency read: a record's amounts are nearly always in one.
    currency: Option<Currency>,
}

impl R<'_, '_> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.buf.split_first()?;
        *self.buf = rest;
        Some(*b)
    }

    fn bytes(&mut self, n: usize) -> Option<&[u8]> {
        if n > self.buf.len() {
            return None;
        }
        let (head, rest) = self.buf.split_at(n);
        *self.buf = rest;
        Some(head)
    }

    fn varint(&mut self) -> Option<u128> {
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

    fn len(&mut self) -> Option<usize> {
        // No length is longer than what is left to read: a corrupt length
        // cannot make `with_capacity` reserve gigabytes.
        usize::try_from(self.varint()?)
            .ok()
            .filter(|n| *n <= self.buf.len())
    }

    fn int(&mut self) -> Option<i64> {
        let z = u64::try_from(self.varint()?).ok()?;
        Some(((z >> 1) as i64) ^ -((z & 1) as i64))
    }

    fn str(&mut self) -> Option<String> {
        let n = self.len()?;
        String::from_utf8(self.bytes(n)?.to_vec()).ok()
    }

    fn opt<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
        match self.byte()? {
            0 => Some(None),
            1 => f(self).map(Some),
            _ => None,
        }
    }

    fn decimal(&mut self) -> Option<Decimal> {
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

    fn currency(&mut self) -> Option<Currency> {
        let last = self.currency;
        let code = self.bytes(3)?;
        if let Some(c) = last.filter(|c| c.code().as_bytes() == code) {
            return Some(c);
        }
        let c = Currency::from_code(std::str::from_utf8(code).ok()?)?;
        self.currency = Some(c);
        Some(c)
    }

    fn money(&mut self) -> Option<Money> {
        let currency = self.currency()?;
        Some(Money::new(self.decimal()?, currency))
    }

    fn opt_money(&mut self) -> Option<Option<Money>> {
        self.opt(R::money)
    }

    fn time(&mut self) -> Option<DateTime<Utc>> {
        let secs = self.int()?;
        let nanos = u32::try_from(self.varint()?).ok()?;
        DateTime::from_timestamp(secs, nanos)
    }
}

#[cfg(test)]
#[path = "compact_tests.rs"]
mod tests;

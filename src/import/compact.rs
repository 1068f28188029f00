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

use crate::domain::record::*;

use super::compact_wire::*;

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

#[cfg(test)]
#[path = "compact_tests.rs"]
mod tests;

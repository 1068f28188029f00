//! Record-level rules: figures that belong in the transaction's currency,
//! and records whose own figures do not add up. A record never changes,
//! so neither do the latter; they hold whether or not its order is known.

use rust_decimal::Decimal;

use super::Context;
use crate::domain::facts::CurrencyTotals;
use crate::domain::matching::findings::{
    ExceptionType, Finding, Observation, Parts, inconsistent, record_subject,
};
use crate::domain::money::Money;
use crate::domain::policy::{MatchPolicy, TolerancePolicy};
use crate::domain::record::{
    BalanceTransaction, Body, Handoff, Invoice, LineItem, Record, Stage, StorefrontOrder,
};

/// Anything in another currency than the transaction's cannot be summed
/// with it: say so instead of dropping it.
pub(crate) fn currency_mismatch(ctx: &Context<'_>) -> Vec<Finding> {
    let Some(c) = ctx.currency else {
        return vec![];
    };
    ctx.records
        .iter()
        .map(|sr| &sr.record)
        // Settlement-side records and the ERP's books may rightly be in the
        // settlement or base currency; the rest describe the customer's
        // money and must be in the order's.
        .filter(|r| r.kind().stage() != Stage::CashApplication)
        .filter_map(|r| r.headline_amount().map(|m| (r, m)))
        .filter(|(_, m)| m.currency != c)
        .map(|(r, m)| Finding {
            exception_type: ExceptionType::AmountMismatch,
            handoff: r.kind().handoff(),
            rule: "currency_mismatch".into(),
            subject: record_subject(r),
            summary: format!(
                "{} {} ({}) is in {}, the transaction is in {c}",
                r.kind().as_str(),
                r.source_id,
                r.source_system,
                m.currency
            ),
            observations: vec![Observation::of(r, Some(m))],
            difference: None,
        })
        .collect()
}

/// The current order's and the order's balance transactions' own figures.
pub(crate) fn own_figures(ctx: &Context<'_>) -> Vec<Finding> {
    let balance = ctx
        .records
        .iter()
        .map(|sr| &sr.record)
        .filter(|r| matches!(r.body, Body::BalanceTransaction(_) | Body::Invoice(_)));
    ctx.order
        .map(|(r, _)| r)
        .into_iter()
        .chain(balance)
        .flat_map(|r| findings_with(&ctx.policy.tolerance, r))
        .collect()
}

/// Checks one record against its own figures (tenders that do not sum to
/// the total, a net that is not amount - fee) with the default policy.
pub fn record_findings(r: &Record) -> Vec<Finding> {
    findings_with(&MatchPolicy::default().tolerance, r)
}

fn findings_with(tolerance: &TolerancePolicy, r: &Record) -> Vec<Finding> {
    match &r.body {
        Body::StorefrontOrder(o) => order_figures(tolerance, r, o),
        Body::BalanceTransaction(b) => balance_net(tolerance, r, b).into_iter().collect(),
        Body::Invoice(i) => invoice_lines_sum(tolerance, r, i).into_iter().collect(),
        _ => vec![],
    }
}

/// Sums signed parts per currency: one sum, or a note of the currencies.
fn parts<'a>(items: impl IntoIterator<Item = &'a Money>) -> Option<Parts> {
    let totals = CurrencyTotals::of(items);
    if totals.is_mixed() {
        return Some(Parts::Mixed(totals.describe()));
    }
    let currency = totals.currencies().next()?;
    // An overflowing sum is reported as what it is.
    Some(match totals.get(currency) {
        Some(sum) => Parts::Sum(sum),
        None => Parts::Overflow,
    })
}

fn negated(m: Money) -> Money {
    Money::new(-m.amount, m.currency)
}

fn order_figures(tolerance: &TolerancePolicy, r: &Record, o: &StorefrontOrder) -> Vec<Finding> {
    let handoff = Handoff::OrderToFulfillment;
    let mut findings = vec![];
    let mut check = |rule: &str, what: &str, stated: Money, parts: Option<Parts>| {
        if let Some(p) = parts {
            findings.extend(inconsistent(tolerance, (rule, handoff), r, what, stated, p));
        }
    };
    if !o.tenders.is_empty() {
        let tenders = parts(o.tenders.iter().map(|t| &t.amount));
        // Split tenders that miss only by their rounding are the rounding
        // rule's (ROUNDING_VARIANCE), not a record that does not add up.
        let rounding = matches!(&tenders, Some(Parts::Sum(sum))
            if super::rounding::within_rounding(tolerance, o.tenders.len(), &o.total, sum));
        if !rounding {
            check("order_tenders_sum", "tenders", o.total, tenders);
        }
    }
    if let Some(sub) = o.subtotal {
        // Each part in its own currency: a tax in EUR on a USD order is
        // not 10 more dollars.
        let components = [
            Some(sub),
            o.total_discount.map(negated),
            o.total_tax,
            o.total_shipping,
        ];
        check(
            "order_components_sum",
            "subtotal - discount + tax + shipping",
            o.total,
            parts(components.iter().flatten()),
        );
        check(
            "order_lines_sum",
            "line items (unit price x quantity) against the subtotal",
            sub,
            priced_lines(o).and_then(lines_parts),
        );
    } else if let Some(lines) = priced_lines(o) {
        // No subtotal to check the lines against: the lines, less the
        // discounts, plus tax and shipping, must make the total.
        check(
            "order_lines_total",
            "line items (unit price x quantity) - discount + tax + shipping",
            o.total,
            lines_total(o, lines),
        );
    }
    if let (Some(td), false) = (o.total_discount, o.discounts.is_empty()) {
        check(
            "order_discounts_sum",
            "discounts",
            td,
            parts(o.discounts.iter().map(|d| &d.amount)),
        );
    }
    findings
}

/// Lines priced at unit x quantity, when every line has a price (None
/// otherwise); a product that overflows is None in its place.
fn priced_lines(o: &StorefrontOrder) -> Option<Vec<Option<Money>>> {
    let lines: Option<Vec<Option<Money>>> = o
        .line_items
        .iter()
        .map(|l| {
            let p = l.unit_price?;
            let amount = p.amount.checked_mul(Decimal::from(l.quantity));
            Some(amount.map(|a| Money::new(a, p.currency)))
        })
        .collect();
    lines.filter(|l| !l.is_empty())
}

/// The priced lines' sum, or an overflow where a product overflowed.
fn lines_parts(lines: Vec<Option<Money>>) -> Option<Parts> {
    match lines.into_iter().collect::<Option<Vec<Money>>>() {
        Some(l) => parts(l.iter()),
        None => Some(Parts::Overflow),
    }
}

/// The order's total from its lines: each line's unit price x quantity,
/// less the order's discount (or, without one, its lines'), plus its tax
/// (or its lines') and shipping.
fn lines_total(o: &StorefrontOrder, lines: Vec<Option<Money>>) -> Option<Parts> {
    let Some(mut items) = lines.into_iter().collect::<Option<Vec<Money>>>() else {
        return Some(Parts::Overflow);
    };
    let line_parts = |f: fn(&LineItem) -> Option<Money>| o.line_items.iter().filter_map(f);
    match o.total_discount {
        Some(d) => items.push(negated(d)),
        None => items.extend(line_parts(|l| l.discount).map(negated)),
    }
    match o.total_tax {
        Some(t) => items.push(t),
        None => items.extend(line_parts(|l| l.tax)),
    }
    items.extend(o.total_shipping);
    parts(items.iter())
}

/// An invoice's lines (each a gross line amount), less its discount, plus
/// its tax and shipping, must make its total. Checked when every line
/// states an amount.
fn invoice_lines_sum(tolerance: &TolerancePolicy, r: &Record, i: &Invoice) -> Option<Finding> {
    let lines: Vec<Money> = i
        .lines
        .iter()
        .map(|l| l.amount)
        .collect::<Option<Vec<Money>>>()
        .filter(|l| !l.is_empty())?;
    let mut items = lines;
    items.extend(i.discount.map(negated));
    items.extend(i.tax);
    items.extend(i.shipping);
    inconsistent(
        tolerance,
        ("invoice_lines_sum", Handoff::FulfillmentToInvoice),
        r,
        "lines - discount + tax + shipping",
        i.total,
        parts(items.iter())?,
    )
}

fn balance_net(tolerance: &TolerancePolicy, r: &Record, b: &BalanceTransaction) -> Option<Finding> {
    let net = b.net?;
    let fee = b.fee.map(negated);
    inconsistent(
        tolerance,
        ("balance_transaction_net", Handoff::PaymentToCashApplication),
        r,
        "net = amount - fee",
        net,
        parts([Some(b.amount), fee].iter().flatten())?,
    )
}

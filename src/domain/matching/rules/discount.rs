//! Discount mapping (seed 004: 14% of ghost revenue). The storefront took
//! a discount; the ERP's invoices carry none and bill the full retail
//! price, the discount left as an unexplained difference (a receivable
//! nobody will pay). DISCOUNT_UNMAPPED, the discount at risk, instead of
//! a plain AMOUNT_MISMATCH of the totals.

use super::Context;
use crate::domain::matching::findings::{ExceptionType, Finding};
use crate::domain::money::Money;
use crate::domain::record::{Body, StorefrontOrder};

/// `f`, the order total against the invoiced total, retyped when its
/// difference is exactly the order's discount, over-billed, on invoices
/// that carry no discount.
pub(crate) fn unmapped(
    ctx: &Context<'_>,
    o: &StorefrontOrder,
    inv: Money,
    mut f: Finding,
) -> Finding {
    let Some(discount) = o.total_discount.filter(|d| !d.amount.is_zero()) else {
        return f;
    };
    let unbilled = ctx.invoices.iter().all(
        |i| matches!(&i.body, Body::Invoice(b) if b.discount.is_none_or(|d| d.amount.is_zero())),
    );
    let full_price = o.total.checked_add(&discount);
    if !unbilled
        || inv.amount <= o.total.amount
        || !full_price.is_some_and(|full| ctx.policy.tolerance.agree(&full, &inv))
    {
        return f;
    }
    let codes: Vec<&str> = o.discounts.iter().map(|d| d.code.as_str()).collect();
    f.exception_type = ExceptionType::DiscountUnmapped;
    f.rule = "discount_unmapped".into();
    f.summary.push_str(&format!(
        "; that is the order's discount of {discount}{}, which the invoices do not carry: the ERP bills full retail",
        if codes.is_empty() {
            String::new()
        } else {
            format!(" (codes {})", codes.join(","))
        }
    ));
    f.difference = Some(discount);
    f
}

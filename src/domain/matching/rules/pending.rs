//! Pending reasons: what is still expected before the order can be called
//! matched. These are not findings; they leave the order PENDING.

use super::Context;

pub(crate) fn reasons(ctx: &Context<'_>) -> Vec<String> {
    let mut pending = vec![];
    if ctx.order.is_none() {
        pending.push("waiting for the storefront order".to_string());
    }
    if ctx.partly_shipped() {
        pending.extend(shipping_progress(ctx));
    }
    if let Some(progress) = multicapture_progress(ctx) {
        pending.push(progress);
    }
    if ctx.invoices.is_empty() {
        pending.push("waiting for an ERP invoice".to_string());
    }
    if ctx.totals.captured.is_none_or(|c| c.amount.is_zero()) {
        pending.push("waiting for payment capture".to_string());
    }
    if let Some(refunded) = ctx.totals.storefront_refunded
        && ctx.credit_memos.is_empty()
        && !refunded.amount.is_zero()
    {
        pending.push(format!(
            "storefront refunds of {refunded} not yet credited in the ERP"
        ));
    }
    pending
}

/// A multicapture under way: say how far it has got. See
/// `Context::capturing`.
fn multicapture_progress(ctx: &Context<'_>) -> Option<String> {
    let (_, o) = ctx.order?;
    let captured = ctx.totals.captured?;
    // Once shipped, `multicapture::held` says it with the deadline.
    (ctx.capturing() && ctx.fulfilments.is_empty()).then(|| {
        format!(
            "captured {captured} of {} so far; awaiting further captures",
            o.total
        )
    })
}

/// While shipping is partial the totals are not compared; say how far
/// each side has got instead.
fn shipping_progress(ctx: &Context<'_>) -> Vec<String> {
    let mut out = vec![format!(
        "{} of {} units shipped",
        ctx.shipped_units(),
        ctx.ordered_units()
    )];
    if let Some((_, o)) = ctx.order {
        let totals = &ctx.totals;
        for (what, figure) in [("invoiced", totals.invoiced), ("captured", totals.captured)] {
            if let Some(f) =
                figure.filter(|f| f.currency == o.total.currency && f.amount < o.total.amount)
            {
                out.push(format!("{what} {f} of {}", o.total));
            }
        }
    }
    out
}

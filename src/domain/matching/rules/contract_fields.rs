//! The contracts' required fields and formats (`handoff::fields`): a
//! record missing what its handoff's contract requires (an unmapped SKU,
//! an id in the wrong format, a missing reference) is VALIDATION_FAILED,
//! one exception per record and rule, with the record's money at risk. A
//! corrected version of the record resolves it.

use super::Context;
use crate::domain::matching::findings::{ExceptionType, Finding, Observation, record_subject};
use crate::domain::money::Money;
use crate::domain::record::Record;

pub(crate) fn all(ctx: &Context<'_>) -> Vec<Finding> {
    let order = ctx.order.map(|(_, o)| o);
    let mut out = vec![];
    for rule in &ctx.policy.field_rules {
        for r in ctx.records.iter().map(|sr| &sr.record) {
            // Only the current version of the order is judged.
            if matches!(r.body, crate::domain::record::Body::StorefrontOrder(_))
                && !ctx.order.is_some_and(|(cur, _)| std::ptr::eq(cur, r))
            {
                continue;
            }
            let problems = rule.problems(order, r);
            if problems.is_empty() {
                continue;
            }
            out.push(finding(rule, r, &problems));
        }
    }
    out
}

fn finding(
    rule: &crate::domain::handoff::fields::FieldRule,
    r: &Record,
    problems: &[String],
) -> Finding {
    let at_risk = r
        .headline_amount()
        .map(|m| Money::new(m.amount.abs(), m.currency));
    Finding {
        exception_type: ExceptionType::ValidationFailed,
        handoff: rule.handoff(),
        rule: "contract_fields".into(),
        subject: format!("{}#{:?}", record_subject(r), rule),
        summary: format!(
            "{} {} ({}) breaks the {} contract ({}): {}",
            r.kind().as_str(),
            r.source_id,
            r.source_system,
            crate::domain::handoff::contract_id(rule.handoff()),
            rule.as_str(),
            problems.join("; ")
        ),
        observations: vec![Observation::of(r, r.headline_amount())],
        difference: at_risk,
    }
}

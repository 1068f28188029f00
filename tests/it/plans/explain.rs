//! Reading plans: a statement's plan as PostgreSQL explains it (custom and
//! generic), and the checks every hot statement's plan must pass.

use serde_json::Value;
use tally::storage::INDEX_ORDER;

/// Every node of a JSON plan, subplans included.
pub(crate) fn nodes(plan: &Value, out: &mut Vec<Value>) {
    out.push(plan.clone());
    if let Some(children) = plan.get("Plans").and_then(Value::as_array) {
        for c in children {
            nodes(c, out);
        }
    }
}

/// Every node of the plan `EXPLAIN (FORMAT JSON) {statement}` shows.
pub(crate) async fn explained(c: &tokio_postgres::Client, statement: &str) -> Vec<Value> {
    let row = c
        .query_one(&format!("EXPLAIN (FORMAT JSON) {statement}"), &[])
        .await
        .unwrap();
    let json: Value = row.get(0);
    let mut all = vec![];
    nodes(&json[0]["Plan"], &mut all);
    all
}

/// The plan of `sql` run as a prepared statement with `args` (SQL
/// literals), as a custom plan and as a generic one: diesel prepares each
/// statement once per connection, and PostgreSQL may switch to the generic
/// plan after five runs.
pub(crate) async fn plans(
    c: &tokio_postgres::Client,
    sql: &str,
    args: &[String],
) -> Vec<Vec<Value>> {
    c.batch_execute(&format!("DEALLOCATE ALL; PREPARE hot AS {sql}"))
        .await
        .unwrap();
    let mut out = vec![];
    for mode in ["force_custom_plan", "force_generic_plan"] {
        c.batch_execute(&format!("SET plan_cache_mode = {mode}"))
            .await
            .unwrap();
        out.push(explained(c, &format!("EXECUTE hot({})", args.join(", "))).await);
    }
    out
}

pub(crate) fn describe(plan: &[Value]) -> String {
    plan.iter()
        .map(|n| {
            format!(
                "{} {} {}",
                n["Node Type"].as_str().unwrap_or(""),
                n["Relation Name"].as_str().unwrap_or(""),
                n["Index Cond"].as_str().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n  ")
}

/// Lookups: only index probes that bind more than the merchant, no scan of
/// a table, no join that reads one side whole.
pub(super) async fn assert_probes(
    c: &tokio_postgres::Client,
    what: &str,
    sql: &str,
    args: &[String],
) {
    for plan in plans(c, sql, args).await {
        check_probes(what, &plan);
    }
}

/// [`assert_probes`] of one plan.
pub(crate) fn check_probes(what: &str, plan: &[Value]) {
    let shown = describe(plan);
    for n in plan {
        let kind = n["Node Type"].as_str().unwrap_or("");
        assert!(
            !matches!(
                kind,
                "Seq Scan" | "Bitmap Heap Scan" | "Hash Join" | "Merge Join" | "Hash"
            ),
            "{what}: {kind} in\n  {shown}"
        );
        if kind.starts_with("Index") {
            let cond = n["Index Cond"].as_str().unwrap_or("");
            assert!(
                cond.contains(" AND "),
                "{what}: an index scan bound by the merchant alone ({cond}) in\n  {shown}"
            );
        }
    }
}

/// Pages: one index scan in the page's order, stopped by the LIMIT; no
/// sort of the merchant's rows.
pub(super) async fn assert_page(
    c: &tokio_postgres::Client,
    what: &str,
    sql: &str,
    args: &[String],
) {
    c.batch_execute(&format!("BEGIN; {INDEX_ORDER}"))
        .await
        .unwrap();
    for plan in plans(c, sql, args).await {
        let shown = describe(&plan);
        assert_eq!(plan[0]["Node Type"], "Limit", "{what}:\n  {shown}");
        for n in &plan {
            let kind = n["Node Type"].as_str().unwrap_or("");
            assert!(
                matches!(kind, "Limit" | "Index Scan"),
                "{what}: {kind} in\n  {shown}"
            );
        }
    }
    c.batch_execute("COMMIT").await.unwrap();
}

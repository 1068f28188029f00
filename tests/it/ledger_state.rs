//! The ledger's observable state, for comparing two runs of the same facts:
//! balance per account and currency, amount open per invoice, each payout's
//! state, and the open exceptions (rule and subject).

use crate::common::TestApp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerState {
    pub balances: Vec<String>,
    pub invoices: Vec<String>,
    pub payouts: Vec<String>,
    pub exceptions: Vec<String>,
}

impl LedgerState {
    pub async fn read(t: &TestApp) -> LedgerState {
        LedgerState {
            balances: rows(
                t,
                "SELECT account || ' ' || currency_code || ' ' || round(sum(debit - credit), 3)::text
                 FROM journal_lines GROUP BY account, currency_code
                 HAVING sum(debit - credit) <> 0 ORDER BY 1",
            )
            .await,
            invoices: rows(
                t,
                "SELECT invoice_id || ' open ' || round(total - applied, 3)::text FROM invoices
                 ORDER BY 1",
            )
            .await,
            payouts: rows(
                t,
                "SELECT payout_id || ' ' || state FROM payouts ORDER BY 1",
            )
            .await,
            exceptions: rows(
                t,
                "SELECT rule || ' ' || subject FROM exceptions WHERE state <> 'resolved'
                 ORDER BY 1",
            )
            .await,
        }
    }

    /// The balance of one account in one currency ("0" when none).
    pub fn balance(&self, account: &str, currency: &str) -> String {
        let prefix = format!("{account} {currency} ");
        self.balances
            .iter()
            .find_map(|b| b.strip_prefix(&prefix))
            .unwrap_or("0")
            .to_string()
    }
}

async fn rows(t: &TestApp, sql: &str) -> Vec<String> {
    t.db.client()
        .await
        .query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

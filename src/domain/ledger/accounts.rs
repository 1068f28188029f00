//! The chart of accounts: the roles Tally books to, with default codes and names that a
//! merchant's configuration overrides to match their ERP.
//!
//! Journal lines name a role, not a code: the chart is applied when entries are exported, so
//! a merchant renumbering an account in the ERP never rewrites the history Tally has booked.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Deserialize;

/// What an account is for in the booking table (DOMAIN.md, "How the money moves").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountRole {
    Bank,
    ProcessorClearing,
    AccountsReceivable,
    UnappliedCash,
    Revenue,
    SalesTaxPayable,
    ShippingIncome,
    SalesDiscounts,
    GiftCardLiability,
    SalesReturns,
    ProcessingFees,
    DisputeFees,
    Chargebacks,
    FxGainLoss,
    Rounding,
}

impl AccountRole {
    pub const ALL: [AccountRole; 15] = [
        AccountRole::Bank,
        AccountRole::ProcessorClearing,
        AccountRole::AccountsReceivable,
        AccountRole::UnappliedCash,
        AccountRole::Revenue,
        AccountRole::SalesTaxPayable,
        AccountRole::ShippingIncome,
        AccountRole::SalesDiscounts,
        AccountRole::GiftCardLiability,
        AccountRole::SalesReturns,
        AccountRole::ProcessingFees,
        AccountRole::DisputeFees,
        AccountRole::Chargebacks,
        AccountRole::FxGainLoss,
        AccountRole::Rounding,
    ];

    /// The snake_case key used in configuration, storage and on the wire.
    pub fn key(self) -> &'static str {
        self.defaults().0
    }

    /// The role a stored key names; None for a key no role has.
    pub fn from_key(key: &str) -> Option<AccountRole> {
        AccountRole::ALL.into_iter().find(|r| r.key() == key)
    }

    /// (key, default code, default name). The codes follow the common 1xxx assets,
    /// 2xxx liabilities, 4xxx income, 5xxx/6xxx expenses layout.
    fn defaults(self) -> (&'static str, &'static str, &'static str) {
        use AccountRole::*;
        match self {
            Bank => ("bank", "1000", "Bank"),
            ProcessorClearing => ("processor_clearing", "1150", "Processor clearing"),
            AccountsReceivable => ("accounts_receivable", "1200", "Accounts receivable"),
            UnappliedCash => ("unapplied_cash", "2050", "Unapplied cash"),
            GiftCardLiability => ("gift_card_liability", "2300", "Gift card liability"),
            SalesTaxPayable => ("sales_tax_payable", "2400", "Sales tax payable"),
            Revenue => ("revenue", "4000", "Revenue"),
            ShippingIncome => ("shipping_income", "4100", "Shipping income"),
            SalesDiscounts => ("sales_discounts", "4500", "Sales discounts"),
            SalesReturns => ("sales_returns", "4600", "Sales returns"),
            Chargebacks => ("chargebacks", "5100", "Chargebacks"),
            ProcessingFees => ("processing_fees", "6100", "Payment processing fees"),
            DisputeFees => ("dispute_fees", "6110", "Dispute fees"),
            FxGainLoss => ("fx_gain_loss", "7100", "Foreign exchange gain/loss"),
            Rounding => ("rounding", "7200", "Rounding differences"),
        }
    }
}

impl fmt::Display for AccountRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// An account as the ERP knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub code: String,
    pub name: String,
}

/// The configuration shape, e.g. in TOML:
/// ```toml
/// [accounts]
/// processing_fees = { code = "6100", name = "Stripe fees" }
/// bank = { code = "1010" }
/// ```
/// Unknown roles and fields inside `[accounts]` are refused, so a typo fails at load instead
/// of silently booking to the default account. Other sections are ignored, so the whole
/// configuration file can be read as a `ChartConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ChartConfig {
    #[serde(default)]
    pub accounts: BTreeMap<AccountRole, AccountOverride>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountOverride {
    pub code: String,
    /// Keeps the default name when left out.
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChartError {
    #[error("accounts.{role}: the code is empty")]
    EmptyCode { role: AccountRole },
    #[error("accounts.{role}: code '{code}' is also used by accounts.{other}")]
    DuplicateCode {
        role: AccountRole,
        other: AccountRole,
        code: String,
    },
}

/// Role -> account, complete for every role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartOfAccounts {
    accounts: BTreeMap<AccountRole, Account>,
}

impl Default for ChartOfAccounts {
    fn default() -> Self {
        let accounts = AccountRole::ALL
            .iter()
            .map(|role| {
                let (_, code, name) = role.defaults();
                let account = Account {
                    code: code.to_string(),
                    name: name.to_string(),
                };
                (*role, account)
            })
            .collect();
        ChartOfAccounts { accounts }
    }
}

impl ChartOfAccounts {
    /// The defaults with `config` applied. Two roles on one code would merge money the
    /// booking table keeps apart (clearing with bank hides every gap), so that is refused.
    pub fn from_config(config: &ChartConfig) -> Result<Self, ChartError> {
        let mut chart = ChartOfAccounts::default();
        for (role, over) in &config.accounts {
            let code = over.code.trim();
            if code.is_empty() {
                return Err(ChartError::EmptyCode { role: *role });
            }
            // Every role is in the defaults, so this always finds the account.
            if let Some(account) = chart.accounts.get_mut(role) {
                account.code = code.to_string();
                if let Some(name) = &over.name {
                    account.name = name.trim().to_string();
                }
            }
        }
        chart.check_codes_unique()?;
        Ok(chart)
    }

    fn check_codes_unique(&self) -> Result<(), ChartError> {
        let mut seen: BTreeMap<&str, AccountRole> = BTreeMap::new();
        for (role, account) in &self.accounts {
            if let Some(other) = seen.insert(&account.code, *role) {
                return Err(ChartError::DuplicateCode {
                    role: *role,
                    other,
                    code: account.code.clone(),
                });
            }
        }
        debug_assert_eq!(
            self.accounts.keys().copied().collect::<BTreeSet<_>>().len(),
            AccountRole::ALL.len()
        );
        Ok(())
    }

    /// Every role with its account, in role order.
    pub fn accounts(&self) -> impl Iterator<Item = (AccountRole, &Account)> {
        self.accounts.iter().map(|(role, account)| (*role, account))
    }

    pub fn account(&self, role: AccountRole) -> &Account {
        // Every constructor fills every role, so this lookup cannot miss.
        &self.accounts[&role]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_cover_every_role_with_distinct_codes() {
        let chart = ChartOfAccounts::default();
        assert!(chart.check_codes_unique().is_ok());
        assert_eq!(chart.account(AccountRole::ProcessingFees).code, "6100");
        assert_eq!(AccountRole::FxGainLoss.key(), "fx_gain_loss");
        assert_eq!(chart.accounts().count(), AccountRole::ALL.len());
        for role in AccountRole::ALL {
            assert_eq!(AccountRole::from_key(role.key()), Some(role));
        }
        assert_eq!(AccountRole::from_key("cash"), None);
    }

    #[test]
    fn a_toml_override_replaces_code_and_optionally_name() {
        let config: ChartConfig = toml::from_str(
            r#"
            [accounts]
            processing_fees = { code = "6150", name = "Stripe fees" }
            bank = { code = "1010" }
            "#,
        )
        .unwrap();
        let chart = ChartOfAccounts::from_config(&config).unwrap();
        let fees = chart.account(AccountRole::ProcessingFees);
        assert_eq!(
            (fees.code.as_str(), fees.name.as_str()),
            ("6150", "Stripe fees")
        );
        let bank = chart.account(AccountRole::Bank);
        assert_eq!((bank.code.as_str(), bank.name.as_str()), ("1010", "Bank"));
        assert_eq!(chart.account(AccountRole::Revenue).code, "4000");
    }

    #[test]
    fn the_accounts_section_is_read_from_a_whole_configuration_file() {
        let config: ChartConfig = toml::from_str(
            "[server]\nlisten = \"127.0.0.1:50051\"\n[accounts]\nrounding = { code = \"7999\" }",
        )
        .unwrap();
        let chart = ChartOfAccounts::from_config(&config).unwrap();
        assert_eq!(chart.account(AccountRole::Rounding).code, "7999");
    }

    #[test]
    fn an_empty_config_is_the_defaults() {
        let config: ChartConfig = toml::from_str("").unwrap();
        assert_eq!(
            ChartOfAccounts::from_config(&config).unwrap(),
            ChartOfAccounts::default()
        );
    }

    #[test]
    fn refuses_unknown_roles_fields_empty_and_shared_codes() {
        assert!(toml::from_str::<ChartConfig>("[accounts]\nbnak = { code = \"1\" }").is_err());
        assert!(
            toml::from_str::<ChartConfig>("[accounts]\nbank = { code = \"1\", nmae = \"x\" }")
                .is_err()
        );
        let empty: ChartConfig = toml::from_str("[accounts]\nbank = { code = \" \" }").unwrap();
        assert_eq!(
            ChartOfAccounts::from_config(&empty),
            Err(ChartError::EmptyCode {
                role: AccountRole::Bank
            })
        );
        let shared: ChartConfig = toml::from_str("[accounts]\nbank = { code = \"1150\" }").unwrap();
        assert!(matches!(
            ChartOfAccounts::from_config(&shared),
            Err(ChartError::DuplicateCode { code, .. }) if code == "1150"
        ));
    }
}

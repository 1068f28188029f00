//! Handoff contracts from the configuration file, and the contract's
//! tolerance judging matching.

use tally::proto::tally::v1 as pb;
use tally::proto::tally::v1::handoff_service_client::HandoffServiceClient;

use crate::common::*;

fn handoffs(app: &TestApp) -> HandoffServiceClient<tonic::transport::Channel> {
    HandoffServiceClient::new(app.channel.clone())
}

#[test]
fn a_bad_configuration_file_stops_start_up_naming_file_line_and_key() {
    let path = std::env::temp_dir().join(format!("tally-handoffs-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "[accounts]\ncash = \"1000\"\n[handoffs.order-to-fulfillment]\nmax_lag = \"soon\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tally"))
        .arg("serve")
        .env("TALLY_CONFIG", &path)
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "{}:4: handoffs.order-to-fulfillment.max_lag",
        path.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
}

#[tokio::test]
async fn the_configuration_file_sets_every_merchants_defaults() {
    let app = TestApp::start().await;
    let defaults = tally::domain::handoff::settings::parse(
        "tally.toml",
        "[tolerance]\nKWD = \"0.005\"\n[handoffs.invoice-to-payment]\nmax_lag = \"2h\"\nowner = \"ar-team\"\n",
    )
    .unwrap();
    tally::app::App::new(tally::storage::Store::connect(&app.db.url, 2).unwrap())
        .install_handoff_defaults(&defaults, true)
        .await
        .unwrap();
    let c = handoffs(&app)
        .get_handoff_contract(pb::GetHandoffContractRequest {
            name: "merchants/initech/handoffContracts/invoice-to-payment".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .handoff_contract
        .unwrap();
    assert_eq!(c.owner, "ar-team");
    assert_eq!(c.max_lag.unwrap().seconds, 7200);
    assert_eq!(
        c.tolerances,
        vec![pb::CurrencyTolerance {
            currency_code: "KWD".into(),
            amount: "0.005".into()
        }]
    );
}

#[tokio::test]
async fn the_contracts_tolerance_judges_amounts_from_then_on() {
    let app = TestApp::start().await;
    let mismatches = |order: &'static str| {
        let app = &app;
        async move {
            app.exceptions(pb::ListExceptionsRequest {
                parent: "merchants/acme".into(),
                r#type: pb::ExceptionType::AmountMismatch as i32,
                transaction: format!("merchants/acme/transactions/{order}"),
                state: pb::ExceptionState::Open as i32,
                ..Default::default()
            })
            .await
            .exceptions
            .len()
        }
    };
    // 30 cents short: a mismatch under the default one-cent tolerance.
    app.submit(vec![order("5501", "100.00"), charge("5501", "99.70")])
        .await
        .unwrap();
    assert_eq!(mismatches("5501").await, 1);
    handoffs(&app)
        .update_handoff_contract(pb::UpdateHandoffContractRequest {
            handoff_contract: Some(pb::HandoffContract {
                name: "merchants/acme/handoffContracts/invoice-to-payment".into(),
                tolerances: vec![pb::CurrencyTolerance {
                    currency_code: "USD".into(),
                    amount: "0.50".into(),
                }],
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["tolerances".into()],
            }),
        })
        .await
        .unwrap();
    // Within the merchant's tolerance now: a new order is clean ...
    app.submit(vec![
        order("5502", "100.00"),
        charge("5502", "99.70"),
        invoice("5502", "100.00"),
    ])
    .await
    .unwrap();
    assert_eq!(mismatches("5502").await, 0);
    assert_eq!(
        app.transaction("5502").await.unwrap().state(),
        pb::ReconciliationState::Matched
    );
    // ... and the old one clears when its order is next re-matched.
    app.submit(vec![invoice("5501", "100.00")]).await.unwrap();
    assert_eq!(mismatches("5501").await, 0);
}

//! `tally keys` and the safe default, through the binary: a key is printed
//! once and works against `serve --auth keys`; `serve` on a non-loopback
//! address without keys refuses to start unless told it may.

use std::process::Command;

use crate::common::*;

fn tally(db: &TestDb, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(args)
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

#[tokio::test]
async fn keys_are_created_listed_and_revoked_by_the_binary() {
    let db = TestDb::new().await;
    let out = tally(
        &db,
        &[
            "keys",
            "create",
            "--merchant",
            "acme",
            "--merchant",
            "globex",
            "--scopes",
            "read,submit",
            "--name",
            "erp",
            "--expires",
            "30d",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(
        key.starts_with("tally_") && key.len() == 6 + 16 + 1 + 64,
        "{key}"
    );
    let id = &key[6..22];
    let list = tally(&db, &["keys", "list"]);
    let listed = String::from_utf8(list.stdout).unwrap();
    assert!(
        listed.contains(id)
            && listed.contains("erp")
            && listed.contains("merchants=acme,globex")
            && listed.contains("scopes=submit,read")
            && listed.contains("live until"),
        "{listed}"
    );
    assert!(!listed.contains(&key[23..]), "the secret is never listed");
    assert!(tally(&db, &["keys", "revoke", id]).status.success());
    let listed = String::from_utf8(tally(&db, &["keys", "list"]).stdout).unwrap();
    assert!(listed.contains("revoked"), "{listed}");
    let missing = tally(&db, &["keys", "revoke", "0000000000000000"]);
    assert!(!missing.status.success());

    let bad = tally(
        &db,
        &["keys", "create", "--merchant", "acme", "--scopes", "root"],
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--scopes"));
}

#[test]
fn serving_the_network_without_keys_needs_to_be_asked_for() {
    let out = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["serve", "--grpc-addr", "0.0.0.0:0"])
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for part in ["0.0.0.0:0", "--auth keys", "--insecure-no-auth"] {
        assert!(stderr.contains(part), "{stderr}");
    }
}

/// `tally trace` against a server that requires keys: refused without
/// one, answered with one (TALLY_API_KEY), the key never echoed.
#[tokio::test]
async fn tally_trace_sends_its_key() {
    let app = TestApp::start_with_keys().await;
    let key = app.key(&["acme"], "read,submit", "oncall").await;
    app.ingest
        .clone()
        .submit_records(keyed(
            tally::proto::tally::v1::SubmitRecordsRequest {
                parent: "merchants/acme".into(),
                request_id: String::new(),
                records: vec![order("1001", "10.00")],
            },
            &key,
        ))
        .await
        .unwrap();
    // Awaited, not blocked on: the server runs on this test's thread.
    let trace = |key: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tally"));
        c.args(["trace", "1001", "--merchant", "acme", "--addr"])
            .arg(app.addr().to_string())
            .env_remove("TALLY_API_KEY");
        if let Some(k) = key {
            c.env("TALLY_API_KEY", k);
        }
        tokio::process::Command::from(c).output()
    };
    let refused = trace(None).await.unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("Unauthenticated"));
    let answered = trace(Some(&key)).await.unwrap();
    let out = String::from_utf8_lossy(&answered.stdout);
    assert!(
        answered.status.success(),
        "{}",
        String::from_utf8_lossy(&answered.stderr)
    );
    assert!(out.contains("1001") && !out.contains(&key[6..]), "{out}");
}

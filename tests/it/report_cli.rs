//! `tally report`: the table people read by default, CSV and JSON for
//! machines, and one self-contained HTML page that a real headless browser
//! (Debian's chromium) renders with its table and both charts. The
//! screenshot is kept in target/tmp for people to look at.

use std::process::Command;

use crate::common::*;

/// Runs the binary off the test's runtime thread: the server under test
/// runs on that thread and must keep answering.
async fn tally_report(app: &TestApp, extra: &[&str]) -> String {
    let addr = app.addr().to_string();
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_tally"))
            .args([
                "report",
                "--merchant",
                "acme",
                "--period",
                "2026-11",
                "--addr",
                &addr,
            ])
            .args(&extra)
            .output()
            .expect("run tally report")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

async fn month(app: &TestApp) {
    let mut o = order("8301", "90.00");
    if let Some(tally::proto::tally::v1::record::Kind::StorefrontOrder(so)) = &mut o.kind {
        so.total_discount = usd("10.00");
    }
    app.submit(vec![o, charge("8301", "90.00"), invoice("8301", "100.00")])
        .await
        .unwrap();
    app.submit(clean_order("8300")).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
}

/// The browser: TALLY_CHROMIUM, else Debian's chromium (.ci/run installs it).
fn chromium() -> String {
    if let Ok(p) = std::env::var("TALLY_CHROMIUM") {
        return p;
    }
    for p in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if std::path::Path::new(p).exists() {
            return p.to_string();
        }
    }
    panic!(
        "no chromium: install Debian's chromium (apt-get install chromium) or set TALLY_CHROMIUM; .ci/run installs it"
    );
}

#[tokio::test]
async fn the_report_prints_as_a_table_csv_and_json() {
    let app = TestApp::start().await;
    month(&app).await;
    let table = tally_report(&app, &[]).await;
    assert!(
        table.contains("merchants/acme period 2026-11 (UTC)"),
        "{table}"
    );
    assert!(table.contains("storefront.gross_sales"), "{table}");
    assert!(table.contains("discount_mapping"), "{table}");
    assert!(table.contains("completeness: "), "{table}");

    let json: serde_json::Value =
        serde_json::from_str(&tally_report(&app, &["--format", "json"]).await).unwrap();
    let digest = json["digest"].as_str().unwrap().to_string();
    assert_eq!(digest.len(), 64);
    // As of the JSON's own time, the report is the same, in any format.
    let as_of = json["as_of"].as_str().unwrap().to_string();
    let table_then = tally_report(&app, &["--as-of", &as_of]).await;
    assert!(
        table_then.contains(&digest),
        "the table states the digest: {table_then}"
    );
    let again: serde_json::Value =
        serde_json::from_str(&tally_report(&app, &["--format", "json", "--as-of", &as_of]).await)
            .unwrap();
    assert_eq!(again["digest"], json["digest"]);

    let csv = tally_report(&app, &["--format", "csv"]).await;
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("section,figure,currency,amount,count"));
    assert!(csv.contains("figures,erp.invoiced,USD,200,2"), "{csv}");
}

#[tokio::test]
async fn the_html_page_renders_in_a_real_browser_with_its_table_and_charts() {
    let app = TestApp::start().await;
    month(&app).await;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let page = dir.join("tally-report.html");
    tally_report(&app, &["--format", "html", "--out", page.to_str().unwrap()]).await;
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: nothing to fetch, nothing to run.
    for banned in ["<script", "src=\"http", "href=\"http", "<link"] {
        assert!(!html.contains(banned), "{banned} in the page");
    }
    let browser = chromium();
    let url = format!("file://{}", page.display());
    let base = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-dev-shm-usage",
    ];
    let dom = Command::new(&browser)
        .args(base)
        .args(["--dump-dom", &url])
        .output()
        .expect("run chromium");
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.contains("<table id=\"figures\">"), "{dom}");
    assert!(dom.contains("storefront.gross_sales"), "{dom}");
    for chart in ["ghost-chart", "completeness-chart"] {
        let at = dom
            .find(&format!("id=\"{chart}\""))
            .unwrap_or_else(|| panic!("{chart} missing"));
        let svg = &dom[at..at + dom[at..].find("</svg>").unwrap()];
        assert!(svg.contains("<rect"), "{chart} has no bars: {svg}");
    }
    assert!(dom.contains("id=\"digest\""));

    let shot = dir.join("tally-report.png");
    let _ = std::fs::remove_file(&shot);
    let out = Command::new(&browser)
        .args(base)
        .args(["--window-size=1000,1400", "--hide-scrollbars"])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
}

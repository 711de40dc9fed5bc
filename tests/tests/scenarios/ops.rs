#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is the failure report.

//! A ledger as an operator runs it: health and readiness probes, Prometheus counts, JSON log lines with no
//! key in them, and SIGTERM answered by a clean stop.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use custodia_tests::{custodia_bin, http_client, json, key_of, ok, tls_args};

#[test]
fn an_operator_probes_counts_and_stops_a_ledger() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(dir, &["wallet", "init", "--wallet", "authority"]);
    ok(dir, &["wallet", "init", "--wallet", "patient"]);
    let (authority, _) = key_of(dir, "authority");
    let (patient, _) = key_of(dir, "patient");
    ok(dir, &["ledger", "init", "--dir", "ledger", "--authority", &authority]);
    let mut child = Command::new(custodia_bin())
        .args(["ledger", "serve", "--dir", "ledger", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(tls_args())
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    let url = first.trim().strip_prefix("listening on ").unwrap().to_owned();
    let http = http_client();

    let health: serde_json::Value = http.get(format!("{url}/healthz")).send().unwrap().json().unwrap();
    assert_eq!(health["status"], "ok");
    let ready = http.get(format!("{url}/readyz")).send().unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<serde_json::Value>().unwrap()["size"], 0);

    ok(dir, &["wallet", "enroll", "--wallet", "patient", "--ledger", &url]);
    let refused = http.post(format!("{url}/v1/entries")).header("content-type", "application/json").body("{}").send();
    assert_eq!(refused.unwrap().status(), 400);

    let response = http.get(format!("{url}/metrics")).send().unwrap();
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let metrics = response.text().unwrap();
    for line in [
        "custodia_ledger_appends_total 1",
        "custodia_ledger_refusals_total{reason=\"malformed\"} 1",
        "custodia_ledger_refusals_total{reason=\"bad-signature\"} 0",
        "custodia_ledger_tree_size 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line:?} not in:\n{metrics}");
    }

    // SIGTERM, as systemd stops a unit: the ledger finishes and says so.
    let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(term.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let lines: Vec<serde_json::Value> = stderr.lines().map(json).collect();
    assert!(
        lines.iter().any(|l| l["component"] == "custodia-ledger" && l["message"] == "stopped" && l["level"] == "info"),
        "{stderr}"
    );
    assert!(lines.iter().all(|l| l["time"].as_str().is_some_and(|t| t.ends_with('Z'))), "{stderr}");
    assert!(!stderr.contains(&patient) && !stderr.contains(&authority), "no key in the log: {stderr}");
}

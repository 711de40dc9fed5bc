//! The patient's loop through real processes: `custodia wallet watch` follows the ledger's stream and
//! tells the patient of each read within seconds, in words, delivered as their preferences say.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is the failure report.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use custodia_tests::{custodia, er_fetch, grant_create, json, ok};
use serde_json::Value;

use crate::gateway::{grant_to_gp, network, serve_gateway};

/// `custodia wallet watch --json` for the patient, its notices and its status lines as channels.
struct Watch {
    child: Child,
    notices: Receiver<Value>,
    status: Receiver<String>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn watch(dir: &std::path::Path) -> Watch {
    let mut child = Command::new(custodia_tests::custodia_bin())
        .args(["wallet", "watch", "--wallet", "patient", "--json"])
        .current_dir(dir)
        .env("CUSTODIA_PASSPHRASE", custodia_tests::PASSPHRASE)
        .env("CUSTODIA_CA_FILE", &custodia_tests::pki().ca_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (notice_tx, notices) = channel();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = notice_tx.send(serde_json::from_str::<Value>(&line).expect("each line is one JSON notice"));
        }
    });
    let (status_tx, status) = channel();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = status_tx.send(line);
        }
    });
    Watch { child, notices, status }
}

/// A read by the GP through the gateway, of `resource_type`; true if it was answered.
fn read(dir: &std::path::Path, gateway: &str, resource_type: &str) -> bool {
    let run = custodia(dir, &er_fetch("gp", gateway, resource_type, &["--grant-file", "gp.json"]));
    run.code == 0
}

/// The next notice, and how long after `since` it arrived.
fn next_notice(watch: &Watch, since: Instant) -> (Value, Duration) {
    let notice = watch.notices.recv_timeout(Duration::from_secs(20)).expect("a notice arrives");
    (notice, since.elapsed())
}

#[test]
fn the_patient_is_told_of_each_read_within_seconds_as_their_preferences_say() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let net = network(dir);
    ok(dir, &["gateway", "link", "--dir", "gw", "--patient", &net.patient_key, "--fhir-id", "p1"]);
    let gateway = serve_gateway(dir, &net.ledger.url);
    grant_to_gp(dir, "gp.json", 10);

    let prefs = json(&ok(dir, &["wallet", "prefs", "--wallet", "patient", "--json"]));
    assert_eq!(prefs["new-reader"], "instant");
    assert_eq!(prefs["routine"], "summary");

    let w = watch(dir);
    let live = w.status.recv_timeout(Duration::from_secs(30)).expect("the watch says how it follows the log");
    assert!(live.contains("Following the ledger"), "{live}");

    // The GP's first read: a new reader, told at once, in words.
    let asked = Instant::now();
    assert!(read(dir, &gateway.url, "Condition"));
    let (first, first_after) = next_notice(&w, asked);
    assert_eq!(first["kind"], "new-reader", "{first}");
    assert_eq!(first["delivery"], "instant");
    let text = first["text"].as_str().unwrap();
    assert!(text.starts_with("Dr Grace Hopper at Riverside Clinic read your health conditions ("), "{text}");
    assert!(!text.contains("Condition"), "no FHIR type in what the patient reads: {text}");

    // A second read by the same GP is routine: the daily summary, by default.
    let asked = Instant::now();
    assert!(read(dir, &gateway.url, "Condition"));
    let (second, second_after) = next_notice(&w, asked);
    assert_eq!((second["kind"].as_str(), second["delivery"].as_str()), (Some("routine"), Some("summary")));

    // The patient asks to be told of every read; the running watch uses it from the next notice on.
    ok(dir, &["wallet", "prefs", "--wallet", "patient", "--set", "routine=instant"]);
    let asked = Instant::now();
    assert!(read(dir, &gateway.url, "Condition"));
    let (third, third_after) = next_notice(&w, asked);
    assert_eq!((third["kind"].as_str(), third["delivery"].as_str()), (Some("routine"), Some("instant")));

    // An attempt outside the grant: refused, and said why in words.
    let asked = Instant::now();
    assert!(!read(dir, &gateway.url, "AllergyIntolerance"));
    let (refused, refused_after) = next_notice(&w, asked);
    assert_eq!((refused["kind"].as_str(), refused["delivery"].as_str()), (Some("refused"), Some("instant")));
    let text = refused["text"].as_str().unwrap();
    assert!(
        text.contains("tried to read your allergies and was refused: their permission does not cover those records"),
        "{text}"
    );

    // Within seconds each time, far inside the fallback's 15 s poll: the stream carried them.
    for (what, after) in
        [("first", first_after), ("second", second_after), ("third", third_after), ("refused", refused_after)]
    {
        eprintln!("{what} read told after {} ms", after.as_millis());
        assert!(after < Duration::from_secs(10), "the {what} notice took {after:?}");
    }
    assert!(w.notices.try_recv().is_err(), "one notice per entry");
}

/// The ids of a FHIR Bundle's resources, as `Type/id`.
fn references(bundle: &Value) -> Vec<String> {
    let mut refs: Vec<String> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!("{}/{}", e["resource"]["resourceType"].as_str().unwrap(), e["resource"]["id"].as_str().unwrap())
        })
        .collect();
    refs.sort();
    refs
}

#[test]
fn the_patient_reads_their_own_records_and_a_preview_shows_what_the_clinician_then_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let net = network(dir);
    ok(dir, &["gateway", "link", "--dir", "gw", "--patient", &net.patient_key, "--fhir-id", "p1"]);
    let gateway = serve_gateway(dir, &net.ledger.url);
    let gw = gateway.url.as_str();

    // Every record of theirs, sensitive ones included, as a FHIR Bundle.
    let summary = ok(dir, &["records", "--wallet", "patient", "--gateway", gw, "--out", "mine.json"]);
    assert!(summary.contains("your lab results: "), "{summary}");
    assert!(!summary.contains("Observation"), "plain words, not FHIR types: {summary}");
    let mine: Value = serde_json::from_slice(&std::fs::read(dir.join("mine.json")).unwrap()).unwrap();
    assert_eq!((mine["resourceType"].as_str(), mine["type"].as_str()), (Some("Bundle"), Some("collection")));
    let own = references(&mine);
    assert!(own.contains(&"Observation/p1-hiv-result".to_owned()), "the patient sees their sensitive records");
    assert!(own.iter().any(|r| r.starts_with("AllergyIntolerance/")), "{own:?}");

    // A lab-results grant to the GP, previewed before it is given.
    let (gp_key, _) = custodia_tests::key_of(dir, "gp");
    let scope = "patient/Observation.rs?category=laboratory";
    let preview = json(&ok(
        dir,
        &["grant", "preview", "--wallet", "patient", "--gateway", gw, "--to", &gp_key, "--scope", scope, "--json"],
    ));
    let mut released: Vec<String> =
        preview["released"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_owned()).collect();
    released.sort();
    assert!(!released.is_empty() && released.iter().all(|r| r.starts_with("Observation/")), "{released:?}");
    let hidden = preview["hidden"].as_array().unwrap();
    let hiv = hidden.iter().find(|h| h["record"] == "Observation/p1-hiv-result").expect("the HIV test stays hidden");
    assert!(hiv["why"].as_str().unwrap().contains("label"), "{hiv}");
    assert_eq!(released.len() + hidden.len(), own.len(), "every record is either released or hidden");
    let words =
        ok(dir, &["grant", "preview", "--wallet", "patient", "--gateway", gw, "--to", &gp_key, "--scope", scope]);
    assert!(words.contains("marked sensitive"), "{words}");

    // The grant given: the GP reads exactly what the preview showed.
    let extra = ["--post", "--out", "labs.json"];
    ok(dir, &grant_create("patient", &gp_key, scope, "TREAT", "1h", &extra));
    let extra = ["--category", "laboratory", "--grant-file", "labs.json", "--json"];
    let read = ok(dir, &er_fetch("gp", gw, "Observation", &extra));
    assert_eq!(references(&json(&read)), released, "the preview matches what the clinician reads");

    // The patient's own reads are in their log, as theirs.
    let synced = json(&ok(dir, &["wallet", "sync", "--wallet", "patient", "--json"]));
    let own_reads = synced["access_events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reader"] == net.patient_key.as_str() && e["purpose"] == "PATRQT" && e["outcome"] == "allowed")
        .count();
    assert!(own_reads >= 2, "the download and the preview's reads are logged: {own_reads}");
}

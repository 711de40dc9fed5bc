//! The record gateway and both emergency flows, end to end, as their users run them: `custodia` processes
//! for the ledger, the gateway and every wallet, real SQLite files, real HTTP on loopback.
//!
//! An emergency room shows a signed request; the patient scans and approves it; the ER reads the allowed
//! records and not the mental-health note; the patient revokes and the next read is refused. An expired
//! grant, a stolen grant without its grantee's key, a replayed request and a stale one are refused. The
//! patient's emergency card is honoured for an enrolled emergency provider, as break-glass, and refused
//! for an ordinary provider. Every one of these is in the patient's verified access log.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is the failure report.

use std::path::Path;
use std::time::{Duration, Instant};

use custodia_core::entry::{EntryNonce, statement_digest};
use custodia_core::time::Timestamp;
use custodia_core::{Identity, MasterSeed, reqsig};
use custodia_tests::{Member, Run, Server, custodia, enroll_member, json, key_of, ok};
use custodia_wallet::fhir_client::GatewayClient;
use serde_json::Value;

/// The text an independent decoder (zbar's `zbarimg`) reads from an image, or `None` where zbar is not
/// installed (CI installs it, so there the check always runs).
fn zbar(image: &Path) -> Option<String> {
    let out = match std::process::Command::new("zbarimg")
        .args(["--quiet", "--raw", "-Sdisable", "-Sqrcode.enable"])
        .arg(image)
        .output()
    {
        Ok(out) => out,
        Err(_) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("zbarimg is not installed: the independent-decoder check is skipped here");
            return None;
        }
        Err(e) => panic!("zbarimg: {e}"),
    };
    assert!(
        out.status.success(),
        "zbarimg could not read {}: {}",
        image.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The printed card's PDF, rasterised by poppler as a printer would, then read by zbar.
fn zbar_pdf(pdf: &Path) -> Option<String> {
    let prefix = pdf.with_extension("page");
    match std::process::Command::new("pdftoppm")
        .args(["-png", "-r", "300", "-singlefile"])
        .arg(pdf)
        .arg(&prefix)
        .status()
    {
        Ok(status) => assert!(status.success(), "pdftoppm could not render {}", pdf.display()),
        Err(_) if std::env::var("CI").as_deref() != Ok("true") => return None,
        Err(e) => panic!("pdftoppm: {e}"),
    }
    zbar(&prefix.with_extension("png"))
}

fn ids(bundle: &Value) -> Vec<String> {
    assert_eq!(bundle["resourceType"], "Bundle", "{bundle}");
    bundle["entry"]
        .as_array()
        .map(|e| e.iter().map(|e| e["resource"]["id"].as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

fn now() -> Timestamp {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    Timestamp::from_unix(secs as i64).unwrap()
}

/// Syncs the patient's wallet until its log holds `want` events (the gateway posts them moments after
/// answering), and returns them.
fn access_log(dir: &Path, wallet: &str, want: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let synced = json(&ok(dir, &["wallet", "sync", "--wallet", wallet, "--json"]));
        let events = synced["access_events"].as_array().cloned().unwrap_or_default();
        if events.len() >= want || Instant::now() > deadline {
            return events;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn emergency_room_request_card_and_every_refusal_end_up_in_the_patients_verified_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for (wallet, name) in [
        ("authority", "Network authority"),
        ("er", "Dr Rosa Lee"),
        ("gp", "Dr Grace Hopper"),
        ("patient", "Alice Martin"),
        ("mum", "Joan Martin"),
        ("brother", "Luc Martin"),
    ] {
        ok(dir, &["wallet", "init", "--wallet", wallet, "--name", name]);
    }
    let gateway_init = json(&ok(dir, &["gateway", "init", "--dir", "gw", "--name", "St Mary's gateway", "--json"]));
    let (authority, _) = key_of(dir, "authority");
    let (er_key, er_box) = key_of(dir, "er");
    let (gp_key, gp_box) = key_of(dir, "gp");
    let (patient_key, _) = key_of(dir, "patient");
    ok(dir, &["ledger", "init", "--dir", "ledger", "--authority", &authority]);
    let ledger = Server::start(
        dir,
        &["ledger", "serve", "--dir", "ledger", "--listen", "127.0.0.1:0", "--rate-limit", "100000"],
    );
    let url = ledger.url.as_str();
    let enroll = |key: &str, box_key: &str, role: &str, name: &str, org: &str| {
        enroll_member(dir, "authority", url, Member { key, box_key, role, name, org });
    };
    enroll(&er_key, &er_box, "emergency", "Dr Rosa Lee", "St Mary's Emergency Department");
    enroll(&gp_key, &gp_box, "provider", "Dr Grace Hopper", "Riverside Clinic");
    enroll(
        gateway_init["signing_key"].as_str().unwrap(),
        gateway_init["encryption_key"].as_str().unwrap(),
        "gateway",
        "St Mary's gateway",
        "St Mary's Hospital",
    );
    ok(dir, &["wallet", "enroll", "--wallet", "patient", "--ledger", url]);
    // Two guardians, who must hear of any emergency-card read.
    for g in ["mum", "brother"] {
        ok(dir, &["wallet", "enroll", "--wallet", g, "--ledger", url]);
        ok(dir, &["wallet", "show", "--wallet", g, "--qr", &format!("{g}.png")]);
    }
    ok(dir, &["guardian", "add", "--wallet", "patient", "--contact", "mum.png", "--contact", "brother.png"]);
    for g in ["mum", "brother"] {
        ok(dir, &["guardian", "inbox", "--wallet", g]);
    }
    ok(dir, &["gateway", "link", "--dir", "gw", "--patient", &patient_key, "--fhir-id", "p1"]);
    let gateway = Server::start(dir, &["gateway", "serve", "--dir", "gw", "--ledger", url, "--listen", "127.0.0.1:0"]);
    let gw = gateway.url.as_str();

    // The FHIR face: a CapabilityStatement, and nothing without a grant.
    let http = custodia_tests::http_client();
    let meta: Value = http.get(format!("{gw}/fhir/metadata")).send().unwrap().json().unwrap();
    assert_eq!(meta["resourceType"], "CapabilityStatement");
    let bare = http.get(format!("{gw}/fhir/AllergyIntolerance?patient=p1")).send().unwrap();
    assert_eq!(bare.status(), 401);

    // 1. The ER shows a request; the patient scans it, sees it verified, and approves it.
    let asked = json(&ok(
        dir,
        &[
            "er",
            "request",
            "--wallet",
            "er",
            "--ledger",
            url,
            "--scope",
            "patient/AllergyIntolerance.rs",
            "--scope",
            "patient/Condition.rs",
            "--scope",
            "patient/Observation.rs?category=laboratory",
            "--scope",
            "patient/DocumentReference.rs",
            "--purpose",
            "ETREAT",
            "--for",
            "12h",
            "--qr",
            "request.png",
            "--json",
        ],
    ));
    assert!(asked["version"].as_i64().unwrap() <= 15, "{asked}");
    if let Some(text) = zbar(&dir.join("request.png")) {
        assert_eq!(text, asked["text"].as_str().unwrap(), "zbar reads the request as written");
    }
    let shown = json(&ok(dir, &["scan", "request.png", "--wallet", "patient", "--json"]));
    assert_eq!(shown["requester"]["name"], "Dr Rosa Lee");
    assert_eq!(shown["requester"]["organisation"], "St Mary's Emergency Department");
    assert_eq!(shown["requester"]["role"], "emergency");
    let approved = json(&ok(dir, &["scan", "request.png", "--wallet", "patient", "--approve", "--json"]));
    let grant_id = approved["grant"].as_str().unwrap().to_owned();
    let waited = ok(dir, &["er", "wait", "--wallet", "er", "--timeout", "20s"]);
    assert_eq!(waited.trim(), grant_id);

    // 2. The first record, and the mental-health note withheld without a hint.
    let fetch = |wallet: &str, extra: &[&str]| -> Run {
        let mut args = vec!["er", "fetch", "--wallet", wallet, "--gateway", gw, "--json"];
        args.extend_from_slice(extra);
        custodia(dir, &args)
    };
    let allergies = fetch("er", &["--type", "AllergyIntolerance"]);
    assert_eq!(allergies.code, 0, "{}", allergies.stderr);
    let found = ids(&json(&allergies.stdout));
    assert!(!found.is_empty() && found.iter().all(|id| id.starts_with("p1-")), "{found:?}");
    let notes = json(&fetch("er", &["--type", "DocumentReference"]).stdout);
    let note_ids = ids(&notes);
    assert!(
        note_ids.contains(&"p1-visit-note".to_owned()) && !note_ids.contains(&"p1-psy-note".to_owned()),
        "{note_ids:?}"
    );
    assert_eq!(notes["total"].as_u64().unwrap() as usize, note_ids.len(), "the total must not count withheld records");
    let psy = fetch("er", &["--type", "DocumentReference", "--id", "p1-psy-note"]);
    assert_eq!(psy.code, 1, "{}", psy.stdout);
    let missing = fetch("er", &["--type", "DocumentReference", "--id", "p1-no-such-note"]);
    assert_eq!(missing.code, 1);
    assert_eq!(psy.stderr, missing.stderr, "a withheld record and a missing one must look the same");
    assert!(!psy.stderr.contains("PSY"), "{}", psy.stderr);
    let hiv = json(&fetch("er", &["--type", "Observation", "--category", "laboratory"]).stdout);
    assert!(!ids(&hiv).contains(&"p1-hiv-result".to_owned()));
    let outside = fetch("er", &["--type", "MedicationRequest"]);
    assert_eq!(outside.code, 1, "a type outside the grant is refused");

    // 3. A stolen grant without the grantee's key, a replayed request and a stale one.
    let (grant, er_identity) = {
        let w = custodia_wallet::Wallet::open(
            &dir.join("er"),
            custodia_wallet::vault::Passphrase::new(custodia_tests::PASSPHRASE.into()).unwrap(),
        )
        .unwrap();
        (w.received_grant(grant_id.parse().unwrap()).unwrap(), w.service_identity())
    };
    let client = GatewayClient::new(gw).unwrap();
    let thief = Identity::from_seed(&MasterSeed::generate());
    let stolen = client.get("/fhir/AllergyIntolerance", &grant, &thief, None, None, now()).unwrap();
    assert_eq!(stolen.status, 403, "{}", stolen.body);
    let target = format!("{gw}/fhir/Condition");
    let binding = statement_digest(grant.envelope());
    let grant_header = data_encoding::BASE64URL_NOPAD.encode(grant.to_compact_json().as_bytes());
    let signed = reqsig::sign_bound(&er_identity, "GET", &target, &binding, now(), &EntryNonce::generate());
    let send = |signature: &str| {
        http.get(&target)
            .header("custodia-grant", &grant_header)
            .header("custodia-signature", signature)
            .send()
            .unwrap()
    };
    assert_eq!(send(&signed).status(), 200);
    assert_eq!(send(&signed).status(), 401, "a replay is refused");
    let stale_at = Timestamp::from_unix(now().unix() - 300).unwrap();
    let stale = reqsig::sign_bound(&er_identity, "GET", &target, &binding, stale_at, &EntryNonce::generate());
    assert_eq!(send(&stale).status(), 401, "a request outside its time window is refused");
    let elsewhere = reqsig::sign_bound(
        &er_identity,
        "GET",
        "http://127.0.0.1:1/fhir/Condition",
        &binding,
        now(),
        &EntryNonce::generate(),
    );
    assert_eq!(send(&elsewhere).status(), 401, "a request signed for another gateway is refused");

    // 4. Revocation: pushed to the gateway by the ledger's feed, refused within a second of being logged.
    ok(dir, &["grant", "revoke", "--wallet", "patient", &grant_id]);
    let revoked = Instant::now();
    let target = format!("{gw}/fhir/AllergyIntolerance?patient=p1");
    let after = loop {
        let signed = reqsig::sign_bound(&er_identity, "GET", &target, &binding, now(), &EntryNonce::generate());
        let answer = http
            .get(&target)
            .header("custodia-grant", &grant_header)
            .header("custodia-signature", signed)
            .send()
            .unwrap();
        if answer.status() != 200 {
            break answer;
        }
        assert!(revoked.elapsed() < Duration::from_secs(1), "still served a second after the revocation");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(after.status(), 403);
    assert!(after.text().unwrap().contains("revoked"));

    // 5. An expired grant.
    ok(
        dir,
        &[
            "grant",
            "create",
            "--wallet",
            "patient",
            "--to",
            &gp_key,
            "--scope",
            "patient/Condition.rs",
            "--purpose",
            "TREAT",
            "--for",
            "2s",
            "--post",
            "--out",
            "short.json",
        ],
    );
    let short = fetch("gp", &["--type", "Condition", "--grant-file", "short.json"]);
    assert_eq!(short.code, 0, "{}", short.stderr);
    std::thread::sleep(Duration::from_millis(2100));
    let expired = fetch("gp", &["--type", "Condition", "--grant-file", "short.json"]);
    assert_eq!(expired.code, 1);
    assert!(expired.stderr.contains("expired"), "{}", expired.stderr);

    // 6. The emergency card: read by an emergency provider as break-glass, refused for a provider.
    let made = json(&ok(dir, &["card", "--wallet", "patient", "--out", "card.png", "--json"]));
    assert!(made["version"].as_i64().unwrap() <= 15);
    ok(dir, &["card", "--wallet", "patient", "--out", "card.pdf"]);
    ok(dir, &["card", "--wallet", "patient", "--out", "card.svg"]);
    let card_text = zbar(&dir.join("card.png"));
    if let Some(text) = &card_text {
        assert!(text.starts_with("CU1:E:"), "{text}");
    }
    if let Some(text) = zbar_pdf(&dir.join("card.pdf")) {
        assert!(text.starts_with("CU1:E:"), "the printed card scans: {text}");
    }
    let unsaid = fetch("er", &["--type", "AllergyIntolerance", "--card", "card.png"]);
    assert_ne!(unsaid.code, 0, "a card is not opened without a reason");
    let card_read = fetch("er", &["--type", "AllergyIntolerance", "--card", "card.png", "--reason", "unconscious"]);
    assert_eq!(card_read.code, 0, "{}", card_read.stderr);
    assert!(!ids(&json(&card_read.stdout)).is_empty());
    let blood = json(&fetch("er", &["--type", "Observation", "--card", "card.png", "--reason", "unconscious"]).stdout);
    assert_eq!(ids(&blood), vec!["p1-blood-type".to_owned()], "the card shows the blood type, not every observation");
    let gp_card = fetch("gp", &["--type", "AllergyIntolerance", "--card", "card.png", "--reason", "life-threatening"]);
    assert_eq!(gp_card.code, 1);
    assert!(gp_card.stderr.contains("emergency providers"), "{}", gp_card.stderr);
    let card_psy = fetch("er", &["--type", "DocumentReference", "--card", "card.png", "--reason", "other-urgent"]);
    assert_eq!(card_psy.code, 1, "the card's narrow scope does not cover notes");
    // Both guardians are told, with who read what, checked against the gateway's signature.
    for g in ["mum", "brother"] {
        let deadline = Instant::now() + Duration::from_secs(20);
        let notices = loop {
            let inbox = json(&ok(dir, &["guardian", "inbox", "--wallet", g, "--json"]));
            let notices = inbox["break_glass"].as_array().unwrap().clone();
            if notices.len() >= 2 || Instant::now() > deadline {
                break notices;
            }
            std::thread::sleep(Duration::from_millis(300));
        };
        assert!(notices.len() >= 2, "{g} is told of both card reads: {notices:?}");
        assert!(notices.iter().all(|n| n["reader"] == er_key.as_str() && n["patient_name"] == "Alice Martin"));
        assert!(notices.iter().any(|n| n["resources"].to_string().contains("p1-blood-type")), "{notices:?}");
    }

    // 7. All of it in the patient's verified log.
    let log = access_log(dir, "patient", 19);
    let by = |f: &dyn Fn(&Value) -> bool| log.iter().filter(|e| f(e)).count();
    assert!(log.iter().all(|e| e["verified"] == true));
    let allowed = |e: &Value| e["outcome"] == "allowed";
    let denied = |e: &Value| e["outcome"] == "denied";
    let reason_has = |e: &Value, s: &str| e["reason"].as_str().is_some_and(|r| r.contains(s));
    assert!(by(&|e| allowed(e) && e["reader"] == er_key.as_str() && e["break_glass"] == false) >= 4, "{log:#?}");
    assert_eq!(by(&|e| denied(e) && reason_has(e, "PSY")), 1, "the refused PSY read, named for the patient");
    assert!(by(&|e| denied(e) && reason_has(e, "revoked")) >= 1);
    assert!(by(&|e| denied(e) && reason_has(e, "expired")) >= 1);
    assert!(
        by(&|e| denied(e) && e["reader"] == thief.signing_public().to_string().as_str()) >= 1,
        "the thief's attempt"
    );
    assert!(by(&|e| denied(e) && reason_has(e, "replay")) >= 1);
    assert!(by(&|e| allowed(e) && e["break_glass"] == true && e["reader"] == er_key.as_str()) >= 2);
    assert!(
        log.iter().filter(|e| allowed(e) && e["break_glass"] == true).all(|e| e["emergency_reason"] == "unconscious"),
        "each card read carries the reason given: {log:#?}"
    );
    assert!(by(&|e| denied(e) && reason_has(e, "emergency providers") && e["reader"] == gp_key.as_str()) >= 1);
    let psy_event = log.iter().find(|e| denied(e) && reason_has(e, "PSY")).unwrap();
    assert_eq!(psy_event["resources"][0]["id"], "p1-psy-note");

    // 8. What the hospital's monitoring sees: the same reads, counted, and an outbox the ledger has emptied.
    let metrics = http.get(format!("{gw}/metrics")).send().unwrap().text().unwrap();
    let count = |series: &str| -> u64 {
        let line = metrics.lines().find(|l| l.starts_with(series)).unwrap_or_else(|| panic!("{series}: {metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(count("custodia_gateway_reads_total{outcome=\"allowed\"}") >= 6, "{metrics}");
    assert!(count("custodia_gateway_reads_total{outcome=\"refused\"}") >= 6, "{metrics}");
    assert_eq!(count("custodia_gateway_outbox_depth"), 0, "{metrics}");
    let ready: Value = http.get(format!("{gw}/readyz")).send().unwrap().json().unwrap();
    assert_eq!(ready["status"], "ready");
    drop(gateway);
    drop(ledger);
}

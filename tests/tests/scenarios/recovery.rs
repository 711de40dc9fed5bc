//! Social recovery end to end, as its users run it: `custodia` processes for the ledger, the patient's
//! wallet, three guardians' wallets and the patient's new devices, real SQLite files, real HTTP on loopback.
//!
//! The patient sets up 2-of-3 guardians (two by scanned contact card, one by key), who accept their shares
//! and prove they still hold them. A recovery started on a new device is vetoed from the old device, and
//! nothing can be approved or finished for it. The patient then loses the wallet; on another new device,
//! two guardians compare the code and approve, wait out the 24-hour period (on a test clock), and release
//! their shares. The new device recombines them, restores grants, guardians and the access log from the
//! ledger, rotates its keys and re-splits: the old key is refused by the ledger and the old shares are
//! superseded. Removing a guardian rotates again, and the removed guardian's share no longer helps.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is the failure report.

use std::path::Path;

use custodia_tests::{Member, Run, Server, custodia, custodia_with, enroll_member, json, key_of, ok};
use serde_json::Value;

/// A day and an hour: past the default 24-hour waiting period.
const LATER: &str = "90000";

fn inbox(dir: &Path, wallet: &str, clock: Option<&str>) -> Value {
    let env: Vec<(&str, &str)> = clock.map(|c| ("CUSTODIA_TEST_CLOCK_OFFSET", c)).into_iter().collect();
    let run = custodia_with(dir, &["guardian", "inbox", "--wallet", wallet, "--json"], &env);
    assert_eq!(run.code, 0, "inbox of {wallet} failed:\n{}", run.stderr);
    json(&run.stdout)
}

fn approve(dir: &Path, wallet: &str, request: &str, code: &str, clock: Option<&str>) -> Run {
    let env: Vec<(&str, &str)> = clock.map(|c| ("CUSTODIA_TEST_CLOCK_OFFSET", c)).into_iter().collect();
    custodia_with(
        dir,
        &["guardian", "approve", "--wallet", wallet, "--request", request, "--code", code, "--json"],
        &env,
    )
}

fn failed(run: &Run, says: &str) {
    assert_ne!(run.code, 0, "expected a failure saying {says:?}, got:\n{}", run.stdout);
    assert!(run.stderr.contains(says), "expected {says:?} in:\n{}", run.stderr);
}

fn request_state<'a>(inbox: &'a Value, id: &str) -> Option<&'a str> {
    inbox["requests"].as_array().unwrap().iter().find(|r| r["request_id"] == id).map(|r| r["state"].as_str().unwrap())
}

fn start(dir: &Path, wallet: &str, url: &str, patient: &str) -> Value {
    json(&ok(dir, &["recover", "start", "--wallet", wallet, "--ledger", url, "--patient", patient, "--json"]))
}

#[test]
fn guardians_recover_a_lost_wallet_and_old_shares_stop_working() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for (wallet, name) in [
        ("authority", "Network authority"),
        ("patient", "Maria Santos"),
        ("ann", "Ann Santos"),
        ("ben", "Ben Okafor"),
        ("cy", "Cy Park"),
        ("gp", "Dr Grace Hopper"),
        ("gw", "St Mary's gateway"),
    ] {
        ok(dir, &["wallet", "init", "--wallet", wallet, "--name", name]);
    }
    let (authority, _) = key_of(dir, "authority");
    let init = json(&ok(dir, &["ledger", "init", "--dir", "ledger", "--authority", &authority, "--json"]));
    let log_key = init["verifier_key"].as_str().unwrap().to_owned();
    let ledger = Server::start(
        dir,
        &["ledger", "serve", "--dir", "ledger", "--listen", "127.0.0.1:0", "--rate-limit", "100000"],
    );
    let url = ledger.url.as_str();
    for (wallet, role, org) in [("gp", "provider", "Riverside Clinic"), ("gw", "gateway", "St Mary's")] {
        let (key, boxk) = key_of(dir, wallet);
        let name = format!("{wallet} member");
        enroll_member(dir, "authority", url, Member { key: &key, box_key: &boxk, role, name: &name, org });
    }
    for wallet in ["patient", "ann", "ben", "cy"] {
        ok(dir, &["wallet", "enroll", "--wallet", wallet, "--ledger", url]);
    }
    let (patient, _) = key_of(dir, "patient");
    let (gp, _) = key_of(dir, "gp");
    // The hospital links the patient's record to the key the patient holds today.
    ok(dir, &["gateway", "link", "--dir", "gw", "--patient", &patient, "--fhir-id", "p1"]);
    let (cy, _) = key_of(dir, "cy");

    // State worth restoring: a grant and an access event under it.
    let created = custodia(
        dir,
        &[
            "grant",
            "create",
            "--wallet",
            "patient",
            "--to",
            &gp,
            "--scope",
            "patient/Observation.rs",
            "--purpose",
            "TREAT",
            "--for",
            "30d",
            "--post",
        ],
    );
    assert_eq!(created.code, 0, "{}", created.stderr);
    let grant_id = created.stderr.split("(grant ").nth(1).and_then(|r| r.get(..32)).expect("the grant's id").to_owned();
    ok(
        dir,
        &[
            "ledger",
            "post-access",
            "--wallet",
            "gw",
            "--ledger",
            url,
            "--patient",
            &patient,
            "--grant",
            &grant_id,
            "--resource",
            "Observation/hba1c-1",
        ],
    );

    // Guardians: two scanned contact cards and one key; 2 of 3, the default 24-hour waiting period.
    ok(dir, &["wallet", "show", "--wallet", "ann", "--qr", "ann.png"]);
    ok(dir, &["wallet", "show", "--wallet", "ben", "--qr", "ben.png"]);
    let set = json(&ok(
        dir,
        &[
            "guardian",
            "add",
            "--wallet",
            "patient",
            "--contact",
            "ann.png",
            "--contact",
            "ben.png",
            "--contact",
            &cy,
            "--threshold",
            "2",
            "--json",
        ],
    ));
    assert_eq!((set["threshold"].as_u64(), set["count"].as_u64()), (Some(2), Some(3)));
    assert_eq!(set["waiting_seconds"], 86_400);
    let names: Vec<&str> = set["guardians"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
    assert_eq!(&names[..2], ["Ann Santos", "Ben Okafor"]);
    let first_set = set["set_id"].as_str().unwrap().to_owned();

    // Each guardian's wallet accepts its share and acknowledges it; then proves it still holds it.
    for g in ["ann", "ben", "cy"] {
        let inbox = inbox(dir, g, None);
        assert_eq!(inbox["accepted"], 1, "{g}: {inbox}");
        assert_eq!(inbox["shares"][0]["patient_name"], "Maria Santos");
        assert_eq!(inbox["shares"][0]["superseded"], false);
    }
    let checked = json(&ok(dir, &["guardian", "check", "--wallet", "patient", "--json"]));
    assert!(checked["guardians"].as_array().unwrap().iter().all(|g| !g["accepted_at"].is_null()), "{checked}");
    assert!(checked["guardians"].as_array().unwrap().iter().all(|g| g["proved_at"].is_null()));
    for g in ["ann", "ben", "cy"] {
        assert_eq!(inbox(dir, g, None)["proofs_sent"], 1);
    }
    let checked = json(&ok(dir, &["guardian", "check", "--wallet", "patient", "--json"]));
    assert!(checked["guardians"].as_array().unwrap().iter().all(|g| !g["proved_at"].is_null()), "{checked}");

    // A recovery the patient did not start: the old device sees it and vetoes it.
    let rogue = start(dir, "rogue", url, &patient);
    let rogue_id = rogue["request_id"].as_str().unwrap().to_owned();
    let rogue_code = rogue["code"].as_str().unwrap().to_owned();
    let seen = inbox(dir, "ann", None);
    assert_eq!(request_state(&seen, &rogue_id), Some("awaiting-code"), "{seen}");
    let synced = json(&ok(dir, &["wallet", "sync", "--wallet", "patient", "--json"]));
    assert!(synced.to_string().contains(&rogue_id), "the old device is told of the request: {synced}");
    let vetoed = json(&ok(dir, &["recover", "cancel", "--wallet", "patient", "--json"]));
    assert_eq!(vetoed["cancelled"][0], rogue_id.as_str());
    failed(&approve(dir, "ann", &rogue_id, &rogue_code, Some(LATER)), "cancelled from the patient's old device");
    assert_eq!(request_state(&inbox(dir, "ben", Some(LATER)), &rogue_id), Some("cancelled"));
    let status = custodia(dir, &["recover", "status", "--wallet", "rogue", "--json"]);
    assert_eq!(status.code, 1);
    assert_eq!(json(&status.stdout)["phase"], "cancelled");
    failed(&custodia(dir, &["recover", "finish", "--wallet", "rogue"]), "cancelled");
    // The device that asked gives up, as the app's "Give up" does: its one-time wallet is removed.
    let abandoned = json(&ok(dir, &["recover", "cancel", "--wallet", "rogue", "--json"]));
    assert_eq!(abandoned["abandoned"], rogue_id.as_str());
    assert!(!dir.join("rogue/wallet.vault").exists(), "the abandoned device's wallet is gone");

    // The phone is lost. (A copy stays behind to show its key is retired afterwards.)
    std::fs::rename(dir.join("patient"), dir.join("lost-phone")).unwrap();
    // The new phone starts from the network's profile (here one without witnesses), so the recovered
    // wallet is pinned to it.
    std::fs::write(dir.join("policy.txt"), format!("log {log_key}\nquorum none\n")).unwrap();
    let profile = json(&ok(
        dir,
        &[
            "network",
            "profile",
            "--ledger-dir",
            "ledger",
            "--url",
            url,
            "--witness-policy",
            "policy.txt",
            "--out",
            "profile.txt",
            "--json",
        ],
    ));
    let started = json(&ok(
        dir,
        &["recover", "start", "--wallet", "new-phone", "--network", "profile.txt", "--patient", &patient, "--json"],
    ));
    let request = started["request_id"].as_str().unwrap().to_owned();
    let code = started["code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 7, "six digits in two groups: {code}");
    assert_eq!(started["phase"], "waiting");

    // Ann compares the code (a wrong one first), approves; her share waits out the 24 hours.
    assert_eq!(request_state(&inbox(dir, "ann", None), &request), Some("awaiting-code"));
    let wrong = if code.starts_with('1') { "222 222" } else { "111 111" };
    failed(&approve(dir, "ann", &request, wrong, None), "does not match");
    let approved = json(&approve(dir, "ann", &request, &code, None).stdout);
    assert_eq!(approved["state"], "approved", "{approved}");
    let status = json(&ok(dir, &["recover", "status", "--wallet", "new-phone", "--json"]));
    assert_eq!(status["approved"].as_array().unwrap().len(), 1, "the new device sees Ann's approval: {status}");
    assert_eq!(status["received"].as_array().unwrap().len(), 0, "nothing is released inside the waiting period");
    // A day later Ann's wallet releases her share; one share is not enough.
    let later = inbox(dir, "ann", Some(LATER));
    assert_eq!(later["released"][0], request.as_str(), "{later}");
    failed(&custodia(dir, &["recover", "finish", "--wallet", "new-phone"]), "need 2 shares, have 1");
    // Ben approves after the waiting period: released at once.
    assert_eq!(request_state(&inbox(dir, "ben", Some(LATER)), &request), Some("awaiting-code"));
    let approved = json(&approve(dir, "ben", &request, &code.replace(' ', ""), Some(LATER)).stdout);
    assert_eq!(approved["state"], "released");
    let status = json(&ok(dir, &["recover", "status", "--wallet", "new-phone", "--json"]));
    assert_eq!(status["phase"], "ready", "{status}");

    let outcome = json(&ok(dir, &["recover", "finish", "--wallet", "new-phone", "--json"]));
    assert_eq!(outcome["patient"], patient.as_str());
    assert_ne!(outcome["new_key"], patient.as_str(), "recovery ends with a key rotation");
    assert_eq!(outcome["grants"], 1);
    assert_eq!(outcome["access_events"], 1);
    assert_eq!(outcome["guardians"], 3);
    let new_key = outcome["new_key"].as_str().unwrap().to_owned();
    let shown = json(&ok(dir, &["wallet", "show", "--wallet", "new-phone", "--json"]));
    assert_eq!(shown["name"], "Maria Santos");
    assert_eq!(shown["signing_key"], new_key.as_str());
    assert_eq!(shown["ledger"]["network"], profile["fingerprint"], "the recovered wallet is pinned to the profile");
    let grants = ok(dir, &["grant", "list", "--wallet", "new-phone"]);
    assert!(grants.contains(&grant_id), "{grants}");
    let log = ok(dir, &["wallet", "sync", "--wallet", "new-phone", "--json"]);
    assert!(log.contains("hba1c-1"), "the access log is restored: {log}");

    // A gateway logging a read under the grant signed before the rotation seals it to the new key.
    ok(
        dir,
        &[
            "ledger",
            "post-access",
            "--wallet",
            "gw",
            "--ledger",
            url,
            "--patient",
            &patient,
            "--grant",
            &grant_id,
            "--resource",
            "Observation/hba1c-2",
        ],
    );
    let log = ok(dir, &["wallet", "sync", "--wallet", "new-phone", "--json"]);
    assert!(log.contains("hba1c-2"), "a read after the rotation reaches the recovered wallet: {log}");

    // A new grant, signed with the new key, reads at the hospital without the patient being linked again:
    // the gateway follows the rotation back to the linked key.
    let gateway =
        Server::start(dir, &["gateway", "serve", "--dir", "gw", "--network", "profile.txt", "--listen", "127.0.0.1:0"]);
    ok(
        dir,
        &[
            "grant",
            "create",
            "--wallet",
            "new-phone",
            "--to",
            &gp,
            "--scope",
            "patient/Condition.rs",
            "--purpose",
            "TREAT",
            "--for",
            "1d",
            "--post",
            "--out",
            "after-rotation.json",
        ],
    );
    let read = custodia(
        dir,
        &[
            "er",
            "fetch",
            "--wallet",
            "gp",
            "--gateway",
            &gateway.url,
            "--type",
            "Condition",
            "--grant-file",
            "after-rotation.json",
            "--json",
        ],
    );
    assert_eq!(read.code, 0, "{}", read.stderr);
    let conditions = json(&read.stdout);
    let entries = conditions["entry"].as_array().unwrap();
    assert!(!entries.is_empty() && entries.iter().all(|e| e["resource"]["subject"]["reference"] == "Patient/p1"));
    drop(gateway);

    // The restored wallet still governs the old grant, and the lost phone's key is retired.
    ok(dir, &["grant", "revoke", "--wallet", "new-phone", &grant_id]);
    let old = custodia(
        dir,
        &[
            "grant",
            "create",
            "--wallet",
            "lost-phone",
            "--to",
            &gp,
            "--scope",
            "patient/Observation.rs",
            "--purpose",
            "TREAT",
            "--for",
            "1d",
            "--post",
        ],
    );
    failed(&old, "rotated");
    // The lost phone, if found, learns it was retired rather than failing to reach the ledger.
    failed(&custodia(dir, &["wallet", "sync", "--wallet", "lost-phone"]), "recovered on another device");

    // Guardians take the new set's shares; their old ones are superseded.
    for g in ["ann", "ben", "cy"] {
        let inbox = inbox(dir, g, None);
        assert_eq!(inbox["accepted"], 1, "{g}: {inbox}");
        let shares = inbox["shares"].as_array().unwrap();
        let old = shares.iter().find(|s| s["set_id"] == first_set.as_str()).unwrap();
        assert_eq!(old["superseded"], true, "{g}: {inbox}");
        assert!(shares.iter().any(|s| s["set_id"] != first_set.as_str() && s["superseded"] == false));
    }

    // Removing Cy rotates again: Cy's share is superseded and a new recovery never reaches Cy.
    let set = json(&ok(dir, &["guardian", "remove", "--wallet", "new-phone", "--contact", &cy, "--json"]));
    assert_eq!((set["threshold"].as_u64(), set["count"].as_u64()), (Some(2), Some(2)));
    let cy_inbox = inbox(dir, "cy", None);
    assert!(cy_inbox["shares"].as_array().unwrap().iter().all(|s| s["superseded"] == true), "{cy_inbox}");
    let again = start(dir, "another-phone", url, &new_key);
    let again_id = again["request_id"].as_str().unwrap();
    assert_eq!(request_state(&inbox(dir, "cy", Some(LATER)), again_id), None, "a removed guardian is not asked");
    assert_eq!(request_state(&inbox(dir, "ann", None), again_id), Some("awaiting-code"));
}

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is the failure report.

//! No single operator can lie, with real processes: a ledger, three witnesses (quorum 2 of 3, over
//! HTTPS), wallets that join with a network profile (file or QR picture). One witness down, checkpoints
//! are still cosigned; two down, the cosigned checkpoint lags and the wallets say so; a witness killed
//! with SIGKILL comes back with what it cosigned. Then the operator copies the ledger and grows a second
//! history under the same key: the witnesses refuse it, the ledger shows the alarm, a wallet shown it
//! refuses it and keeps both checkpoints as evidence, and a wallet shown an unwitnessed checkpoint
//! refuses it naming the missing witnesses.

use std::path::Path;
use std::time::{Duration, Instant};

use custodia_tests::{Member, Server, custodia, enroll_member, http_client, json, key_of, ok};

fn port_of(url: &str) -> &str {
    url.rsplit(':').next().unwrap()
}

fn witness(dir: &Path, name: &str, listen: &str) -> Server {
    Server::start(dir, &["witness", "serve", "--dir", name, "--listen", listen])
}

fn ledger(dir: &Path, folder: &str, listen: &str, policy: bool) -> Server {
    let mut args = vec!["ledger", "serve", "--dir", folder, "--listen", listen];
    if policy {
        args.extend(["--witness-policy", "policy.txt"]);
    }
    Server::start(dir, &args)
}

fn info(url: &str) -> serde_json::Value {
    http_client().get(format!("{url}/v1/info")).send().unwrap().json().unwrap()
}

/// Waits until `check` holds of the ledger's `/v1/info`.
fn wait_info(url: &str, what: &str, check: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = info(url);
        if check(&info) {
            return info;
        }
        assert!(Instant::now() < deadline, "{what}: {info:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn witness_states(info: &serde_json::Value) -> Vec<String> {
    info["witnessing"]["witnesses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["state"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn no_single_operator_can_lie() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for wallet in ["authority", "alice", "bob", "carol", "dave", "erin", "frank", "mallory", "gp", "gw"] {
        ok(dir, &["wallet", "init", "--wallet", wallet]);
    }
    let (authority, _) = key_of(dir, "authority");
    let init = json(&ok(dir, &["ledger", "init", "--dir", "honest", "--authority", &authority, "--json"]));
    let log_key = init["verifier_key"].as_str().unwrap().to_owned();

    // Three witnesses, each told to witness this log.
    let mut witnesses: Vec<Option<Server>> = Vec::new();
    let mut policy = format!("# the network's witnesses: any two of three\nlog {log_key}\n");
    for i in 1..=3 {
        let name = format!("w{i}");
        let made = json(&ok(dir, &["witness", "init", "--dir", &name, "--name", &format!("{name}.example"), "--json"]));
        let vkey = made["vkey"].as_str().unwrap();
        assert!(vkey.starts_with(&format!("{name}.example+")), "{made}");
        ok(dir, &["witness", "add-log", "--dir", &name, "--vkey", &log_key]);
        let server = witness(dir, &name, "127.0.0.1:0");
        policy.push_str(&format!("witness W{i} {vkey} {}\n", server.url));
        witnesses.push(Some(server));
    }
    policy.push_str("group Q 2 W1 W2 W3\nquorum Q\n");
    std::fs::write(dir.join("policy.txt"), &policy).unwrap();
    let honest = ledger(dir, "honest", "127.0.0.1:0", true);
    let url = honest.url.clone();

    // The network profile, as a file and a QR code; the wallets join with it, one from the picture.
    let profile = json(&ok(
        dir,
        &[
            "network",
            "profile",
            "--ledger-dir",
            "honest",
            "--url",
            &url,
            "--witness-policy",
            "policy.txt",
            "--out",
            "profile.txt",
            "--qr",
            "profile.png",
            "--json",
        ],
    ));
    let fingerprint = profile["fingerprint"].as_str().unwrap().to_owned();
    let shown = json(&ok(dir, &["network", "show", "profile.png", "--json"]));
    assert_eq!(shown["fingerprint"], fingerprint.as_str());
    assert_eq!(shown["witnesses"], serde_json::json!(["W1", "W2", "W3"]));
    let joined = json(&ok(dir, &["wallet", "enroll", "--wallet", "alice", "--network", "profile.png", "--json"]));
    assert_eq!(joined["verifier_key_trust"], "network-profile");
    assert_eq!(joined["network"], fingerprint.as_str());
    assert_eq!(joined["witnesses"], serde_json::json!(["W1", "W2", "W3"]));
    let text = ok(dir, &["wallet", "enroll", "--wallet", "bob", "--network", "profile.txt"]);
    assert!(text.contains(&fingerprint) && text.contains("compare it"), "{text}");
    // From a bare URL it still works, and says that nothing was pinned.
    let bare = ok(dir, &["wallet", "enroll", "--wallet", "carol", "--ledger", &url]);
    assert!(bare.contains("nothing was pinned"), "{bare}");
    ok(dir, &["wallet", "sync", "--wallet", "alice"]);
    let audit = json(&ok(dir, &["ledger", "audit", "--ledger", &url, "--network", "profile.txt", "--json"]));
    assert!(audit["cosigned_by"].as_array().unwrap().len() >= 2, "{audit}");

    // Alice grants her doctor a read (her wallet looks the doctor's enrollment up, proven into a cosigned
    // checkpoint) and a gateway logs one; she can hand on the proof of that read as a C2SP tlog-proof.
    for (wallet, role) in [("gp", "provider"), ("gw", "gateway")] {
        let (key, box_key) = key_of(dir, wallet);
        enroll_member(
            dir,
            "authority",
            &url,
            Member { key: &key, box_key: &box_key, role, name: wallet, org: "St Mary's" },
        );
    }
    let (alice, _) = key_of(dir, "alice");
    let (gp, _) = key_of(dir, "gp");
    let created = custodia(
        dir,
        &[
            "grant",
            "create",
            "--wallet",
            "alice",
            "--to",
            &gp,
            "--scope",
            "patient/Observation.rs",
            "--purpose",
            "TREAT",
            "--for",
            "30d",
            "--post",
            "--out",
            "grant.json",
        ],
    );
    assert_eq!(created.code, 0, "{}", created.stderr);
    let grant = created.stderr.split("(grant ").nth(1).and_then(|r| r.get(..32)).expect("the grant's id").to_owned();
    ok(
        dir,
        &[
            "ledger",
            "post-access",
            "--wallet",
            "gw",
            "--ledger",
            &url,
            "--patient",
            &alice,
            "--grant",
            &grant,
            "--resource",
            "Observation/hba1c-1",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let read = loop {
        let synced = json(&ok(dir, &["wallet", "sync", "--wallet", "alice", "--json"]));
        if let Some(event) = synced["access_events"].as_array().and_then(|a| a.first()) {
            break event["index"].as_u64().unwrap();
        }
        assert!(Instant::now() < deadline, "the read never reached a cosigned checkpoint: {synced:#}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let said =
        ok(dir, &["wallet", "proof", "--wallet", "alice", "--index", &read.to_string(), "--out", "read.tlog-proof"]);
    assert!(said.contains("cosigned by W"), "{said}");
    let proof =
        custodia_log::tlog_proof::TlogProof::parse(&std::fs::read_to_string(dir.join("read.tlog-proof")).unwrap())
            .unwrap();
    let accepted = custodia_log::policy::Policy::parse(&policy).unwrap().accept(&proof.checkpoint).unwrap();
    let leaf = custodia_log::Hash(proof.extra.as_deref().unwrap().try_into().unwrap());
    assert_eq!(proof.index, read);
    proof.verify_leaf(&leaf, accepted.checkpoint.size, &accepted.checkpoint.root).unwrap();

    // A hospital's gateway joined with the profile: it serves the doctor under the grant only once the
    // grant's entry is proven into a cosigned checkpoint, and stops once the revocation is.
    let made = json(&ok(dir, &["gateway", "init", "--dir", "hospital", "--name", "St Mary's gateway", "--json"]));
    let (key, box_key) = (made["signing_key"].as_str().unwrap(), made["encryption_key"].as_str().unwrap());
    enroll_member(
        dir,
        "authority",
        &url,
        Member { key, box_key, role: "gateway", name: "St Mary's", org: "St Mary's" },
    );
    ok(dir, &["gateway", "link", "--dir", "hospital", "--patient", &alice, "--fhir-id", "p1"]);
    let hospital = Server::start(
        dir,
        &["gateway", "serve", "--dir", "hospital", "--network", "profile.txt", "--listen", "127.0.0.1:0"],
    );
    let fetch = || {
        custodia(
            dir,
            &[
                "er",
                "fetch",
                "--wallet",
                "gp",
                "--gateway",
                &hospital.url,
                "--grant-file",
                "grant.json",
                "--type",
                "Observation",
                "--json",
            ],
        )
    };
    let read = fetch();
    assert_eq!(read.code, 0, "{}", read.stderr);
    assert!(json(&read.stdout)["entry"].as_array().is_some_and(|e| !e.is_empty()), "{}", read.stdout);
    ok(dir, &["grant", "revoke", "--wallet", "alice", &grant]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let refused = fetch();
        if refused.code != 0 {
            assert!(refused.stderr.contains("revoked"), "{}", refused.stderr);
            break;
        }
        assert!(Instant::now() < deadline, "the revocation never took effect");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(hospital);

    // One witness down: appends go on and checkpoints are still cosigned, by the other two.
    witnesses[2] = None;
    ok(dir, &["wallet", "enroll", "--wallet", "dave", "--network", "profile.txt"]);
    let size = info(&url)["size"].as_u64().unwrap();
    wait_info(&url, "cosigned by two with one down", |i| i["witnessing"]["cosigned_size"].as_u64() == Some(size));
    let audit = json(&ok(dir, &["ledger", "audit", "--ledger", &url, "--network", "profile.txt", "--json"]));
    assert_eq!(audit["cosigned_by"], serde_json::json!(["W1", "W2"]));

    // Two down (one killed with SIGKILL): appends still go on, the cosigned checkpoint lags, the wallet
    // says so, and nothing it accepts is unwitnessed.
    let w2_port = port_of(&witnesses[1].as_ref().unwrap().url).to_owned();
    witnesses[1] = None;
    ok(dir, &["wallet", "enroll", "--wallet", "erin", "--network", "profile.txt"]);
    let lagging =
        wait_info(&url, "the cosigned checkpoint lags", |i| i["witnessing"]["lag_entries"].as_u64() >= Some(1));
    assert_eq!(witness_states(&lagging)[1..], ["failed", "failed"]);
    let synced = json(&ok(dir, &["wallet", "sync", "--wallet", "alice", "--json"]));
    assert!(synced["witnessing"]["lag_entries"].as_u64().unwrap() >= 1, "{synced:#}");
    assert!(synced["checkpoint_size"].as_u64().unwrap() < lagging["size"].as_u64().unwrap());
    let said = ok(dir, &["wallet", "sync", "--wallet", "alice"]);
    assert!(said.contains("witnesses have not cosigned yet"), "{said}");

    // W2 comes back on its address with what it cosigned before it was killed: the ledger catches up.
    witnesses[1] = Some(witness(dir, "w2", &format!("127.0.0.1:{w2_port}")));
    let size = info(&url)["size"].as_u64().unwrap();
    wait_info(&url, "caught up once W2 is back", |i| i["witnessing"]["cosigned_size"].as_u64() == Some(size));
    let synced = json(&ok(dir, &["wallet", "sync", "--wallet", "alice", "--json"]));
    assert_eq!(synced["checkpoint_size"].as_u64(), Some(size));

    // A fourth witness joins with the profile; a cosigned size survives SIGKILL the moment after its answer.
    ok(dir, &["witness", "init", "--dir", "w4", "--name", "w4.example"]);
    let joined = ok(dir, &["witness", "add-log", "--dir", "w4", "--network", "profile.txt"]);
    assert!(
        joined.contains(&fingerprint) && joined.contains(&format!("witnessing {}", verifier_name(&log_key))),
        "{joined}"
    );
    let w4 = witness(dir, "w4", "127.0.0.1:0");
    let note = http_client().get(format!("{url}/checkpoint")).send().unwrap().text().unwrap();
    let sent =
        http_client().post(format!("{}/add-checkpoint", w4.url)).body(format!("old 0\n\n{note}")).send().unwrap();
    assert_eq!(sent.status(), 200);
    let w4_port = port_of(&w4.url).to_owned();
    drop(w4); // SIGKILL
    let w4 = witness(dir, "w4", &format!("127.0.0.1:{w4_port}"));
    let again =
        http_client().post(format!("{}/add-checkpoint", w4.url)).body(format!("old 0\n\n{note}")).send().unwrap();
    assert_eq!(again.status(), 409);
    assert_eq!(again.headers()["content-type"], "text/x.tlog.size");
    assert_eq!(again.text().unwrap(), format!("{size}\n"));
    drop(w4);

    // The split view. The operator copies the ledger, then grows both copies apart under the same key.
    let honest_port = port_of(&url).to_owned();
    drop(honest);
    copy_dir(&dir.join("honest"), &dir.join("evil"));
    let honest = ledger(dir, "honest", &format!("127.0.0.1:{honest_port}"), true);
    ok(dir, &["wallet", "enroll", "--wallet", "frank", "--network", "profile.txt"]);
    let size = info(&url)["size"].as_u64().unwrap();
    wait_info(&url, "the honest ledger cosigned", |i| i["witnessing"]["cosigned_size"].as_u64() == Some(size));
    // Frank's sync reads his own enrollment, so his wallet stores the honest checkpoint past the split.
    let synced = json(&ok(dir, &["wallet", "sync", "--wallet", "frank", "--json"]));
    assert_eq!(synced["checkpoint_size"].as_u64(), Some(size));

    let evil = ledger(dir, "evil", "127.0.0.1:0", true);
    for _ in 0..3 {
        ok(dir, &["wallet", "init", "--wallet", "filler"]);
        ok(dir, &["wallet", "enroll", "--wallet", "filler", "--ledger", &evil.url]);
        std::fs::remove_dir_all(dir.join("filler")).unwrap();
    }
    ok(dir, &["wallet", "enroll", "--wallet", "mallory", "--ledger", &evil.url]);
    // The witnesses that saw the honest history refuse the other (409, then 422 on the proof).
    let refused = wait_info(&evil.url, "the witnesses refuse the second history", |i| {
        witness_states(i)[..2] == ["alarm", "alarm"]
    });
    let reasons: Vec<&str> = refused["witnessing"]["witnesses"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["last_error"].as_str())
        .collect();
    assert!(reasons.iter().any(|r| r.contains("422")), "{reasons:?}");
    // Its published checkpoint never moves past what the honest history shares with it.
    assert!(refused["witnessing"]["cosigned_size"].as_u64().unwrap() < refused["size"].as_u64().unwrap());
    assert!(refused["witnessing"]["cosigned_size"].as_u64().unwrap() < size);
    let metrics = http_client().get(format!("{}/metrics", evil.url)).send().unwrap().text().unwrap();
    assert!(metrics.lines().any(|l| l.starts_with("custodia_ledger_witness_alarms_total ") && !l.ends_with(" 0")));

    // Now the operator serves the second history, signed but unwitnessed, at the honest address.
    drop(honest);
    drop(evil);
    let _evil = ledger(dir, "evil", &format!("127.0.0.1:{honest_port}"), false);
    let refused = custodia(dir, &["wallet", "sync", "--wallet", "frank"]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("forked"), "{}", refused.stderr);
    ok(dir, &["wallet", "evidence", "--wallet", "frank", "--out", "evidence.json"]);
    let evidence = json(&std::fs::read_to_string(dir.join("evidence.json")).unwrap());
    let views = evidence["split_views"].as_array().unwrap();
    assert_eq!(views.len(), 1, "{evidence:#}");
    let verifier: custodia_log::NoteVerifier = log_key.parse().unwrap();
    let (accepted, _) = custodia_log::Checkpoint::open(views[0]["accepted"].as_str().unwrap(), &verifier).unwrap();
    let (conflicting, _) =
        custodia_log::Checkpoint::open(views[0]["conflicting"].as_str().unwrap(), &verifier).unwrap();
    assert!(conflicting.size > accepted.size && accepted.root != conflicting.root, "{evidence:#}");
    // Alice's wallet holds a checkpoint from before the split: the second history extends it, but no
    // witness vouched for it, and she is told which.
    let refused = custodia(dir, &["wallet", "sync", "--wallet", "alice"]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("missing W1, W2, W3"), "{}", refused.stderr);
    let empty = custodia(dir, &["wallet", "evidence", "--wallet", "alice", "--out", "none.json"]);
    assert!(empty.stdout.starts_with("0 split view"), "{empty:?}");
}

fn verifier_name(vkey: &str) -> &str {
    vkey.split('+').next().unwrap()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

//! The gateway as a hospital runs it, through `custodia gateway serve`: what it must keep across a crash
//! (read counts, seen requests), and how it finds a patient's records (by the patient's identity on the
//! ledger, and by the hospital's own record number).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is the failure report.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use custodia_core::entry::{EntryNonce, statement_digest};
use custodia_core::grant::{UnverifiedGrant, VerifiedGrant};
use custodia_core::time::Timestamp;
use custodia_core::{Identity, reqsig};
use custodia_tests::{Member, Server, enroll_member, json, key_of, ok};
use custodia_wallet::fhir_client::GatewayClient;

fn now() -> Timestamp {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    Timestamp::from_unix(secs as i64).unwrap()
}

/// A ledger, a gateway's folder enrolled on it, a provider (`gp`) and an enrolled patient.
struct Network {
    ledger: Server,
    patient_key: String,
}

fn network(dir: &Path) -> Network {
    for (wallet, name) in [("authority", "Network authority"), ("gp", "Dr Grace Hopper"), ("patient", "Alice Martin")] {
        ok(dir, &["wallet", "init", "--wallet", wallet, "--name", name]);
    }
    let gateway = json(&ok(dir, &["gateway", "init", "--dir", "gw", "--name", "St Mary's gateway", "--json"]));
    let (authority, _) = key_of(dir, "authority");
    let (gp_key, gp_box) = key_of(dir, "gp");
    let (patient_key, _) = key_of(dir, "patient");
    ok(dir, &["ledger", "init", "--dir", "ledger", "--authority", &authority]);
    let ledger = Server::start(
        dir,
        &["ledger", "serve", "--dir", "ledger", "--listen", "127.0.0.1:0", "--rate-limit", "100000"],
    );
    let url = ledger.url.clone();
    let enroll = |key: &str, box_key: &str, role: &str, name: &str, org: &str| {
        enroll_member(dir, "authority", &url, Member { key, box_key, role, name, org });
    };
    enroll(&gp_key, &gp_box, "provider", "Dr Grace Hopper", "Riverside Clinic");
    enroll(
        gateway["signing_key"].as_str().unwrap(),
        gateway["encryption_key"].as_str().unwrap(),
        "gateway",
        "St Mary's gateway",
        "St Mary's Hospital",
    );
    ok(dir, &["wallet", "enroll", "--wallet", "patient", "--ledger", &url]);
    Network { ledger, patient_key }
}

fn serve_gateway(dir: &Path, ledger: &str) -> Server {
    Server::start(dir, &["gateway", "serve", "--dir", "gw", "--ledger", ledger, "--listen", "127.0.0.1:0"])
}

/// The patient grants `gp` Condition reads, at most `max_reads` of them; returns the grant as `gp` holds it.
fn grant_to_gp(dir: &Path, file: &str, max_reads: u32) -> VerifiedGrant {
    let (gp_key, _) = key_of(dir, "gp");
    let max = max_reads.to_string();
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
            "1h",
            "--max-reads",
            &max,
            "--post",
            "--out",
            file,
        ],
    );
    UnverifiedGrant::decode(&std::fs::read(dir.join(file)).unwrap()).unwrap().verify().unwrap()
}

fn identity(dir: &Path, wallet: &str) -> Identity {
    custodia_wallet::Wallet::open(
        &dir.join(wallet),
        custodia_wallet::vault::Passphrase::new(custodia_tests::PASSPHRASE.into()).unwrap(),
    )
    .unwrap()
    .service_identity()
}

/// The patient's verified log entries under `grant` with `outcome`, once at least `want` of them arrived
/// (the gateway posts them moments after answering; a restarted one posts what it left).
fn logged(dir: &Path, grant: &VerifiedGrant, outcome: &str, want: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let synced = json(&ok(dir, &["wallet", "sync", "--wallet", "patient", "--json"]));
        let events = synced["access_events"].as_array().cloned().unwrap_or_default();
        let id = grant.id.to_string();
        let n = events.iter().filter(|e| e["grant_id"] == id.as_str() && e["outcome"] == outcome).count();
        if n >= want || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn a_used_up_grant_and_a_recorded_request_stay_spent_after_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let net = network(dir);
    let url = net.ledger.url.clone();
    ok(dir, &["gateway", "link", "--dir", "gw", "--patient", &net.patient_key, "--fhir-id", "p1"]);
    let gateway = serve_gateway(dir, &url);
    let gw = gateway.url.clone();
    let grant = grant_to_gp(dir, "two.json", 2);
    let gp = identity(dir, "gp");

    // A signed request, recorded on its way in; and a second read, which uses the grant up.
    let target = format!("{gw}/fhir/Condition");
    let grant_header = data_encoding::BASE64URL_NOPAD.encode(grant.to_compact_json().as_bytes());
    let recorded =
        reqsig::sign_bound(&gp, "GET", &target, &statement_digest(grant.envelope()), now(), &EntryNonce::generate());
    let http = custodia_tests::http_client();
    let send = |signature: &str| {
        http.get(&target)
            .header("custodia-grant", &grant_header)
            .header("custodia-signature", signature)
            .send()
            .unwrap()
    };
    assert_eq!(send(&recorded).status(), 200);
    let fetch = |gw: &str| {
        custodia_tests::custodia(
            dir,
            &["er", "fetch", "--wallet", "gp", "--gateway", gw, "--type", "Condition", "--grant-file", "two.json"],
        )
    };
    assert_eq!(fetch(&gw).code, 0);
    let spent = fetch(&gw);
    assert_eq!(spent.code, 1);
    assert!(spent.stderr.contains("read limit"), "{}", spent.stderr);

    // kill -9, and the same folder served again.
    drop(gateway);
    let gateway = serve_gateway(dir, &url);
    let again = fetch(&gateway.url);
    assert_eq!(again.code, 1, "a used-up grant stays used up after a restart: {}", again.stdout);
    assert!(again.stderr.contains("read limit"), "{}", again.stderr);
}

#[test]
fn a_replay_after_a_restart_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let net = network(dir);
    let url = net.ledger.url.clone();
    ok(dir, &["gateway", "link", "--dir", "gw", "--patient", &net.patient_key, "--fhir-id", "p1"]);
    // A fixed port and address, so a request signed for the first run is valid for the second.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let start = || Server::start(dir, &["gateway", "serve", "--dir", "gw", "--ledger", &url, "--listen", &listen]);
    let gateway = start();
    let grant = grant_to_gp(dir, "many.json", 100);
    let gp = identity(dir, "gp");
    let target = format!("{}/fhir/Condition", gateway.url);
    let grant_header = data_encoding::BASE64URL_NOPAD.encode(grant.to_compact_json().as_bytes());
    let recorded =
        reqsig::sign_bound(&gp, "GET", &target, &statement_digest(grant.envelope()), now(), &EntryNonce::generate());
    let http = custodia_tests::http_client();
    let send = || {
        http.get(&target)
            .header("custodia-grant", &grant_header)
            .header("custodia-signature", &recorded)
            .send()
            .unwrap()
    };
    assert_eq!(send().status(), 200);
    drop(gateway);
    let _gateway = start();
    let replayed = send();
    assert_eq!(replayed.status(), 401, "a request recorded before the restart is a replay after it");
    assert!(replayed.text().unwrap().contains("replay"));
}

#[test]
fn kill_9_during_reads_leaves_the_count_and_the_events_exact() {
    const LIMIT: u32 = 24;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let net = network(dir);
    let url = net.ledger.url.clone();
    ok(dir, &["gateway", "link", "--dir", "gw", "--patient", &net.patient_key, "--fhir-id", "p1"]);
    let grant = Arc::new(grant_to_gp(dir, "limited.json", LIMIT));
    let gp = Arc::new(identity(dir, "gp"));
    let served = Arc::new(AtomicU32::new(0));
    // Four readers at once until refused; `stop_after` reads served, the gateway is killed under them.
    let read_until_refused = |gw: String, stop_after: Option<u32>| {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (grant, gp, served, gw) = (grant.clone(), gp.clone(), served.clone(), gw.clone());
                std::thread::spawn(move || {
                    let client = GatewayClient::new(&gw).unwrap();
                    loop {
                        match client.get("/fhir/Condition", &grant, &gp, None, None, now()) {
                            Ok(reply) if reply.status == 200 => {
                                served.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(reply) => {
                                assert_eq!(reply.status, 403, "{}", reply.body);
                                assert!(reply.body.to_string().contains("read limit"), "{}", reply.body);
                                return;
                            }
                            // The gateway was killed under this reader.
                            Err(_) => return,
                        }
                        if stop_after.is_some_and(|n| served.load(Ordering::SeqCst) >= n) {
                            return;
                        }
                    }
                })
            })
            .collect();
        threads
    };
    let gateway = serve_gateway(dir, &url);
    let readers = read_until_refused(gateway.url.clone(), None);
    while served.load(Ordering::SeqCst) < LIMIT / 2 {
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(gateway); // kill -9 with reads in flight
    for r in readers {
        r.join().unwrap();
    }
    let before_restart = served.load(Ordering::SeqCst);
    assert!(before_restart < LIMIT, "the kill came before the grant was used up ({before_restart})");
    let gateway = serve_gateway(dir, &url);
    for r in read_until_refused(gateway.url.clone(), None) {
        r.join().unwrap();
    }
    let answered = served.load(Ordering::SeqCst);
    // A read committed but killed before its answer left counts (its event is in the log); none is
    // counted twice and none is served beyond the limit.
    assert!(answered <= LIMIT && answered + 4 >= LIMIT, "{answered} reads answered under a limit of {LIMIT}");
    assert_eq!(logged(dir, &grant, "allowed", LIMIT as usize), LIMIT as usize, "one allowed event per counted read");
    assert!(logged(dir, &grant, "denied", 1) >= 1, "the refusal after the limit is logged");
    drop(gateway);
}

#[test]
fn a_patient_linked_by_the_hospitals_record_number_reads_as_their_patient_record() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let net = network(dir);
    let url = net.ledger.url.clone();
    let gateway = serve_gateway(dir, &url);
    grant_to_gp(dir, "g.json", 10);
    let fetch = || {
        custodia_tests::custodia(
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
                "g.json",
                "--json",
            ],
        )
    };
    let unlinked = fetch();
    assert_eq!(unlinked.code, 1);
    assert!(unlinked.stderr.contains("no records of the grant's patient"), "{}", unlinked.stderr);

    // A number no Patient carries is refused, and the refusal is logged for the patient with the reason.
    let bad = custodia_tests::custodia(
        dir,
        &[
            "gateway",
            "link",
            "--dir",
            "gw",
            "--patient",
            &net.patient_key,
            "--mrn",
            "NGH-1",
            "--mrn-system",
            "not a uri",
        ],
    );
    assert_eq!(bad.code, 2, "bad input is a usage error");
    assert!(bad.stderr.contains("absolute URI"), "{}", bad.stderr);
    ok(dir, &["gateway", "link", "--dir", "gw", "--patient", &net.patient_key, "--mrn", "NGH-999999"]);
    std::thread::sleep(Duration::from_millis(1100)); // the running gateway re-reads its links at most once a second
    let missing = fetch();
    assert_eq!(missing.code, 1);

    let linked = ok(
        dir,
        &[
            "gateway",
            "link",
            "--dir",
            "gw",
            "--patient",
            &net.patient_key,
            "--mrn",
            "NGH-100234",
            "--mrn-system",
            "https://northgate-hospital.example/fhir/mrn",
        ],
    );
    assert!(linked.contains("NGH-100234"), "{linked}");
    std::thread::sleep(Duration::from_millis(1100));
    let read = fetch();
    assert_eq!(read.code, 0, "{}", read.stderr);
    let bundle = json(&read.stdout);
    let subjects: Vec<&str> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["subject"]["reference"].as_str().unwrap())
        .collect();
    assert!(!subjects.is_empty() && subjects.iter().all(|s| *s == "Patient/p1"), "{subjects:?}");
}

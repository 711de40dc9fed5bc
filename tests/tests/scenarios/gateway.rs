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
use serde_json::Value;

fn now() -> Timestamp {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    Timestamp::from_unix(secs as i64).unwrap()
}

/// A ledger, a gateway's folder enrolled on it, a provider (`gp`) and an enrolled patient.
pub(crate) struct Network {
    pub(crate) ledger: Server,
    pub(crate) patient_key: String,
}

pub(crate) fn network(dir: &Path) -> Network {
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

/// Links the patient to the synthetic dataset's first patient by the hospital's record number.
fn link_by_record_number(dir: &Path, patient_key: &str) -> String {
    let system = "https://northgate-hospital.example/fhir/mrn";
    ok(
        dir,
        &["gateway", "link", "--dir", "gw", "--patient", patient_key, "--mrn", "NGH-100234", "--mrn-system", system],
    )
}

pub(crate) fn serve_gateway(dir: &Path, ledger: &str) -> Server {
    Server::start(dir, &["gateway", "serve", "--dir", "gw", "--ledger", ledger, "--listen", "127.0.0.1:0"])
}

/// The patient grants `gp` Condition reads, at most `max_reads` of them; returns the grant as `gp` holds it.
pub(crate) fn grant_to_gp(dir: &Path, file: &str, max_reads: u32) -> VerifiedGrant {
    let (gp_key, _) = key_of(dir, "gp");
    let max = max_reads.to_string();
    let extra = ["--max-reads", &max, "--post", "--out", file];
    ok(dir, &custodia_tests::grant_create("patient", &gp_key, "patient/Condition.rs", "TREAT", "1h", &extra));
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

    let linked = link_by_record_number(dir, &net.patient_key);
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

/// The third-party FHIR server, started on a free port with the gateway registered as a SMART Backend
/// Services client (its public JWK Set `jwks`) and `loader` as a static token; killed when dropped.
struct FhirServer {
    child: std::process::Child,
    base: String,
    token_url: String,
}

impl Drop for FhirServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_fhir_server(command: &Path, dir: &Path, jwks: &Value, loader: &str) -> FhirServer {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}/fhir");
    // YAML takes JSON as it is.
    let settings = serde_json::json!({
        "base_url": base,
        "host": "127.0.0.1",
        "port": port,
        "db_path": ":memory:",
        "data_dir": dir.join("fhir-data"),
        "simulator": {"enabled": false},
        "log_inbound": false,
        "validation": {"inbound": "strict"},
        "server_auth": {
            "types": ["bearer", "smart"],
            "tokens": [loader],
            "smart_clients": [{"client_id": "custodia-gateway", "jwks": jwks, "scopes": "system/*.read"}],
        },
    });
    std::fs::write(dir.join("fhir-server.yaml"), settings.to_string()).unwrap();
    let child = std::process::Command::new(command)
        .args(["serve", "-c"])
        .arg(dir.join("fhir-server.yaml"))
        .current_dir(dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.join("fhir-server.log")).unwrap())
        .spawn()
        .expect("the FHIR server starts");
    let server = FhirServer { child, token_url: format!("http://127.0.0.1:{port}/auth/token"), base };
    let http = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !http.get(format!("{}/metadata", server.base)).send().is_ok_and(|r| r.status() == 200) {
        assert!(
            Instant::now() < deadline,
            "the FHIR server did not come up: {}",
            std::fs::read_to_string(dir.join("fhir-server.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    server
}

#[test]
fn proxy_mode_guards_a_third_party_fhir_server_that_authenticates_the_gateway() {
    let Some(command) = custodia_tests::fhir_server_command("proxy_mode_guards_a_third_party_fhir_server") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let net = network(dir);
    let url = net.ledger.url.clone();

    // The hospital's FHIR server, with the gateway registered as a backend client, loaded with the
    // synthetic dataset by the hospital's own loader.
    let jwks = json(&ok(dir, &["gateway", "upstream-key", "--out", "upstream-key.pem", "--jwks", "jwks.json"]));
    let fhir = start_fhir_server(&command, dir, &jwks, "loader-token");
    ok(dir, &["gateway", "dataset", "--out", "synthetic"]);
    let http = reqwest::blocking::Client::new();
    let mut loaded = 0;
    for file in ["p1.json", "p2.json", "p3.json"] {
        let bundle = json(&std::fs::read_to_string(dir.join("synthetic").join(file)).unwrap());
        for entry in bundle["entry"].as_array().unwrap() {
            let resource = &entry["resource"];
            let path = format!(
                "{}/{}/{}",
                fhir.base,
                resource["resourceType"].as_str().unwrap(),
                resource["id"].as_str().unwrap()
            );
            let put = http
                .put(&path)
                .bearer_auth("loader-token")
                .header("content-type", "application/fhir+json")
                .body(resource.to_string())
                .send()
                .unwrap();
            assert!(put.status().is_success(), "{path}: {} {}", put.status(), put.text().unwrap_or_default());
            loaded += 1;
        }
    }
    assert!(loaded > 40, "{loaded} resources loaded");
    let anonymous = http.get(format!("{}/Observation?patient=p1", fhir.base)).send().unwrap();
    assert_eq!(anonymous.status(), 401, "the FHIR server authenticates its clients");

    // The registration desk links the patient by the hospital's record number; the gateway signs in to the
    // FHIR server as a SMART backend client and asks for pages of two.
    link_by_record_number(dir, &net.patient_key);
    // The gateway in proxy mode in front of that server, signing in as `auth` says.
    let proxy = |auth: &[&str]| {
        let mut args = vec![
            "gateway",
            "serve",
            "--dir",
            "gw",
            "--ledger",
            &url,
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            &fhir.base,
        ];
        args.extend_from_slice(auth);
        Server::start(dir, &args)
    };
    let gateway = proxy(&[
        "--upstream-client-id",
        "custodia-gateway",
        "--upstream-key",
        "upstream-key.pem",
        "--upstream-token-url",
        &fhir.token_url,
        "--upstream-scope",
        "system/*.read",
        "--upstream-page-size",
        "2",
    ]);
    let (gp_key, _) = key_of(dir, "gp");
    let more = "patient/AllergyIntolerance.rs";
    let extra = ["--scope", "patient/DocumentReference.rs", "--scope", more, "--post", "--out", "g.json"];
    ok(dir, &custodia_tests::grant_create("patient", &gp_key, "patient/Observation.rs", "TREAT", "1h", &extra));
    let fetch = |gw: &str, args: &[&str]| {
        let mut all = vec!["er", "fetch", "--wallet", "gp", "--gateway", gw, "--grant-file", "g.json", "--json"];
        all.extend_from_slice(args);
        custodia_tests::custodia(dir, &all)
    };
    let ids = |run: &custodia_tests::Run| -> Vec<String> {
        assert_eq!(run.code, 0, "{}", run.stderr);
        let bundle = json(&run.stdout);
        bundle["entry"]
            .as_array()
            .map(|e| e.iter().map(|e| e["resource"]["id"].as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    };
    // Every page of the patient's observations, in pages of two, but the HIV-labelled result.
    let observations = ids(&fetch(&gateway.url, &["--type", "Observation"]));
    let direct = json(
        &http
            .get(format!("{}/Observation?patient=p1&_count=100", fhir.base))
            .bearer_auth("loader-token")
            .send()
            .unwrap()
            .text()
            .unwrap(),
    );
    let all: Vec<&str> =
        direct["entry"].as_array().unwrap().iter().map(|e| e["resource"]["id"].as_str().unwrap()).collect();
    assert!(all.len() > 4 && all.contains(&"p1-hiv-result"), "{all:?}");
    assert_eq!(observations.len(), all.len() - 1, "{observations:?}");
    assert!(!observations.contains(&"p1-hiv-result".to_owned()));
    // The mental-health note is withheld, the visit note is not; a type outside the grant is refused.
    let notes = ids(&fetch(&gateway.url, &["--type", "DocumentReference"]));
    assert_eq!(notes, ["p1-visit-note"]);
    assert_eq!(fetch(&gateway.url, &["--type", "Condition"]).code, 1);
    assert!(!ids(&fetch(&gateway.url, &["--type", "AllergyIntolerance"])).is_empty());

    // The same FHIR server through a static token the hospital issued.
    drop(gateway);
    std::fs::write(dir.join("upstream-token"), "loader-token\n").unwrap();
    let with_token = proxy(&["--upstream-token-file", "upstream-token"]);
    assert_eq!(ids(&fetch(&with_token.url, &["--type", "DocumentReference"])), ["p1-visit-note"]);
    drop(with_token);
}

//! The ledger end to end, as its users run it: `custodia` processes for the ledger and every wallet, real
//! SQLite files, real HTTP on loopback. A patient enrolls, grants, revokes; a gateway logs a read; the
//! patient's sync shows it all verified. A ledger whose history is swapped is refused as forked. A ledger
//! killed with SIGKILL under load keeps every acknowledged entry.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is the failure report.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use custodia_core::entry::{Content, Leaf, LedgerEntry, SealedBody};
use custodia_core::grant::GrantId;
use custodia_core::ledger_api::{AppendResponse, ConsistencyProof, InclusionProof};
use custodia_core::time::Timestamp;
use custodia_core::{Identity, MasterSeed, statement};
use custodia_log::checkpoint::Checkpoint;
use custodia_log::note::NoteVerifier;
use custodia_log::{Hash, leaf_hash};
use custodia_tests::{
    Member, custodia, custodia_bin, enroll_member, http_client, json, key_of, ok, postgres_database, tls_args,
};

/// The crash test's gateway: its appending threads derive the same key.
const GATEWAY_SEED: [u8; 32] = [42; 32];

/// A `custodia ledger serve` process, killed when dropped.
struct LedgerProcess {
    child: Child,
    url: String,
}

impl LedgerProcess {
    fn start(dir: &Path, ledger_dir: &str, db: Option<&str>) -> Self {
        let mut args =
            vec!["ledger", "serve", "--dir", ledger_dir, "--listen", "127.0.0.1:0", "--rate-limit", "100000"];
        if let Some(db) = db {
            args.extend(["--db", db]);
        }
        let tls = tls_args();
        args.extend(tls.iter().map(String::as_str));
        let mut child = Command::new(custodia_bin())
            .args(&args)
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the ledger starts");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
        let url =
            first.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected: {first:?}")).to_owned();
        Self { child, url }
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for LedgerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads the ledger's first line of output, and keeps reading the rest in the background.
fn first_line(child: &mut Child) -> String {
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    first
}

fn init_ledger(dir: &Path, ledger_dir: &str, authority_key: &str) -> String {
    let init = json(&ok(dir, &["ledger", "init", "--dir", ledger_dir, "--authority", authority_key, "--json"]));
    init["verifier_key"].as_str().unwrap().to_owned()
}

#[test]
fn patient_grants_revokes_and_sees_a_verified_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for (wallet, name) in [
        ("authority", "Network authority"),
        ("doctor", "Dr Hopper"),
        ("gateway", "St Mary's gateway"),
        ("patient", "Ada"),
    ] {
        ok(dir, &["wallet", "init", "--wallet", wallet, "--name", name]);
    }
    let (authority, _) = key_of(dir, "authority");
    let (doctor, doctor_box) = key_of(dir, "doctor");
    let (gateway, gateway_box) = key_of(dir, "gateway");
    let (patient, _) = key_of(dir, "patient");
    let verifier = init_ledger(dir, "ledger", &authority);
    let ledger = LedgerProcess::start(dir, "ledger", None);
    let url = ledger.url.as_str();

    ok(dir, &["wallet", "enroll", "--wallet", "patient", "--ledger", url, "--verifier-key", &verifier]);
    for (key, box_key, role, name) in
        [(&doctor, &doctor_box, "provider", "Dr Hopper"), (&gateway, &gateway_box, "gateway", "Gateway")]
    {
        enroll_member(dir, "authority", url, Member { key, box_key, role, name, org: "St Mary's" });
    }
    let create = custodia(
        dir,
        &[
            "grant",
            "create",
            "--wallet",
            "patient",
            "--to",
            &doctor,
            "--scope",
            "patient/Observation.rs?category=laboratory",
            "--purpose",
            "TREAT",
            "--for",
            "7d",
            "--post",
            "--out",
            "grant.json",
        ],
    );
    assert_eq!(create.code, 0, "{}", create.stderr);
    let grants = json(&ok(dir, &["grant", "list", "--wallet", "patient", "--json"]));
    let grant_id = grants[0]["id"].as_str().unwrap().to_owned();

    // The gateway logs a read under the grant; the patient sees it after the next sync.
    let gateway_wallet_args = ["ledger", "post-access", "--wallet", "gateway", "--ledger", url];
    let mut post = gateway_wallet_args.to_vec();
    post.extend([
        "--patient",
        &patient,
        "--grant",
        &grant_id,
        "--resource",
        "Observation/hba1c-1",
        "--reader",
        &doctor,
    ]);
    ok(dir, &post);
    let synced = json(&ok(dir, &["wallet", "sync", "--wallet", "patient", "--json"]));
    assert_eq!(synced["grants"][0]["id"], grant_id.as_str());
    assert_eq!(synced["grants"][0]["status"], "active");
    let events = synced["access_events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{synced:#}");
    assert_eq!(events[0]["verified"], true);
    assert!(events[0].to_string().contains("hba1c-1"), "{}", events[0]);

    // Revoking posts to the ledger; the next sync shows the grant revoked, the read still there.
    ok(dir, &["grant", "revoke", "--wallet", "patient", &grant_id]);
    let synced = json(&ok(dir, &["wallet", "sync", "--wallet", "patient", "--json"]));
    assert_eq!(synced["grants"][0]["status"], "revoked");
    assert_eq!(synced["access_events"].as_array().unwrap().len(), 1);

    // Anyone can audit the whole log from its tiles against the signed checkpoint.
    let audit = custodia(dir, &["ledger", "audit", "--ledger", url, "--verifier-key", &verifier, "--json"]);
    assert_eq!(audit.code, 0, "{}{}", audit.stdout, audit.stderr);
    let audit = json(&audit.stdout);
    assert!(audit["size"].as_u64().unwrap() >= 6, "{audit:#}");
}

#[test]
fn a_swapped_history_is_refused_as_a_fork() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for wallet in ["authority", "patient", "other"] {
        ok(dir, &["wallet", "init", "--wallet", wallet]);
    }
    let (authority, _) = key_of(dir, "authority");
    let verifier = init_ledger(dir, "ledger", &authority);

    // History B: another patient enrolls first. Same ledger key, a different database.
    let other_history = LedgerProcess::start(dir, "ledger", Some("sqlite:other.sqlite"));
    ok(dir, &["wallet", "enroll", "--wallet", "other", "--ledger", &other_history.url, "--verifier-key", &verifier]);
    other_history.kill();

    // History A: the patient enrolls and syncs, so the wallet has seen a checkpoint of it.
    let ledger = LedgerProcess::start(dir, "ledger", None);
    ok(dir, &["wallet", "enroll", "--wallet", "patient", "--ledger", &ledger.url, "--verifier-key", &verifier]);
    ok(dir, &["wallet", "sync", "--wallet", "patient"]);
    let url = ledger.url.clone();
    ledger.kill();
    let vault = std::fs::read(dir.join("patient/wallet.vault")).unwrap();

    // The operator swaps the database for history B and serves it on the same address.
    let listen = url.trim_start_matches("https://").to_owned();
    let swapped = {
        let mut child = Command::new(custodia_bin())
            .args(["ledger", "serve", "--dir", "ledger", "--db", "sqlite:other.sqlite", "--listen", &listen])
            .args(tls_args())
            .current_dir(dir)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        first_line(&mut child);
        LedgerProcess { child, url: url.clone() }
    };
    let run = custodia(dir, &["wallet", "sync", "--wallet", "patient"]);
    assert_eq!(run.code, 1, "a fork is a failed check: {}{}", run.stdout, run.stderr);
    assert!(run.stderr.to_lowercase().contains("fork"), "the error must say the ledger forked: {}", run.stderr);
    assert_eq!(std::fs::read(dir.join("patient/wallet.vault")).unwrap(), vault, "nothing from the fork was stored");
    drop(swapped);
}

/// An acknowledged entry: its index and leaf bytes.
type Acked = (u64, Vec<u8>);

fn now() -> Timestamp {
    Timestamp::from_unix(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64)
        .unwrap()
}

fn signed(signer: &Identity, content: Content) -> String {
    statement::sign(LedgerEntry::new(signer.signing_public(), now(), content), signer).unwrap().to_compact_json()
}

fn append(http: &reqwest::blocking::Client, url: &str, entries: &[String]) -> reqwest::Result<AppendResponse> {
    let body = format!("{{\"entries\":[{}]}}", entries.join(","));
    http.post(format!("{url}/v1/entries"))
        .header("content-type", "application/json")
        .body(body)
        .send()?
        .error_for_status()?
        .json()
}

#[test]
fn a_killed_ledger_keeps_every_acknowledged_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let authority = Identity::from_seed(&MasterSeed::generate());
    let verifier_key = init_ledger(dir, "ledger", &authority.signing_public().to_string());
    let verifier = NoteVerifier::from_vkey(&verifier_key).unwrap();
    let ledger = LedgerProcess::start(dir, "ledger", None);
    let http = http_client();

    let patient = Identity::from_seed(&MasterSeed::generate());
    let gateway = Identity::from_seed(&MasterSeed::from_bytes(GATEWAY_SEED));
    append(
        &http,
        &ledger.url,
        &[
            signed(&patient, Content::EnrollPatient { box_key: patient.box_public(), tag: patient.ledger_tag() }),
            signed(
                &authority,
                Content::EnrollMember {
                    key: gateway.signing_public(),
                    box_key: gateway.box_public(),
                    role: custodia_core::entry::Role::Gateway,
                    name: "Gateway".into(),
                    org: "St Mary's".into(),
                },
            ),
        ],
    )
    .unwrap();

    // Four clients append as fast as they can; every acknowledgement is recorded.
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let last_checkpoint: Arc<Mutex<Option<String>>> = Arc::default();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (http, url, acked, last) = (http.clone(), ledger.url.clone(), acked.clone(), last_checkpoint.clone());
            let patient = patient.ledger_tag();
            std::thread::spawn(move || {
                let gateway = Identity::from_seed(&MasterSeed::from_bytes(GATEWAY_SEED));
                loop {
                    let batch: Vec<String> = (0..20)
                        .map(|_| {
                            let body = SealedBody(vec![7; 200]);
                            signed(
                                &gateway,
                                Content::Access { tag: patient, grant_id: Some(GrantId::generate()), body },
                            )
                        })
                        .collect();
                    match append(&http, &url, &batch) {
                        Ok(response) => {
                            let mut acked = acked.lock().unwrap();
                            for r in response.entries {
                                acked.push((r.index, data_encoding::BASE64.decode(r.leaf.as_bytes()).unwrap()));
                            }
                            *last.lock().unwrap() = Some(response.checkpoint);
                        }
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    ledger.kill(); // SIGKILL: no shutdown path runs.
    for c in clients {
        c.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let last_note = last_checkpoint.lock().unwrap().clone().expect("some appends were acknowledged");
    let (last, _) = Checkpoint::open(&last_note, &verifier).unwrap();
    assert!(acked.len() > 100, "the load was too light to mean anything: {} entries", acked.len());

    // Restarted on the same folder: the new checkpoint extends the last one the clients saw, and every
    // acknowledged entry is in it, with the same leaf.
    let ledger = LedgerProcess::start(dir, "ledger", None);
    let note = http.get(format!("{}/checkpoint", ledger.url)).send().unwrap().text().unwrap();
    let (now_cp, _) = Checkpoint::open(&note, &verifier).unwrap();
    assert!(now_cp.size >= last.size);
    let consistency: ConsistencyProof = http
        .get(format!("{}/v1/proof/consistency?old={}&new={}", ledger.url, last.size, now_cp.size))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let proof: Vec<Hash> = consistency.proof.iter().map(|h| Hash::from_base64(h).unwrap()).collect();
    custodia_log::proof::verify_consistency(last.size, now_cp.size, &last.root, &now_cp.root, &proof).unwrap();
    for (index, leaf) in acked.iter().step_by(7) {
        let p: InclusionProof = http
            .get(format!("{}/v1/proof/inclusion?index={index}&size={}", ledger.url, now_cp.size))
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(data_encoding::BASE64.decode(p.leaf.as_bytes()).unwrap(), *leaf, "entry {index} changed");
        Leaf::parse(leaf).unwrap();
        let proof: Vec<Hash> = p.proof.iter().map(|h| Hash::from_base64(h).unwrap()).collect();
        custodia_log::proof::verify_inclusion(&leaf_hash(leaf), *index, now_cp.size, &proof, &now_cp.root).unwrap();
    }
    // And appends continue.
    let more =
        signed(&gateway, Content::Access { tag: patient.ledger_tag(), grant_id: None, body: SealedBody(vec![1; 10]) });
    let response = append(&http, &ledger.url, &[more]).unwrap();
    assert_eq!(response.entries[0].index, now_cp.size);
}

/// Syncs `wallet` until it shows `events` verified reads: a front end publishes entries another one
/// sequenced with its next checkpoint refresh, within a second or so.
fn sync_until_reads(dir: &Path, wallet: &str, events: usize) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let synced = json(&ok(dir, &["wallet", "sync", "--wallet", wallet, "--json"]));
        let seen = synced["access_events"].as_array().map_or(0, Vec::len);
        if seen >= events || std::time::Instant::now() > deadline {
            return synced;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Two `custodia ledger serve --db postgres://...` front ends over one database, as the README offers
/// for scaling past one machine: each patient enrolls, grants and revokes through one front end while
/// the gateway logs their reads through the other, every sync verifies against either front end's
/// checkpoints, and an audit from the tiles of either finds one tree.
#[test]
fn two_front_ends_over_one_postgres_database_keep_one_tree() {
    let Some(db) = postgres_database("two_front_ends_over_one_postgres_database_keep_one_tree") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for (wallet, name) in [
        ("authority", "Network authority"),
        ("doctor", "Dr Hopper"),
        ("gateway", "Gateway"),
        ("ada", "Ada"),
        ("bo", "Bo"),
    ] {
        ok(dir, &["wallet", "init", "--wallet", wallet, "--name", name]);
    }
    let (authority, _) = key_of(dir, "authority");
    let (doctor, doctor_box) = key_of(dir, "doctor");
    let (gateway, gateway_box) = key_of(dir, "gateway");
    let verifier = init_ledger(dir, "ledger", &authority);
    let front =
        [LedgerProcess::start(dir, "ledger", Some(&db.url)), LedgerProcess::start(dir, "ledger", Some(&db.url))];

    let patients = [("ada", &front[0].url, &front[1].url), ("bo", &front[1].url, &front[0].url)];
    for (wallet, own, _) in patients {
        ok(dir, &["wallet", "enroll", "--wallet", wallet, "--ledger", own, "--verifier-key", &verifier]);
    }
    let member = |key, box_key, role, name| Member { key, box_key, role, name, org: "St Mary's" };
    enroll_member(dir, "authority", &front[0].url, member(&doctor, &doctor_box, "provider", "Dr Hopper"));
    enroll_member(dir, "authority", &front[1].url, member(&gateway, &gateway_box, "gateway", "Gateway"));

    let mut grant_ids = Vec::new();
    for (wallet, _, other) in patients {
        ok(
            dir,
            &[
                "grant",
                "create",
                "--wallet",
                wallet,
                "--to",
                &doctor,
                "--scope",
                "patient/Observation.rs",
                "--purpose",
                "TREAT",
                "--for",
                "1d",
                "--post",
            ],
        );
        let grant_id =
            json(&ok(dir, &["grant", "list", "--wallet", wallet, "--json"]))[0]["id"].as_str().unwrap().to_owned();
        let (patient, _) = key_of(dir, wallet);
        ok(
            dir,
            &[
                "ledger",
                "post-access",
                "--wallet",
                "gateway",
                "--ledger",
                other,
                "--patient",
                &patient,
                "--grant",
                &grant_id,
                "--resource",
                "Observation/hba1c-1",
                "--reader",
                &doctor,
            ],
        );
        grant_ids.push(grant_id);
    }

    // Each patient's front end serves the read the other one sequenced, proved against its checkpoint.
    for ((wallet, _, _), grant_id) in patients.iter().zip(&grant_ids) {
        let synced = sync_until_reads(dir, wallet, 1);
        let events = synced["access_events"].as_array().unwrap();
        assert_eq!(events.len(), 1, "{wallet} sees the read logged through the other front end: {synced:#}");
        assert_eq!(events[0]["verified"], true);
        assert_eq!(synced["grants"][0]["id"], grant_id.as_str());
        ok(dir, &["grant", "revoke", "--wallet", wallet, grant_id]);
    }
    // Revoked through one front end, revoked as seen through the other.
    let http = http_client();
    for (grant_id, (_, _, other)) in grant_ids.iter().zip(patients) {
        let status: serde_json::Value =
            http.get(format!("{other}/v1/grants/{grant_id}")).send().unwrap().json().unwrap();
        assert_eq!(status["state"], "revoked", "{status}");
    }

    // Both front ends publish the same checkpoint, and an audit through either rebuilds the same tree.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let checkpoints = loop {
        let notes: Vec<String> =
            front.iter().map(|f| http.get(format!("{}/checkpoint", f.url)).send().unwrap().text().unwrap()).collect();
        if notes[0] == notes[1] || std::time::Instant::now() > deadline {
            break notes;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(checkpoints[0], checkpoints[1], "the front ends publish one checkpoint");
    let audits: Vec<serde_json::Value> = front
        .iter()
        .map(|f| json(&ok(dir, &["ledger", "audit", "--ledger", &f.url, "--verifier-key", &verifier, "--json"])))
        .collect();
    assert_eq!(audits[0]["root"], audits[1]["root"]);
    assert_eq!(audits[0]["size"], audits[1]["size"]);
    // Two patients, two members, two grants, two reads, two revocations.
    assert_eq!(audits[0]["size"], 10, "{:#}", audits[0]);
}

#[test]
fn serve_refuses_a_database_the_earlier_version_made_and_says_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(dir, &["wallet", "init", "--wallet", "authority", "--name", "Network authority"]);
    let (authority, _) = key_of(dir, "authority");
    init_ledger(dir, "ledger", &authority);
    // What the previous version left in the folder: its tables, entries as JSON, no storage version.
    let old = rusqlite::Connection::open(dir.join("ledger").join("ledger.sqlite")).unwrap();
    old.execute_batch(
        "CREATE TABLE tree (id INTEGER PRIMARY KEY, size INTEGER NOT NULL, root BLOB NOT NULL,
             checkpoint_size INTEGER, checkpoint TEXT);
         CREATE TABLE entries (idx INTEGER PRIMARY KEY, kind INTEGER NOT NULL, tag BLOB, leaf BLOB NOT NULL,
             envelope_hash BLOB NOT NULL UNIQUE, payload BLOB, sig BLOB);",
    )
    .unwrap();
    drop(old);
    let run = custodia(dir, &["ledger", "serve", "--dir", "ledger", "--listen", "127.0.0.1:0"]);
    assert_ne!(run.code, 0, "serve started over an old database: {}", run.stdout);
    assert!(run.stdout.is_empty(), "nothing was served: {}", run.stdout);
    for said in ["storage version 1", "entry.v1 JSON", "custodia ledger init"] {
        assert!(run.stderr.contains(said), "{said:?} not in: {}", run.stderr);
    }
}

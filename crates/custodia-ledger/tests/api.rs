#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is the failure report.

//! The ledger over real HTTP on loopback with a real SQLite file: appends with proofs, who may append
//! what, bad input refused with specific problems, reads by tag, redaction, the mailbox, live events,
//! and the tlog-tiles view.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use custodia_core::entry::{
    Content, EntryKind, Leaf, LedgerEntry, Role, SealedBody, Tag, canonical_envelope, seal_statement, statement_digest,
};
use custodia_core::grant::{GrantId, GrantRequest, Revocation};
use custodia_core::ledger_api::{AppendResponse, GrantState, GrantStatus, MailList, Problem, TagEntries};
use custodia_core::time::Timestamp;
use custodia_core::{Identity, MasterSeed, reqsig, statement};
use custodia_ledger::{LedgerDir, RunningLedger, default_limits};
use custodia_log::checkpoint::Checkpoint;
use custodia_log::note::NoteVerifier;
use custodia_log::{Hash, leaf_hash};

struct TestLedger {
    runtime: tokio::runtime::Runtime,
    running: Option<RunningLedger>,
    url: String,
    verifier: NoteVerifier,
    authority: Identity,
    http: reqwest::blocking::Client,
    dir: std::sync::Arc<tempfile::TempDir>,
    /// `--db`: None for the folder's SQLite file.
    db: Option<String>,
}

impl Drop for TestLedger {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            self.runtime.block_on(running.shutdown()).unwrap();
        }
    }
}

fn identity() -> Identity {
    Identity::from_seed(&MasterSeed::generate())
}

fn now() -> Timestamp {
    Timestamp::from_unix(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64)
        .unwrap()
}

fn entry(signer: &Identity, content: Content) -> String {
    entry_at(signer, content, now())
}

fn entry_at(signer: &Identity, content: Content, at: Timestamp) -> String {
    statement::sign(LedgerEntry::new(signer.signing_public(), at, content), signer).unwrap().to_compact_json()
}

fn enroll_patient(id: &Identity) -> Content {
    Content::EnrollPatient { box_key: id.box_public(), tag: id.ledger_tag() }
}

fn enroll_member(id: &Identity, role: Role) -> Content {
    Content::EnrollMember {
        key: id.signing_public(),
        box_key: id.box_public(),
        role,
        name: "Dr. A. Example".into(),
        org: "St Example's".into(),
    }
}

fn grant_content(patient: &Identity, grantee: &Identity) -> (GrantId, Content) {
    let grant = GrantRequest {
        grantee: grantee.signing_public(),
        scopes: vec!["patient/Observation.rs?category=laboratory".parse().unwrap()],
        allowed_labels: vec![],
        purpose: "TREAT".parse().unwrap(),
        duration_seconds: 3600,
        max_reads: None,
        note: String::new(),
    }
    .sign(patient, now())
    .unwrap();
    let tag = patient.ledger_tag();
    let body = seal_statement(&grant, &[patient.box_public(), grantee.box_public()], EntryKind::Grant, &tag).unwrap();
    (grant.id, Content::Grant { tag, grant_id: grant.id, grant_digest: statement_digest(grant.envelope()), body })
}

fn revocation_content(patient: &Identity, grant_id: GrantId) -> Content {
    let revocation = statement::sign(
        Revocation { grant_id, patient: patient.signing_public(), revoked_at: now(), reason: String::new() },
        patient,
    )
    .unwrap();
    let tag = patient.ledger_tag();
    let body = seal_statement(&revocation, &[patient.box_public()], EntryKind::Revocation, &tag).unwrap();
    Content::Revocation { tag, grant_id, body }
}

fn access_content(patient: &Identity, grant_id: GrantId) -> Content {
    Content::Access { tag: patient.ledger_tag(), grant_id: Some(grant_id), body: SealedBody(vec![1; 100]) }
}

impl TestLedger {
    fn serve(runtime: &tokio::runtime::Runtime, ledger_dir: &LedgerDir, db: Option<&str>) -> RunningLedger {
        let store = custodia_ledger::open_store(ledger_dir, db).unwrap();
        runtime
            .block_on(custodia_ledger::start(ledger_dir, store, "127.0.0.1:0".parse().unwrap(), default_limits()))
            .unwrap()
    }

    /// Stops the ledger and starts it again over the same folder, as after a restart.
    fn restart(&mut self) {
        if let Some(running) = self.running.take() {
            self.runtime.block_on(running.shutdown()).unwrap();
        }
        let running = Self::serve(&self.runtime, &LedgerDir::open(self.dir.path()).unwrap(), self.db.as_deref());
        self.url = format!("http://{}", running.addr);
        self.running = Some(running);
    }

    fn start() -> Self {
        Self::start_with(None)
    }

    fn start_with(db: Option<String>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let authority = identity();
        let (ledger_dir, verifier) = LedgerDir::init(dir.path(), authority.signing_public(), None).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let running = Self::serve(&runtime, &ledger_dir, db.as_deref());
        let url = format!("http://{}", running.addr);
        let http =
            custodia_net::Trust::global().unwrap().blocking_client().timeout(Duration::from_secs(20)).build().unwrap();
        Self { runtime, running: Some(running), url, verifier, authority, http, dir: std::sync::Arc::new(dir), db }
    }

    /// A second front end over the same ledger folder and database. Its `authority` is a stranger (secret
    /// keys are not cloned): enroll members through the first.
    fn front_end(&self) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let running = Self::serve(&runtime, &LedgerDir::open(self.dir.path()).unwrap(), self.db.as_deref());
        Self {
            url: format!("http://{}", running.addr),
            runtime,
            running: Some(running),
            verifier: self.verifier.clone(),
            authority: Identity::from_seed(&MasterSeed::generate()),
            http: self.http.clone(),
            dir: self.dir.clone(),
            db: self.db.clone(),
        }
    }

    fn post_raw(&self, body: String) -> reqwest::blocking::Response {
        self.http
            .post(format!("{}/v1/entries", self.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap()
    }

    fn append(&self, entries: &[String]) -> Result<AppendResponse, Problem> {
        let body = format!("{{\"entries\":[{}]}}", entries.join(","));
        let response = self.post_raw(body);
        if response.status().is_success() {
            Ok(response.json().unwrap())
        } else {
            let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
            assert_eq!(content_type, "application/problem+json");
            Err(response.json().unwrap())
        }
    }

    /// Appends and checks every receipt: the checkpoint verifies and each entry's proof leads to its root.
    fn append_ok(&self, entries: &[String]) -> Vec<u64> {
        let response = self.append(entries).unwrap_or_else(|p| panic!("append refused: {p:?}"));
        let (checkpoint, _) = Checkpoint::open(&response.checkpoint, &self.verifier).unwrap();
        assert_eq!(response.entries.len(), entries.len());
        for (receipt, submitted) in response.entries.iter().zip(entries) {
            let leaf_bytes = data_encoding::BASE64.decode(receipt.leaf.as_bytes()).unwrap();
            let leaf = Leaf::parse(&leaf_bytes).unwrap();
            let envelope = custodia_core::dsse::Envelope::from_json(submitted.as_bytes()).unwrap();
            let canonical = canonical_envelope(&envelope.payload, &envelope.signatures[0].sig);
            assert!(leaf.commits_to(canonical.as_bytes()));
            let proof: Vec<Hash> = receipt.inclusion.iter().map(|h| Hash::from_base64(h).unwrap()).collect();
            custodia_log::proof::verify_inclusion(
                &leaf_hash(&leaf_bytes),
                receipt.index,
                checkpoint.size,
                &proof,
                &checkpoint.root,
            )
            .unwrap();
        }
        response.entries.iter().map(|r| r.index).collect()
    }

    fn refused(&self, entries: &[String]) -> Problem {
        self.append(entries).expect_err("the ledger accepted what it should refuse")
    }

    fn signed_get(&self, who: &Identity, path: &str) -> reqwest::blocking::Response {
        let header = reqsig::sign(who, "GET", path, b"", now());
        self.http.get(format!("{}{path}", self.url)).header(reqsig::HEADER, header).send().unwrap()
    }

    fn setup(&self) -> (Identity, Identity, Identity) {
        let (patient, provider, gateway) = (identity(), identity(), identity());
        self.append_ok(&[
            entry(&patient, enroll_patient(&patient)),
            entry(&self.authority, enroll_member(&provider, Role::Provider)),
            entry(&self.authority, enroll_member(&gateway, Role::Gateway)),
        ]);
        (patient, provider, gateway)
    }
}

/// Checks a tag entry's inclusion proof against the page's checkpoint; returns its leaf.
fn verify_tag_entry(e: &custodia_core::ledger_api::TagEntry, checkpoint: &Checkpoint) -> Leaf {
    let leaf_bytes = data_encoding::BASE64.decode(e.leaf.as_bytes()).unwrap();
    let proof: Vec<Hash> = e.inclusion.iter().map(|h| Hash::from_base64(h).unwrap()).collect();
    custodia_log::proof::verify_inclusion(&leaf_hash(&leaf_bytes), e.index, checkpoint.size, &proof, &checkpoint.root)
        .unwrap();
    Leaf::parse(&leaf_bytes).unwrap()
}

#[test]
fn grants_revocations_and_access_events_are_logged_with_proofs() {
    let ledger = TestLedger::start();
    let (patient, provider, gateway) = ledger.setup();
    let (grant_id, grant) = grant_content(&patient, &provider);
    let [grant_index] = ledger.append_ok(&[entry(&patient, grant)])[..] else { panic!() };
    let status: GrantStatus =
        ledger.http.get(format!("{}/v1/grants/{grant_id}", ledger.url)).send().unwrap().json().unwrap();
    assert_eq!((status.state, status.index), (GrantState::Active, grant_index));

    ledger.append_ok(&[entry(&gateway, access_content(&patient, grant_id))]);
    let [revoked_at] = ledger.append_ok(&[entry(&patient, revocation_content(&patient, grant_id))])[..] else {
        panic!()
    };
    let status: GrantStatus =
        ledger.http.get(format!("{}/v1/grants/{grant_id}", ledger.url)).send().unwrap().json().unwrap();
    assert_eq!((status.state, status.revoked_index), (GrantState::Revoked, Some(revoked_at)));

    // The patient reads their own entries, each with a proof against the checkpoint returned.
    let path = format!("/v1/tags/{}/entries", patient.ledger_tag());
    let page: TagEntries = ledger.signed_get(&patient, &path).json().unwrap();
    let (checkpoint, _) = Checkpoint::open(&page.checkpoint, &ledger.verifier).unwrap();
    let kinds: Vec<EntryKind> = page.entries.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EntryKind::EnrollPatient, EntryKind::Grant, EntryKind::Access, EntryKind::Revocation]);
    for e in &page.entries {
        let leaf = verify_tag_entry(e, &checkpoint);
        assert!(leaf.commits_to(e.envelope.as_ref().unwrap().get().as_bytes()));
    }

    // Nobody else may read them, and an unsigned request is told what is missing.
    let stranger = identity();
    assert_eq!(ledger.signed_get(&stranger, &path).status(), 403);
    let unsigned = ledger.http.get(format!("{}{path}", ledger.url)).send().unwrap();
    assert_eq!(unsigned.status(), 401);
    let problem: Problem = unsigned.json().unwrap();
    assert_eq!(problem.code(), "unauthorized");
}

#[test]
fn bad_entries_are_refused_with_specific_problems() {
    let ledger = TestLedger::start();
    let (patient, provider, gateway) = ledger.setup();
    let outsider = identity();
    let (grant_id, grant) = grant_content(&patient, &provider);
    let good = entry(&patient, grant);
    ledger.append_ok(std::slice::from_ref(&good));

    let code = |entries: &[String]| ledger.refused(entries).code().to_owned();
    // Malformed: not JSON, not an envelope, an envelope of something else.
    assert_eq!(ledger.post_raw("{not json".into()).status(), 400);
    assert_eq!(code(&["{\"payload\":\"\"}".into()]), "malformed");
    // Oversized.
    let huge = format!("{{\"payload\":\"{}\",\"payloadType\":\"x\",\"signatures\":[]}}", "A".repeat(20_000));
    assert_eq!(code(&[huge]), "too-large");
    // Unsigned and wrongly signed.
    let mut envelope: serde_json::Value = serde_json::from_str(&entry(&patient, enroll_patient(&identity()))).unwrap();
    envelope["signatures"] = serde_json::json!([]);
    assert_eq!(code(&[envelope.to_string()]), "malformed");
    let forged = {
        let other = identity();
        let mut e = LedgerEntry::new(patient.signing_public(), now(), revocation_content(&patient, grant_id));
        e.signer = patient.signing_public();
        let payload = custodia_core::statement::Statement::encode(&e).unwrap();
        custodia_core::dsse::Envelope::sign(custodia_core::entry::ENTRY_PAYLOAD_TYPE, payload, &other).to_compact_json()
    };
    assert_eq!(code(std::slice::from_ref(&forged)), "bad-signature");
    // Signatures are checked in one batch per request; a bad one among good ones is still named.
    let good_ones = || entry(&gateway, access_content(&patient, grant_id));
    let refusal = ledger.refused(&[good_ones(), good_ones(), forged, good_ones()]);
    assert_eq!((refusal.code(), refusal.entry), ("bad-signature", Some(2)));
    // An entry in the format before the binary one is an unknown version, said so.
    let old = custodia_core::dsse::Envelope::sign("application/vnd.custodia.entry.v1+json", b"{}".to_vec(), &patient)
        .to_compact_json();
    let refusal = ledger.refused(&[old]);
    assert_eq!(refusal.code(), "malformed");
    assert!(refusal.detail.contains("unknown ledger entry version"), "{}", refusal.detail);
    // Unenrolled signers, and the wrong roles.
    assert_eq!(code(&[entry(&outsider, Content::Redaction { tag: outsider.ledger_tag() })]), "not-enrolled");
    assert_eq!(code(&[entry(&outsider, enroll_member(&identity(), Role::Gateway))]), "wrong-role");
    assert_eq!(code(&[entry(&provider, access_content(&patient, grant_id))]), "wrong-role");
    assert_eq!(code(&[entry(&patient, Content::Redaction { tag: Tag::from_bytes([0; 16]) })]), "wrong-tag");
    // Replayed: the same bytes again, or twice in one request.
    assert_eq!(code(std::slice::from_ref(&good)), "replayed");
    let fresh = entry(&gateway, access_content(&patient, grant_id));
    assert_eq!(code(&[fresh.clone(), fresh]), "replayed");
    // Order-dependent checks.
    let second_patient = identity();
    ledger.append_ok(&[entry(&second_patient, enroll_patient(&second_patient))]);
    let foreign = Content::Revocation { tag: second_patient.ledger_tag(), grant_id, body: SealedBody(vec![1; 64]) };
    assert_eq!(code(&[entry(&second_patient, foreign)]), "not-owner");
    let unknown = revocation_content(&patient, GrantId::generate());
    assert_eq!(code(&[entry(&patient, unknown)]), "unknown-grant");
    assert_eq!(code(&[entry(&patient, enroll_patient(&patient))]), "already-enrolled");
    // Out of the time window.
    let old = Timestamp::from_unix(now().unix() - 3600).unwrap();
    assert_eq!(code(&[entry_at(&gateway, access_content(&patient, grant_id), old)]), "stale");
    // Too many entries in one request.
    let many: Vec<String> = (0..257).map(|_| entry(&gateway, access_content(&patient, grant_id))).collect();
    assert_eq!(code(&many), "too-many-entries");
    // A failed request leaves nothing behind: the good entry in it was not appended either.
    let ok = entry(&gateway, access_content(&patient, grant_id));
    let problem = ledger.refused(&[ok.clone(), entry(&outsider, Content::Redaction { tag: outsider.ledger_tag() })]);
    assert_eq!(problem.entry, Some(1));
    ledger.append_ok(&[ok]);
}

#[test]
fn redaction_removes_bodies_and_proofs_still_verify() {
    let ledger = TestLedger::start();
    let (patient, provider, gateway) = ledger.setup();
    let (grant_id, grant) = grant_content(&patient, &provider);
    ledger.append_ok(&[entry(&patient, grant), entry(&gateway, access_content(&patient, grant_id))]);
    ledger.append_ok(&[entry(&patient, Content::Redaction { tag: patient.ledger_tag() })]);
    let path = format!("/v1/tags/{}/entries", patient.ledger_tag());
    let page: TagEntries = ledger.signed_get(&patient, &path).json().unwrap();
    let (checkpoint, _) = Checkpoint::open(&page.checkpoint, &ledger.verifier).unwrap();
    let redacted: Vec<bool> = page.entries.iter().map(|e| e.envelope.is_none()).collect();
    assert_eq!(redacted, [false, true, true, false], "enrollment and the redaction itself stay");
    for e in &page.entries {
        verify_tag_entry(e, &checkpoint);
    }
    let status: GrantStatus =
        ledger.http.get(format!("{}/v1/grants/{grant_id}", ledger.url)).send().unwrap().json().unwrap();
    assert_eq!(status.state, GrantState::Redacted);
}

#[test]
fn tiles_rebuild_the_checkpoint_root() {
    let ledger = TestLedger::start();
    let (patient, _, gateway) = ledger.setup();
    // 300 entries: one full level-0 tile and a partial one.
    let grant_id = GrantId::generate();
    for chunk in 0..3 {
        let batch: Vec<String> = (0..(if chunk < 2 { 100 } else { 97 }))
            .map(|_| entry(&gateway, access_content(&patient, grant_id)))
            .collect();
        ledger.append_ok(&batch);
    }
    let note = ledger.http.get(format!("{}/checkpoint", ledger.url)).send().unwrap().text().unwrap();
    let (checkpoint, _) = Checkpoint::open(&note, &ledger.verifier).unwrap();
    assert_eq!(checkpoint.size, 300);
    let get =
        |path: &str| ledger.http.get(format!("{}/tile/{path}", ledger.url)).send().unwrap().bytes().unwrap().to_vec();
    let bundles = [get("entries/000"), get("entries/001.p/44")];
    let mut leaves = Vec::new();
    for bundle in &bundles {
        let mut rest = &bundle[..];
        while !rest.is_empty() {
            let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
            leaves.push(leaf_hash(&rest[2..2 + len]));
            rest = &rest[2 + len..];
        }
    }
    assert_eq!(leaves.len(), 300);
    let tile0 = get("0/000");
    assert_eq!(tile0.len(), 256 * 32);
    assert!(tile0.chunks(32).zip(&leaves).all(|(t, l)| t == l.0));
    let mut frontier = custodia_log::Frontier::empty();
    for l in leaves {
        frontier.push(l);
    }
    assert_eq!(frontier.root(), checkpoint.root);
    // A tile beyond the tree is not there yet.
    assert_eq!(ledger.http.get(format!("{}/tile/0/002", ledger.url)).send().unwrap().status(), 404);
}

#[test]
fn the_mailbox_delivers_once_to_its_recipient() {
    let ledger = TestLedger::start();
    let (sender, recipient) = (identity(), identity());
    let path = format!("/v1/mailbox/{}?ttl=600", recipient.signing_public());
    let body = b"sealed share".to_vec();
    let header = reqsig::sign(&sender, "POST", &path, &body, now());
    let posted =
        ledger.http.post(format!("{}{path}", ledger.url)).header(reqsig::HEADER, header).body(body).send().unwrap();
    assert_eq!(posted.status(), 200);
    let list_path = format!("/v1/mailbox/{}", recipient.signing_public());
    assert_eq!(ledger.signed_get(&sender, &list_path).status(), 403);
    let list: MailList = ledger.signed_get(&recipient, &list_path).json().unwrap();
    assert_eq!(list.messages.len(), 1);
    assert_eq!(list.messages[0].from, sender.signing_public());
    let delete_path = format!("{list_path}/{}", list.messages[0].id);
    let header = reqsig::sign(&recipient, "DELETE", &delete_path, b"", now());
    let deleted =
        ledger.http.delete(format!("{}{delete_path}", ledger.url)).header(reqsig::HEADER, header).send().unwrap();
    assert_eq!(deleted.status(), 204);
    let list: MailList = ledger.signed_get(&recipient, &list_path).json().unwrap();
    assert!(list.messages.is_empty());
}

#[test]
fn entries_are_still_refused_as_replays_after_a_restart() {
    let mut ledger = TestLedger::start();
    let (patient, _provider, gateway) = ledger.setup();
    let grant_id = {
        let (grant_id, content) = grant_content(&patient, &identity());
        ledger.append_ok(&[entry(&patient, content)]);
        grant_id
    };
    let read = entry(&gateway, access_content(&patient, grant_id));
    ledger.append_ok(std::slice::from_ref(&read));
    ledger.restart();
    // The replay window is rebuilt from the log: the same bytes are refused, new ones go in.
    assert_eq!(ledger.refused(std::slice::from_ref(&read)).code(), "replayed");
    ledger.append_ok(&[entry(&gateway, access_content(&patient, grant_id))]);
}

/// The PostgreSQL server `cargo xtask test` starts; tests that need one are skipped without it, except
/// in CI.
fn postgres_server() -> Option<String> {
    let server = std::env::var("CUSTODIA_TEST_POSTGRES").ok();
    assert!(server.is_some() || std::env::var_os("CI").is_none(), "CI must set CUSTODIA_TEST_POSTGRES");
    server
}

#[test]
fn a_replay_through_another_front_end_is_refused() {
    let Some(server) = postgres_server() else { return };
    let db = custodia_ledger::store::postgres::ScratchDatabase::create(&server, "custodia_api").unwrap();
    let first = TestLedger::start_with(Some(db.url.clone()));
    let second = first.front_end();
    let (patient, _provider, gateway) = first.setup();
    let (grant_id, content) = grant_content(&patient, &identity());
    first.append_ok(&[entry(&patient, content)]);
    // Each front end keeps its own replay window and catches up with the other's entries.
    let read = entry(&gateway, access_content(&patient, grant_id));
    first.append_ok(std::slice::from_ref(&read));
    assert_eq!(second.refused(std::slice::from_ref(&read)).code(), "replayed");
    let other = entry(&gateway, access_content(&patient, grant_id));
    second.append_ok(std::slice::from_ref(&other));
    assert_eq!(first.refused(std::slice::from_ref(&other)).code(), "replayed");
}

#[test]
fn a_postgres_database_in_the_earlier_storage_version_is_refused() {
    let Some(server) = postgres_server() else { return };
    let db = custodia_ledger::store::postgres::ScratchDatabase::create(&server, "custodia_old").unwrap();
    let mut client = db.config.connect(postgres::NoTls).unwrap();
    client
        .batch_execute("CREATE TABLE tree (id BIGINT PRIMARY KEY, size BIGINT NOT NULL, root BYTEA NOT NULL)")
        .unwrap();
    drop(client);
    let Err(refusal) = custodia_ledger::store::postgres::PostgresStore::connect(&db.url) else {
        panic!("an old database was opened")
    };
    let message = refusal.to_string();
    assert!(message.contains("storage version 1") && message.contains("entry.v1 JSON"), "{message}");
}

#[test]
fn signed_requests_cannot_be_replayed() {
    let ledger = TestLedger::start();
    let (patient, _, _) = ledger.setup();
    let path = format!("/v1/tags/{}/entries", patient.ledger_tag());
    let header = reqsig::sign(&patient, "GET", &path, b"", now());
    let first = ledger.http.get(format!("{}{path}", ledger.url)).header(reqsig::HEADER, &header).send().unwrap();
    assert_eq!(first.status(), 200);
    let again = ledger.http.get(format!("{}{path}", ledger.url)).header(reqsig::HEADER, &header).send().unwrap();
    assert_eq!(again.status(), 401);
    assert_eq!(again.json::<Problem>().unwrap().code(), "replayed");
}

#[test]
fn live_events_arrive_for_the_patients_tag() {
    let ledger = TestLedger::start();
    let (patient, _, gateway) = ledger.setup();
    let path = format!("/v1/tags/{}/events", patient.ledger_tag());
    let stream = ledger.signed_get(&patient, &path);
    assert_eq!(stream.status(), 200);
    let mut lines = BufReader::new(stream).lines();
    let [index] = ledger.append_ok(&[entry(&gateway, access_content(&patient, GrantId::generate()))])[..] else {
        panic!()
    };
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.starts_with("data:") {
            seen.push(line);
            break;
        }
    }
    assert_eq!(seen, [format!("data: {{\"index\":{index},\"kind\":\"access\"}}")]);
}

/// Every refusal is a problem document, also those the HTTP framework makes before a handler runs.
#[test]
fn every_refusal_is_a_problem_document() {
    let ledger = TestLedger::start();
    let problem = |response: reqwest::blocking::Response| -> (u16, Problem) {
        let status = response.status().as_u16();
        assert_eq!(response.headers()["content-type"], "application/problem+json", "status {status}");
        (status, response.json().unwrap())
    };
    let get = |path: &str| problem(ledger.http.get(format!("{}{path}", ledger.url)).send().unwrap());
    let (status, p) = get("/v1/proof/inclusion?index=first&size=1");
    assert_eq!((status, p.code()), (400, "malformed"));
    assert!(p.detail.contains("index"), "the detail says what was wrong: {}", p.detail);
    assert_eq!(get("/v1/proof/consistency?old=1").0, 400);
    let (status, p) = get("/v1/no-such-thing");
    assert_eq!((status, p.code()), (404, "not-found"));
    let response = ledger.http.delete(format!("{}/checkpoint", ledger.url)).send().unwrap();
    assert!(response.headers()["allow"].to_str().unwrap().contains("GET"), "{:?}", response.headers());
    let (status, p) = problem(response);
    assert_eq!((status, p.code()), (405, "method-not-allowed"));
    // A body over its route's limit (the mailbox's 64 KiB): small enough to be sent whole before the
    // refusal, so the client reads it rather than a reset connection.
    let mailbox = format!("{}/v1/mailbox/{}", ledger.url, identity().signing_public());
    let (status, p) = problem(ledger.http.post(mailbox).body(vec![0u8; (64 << 10) + 1]).send().unwrap());
    assert_eq!((status, p.code()), (413, "too-large"));
    let (status, p) = problem(ledger.post_raw("{not json".into()));
    assert_eq!((status, p.code()), (400, "malformed"));
}

#[test]
fn the_openapi_document_covers_every_json_route() {
    let ledger = TestLedger::start();
    let doc: serde_json::Value =
        ledger.http.get(format!("{}/openapi.json", ledger.url)).send().unwrap().json().unwrap();
    let paths = doc["paths"].as_object().unwrap();
    for route in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/checkpoint",
        "/v1/info",
        "/v1/entries",
        "/v1/proof/inclusion",
        "/v1/proof/consistency",
        "/v1/tags/{tag}/entries",
        "/v1/tags/{tag}/events",
        "/v1/grant-changes",
        "/v1/grants/{id}",
        "/v1/grants/{id}/entry",
        "/v1/grants/{id}/proof",
        "/v1/members/{key}",
        "/v1/patients/{key}",
        "/v1/recovery/{key}",
        "/v1/mailbox/{key}",
        "/v1/mailbox/{key}/{id}",
    ] {
        assert!(paths.contains_key(route), "{route} is not documented");
    }
    // The documented limits are the ones the ledger enforces.
    let limits = default_limits();
    let entries = &doc["components"]["schemas"]["AppendRequest"]["properties"]["entries"];
    assert_eq!(entries["maxItems"], limits.max_entries_per_request);
    assert_eq!(entries["x-max-entry-bytes"], limits.max_entry_bytes);
    let param = |path: &str, method: &str, name: &str| {
        let params = doc["paths"][path][method]["parameters"].as_array().unwrap();
        params.iter().find(|p| p["name"] == name).unwrap()["schema"].clone()
    };
    assert_eq!(param("/v1/tags/{tag}/entries", "get", "limit")["maximum"], limits.max_page);
    assert_eq!(param("/v1/mailbox/{key}", "post", "ttl")["maximum"], limits.max_mail_ttl_seconds);
    let mail = &doc["paths"]["/v1/mailbox/{key}"]["post"]["requestBody"]["content"]["application/octet-stream"];
    assert_eq!(mail["schema"]["maxLength"], limits.max_mail_bytes);
    // Every operation documents the problems the framework answers before a handler runs.
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            for status in ["400", "405"] {
                assert!(operation["responses"].get(status).is_some(), "{method} {path} does not document {status}");
            }
        }
    }
}

//! The wallet's ledger operations over real HTTP on loopback, against a small fake ledger that speaks
//! the ledger's API (custodia_core::ledger_api) from an in-memory log, and can be told to misbehave:
//! rewrite its history, tamper with a tile, answer with too much.
//!
//! The fake is only as honest as these tests need; the real ledger's end-to-end tests live with the CLI.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is the failure report.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use custodia_core::entry::{
    AccessEvent, AccessedResource, Content, EntryKind, EntryNonce, Leaf, LedgerEntry, Outcome, Role, canonical_envelope,
};
use custodia_core::grant::GrantRequest;
use custodia_core::ledger_api::{
    AppendRequest, AppendResponse, ConsistencyProof, InclusionProof, LedgerInfo, Limits, MemberInfo, PatientInfo,
    Receipt, TagEntries, TagEntry,
};
use custodia_core::purpose::PurposeOfUse;
use custodia_core::reqsig::{self, RequestSignature};
use custodia_core::statement::Unverified;
use custodia_core::time::Timestamp;
use custodia_core::{Identity, MasterSeed};
use custodia_log::checkpoint::Checkpoint;
use custodia_log::note::NoteSigner;
use custodia_log::{Frontier, Hash, HashReader, NodeId, leaf_hash};
use custodia_wallet::ledger::{KeyTrust, NewMember};
use custodia_wallet::vault::{KdfParams, Passphrase};
use custodia_wallet::wallet::GrantStanding;
use custodia_wallet::{LedgerError, Wallet, WalletError};
use serde_json::value::RawValue;

const ORIGIN: &str = "fake.test/ledger";

#[derive(Default, Clone)]
struct Log {
    frontier: Frontier,
    nodes: HashMap<NodeId, Hash>,
    leaves: Vec<[u8; 42]>,
}

impl HashReader for Log {
    type Error = ();
    fn read_hashes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, ()> {
        ids.iter().map(|id| self.nodes.get(id).copied().ok_or(())).collect()
    }
}

impl Log {
    fn push(&mut self, leaf: [u8; 42]) -> u64 {
        let index = self.frontier.size();
        self.nodes.extend(self.frontier.push(leaf_hash(&leaf)));
        self.leaves.push(leaf);
        index
    }

    fn size(&self) -> u64 {
        self.frontier.size()
    }

    fn note(&self, signer: &NoteSigner) -> String {
        Checkpoint { origin: ORIGIN.into(), size: self.size(), root: self.frontier.root(), extensions: vec![] }
            .sign(signer)
    }

    fn inclusion(&self, index: u64, size: u64) -> Vec<String> {
        custodia_log::proof::inclusion_proof(index, size, self).unwrap().iter().map(Hash::to_base64).collect()
    }
}

struct Stored {
    kind: EntryKind,
    tag: Option<custodia_core::entry::Tag>,
    envelope: String,
    /// The patient redacted this entry's body: its leaf stays, its envelope is no longer served.
    redacted: bool,
}

#[derive(Default)]
struct Misbehave {
    /// Serve checkpoints of this other log instead of the real one.
    rewritten: Option<Log>,
    /// Flip a byte of the first level-0 tile.
    bad_tile: bool,
    /// Answer /v1/info with more than the client reads.
    huge_info: bool,
}

struct Fake {
    signer: NoteSigner,
    authority: custodia_core::SigningPublicKey,
    log: Log,
    entries: Vec<Stored>,
    misbehave: Misbehave,
}

struct Response {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

fn json<T: serde::Serialize>(value: &T) -> Response {
    Response { status: 200, content_type: "application/json", body: serde_json::to_vec(value).unwrap() }
}

fn problem(status: u16, code: &str, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": format!("urn:custodia:problem:{code}"), "title": code, "status": status, "detail": detail,
    });
    Response { status, content_type: "application/problem+json", body: body.to_string().into_bytes() }
}

fn query(target: &str) -> HashMap<String, u64> {
    target
        .split_once('?')
        .map(|(_, q)| {
            q.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.into(), v.parse().unwrap())).collect()
        })
        .unwrap_or_default()
}

fn now() -> Timestamp {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    Timestamp::from_unix(secs as i64).unwrap()
}

fn tile_index(path: &str) -> (u64, u64) {
    let (path, width) = match path.split_once(".p/") {
        Some((p, w)) => (p, w.parse().unwrap()),
        None => (path, 256),
    };
    let index =
        path.split('/').fold(0u64, |acc, part| acc * 1000 + part.trim_start_matches('x').parse::<u64>().unwrap());
    (index, width)
}

impl Fake {
    fn checkpoint_log(&self) -> &Log {
        self.misbehave.rewritten.as_ref().unwrap_or(&self.log)
    }

    fn signed_by(&self, method: &str, target: &str, headers: &HashMap<String, String>) -> Option<String> {
        let header = headers.get(reqsig::HEADER)?;
        let sig = RequestSignature::parse(header).ok()?;
        sig.verify(method, target, b"", now()).ok()?;
        Some(sig.key.to_string())
    }

    fn handle(&mut self, method: &str, target: &str, headers: &HashMap<String, String>, body: &[u8]) -> Response {
        let path = target.split('?').next().unwrap_or_default();
        let q = query(target);
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (method, parts.as_slice()) {
            ("GET", ["v1", "info"]) if self.misbehave.huge_info => {
                Response { status: 200, content_type: "application/json", body: vec![b' '; 9 << 20] }
            }
            ("GET", ["v1", "info"]) => json(&LedgerInfo {
                origin: ORIGIN.into(),
                verifier_key: self.signer.verifier().to_vkey(),
                authority: self.authority,
                size: self.log.size(),
                limits: Limits {
                    max_entry_bytes: 65536,
                    max_entries_per_request: 16,
                    entries_per_key_per_second: 100,
                    max_page: 2,
                    max_mail_bytes: 65536,
                    max_mail_ttl_seconds: 86400,
                    max_mail_waiting: 100,
                    max_entry_age_seconds: 600,
                },
                witnessing: None,
            }),
            ("GET", ["checkpoint"]) => Response {
                status: 200,
                content_type: "text/plain",
                body: self.checkpoint_log().note(&self.signer).into_bytes(),
            },
            ("POST", ["v1", "entries"]) => self.append(body),
            ("GET", ["v1", "proof", "inclusion"]) => {
                let (index, size) = (q["index"], q["size"]);
                json(&InclusionProof {
                    index,
                    size,
                    leaf: data_encoding::BASE64.encode(&self.log.leaves[index as usize]),
                    proof: self.log.inclusion(index, size),
                })
            }
            ("GET", ["v1", "proof", "consistency"]) => {
                let (old, new) = (q["old"], q["new"]);
                let log = self.checkpoint_log();
                if new > log.size() || old > new {
                    return problem(400, "bad-range", "no such sizes");
                }
                let proof = custodia_log::proof::consistency_proof(old, new, log).unwrap();
                json(&ConsistencyProof { old, new, proof: proof.iter().map(Hash::to_base64).collect() })
            }
            ("GET", ["v1", "tags", tag, "entries"]) => {
                if self.signed_by("GET", target, headers).is_none() {
                    return problem(401, "unauthorized", "sign the request");
                }
                let after = q.get("after").copied();
                let size = self.log.size();
                let mine: Vec<u64> = (0..size)
                    .filter(|&i| {
                        let e = &self.entries[i as usize];
                        e.tag.is_some_and(|t| t.to_string() == *tag) && after.is_none_or(|a| i > a)
                    })
                    .collect();
                let page: Vec<TagEntry> = mine
                    .iter()
                    .take(2)
                    .map(|&i| TagEntry {
                        index: i,
                        kind: self.entries[i as usize].kind,
                        leaf: data_encoding::BASE64.encode(&self.log.leaves[i as usize]),
                        envelope: (!self.entries[i as usize].redacted)
                            .then(|| RawValue::from_string(self.entries[i as usize].envelope.clone()).unwrap()),
                        inclusion: self.log.inclusion(i, size),
                    })
                    .collect();
                json(&TagEntries {
                    checkpoint: self.checkpoint_log().note(&self.signer),
                    more: mine.len() > 2,
                    entries: page,
                })
            }
            ("GET", ["v1", "members", key]) => {
                let found = self.entries.iter().enumerate().find_map(|(i, e)| {
                    let entry = Unverified::<LedgerEntry>::decode(e.envelope.as_bytes()).unwrap();
                    match &entry.claimed().content {
                        Content::EnrollMember { key: k, box_key, role, name, org } if k.to_string() == *key => {
                            Some(MemberInfo {
                                key: *k,
                                box_key: *box_key,
                                role: *role,
                                name: name.clone(),
                                org: org.clone(),
                                index: i as u64,
                                leaf: data_encoding::BASE64.encode(&self.log.leaves[i]),
                                envelope: RawValue::from_string(e.envelope.clone()).unwrap(),
                            })
                        }
                        _ => None,
                    }
                });
                match found {
                    Some(info) => json(&info),
                    None => problem(404, "not-found", "no such member"),
                }
            }
            ("GET", ["v1", "patients", key]) => {
                if self.signed_by("GET", target, headers).is_none() {
                    return problem(401, "unauthorized", "sign the request");
                }
                match self.patient(key) {
                    Some(info) => json(&info),
                    None => problem(404, "not-found", "no such patient"),
                }
            }
            ("GET", ["tile", "entries", rest @ ..]) => {
                let (n, w) = tile_index(&rest.join("/"));
                let mut out = Vec::new();
                for leaf in &self.log.leaves[(n * 256) as usize..(n * 256 + w) as usize] {
                    out.extend_from_slice(&42u16.to_be_bytes());
                    out.extend_from_slice(leaf);
                }
                Response { status: 200, content_type: "application/octet-stream", body: out }
            }
            ("GET", ["tile", level, rest @ ..]) => {
                let level: u8 = level.parse().unwrap();
                let (n, w) = tile_index(&rest.join("/"));
                let mut out = Vec::new();
                for i in 0..w {
                    out.extend_from_slice(self.log.nodes[&NodeId::new(level * 8, n * 256 + i)].as_bytes());
                }
                if self.misbehave.bad_tile && level == 0 && n == 0 {
                    out[5 * 32] ^= 1;
                }
                Response { status: 200, content_type: "application/octet-stream", body: out }
            }
            _ => problem(404, "not-found", "no such endpoint"),
        }
    }

    fn patient(&self, key: &str) -> Option<PatientInfo> {
        self.entries.iter().enumerate().find_map(|(i, e)| {
            let entry = Unverified::<LedgerEntry>::decode(e.envelope.as_bytes()).unwrap();
            match &entry.claimed().content {
                Content::EnrollPatient { box_key, tag } if entry.claimed().signer.to_string() == key => {
                    Some(PatientInfo { key: entry.claimed().signer, box_key: *box_key, tag: *tag, index: i as u64 })
                }
                _ => None,
            }
        })
    }

    fn append(&mut self, body: &[u8]) -> Response {
        let request: AppendRequest = serde_json::from_slice(body).unwrap();
        let mut placed = Vec::new();
        for raw in &request.entries {
            let entry = match Unverified::<LedgerEntry>::decode(raw.get().as_bytes()).and_then(Unverified::verify) {
                Ok(e) => e,
                Err(e) => return problem(400, "bad-signature", &e.to_string()),
            };
            if matches!(entry.content, Content::EnrollPatient { .. })
                && self.patient(&entry.signer.to_string()).is_some()
            {
                return problem(409, "already-enrolled", "this key is enrolled");
            }
            if let Content::Redaction { tag } = &entry.content {
                // As the ledger does: grant and access-event bodies go; revocations and enrollments stay.
                for stored in &mut self.entries {
                    stored.redacted |=
                        stored.tag == Some(*tag) && matches!(stored.kind, EntryKind::Grant | EntryKind::Access);
                }
            }
            let e = entry.envelope();
            let envelope = canonical_envelope(&e.payload, &e.signatures[0].sig);
            let leaf = Leaf::for_envelope(entry.content.kind(), 1_800_000_000_000, envelope.as_bytes()).to_bytes();
            let index = self.log.push(leaf);
            self.entries.push(Stored {
                kind: entry.content.kind(),
                tag: entry.content.tag(),
                envelope,
                redacted: false,
            });
            placed.push((index, leaf));
        }
        let size = self.log.size();
        json(&AppendResponse {
            checkpoint: self.log.note(&self.signer),
            entries: placed
                .into_iter()
                .map(|(index, leaf)| Receipt {
                    index,
                    leaf: data_encoding::BASE64.encode(&leaf),
                    inclusion: self.log.inclusion(index, size),
                })
                .collect(),
        })
    }
}

fn serve_one(stream: TcpStream, fake: &Mutex<Fake>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut words = line.split_whitespace();
    let (method, target) = (words.next().unwrap().to_owned(), words.next().unwrap().to_owned());
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).unwrap();
        if h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let len: usize = headers.get("content-length").map(|l| l.parse().unwrap()).unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    let response = fake.lock().unwrap().handle(&method, &target, &headers, &body);
    let mut stream = stream;
    let head = format!(
        "HTTP/1.1 {} X\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        response.status,
        response.content_type,
        response.body.len()
    );
    let _ = stream.write_all(head.as_bytes()).and_then(|()| stream.write_all(&response.body));
}

struct Server {
    url: String,
    fake: Arc<Mutex<Fake>>,
}

fn start(authority: &Identity) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let fake = Arc::new(Mutex::new(Fake {
        signer: NoteSigner::new(ORIGIN, &[77; 32]).unwrap(),
        authority: authority.signing_public(),
        log: Log::default(),
        entries: Vec::new(),
        misbehave: Misbehave::default(),
    }));
    let shared = fake.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            serve_one(stream, &shared);
        }
    });
    Server { url, fake }
}

fn pass() -> Passphrase {
    Passphrase::new("correct horse".into()).unwrap()
}

fn wallet(dir: &std::path::Path, name: &str) -> Wallet {
    Wallet::create(&dir.join(name), name, pass(), KdfParams::TESTING, now()).unwrap()
}

fn vault_bytes(w: &Wallet) -> Vec<u8> {
    std::fs::read(w.dir().join("wallet.vault")).unwrap()
}

fn request(to: custodia_core::SigningPublicKey) -> GrantRequest {
    GrantRequest {
        grantee: to,
        scopes: vec!["patient/Observation.rs".parse().unwrap()],
        allowed_labels: vec![],
        purpose: PurposeOfUse::TREATMENT,
        duration_seconds: 3600,
        max_reads: None,
        note: String::new(),
    }
}

/// A patient enrolled on a fresh fake ledger, with a doctor and a gateway enrolled by the authority.
struct World {
    _dir: tempfile::TempDir,
    server: Server,
    patient: Wallet,
    doctor: Wallet,
    gateway: Wallet,
    authority: Wallet,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let mut authority = wallet(dir.path(), "authority");
    let server = start(authority.identity());
    let mut patient = wallet(dir.path(), "patient");
    let doctor = wallet(dir.path(), "doctor");
    let gateway = wallet(dir.path(), "gateway");
    let enrolled = patient.enroll(&server.url, None, now()).unwrap();
    assert_eq!((enrolled.index, enrolled.trust, enrolled.already_enrolled), (0, KeyTrust::FirstUse, false));
    for (who, role) in [(&doctor, Role::Provider), (&gateway, Role::Gateway)] {
        let member = NewMember {
            key: who.signing_key(),
            box_key: who.identity().box_public(),
            role,
            name: who.name().into(),
            org: "St Mary's".into(),
        };
        authority.enroll_member(&server.url, None, member, now()).unwrap();
    }
    World { _dir: dir, server, patient, doctor, gateway, authority }
}

fn access(w: &mut World, grant: custodia_core::grant::GrantId) -> u64 {
    let event = AccessEvent {
        id: EntryNonce::generate(),
        gateway: w.gateway.signing_key(),
        patient: w.patient.signing_key(),
        reader: w.doctor.signing_key(),
        reader_name: "Dr Hopper".into(),
        organisation: "St Mary's".into(),
        grant_id: Some(grant),
        purpose: PurposeOfUse::TREATMENT,
        at: now(),
        outcome: Outcome::Allowed,
        break_glass: false,
        request: "GET Observation/hba1c-1".into(),
        resources: vec![AccessedResource {
            resource_type: "Observation".into(),
            id: "hba1c-1".into(),
            labels: vec![],
            category: None,
        }],
        reason: None,
        emergency_reason: None,
    };
    w.gateway.post_access_event(&w.server.url, None, event, now()).unwrap().index
}

#[test]
fn enroll_grant_access_revoke_sync() {
    let mut w = world();
    let doctor = w.doctor.signing_key();
    let grant = w.patient.issue_grant(request(doctor), now()).unwrap();
    let grant_index = w.patient.post_grant(grant.id, now()).unwrap();
    assert_eq!(grant_index, 3);
    assert!(matches!(w.patient.post_grant(grant.id, now()), Err(WalletError::AlreadyPosted { index: 3, .. })));
    let access_index = access(&mut w, grant.id);

    let report = w.patient.sync(now()).unwrap();
    assert_eq!(report.new_entries, 3, "enrollment, grant, access event");
    assert_eq!(report.grants.len(), 1);
    assert_eq!((report.grants[0].status, report.grants[0].index), (GrantStanding::Active, Some(3)));
    assert_eq!(report.new_access_events.len(), 1);
    assert_eq!(report.new_access_events[0].index, access_index);
    assert_eq!(report.new_access_events[0].event.reader_name, "Dr Hopper");
    let shown = w.patient.access_inclusion(access_index).unwrap();
    assert_eq!((shown.index, shown.checkpoint.size), (access_index, w.patient.ledger().unwrap().checkpoint.size));
    assert!(matches!(w.patient.access_inclusion(access_index + 1), Err(WalletError::UnknownAccessEvent(_))));

    w.patient.revoke_grant(grant.id, now(), "done").unwrap();
    let revocation_index = w.patient.post_revocation(grant.id, now()).unwrap();
    let report = w.patient.sync(now()).unwrap();
    assert_eq!(report.new_entries, 1);
    assert_eq!(report.grants[0].status, GrantStanding::Revoked);
    assert_eq!(report.grants[0].revocation_index, Some(revocation_index));

    // All of it survives a reopen, including the checkpoint, the members and the access events.
    let dir = w.patient.dir().to_owned();
    let size = w.patient.ledger().unwrap().checkpoint.size;
    drop(w.patient);
    let reopened = Wallet::open(&dir, pass()).unwrap();
    let link = reopened.ledger().unwrap();
    assert_eq!((link.checkpoint.size, link.synced_through), (size, Some(revocation_index)));
    assert_eq!(reopened.access_events().len(), 1);
    assert_eq!(reopened.grants()[0].revocation_index, Some(revocation_index));
    let _ = (w.doctor, w.authority);
}

/// The seed inside a wallet's vault (the first byte of the plaintext is its layout).
fn seed_of(w: &Wallet) -> [u8; 32] {
    let plaintext = custodia_wallet::vault::open(&vault_bytes(w), &pass()).unwrap();
    plaintext[1..33].try_into().unwrap()
}

/// A wallet restored from the same seed on another device: a vault with the seed and nothing else (in
/// the first version's layout, which wallets still read).
fn restore(from: &Wallet, to: &std::path::Path) -> Wallet {
    let mut restored = vec![1];
    restored.extend_from_slice(&seed_of(from));
    restored.extend_from_slice(br#"{"name":"restored","created_at":"2026-11-21T09:00:00Z","grants":[]}"#);
    std::fs::create_dir_all(to).unwrap();
    let sealed = custodia_wallet::vault::seal(&restored, &pass(), KdfParams::TESTING).unwrap();
    custodia_wallet::vault::write_atomic(&to.join("wallet.vault"), &sealed).unwrap();
    Wallet::open(to, pass()).unwrap()
}

#[test]
fn a_restored_wallet_finds_its_enrollment_grants_and_access_events_on_the_ledger() {
    let mut w = world();
    let grant = w.patient.issue_grant(request(w.doctor.signing_key()), now()).unwrap();
    let grant_index = w.patient.post_grant(grant.id, now()).unwrap();
    access(&mut w, grant.id);
    w.patient.revoke_grant(grant.id, now(), "").unwrap();
    let revocation_index = w.patient.post_revocation(grant.id, now()).unwrap();

    let mut restored = restore(&w.patient, &w._dir.path().join("restored"));
    assert!(restored.grants().is_empty() && restored.ledger().is_none());
    let enrolled = restored.enroll(&w.server.url, None, now()).unwrap();
    assert!(enrolled.already_enrolled);
    assert_eq!(enrolled.index, 0);
    let report = restored.sync(now()).unwrap();
    assert_eq!(report.grants.len(), 1);
    let g = &report.grants[0];
    assert_eq!(
        (g.id, g.status, g.index, g.revocation_index),
        (grant.id, GrantStanding::Revoked, Some(grant_index), Some(revocation_index))
    );
    assert_eq!(report.new_access_events.len(), 1);
    assert_eq!(restored.access_events().len(), 1);
    assert!(restored.sync(now()).unwrap().new_access_events.is_empty(), "an event already held is not new again");
    assert_eq!(restored.grants()[0].grant.id, grant.id);
}

/// Redaction takes a grant's body off the ledger but keeps its revocation, which gateways must still see:
/// a wallet restored afterwards meets a revocation of a grant it cannot read, and syncs on, every time.
#[test]
fn a_revocation_of_a_redacted_grant_does_not_stop_syncing() {
    let mut w = world();
    let grant = w.patient.issue_grant(request(w.doctor.signing_key()), now()).unwrap();
    w.patient.post_grant(grant.id, now()).unwrap();
    access(&mut w, grant.id);
    w.patient.revoke_grant(grant.id, now(), "").unwrap();
    w.patient.post_revocation(grant.id, now()).unwrap();
    let patient = Identity::from_seed(&MasterSeed::from_bytes(seed_of(&w.patient)));
    let redaction = LedgerEntry::new(patient.signing_public(), now(), Content::Redaction { tag: patient.ledger_tag() });
    let envelope = custodia_core::statement::sign(redaction, &patient).unwrap().to_compact_json();
    let appended = w.server.fake.lock().unwrap().append(format!("{{\"entries\":[{envelope}]}}").as_bytes());
    assert_eq!(appended.status, 200);

    let mut restored = restore(&w.patient, &w._dir.path().join("restored"));
    restored.enroll(&w.server.url, None, now()).unwrap();
    let report = restored.sync(now()).unwrap();
    assert!(report.grants.is_empty(), "a redacted grant cannot be shown: {:?}", report.grants);
    assert!(report.redacted.iter().any(|(_, kind)| *kind == EntryKind::Grant), "{:?}", report.redacted);
    assert!(report.complete);
    let again = restored.sync(now()).unwrap();
    assert!(again.grants.is_empty() && again.new_entries == 0, "the next sync goes on from there");
    // The wallet that issued the grant still holds it, revoked.
    let report = w.patient.sync(now()).unwrap();
    assert_eq!(report.grants[0].status, GrantStanding::Revoked);
}

#[test]
fn granting_to_someone_not_enrolled_is_refused_before_anything_is_posted() {
    let mut w = world();
    let stranger = Identity::from_seed(&MasterSeed::generate()).signing_public();
    let grant = w.patient.issue_grant(request(stranger), now()).unwrap();
    let err = w.patient.post_grant(grant.id, now()).unwrap_err();
    assert!(err.to_string().contains("is not enrolled on the ledger as a member"), "{err}");
    assert_eq!(w.server.fake.lock().unwrap().log.size(), 3);
    assert!(matches!(w.patient.member(&stranger), Err(WalletError::Ledger(LedgerError::NotAMember(_)))));
}

#[test]
fn a_rewritten_history_is_a_fork_and_nothing_is_stored() {
    let mut w = world();
    w.patient.sync(now()).unwrap();
    let before = vault_bytes(&w.patient);
    let size = w.patient.ledger().unwrap().checkpoint.size;
    {
        let mut fake = w.server.fake.lock().unwrap();
        // Same size, another first leaf, validly signed by the ledger's key.
        let mut other = Log::default();
        for (i, leaf) in fake.log.leaves.iter().enumerate() {
            let mut leaf = *leaf;
            if i == 0 {
                leaf[20] ^= 1;
            }
            other.push(leaf);
        }
        fake.misbehave.rewritten = Some(other);
    }
    let err = w.patient.sync(now()).unwrap_err();
    assert!(err.is_verification_failure());
    let message = err.to_string();
    assert!(message.contains("forked or rewritten its history"), "{message}");
    assert!(message.contains(&format!("{size} entries")), "{message}");
    assert_eq!(vault_bytes(&w.patient), before, "the vault changed after a fork");
    assert_eq!(w.patient.ledger().unwrap().checkpoint.size, size);

    // A grown history that does not extend the old one: the consistency proof fails.
    {
        let mut fake = w.server.fake.lock().unwrap();
        let mut other = fake.misbehave.rewritten.take().unwrap();
        other.push([1; 42]);
        fake.misbehave.rewritten = Some(other);
    }
    let err = w.patient.sync(now()).unwrap_err();
    assert!(err.to_string().contains("consistency proof fails"), "{err}");
    assert_eq!(vault_bytes(&w.patient), before);
}

#[test]
fn the_verifier_key_given_must_be_the_ledgers() {
    let dir = tempfile::tempdir().unwrap();
    let authority = wallet(dir.path(), "authority");
    let server = start(authority.identity());
    let mut patient = wallet(dir.path(), "patient");
    let other = NoteSigner::new(ORIGIN, &[1; 32]).unwrap().verifier().to_vkey();
    let err = patient.enroll(&server.url, Some(&other), now()).unwrap_err();
    assert!(err.to_string().contains("refusing to use it"), "{err}");
    assert!(patient.ledger().is_none());
    let right = server.fake.lock().unwrap().signer.verifier().to_vkey();
    let enrolled = patient.enroll(&server.url, Some(&right), now()).unwrap();
    assert_eq!(enrolled.trust, KeyTrust::Given);
    assert!(matches!(patient.enroll(&server.url, None, now()), Err(WalletError::AlreadyEnrolled(_))));
}

#[test]
fn only_the_authority_enrolls_members() {
    let mut w = world();
    let member = NewMember {
        key: w.doctor.signing_key(),
        box_key: w.doctor.identity().box_public(),
        role: Role::Provider,
        name: "Dr Hopper".into(),
        org: "St Mary's".into(),
    };
    let err = w.patient.enroll_member(&w.server.url, None, member, now()).unwrap_err();
    assert!(err.to_string().contains("not the ledger's network authority"), "{err}");
}

#[test]
fn oversized_answers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let authority = wallet(dir.path(), "authority");
    let server = start(authority.identity());
    server.fake.lock().unwrap().misbehave.huge_info = true;
    let err = custodia_wallet::Ledger::connect(&server.url, None).unwrap_err();
    assert!(matches!(err, LedgerError::TooLarge { .. }), "{err:?}");
}

#[test]
fn audit_checks_every_tile() {
    let w = world();
    {
        let mut fake = w.server.fake.lock().unwrap();
        // Enough leaves for a full level-0 tile, a partial one, and a level-1 tile.
        for i in 0..300u32 {
            let leaf = Leaf::for_envelope(EntryKind::Access, 1_800_000_000_000, &i.to_be_bytes()).to_bytes();
            fake.log.push(leaf);
            fake.entries.push(Stored { kind: EntryKind::Access, tag: None, envelope: "{}".into(), redacted: false });
        }
    }
    let client = custodia_wallet::LedgerClient::new(&w.server.url).unwrap();
    let verifier = w.server.fake.lock().unwrap().signer.verifier();
    let mut calls = 0;
    let report = custodia_wallet::audit::audit(&client, &verifier, None, &mut |_, _| calls += 1).unwrap();
    assert_eq!(report.size, 303);
    assert_eq!(report.tiles_fetched, 5, "2 bundles, 2 level-0 tiles, 1 level-1 tile");
    assert_eq!(report.kinds["access"], 300);
    assert_eq!(calls, 2);

    w.server.fake.lock().unwrap().misbehave.bad_tile = true;
    let err = custodia_wallet::audit::audit(&client, &verifier, None, &mut |_, _| {}).unwrap_err();
    assert!(err.is_verification_failure());
    assert!(err.to_string().contains("/tile/0/000 holds"), "{err}");
}

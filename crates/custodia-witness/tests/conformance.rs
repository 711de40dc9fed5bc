//! The witness over HTTP, against C2SP tlog-witness: every status code and body the specification
//! names, a race that must not roll the witness back, a restart that keeps what it cosigned, and the
//! monitoring checkpoint.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;

use custodia_log::checkpoint::Checkpoint;
use custodia_log::cosignature::verify_cosignature;
use custodia_log::proof::consistency_proof;
use custodia_log::witness::{AddCheckpoint, parse_cosignature_lines};
use custodia_log::{Frontier, Hash, HashReader, NodeId, NoteSigner, leaf_hash};
use custodia_witness::{WitnessDir, origin_hash};

const ORIGIN: &str = "example.com/conformance-log";

/// A log: its leaves' nodes, for proofs, and its signing key.
struct Log {
    nodes: HashMap<NodeId, Hash>,
    frontier: Frontier,
    roots: Vec<Hash>,
    signer: NoteSigner,
}

impl HashReader for Log {
    type Error = NodeId;
    fn read_hashes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, NodeId> {
        ids.iter().map(|id| self.nodes.get(id).copied().ok_or(*id)).collect()
    }
}

impl Log {
    fn new(seed: u8, leaves: usize, salt: &str) -> Self {
        let mut log = Log {
            nodes: HashMap::new(),
            frontier: Frontier::empty(),
            roots: vec![custodia_log::empty_root()],
            signer: NoteSigner::new(ORIGIN, &[seed; 32]).unwrap(),
        };
        for i in 0..leaves {
            log.nodes.extend(log.frontier.push(leaf_hash(format!("{salt}{i}").as_bytes())));
            log.roots.push(log.frontier.root());
        }
        log
    }

    fn note(&self, size: u64) -> (Checkpoint, String) {
        let checkpoint =
            Checkpoint { origin: ORIGIN.into(), size, root: self.roots[size as usize], extensions: vec![] };
        let note = checkpoint.sign(&self.signer);
        (checkpoint, note)
    }

    fn body(&self, old: u64, new: u64) -> String {
        AddCheckpoint::body(old, &consistency_proof(old, new, self).unwrap(), &self.note(new).1)
    }
}

struct Witness {
    _dir: tempfile::TempDir,
    witness: Arc<WitnessDir>,
    running: custodia_witness::RunningWitness,
    client: reqwest::Client,
}

impl Witness {
    async fn start(log: &Log) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let witness = WitnessDir::init(dir.path(), Some("witness.example/w1")).unwrap();
        assert!(witness.add_log(ORIGIN, &log.signer.verifier()).unwrap());
        let witness = Arc::new(witness);
        let running = custodia_witness::start(witness.clone(), "127.0.0.1:0".parse().unwrap(), None).await.unwrap();
        let client = custodia_net::Trust::global().unwrap().async_client().build().unwrap();
        Witness { _dir: dir, witness, running, client }
    }

    async fn post(&self, body: impl Into<reqwest::Body>) -> (u16, Option<String>, String) {
        let answer = self.client.post(format!("{}/add-checkpoint", self.running.url)).body(body).send().await.unwrap();
        let status = answer.status().as_u16();
        let kind = answer.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
        (status, kind, answer.text().await.unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_status_code_of_the_specification() {
    let log = Log::new(1, 40, "");
    let w = Witness::start(&log).await;
    let verifier = w.witness.verifier();

    // First contact from 0: 200 and one cosignature line, timestamped, over the checkpoint.
    let (status, _, body) = w.post(log.body(0, 10)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("\u{2014} witness.example/w1 ") && body.ends_with('\n'), "{body:?}");
    let lines = parse_cosignature_lines(&body).unwrap();
    assert_eq!(lines.len(), 1);
    let time = verify_cosignature(&log.note(10).0, &lines[0], &verifier).unwrap();
    assert!(time > 1_700_000_000);

    // Old size not the witness's: 409, text/x.tlog.size, its size and a newline.
    let (status, kind, body) = w.post(log.body(0, 20)).await;
    assert_eq!((status, kind.as_deref(), body.as_str()), (409, Some("text/x.tlog.size"), "10\n"));
    let (status, _, body) = w.post(log.body(5, 20)).await;
    assert_eq!((status, body.as_str()), (409, "10\n"));
    // Resent from the size it gave: 200.
    assert_eq!(w.post(log.body(10, 20)).await.0, 200);
    // The same checkpoint again: 200 (an answer may have been lost).
    assert_eq!(w.post(log.body(20, 20)).await.0, 200);

    // Old size above the checkpoint's: 400. Malformed bodies: 400.
    let proofless = AddCheckpoint::body(30, &[], &log.note(25).1);
    assert_eq!(w.post(proofless).await.0, 400);
    assert_eq!(w.post("old 20\n\nnot a note\n").await.0, 400);
    assert_eq!(w.post(format!("old 020\n\n{}", log.note(25).1)).await.0, 400);
    let many = format!("old 20\n{}\n{}", format!("{}\n", log.roots[1].to_base64()).repeat(64), log.note(25).1);
    assert_eq!(w.post(many).await.0, 400);
    // A body over the cap is not read.
    assert_eq!(w.post(vec![b'a'; 70_000]).await.0, 413);

    // An unknown origin: 404.
    let stranger = NoteSigner::new("example.com/unknown", &[9; 32]).unwrap();
    let cp = Checkpoint { origin: "example.com/unknown".into(), size: 1, root: log.roots[1], extensions: vec![] };
    assert_eq!(w.post(AddCheckpoint::body(0, &[], &cp.sign(&stranger))).await.0, 404);

    // Signed by another key for the same origin, or a bad signature by the log's key: 403.
    let impostor = Log::new(2, 40, "");
    assert_eq!(w.post(impostor.body(20, 25)).await.0, 403);
    let mut forged = log.body(20, 25);
    let at = forged.rfind(' ').unwrap() + 5;
    forged.replace_range(at..at + 1, if &forged[at..at + 1] == "A" { "B" } else { "A" });
    assert_eq!(w.post(forged).await.0, 403);

    // A different history under the log's own key: 422, and nothing moves.
    let fork = Log::new(1, 40, "fork");
    let (status, _, body) = w.post(fork.body(20, 30)).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(w.post(fork.body(20, 20)).await.0, 422);
    // A proof from 0 must be empty; a size-0 checkpoint must have the empty root.
    let mut with_proof = AddCheckpoint::body(0, &[log.roots[1]], &log.note(0).1);
    assert_eq!(w.post(with_proof.clone()).await.0, 409);
    let witness_dir = w.witness.clone();
    assert_eq!(witness_dir.log(ORIGIN).unwrap().unwrap().size, 20);

    // A fresh witness sees the 0-size rules.
    let fresh = Witness::start(&log).await;
    assert_eq!(fresh.post(with_proof.clone()).await.0, 422);
    let bad_zero = Checkpoint { origin: ORIGIN.into(), size: 0, root: log.roots[3], extensions: vec![] };
    with_proof = AddCheckpoint::body(0, &[], &bad_zero.sign(&log.signer));
    assert_eq!(fresh.post(with_proof).await.0, 422);
    assert_eq!(fresh.post(log.body(0, 0)).await.0, 200);

    // The monitoring API: the latest cosigned checkpoint with the log's signature and the witness's.
    let url = format!("{}/{}/checkpoint", w.running.url, origin_hash(ORIGIN));
    let note = w.client.get(&url).send().await.unwrap().text().await.unwrap();
    let parsed = custodia_log::SignedNote::parse(&note).unwrap();
    assert_eq!(Checkpoint::parse(&parsed.text).unwrap().size, 20);
    assert_eq!(parsed.signatures.len(), 2);
    assert!(verify_cosignature(&log.note(20).0, &parsed.signatures[1], &verifier).is_ok());
    let missing = format!("{}/{}/checkpoint", w.running.url, origin_hash("example.com/unknown"));
    assert_eq!(w.client.get(&missing).send().await.unwrap().status().as_u16(), 404);
}

/// Two requests from the same size, to different sizes, at once, many times: exactly one wins each
/// round, the other gets 409 with the winner's size, and the witness never goes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_cannot_roll_the_witness_back() {
    let log = Log::new(3, 400, "");
    let w = Arc::new(Witness::start(&log).await);
    let mut size = 0u64;
    for round in 0..60 {
        let (small, large) = (size + 1 + round % 3, size + 5 + round % 4);
        let (a, b) = tokio::join!(w.post(log.body(size, small)), w.post(log.body(size, large)));
        let winners: Vec<u64> = [(a.clone(), small), (b.clone(), large)]
            .iter()
            .filter(|((status, _, _), _)| *status == 200)
            .map(|(_, s)| *s)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {a:?} {b:?}");
        let loser = if a.0 == 200 { &b } else { &a };
        assert_eq!((loser.0, loser.2.clone()), (409, format!("{}\n", winners[0])), "round {round}");
        let stored = w.witness.log(ORIGIN).unwrap().unwrap().size;
        assert_eq!(stored, winners[0]);
        assert!(stored > size);
        size = stored;
    }
}

/// What was cosigned is on disk before the answer: a witness reopened from its folder refuses to go
/// back to an older size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_what_was_cosigned() {
    let log = Log::new(4, 30, "");
    let dir = tempfile::tempdir().unwrap();
    let witness = WitnessDir::init(dir.path(), None).unwrap();
    let name = witness.cosigner().name().to_owned();
    assert!(name.starts_with("custodia-witness/"), "{name}");
    witness.add_log(ORIGIN, &log.signer.verifier()).unwrap();
    assert!(!witness.add_log(ORIGIN, &log.signer.verifier()).unwrap());
    assert!(custodia_witness::add_checkpoint(&witness, log.body(0, 12).as_bytes()).unwrap().is_ok());
    drop(witness);
    let again = WitnessDir::open(dir.path()).unwrap();
    assert_eq!(again.cosigner().name(), name);
    assert_eq!(
        custodia_witness::add_checkpoint(&again, log.body(0, 5).as_bytes()).unwrap(),
        Err(custodia_log::witness::Refusal::Conflict(12))
    );
    assert!(matches!(WitnessDir::init(dir.path(), None), Err(custodia_witness::StateError::Exists(_))));
}

#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is the failure report.

//! A ledger under a witness policy (2 of 3) with three real witnesses over HTTP: `/checkpoint` serves
//! only cosigned checkpoints, appends go on with a witness down, the cosigned checkpoint lags (and
//! `/v1/info` says so) with two down, and a witness shown another history raises an alarm.

use std::sync::Arc;
use std::time::{Duration, Instant};

use custodia_core::entry::{Content, LedgerEntry};
use custodia_core::ledger_api::{LedgerInfo, WitnessState};
use custodia_core::time::Timestamp;
use custodia_core::{Identity, MasterSeed, statement};
use custodia_ledger::{LedgerDir, ServeOptions, default_limits};
use custodia_log::checkpoint::Checkpoint;
use custodia_log::policy::Policy;
use custodia_log::witness::AddCheckpoint;
use custodia_witness::{RunningWitness, WitnessDir};

fn now() -> Timestamp {
    Timestamp::from_unix(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64)
        .unwrap()
}

fn enrollment() -> String {
    let patient = Identity::from_seed(&MasterSeed::generate());
    let content = Content::EnrollPatient { box_key: patient.box_public(), tag: patient.ledger_tag() };
    statement::sign(LedgerEntry::new(patient.signing_public(), now(), content), &patient).unwrap().to_compact_json()
}

struct Witnesses {
    dirs: Vec<(tempfile::TempDir, Arc<WitnessDir>)>,
    running: Vec<Option<RunningWitness>>,
    addrs: Vec<std::net::SocketAddr>,
}

impl Witnesses {
    async fn start(n: usize, log: &custodia_log::NoteVerifier) -> Self {
        let mut out = Witnesses { dirs: vec![], running: vec![], addrs: vec![] };
        for i in 0..n {
            let dir = tempfile::tempdir().unwrap();
            let witness = WitnessDir::init(dir.path(), Some(&format!("witness.example/w{i}"))).unwrap();
            witness.add_log(log.name(), log).unwrap();
            let witness = Arc::new(witness);
            let running = custodia_witness::start(witness.clone(), "127.0.0.1:0".parse().unwrap(), None).await.unwrap();
            out.addrs.push(running.addr);
            out.running.push(Some(running));
            out.dirs.push((dir, witness));
        }
        out
    }

    fn policy(&self, log: &custodia_log::NoteVerifier) -> String {
        let mut text = format!("log {}\n", log.to_vkey());
        for (i, (_, w)) in self.dirs.iter().enumerate() {
            text.push_str(&format!("witness W{i} {} http://{}\n", w.verifier().to_vkey(), self.addrs[i]));
        }
        text + "group Q 2 W0 W1 W2\nquorum Q\n"
    }

    async fn stop(&mut self, i: usize) {
        self.running[i].take().unwrap().shutdown().await.unwrap();
    }

    async fn restart(&mut self, i: usize) {
        let running = custodia_witness::start(self.dirs[i].1.clone(), self.addrs[i], None).await.unwrap();
        self.running[i] = Some(running);
    }
}

struct Client {
    http: reqwest::Client,
    url: String,
    policy: Policy,
}

impl Client {
    async fn append(&self, n: usize) {
        let entries: Vec<String> = (0..n).map(|_| enrollment()).collect();
        let answer = self
            .http
            .post(format!("{}/v1/entries", self.url))
            .header("content-type", "application/json")
            .body(format!("{{\"entries\":[{}]}}", entries.join(",")))
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "{:?}", answer.text().await);
    }

    async fn info(&self) -> LedgerInfo {
        self.http.get(format!("{}/v1/info", self.url)).send().await.unwrap().json().await.unwrap()
    }

    /// The published checkpoint, accepted under the policy (None: 503, none yet).
    async fn cosigned(&self) -> Option<custodia_log::policy::Accepted> {
        let answer = self.http.get(format!("{}/checkpoint", self.url)).send().await.unwrap();
        if answer.status().as_u16() == 503 {
            return None;
        }
        let note = answer.text().await.unwrap();
        Some(self.policy.accept(&note).unwrap_or_else(|e| panic!("the ledger published {note:?}: {e}")))
    }

    async fn wait_cosigned(&self, size: u64) -> custodia_log::policy::Accepted {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(accepted) = self.cosigned().await
                && accepted.checkpoint.size >= size
            {
                return accepted;
            }
            assert!(Instant::now() < deadline, "no cosigned checkpoint of size {size}: {:?}", self.info().await);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_cosigned_checkpoints_are_published() {
    let dir = tempfile::tempdir().unwrap();
    let authority = Identity::from_seed(&MasterSeed::generate());
    let (ledger_dir, verifier) = LedgerDir::init(dir.path(), authority.signing_public(), None).unwrap();
    let mut witnesses = Witnesses::start(3, &verifier).await;

    // Before the ledger starts, W0 is shown another history under the ledger's own key (a split view):
    // a checkpoint of size 3 whose root is not the ledger's. It cosigns it: it has nothing to compare.
    let signer = ledger_dir.signer().unwrap();
    let fork = Checkpoint {
        origin: verifier.name().into(),
        size: 3,
        root: custodia_log::leaf_hash(b"fork"),
        extensions: vec![],
    };
    let shown = custodia_witness::add_checkpoint(
        &witnesses.dirs[0].1,
        AddCheckpoint::body(0, &[], &fork.sign(&signer)).as_bytes(),
    );
    assert!(shown.unwrap().is_ok());

    let policy_text = witnesses.policy(&verifier);
    let policy = Policy::parse(&policy_text).unwrap();
    let store = custodia_ledger::open_store(&ledger_dir, None).unwrap();
    let options = ServeOptions { tls: None, witness_policy: Some(policy.clone()) };
    let running =
        custodia_ledger::start_with(&ledger_dir, store, "127.0.0.1:0".parse().unwrap(), default_limits(), options)
            .await
            .unwrap();
    let client = Client {
        http: custodia_net::Trust::global().unwrap().async_client().build().unwrap(),
        url: running.url.clone(),
        policy,
    };

    client.append(2).await;
    let accepted = client.wait_cosigned(2).await;
    let names: Vec<&str> = accepted.cosigned_by.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["W1", "W2"], "W0 saw another history and must not cosign");
    // W0 is an alarm: it holds a size-3 checkpoint that no proof from this log can extend.
    client.append(3).await;
    client.wait_cosigned(5).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let info = loop {
        let info = client.info().await.witnessing.unwrap();
        if info.witnesses[0].last_error.as_deref().is_some_and(|e| e.contains("422")) {
            break info;
        }
        assert!(Instant::now() < deadline, "W0 never refused with 422: {info:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(info.witnesses[0].state, WitnessState::Alarm, "{info:?}");
    assert_eq!((info.witnesses[1].state, info.witnesses[2].state), (WitnessState::Ok, WitnessState::Ok));
    let metrics = client.http.get(format!("{}/metrics", client.url)).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("custodia_ledger_witness_alarms_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );

    // One more down: appends go on, but nothing is cosigned by a quorum; the published checkpoint lags.
    witnesses.stop(2).await;
    let before = client.cosigned().await.unwrap().checkpoint.size;
    client.append(4).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(client.cosigned().await.unwrap().checkpoint.size, before, "published without a quorum");
    let info = client.info().await;
    let witnessing = info.witnessing.unwrap();
    assert_eq!(witnessing.cosigned_size, Some(before));
    assert_eq!(witnessing.lag_entries, info.size - before);
    assert!(witnessing.lag_seconds >= 1, "{witnessing:?}");
    assert_eq!(witnessing.witnesses[2].state, WitnessState::Failed);

    // The witness comes back: the ledger catches up on its own.
    witnesses.restart(2).await;
    let caught_up = client.wait_cosigned(info.size).await;
    assert_eq!(caught_up.checkpoint.size, info.size);
    assert_eq!(client.info().await.witnessing.unwrap().lag_entries, 0);

    // A restarted ledger publishes its last cosigned checkpoint at once.
    running.shutdown().await.unwrap();
    witnesses.stop(1).await;
    witnesses.stop(2).await;
    let store = custodia_ledger::open_store(&ledger_dir, None).unwrap();
    let options = ServeOptions { tls: None, witness_policy: Some(client.policy.clone()) };
    let again =
        custodia_ledger::start_with(&ledger_dir, store, "127.0.0.1:0".parse().unwrap(), default_limits(), options)
            .await
            .unwrap();
    let client = Client { url: again.url.clone(), ..client };
    assert_eq!(client.cosigned().await.unwrap().checkpoint.size, info.size);
    again.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_without_this_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let authority = Identity::from_seed(&MasterSeed::generate());
    let (ledger_dir, _) = LedgerDir::init(dir.path(), authority.signing_public(), None).unwrap();
    let other = custodia_log::NoteSigner::new("example.com/other", &[5; 32]).unwrap().verifier();
    let policy = Policy::parse(&format!("log {}\nquorum none\n", other.to_vkey())).unwrap();
    let store = custodia_ledger::open_store(&ledger_dir, None).unwrap();
    let options = ServeOptions { tls: None, witness_policy: Some(policy) };
    let err =
        custodia_ledger::start_with(&ledger_dir, store, "127.0.0.1:0".parse().unwrap(), default_limits(), options)
            .await
            .unwrap_err();
    assert!(err.to_string().contains("does not list this ledger's key"), "{err}");
}

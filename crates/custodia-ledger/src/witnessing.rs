//! Collecting witnesses' cosignatures (C2SP tlog-witness) under a C2SP tlog-policy, and publishing at
//! `/checkpoint` only a checkpoint the policy's quorum has cosigned.
//!
//! Appends never wait for witnesses: the sequencer signs checkpoints and answers with proofs as
//! before. A coordinator picks a *target* (the newest ledger-signed checkpoint when the previous target
//! is settled) and every witness works on it from its own task, so a slow or absent witness holds up
//! no other. Each task sends `add-checkpoint` from the size that witness last cosigned, with one
//! consistency proof per old size shared by all witnesses; a 409 names the witness's size and the
//! request is sent again from there. Anything else a witness refuses (403, 404, 422, 400) is an alarm:
//! logged, counted and shown in `/v1/info`, because a witness that will not cosign this log's own
//! checkpoint has either been shown another history or is misconfigured. Once the quorum's
//! cosignatures for the target are in, the cosigned checkpoint is written to the ledger's folder and
//! published, and the next target is taken.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use custodia_core::ledger_api::{WitnessState, WitnessingInfo};
use custodia_log::Hash;
use custodia_log::cosignature::verify_cosignature;
use custodia_log::policy::Policy;
use custodia_log::witness::{AddCheckpoint, SIZE_CONTENT_TYPE, parse_cosignature_lines, parse_size_body};
use custodia_net::metrics::Counter;

use crate::sequencer::{Latest, SignedCheckpoint};
use crate::store::{Store, StoreHashes};

const COMPONENT: &str = "custodia-ledger";
/// The cosigned checkpoint, kept in the ledger's folder so a restart publishes it at once.
const COSIGNED_FILE: &str = "cosigned-checkpoint";
/// A witness that does not answer in this long is retried later.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Retry delays for a witness that failed: doubling up to the last.
const RETRY_MIN: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How often the coordinator looks for a newer checkpoint to witness.
const POLL: Duration = Duration::from_millis(10);
/// Lag past this is logged (once per this period while it lasts).
const LAG_WARNING: Duration = Duration::from_secs(10);

/// Refusals by witnesses of this log's own checkpoints (403, 404, 422, 400, or a bad cosignature).
pub static ALARMS: Counter = Counter::new();

#[derive(Debug, Default, Clone)]
struct WitnessProgress {
    /// The size this witness last cosigned, as far as the ledger knows (None: not asked yet).
    size: Option<u64>,
    state: WitnessState,
    last_error: Option<String>,
}

#[derive(Debug)]
struct Round {
    target: Arc<SignedCheckpoint>,
    /// Each witness's cosignature line for the target, by the policy's witness index.
    lines: Vec<Option<String>>,
    settled: bool,
}

/// The ledger's side of witnessing; shared by the request handlers (for `/checkpoint` and `/v1/info`)
/// and the witness tasks.
#[derive(Debug)]
pub struct Witnessing {
    policy: Policy,
    path: PathBuf,
    published: RwLock<Option<Arc<SignedCheckpoint>>>,
    round: Mutex<Round>,
    progress: Mutex<Vec<WitnessProgress>>,
    targets: tokio::sync::watch::Sender<Arc<SignedCheckpoint>>,
    /// Since when the published checkpoint has not covered the newest one.
    behind_since: Mutex<Option<Instant>>,
}

impl Witnessing {
    /// Prepares witnessing under `policy` for the ledger in `dir`, publishing at once a cosigned
    /// checkpoint saved there before if it is still one of this tree's.
    pub fn new(policy: Policy, dir: &Path, latest: Arc<SignedCheckpoint>, store: &dyn Store) -> Self {
        let path = dir.join(COSIGNED_FILE);
        let published = std::fs::read_to_string(&path).ok().and_then(|note| {
            let accepted = policy.accept(&note).ok()?;
            let size = accepted.checkpoint.size;
            let root = custodia_log::tree::root_hash(size, &StoreHashes(store)).ok()?;
            (size <= latest.size && root == accepted.checkpoint.root)
                .then(|| Arc::new(SignedCheckpoint { size, root, note }))
        });
        let witnesses = policy.witnesses.len();
        let settled = published.as_ref().is_some_and(|p| p.size == latest.size);
        let (targets, _) = tokio::sync::watch::channel(latest.clone());
        Self {
            policy,
            path,
            published: RwLock::new(published),
            round: Mutex::new(Round { target: latest, lines: vec![None; witnesses], settled }),
            progress: Mutex::new(vec![WitnessProgress::default(); witnesses]),
            targets,
            behind_since: Mutex::new(None),
        }
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The newest checkpoint with the quorum's cosignatures, if there is one yet.
    pub fn published(&self) -> Option<Arc<SignedCheckpoint>> {
        self.published.read().ok().and_then(|p| p.clone())
    }

    /// What `/v1/info` says about witnessing.
    pub fn info(&self, latest_size: u64) -> WitnessingInfo {
        let published = self.published();
        let progress = self.progress.lock().map(|p| p.clone()).unwrap_or_default();
        let behind = self.behind_since.lock().ok().and_then(|b| *b);
        WitnessingInfo {
            cosigned_size: published.as_ref().map(|p| p.size),
            lag_entries: latest_size.saturating_sub(published.map_or(0, |p| p.size)),
            lag_seconds: behind.map_or(0, |since| since.elapsed().as_secs()),
            witnesses: self
                .policy
                .witnesses
                .iter()
                .zip(progress)
                .map(|(w, p)| custodia_core::ledger_api::WitnessInfo {
                    name: w.name.clone(),
                    vkey: w.key.to_vkey(),
                    size: p.size,
                    state: p.state,
                    last_error: p.last_error,
                })
                .collect(),
        }
    }

    fn set_progress(&self, witness: usize, update: impl FnOnce(&mut WitnessProgress)) {
        if let Ok(mut progress) = self.progress.lock()
            && let Some(p) = progress.get_mut(witness)
        {
            update(p);
        }
    }

    /// Records `witness`'s cosignature `line` for a checkpoint of `size`; publishes the target when the
    /// quorum is in.
    fn record(&self, witness: usize, size: u64, line: String) {
        let Ok(mut round) = self.round.lock() else { return };
        if round.target.size != size || round.settled {
            return;
        }
        round.lines[witness] = Some(line);
        let cosigned: Vec<bool> = round.lines.iter().map(Option::is_some).collect();
        if !self.policy.quorum_met(&cosigned) {
            return;
        }
        let mut note = round.target.note.clone();
        round.lines.iter().flatten().for_each(|l| note.push_str(l));
        // The note is checked as every client will check it before it is published.
        if let Err(e) = self.policy.accept(&note) {
            custodia_net::log::error(COMPONENT, format_args!("a cosigned checkpoint does not pass the policy: {e}"));
            return;
        }
        round.settled = true;
        let checkpoint = Arc::new(SignedCheckpoint { size, root: round.target.root, note });
        drop(round);
        if let Err(e) = write_atomically(&self.path, checkpoint.note.as_bytes()) {
            custodia_net::log::warn(COMPONENT, format_args!("could not save the cosigned checkpoint: {e}"));
        }
        if let Ok(mut published) = self.published.write() {
            *published = Some(checkpoint);
        }
    }

    /// Moves to a newer target once the current one is settled.
    fn next_target(&self, latest: &Arc<SignedCheckpoint>) {
        let published = self.published().map_or(0, |p| p.size);
        if let Ok(mut behind) = self.behind_since.lock() {
            match (latest.size > published, *behind) {
                (true, None) => *behind = Some(Instant::now()),
                (false, _) => *behind = None,
                _ => {}
            }
        }
        let Ok(mut round) = self.round.lock() else { return };
        if round.settled && latest.size > round.target.size {
            round.target = latest.clone();
            round.lines.iter_mut().for_each(|l| *l = None);
            round.settled = false;
            self.targets.send_replace(round.target.clone());
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Consistency proofs by (old size, new size), computed once for all witnesses.
type ProofCache = Arc<Mutex<HashMap<(u64, u64), Arc<Vec<Hash>>>>>;

/// Starts the coordinator and one task per witness with a URL. Runs until `stop` is set.
pub fn spawn(
    witnessing: Arc<Witnessing>,
    latest: Latest,
    store: Arc<dyn Store>,
    client: reqwest::Client,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let proofs: ProofCache = Arc::default();
    for (index, witness) in witnessing.policy.witnesses.iter().enumerate() {
        let Some(url) = witness.url.clone() else { continue };
        let url = format!("{}/add-checkpoint", url.trim_end_matches('/'));
        let task = WitnessTask {
            index,
            latest: latest.clone(),
            url,
            witnessing: witnessing.clone(),
            store: store.clone(),
            client: client.clone(),
            proofs: proofs.clone(),
        };
        let stop = stop.clone();
        tokio::spawn(async move { task.run(stop).await });
    }
    tokio::spawn(async move {
        let mut stop = stop;
        let mut warned: Option<Instant> = None;
        loop {
            let current = latest.read().ok().map(|l| l.clone());
            if let Some(current) = current {
                witnessing.next_target(&current);
                let info = witnessing.info(current.size);
                if info.lag_seconds >= LAG_WARNING.as_secs() && warned.is_none_or(|w| w.elapsed() >= LAG_WARNING) {
                    warned = Some(Instant::now());
                    let missing: Vec<String> = info
                        .witnesses
                        .iter()
                        .filter(|w| w.state != WitnessState::Ok)
                        .map(|w| format!("{} ({})", w.name, w.last_error.as_deref().unwrap_or("no answer yet")))
                        .collect();
                    custodia_net::log::warn(
                        COMPONENT,
                        format_args!(
                            "the cosigned checkpoint lags by {} entries ({} s): the witnesses' quorum is not reached; failing: {}",
                            info.lag_entries,
                            info.lag_seconds,
                            if missing.is_empty() { "none".to_owned() } else { missing.join(", ") }
                        ),
                    );
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
        }
    });
}

struct WitnessTask {
    index: usize,
    latest: Latest,
    url: String,
    witnessing: Arc<Witnessing>,
    store: Arc<dyn Store>,
    client: reqwest::Client,
    proofs: ProofCache,
}

/// One request's outcome.
enum Answer {
    Cosigned(String),
    /// 409: the witness's size.
    Conflict(u64),
    /// The witness refused this log's own checkpoint: log misbehaviour or misconfiguration.
    Alarm(String),
    /// Unreachable, timed out, or a server error: try again later.
    Failed(String),
}

impl WitnessTask {
    async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut targets = self.witnessing.targets.subscribe();
        let mut known: u64 = 0;
        let mut done: Option<u64> = None;
        let mut retry = RETRY_MIN;
        // An alarm is logged when it first appears or changes, not on every retry; the counter counts all.
        let mut last_alarm: Option<String> = None;
        loop {
            let target = targets.borrow_and_update().clone();
            if done == Some(target.size) {
                tokio::select! {
                    _ = targets.changed() => continue,
                    _ = stop.changed() => return,
                }
            }
            let failed = match self.ask(&target, known).await {
                Answer::Cosigned(line) => {
                    last_alarm = None;
                    known = target.size;
                    done = Some(target.size);
                    retry = RETRY_MIN;
                    self.witnessing.set_progress(self.index, |p| {
                        p.size = Some(target.size);
                        p.state = WitnessState::Ok;
                        p.last_error = None;
                    });
                    self.witnessing.record(self.index, target.size, line);
                    None
                }
                Answer::Conflict(size) if size <= target.size && size != known => {
                    known = size;
                    self.witnessing.set_progress(self.index, |p| p.size = Some(size));
                    continue;
                }
                Answer::Conflict(size) if size > target.size => {
                    // It has cosigned more of this log than the target (another front end's checkpoint,
                    // or one from before a restart): wait for a newer target. More than the whole tree
                    // only another history could explain.
                    known = size;
                    self.witnessing.set_progress(self.index, |p| p.size = Some(size));
                    let tree = self.latest.read().ok().map_or(0, |l| l.size);
                    if size > tree {
                        ALARMS.add(1);
                        Some((WitnessState::Alarm, format!("it has cosigned size {size}, beyond this log's {tree}")))
                    } else {
                        done = Some(target.size);
                        None
                    }
                }
                Answer::Conflict(size) => Some((WitnessState::Failed, format!("409 again at size {size}"))),
                Answer::Alarm(reason) => {
                    ALARMS.add(1);
                    if last_alarm.as_deref() != Some(reason.as_str()) {
                        custodia_net::log::error(
                            COMPONENT,
                            format_args!("witness {} refused checkpoint {}: {reason}", self.name(), target.size),
                        );
                        last_alarm = Some(reason.clone());
                    }
                    Some((WitnessState::Alarm, reason))
                }
                Answer::Failed(reason) => Some((WitnessState::Failed, reason)),
            };
            if let Some((state, reason)) = failed {
                self.witnessing.set_progress(self.index, |p| {
                    p.state = state;
                    p.last_error = Some(reason);
                });
                // A newer target is tried at once; the same one after a growing delay.
                tokio::select! {
                    _ = tokio::time::sleep(retry) => retry = (retry * 2).min(RETRY_MAX),
                    _ = targets.changed() => {}
                    _ = stop.changed() => return,
                }
            }
            if *stop.borrow() {
                return;
            }
        }
    }

    fn name(&self) -> &str {
        &self.witnessing.policy.witnesses[self.index].name
    }

    async fn proof(&self, old: u64, new: u64) -> Result<Arc<Vec<Hash>>, String> {
        if let Some(hit) = self.proofs.lock().ok().and_then(|c| c.get(&(old, new)).cloned()) {
            return Ok(hit);
        }
        let store = self.store.clone();
        let proof = tokio::task::spawn_blocking(move || {
            custodia_log::proof::consistency_proof(old, new, &StoreHashes(store.as_ref()))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        let proof = Arc::new(proof);
        if let Ok(mut cache) = self.proofs.lock() {
            // Only the newest target's proofs are asked for again.
            cache.retain(|(_, n), _| *n >= new);
            cache.insert((old, new), proof.clone());
        }
        Ok(proof)
    }

    async fn ask(&self, target: &SignedCheckpoint, old: u64) -> Answer {
        let old = old.min(target.size);
        let proof = match self.proof(old, target.size).await {
            Ok(proof) => proof,
            Err(e) => return Answer::Failed(format!("no consistency proof from {old}: {e}")),
        };
        let body = AddCheckpoint::body(old, &proof, &target.note);
        let sent = self.client.post(&self.url).body(body).timeout(REQUEST_TIMEOUT).send().await;
        let answer = match sent {
            Ok(answer) => answer,
            Err(e) => return Answer::Failed(custodia_net::client::explain(&e)),
        };
        let status = answer.status().as_u16();
        let is_size = answer
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(SIZE_CONTENT_TYPE));
        let text = match answer.text().await {
            Ok(text) if text.len() <= custodia_log::witness::MAX_ADD_CHECKPOINT_BYTES => text,
            Ok(_) => return Answer::Failed("the answer is too large".into()),
            Err(e) => return Answer::Failed(custodia_net::client::explain(&e)),
        };
        match status {
            200 => self.cosignature(target, &text),
            409 => match parse_size_body(&text) {
                Some(size) if is_size => Answer::Conflict(size),
                _ => Answer::Alarm(format!("409 without a text/x.tlog.size body: {:?}", first_line(&text))),
            },
            400 | 403 | 404 | 422 => Answer::Alarm(format!("{status}: {}", first_line(&text))),
            other => Answer::Failed(format!("{other}: {}", first_line(&text))),
        }
    }

    /// The witness's cosignature for `target` among the answer's lines (others are ignored, as the
    /// specification says).
    fn cosignature(&self, target: &SignedCheckpoint, text: &str) -> Answer {
        let lines = match parse_cosignature_lines(text) {
            Ok(lines) => lines,
            Err(e) => return Answer::Alarm(format!("200 with no signature lines: {e}")),
        };
        let key = &self.witnessing.policy.witnesses[self.index].key;
        let Ok(checkpoint) = custodia_log::Checkpoint::parse(&target_text(&target.note)) else {
            return Answer::Failed("the target checkpoint does not parse".into());
        };
        let mine = lines.iter().find(|l| l.name == key.name() && l.key_id == key.key_id());
        match mine.map(|line| (line, verify_cosignature(&checkpoint, line, key))) {
            Some((line, Ok(_))) => Answer::Cosigned(line.to_line()),
            Some((_, Err(e))) => Answer::Alarm(format!("its cosignature does not verify: {e}")),
            None => Answer::Alarm(format!("200 without a cosignature by {}", key.to_vkey())),
        }
    }
}

fn first_line(text: &str) -> &str {
    let line = text.lines().next().unwrap_or_default();
    &line[..line.floor_char_boundary(200)]
}

/// The checkpoint text of a signed note: everything before the blank line.
fn target_text(note: &str) -> String {
    note.split_once("\n\n").map_or(String::new(), |(text, _)| format!("{text}\n"))
}

//! The patient's loop: from the gateway's answer to the patient's notice.
//!
//! A ledger, a gateway and `--watchers` patients (20) whose wallets run `Wallet::watch`, each following
//! its tag's stream on the ledger, beside `--streams` more patients (1,000) whose streams are open and
//! idle, as the rest of a ledger's patients would be. A clinician reads each watcher's records in turn,
//! `--rounds` reads (200); each is timed from the gateway's answer to the watcher's notice of it (the
//! outbox posts the event, the ledger streams its index, the wallet syncs and verifies it). Beside it,
//! in the same run: a bare append's acknowledgement on the same ledger, the least any notice takes
//! after the event is posted; and the memory the open streams cost (ledger and clients in this one
//! process). The ledger here has no witnesses: under a witness policy a notice also waits for the
//! cosigned checkpoint (the ledger bench measures that wait).
//!
//! ```text
//! cargo bench -p custodia-gateway --bench notices -- [--watchers W] [--streams S] [--rounds R]
//! ```
//! Under `cargo test --benches` (no `--bench` argument) it runs tiny sizes to show it works, and says so.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A benchmark: a panic is the failure report.

#[path = "support/network.rs"]
mod setup;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use custodia_core::grant::{GrantRequest, VerifiedGrant};
use custodia_core::purpose::PurposeOfUse;
use custodia_core::{Identity, reqsig};
use custodia_gateway::dataset::Dataset;
use custodia_gateway::records::Records;
use custodia_wallet::fhir_client::GatewayClient;
use custodia_wallet::wallet::{Wallet, WatchUpdate};
use setup::{Network, now, wallet};

struct Args {
    watchers: usize,
    streams: usize,
    rounds: usize,
    test_mode: bool,
}

fn args() -> Args {
    let line = setup::CommandLine::read();
    let test_mode = line.test_mode();
    Args {
        watchers: line.value("--watchers").unwrap_or(if test_mode { 2 } else { 20 }),
        streams: line.value("--streams").unwrap_or(if test_mode { 10 } else { 1_000 }),
        rounds: line.value("--rounds").unwrap_or(if test_mode { 4 } else { 200 }),
        test_mode,
    }
}

/// The process's resident memory, from /proc (0 where there is none).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn percentiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    (at(0.5), at(0.99), v[v.len() - 1])
}

/// A patient whose wallet watches its log on a thread of its own; notices arrive on `notices` with the
/// instant each was told.
struct Watcher {
    grant: VerifiedGrant,
    notices: Receiver<(u64, Instant)>,
}

fn start_watcher(net: &Network, mut patient: Wallet, stop: Arc<AtomicBool>) -> Watcher {
    let request = GrantRequest {
        grantee: net.clinician.signing_key(),
        scopes: vec!["patient/AllergyIntolerance.rs".parse().unwrap()],
        allowed_labels: Vec::new(),
        purpose: PurposeOfUse::TREATMENT,
        duration_seconds: 3600,
        max_reads: None,
        note: String::new(),
    };
    let grant = patient.issue_grant(request, now()).unwrap();
    patient.post_grant(grant.id, now()).unwrap();
    let (tx, notices) = channel();
    std::thread::spawn(move || {
        let _ = patient.watch(&stop, |update| {
            if let WatchUpdate::Notice(n) = update {
                let _ = tx.send((n.index, Instant::now()));
            }
        });
    });
    Watcher { grant, notices }
}

/// Opens a signed stream of `owner`'s tag on the ledger and keeps reading it; counts it once connected.
async fn idle_stream(http: reqwest::Client, ledger: String, owner: Identity, open: Arc<AtomicUsize>) {
    let target = format!("/v1/tags/{}/events", owner.ledger_tag());
    let signature = reqsig::sign(&owner, "GET", &target, b"", now());
    let response = http.get(format!("{ledger}{target}")).header(reqsig::HEADER, signature).send().await.unwrap();
    assert_eq!(response.status(), 200, "the ledger serves the patient's stream");
    open.fetch_add(1, Ordering::Relaxed);
    let mut response = response;
    while let Ok(Some(_)) = response.chunk().await {}
}

fn main() {
    let args = args();
    println!("# Custodia notices bench\n");
    if args.test_mode {
        println!("**Test-mode run** (`cargo test`: tiny sizes, unoptimised): the figures are not meaningful; run");
        println!("`cargo bench -p custodia-gateway --bench notices` for them.\n");
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "Machine: {cores} cores. {} watching wallets, {} more open streams, {} reads.\n",
        args.watchers, args.streams, args.rounds
    );

    eprintln!("[notices bench] enrolling {} patients", args.watchers + args.streams);
    let mut net = Network::start();
    let mut watching = Vec::new();
    for i in 0..args.watchers {
        let mut patient = wallet(net.dir.path(), &format!("watcher-{i}"));
        patient.enroll(&net.ledger_url, None, now()).unwrap();
        net.more_patients.push(patient.signing_key());
        watching.push(patient);
    }
    let mut idle_owners = Vec::new();
    for i in 0..args.streams {
        let mut patient = wallet(net.dir.path(), &format!("idle-{i}"));
        patient.enroll(&net.ledger_url, None, now()).unwrap();
        idle_owners.push(patient.service_identity());
    }
    let gateway = net.start_gateway(Records::Local(Arc::new(Dataset::synthetic())), "notices");

    eprintln!("[notices bench] opening {} idle streams", args.streams);
    let before = rss_bytes();
    let open = Arc::new(AtomicUsize::new(0));
    let http = reqwest::Client::builder().http1_only().build().unwrap();
    for owner in idle_owners {
        net.rt.spawn(idle_stream(http.clone(), net.ledger_url.clone(), owner, open.clone()));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while open.load(Ordering::Relaxed) < args.streams {
        assert!(Instant::now() < deadline, "only {} streams opened", open.load(Ordering::Relaxed));
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    let per_stream = rss_bytes().saturating_sub(before) as f64 / args.streams.max(1) as f64;

    eprintln!("[notices bench] starting {} watching wallets", args.watchers);
    let stop = Arc::new(AtomicBool::new(false));
    let watchers: Vec<Watcher> = watching.into_iter().map(|w| start_watcher(&net, w, stop.clone())).collect();
    // Each watcher's first sync, and its stream, before the clock starts.
    std::thread::sleep(Duration::from_secs(2));
    for w in &watchers {
        while w.notices.try_recv().is_ok() {}
    }

    eprintln!("[notices bench] {} reads", args.rounds);
    let client = GatewayClient::new(&gateway.url).unwrap();
    let clinician = net.clinician.service_identity();
    let mut latencies = Vec::with_capacity(args.rounds);
    for round in 0..args.rounds {
        let w = &watchers[round % watchers.len()];
        let reply = client.get("/fhir/AllergyIntolerance", &w.grant, &clinician, None, None, now()).unwrap();
        let answered = Instant::now();
        assert_eq!(reply.status, 200, "{}", reply.body);
        let (_, told) = w.notices.recv_timeout(Duration::from_secs(30)).expect("the patient is told of the read");
        latencies.push(told.saturating_duration_since(answered).as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(20));
    }

    eprintln!("[notices bench] bare appends");
    let mut appends = Vec::with_capacity(args.rounds);
    for _ in 0..args.rounds.min(100) {
        let started = Instant::now();
        let grant = net.grant(&["patient/AllergyIntolerance.rs"], 60);
        appends.push(started.elapsed().as_secs_f64() * 1000.0);
        drop(grant);
    }
    stop.store(true, Ordering::Relaxed);

    let (p50, p99, max) = percentiles(latencies);
    let (a50, a99, _) = percentiles(appends);
    println!("| what | figure | beside |");
    println!("|---|---|---|");
    println!(
        "| **gateway answer → patient's notice** | **p50 {p50:.0} ms, p99 {p99:.0} ms** (max {max:.0} ms) | goal p99 ≤ \
         2,000 ms; a grant signed, posted and proven on the same ledger: p50 {a50:.0} ms, p99 {a99:.0} ms |"
    );
    println!(
        "| open tag streams | {} | {:.1} KiB resident per stream (ledger and client ends in one process) |",
        args.streams,
        per_stream / 1024.0
    );
}

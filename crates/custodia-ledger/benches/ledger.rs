//! The ledger's performance goals, each figure printed beside the ceilings measured in the same run:
//! raw Ed25519 strict verifications (every appended entry costs one) and raw durable SQLite inserts
//! (every acknowledged batch costs one fsync'd commit), so a figure reads as a ratio that holds on a
//! noisy machine.
//!
//! 1. Ceilings: Ed25519 `verify_strict` on one core and on all; SQLite (WAL, `synchronous = FULL`,
//!    1 KiB rows) at one row per transaction and at 1,000.
//! 2. Throughput: the ledger in process over real HTTP on loopback with a real SQLite file; C clients
//!    post pre-signed access events, B per request, until N are acknowledged. Then where the time goes:
//!    admission (`admit::admit`) and the sequencer (`Sequencer::run`, no HTTP) each alone on the same
//!    entries, and the CPU each thread group used during the run.
//! 3. Latency: single-entry requests offered at 1,000 a second on a fixed schedule (open loop).
//! 4. Proofs and storage at M entries, written straight through `Store::append`.
//! 5. Front ends over one PostgreSQL database (`--postgres URL`, or the server in
//!    `CUSTODIA_TEST_POSTGRES`): F ledgers in process over one fresh database, each serving HTTP, the
//!    clients spread over them; their combined rate, and that they publish one tree.
//!
//! ```text
//! cargo bench -p custodia-ledger --bench ledger -- [--appends N] [--clients C] [--batch B]
//!     [--latency-seconds S] [--entries M] [--postgres URL] [--front-ends F] [--quick]
//! ```
//!
//! The report (markdown) goes to stdout, progress to stderr. Under `cargo test --benches` (no `--bench`
//! argument) it runs the `--quick` sizes, unoptimised, to show it still works, and says so.

use std::collections::HashMap;
use std::error::Error;
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use custodia_core::dsse::Envelope;
use custodia_core::entry::{
    AccessEvent, AccessedResource, Content, Digest, EntryKind, EntryNonce, Leaf, LedgerEntry, Outcome, Role,
    canonical_envelope, seal_statement, statement_digest,
};
use custodia_core::grant::{GrantId, GrantRequest};
use custodia_core::ledger_api::{AppendResponse, Limits};
use custodia_core::purpose::PurposeOfUse;
use custodia_core::statement::{self, Verified};
use custodia_core::time::Timestamp;
use custodia_core::{Identity, MasterSeed};
use custodia_ledger::admit::{Admitted, admit_all};
use custodia_ledger::sequencer::{AppendJob, Sequencer, SequencerOptions};
use custodia_ledger::store::sqlite::SqliteStore;
use custodia_ledger::store::{Batch, Effect, NewEntry, Store, StoreHashes};
use custodia_ledger::{LedgerDir, default_limits};
use custodia_log::checkpoint::Checkpoint;
use custodia_log::note::{NoteSigner, NoteVerifier};
use custodia_log::proof::{consistency_proof, inclusion_proof, verify_consistency, verify_inclusion};
use custodia_log::{Frontier, Hash, leaf_hash};

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

const USAGE: &str = "usage: cargo bench -p custodia-ledger --bench ledger -- [options]
  --appends N          entries appended over HTTP in the throughput run (default 100000)
  --clients C          concurrent HTTP clients (default 32)
  --batch B            entries per request, 1 to 256 (default 64)
  --latency-seconds S  length of the open-loop run at 1,000 entries/s (default 5)
  --entries M          entries in the store the proofs are measured on (default 1000000; the goal is at 10000000)
  --postgres URL       a PostgreSQL server to create a scratch database on for the front-end run
                       (default: CUSTODIA_TEST_POSTGRES; without either, that run is skipped)
  --front-ends F       ledgers serving one PostgreSQL database in the front-end run (default 2)
  --quick              small sizes, for a smoke run (N=2000, M=20000, S=1)";

/// The tree size the proof and storage goals are stated at.
const GOAL_ENTRIES: u64 = 10_000_000;
const POPULATE_BATCH: u64 = 10_000;
/// Offered rate of the open-loop run, one request per tick.
const OFFERED_PER_SECOND: u64 = 1_000;
/// Every this many requests' receipts are checked in full.
const SAMPLE_EVERY: usize = 100;
const PROOF_SAMPLES: usize = 1_000;
const GATEWAYS: usize = 8;
const PROVIDERS: usize = 8;
const PATIENTS: usize = 64;

#[derive(Clone, Debug)]
struct Args {
    appends: usize,
    clients: usize,
    batch: usize,
    latency_seconds: u64,
    entries: u64,
    postgres: Option<String>,
    front_ends: usize,
    quick: bool,
    /// Run by `cargo test`: unoptimised, quick sizes, figures not meaningful.
    test_mode: bool,
}

fn number<T: std::str::FromStr>(it: &mut impl Iterator<Item = String>, flag: &str) -> Result<T, String> {
    let text = it.next().ok_or_else(|| format!("{flag} needs a number\n{USAGE}"))?;
    text.replace('_', "").parse().map_err(|_| format!("{flag} needs a number, not {text:?}\n{USAGE}"))
}

fn parse_args() -> Result<Args, String> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes --bench; `cargo test --benches` does not (see benches/ratio.rs).
    let test_mode = !raw.iter().any(|a| a == "--bench");
    let (mut appends, mut clients, mut batch, mut latency, mut entries, mut quick) =
        (None, None, None, None, None, false);
    let (mut postgres, mut front_ends) = (std::env::var("CUSTODIA_TEST_POSTGRES").ok(), 2);
    let mut it = raw.into_iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--bench" => {}
            "--quick" => quick = true,
            "--appends" => appends = Some(number(&mut it, &flag)?),
            "--clients" => clients = Some(number(&mut it, &flag)?),
            "--batch" => batch = Some(number(&mut it, &flag)?),
            "--latency-seconds" => latency = Some(number(&mut it, &flag)?),
            "--entries" => entries = Some(number(&mut it, &flag)?),
            "--postgres" => postgres = Some(it.next().ok_or_else(|| format!("--postgres needs a URL\n{USAGE}"))?),
            "--front-ends" => front_ends = number(&mut it, &flag)?,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            // The test harness may pass its own flags (--nocapture, filters); they mean nothing here.
            _ if test_mode => {}
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let small = quick || test_mode;
    let args = Args {
        appends: appends.unwrap_or(if small { 2_000 } else { 100_000 }),
        clients: clients.unwrap_or(32),
        batch: batch.unwrap_or(64),
        latency_seconds: latency.unwrap_or(if small { 1 } else { 5 }),
        entries: entries.unwrap_or(if small { 20_000 } else { 1_000_000 }),
        postgres,
        front_ends,
        quick: small,
        test_mode,
    };
    let max_batch = default_limits().max_entries_per_request;
    if !(1..=max_batch).contains(&args.batch) {
        return Err(format!("--batch must be 1 to {max_batch} (the ledger's limit per request)"));
    }
    if args.clients == 0 || args.appends == 0 || args.latency_seconds == 0 || args.front_ends == 0 {
        return Err("--clients, --appends, --latency-seconds and --front-ends must be at least 1".into());
    }
    if args.entries < 2 {
        return Err("--entries must be at least 2 (a consistency proof needs an older, smaller tree)".into());
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("ledger bench: some acknowledgements or proofs did not check out (see the report)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("ledger bench failed: {e}");
            let mut source = e.source();
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}

macro_rules! progress {
    ($($arg:tt)*) => { eprintln!("[ledger bench] {}", format_args!($($arg)*)) };
}

/// Runs every part, printing each section of the report as it completes; false if any receipt or
/// proof failed to verify.
fn run(args: &Args) -> Res<bool> {
    let started = Instant::now();
    let scratch = tempfile::tempdir()?;
    let mut ok = true;
    let mut out = String::new();
    writeln!(out, "# Custodia ledger bench\n")?;
    if args.test_mode {
        writeln!(out, "**Test-mode run** (`cargo test`: quick sizes, unoptimised build): the figures below are not")?;
        writeln!(out, "meaningful; run `cargo bench -p custodia-ledger --bench ledger` for them.\n")?;
    } else if args.quick {
        writeln!(out, "**Quick run** (`--quick`): small sizes, a smoke test rather than a measurement.\n")?;
    }
    let ceilings = Ceilings::measure(args, scratch.path())?;
    writeln!(
        out,
        "{} cores; SQLite {}; scratch files in {} (WAL, synchronous = FULL); load average at start {}.\n",
        ceilings.cores,
        rusqlite::version(),
        scratch.path().display(),
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown".into())
    )?;
    ceilings.report(&mut out)?;
    emit(&mut out);

    let payloads = over_http(args, &ceilings, &scratch.path().join("ledger"), &mut ok)?;
    https_beside_http(args, &scratch.path().join("tls"), &mut ok)?;
    witnessed_beside_unwitnessed(args, &scratch.path().join("witnessed"), &mut ok)?;
    proofs_section(args, &ceilings, &scratch.path().join("proofs.sqlite"), &payloads, &mut ok)?;
    match &args.postgres {
        Some(server) => front_ends_section(args, &ceilings, &scratch.path().join("front-ends"), server, &mut ok)?,
        None => println!(
            "## Front ends over one PostgreSQL database\n\nSkipped: no server (--postgres URL or CUSTODIA_TEST_POSTGRES).\n"
        ),
    }

    println!(
        "Run time {:.1} s{}.",
        started.elapsed().as_secs_f64(),
        if ok { "; every acknowledgement and proof sampled verified" } else { "; **SOME CHECKS FAILED**" }
    );
    Ok(ok)
}

/// Appends over HTTPS (TLS 1.3, the test CA's certificate) beside plain HTTP, the same entries count, clients and
/// batch against two fresh ledgers in the same run; and what a new connection costs each way.
fn https_beside_http(args: &Args, dir: &Path, ok: &mut bool) -> Res<()> {
    use custodia_net::test_ca::{TestCa, Validity};
    std::fs::create_dir_all(dir)?;
    let ca = TestCa::new("Bench CA");
    let files = ca.write_server(dir, "server", &["127.0.0.1"], Validity::Current);
    let trust = custodia_net::Trust::new(Some(&ca.write_ca(dir)))?;
    let appends = args.appends.min(50_000);
    let limits = Limits { entries_per_key_per_second: 1_000_000, ..default_limits() };
    let mut rows = Vec::new();
    for (name, tls) in [("HTTP", None), ("HTTPS", Some(custodia_net::ServerTls::new(&files)?))] {
        let ledger = Ledger::start_with_tls(&dir.join(name), limits.clone(), tls)?;
        let (client_rt, http) = clients_trusting(args, &trust)?;
        let (_, tp, rate, p99) = fresh_throughput(args, name, &client_rt, &http, &ledger, appends, ok)?;
        // A new connection per request: the handshake's cost, on a cheap endpoint.
        let fresh = trust.async_client().http1_only().pool_max_idle_per_host(0).build()?;
        let connections = if args.quick { 200 } else { 2_000 };
        let url = format!("{}/healthz", ledger.url);
        let started = Instant::now();
        client_rt.block_on(async {
            let mut tasks = Vec::new();
            for worker in 0..4 {
                let (fresh, url) = (fresh.clone(), url.clone());
                tasks.push(tokio::spawn(async move {
                    for _ in (worker..connections).step_by(4) {
                        fresh.get(&url).send().await?.error_for_status()?;
                    }
                    Ok::<_, reqwest::Error>(())
                }));
            }
            for t in tasks {
                t.await??;
            }
            Res::Ok(())
        })?;
        let per_connection = started.elapsed() / connections as u32;
        rows.push((name, rate, p99, per_connection, tp.failures.len()));
    }
    let mut out = String::new();
    writeln!(
        out,
        "## Appends over HTTPS beside plain HTTP: {} entries, {} per request, {} clients
",
        thousands(appends as u64),
        args.batch,
        args.clients
    )?;
    writeln!(out, "Two fresh ledgers in this run, one plain and one terminating TLS 1.3 itself (rustls, ring, an ECDSA P-256 certificate), each driven by the same clients over kept-alive HTTP/1.1 connections. A new connection per request (4 at a time, GET /healthz) shows the cost of a handshake.
")?;
    writeln!(
        out,
        "| transport | entries acknowledged per second | request p99 | one new connection and request | failures |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|")?;
    for (name, rate, p99, per_connection, failures) in &rows {
        writeln!(out, "| {name} | **{}** | {} | {} | {failures} |", count(*rate), ms(*p99), us(*per_connection))?;
    }
    if let [(_, plain, ..), (_, tls, ..)] = rows.as_slice() {
        writeln!(
            out,
            "
HTTPS sustains {:.2} x the plain-HTTP rate measured beside it.
",
            tls / plain
        )?;
    }
    emit(&mut out);
    Ok(())
}

/// Appends to a ledger that collects cosignatures from three witnesses (quorum 2 of 3, in this process,
/// over HTTP on loopback) beside one that collects none, the same entries, clients and batch; then,
/// single entries at 100 a second to the witnessed ledger, the time from sending each to the first
/// cosigned checkpoint that covers it.
fn witnessed_beside_unwitnessed(args: &Args, dir: &Path, ok: &mut bool) -> Res<()> {
    std::fs::create_dir_all(dir)?;
    let appends = args.appends.min(50_000);
    let limits = Limits { entries_per_key_per_second: 1_000_000, ..default_limits() };
    let witness_rt = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("witness").build()?;
    let mut rows = Vec::new();
    let mut witnessed: Option<(Ledger, Vec<custodia_witness::RunningWitness>)> = None;
    for name in ["no witnesses", "3 witnesses, quorum 2"] {
        let authority = identity();
        let path = dir.join(name.replace([' ', ','], "-"));
        let (ledger_dir, verifier) = LedgerDir::init(&path, authority.signing_public(), None)?;
        let mut running_witnesses = Vec::new();
        let policy = if name.starts_with('3') {
            let mut text = format!("log {}\n", verifier.to_vkey());
            for i in 0..3 {
                let witness =
                    custodia_witness::WitnessDir::init(&path.join(format!("w{i}")), Some(&format!("w{i}.bench")))?;
                witness.add_log(verifier.name(), &verifier)?;
                let vkey = witness.verifier().to_vkey();
                let running =
                    witness_rt.block_on(custodia_witness::start(Arc::new(witness), "127.0.0.1:0".parse()?, None))?;
                text.push_str(&format!("witness W{i} {vkey} {}\n", running.url));
                running_witnesses.push(running);
            }
            text.push_str("group Q 2 W0 W1 W2\nquorum Q\n");
            Some(custodia_log::policy::Policy::parse(&text)?)
        } else {
            None
        };
        let options = custodia_ledger::ServeOptions { tls: None, witness_policy: policy };
        let ledger = Ledger::serve_with(&ledger_dir, None, authority, verifier, limits.clone(), options)?;
        let (client_rt, http) = clients(args)?;
        let (cast, tp, rate, p99) = fresh_throughput(args, name, &client_rt, &http, &ledger, appends, ok)?;
        rows.push((name, rate, p99, failures(&tp.failures)));
        if running_witnesses.is_empty() {
            ledger.stop()?;
        } else {
            let latency_entries = presign(&cast, appends, if args.quick { 100 } else { 1_000 }, num_cpus())?;
            witnessed = Some((ledger, running_witnesses));
            let (ledger, _) = witnessed.as_ref().ok_or("no witnessed ledger")?;
            let covered = cosigned_latency(&client_rt, &http, ledger, latency_entries)?;
            let mut out = String::new();
            section_witnessed(&mut out, appends, args, &rows, &covered)?;
            emit(&mut out);
        }
    }
    if let Some((ledger, witnesses)) = witnessed {
        ledger.stop()?;
        for w in witnesses {
            witness_rt.block_on(w.shutdown())?;
        }
    }
    Ok(())
}

/// Sends single entries at 100 a second and, for each, how long until `/checkpoint` (read in process)
/// published a cosigned checkpoint covering it.
fn cosigned_latency(
    runtime: &tokio::runtime::Runtime,
    http: &reqwest::Client,
    ledger: &Ledger,
    entries: Vec<String>,
) -> Res<Vec<Duration>> {
    let shared = ledger.running.as_ref().ok_or("the ledger is not running")?.shared.clone();
    let mut waits = Vec::with_capacity(entries.len());
    runtime.block_on(async {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        let mut pending: Vec<tokio::task::JoinHandle<Res<Duration>>> = Vec::new();
        for entry in entries {
            tick.tick().await;
            let (http, base, shared) = (http.clone(), ledger.url.clone(), shared.clone());
            pending.push(tokio::spawn(async move {
                let sent = Instant::now();
                let (status, body) = post(&http, &base, body_of(std::slice::from_ref(&entry))).await?;
                if status != 200 {
                    return Err(format!("append refused: {status}").into());
                }
                let response: AppendResponse = serde_json::from_slice(&body)?;
                let index = response.entries.first().ok_or("no receipt")?.index;
                loop {
                    if shared.published().is_some_and(|p| p.size > index) {
                        return Ok(sent.elapsed());
                    }
                    if sent.elapsed() > Duration::from_secs(30) {
                        return Err("no cosigned checkpoint within 30 s".into());
                    }
                    tokio::time::sleep(Duration::from_micros(500)).await;
                }
            }));
        }
        for p in pending {
            waits.push(p.await??);
        }
        Res::Ok(())
    })?;
    Ok(waits)
}

fn section_witnessed(
    out: &mut String,
    appends: usize,
    args: &Args,
    rows: &[(&str, f64, Duration, String)],
    covered: &[Duration],
) -> Res<()> {
    writeln!(
        out,
        "## Appends with witnesses beside none: {} entries, {} per request, {} clients\n",
        thousands(appends as u64),
        args.batch,
        args.clients
    )?;
    writeln!(
        out,
        "Two fresh ledgers in this run; the second collects cosignatures from three custodia witnesses (C2SP tlog-witness over HTTP on loopback, SQLite state, all in this process and on the same cores) under a 2-of-3 policy and publishes only cosigned checkpoints. Appends do not wait for witnesses.\n"
    )?;
    writeln!(out, "| ledger | entries acknowledged per second | request p99 | failures |")?;
    writeln!(out, "|---|---:|---:|---:|")?;
    for (name, rate, p99, failed) in rows {
        writeln!(out, "| {name} | **{}** | {} | {failed} |", count(*rate), ms(*p99))?;
    }
    if let [(_, plain, ..), (_, witnessed, ..)] = rows {
        writeln!(
            out,
            "\nWith witnesses: {:.2} x the rate without, measured beside it (goal: within 10%).\n",
            witnessed / plain
        )?;
    }
    let mut sorted = covered.to_vec();
    sorted.sort();
    let at = |q: f64| {
        sorted
            .get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    writeln!(
        out,
        "Append to the first cosigned checkpoint covering it ({} single entries at 100 a second): p50 **{}**, p99 **{}**, max {} (goal p99 <= 1 s on loopback).\n",
        sorted.len(),
        ms(at(0.5)),
        ms(at(0.99)),
        ms(sorted.last().copied().unwrap_or_default())
    )?;
    Ok(())
}

/// Enrolls a cast on a fresh `ledger`, then posts `appends` pre-signed entries with the run's clients and
/// batch: the cast, the run, its rate (entries acknowledged per second) and its request p99.
fn fresh_throughput(
    args: &Args,
    name: &str,
    client_rt: &tokio::runtime::Runtime,
    http: &reqwest::Client,
    ledger: &Ledger,
    appends: usize,
    ok: &mut bool,
) -> Res<(Cast, Throughput, f64, Duration)> {
    progress!("{name}: enrolling, signing and posting {appends} entries");
    let cast = client_rt.block_on(Cast::enroll(http, ledger))?;
    let entries = presign(&cast, 0, appends, num_cpus())?;
    let tp =
        client_rt.block_on(throughput(http, std::slice::from_ref(&ledger.url), &entries, args.batch, args.clients))?;
    if !tp.failures.is_empty() {
        *ok = false;
    }
    let rate = tp.acknowledged_entries as f64 / tp.wall.as_secs_f64();
    let (_, p99) = mean_p99(&tp.latencies);
    Ok((cast, tp, rate, p99))
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Prints a finished section and clears it.
fn emit(out: &mut String) {
    print!("{out}");
    out.clear();
}

/// The ceilings every figure is set beside, measured at the start of the run.
struct Ceilings {
    cores: usize,
    verify_one: f64,
    verify_all: f64,
    /// Signatures per second checked in batches of 64 by one key, as a gateway's request comes.
    batch_all: f64,
    /// Transactions per second, one 1 KiB row each.
    sqlite_single: f64,
    /// Rows per second, 1,000 rows of 1 KiB per transaction.
    sqlite_grouped: f64,
}

impl Ceilings {
    fn measure(args: &Args, dir: &Path) -> Res<Self> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let window = if args.quick { Duration::from_millis(300) } else { Duration::from_secs(1) };
        progress!("ceilings: Ed25519 verify_strict on 1 and {cores} cores, SQLite inserts");
        let verify_one = ed25519_verify_rate(1, window)?;
        let verify_all = ed25519_verify_rate(cores, window)?;
        let batch_all = ed25519_batch_rate(cores, window)?;
        let (sqlite_single, sqlite_grouped) = sqlite_insert_rates(dir, window)?;
        Ok(Self { cores, verify_one, verify_all, batch_all, sqlite_single, sqlite_grouped })
    }

    /// One fsync'd commit of one row.
    fn commit(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.sqlite_single)
    }

    fn report(&self, out: &mut String) -> Res<()> {
        writeln!(out, "## Ceilings (measured in this run)\n")?;
        writeln!(out, "| ceiling | figure |")?;
        writeln!(out, "|---|---:|")?;
        writeln!(out, "| Ed25519 `verify_strict`, 300-byte message, 1 core | {} /s |", count(self.verify_one))?;
        writeln!(out, "| Ed25519 `verify_strict`, {} cores at once | {} /s |", self.cores, count(self.verify_all))?;
        writeln!(
            out,
            "| Ed25519 batch verification (`cofactored::verify_batch`), 64 signatures of 700 bytes by one key, \
             {} cores at once | {} signatures/s |",
            self.cores,
            count(self.batch_all)
        )?;
        writeln!(
            out,
            "| SQLite durable insert, 1 KiB row, 1 row per transaction (fsync-bound) | {} tx/s ({} per commit) |",
            count(self.sqlite_single),
            ms(self.commit())
        )?;
        writeln!(
            out,
            "| SQLite durable insert, 1 KiB rows, 1,000 rows per transaction (group commit) | {} rows/s |",
            count(self.sqlite_grouped)
        )?;
        writeln!(out)?;
        Ok(())
    }
}

/// The clients' own runtime and HTTP client: plain HTTP/1.1 on loopback, one connection per client.
fn clients(args: &Args) -> Res<(tokio::runtime::Runtime, reqwest::Client)> {
    clients_trusting(args, custodia_net::Trust::global()?)
}

/// [`clients`] that verify servers with `trust`.
fn clients_trusting(args: &Args, trust: &custodia_net::Trust) -> Res<(tokio::runtime::Runtime, reqwest::Client)> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("bench-client").build()?;
    let http = trust
        .async_client()
        .no_proxy()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(args.clients.max(64))
        .timeout(Duration::from_secs(120))
        .build()?;
    Ok((runtime, http))
}

/// Parts 2 and 3: a ledger in process, driven over HTTP. Returns 256 real signed access entries (not
/// appended) for part 4 to store.
fn over_http(args: &Args, ceilings: &Ceilings, dir: &Path, ok: &mut bool) -> Res<Vec<Verified<LedgerEntry>>> {
    let cores = ceilings.cores;
    let limits = Limits { entries_per_key_per_second: 1_000_000, ..default_limits() };
    let ledger = Ledger::start(dir, limits)?;
    let (client_rt, http) = clients(args)?;
    progress!("enrolling {GATEWAYS} gateways, {PROVIDERS} providers and {PATIENTS} patients, with a grant each");
    let cast = client_rt.block_on(Cast::enroll(&http, &ledger))?;
    let payloads = (0..256).map(|i| access_entry(&cast, i)).collect::<Res<Vec<_>>>()?;
    let mean_of = |f: &dyn Fn(&Verified<LedgerEntry>) -> usize| {
        payloads.iter().map(f).sum::<usize>() as f64 / payloads.len() as f64
    };
    let mean_body = mean_of(&|v| v.content.body().map_or(0, |b| b.0.len()));
    let mean_payload = mean_of(&|v| v.envelope().payload.len());
    let mut out = String::new();

    // 2. Throughput.
    progress!("signing {} access events (client side, not timed)", args.appends);
    let signing = Instant::now();
    let entries = presign(&cast, 0, args.appends, cores)?;
    let mean_entry_bytes = entries.iter().map(String::len).sum::<usize>() as f64 / entries.len() as f64;
    let size_before = ledger.shared_size();
    progress!(
        "posting {} entries, {} per request, from {} clients (signing took {:.1} s)",
        args.appends,
        args.batch,
        args.clients,
        signing.elapsed().as_secs_f64()
    );
    let cpu_before = cpu_snapshot();
    let bases = [ledger.url.clone()];
    let tp = client_rt.block_on(throughput(&http, &bases, &entries, args.batch, args.clients))?;
    let cpu = cpu_before.zip(cpu_snapshot()).map(|(before, after)| cpu_use(&before, &after, cores));
    let size_after = client_rt.block_on(ledger.checkpoint_size(&http))?;
    let tp_checked = check_samples(&ledger.verifier, &tp.samples, ok);
    let expected_size = size_before + tp.acknowledged_entries as u64;
    if size_after != expected_size {
        *ok = false;
    }
    let entries_per_s = tp.acknowledged_entries as f64 / tp.wall.as_secs_f64();
    writeln!(
        out,
        "## Appends over HTTP on loopback: {} pre-signed access events, {} per request, {} clients\n",
        thousands(args.appends as u64),
        args.batch,
        args.clients
    )?;
    writeln!(
        out,
        "Each entry: an `AccessEvent` naming one or two resources, signed by a gateway and sealed to the \
         patient (mean {mean_body:.0} B), in a ledger entry the gateway signs (payload {mean_payload:.0} B; \
         {mean_entry_bytes:.0} B of envelope JSON as posted). Acknowledged = durable, with a signed checkpoint \
         and an inclusion proof for each entry.\n"
    )?;
    writeln!(out, "| measure | figure | beside the ceiling | goal |")?;
    writeln!(out, "|---|---:|---|---|")?;
    writeln!(
        out,
        "| entries acknowledged per second | **{}** | {:.2} x Ed25519 batch verification on {cores} cores; {:.2} x \
         single verify on {cores} cores ({:.2} x on 1 core); {:.2} x SQLite group-commit rows | >= 30,000 |",
        count(entries_per_s),
        entries_per_s / ceilings.batch_all,
        entries_per_s / ceilings.verify_all,
        entries_per_s / ceilings.verify_one,
        entries_per_s / ceilings.sqlite_grouped
    )?;
    writeln!(
        out,
        "| requests acknowledged per second | {} | | |",
        count(tp.acknowledged_requests as f64 / tp.wall.as_secs_f64())
    )?;
    writeln!(out, "| wall time | {:.2} s | | |", tp.wall.as_secs_f64())?;
    let in_flight = args.clients * args.batch;
    for (name, d) in latency_rows(&tp.latencies) {
        // With every client always waiting, latency is mostly queueing (Little's law).
        let queueing = if name == "p50" {
            let expected = Duration::from_secs_f64(in_flight as f64 / entries_per_s);
            format!("{in_flight} entries in flight / throughput = {}", ms(expected))
        } else {
            String::new()
        };
        writeln!(out, "| request latency {name} (send to acknowledgement) | {} | {queueing} | |", ms(d))?;
    }
    if let Some(cpu) = cpu {
        writeln!(out, "| CPU during the run, % of one core ({cores} cores = {}%) | {cpu} | | |", cores * 100)?;
    }
    writeln!(out, "| requests refused or failed | {} | | 0 |", failures(&tp.failures))?;
    writeln!(
        out,
        "| receipts verified (every {SAMPLE_EVERY}th request: checkpoint signature, leaf, inclusion proof) | \
         {tp_checked} | | all |"
    )?;
    writeln!(
        out,
        "| checkpoint size after the run | {} (expected {}) | | equal |",
        thousands(size_after),
        thousands(expected_size)
    )?;
    writeln!(out)?;
    emit(&mut out);

    // Where the time goes: admission and the sequencer, each alone, on the same entries.
    progress!("timing admission alone on 1 and {cores} threads");
    let shared = ledger.running.as_ref().map(|r| &r.shared).ok_or("the ledger has stopped")?;
    let one = entries.len().min(10_000);
    let (admit_one, _) = admission(shared, &entries[..one], 1, args.batch)?;
    let (admit_cores, admitted) = admission(shared, &entries, cores, args.batch)?;
    drop(entries);
    progress!("timing the sequencer alone on a fresh store");
    let seq = sequencer_alone(&dir.join("sequencer-alone.sqlite"), admitted, args.batch, args.clients, cores)?;
    if seq.failed > 0 {
        *ok = false;
    }
    writeln!(
        out,
        "## Where the time goes: each stage alone, on the same {} entries\n",
        thousands(args.appends as u64)
    )?;
    writeln!(
        out,
        "Admission is `custodia_ledger::admit::admit_all` called directly on each request's {} entries (parse, \
         verify the signatures in one batch, authorise from the enrollment caches and the store). The sequencer alone is `Sequencer::run` on its own thread over \
         a fresh SQLite file, fed the admitted entries by {} closed-loop clients, {} per request, without HTTP: \
         screen, commit and fsync, sign a checkpoint, make the proofs.\n",
        args.batch, args.clients, args.batch
    )?;
    writeln!(out, "| stage | entries/s | per entry | beside the ceiling |")?;
    writeln!(out, "|---|---:|---:|---|")?;
    let per_entry = |rate: f64| us(Duration::from_secs_f64(1.0 / rate));
    writeln!(
        out,
        "| admission, 1 thread | {} | {} | {:.2} x Ed25519 verify on 1 core: one single verify is {:.0}% of it |",
        count(admit_one),
        per_entry(admit_one),
        admit_one / ceilings.verify_one,
        admit_one / ceilings.verify_one * 100.0
    )?;
    writeln!(
        out,
        "| admission, {cores} threads | {} | {} of wall time | {:.2} x Ed25519 batch verification on {cores} cores |",
        count(admit_cores),
        per_entry(admit_cores),
        admit_cores / ceilings.batch_all
    )?;
    writeln!(
        out,
        "| sequencer alone | {} | {} of wall time; its thread on CPU {:.0}% of it{} | {:.2} x SQLite group-commit rows |",
        count(seq.rate),
        per_entry(seq.rate),
        seq.thread_cpu,
        if seq.failed > 0 { format!("; **{} requests failed**", seq.failed) } else { String::new() },
        seq.rate / ceilings.sqlite_grouped
    )?;
    writeln!(
        out,
        "| the whole pipeline over HTTP (above) | {} | {} of wall time | were the two stages to take turns \
         rather than overlap: 1 / (1 / admission on {cores} threads + 1 / sequencer) = {} |",
        count(entries_per_s),
        per_entry(entries_per_s),
        count(1.0 / (1.0 / admit_cores + 1.0 / seq.rate))
    )?;
    writeln!(out)?;
    emit(&mut out);

    // 3. Open-loop latency.
    let latency_count = (args.latency_seconds * OFFERED_PER_SECOND) as usize;
    progress!("signing {latency_count} entries for the open-loop run");
    let singles = presign(&cast, args.appends, latency_count, cores)?;
    progress!("offering {OFFERED_PER_SECOND} single-entry requests a second for {} s", args.latency_seconds);
    let ol = client_rt.block_on(open_loop(&http, &ledger.url, singles))?;
    let ol_checked = check_samples(&ledger.verifier, &ol.samples, ok);
    writeln!(
        out,
        "## Latency at {} entries/s offered (open loop, {} s, one entry per request)\n",
        thousands(OFFERED_PER_SECOND),
        args.latency_seconds
    )?;
    writeln!(
        out,
        "Requests start on a fixed 1 ms schedule, each in its own task; latency runs from the scheduled \
         start to the acknowledgement, so a slow reply cannot hide by delaying the next request.\n"
    )?;
    writeln!(out, "| measure | figure | beside the ceiling | goal |")?;
    writeln!(out, "|---|---:|---|---|")?;
    writeln!(
        out,
        "| requests sent | {} in {:.2} s ({} /s offered) | | |",
        thousands(ol.sent as u64),
        ol.schedule.as_secs_f64(),
        count(ol.sent as f64 / ol.schedule.as_secs_f64())
    )?;
    for (name, d) in latency_rows(&ol.latencies) {
        let goal = if name == "p99" { "<= 25 ms" } else { "" };
        writeln!(
            out,
            "| append-to-proof latency {name} | {} | {:.1} x one fsync'd commit | {goal} |",
            ms(d),
            d.as_secs_f64() / ceilings.commit().as_secs_f64()
        )?;
    }
    writeln!(out, "| requests refused or failed | {} | | 0 |", failures(&ol.failures))?;
    writeln!(out, "| receipts verified (every {SAMPLE_EVERY}th request) | {ol_checked} | | all |")?;
    writeln!(out)?;
    emit(&mut out);
    client_rt.block_on(async { drop(http) });
    ledger.stop()?;
    Ok(payloads)
}

/// Part 5: `--front-ends` ledgers in process over one fresh PostgreSQL database, each serving HTTP; the
/// cast enrolls through the first, then the clients post the same kind of load spread over all of them.
fn front_ends_section(args: &Args, ceilings: &Ceilings, path: &Path, server: &str, ok: &mut bool) -> Res<()> {
    let cores = ceilings.cores;
    let fronts = args.front_ends;
    let db = custodia_ledger::store::postgres::ScratchDatabase::create(server, "custodia_bench")?;
    let limits = Limits { entries_per_key_per_second: 1_000_000, ..default_limits() };
    let authority_seed = MasterSeed::generate();
    let authority = Identity::from_seed(&authority_seed);
    let (dir, verifier) = LedgerDir::init(path, authority.signing_public(), None)?;
    progress!("starting {fronts} ledger front ends over one PostgreSQL database");
    let ledgers = (0..fronts)
        .map(|_| {
            let authority = Identity::from_seed(&authority_seed);
            Ledger::serve(&dir, Some(&db.url), authority, verifier.clone(), limits.clone())
        })
        .collect::<Res<Vec<_>>>()?;
    let (client_rt, http) = clients(args)?;
    let cast = client_rt.block_on(Cast::enroll(&http, &ledgers[0]))?;
    let entries = presign(&cast, 0, args.appends, cores)?;
    let bases: Vec<String> = ledgers.iter().map(|l| l.url.clone()).collect();
    let size_before = client_rt.block_on(ledgers[0].checkpoint_size(&http))?;
    progress!("posting {} entries over {fronts} front ends from {} clients", args.appends, args.clients);
    let cpu_before = cpu_snapshot();
    let tp = client_rt.block_on(throughput(&http, &bases, &entries, args.batch, args.clients))?;
    let cpu = cpu_before.zip(cpu_snapshot()).map(|(before, after)| cpu_use(&before, &after, cores));
    let checked = check_samples(&verifier, &tp.samples, ok);
    // Each front end publishes what the others sequenced at its next refresh (once a second).
    let expected = size_before + tp.acknowledged_entries as u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    let sizes = loop {
        let sizes = ledgers.iter().map(|l| client_rt.block_on(l.checkpoint_size(&http))).collect::<Res<Vec<_>>>()?;
        if sizes.iter().all(|&s| s == expected) || Instant::now() > deadline {
            break sizes;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if sizes.iter().any(|&s| s != expected) {
        *ok = false;
    }
    let rate = tp.acknowledged_entries as f64 / tp.wall.as_secs_f64();
    let mut out = String::new();
    writeln!(
        out,
        "## {fronts} front ends over one PostgreSQL database: {} access events, {} per request, {} clients\n",
        thousands(args.appends as u64),
        args.batch,
        args.clients
    )?;
    writeln!(
        out,
        "Each front end is a whole ledger (admission, sequencer, HTTP) in this process, over the same fresh \
         database on the server given; the clients post to them in turn. Front ends take turns at the tree's \
         row lock; each publishes the others' entries with its next checkpoint refresh.\n"
    )?;
    writeln!(out, "| measure | figure | beside the ceiling |")?;
    writeln!(out, "|---|---:|---|")?;
    writeln!(
        out,
        "| entries acknowledged per second, all front ends together | **{}** | {:.2} x Ed25519 batch verification \
         on {cores} cores; {:.2} x single verify |",
        count(rate),
        rate / ceilings.batch_all,
        rate / ceilings.verify_all
    )?;
    writeln!(out, "| wall time | {:.2} s | |", tp.wall.as_secs_f64())?;
    for (name, d) in latency_rows(&tp.latencies) {
        writeln!(out, "| request latency {name} | {} | |", ms(d))?;
    }
    if let Some(cpu) = cpu {
        writeln!(out, "| CPU during the run, % of one core ({cores} cores = {}%) | {cpu} | |", cores * 100)?;
    }
    writeln!(out, "| requests refused or failed | {} | |", failures(&tp.failures))?;
    writeln!(out, "| receipts verified (every {SAMPLE_EVERY}th request) | {checked} | |")?;
    writeln!(
        out,
        "| checkpoint size each front end publishes after the run | {} (expected {}) | |",
        sizes.iter().map(|&s| thousands(s)).collect::<Vec<_>>().join(", "),
        thousands(expected)
    )?;
    writeln!(out)?;
    emit(&mut out);
    client_rt.block_on(async { drop(http) });
    for ledger in ledgers {
        ledger.stop()?;
    }
    drop(db);
    Ok(())
}

/// Part 4: proofs and storage at `--entries` entries.
fn proofs_section(
    args: &Args,
    ceilings: &Ceilings,
    path: &Path,
    payloads: &[Verified<LedgerEntry>],
    ok: &mut bool,
) -> Res<()> {
    let at_goal = args.entries >= GOAL_ENTRIES;
    let m = args.entries;
    let big = proofs_and_storage(path, m, payloads, ok)?;
    let mut out = String::new();
    writeln!(
        out,
        "## Proofs and storage at {} entries{}\n",
        thousands(m),
        if at_goal { "" } else { " (NOT at 10 million: pass --entries 10000000 for the goal's size)" }
    )?;
    writeln!(
        out,
        "Written straight through `Store::append` in batches of {} (not over HTTP), nodes and roots from \
         `custodia_log::Frontier` as the sequencer computes them. Every row stores one of 256 real signed \
         access-event payloads and signatures, with a unique envelope hash. Proofs are read from the store \
         (`StoreHashes`), page cache warm.\n",
        thousands(POPULATE_BATCH)
    )?;
    let size_note = if at_goal { String::new() } else { format!(" (at {}, not 10 M)", thousands(m)) };
    writeln!(out, "| measure | figure | beside the ceiling | goal |")?;
    writeln!(out, "|---|---:|---|---|")?;
    let populate_rate = m as f64 / big.populate.as_secs_f64();
    writeln!(
        out,
        "| direct appends while populating, average from empty | {} entries/s | {:.2} x SQLite group-commit rows | |",
        count(populate_rate),
        populate_rate / ceilings.sqlite_grouped
    )?;
    let (tail_entries, tail_time) = big.tail;
    let tail_rate = tail_entries as f64 / tail_time.as_secs_f64();
    writeln!(
        out,
        "| direct appends at the end, the last {} entries (from {} on) | **{}** entries/s | {:.2} x SQLite \
         group-commit rows | >= 20,000 at 10 M |",
        thousands(tail_entries),
        thousands(m - tail_entries),
        count(tail_rate),
        tail_rate / ceilings.sqlite_grouped
    )?;
    let verify = Duration::from_secs_f64(1.0 / ceilings.verify_one);
    for (name, samples, goal) in [
        ("inclusion proof, random leaf", &big.inclusion, "<= 1 ms"),
        ("consistency proof, random older size", &big.consistency, "<= 1 ms"),
        ("verify an inclusion proof", &big.verify_inclusion, ""),
        ("verify a consistency proof", &big.verify_consistency, ""),
    ] {
        let (mean, p99) = mean_p99(samples);
        writeln!(
            out,
            "| {name}{size_note}: mean / p99 over {} | {} / {} | {:.2} x one Ed25519 verify | {goal} |",
            thousands(samples.len() as u64),
            us(mean),
            us(p99),
            mean.as_secs_f64() / verify.as_secs_f64()
        )?;
    }
    let (inclusion, _) = mean_p99(&big.inclusion);
    let (consistency, _) = mean_p99(&big.consistency);
    writeln!(
        out,
        "| inclusion + consistency proof, means summed{size_note} | {} | | <= 1 ms |",
        us(inclusion + consistency)
    )?;
    writeln!(
        out,
        "| bytes stored per entry{size_note} (database + WAL after `wal_checkpoint(TRUNCATE)`) | **{:.0} B** \
         ({} total) | the entry's own payload and signature are {:.0} B of it | <= 1,024 B |",
        big.file_bytes as f64 / m as f64,
        bytes(big.file_bytes),
        big.payload_bytes as f64 / m as f64
    )?;
    for (name, size) in &big.breakdown {
        let per_entry = *size as f64 / m as f64;
        // Enrollment, grant and mailbox tables are empty here; a page or two each is not worth a row.
        if per_entry >= 0.5 {
            writeln!(out, "| &nbsp;&nbsp;of which `{name}` (table or index) | {per_entry:.0} B | | |")?;
        }
    }
    writeln!(out)?;
    emit(&mut out);
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// Ceilings

/// How many times per second `threads` threads running at once can do `round` (which does `per_round`
/// things and says whether they all succeeded), summed; `None` if one failed.
fn rate_on_threads(threads: usize, window: Duration, per_round: u64, round: impl Fn() -> bool + Sync) -> Option<f64> {
    let rates: Vec<Option<f64>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let start = Instant::now();
                    let mut n = 0u64;
                    while start.elapsed() < window {
                        if !round() {
                            return None;
                        }
                        n += per_round;
                    }
                    Some(n as f64 / start.elapsed().as_secs_f64())
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().ok().flatten()).collect()
    });
    rates.into_iter().sum()
}

/// Strict Ed25519 verifications per second, summed over `threads` threads running at once.
fn ed25519_verify_rate(threads: usize, window: Duration) -> Res<f64> {
    let id = Identity::from_seed(&MasterSeed::from_bytes([1; 32]));
    let key = id.signing_public();
    let message = [0x42u8; 300];
    let signature = id.sign(&message);
    rate_on_threads(threads, window, 64, || (0..64).all(|_| key.verify(black_box(&message), black_box(&signature))))
        .ok_or_else(|| "a raw Ed25519 verification failed".into())
}

/// Signatures per second through the ledger's batch verification, summed over `threads` threads.
fn ed25519_batch_rate(threads: usize, window: Duration) -> Res<f64> {
    let id = Identity::from_seed(&MasterSeed::from_bytes([2; 32]));
    let key = id.signing_public();
    let messages: Vec<Vec<u8>> = (0..64u8).map(|i| vec![i; 700]).collect();
    let signatures: Vec<[u8; 64]> = messages.iter().map(|m| id.sign(m)).collect();
    let batch: Vec<custodia_core::cofactored::Item<'_>> =
        messages.iter().zip(&signatures).map(|(m, s)| (&key, m.as_slice(), s)).collect();
    rate_on_threads(threads, window, 64, || custodia_core::cofactored::verify_batch(black_box(&batch)))
        .ok_or_else(|| "a batch of Ed25519 signatures did not verify".into())
}

/// Durable inserts of 1 KiB rows into a fresh SQLite file: transactions per second at one row each,
/// and rows per second at 1,000 rows per transaction.
fn sqlite_insert_rates(dir: &Path, window: Duration) -> Res<(f64, f64)> {
    let conn = rusqlite::Connection::open(dir.join("raw.sqlite"))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch("CREATE TABLE raw (idx INTEGER PRIMARY KEY, payload BLOB NOT NULL)")?;
    let mut rng = SplitMix(7);
    let mut row = [0u8; 1024];
    for chunk in row.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next().to_le_bytes());
    }
    let mut idx: i64 = 0;
    let mut insert = |conn: &rusqlite::Connection, rows: usize| -> Res<()> {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        {
            let mut stmt = conn.prepare_cached("INSERT INTO raw (idx, payload) VALUES (?1, ?2)")?;
            for _ in 0..rows {
                row[..8].copy_from_slice(&idx.to_le_bytes());
                stmt.execute(rusqlite::params![idx, row.as_slice()])?;
                idx += 1;
            }
        }
        conn.execute_batch("COMMIT")?;
        Ok(())
    };
    let measure = |insert: &mut dyn FnMut() -> Res<()>, min_rounds: u32| -> Res<f64> {
        let start = Instant::now();
        let mut rounds = 0u32;
        while start.elapsed() < window || rounds < min_rounds {
            insert()?;
            rounds += 1;
        }
        Ok(f64::from(rounds) / start.elapsed().as_secs_f64())
    };
    let single = measure(&mut || insert(&conn, 1), 20)?;
    let grouped = measure(&mut || insert(&conn, 1000), 3)? * 1000.0;
    Ok((single, grouped))
}

// ---------------------------------------------------------------------------------------------------
// The ledger, its members and their entries

struct Ledger {
    runtime: tokio::runtime::Runtime,
    running: Option<custodia_ledger::RunningLedger>,
    url: String,
    verifier: NoteVerifier,
    authority: Identity,
}

impl Ledger {
    /// A fresh ledger folder with a SQLite store, served on 127.0.0.1 by its own multi-thread runtime.
    fn start(path: &Path, limits: Limits) -> Res<Self> {
        Self::start_with_tls(path, limits, None)
    }

    /// [`Ledger::start`], terminating TLS with `tls` when given.
    fn start_with_tls(path: &Path, limits: Limits, tls: Option<custodia_net::ServerTls>) -> Res<Self> {
        let authority = identity();
        let (dir, verifier) = LedgerDir::init(path, authority.signing_public(), None)?;
        Self::serve_with_tls(&dir, None, authority, verifier, limits, tls)
    }

    /// Serves the ledger folder `dir` over the store `db` names (the folder's SQLite file by default).
    fn serve(
        dir: &LedgerDir,
        db: Option<&str>,
        authority: Identity,
        verifier: NoteVerifier,
        limits: Limits,
    ) -> Res<Self> {
        Self::serve_with_tls(dir, db, authority, verifier, limits, None)
    }

    fn serve_with_tls(
        dir: &LedgerDir,
        db: Option<&str>,
        authority: Identity,
        verifier: NoteVerifier,
        limits: Limits,
        tls: Option<custodia_net::ServerTls>,
    ) -> Res<Self> {
        Self::serve_with(
            dir,
            db,
            authority,
            verifier,
            limits,
            custodia_ledger::ServeOptions { tls, witness_policy: None },
        )
    }

    fn serve_with(
        dir: &LedgerDir,
        db: Option<&str>,
        authority: Identity,
        verifier: NoteVerifier,
        limits: Limits,
        options: custodia_ledger::ServeOptions,
    ) -> Res<Self> {
        let store = custodia_ledger::open_store(dir, db)?;
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("ledger").build()?;
        let listen = "127.0.0.1:0".parse()?;
        let running = runtime.block_on(custodia_ledger::start_with(dir, store, listen, limits, options))?;
        let url = running.url.clone();
        Ok(Self { runtime, running: Some(running), url, verifier, authority })
    }

    /// The size of the newest checkpoint the ledger has signed.
    fn shared_size(&self) -> u64 {
        self.running.as_ref().map_or(0, |r| r.shared.latest().size)
    }

    /// The size of `/checkpoint`, after checking its signature.
    async fn checkpoint_size(&self, http: &reqwest::Client) -> Res<u64> {
        let note = http.get(format!("{}/checkpoint", self.url)).send().await?.error_for_status()?.text().await?;
        let (checkpoint, _) = Checkpoint::open(&note, &self.verifier)?;
        Ok(checkpoint.size)
    }

    fn stop(mut self) -> Res<()> {
        if let Some(running) = self.running.take() {
            self.runtime.block_on(running.shutdown())?;
        }
        Ok(())
    }
}

fn identity() -> Identity {
    Identity::from_seed(&MasterSeed::generate())
}

fn now() -> Timestamp {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    // The clock is past 1970 and before year 9999 on any machine this runs on.
    #[allow(clippy::expect_used)]
    Timestamp::from_unix(secs as i64).expect("the system clock is in range")
}

fn signed(signer: &Identity, content: Content) -> Res<Verified<LedgerEntry>> {
    Ok(statement::sign(LedgerEntry::new(signer.signing_public(), now(), content), signer)?)
}

fn body_of(entries: &[String]) -> String {
    format!("{{\"entries\":[{}]}}", entries.join(","))
}

/// Everyone the entries name: gateways post access events, providers read under grants, patients
/// each granted one provider.
struct Cast {
    gateways: Vec<Identity>,
    providers: Vec<Identity>,
    patients: Vec<Identity>,
    /// `grants[p]`: patient p's grant to provider `p % PROVIDERS`.
    grants: Vec<GrantId>,
}

impl Cast {
    /// Enrolls everyone through the HTTP API, as a deployment would, and logs each patient's grant.
    async fn enroll(http: &reqwest::Client, ledger: &Ledger) -> Res<Self> {
        let gateways: Vec<_> = (0..GATEWAYS).map(|_| identity()).collect();
        let providers: Vec<_> = (0..PROVIDERS).map(|_| identity()).collect();
        let patients: Vec<_> = (0..PATIENTS).map(|_| identity()).collect();
        let member = |id: &Identity, role: Role, n: usize| {
            let (name, org) = match role {
                Role::Gateway => (format!("Records gateway {n}"), format!("Example Health Trust {}", n % 3)),
                _ => (format!("Dr. Example {n}"), format!("St Example's Hospital {}", n % 3)),
            };
            signed(
                &ledger.authority,
                Content::EnrollMember { key: id.signing_public(), box_key: id.box_public(), role, name, org },
            )
            .map(|v| v.to_compact_json())
        };
        let mut members = Vec::new();
        for (n, g) in gateways.iter().enumerate() {
            members.push(member(g, Role::Gateway, n)?);
        }
        for (n, p) in providers.iter().enumerate() {
            members.push(member(p, Role::Provider, n)?);
        }
        append_checked(http, ledger, &members).await?;
        let enrollments = patients
            .iter()
            .map(|p| {
                signed(p, Content::EnrollPatient { box_key: p.box_public(), tag: p.ledger_tag() })
                    .map(|v| v.to_compact_json())
            })
            .collect::<Res<Vec<_>>>()?;
        append_checked(http, ledger, &enrollments).await?;
        let mut grants = Vec::new();
        let mut grant_entries = Vec::new();
        for (n, patient) in patients.iter().enumerate() {
            let grantee = &providers[n % PROVIDERS];
            let grant = GrantRequest {
                grantee: grantee.signing_public(),
                scopes: vec![
                    "patient/Observation.rs?category=laboratory".parse()?,
                    "patient/DiagnosticReport.rs".parse()?,
                ],
                allowed_labels: vec![],
                purpose: PurposeOfUse::TREATMENT,
                duration_seconds: 30 * 86_400,
                max_reads: None,
                note: "follow-up after knee surgery".into(),
            }
            .sign(patient, now())?;
            let tag = patient.ledger_tag();
            let body = seal_statement(&grant, &[patient.box_public(), grantee.box_public()], EntryKind::Grant, &tag)?;
            let content =
                Content::Grant { tag, grant_id: grant.id, grant_digest: statement_digest(grant.envelope()), body };
            grants.push(grant.id);
            grant_entries.push(signed(patient, content)?.to_compact_json());
        }
        append_checked(http, ledger, &grant_entries).await?;
        Ok(Self { gateways, providers, patients, grants })
    }
}

/// Appends and checks every receipt; for setup, where a refusal is a broken bench.
async fn append_checked(http: &reqwest::Client, ledger: &Ledger, entries: &[String]) -> Res<()> {
    let (status, body) = post(http, &ledger.url, body_of(entries)).await?;
    if status != 200 {
        return Err(format!("setup append refused ({status}): {}", String::from_utf8_lossy(&body)).into());
    }
    verify_receipts(&ledger.verifier, entries, &body)?;
    Ok(())
}

async fn post(http: &reqwest::Client, base: &str, body: String) -> Res<(u16, Vec<u8>)> {
    let response = http
        .post(format!("{base}/v1/entries"))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.bytes().await?.to_vec()))
}

/// A UUID-shaped id, as FHIR servers hand out.
fn uuid(rng: &mut SplitMix) -> String {
    let (a, b) = (rng.next(), rng.next());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        (b >> 48) & 0x3fff | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

/// Access event `i`: a gateway's record of a provider reading one or two of a patient's lab resources
/// under the patient's grant, signed by the gateway, sealed to the patient, in a ledger entry the
/// gateway signs. What a real gateway sends.
fn access_entry(cast: &Cast, i: usize) -> Res<Verified<LedgerEntry>> {
    let p = i % cast.patients.len();
    let patient = &cast.patients[p];
    let gateway = &cast.gateways[(i / cast.patients.len()) % cast.gateways.len()];
    let reader = &cast.providers[p % cast.providers.len()];
    let mut rng = SplitMix(i as u64 ^ 0x5eed);
    let fhir_patient = uuid(&mut rng);
    let mut resources = vec![AccessedResource {
        resource_type: "Observation".into(),
        id: uuid(&mut rng),
        labels: vec![],
        category: Some("laboratory".into()),
    }];
    if i % 2 == 1 {
        resources.push(AccessedResource {
            resource_type: "DiagnosticReport".into(),
            id: uuid(&mut rng),
            labels: vec![],
            category: Some("laboratory".into()),
        });
    }
    let event = AccessEvent {
        id: EntryNonce::generate(),
        gateway: gateway.signing_public(),
        patient: patient.signing_public(),
        reader: reader.signing_public(),
        reader_name: format!("Dr. Example {}", p % cast.providers.len()),
        organisation: format!("St Example's Hospital {}", p % 3),
        grant_id: Some(cast.grants[p]),
        purpose: PurposeOfUse::TREATMENT,
        at: now(),
        outcome: Outcome::Allowed,
        break_glass: false,
        request: format!("GET Observation?patient={fhir_patient}&category=laboratory&_count=50"),
        resources,
        reason: None,
        emergency_reason: None,
    };
    let event = statement::sign(event, gateway)?;
    let tag = patient.ledger_tag();
    let body = seal_statement(&event, &[patient.box_public()], EntryKind::Access, &tag)?;
    signed(gateway, Content::Access { tag, grant_id: Some(cast.grants[p]), body })
}

/// Signs access events `first..first + count` on `threads` threads; compact JSON, in order.
fn presign(cast: &Cast, first: usize, count: usize, threads: usize) -> Res<Vec<String>> {
    let chunk = count.div_ceil(threads.max(1)).max(1);
    let parts: Vec<Res<Vec<String>>> = std::thread::scope(|s| {
        let workers: Vec<_> = (first..first + count)
            .step_by(chunk)
            .map(|lo| {
                let hi = (lo + chunk).min(first + count);
                s.spawn(move || (lo..hi).map(|i| access_entry(cast, i).map(|v| v.to_compact_json())).collect())
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or_else(|_| Err("a signing thread panicked".into()))).collect()
    });
    let mut all = Vec::with_capacity(count);
    for part in parts {
        all.extend(part?);
    }
    Ok(all)
}

// ---------------------------------------------------------------------------------------------------
// Receipts

/// A request kept to check its receipts after the timed section.
struct Sample {
    entries: Vec<String>,
    response: Vec<u8>,
}

/// Checks an acknowledgement the way a gateway would: the checkpoint is signed by the ledger, each
/// leaf commits to the entry as submitted, and each inclusion proof leads to the checkpoint's root.
fn verify_receipts(verifier: &NoteVerifier, entries: &[String], response: &[u8]) -> Res<()> {
    let response: AppendResponse = serde_json::from_slice(response)?;
    let (checkpoint, _) = Checkpoint::open(&response.checkpoint, verifier)?;
    if response.entries.len() != entries.len() {
        return Err(format!("{} receipts for {} entries", response.entries.len(), entries.len()).into());
    }
    for (receipt, submitted) in response.entries.iter().zip(entries) {
        let leaf_bytes = data_encoding::BASE64.decode(receipt.leaf.as_bytes())?;
        let leaf = Leaf::parse(&leaf_bytes)?;
        let envelope = Envelope::from_json(submitted.as_bytes())?;
        let sig = envelope.signatures.first().ok_or("a submitted entry without a signature")?.sig;
        if !leaf.commits_to(canonical_envelope(&envelope.payload, &sig).as_bytes()) {
            return Err(format!("the leaf at {} does not commit to the entry submitted", receipt.index).into());
        }
        let proof = receipt.inclusion.iter().map(|h| Hash::from_base64(h)).collect::<Result<Vec<_>, _>>()?;
        verify_inclusion(&leaf_hash(&leaf_bytes), receipt.index, checkpoint.size, &proof, &checkpoint.root)?;
    }
    Ok(())
}

/// Verifies the kept samples; returns "k of n requests (e entries)" and clears `ok` on any failure.
fn check_samples(verifier: &NoteVerifier, samples: &[Sample], ok: &mut bool) -> String {
    let (mut good, mut entries) = (0usize, 0usize);
    for s in samples {
        match verify_receipts(verifier, &s.entries, &s.response) {
            Ok(()) => {
                good += 1;
                entries += s.entries.len();
            }
            Err(e) => {
                *ok = false;
                progress!("a receipt did not verify: {e}");
            }
        }
    }
    if good != samples.len() || samples.is_empty() {
        *ok = false;
    }
    format!("{good} of {} requests ({entries} entries)", samples.len())
}

// ---------------------------------------------------------------------------------------------------
// Throughput and latency over HTTP

struct Throughput {
    wall: Duration,
    acknowledged_requests: usize,
    acknowledged_entries: usize,
    latencies: Vec<Duration>,
    /// Problem code (or transport error) -> requests.
    failures: HashMap<String, usize>,
    samples: Vec<Sample>,
}

/// One request's fate: its number, its latency, and the status and body of the reply.
struct Sent {
    id: usize,
    latency: Duration,
    result: Res<(u16, Vec<u8>)>,
}

/// What went wrong with a request, short: the problem's code, or the transport error.
fn failure_kind(result: &Res<(u16, Vec<u8>)>) -> Option<String> {
    match result {
        Ok((200, _)) => None,
        Ok((status, body)) => {
            let code = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v.get("code").and_then(|c| c.as_str()).map(str::to_owned))
                .unwrap_or_default();
            Some(format!("{status} {code}"))
        }
        Err(e) => Some(format!("transport: {e}")),
    }
}

fn failures(map: &HashMap<String, usize>) -> String {
    if map.is_empty() {
        return "0".into();
    }
    let mut parts: Vec<_> = map.iter().map(|(k, n)| format!("{n} x {k}")).collect();
    parts.sort();
    parts.join("; ")
}

/// `clients` tasks take the next request body from a shared queue until all `entries` are sent, each
/// posting to one of `bases`.
async fn throughput(
    http: &reqwest::Client,
    bases: &[String],
    entries: &[String],
    batch: usize,
    clients: usize,
) -> Res<Throughput> {
    let requests: Vec<(usize, String)> = entries.chunks(batch).map(body_of).enumerate().collect();
    let request_count = requests.len();
    let queue = Arc::new(Mutex::new(requests.into_iter()));
    let start = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|client| {
            // Clients are spread evenly over the front ends.
            let base = bases[client % bases.len()].clone();
            let (queue, http) = (queue.clone(), http.clone());
            tokio::spawn(async move {
                let mut done = Vec::new();
                loop {
                    let next = match queue.lock() {
                        Ok(mut q) => q.next(),
                        Err(_) => None,
                    };
                    let Some((id, body)) = next else { break };
                    let sent = Instant::now();
                    let result = post(&http, &base, body).await;
                    done.push(Sent { id, latency: sent.elapsed(), result });
                }
                done
            })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(request_count);
    for w in workers {
        outcomes.extend(w.await?);
    }
    let wall = start.elapsed();
    let mut tp = Throughput {
        wall,
        acknowledged_requests: 0,
        acknowledged_entries: 0,
        latencies: Vec::with_capacity(outcomes.len()),
        failures: HashMap::new(),
        samples: Vec::new(),
    };
    for o in outcomes {
        let submitted = &entries[o.id * batch..((o.id + 1) * batch).min(entries.len())];
        match failure_kind(&o.result) {
            None => {
                tp.acknowledged_requests += 1;
                tp.acknowledged_entries += submitted.len();
                tp.latencies.push(o.latency);
                if o.id % SAMPLE_EVERY == 0
                    && let Ok((_, body)) = o.result
                {
                    tp.samples.push(Sample { entries: submitted.to_vec(), response: body });
                }
            }
            Some(kind) => *tp.failures.entry(kind).or_default() += 1,
        }
    }
    Ok(tp)
}

struct OpenLoop {
    sent: usize,
    schedule: Duration,
    latencies: Vec<Duration>,
    failures: HashMap<String, usize>,
    samples: Vec<Sample>,
}

/// One single-entry request per millisecond tick, each in its own task.
async fn open_loop(http: &reqwest::Client, base: &str, entries: Vec<String>) -> Res<OpenLoop> {
    let mut tick = tokio::time::interval(Duration::from_secs(1) / OFFERED_PER_SECOND as u32);
    // Late ticks fire at once to catch up, so the offered rate holds even if the client falls behind.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let sent = entries.len();
    let mut tasks = Vec::with_capacity(sent);
    let start = Instant::now();
    for (i, entry) in entries.into_iter().enumerate() {
        let body = body_of(std::slice::from_ref(&entry));
        let scheduled = tick.tick().await.into_std();
        let (http, base) = (http.clone(), base.to_owned());
        tasks.push(tokio::spawn(async move {
            let result = post(&http, &base, body).await;
            (i, entry, scheduled.elapsed(), result)
        }));
    }
    let schedule = start.elapsed();
    let mut ol =
        OpenLoop { sent, schedule, latencies: Vec::with_capacity(sent), failures: HashMap::new(), samples: Vec::new() };
    for t in tasks {
        let (i, entry, latency, result) = t.await?;
        match failure_kind(&result) {
            None => {
                ol.latencies.push(latency);
                if i % SAMPLE_EVERY == 0
                    && let Ok((_, body)) = result
                {
                    ol.samples.push(Sample { entries: vec![entry], response: body });
                }
            }
            Some(kind) => *ol.failures.entry(kind).or_default() += 1,
        }
    }
    Ok(ol)
}

// ---------------------------------------------------------------------------------------------------
// Each stage alone

/// Admits `entries` on `threads` threads: entries per second, and what was admitted, in order.
fn admission(
    shared: &custodia_ledger::Shared,
    entries: &[String],
    threads: usize,
    per_request: usize,
) -> Res<(f64, Vec<Admitted>)> {
    let at = now();
    let chunk = entries.len().div_ceil(threads.max(1)).max(1);
    let start = Instant::now();
    let parts: Vec<Result<Vec<Admitted>, String>> = std::thread::scope(|s| {
        let workers: Vec<_> = entries
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    let mut out = Vec::with_capacity(part.len());
                    for request in part.chunks(per_request) {
                        let raws: Vec<&[u8]> = request.iter().map(|e| e.as_bytes()).collect();
                        out.extend(admit_all(shared, &raws, at).map_err(|p| format!("{}: {}", p.code, p.detail))?);
                    }
                    Ok(out)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or_else(|_| Err("an admission thread panicked".into()))).collect()
    });
    let rate = entries.len() as f64 / start.elapsed().as_secs_f64();
    let mut admitted = Vec::with_capacity(entries.len());
    for part in parts {
        admitted.extend(part.map_err(|e| format!("admission refused an entry the ledger accepted: {e}"))?);
    }
    Ok((rate, admitted))
}

struct SequencerAlone {
    rate: f64,
    /// The sequencer thread's CPU time, in % of the run's wall time; the rest it waited (fsync, or for work).
    thread_cpu: f64,
    failed: usize,
}

/// Runs a sequencer over a fresh store, fed `admitted` by `clients` closed-loop clients of `batch`.
fn sequencer_alone(
    path: &Path,
    admitted: Vec<Admitted>,
    batch: usize,
    clients: usize,
    cores: usize,
) -> Res<SequencerAlone> {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(path)?);
    let origin = "bench.invalid/sequencer".to_owned();
    let signer = Arc::new(NoteSigner::new(&origin, &[7; 32])?);
    let (notices, _) = tokio::sync::broadcast::channel(4096);
    // The same batch cap and replay window `custodia_ledger::start` gives its sequencer.
    let options = SequencerOptions {
        max_batch: custodia_ledger::MAX_BATCH_ENTRIES,
        max_entry_age_seconds: default_limits().max_entry_age_seconds,
        replay_window_entries: custodia_ledger::REPLAY_WINDOW_ENTRIES,
    };
    let (sequencer, _latest) = Sequencer::start(store, signer, origin, notices, options)?;
    let (jobs, job_rx) = tokio::sync::mpsc::channel::<AppendJob>(16_384);
    let thread = std::thread::Builder::new().name("bench-sequencer".into()).spawn(move || sequencer.run(job_rx))?;
    let total = admitted.len();
    let mut requests = Vec::with_capacity(total.div_ceil(batch));
    let mut rest = admitted.into_iter();
    loop {
        let request: Vec<Admitted> = rest.by_ref().take(batch).collect();
        if request.is_empty() {
            break;
        }
        requests.push(request);
    }
    let queue = Arc::new(Mutex::new(requests.into_iter()));
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let before = cpu_snapshot();
    let start = Instant::now();
    let failed = runtime.block_on(async {
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let (queue, jobs) = (queue.clone(), jobs.clone());
                tokio::spawn(async move {
                    let mut failed = 0usize;
                    loop {
                        let next = queue.lock().ok().and_then(|mut q| q.next());
                        let Some(entries) = next else { break };
                        let (reply, receipt) = tokio::sync::oneshot::channel();
                        if jobs.send(AppendJob { entries, reply }).await.is_err() {
                            return failed + 1;
                        }
                        if !matches!(receipt.await, Ok(Ok(_))) {
                            failed += 1;
                        }
                    }
                    failed
                })
            })
            .collect();
        let mut failed = 0;
        for t in tasks {
            failed += t.await.unwrap_or(1);
        }
        failed
    });
    let elapsed = start.elapsed();
    let thread_cpu = before
        .zip(cpu_snapshot())
        .map_or(0.0, |(b, a)| thread_ticks(&b, &a, "bench-sequencer") as f64 / ticks_per_core(&b, &a, cores) * 100.0);
    drop(jobs);
    thread.join().map_err(|_| "the sequencer thread panicked")?;
    Ok(SequencerAlone { rate: total as f64 / elapsed.as_secs_f64(), thread_cpu, failed })
}

// ---------------------------------------------------------------------------------------------------
// Proofs and storage

struct BigStore {
    populate: Duration,
    /// Entries and time of the batches written after the store held 95% of its final size: the append
    /// rate at the size reached, not the average over a store that started empty.
    tail: (u64, Duration),
    inclusion: Vec<Duration>,
    consistency: Vec<Duration>,
    verify_inclusion: Vec<Duration>,
    verify_consistency: Vec<Duration>,
    /// Main database file plus WAL, after a truncating checkpoint.
    file_bytes: u64,
    /// The entries' own payload and signature bytes.
    payload_bytes: u64,
    /// Bytes per table and index, from SQLite's `dbstat`, largest first.
    breakdown: Vec<(String, u64)>,
}

fn proofs_and_storage(path: &Path, m: u64, samples: &[Verified<LedgerEntry>], ok: &mut bool) -> Res<BigStore> {
    let store = SqliteStore::open(path)?;
    // (payload, signature, tag, hash of the canonical envelope) of each real signed entry.
    let mut real = Vec::with_capacity(samples.len());
    for v in samples {
        let envelope = v.envelope();
        let sig = envelope.signatures.first().ok_or("a signed entry without a signature")?.sig;
        let hash = Digest::of(canonical_envelope(&envelope.payload, &sig).as_bytes());
        real.push((envelope.payload.clone(), sig, v.content.tag(), hash));
    }
    progress!("populating a store with {} entries directly through Store::append", thousands(m));
    let logged_base = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let mut frontier = Frontier::empty();
    let mut payload_bytes = 0u64;
    let mut next_report = 1u64;
    let start = Instant::now();
    // The batches that start at or after 95% of the final size (at least the last batch).
    let tail_from = (m - m / 20) / POPULATE_BATCH * POPULATE_BATCH;
    let mut tail: Option<(u64, Instant)> = None;
    let mut lo = 0u64;
    while lo < m {
        if tail.is_none() && lo >= tail_from {
            tail = Some((lo, Instant::now()));
        }
        let hi = (lo + POPULATE_BATCH).min(m);
        let old_size = frontier.size();
        let mut entries = Vec::with_capacity((hi - lo) as usize);
        let mut nodes = Vec::with_capacity(2 * (hi - lo) as usize + 64);
        for index in lo..hi {
            let (payload, sig, tag, base_hash) = &real[(index % real.len() as u64) as usize];
            // The stored bytes per row are realistic: a real signed access event's payload and signature,
            // its tag and leaf. Only the envelope hash is made unique (from the real one and the index),
            // as the leaves of distinct entries are.
            let mut unique = [0u8; 40];
            unique[..32].copy_from_slice(base_hash.as_bytes());
            unique[32..].copy_from_slice(&index.to_be_bytes());
            let envelope_hash = Digest::of(&unique);
            let leaf =
                Leaf { kind: EntryKind::Access, logged_at_ms: logged_base + index / 20, envelope_hash }.to_bytes();
            frontier.push_into(leaf_hash(&leaf), &mut nodes);
            payload_bytes += payload.len() as u64 + 64;
            entries.push(NewEntry {
                index,
                kind: EntryKind::Access,
                tag: *tag,
                leaf,
                envelope_hash,
                payload: payload.clone(),
                sig: *sig,
                effect: Effect::None,
            });
        }
        let batch =
            Batch { old_size, new_size: frontier.size(), new_root: frontier.root(), entries, nodes, checkpoint: None };
        store.append(&batch)?;
        lo = hi;
        if lo * 20 >= next_report * m {
            progress!(
                "  {:>3}%: {} entries, {:.0} s, {} entries/s so far",
                lo * 100 / m,
                thousands(lo),
                start.elapsed().as_secs_f64(),
                count(lo as f64 / start.elapsed().as_secs_f64())
            );
            while lo * 20 >= next_report * m {
                next_report += 1;
            }
        }
    }
    let populate = start.elapsed();
    let tail = tail.map_or((m, populate), |(first, at)| (m - first, at.elapsed()));
    let root = frontier.root();
    let tree = store.tree()?;
    if tree.size != m || tree.root != root {
        return Err(format!("the store holds {} entries with another root than the frontier's", tree.size).into());
    }

    progress!("checkpointing the WAL and measuring the files");
    let (file_bytes, breakdown) = storage(path)?;

    progress!("timing {PROOF_SAMPLES} inclusion and consistency proofs at {}", thousands(m));
    let reader = StoreHashes(&store);
    let mut rng = SplitMix(m ^ 0xc0ffee);
    let mut big = BigStore {
        populate,
        tail,
        inclusion: Vec::with_capacity(PROOF_SAMPLES),
        consistency: Vec::with_capacity(PROOF_SAMPLES),
        verify_inclusion: Vec::with_capacity(PROOF_SAMPLES),
        verify_consistency: Vec::with_capacity(PROOF_SAMPLES),
        file_bytes,
        payload_bytes,
        breakdown,
    };
    let mut bad = 0usize;
    for _ in 0..PROOF_SAMPLES {
        let index = rng.below(m);
        let t = Instant::now();
        let proof = inclusion_proof(index, m, &reader)?;
        big.inclusion.push(t.elapsed());
        let leaf = store.read_leaves(index, index + 1)?;
        let leaf = leaf_hash(leaf.first().ok_or("a leaf the store should hold is missing")?);
        let t = Instant::now();
        let verified = verify_inclusion(&leaf, index, m, &proof, &root);
        big.verify_inclusion.push(t.elapsed());
        bad += usize::from(verified.is_err());

        let old = 1 + rng.below(m - 1);
        let t = Instant::now();
        let proof = consistency_proof(old, m, &reader)?;
        big.consistency.push(t.elapsed());
        let old_root = custodia_log::tree::root_hash(old, &reader)?;
        let t = Instant::now();
        let verified = verify_consistency(old, m, &old_root, &root, &proof);
        big.verify_consistency.push(t.elapsed());
        bad += usize::from(verified.is_err());
    }
    if bad > 0 {
        *ok = false;
        progress!("{bad} proofs did not verify");
    }
    Ok(big)
}

/// Checkpoints the WAL into the main file, then returns main + WAL bytes, and bytes per table and
/// index if this SQLite has `dbstat`.
fn storage(path: &Path) -> Res<(u64, Vec<(String, u64)>)> {
    let conn = rusqlite::Connection::open(path)?;
    let (busy, _, _): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    if busy != 0 {
        progress!("the WAL checkpoint was blocked; the size includes what is left in the WAL");
    }
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let size = std::fs::metadata(path)?.len() + std::fs::metadata(&wal).map_or(0, |m| m.len());
    let breakdown = conn
        .prepare("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
                .map(|r| r.map(|(name, n)| (name, n.max(0) as u64)))
                .filter(|r| r.as_ref().map_or(true, |(_, n)| *n > 0))
                .collect::<Result<Vec<_>, _>>()
        })
        .unwrap_or_default();
    Ok((size, breakdown))
}

// ---------------------------------------------------------------------------------------------------
// CPU accounting (Linux /proc; elsewhere the row is left out)

/// Clock ticks: the whole machine's busy and idle time, this process's, and each live thread's.
struct CpuSnapshot {
    busy: u64,
    idle: u64,
    process: u64,
    threads: HashMap<u32, (String, u64)>,
}

/// `(comm, utime + stime)` from a `/proc/.../stat` line.
fn stat_ticks(stat: &str) -> Option<(String, u64)> {
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let mut fields = stat.get(close + 1..)?.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((stat.get(open + 1..close)?.to_owned(), user + system))
}

fn cpu_snapshot() -> Option<CpuSnapshot> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let all: Vec<u64> = stat.lines().next()?.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let field = |i: usize| all.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal; guest time is already counted in user.
    let busy = field(0) + field(1) + field(2) + field(5) + field(6) + field(7);
    let idle = field(3) + field(4);
    let process = stat_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)?.1;
    let mut threads = HashMap::new();
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else { continue };
        if let Some(ticks) = std::fs::read_to_string(task.path().join("stat")).ok().and_then(|s| stat_ticks(&s)) {
            threads.insert(tid, ticks);
        }
    }
    Some(CpuSnapshot { busy, idle, process, threads })
}

/// Where the machine's CPU went between two snapshots, in % of one core: the sequencer thread, the
/// bench's client runtime, the rest of this process (the ledger's runtime: HTTP, JSON, admission),
/// other processes, idle.
fn cpu_use(before: &CpuSnapshot, after: &CpuSnapshot, cores: usize) -> String {
    let pct = |ticks: u64| ticks as f64 * 100.0 / ticks_per_core(before, after, cores);
    let sequencer = thread_ticks(before, after, "custodia-seq");
    let client = thread_ticks(before, after, "bench-client");
    let process = after.process.saturating_sub(before.process);
    let busy = after.busy.saturating_sub(before.busy);
    format!(
        "ledger runtime (HTTP, admission) {:.0}%, sequencer thread {:.0}%, bench clients {:.0}%, other processes {:.0}%, idle {:.0}%",
        pct(process.saturating_sub(sequencer + client)),
        pct(sequencer),
        pct(client),
        pct(busy.saturating_sub(process)),
        pct(after.idle.saturating_sub(before.idle))
    )
}

/// Ticks one core had between two snapshots (the machine's ticks over the core count).
fn ticks_per_core(before: &CpuSnapshot, after: &CpuSnapshot, cores: usize) -> f64 {
    (after.busy + after.idle).saturating_sub(before.busy + before.idle).max(1) as f64 / cores.max(1) as f64
}

/// CPU ticks spent between two snapshots by this process's threads whose name starts with `prefix`.
fn thread_ticks(before: &CpuSnapshot, after: &CpuSnapshot, prefix: &str) -> u64 {
    after
        .threads
        .iter()
        .filter(|(_, (comm, _))| comm.starts_with(prefix))
        .map(|(tid, (_, t))| t.saturating_sub(before.threads.get(tid).map_or(0, |b| b.1)))
        .sum()
}

// ---------------------------------------------------------------------------------------------------
// Small helpers

/// SplitMix64: a reproducible stream of random-looking numbers, no dependency needed.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Roughly uniform in `0..n` (the bias is below 2^-40 for the sizes used here).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn latency_rows(latencies: &[Duration]) -> [(&'static str, Duration); 3] {
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    [
        ("p50", percentile(&sorted, 0.50)),
        ("p99", percentile(&sorted, 0.99)),
        ("max", sorted.last().copied().unwrap_or_default()),
    ]
}

fn mean_p99(samples: &[Duration]) -> (Duration, Duration) {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let mean = samples.iter().sum::<Duration>() / u32::try_from(samples.len().max(1)).unwrap_or(u32::MAX);
    (mean, percentile(&sorted, 0.99))
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn count(per_second: f64) -> String {
    if per_second >= 100.0 { thousands(per_second.round() as u64) } else { format!("{per_second:.1}") }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn us(d: Duration) -> String {
    format!("{:.1} us", d.as_secs_f64() * 1e6)
}

fn bytes(n: u64) -> String {
    let mib = n as f64 / (1024.0 * 1024.0);
    if mib >= 1024.0 { format!("{:.2} GiB", mib / 1024.0) } else { format!("{mib:.1} MiB") }
}

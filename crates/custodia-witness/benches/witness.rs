//! How many `add-checkpoint` requests one witness serves, over HTTP on loopback with its real SQLite
//! file, beside the ceilings measured in the same run: Ed25519 verify and sign (each request costs one
//! of each) and a durable SQLite update (each request that moves a log costs one fsync'd commit).
//!
//! 1. One log growing by one entry per request, one client (every request verifies a proof and commits).
//! 2. L logs growing at once, one client each (the commits of different logs queue on one database).
//! 3. One log sent the checkpoint it already cosigned (verify and cosign, nothing written).
//!
//! ```text
//! cargo bench -p custodia-witness --bench witness -- [--requests N] [--logs L] [--quick]
//! ```
//! Under `cargo test --benches` (no `--bench`) it runs tiny sizes, unoptimised, and says so.

use std::collections::HashMap;
use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use custodia_log::checkpoint::Checkpoint;
use custodia_log::proof::consistency_proof;
use custodia_log::witness::AddCheckpoint;
use custodia_log::{Frontier, Hash, HashReader, NodeId, NoteSigner, leaf_hash};
use custodia_witness::WitnessDir;

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

struct Args {
    requests: usize,
    logs: usize,
    test_mode: bool,
    quick: bool,
}

fn parse_args() -> Result<Args, String> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let test_mode = !raw.iter().any(|a| a == "--bench");
    let quick = test_mode || raw.iter().any(|a| a == "--quick");
    let mut args = Args { requests: if quick { 200 } else { 5_000 }, logs: 16, test_mode, quick };
    let mut it = raw.into_iter();
    while let Some(flag) = it.next() {
        let mut number = |flag: &str| -> Result<usize, String> {
            it.next().and_then(|v| v.parse().ok()).ok_or_else(|| format!("{flag} needs a number"))
        };
        match flag.as_str() {
            "--requests" => args.requests = number(&flag)?,
            "--logs" => args.logs = number(&flag)?.max(1),
            _ => {}
        }
    }
    Ok(args)
}

/// A log whose every step `i -> i + 1` is a ready request body.
struct Log {
    bodies: Vec<String>,
    last: String,
    key: custodia_log::NoteVerifier,
}

struct Nodes(HashMap<NodeId, Hash>);

impl HashReader for Nodes {
    type Error = NodeId;
    fn read_hashes(&self, ids: &[NodeId]) -> Result<Vec<Hash>, NodeId> {
        ids.iter().map(|id| self.0.get(id).copied().ok_or(*id)).collect()
    }
}

impl Log {
    fn new(origin: &str, steps: usize) -> Res<Self> {
        let signer = NoteSigner::new(origin, &rand_seed())?;
        let mut frontier = Frontier::empty();
        let mut nodes = Nodes(HashMap::new());
        let mut notes = vec![];
        for i in 0..=steps {
            nodes.0.extend(frontier.push(leaf_hash(format!("{origin} {i}").as_bytes())));
            let checkpoint =
                Checkpoint { origin: origin.into(), size: i as u64 + 1, root: frontier.root(), extensions: vec![] };
            notes.push(checkpoint.sign(&signer));
        }
        let mut bodies = Vec::with_capacity(steps);
        bodies.push(AddCheckpoint::body(0, &[], &notes[0]));
        for (i, note) in notes.iter().enumerate().take(steps).skip(1) {
            let proof = consistency_proof(i as u64, i as u64 + 1, &nodes).map_err(|e| format!("{e:?}"))?;
            bodies.push(AddCheckpoint::body(i as u64, &proof, note));
        }
        // The checkpoint of the last step again, from the size it moved the witness to.
        let last = AddCheckpoint::body(steps as u64, &[], &notes[steps - 1]);
        Ok(Log { bodies, last, key: signer.verifier() })
    }
}

fn rand_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).unwrap_or(());
    seed
}

/// Posts `bodies` in order from one client; returns each request's latency.
async fn post_all(http: &reqwest::Client, url: &str, bodies: &[String]) -> Res<Vec<Duration>> {
    let mut latencies = Vec::with_capacity(bodies.len());
    for body in bodies {
        let sent = Instant::now();
        let answer = http.post(url).body(body.clone()).send().await?;
        let status = answer.status();
        let text = answer.text().await?;
        if !status.is_success() {
            return Err(format!("the witness answered {status}: {text}").into());
        }
        latencies.push(sent.elapsed());
    }
    Ok(latencies)
}

/// Each list of bodies posted in order by its own client, all clients at once; every latency.
async fn post_side_by_side(
    http: &reqwest::Client,
    url: &str,
    lists: impl Iterator<Item = Vec<String>>,
) -> Res<Vec<Duration>> {
    let tasks: Vec<_> = lists
        .map(|bodies| {
            let (http, url) = (http.clone(), url.to_owned());
            tokio::spawn(async move { post_all(&http, &url, &bodies).await })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(all)
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted.get(((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1))).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Ed25519 verifications and signatures per second on one core, and fsync'd single-row SQLite updates.
fn ceilings(dir: &std::path::Path, quick: bool) -> Res<(f64, f64, f64)> {
    use ed25519_dalek::{Signer, SigningKey};
    let key = SigningKey::from_bytes(&[7; 32]);
    let message = [0x42u8; 150];
    let signature = key.sign(&message);
    let n = if quick { 200 } else { 5_000 };
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(key.verifying_key().verify_strict(&message, &signature).is_ok());
    }
    let verify = n as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(key.sign(&message));
    }
    let sign = n as f64 / started.elapsed().as_secs_f64();
    let conn = rusqlite::Connection::open(dir.join("ceiling.sqlite"))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER); INSERT INTO t VALUES (1, 0);")?;
    let commits = if quick { 50 } else { 1_000 };
    let started = Instant::now();
    for i in 0..commits {
        conn.execute("UPDATE t SET v = ?1 WHERE k = 1", [i])?;
    }
    let commit = f64::from(commits) / started.elapsed().as_secs_f64();
    Ok((verify, sign, commit))
}

fn main() -> Res<()> {
    let args = parse_args()?;
    let scratch = tempfile::tempdir()?;
    println!("# Custodia witness bench\n");
    if args.test_mode {
        println!("**Test-mode run** (`cargo test`: tiny sizes, unoptimised build): the figures are not meaningful.\n");
    } else if args.quick {
        println!("**Quick run**: small sizes, a smoke test rather than a measurement.\n");
    }
    let (verify, sign, commit) = ceilings(scratch.path(), args.quick)?;
    println!(
        "Ceilings measured in this run: Ed25519 verify {verify:.0}/s and sign {sign:.0}/s on one core; a durable SQLite update (WAL, synchronous = FULL) {commit:.0}/s.\n"
    );

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let dir = Arc::new(WitnessDir::init(&scratch.path().join("witness"), Some("bench.witness/w1"))?);
    eprintln!("[witness bench] signing {} checkpoints for {} logs", args.requests, args.logs + 1);
    let one = Log::new("bench.log/one", args.requests)?;
    let per_log = (args.requests / args.logs).max(2);
    let many = (0..args.logs).map(|i| Log::new(&format!("bench.log/{i}"), per_log)).collect::<Res<Vec<_>>>()?;
    for log in std::iter::once(&one).chain(&many) {
        dir.add_log(log.key.name(), &log.key)?;
    }
    let running = runtime.block_on(custodia_witness::start(dir.clone(), "127.0.0.1:0".parse()?, None))?;
    let url = format!("{}/add-checkpoint", running.url);
    let http = custodia_net::Trust::global()?.async_client().http1_only().tcp_nodelay(true).build()?;

    println!("| run | requests | requests per second | p50 | p99 |");
    println!("|---|---:|---:|---:|---:|");
    let row = |name: &str, latencies: &mut Vec<Duration>, wall: Duration| {
        latencies.sort();
        println!(
            "| {name} | {} | **{:.0}** | {} | {} |",
            latencies.len(),
            latencies.len() as f64 / wall.as_secs_f64(),
            ms(quantile(latencies, 0.5)),
            ms(quantile(latencies, 0.99))
        );
    };

    let started = Instant::now();
    let mut latencies = runtime.block_on(post_all(&http, &url, &one.bodies))?;
    row("one log, one client, each request moves it (proof + commit)", &mut latencies, started.elapsed());

    let started = Instant::now();
    let mut latencies = runtime.block_on(post_side_by_side(&http, &url, many.iter().map(|l| l.bodies.clone())))?;
    row(&format!("{} logs, a client each, each request moves its log", args.logs), &mut latencies, started.elapsed());

    let repeats = vec![one.last.clone(); args.requests];
    let started = Instant::now();
    let chunks = repeats.chunks(repeats.len().div_ceil(8)).map(<[String]>::to_vec);
    let mut latencies = runtime.block_on(post_side_by_side(&http, &url, chunks))?;
    row("the same checkpoint again, 8 clients (verify and cosign only)", &mut latencies, started.elapsed());
    println!("\nGoal: >= 1,000 add-checkpoint requests per second from one witness.");
    runtime.block_on(running.shutdown())?;
    Ok(())
}

//! The gateway's performance goals, each beside a ceiling measured in the same run.
//!
//! 1. Ceilings: Ed25519 verifications per second on one core (every read costs one), and the same records
//!    served over HTTP with no checks at all (`unchecked_router`), by the same load generator.
//! 2. Authorised reads per second through the gateway, spread over `--grants` active grants (100,000):
//!    signature, nonce, grant (verified once), ledger state (asked once per grant, then kept current by
//!    the ledger's grant-change feed), scope and label filter, and the access event, with the read count
//!    and the nonce, made durable in the outbox before the answer. First the first read of every grant
//!    (each asks the ledger for the grant's proven state), then reads of grants already known. Requests
//!    are signed before the clock starts, so the figure is the gateway's, not the load generator's. Then
//!    how many access events the outbox posted while the reads ran, and how long the rest took.
//! 3. Revocation to refusal, with all those grants active: the patient posts a revocation; reads go on
//!    every 5 ms until refused.
//! 4. The emergency-room flow, scan to first record: the patient's wallet reads the QR image, checks the
//!    request against the ledger, approves (grant signed, posted, sent); the ER's wallet collects it and
//!    reads the first record through the gateway.
//!
//! ```text
//! cargo bench -p custodia-gateway --bench gateway -- [--seconds S] [--clients C] [--rounds R] [--grants G]
//! ```
//! Under `cargo test --benches` (no `--bench` argument) it runs tiny sizes to show it works, and says so.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A benchmark: a panic is the failure report.

#[path = "support/network.rs"]
mod setup;

use std::sync::Arc;
use std::time::{Duration, Instant};

use custodia_core::entry::{EntryNonce, statement_digest};
use custodia_core::grant::VerifiedGrant;
use custodia_core::purpose::PurposeOfUse;
use custodia_core::qr::{self, QrPayload};
use custodia_core::{Identity, MasterSeed, reqsig};
use custodia_gateway::dataset::Dataset;
use custodia_gateway::records::Records;
use custodia_wallet::fhir_client::GatewayClient;
use custodia_wallet::wallet::AnswerReceived;
use setup::{Network, now};

struct Args {
    seconds: f64,
    clients: usize,
    rounds: usize,
    grants: usize,
    test_mode: bool,
}

fn args() -> Args {
    let line = setup::CommandLine::read();
    let test_mode = line.test_mode();
    Args {
        seconds: line.value("--seconds").unwrap_or(if test_mode { 0.3 } else { 5.0 }),
        clients: line.value("--clients").map_or(32, |c: f64| c as usize),
        rounds: line.value("--rounds").map_or(if test_mode { 1 } else { 7 }, |r: f64| r as usize),
        grants: line.value("--grants").map_or(if test_mode { 200 } else { 100_000 }, |g: f64| g as usize),
        test_mode,
    }
}

/// One request, ready to send: URL and headers.
struct Prepared {
    url: String,
    headers: Vec<(&'static str, String)>,
}

fn signed(url: &str, grant: &VerifiedGrant, reader: &Identity) -> Prepared {
    let binding = statement_digest(grant.envelope());
    let grant_header = data_encoding::BASE64URL_NOPAD.encode(grant.to_compact_json().as_bytes());
    let signature = reqsig::sign_bound(reader, "GET", url, &binding, now(), &EntryNonce::generate());
    Prepared { url: url.to_owned(), headers: vec![("custodia-grant", grant_header), ("custodia-signature", signature)] }
}

/// Sends `requests` with `clients` concurrent keep-alive connections; returns (answered 200, other, seconds).
fn load(requests: Vec<Prepared>, clients: usize) -> (usize, usize, f64) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        // HTTP/1.1 both ways, so HTTPS is set beside plain HTTP and not beside HTTP/2's multiplexing.
        let http = custodia_net::Trust::global()
            .unwrap()
            .async_client()
            .http1_only()
            .pool_max_idle_per_host(clients)
            .build()
            .unwrap();
        let queue = Arc::new(std::sync::Mutex::new(requests));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (http, queue) = (http.clone(), queue.clone());
            tasks.push(tokio::spawn(async move {
                let (mut ok, mut other) = (0usize, 0usize);
                loop {
                    let Some(p) = queue.lock().unwrap().pop() else { break };
                    let mut req = http.get(&p.url);
                    for (k, v) in &p.headers {
                        req = req.header(*k, v);
                    }
                    match req.send().await {
                        Ok(r) if r.status() == 200 => {
                            let _ = r.bytes().await;
                            ok += 1;
                        }
                        _ => other += 1,
                    }
                }
                (ok, other)
            }));
        }
        let (mut ok, mut other) = (0, 0);
        for t in tasks {
            let (o, x) = t.await.unwrap();
            ok += o;
            other += x;
        }
        (ok, other, started.elapsed().as_secs_f64())
    })
}

fn ed25519_verifications_per_second(seconds: f64) -> f64 {
    let id = Identity::from_seed(&MasterSeed::generate());
    let message = b"custodia-gateway-request/v1 a typical request's signing input";
    let sig = id.sign(message);
    let key = id.signing_public();
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed().as_secs_f64() < seconds {
        for _ in 0..100 {
            assert!(key.verify(std::hint::black_box(message), &sig));
        }
        n += 100;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn median_max(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[v.len() - 1])
}

fn main() {
    let args = args();
    println!("# Custodia gateway bench\n");
    if args.test_mode {
        println!("**Test-mode run** (`cargo test`: tiny sizes, unoptimised): the figures are not meaningful; run");
        println!("`cargo bench -p custodia-gateway --bench gateway` for them.\n");
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "Machine: {cores} cores. Load: {} concurrent keep-alive clients on loopback, {} s per run.\n",
        args.clients, args.seconds
    );

    // A throwaway CA for the HTTPS gateway, trusted by every client of this process.
    let pki = tempfile::tempdir().unwrap();
    let ca = custodia_net::test_ca::TestCa::new("Bench CA");
    custodia_net::Trust::configure(Some(&ca.write_ca(pki.path()))).unwrap();
    let tls_files = ca.write_server(pki.path(), "gateway", &["127.0.0.1"], custodia_net::test_ca::Validity::Current);

    let mut net = Network::start();
    let records = Records::Local(Arc::new(Dataset::synthetic()));
    let gateway = net.start_gateway(records.clone(), "bench");
    let tls_gateway = net.start_gateway_with_tls(
        records.clone(),
        "bench-tls",
        Some(custodia_net::ServerTls::new(&tls_files).unwrap()),
    );
    let baseline = {
        let listener = net.rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = custodia_gateway::unchecked_router(records);
        net.rt.spawn(async move { axum::serve(listener, app).await });
        url
    };
    let grant = net.grant(&["patient/AllergyIntolerance.rs", "patient/Observation.rs?category=laboratory"], 86_400);
    let read_path = "/fhir/AllergyIntolerance/p1-allergy-1";
    let search_path = "/fhir/Observation?patient=p1&category=laboratory";

    // 1. Ceilings.
    eprintln!("[gateway bench] ceilings");
    let verify_rate = ed25519_verifications_per_second(if args.test_mode { 0.05 } else { 1.0 });
    let guess = (args.seconds * 30_000.0) as usize;
    let plain =
        |path: &str| (0..guess).map(|_| Prepared { url: format!("{baseline}{path}"), headers: vec![] }).collect();
    let (b_ok, b_other, b_secs) = load(plain(read_path), args.clients);
    let baseline_read = b_ok as f64 / b_secs;
    let (bs_ok, _, bs_secs) = load(plain(search_path), args.clients);
    let baseline_search = bs_ok as f64 / bs_secs;

    // 2. Authorised reads over many active grants: first each grant's first read, then as many signed
    // requests as the baseline served in the same time, spread over the grants, signed first.
    eprintln!("[gateway bench] posting {} grants", args.grants);
    let posting = Instant::now();
    let active = net.bulk_grants(args.grants, &["patient/AllergyIntolerance.rs"]);
    let posted_grants_secs = posting.elapsed().as_secs_f64();
    let clinician = net.clinician.service_identity();
    let spread = |n: usize| -> Vec<Prepared> {
        (0..n).map(|i| signed(&format!("{}{read_path}", gateway.url), &active[i % active.len()], &clinician)).collect()
    };
    eprintln!("[gateway bench] first read of every grant");
    let lookups = custodia_gateway::ops::STATE_LOOKUPS.get();
    let (mut f_ok, mut f_other, mut f_secs) = (0, 0, 0.0);
    // In slices signed just before they are sent: the whole would outlast a signature's minute.
    for slice in active.chunks(10_000) {
        let requests = slice.iter().map(|g| signed(&format!("{}{read_path}", gateway.url), g, &clinician)).collect();
        let (ok, other, secs) = load(requests, args.clients);
        (f_ok, f_other, f_secs) = (f_ok + ok, f_other + other, f_secs + secs);
    }
    let first_reads = f_ok as f64 / f_secs;
    let first_lookups = custodia_gateway::ops::STATE_LOOKUPS.get() - lookups;
    eprintln!("[gateway bench] signing requests");
    // At most what the gateway answers well within a signature's minute, at a few thousand a second.
    let want = ((baseline_read * args.seconds) as usize).clamp(200, 150_000);
    let reads = spread(want);
    let prepare = |path: &str, n: usize| -> Vec<Prepared> {
        (0..n).map(|_| signed(&format!("{}{path}", gateway.url), &grant, &clinician)).collect()
    };
    eprintln!("[gateway bench] authorised reads");
    let stats = &gateway.shared.outbox.stats;
    let relaxed = std::sync::atomic::Ordering::Relaxed;
    let (journaled_before, posted_before) = (stats.journaled.load(relaxed), stats.posted.load(relaxed));
    let lookups = custodia_gateway::ops::STATE_LOOKUPS.get();
    let (g_ok, g_other, g_secs) = load(reads, args.clients);
    let gateway_read = g_ok as f64 / g_secs;
    let steady_lookups = custodia_gateway::ops::STATE_LOOKUPS.get() - lookups;
    let journaled_during = stats.journaled.load(relaxed) - journaled_before;
    let posted_while_reading = stats.posted.load(relaxed).saturating_sub(posted_before);
    eprintln!("[gateway bench] authorised reads over HTTPS");
    let tls_reads: Vec<Prepared> =
        (0..want).map(|_| signed(&format!("{}{read_path}", tls_gateway.url), &grant, &clinician)).collect();
    let (t_ok, t_other, t_secs) = load(tls_reads, args.clients);
    let tls_read = t_ok as f64 / t_secs;
    let searches = prepare(search_path, ((baseline_search * args.seconds) as usize).clamp(200, 200_000));
    let (gs_ok, gs_other, gs_secs) = load(searches, args.clients);
    let gateway_search = gs_ok as f64 / gs_secs;
    let posted_during = stats.posted.load(relaxed);
    let drain_started = Instant::now();
    while gateway.shared.outbox.pending() > 0 && drain_started.elapsed() < Duration::from_secs(600) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let drained = drain_started.elapsed().as_secs_f64();
    let posted = stats.posted.load(relaxed);
    let total_secs = g_secs + gs_secs + drained;

    println!("| what | figure | beside |");
    println!("|---|---|---|");
    println!("| Ed25519 verifications, 1 core | {verify_rate:.0}/s | (each read costs one) |");
    println!("| unchecked reads by id | {baseline_read:.0}/s | ({b_ok} answered, {b_other} failed) |");
    println!("| unchecked searches (5 lab results) | {baseline_search:.0}/s | |");
    println!("| {} active grants posted (batches of 256) | {posted_grants_secs:.1} s | |", active.len());
    println!(
        "| first read of each grant (its state asked of the ledger, with proof) | {first_reads:.0}/s | {first_lookups} ledger lookups for {f_ok} reads ({f_other} other) |"
    );
    println!(
        "| **authorised reads by id, over {} known grants** | **{gateway_read:.0}/s** | {:.0}% of unchecked; goal ≥ 10,000/s; {steady_lookups} ledger lookups while the feed was current ({g_ok} allowed, {g_other} other) |",
        active.len(),
        100.0 * gateway_read / baseline_read
    );
    println!(
        "| access events posted while those reads ran | {:.0}% | {posted_while_reading} of {journaled_during} journaled; goal ≥ 95% |",
        100.0 * posted_while_reading as f64 / journaled_during.max(1) as f64
    );
    println!(
        "| authorised reads by id over HTTPS (TLS 1.3, ECDSA P-256) | {tls_read:.0}/s | {:.0}% of the same over plain HTTP, measured beside it ({t_ok} allowed, {t_other} other) |",
        100.0 * tls_read / gateway_read
    );
    println!(
        "| authorised searches | {gateway_search:.0}/s | {:.0}% of unchecked ({gs_ok} allowed, {gs_other} other) |",
        100.0 * gateway_search / baseline_search
    );
    println!(
        "| access events posted to the ledger | {posted} | {posted_during} while reads ran; the rest in {drained:.2} s after the last answer, at {:.0}/s with the machine otherwise idle ({:.0}/s over the whole run) |",
        (posted - posted_during) as f64 / drained.max(1e-9),
        posted as f64 / total_secs
    );

    // 3. Revocation to refusal.
    eprintln!("[gateway bench] revocation to refusal");
    let client = GatewayClient::new(&gateway.url).unwrap();
    let mut revocations = Vec::new();
    for _ in 0..args.rounds {
        let g = net.grant(&["patient/AllergyIntolerance.rs"], 3600);
        let first = client.get(read_path, &g, &clinician, None, None, now()).unwrap();
        assert_eq!(first.status, 200, "{}", first.body);
        net.patient.revoke_grant(g.id, now(), "bench").unwrap();
        net.patient.post_revocation(g.id, now()).unwrap();
        let revoked_at = Instant::now();
        loop {
            let r = client.get(read_path, &g, &clinician, None, None, now()).unwrap();
            if r.status == 403 {
                break;
            }
            assert!(revoked_at.elapsed() < Duration::from_secs(10), "never refused");
            std::thread::sleep(Duration::from_millis(5));
        }
        revocations.push(revoked_at.elapsed().as_secs_f64() * 1000.0);
    }
    let (rev_median, rev_max) = median_max(revocations);
    println!(
        "| revocation acknowledged → first refusal | median {rev_median:.0} ms, max {rev_max:.0} ms | goal ≤ 1,000 ms; pushed by the ledger's feed, {} grants active, {} changes applied ({} rounds) |",
        active.len() + args.rounds,
        gateway.shared.feed.changes.load(relaxed),
        args.rounds
    );

    // 4. The ER flow, scan to first record.
    eprintln!("[gateway bench] emergency-room flow");
    let mut flows = Vec::new();
    let mut parts = (Vec::new(), Vec::new(), Vec::new());
    let er = net.er.service_identity();
    for _ in 0..args.rounds {
        let scopes = vec!["patient/AllergyIntolerance.rs".parse().unwrap(), "patient/Condition.rs".parse().unwrap()];
        let request = net
            .er
            .create_access_request(&net.ledger_url, scopes, PurposeOfUse::EMERGENCY_TREATMENT, 43_200, now())
            .unwrap();
        let png = qr::render_png(&QrPayload::AccessRequest(request).encode()).unwrap();
        let started = Instant::now();
        let text = qr::decode_image(&png).unwrap();
        let QrPayload::AccessRequest(scanned) = QrPayload::decode(&text).unwrap() else { panic!("not a request") };
        let checked = net.patient.check_access_request(&scanned, now()).unwrap();
        let shown = started.elapsed();
        let asked = (checked.request.scopes.clone(), checked.request.duration_seconds);
        net.patient.answer_access_request(&checked, Some(asked), now()).unwrap();
        let approved = started.elapsed();
        let grant = loop {
            if let Some(AnswerReceived::Approved { grant, .. }) = net.er.collect_answers(now()).unwrap().pop() {
                break grant;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let record = client.get(read_path, &grant, &er, None, None, now()).unwrap();
        assert_eq!(record.status, 200, "{}", record.body);
        flows.push(started.elapsed().as_secs_f64() * 1000.0);
        parts.0.push(shown.as_secs_f64() * 1000.0);
        parts.1.push((approved - shown).as_secs_f64() * 1000.0);
        parts.2.push((started.elapsed() - approved).as_secs_f64() * 1000.0);
    }
    let (flow_median, flow_max) = median_max(flows);
    println!(
        "| **ER flow, scan → first record** | **median {flow_median:.0} ms, max {flow_max:.0} ms** | goal ≤ 1,000 ms; of which scan and verify {:.0} ms, approve and post {:.0} ms, collect and read {:.0} ms (medians, {} rounds) |",
        median_max(parts.0).0,
        median_max(parts.1).0,
        median_max(parts.2).0,
        args.rounds
    );
    net.rt.block_on(gateway.shutdown()).unwrap();
}

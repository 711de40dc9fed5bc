//! Shared by the Criterion benches: records what each benchmark measured and prints a summary where
//! every figure stands beside the ceilings measured in the same run (raw Ed25519 sign and verify), so a
//! figure reads as a ratio that holds on a noisy machine.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use criterion::{Bencher, Criterion};
use custodia_core::{Identity, MasterSeed};

const RAW_SIGN: &str = "raw ed25519 sign";
const RAW_VERIFY: &str = "raw ed25519 verify";

thread_local! {
    static SAMPLES: RefCell<Vec<(String, u64, Duration)>> = const { RefCell::new(Vec::new()) };
}

/// Like `Bencher::iter`, but remembers the iterations and time Criterion asked for.
pub fn iter<O>(b: &mut Bencher<'_>, name: &str, mut f: impl FnMut() -> O) {
    b.iter_custom(|iters| {
        let start = Instant::now();
        for _ in 0..iters {
            std::hint::black_box(f());
        }
        let elapsed = start.elapsed();
        SAMPLES.with(|s| s.borrow_mut().push((name.to_owned(), iters, elapsed)));
        elapsed
    });
}

/// Benchmarks the ceilings every figure is compared with: raw Ed25519 sign and verify of 300 bytes.
pub fn bench_ceilings(c: &mut Criterion) {
    let id = Identity::from_seed(&MasterSeed::from_bytes([1; 32]));
    let key = id.signing_public();
    let message = [0x42u8; 300];
    let signature = id.sign(&message);
    c.bench_function(RAW_SIGN, |b| iter(b, RAW_SIGN, || id.sign(&message)));
    c.bench_function(RAW_VERIFY, |b| iter(b, RAW_VERIFY, || key.verify(&message, &signature)));
}

/// Mean time per operation of everything recorded under `name`.
fn mean(name: &str) -> Option<Duration> {
    SAMPLES.with(|s| {
        let (iters, time) = s
            .borrow()
            .iter()
            .filter(|(n, _, _)| n == name)
            .fold((0u64, Duration::ZERO), |(i, t), (_, di, dt)| (i + di, t + *dt));
        (iters > 0).then(|| time / u32::try_from(iters).unwrap_or(u32::MAX).max(1))
    })
}

/// Prints the ceilings, then `name: time/op (ops/s) | goal | cost in raw signs and verifies` for each
/// `(name, goal)` row.
pub fn summary(rows: &[(&str, &str)]) {
    let sign = mean(RAW_SIGN);
    let verify = mean(RAW_VERIFY);
    // `cargo bench` passes --bench; without it (cargo test --benches) Criterion runs each benchmark once.
    if !std::env::args().any(|a| a == "--bench") {
        println!("\n(test mode: each benchmark ran once, unoptimised; no figures to report)");
        return;
    }
    println!("\nSummary (means over every Criterion sample; ceilings measured in this run):");
    let rate = |d: Duration| 1.0 / d.as_secs_f64();
    let ceilings = [(RAW_SIGN, ""), (RAW_VERIFY, "")];
    for (name, goal) in ceilings.iter().chain(rows) {
        let Some(d) = mean(name) else { continue };
        let mut line = format!("  {name:<34} {:>10.2} us/op {:>12.0} op/s", d.as_secs_f64() * 1e6, rate(d));
        if !goal.is_empty() {
            line.push_str(&format!("  goal {goal}"));
        }
        if let (Some(s), Some(v)) = (sign, verify) {
            let (ds, ss, vs) = (d.as_secs_f64(), s.as_secs_f64(), v.as_secs_f64());
            line.push_str(&format!("  | costs {:.2} raw signs, {:.2} raw verifies", ds / ss, ds / vs));
        }
        println!("{line}");
    }
}

//! Runs every `cargo fuzz` target (in `fuzz/`) for a bounded time on the nightly toolchain.

use std::process::Command;

use anyhow::{Context, Result};

use crate::sh;

pub fn run_all(seconds: u32) -> Result<()> {
    sh::ensure_cargo_tool("cargo-fuzz", "fuzz")?;
    let listed =
        Command::new("cargo").args(["+nightly", "fuzz", "list"]).output().context("cannot list fuzz targets")?;
    let targets = String::from_utf8_lossy(&listed.stdout).lines().map(str::to_owned).collect::<Vec<_>>();
    anyhow::ensure!(!targets.is_empty(), "no fuzz targets found (cargo +nightly fuzz list printed nothing)");
    // One build for every target, then a target per core at a time, each for the full time.
    sh::run("cargo", &["+nightly", "fuzz", "build"])?;
    let queue = std::sync::Mutex::new(targets.iter());
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(targets.len());
    std::thread::scope(|scope| {
        let runs: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    loop {
                        let Some(target) = queue.lock().map_err(|_| anyhow::anyhow!("a fuzz worker failed"))?.next()
                        else {
                            return Ok(());
                        };
                        // -max_total_time bounds each run; the seed corpus is whatever earlier runs left in
                        // fuzz/corpus.
                        let time = format!("-max_total_time={seconds}");
                        sh::run("cargo", &["+nightly", "fuzz", "run", target, "--", &time, "-max_len=8192"])?;
                    }
                })
            })
            .collect();
        runs.into_iter().try_for_each(|run| run.join().map_err(|_| anyhow::anyhow!("a fuzz worker panicked"))?)
    })?;
    println!("fuzzed {} targets for {seconds}s each: {}", targets.len(), targets.join(", "));
    Ok(())
}

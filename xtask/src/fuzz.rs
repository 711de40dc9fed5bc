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
    for target in &targets {
        // -max_total_time bounds each run; the seed corpus is whatever earlier runs left in fuzz/corpus.
        sh::run(
            "cargo",
            &["+nightly", "fuzz", "run", target, "--", &format!("-max_total_time={seconds}"), "-max_len=8192"],
        )?;
    }
    println!("fuzzed {} targets for {seconds}s each: {}", targets.len(), targets.join(", "));
    Ok(())
}

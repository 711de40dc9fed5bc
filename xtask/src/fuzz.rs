//! Runs every `cargo fuzz` target (in `fuzz/`) for a bounded time on the nightly toolchain.

use std::path::Path;
use std::process::Command;
use std::thread::JoinHandle;

use anyhow::{Context, Result, bail};

use crate::sh;

pub fn run_all(seconds: u32) -> Result<()> {
    sh::ensure_cargo_tool("cargo-fuzz", "fuzz")?;
    let listed =
        Command::new("cargo").args(["+nightly", "fuzz", "list"]).output().context("cannot list fuzz targets")?;
    let targets = String::from_utf8_lossy(&listed.stdout).lines().map(str::to_owned).collect::<Vec<_>>();
    anyhow::ensure!(!targets.is_empty(), "no fuzz targets found (cargo +nightly fuzz list printed nothing)");
    // One build for every target, then a target per core at a time, each for the full time.
    sh::run_cmd(nightly_fuzz().arg("build"))?;
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
                        sh::run_cmd(nightly_fuzz().args(["run", target, "--", &time, "-max_len=8192"]))?;
                    }
                })
            })
            .collect();
        runs.into_iter().try_for_each(|run| run.join().map_err(|_| anyhow::anyhow!("a fuzz worker panicked"))?)
    })?;
    println!("fuzzed {} targets for {seconds}s each: {}", targets.len(), targets.join(", "));
    Ok(())
}

/// Builds every fuzz target (nightly, in `fuzz/target`) on a thread of its own, with its output in
/// `target/fuzz-build.log`, so the build can overlap a step that leaves the cores idle much of the time.
pub fn build_in_background(root: &Path) -> Result<JoinHandle<Result<()>>> {
    sh::ensure_cargo_tool("cargo-fuzz", "fuzz")?;
    let log = root.join("target/fuzz-build.log");
    let root = root.to_owned();
    Ok(std::thread::spawn(move || {
        let out = std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let status = nightly_fuzz()
            .arg("build")
            .current_dir(&root)
            .stdout(out.try_clone()?)
            .stderr(out)
            .status()
            .context("cannot start cargo +nightly fuzz build")?;
        if !status.success() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!("cargo +nightly fuzz build failed ({status}); the end of {}:\n{}", log.display(), tail.join("\n"));
        }
        Ok(())
    }))
}

/// `cargo +nightly fuzz`, without a rustc wrapper a developer's shell may set for the stable workspace
/// build (clippy's driver is stable's, and refuses the sanitizer flags).
fn nightly_fuzz() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.args(["+nightly", "fuzz"])
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CLIPPY_ARGS");
    cmd
}

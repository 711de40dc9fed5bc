//! The web UI: installed from its committed lock file and built with Vite into `ui/dist`.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::sh;

fn npm(ui: &Path, args: &[&str]) -> Result<()> {
    sh::run_cmd(Command::new("npm").args(args).current_dir(ui))
}

/// `npm ci` when the installed packages are missing or older than the lock file.
pub fn install(root: &Path) -> Result<()> {
    let ui = root.join("ui");
    if Command::new("npm").arg("--version").output().map(|o| !o.status.success()).unwrap_or(true) {
        bail!("npm is missing: install Node.js 20 or later (Debian: apt-get install nodejs npm)");
    }
    let lock = ui.join("package-lock.json");
    let installed = ui.join("node_modules/.package-lock.json");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let stale = match (modified(&installed), modified(&lock)) {
        (Some(i), Some(l)) => i < l,
        _ => true,
    };
    if stale {
        npm(&ui, &["ci", "--no-audit", "--no-fund"]).context("npm ci")?;
    }
    Ok(())
}

/// Set once this run of xtask has built the UI, so a later job in the same run uses that build.
static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();

/// Installs and builds the UI into `ui/dist`, once per run of xtask.
pub fn build(root: &Path) -> Result<()> {
    if BUILT.get().is_some() {
        return Ok(());
    }
    install(root)?;
    npm(&root.join("ui"), &["run", "build"])?;
    let _ = BUILT.set(());
    Ok(())
}

/// The UI's unit tests (Vitest) and type check.
pub fn test(root: &Path) -> Result<()> {
    install(root)?;
    let ui = root.join("ui");
    npm(&ui, &["run", "check"])?;
    npm(&ui, &["test"])
}

/// The browser end-to-end tests (playwright-core driving Debian's Chromium) against real processes.
pub fn e2e(root: &Path, custodia_bin: &Path) -> Result<()> {
    install(root)?;
    sh::run_cmd(Command::new("npm").args(["run", "e2e"]).env("CUSTODIA_BIN", custodia_bin).current_dir(root.join("ui")))
}

/// The access-log benchmark: a hundred thousand verified reads in a wallet, first paint and filters.
pub fn bench_log(root: &Path, custodia_bin: &Path) -> Result<()> {
    install(root)?;
    sh::run_cmd(
        Command::new("npm").args(["run", "bench:log"]).env("CUSTODIA_BIN", custodia_bin).current_dir(root.join("ui")),
    )
}

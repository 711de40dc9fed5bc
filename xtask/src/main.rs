//! Project automation, so that a fresh Debian machine needs one command for each job.
//!
//! - `cargo xtask test`: formatting, lints, every test (benchmarks in test mode, each once, to prove they
//!   run), the main job, a FHIR validation of the exported Consent, dependency policy, and a short fuzzing
//!   pass over every decoder. Missing cargo tools and Python packages are installed from the registries.
//! - `cargo xtask run [--browser] [--fresh]`: the main job: the wallet app against a local ledger with a
//!   demo gateway and clinician enrolled; the desktop window, or browser mode where there is no display.
//! - `cargo xtask demo`: a scripted walk through the `custodia` CLI: two wallets, a contact-card QR, a
//!   grant, policy checks, a FHIR export and a revocation.
//! - `cargo xtask bench`: the Criterion benchmarks, printing each figure beside the raw Ed25519 rate.
//! - `cargo xtask fuzz [--seconds N]`: every fuzz target for N seconds (default 60).
//! - `cargo xtask package [--debug] [--check]`: the Debian packages (`custodia` with its systemd units, and the desktop
//!   app) under `target/packages/`.

mod app;
mod demo;
mod desktop;
mod fuzz;
mod http;
mod package;
mod postgres;
mod sh;
mod ui;

use anyhow::{Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = sh::project_root();
    std::env::set_current_dir(&root)?;
    match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("run") => app::run(&args[1..]),
        Some("demo") => demo::run(),
        Some("desktop-smoke") => desktop::run_standalone(),
        Some("package") => package::run(&args[1..]),
        Some("bench") => sh::cargo(&["bench", "--workspace"]),
        Some("fuzz") => {
            let seconds = match args.get(1).map(String::as_str) {
                Some("--seconds") => args.get(2).and_then(|s| s.parse().ok()).unwrap_or(60),
                _ => 60,
            };
            fuzz::run_all(seconds)
        }
        _ => bail!(
            "usage: cargo xtask <test | run [--browser] [--fresh] | demo | desktop-smoke | package [--debug] [--check] | bench | \
             fuzz [--seconds N]>"
        ),
    }
}

/// What the desktop app builds against and what the browser and desktop tests run.
pub const DEBIAN_PACKAGES: &[&str] = &[
    "build-essential",
    "pkg-config",
    "libwebkit2gtk-4.1-dev",
    "libxdo-dev",
    "librsvg2-dev",
    "libayatana-appindicator3-dev",
    "webkit2gtk-driver",
    "chromium",
    "xvfb",
    "xauth",
    // Independent decoders the QR codes and the printed card are checked with.
    "zbar-tools",
    "poppler-utils",
];

fn test() -> Result<()> {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let root = sh::project_root();
    sh::step("Debian packages (WebKitGTK for the desktop app, Chromium and Xvfb for browser tests)", || {
        sh::ensure_debian_packages(DEBIAN_PACKAGES)
    })?;
    sh::step("formatting", || sh::cargo(&["fmt", "--all", "--", "--check"]))?;
    // The desktop app embeds the built UI, so it is built before anything compiles the workspace.
    sh::step("build the UI (npm ci, vite)", || ui::build(&root))?;
    sh::step("UI type check and unit tests (svelte-check, Vitest)", || ui::test(&root))?;
    sh::step("build and lint the workspace: every target once, clippy's lints as errors", sh::build_workspace_linted)?;
    let bin = sh::debug_dir(&root);
    let custodia = bin.join("custodia");
    let fhir_server = sh::step_value("a third-party FHIR R4 server for proxy mode (sekmet-fhir, from PyPI)", || {
        third_party_fhir_server(&root)
    })?;
    sh::step(
        "tests (with a throwaway PostgreSQL server for the ledger's PostgreSQL store and server mode, and the \
         third-party FHIR server for the gateway's proxy mode)",
        || {
            let server = postgres::start()?;
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            sh::run_cmd(
                sh::with_lints(std::process::Command::new(cargo).args(["test", "--workspace", "--all-targets"]))?
                    .env(postgres::URL_VAR, server.url())
                    .env(FHIR_SERVER_VAR, &fhir_server)
                    .env("CUSTODIA_BIN", &custodia),
            )
        },
    )?;
    sh::step("doc tests", || sh::cargo_linted(&["test", "--workspace", "--doc"]))?;
    sh::step("the CLI walk-through (cargo xtask demo)", demo::run)?;
    sh::step("the main job starts and answers (cargo xtask run --check)", || app::run(&["--check".into()]))?;
    // The fuzz targets build on nightly in their own target directory while the browser tests run: those
    // spend much of their time waiting on the UI, and nothing timed runs beside them.
    let fuzz_build = fuzz::build_in_background(&root)?;
    let e2e = sh::step("browser end-to-end tests, desktop and phone sizes, with axe-core (npm run e2e)", || {
        ui::e2e(&root, &custodia)
    });
    sh::step("fuzz targets built (nightly, beside the browser tests)", || {
        fuzz_build.join().map_err(|_| anyhow::anyhow!("the fuzz build thread panicked"))?
    })?;
    e2e?;
    sh::step("benchmark: the access log with 100,000 reads (npm run bench:log)", || ui::bench_log(&root, &custodia))?;
    let packages = sh::step_value("Debian packages built from this build (cargo xtask package --debug)", || {
        package::build(&root, true)
    })?;
    sh::step(
        "the packages installed with apt: the ledger started by its unit's command answers HTTPS; the installed \
         desktop app, under Xvfb and driven by tauri-driver, unlocks and shows Home",
        || package::check_installed(&root, &packages, &custodia),
    )?;
    sh::step("FHIR R4 validation of the Consent export and the gateway's dataset (fhir.resources R4B)", validate_fhir)?;
    sh::step("dependency policy (cargo deny: bans, licenses, sources)", || {
        sh::ensure_cargo_tool("cargo-deny", "deny")?;
        sh::cargo(&["deny", "--all-features", "check", "bans", "licenses", "sources"])
    })?;
    // Eleven targets, two at a time: 16 s each keeps the run near a minute and a half.
    let fuzz_seconds = if ci { 16 } else { 10 };
    sh::step("fuzzing smoke run", || fuzz::run_all(fuzz_seconds))?;
    println!("\nall checks passed");
    Ok(())
}

/// The variable naming the third-party FHIR server's command for the proxy-mode scenario.
const FHIR_SERVER_VAR: &str = "CUSTODIA_TEST_FHIR_SERVER";

/// Installs sekmet-fhir (every dependency pinned) in a venv under target/; returns its `sekmet` command.
fn third_party_fhir_server(root: &std::path::Path) -> Result<std::path::PathBuf> {
    let venv = root.join("target/sekmet-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        sh::run("python3", &["-m", "venv", &venv.to_string_lossy()])?;
    }
    let requirements = root.join("tests/fhir/sekmet-requirements.txt");
    sh::run(
        &python.to_string_lossy(),
        &["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", &requirements.to_string_lossy()],
    )?;
    Ok(venv.join("bin/sekmet"))
}

/// Validates the Consent the demo exported and the gateway's shipped dataset, with the FHIR models from
/// PyPI in a venv under target/.
fn validate_fhir() -> Result<()> {
    let venv = sh::project_root().join("target/fhir-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        sh::run("python3", &["-m", "venv", &venv.to_string_lossy()])?;
    }
    let py = python.to_string_lossy().into_owned();
    sh::run(&py, &["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "fhir.resources==8.3.0"])?;
    sh::run(&py, &["tests/fhir/validate_consent.py", "target/demo/consent.json"])?;
    sh::run(&py, &["tests/fhir/validate_dataset.py", "crates/custodia-gateway/dataset"])
}

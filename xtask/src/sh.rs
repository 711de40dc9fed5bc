//! Running commands, echoing them, failing loudly.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use anyhow::{Context, Result, bail};

pub fn project_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// Runs one named step, printing its duration, so a CI log shows where time goes.
pub fn step(name: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    step_value(name, f)
}

/// [`step`] for a step that hands back what it made.
pub fn step_value<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    println!("\n==> {name}");
    let start = Instant::now();
    let result = f().with_context(|| format!("step failed: {name}"));
    println!("<== {name}: {} in {:.1}s", if result.is_ok() { "ok" } else { "FAILED" }, start.elapsed().as_secs_f64());
    result
}

pub fn run(program: &str, args: &[&str]) -> Result<()> {
    run_cmd(Command::new(program).args(args))
}

pub fn run_cmd(cmd: &mut Command) -> Result<()> {
    // A CI run builds once from cold: incremental state would only take disk space (gigabytes of it).
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        cmd.env("CARGO_INCREMENTAL", "0");
    }
    println!("$ {}", format_cmd(cmd));
    let status = cmd.status().with_context(|| format!("cannot start {}", cmd.get_program().to_string_lossy()))?;
    if !status.success() {
        bail!("{} exited with {status}", format_cmd(cmd));
    }
    Ok(())
}

fn format_cmd(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn cargo(args: &[&str]) -> Result<()> {
    run(&std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()), args)
}

fn has_cargo_subcommand(sub: &str) -> bool {
    Command::new("cargo").args([sub, "--version"]).output().is_ok_and(|o| o.status.success())
}

/// Installs a cargo subcommand from crates.io if it is missing.
pub fn ensure_cargo_tool(krate: &str, sub: &str) -> Result<()> {
    if !has_cargo_subcommand(sub) {
        cargo(&["install", "--locked", krate])?;
    }
    Ok(())
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// Installs Debian packages that are missing (as root; otherwise names them and stops).
pub fn ensure_debian_packages(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        bail!("missing Debian packages; install them with: sudo apt-get install {}", missing.join(" "));
    }
    run("apt-get", &["update", "-qq"])?;
    run_cmd(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// Set once `cargo xtask test` has built every target of the workspace: later steps use those binaries
/// instead of building one package, which would resolve features for that package alone and compile
/// much of the dependency graph a second time.
static WORKSPACE_BUILT: OnceLock<()> = OnceLock::new();

/// Builds and lints every target of the workspace in one compile: rustc runs as clippy's driver on the
/// workspace's own crates (what `cargo clippy` does, with warnings denied), so the lints, the tests and
/// the apps share one build of every dependency.
pub fn build_workspace_linted() -> Result<()> {
    cargo_linted(&["build", "--workspace", "--all-targets", "--timings"])?;
    let _ = WORKSPACE_BUILT.set(());
    Ok(())
}

/// `cargo ARGS` in the environment [`build_workspace_linted`] built in, so nothing is compiled again.
pub fn cargo_linted(args: &[&str]) -> Result<()> {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(args);
    run_cmd(with_lints(&mut cmd)?)
}

/// Adds clippy's driver, with warnings as errors, as the workspace's rustc wrapper.
pub fn with_lints(cmd: &mut Command) -> Result<&mut Command> {
    static DRIVER: OnceLock<Option<PathBuf>> = OnceLock::new();
    let driver = DRIVER.get_or_init(|| {
        let out = Command::new("rustup").args(["which", "clippy-driver"]).output().ok()?;
        let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        (out.status.success() && path.is_file()).then_some(path)
    });
    let driver = driver.as_deref().context("clippy is missing (rustup component add clippy)")?;
    Ok(cmd.env("RUSTC_WORKSPACE_WRAPPER", driver).env("CLIPPY_ARGS", "-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"))
}

/// Builds `packages` for a job run on its own (`cargo xtask run`, `demo`); within `cargo xtask test`, after
/// [`build_workspace_linted`], they are built already.
pub fn build_packages(packages: &[&str]) -> Result<()> {
    if WORKSPACE_BUILT.get().is_some() {
        return Ok(());
    }
    let mut args = vec!["build", "--quiet"];
    for p in packages {
        args.extend(["-p", p]);
    }
    cargo(&args)
}

/// Where cargo puts this workspace's debug binaries.
pub fn debug_dir(root: &Path) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    if target.is_relative() { root.join(target) } else { target }.join("debug")
}

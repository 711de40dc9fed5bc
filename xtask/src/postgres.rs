//! A throwaway PostgreSQL server for the tests, so the ledger's PostgreSQL store is tested against the
//! real thing: a fresh cluster in `target/pg-test/data` (trust authentication, listening on 127.0.0.1
//! only, on a free port), stopped when the guard drops. Debian's `postgresql` package is installed first
//! if no server binaries are found.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::sh;

/// The variable the store tests read the server's connection string from.
pub const URL_VAR: &str = "CUSTODIA_TEST_POSTGRES";

const INSTALL_DIR: &str = "/usr/lib/postgresql";

/// The server the tests use; dropping it stops the one [`start`] started.
pub struct TestServer {
    url: String,
    /// Held only to be dropped: `None` when the server is someone else's.
    _cluster: Option<Cluster>,
}

impl TestServer {
    /// The connection string to export as [`URL_VAR`].
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// A cluster we started, and how to stop it.
struct Cluster {
    pg_ctl: PathBuf,
    data: PathBuf,
    as_postgres: bool,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data.to_string_lossy().into_owned();
        let mut stop = server_cmd(self.as_postgres, &self.pg_ctl);
        stop.args(["-D", &data, "-m", "fast", "-w", "stop"]);
        if let Err(e) = sh::run_cmd(&mut stop) {
            eprintln!("warning: the test PostgreSQL server in {data} did not stop: {e:#}");
        }
    }
}

/// Starts a fresh server, unless [`URL_VAR`] already names one (a CI service, say), which is then used.
pub fn start() -> Result<TestServer> {
    if let Ok(url) = std::env::var(URL_VAR) {
        println!("using the PostgreSQL server in {URL_VAR}");
        return Ok(TestServer { url, _cluster: None });
    }
    let root = is_root()?;
    let bin = match bin_dir() {
        Some(bin) => bin,
        None => {
            install(root)?;
            bin_dir().with_context(|| format!("installed postgresql, but found no {INSTALL_DIR}/*/bin/initdb"))?
        }
    };
    let dir = sh::project_root().join("target/pg-test");
    let data = dir.join("data");
    let log = dir.join("postgres.log");
    let pg_ctl = bin.join("pg_ctl");
    let data_arg = data.to_string_lossy().into_owned();

    if data.exists() {
        // Left by a run that was killed before it could stop its server: stop that one, start afresh.
        let _ = server_cmd(root, &pg_ctl)
            .args(["-D", &data_arg, "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        fs::remove_dir_all(&data).with_context(|| format!("cannot remove the old cluster in {}", data.display()))?;
    }
    // The server appends to its log; an old one may belong to another user.
    let _ = fs::remove_file(&log);
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if root {
        // initdb refuses to run as root; the cluster belongs to the postgres user.
        sh::run("chown", &["postgres:postgres", &dir.to_string_lossy()])?;
    }

    sh::run_cmd(
        server_cmd(root, &bin.join("initdb"))
            .args(["-D", &data_arg, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale"])
            .stdout(Stdio::null()),
    )
    .with_context(|| format!("initdb failed (the {} user must be able to reach {})", user(root), dir.display()))?;
    // From here on, the guard stops the server however the caller ends.
    let cluster = Cluster { pg_ctl, data, as_postgres: root };

    let port = free_port()?;
    let options = format!("-p {port} -k /tmp -c listen_addresses=127.0.0.1 -c fsync=on");
    let log_arg = log.to_string_lossy().into_owned();
    let started = sh::run_cmd(
        server_cmd(root, &cluster.pg_ctl).args(["-D", &data_arg, "-l", &log_arg, "-o", &options, "-w", "start"]),
    );
    if let Err(e) = started {
        print_tail(&log);
        return Err(e.context(format!("PostgreSQL did not start; its log is {}", log.display())));
    }
    Ok(TestServer { url: format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"), _cluster: Some(cluster) })
}

/// A server program, run as the postgres user when we are root.
fn server_cmd(as_postgres: bool, program: &Path) -> Command {
    let mut cmd = if as_postgres {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    };
    // The postgres user may not be allowed into the caller's directory.
    cmd.current_dir("/");
    cmd
}

fn user(root: bool) -> &'static str {
    if root { "postgres" } else { "current" }
}

fn is_root() -> Result<bool> {
    let out = Command::new("id").arg("-u").output().context("cannot run id -u")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// The newest installed server's `bin` directory (Debian keeps each major version apart).
fn bin_dir() -> Option<PathBuf> {
    let version = |name: &str| name.split('.').map(str::parse::<u32>).collect::<Result<Vec<_>, _>>().ok();
    fs::read_dir(INSTALL_DIR)
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let bin = entry.path().join("bin");
            let version = version(&entry.file_name().to_string_lossy())?;
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max()
        .map(|(_, bin)| bin)
}

fn install(root: bool) -> Result<()> {
    if !root {
        bail!(
            "PostgreSQL is not installed (no {INSTALL_DIR}/*/bin/initdb) and only root can install it: run \
             `sudo apt-get install postgresql`, or set {URL_VAR} to a server's connection string"
        );
    }
    sh::run("apt-get", &["update"])?;
    sh::run_cmd(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", "postgresql"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// A port nobody listens on now; the server takes it a moment later.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind a port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

fn print_tail(log: &Path) {
    if let Ok(text) = fs::read_to_string(log) {
        let lines: Vec<&str> = text.lines().collect();
        eprintln!("--- last lines of {} ---", log.display());
        for line in &lines[lines.len().saturating_sub(20)..] {
            eprintln!("{line}");
        }
    }
}

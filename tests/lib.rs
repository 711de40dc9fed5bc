//! End-to-end scenarios across Custodia's crates. The scenarios live in `tests/tests/`; the data they
//! read (test vectors with expected outcomes, sample FHIR resources) in `tests/vectors/` and `tests/data/`.

use std::path::PathBuf;

/// The folder holding this crate's data files.
pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `custodia` binary: the one `CUSTODIA_BIN` names (`cargo xtask test` builds the workspace once and
/// names it), or this build's, built first if a plain `cargo test -p custodia-tests` has not.
pub fn custodia_bin() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            if let Some(bin) = std::env::var_os("CUSTODIA_BIN") {
                return PathBuf::from(bin);
            }
            // Test executables live in target/<profile>/deps; binaries one level up.
            let exe = std::env::current_exe().expect("the test knows where it runs from");
            let profile_dir = exe.parent().and_then(|d| d.parent()).expect("a target/<profile>/deps layout");
            let bin = profile_dir.join(format!("custodia{}", std::env::consts::EXE_SUFFIX));
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = std::process::Command::new(cargo)
                .args(["build", "--quiet", "-p", "custodia-cli", "--bin", "custodia"])
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building the custodia binary failed");
            bin
        })
        .clone()
}

/// The scenarios' certificate authority and the server certificate it issued for `localhost` and `127.0.0.1`:
/// the ledgers and gateways of the scenarios serve HTTPS with it, and every `custodia` run trusts the CA
/// through `CUSTODIA_CA_FILE`, as a hospital with its own PKI would set it up.
#[derive(Debug)]
pub struct TestPki {
    pub ca: custodia_net::test_ca::TestCa,
    pub ca_file: PathBuf,
    pub server: custodia_net::TlsFiles,
    _dir: tempfile::TempDir,
}

pub fn pki() -> &'static TestPki {
    static PKI: std::sync::OnceLock<TestPki> = std::sync::OnceLock::new();
    PKI.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a folder for the test CA");
        let ca = custodia_net::test_ca::TestCa::new("Custodia scenarios CA");
        let ca_file = ca.write_ca(dir.path());
        let server = ca.write_server(
            dir.path(),
            "server",
            &["localhost", "127.0.0.1"],
            custodia_net::test_ca::Validity::Current,
        );
        // The test process's own clients trust it too.
        custodia_net::Trust::configure(Some(&ca_file)).expect("the test CA is a usable root");
        TestPki { ca, ca_file, server, _dir: dir }
    })
}

/// `--tls-cert FILE --tls-key FILE` with the scenarios' server certificate, for a `serve` command.
pub fn tls_args() -> Vec<String> {
    let files = &pki().server;
    let path = |p: &std::path::Path| p.to_str().expect("a UTF-8 temporary path").to_owned();
    vec!["--tls-cert".into(), path(&files.cert), "--tls-key".into(), path(&files.key)]
}

/// A blocking HTTP client for the test process that trusts the scenarios' CA.
pub fn http_client() -> reqwest::blocking::Client {
    pki();
    custodia_net::Trust::global()
        .expect("the test trust is configured")
        .blocking_client()
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .expect("a client builds")
}

/// The passphrase every wallet of the process-level scenarios uses.
pub const PASSPHRASE: &str = "correct horse battery staple";

/// What a `custodia` run printed, and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `custodia` in `dir` to completion, with the scenarios' passphrase. A panic is never an answer.
pub fn custodia(dir: &std::path::Path, args: &[&str]) -> Run {
    custodia_with(dir, args, &[])
}

/// [`custodia`] with extra environment variables.
pub fn custodia_with(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = std::process::Command::new(custodia_bin())
        .args(args)
        .current_dir(dir)
        .env("CUSTODIA_PASSPHRASE", PASSPHRASE)
        .env("CUSTODIA_CA_FILE", &pki().ca_file)
        .env_remove("CUSTODIA_WALLET")
        .env_remove("CUSTODIA_LEDGER")
        .envs(env.iter().copied())
        .output()
        .expect("custodia runs");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(!run.stderr.contains("panicked"), "custodia panicked on {args:?}:\n{}", run.stderr);
    run
}

/// A long-running `custodia` process (a ledger, a gateway) that printed `listening on URL` first; killed
/// when dropped.
#[derive(Debug)]
pub struct Server {
    child: std::process::Child,
    pub url: String,
}

impl Server {
    /// Starts `custodia ARGS`, a `serve` command, over HTTPS with the scenarios' certificate.
    pub fn start(dir: &std::path::Path, args: &[&str]) -> Self {
        let mut with_tls: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        with_tls.extend(tls_args());
        let server = Self::start_plain(dir, &with_tls.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(server.url.starts_with("https://"), "a server given a certificate serves HTTPS: {}", server.url);
        server
    }

    /// Starts `custodia ARGS` as given: plain HTTP unless the arguments say otherwise.
    pub fn start_plain(dir: &std::path::Path, args: &[&str]) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(custodia_bin())
            .args(args)
            .current_dir(dir)
            .env("CUSTODIA_PASSPHRASE", PASSPHRASE)
            .env("CUSTODIA_CA_FILE", &pki().ca_file)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("the server starts");
        let mut reader = std::io::BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut first = String::new();
        reader.read_line(&mut first).expect("the server prints its address");
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        let url = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("custodia {args:?} printed {first:?}, not its address"))
            .to_owned();
        Self { child, url }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The arguments of `custodia grant create`: `wallet` grants `to` one `scope` for `purpose` over
/// `duration`, then `extra` (`--post`, `--out FILE`, `--max-reads N`, ...).
pub fn grant_create<'a>(
    wallet: &'a str,
    to: &'a str,
    scope: &'a str,
    purpose: &'a str,
    duration: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec!["grant", "create", "--wallet", wallet, "--to", to, "--scope", scope];
    args.extend(["--purpose", purpose, "--for", duration]);
    args.extend_from_slice(extra);
    args
}

/// The arguments of `custodia er fetch` by `wallet` at `gateway` of `resource_type`, then `extra`.
pub fn er_fetch<'a>(wallet: &'a str, gateway: &'a str, resource_type: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["er", "fetch", "--wallet", wallet, "--gateway", gateway, "--type", resource_type];
    args.extend_from_slice(extra);
    args
}

/// Runs `custodia` and expects success; returns what it printed.
pub fn ok(dir: &std::path::Path, args: &[&str]) -> String {
    let run = custodia(dir, args);
    assert_eq!(run.code, 0, "custodia {args:?} failed:\n{}\n{}", run.stdout, run.stderr);
    run.stdout
}

pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// A wallet's signing and encryption keys, as `wallet show --json` prints them.
pub fn key_of(dir: &std::path::Path, wallet: &str) -> (String, String) {
    let shown = json(&ok(dir, &["wallet", "show", "--wallet", wallet, "--json"]));
    let key = |k: &str| shown[k].as_str().expect("wallet show prints its keys").to_owned();
    (key("signing_key"), key("encryption_key"))
}

/// What the network authority's `ledger enroll` says of a member.
#[derive(Debug, Clone, Copy)]
pub struct Member<'a> {
    pub key: &'a str,
    pub box_key: &'a str,
    pub role: &'a str,
    pub name: &'a str,
    pub org: &'a str,
}

/// Enrolls `member` on the ledger at `url`, signed by the authority's wallet.
pub fn enroll_member(dir: &std::path::Path, authority: &str, url: &str, member: Member<'_>) {
    let Member { key, box_key, role, name, org } = member;
    ok(
        dir,
        &[
            "ledger",
            "enroll",
            "--wallet",
            authority,
            "--ledger",
            url,
            "--key",
            key,
            "--box-key",
            box_key,
            "--role",
            role,
            "--name",
            name,
            "--org",
            org,
        ],
    );
}

/// The variable naming the PostgreSQL server the tests may use (`cargo xtask test` starts one and sets it).
pub const POSTGRES_URL_VAR: &str = "CUSTODIA_TEST_POSTGRES";

/// A fresh database on the test PostgreSQL server, or `None` when no server is named outside CI (the test
/// then says it skipped). In CI a missing server is a failure: the PostgreSQL mode must be tested there.
pub fn postgres_database(test: &str) -> Option<custodia_ledger::store::postgres::ScratchDatabase> {
    let Ok(server) = std::env::var(POSTGRES_URL_VAR) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must test the PostgreSQL mode: set {POSTGRES_URL_VAR} (cargo xtask test starts a server and sets it)"
        );
        eprintln!("{test}: skipped, {POSTGRES_URL_VAR} is not set (cargo xtask test starts a server and sets it)");
        return None;
    };
    Some(
        custodia_ledger::store::postgres::ScratchDatabase::create(&server, "custodia_e2e")
            .expect("the test PostgreSQL server creates a database"),
    )
}

/// The variable naming the third-party FHIR server's command (`cargo xtask test` installs sekmet-fhir from
/// PyPI and sets it).
pub const FHIR_SERVER_VAR: &str = "CUSTODIA_TEST_FHIR_SERVER";

/// The third-party FHIR server's command, or `None` outside CI when none is named (the test then says it
/// skipped). In CI a missing server is a failure: proxy mode must be tested against it there.
pub fn fhir_server_command(test: &str) -> Option<PathBuf> {
    let Some(command) = std::env::var_os(FHIR_SERVER_VAR) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must test proxy mode against a third-party FHIR server: set {FHIR_SERVER_VAR} (cargo xtask test does)"
        );
        eprintln!("{test}: skipped, {FHIR_SERVER_VAR} is not set (cargo xtask test installs the server and sets it)");
        return None;
    };
    Some(PathBuf::from(command))
}

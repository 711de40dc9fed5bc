#![allow(clippy::unwrap_used, clippy::expect_used)] // Test code: a panic is the failure report.

//! Connections off this machine, through the real `custodia` binary: each refused certificate named for what
//! is wrong with it, plain HTTP kept to loopback, `--ca-file`, and a ledger run from a configuration file.

use std::path::Path;

use custodia_net::test_ca::{TestCa, Validity};
use custodia_tests::{Run, Server, custodia_with, json, key_of, ok, pki};

/// Starts a ledger in `dir/ledger` serving HTTPS with a certificate `ca` issued for `names`, valid or not.
fn ledger_with(dir: &Path, stem: &str, ca: &TestCa, names: &[&str], validity: Validity) -> Server {
    let files = ca.write_server(dir, stem, names, validity);
    let (cert, key) = (files.cert.to_str().unwrap(), files.key.to_str().unwrap());
    Server::start_plain(
        dir,
        &["ledger", "serve", "--dir", "ledger", "--listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key],
    )
}

fn setup() -> (tempfile::TempDir, String) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    ok(dir, &["wallet", "init", "--wallet", "authority"]);
    ok(dir, &["wallet", "init", "--wallet", "patient"]);
    let (authority, _) = key_of(dir, "authority");
    ok(dir, &["ledger", "init", "--dir", "ledger", "--authority", &authority]);
    (tmp, authority)
}

/// `wallet enroll` against `url`, with `env` on top of the scenarios' (which trusts the scenarios' CA).
fn enroll(dir: &Path, url: &str, env: &[(&str, &str)]) -> Run {
    custodia_with(dir, &["wallet", "enroll", "--wallet", "patient", "--ledger", url], env)
}

fn refused(run: &Run, host: &str, why: &str) {
    assert_eq!(run.code, 1, "a refused certificate is a failed check (exit 1): {}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains(host) && run.stderr.contains(why), "{why:?} about {host}: {}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "one line: {}", run.stderr);
}

#[test]
fn each_refused_certificate_says_what_is_wrong_and_names_the_host() {
    let (tmp, _) = setup();
    let dir = tmp.path();
    let port = |s: &Server| s.url.rsplit(':').next().unwrap().to_owned();

    // A CA nobody was told about.
    let stranger = TestCa::new("Some other CA");
    let ledger = ledger_with(dir, "unknown", &stranger, &["localhost"], Validity::Current);
    let url = format!("https://localhost:{}", port(&ledger));
    refused(&enroll(dir, &url, &[]), "localhost", "unknown issuer");
    drop(ledger);

    // The trusted CA, but the certificate ran out yesterday.
    let ledger = ledger_with(dir, "expired", &pki().ca, &["localhost"], Validity::Expired);
    let url = format!("https://localhost:{}", port(&ledger));
    refused(&enroll(dir, &url, &[]), "localhost", "expired");
    drop(ledger);

    // The trusted CA, a current certificate, for another host.
    let ledger = ledger_with(dir, "other", &pki().ca, &["ledger.example.org"], Validity::Current);
    let url = format!("https://localhost:{}", port(&ledger));
    refused(&enroll(dir, &url, &[]), "localhost", "name mismatch");
    drop(ledger);

    // Without the CA file, the scenarios' own certificate is from an unknown issuer; with --ca-file, it is fine.
    let ledger = ledger_with(dir, "good", &pki().ca, &["localhost"], Validity::Current);
    let url = format!("https://localhost:{}", port(&ledger));
    refused(&enroll(dir, &url, &[("CUSTODIA_CA_FILE", "")]), "localhost", "unknown issuer");
    let ca = pki().ca_file.to_str().unwrap();
    let run = custodia_with(
        dir,
        &["wallet", "enroll", "--wallet", "patient", "--ledger", &url, "--ca-file", ca],
        &[("CUSTODIA_CA_FILE", "")],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
}

#[test]
fn plain_http_is_refused_beyond_loopback_and_said_so() {
    let (tmp, _) = setup();
    let dir = tmp.path();
    for url in ["http://ledger.example.org", "http://192.0.2.10:7420"] {
        let run = enroll(dir, url, &[]);
        assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
        assert!(run.stderr.contains("plain http:// is only for this machine"), "{}", run.stderr);
    }
    // A server will not listen beyond loopback in plain HTTP either.
    let run = custodia_with(dir, &["ledger", "serve", "--dir", "ledger", "--listen", "0.0.0.0:0"], &[]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("without TLS") && run.stderr.contains("--tls-cert"), "{}", run.stderr);
    // A CA file that is not one is named.
    let run = enroll(dir, "https://localhost:1", &[("CUSTODIA_CA_FILE", "/nonexistent/ca.pem")]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("/nonexistent/ca.pem"), "{}", run.stderr);
}

#[test]
fn a_ledger_runs_from_its_configuration_file_and_refuses_an_unknown_key() {
    let (tmp, _) = setup();
    let dir = tmp.path();
    let files = &pki().server;
    // Beyond loopback (all addresses) is allowed with TLS.
    let config = format!(
        "# /etc/custodia/ledger.toml\ndir = \"ledger\"\nlisten = \"0.0.0.0:0\"\nrate-limit = 50\n\
         tls-cert = \"{}\"\ntls-key = \"{}\"\n",
        files.cert.display(),
        files.key.display()
    );
    std::fs::write(dir.join("ledger.toml"), &config).unwrap();
    let ledger = Server::start_plain(dir, &["ledger", "serve", "--config", "ledger.toml"]);
    assert!(ledger.url.starts_with("https://0.0.0.0:"), "{}", ledger.url);
    let url = ledger.url.replace("0.0.0.0", "127.0.0.1");
    ok(dir, &["wallet", "enroll", "--wallet", "patient", "--ledger", &url]);
    let info = json(&ok(dir, &["wallet", "show", "--wallet", "patient", "--json"]));
    assert_eq!(info["ledger"]["url"].as_str(), Some(url.as_str()), "{info:#}");

    std::fs::write(dir.join("bad.toml"), config.replace("rate-limit", "rate-limmit")).unwrap();
    let run = custodia_with(dir, &["ledger", "serve", "--config", "bad.toml"], &[]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("bad.toml") && run.stderr.contains("rate-limmit"), "{}", run.stderr);
}

/// Turns TLS on in the test PostgreSQL server with a certificate for 127.0.0.1 from `ca` (the settings reload
/// without a restart; clients that do not ask for TLS are unaffected).
fn enable_postgres_tls(db: &custodia_ledger::store::postgres::ScratchDatabase, ca: &TestCa) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mut admin = db.config.connect(postgres::NoTls).unwrap();
    let data: String = admin.query_one("SHOW data_directory", &[]).unwrap().get(0);
    let owner = std::fs::metadata(&data).unwrap();
    let files =
        ca.write_server(Path::new(&data), "custodia-test-server", &["127.0.0.1", "localhost"], Validity::Current);
    for file in [&files.cert, &files.key] {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::chown(file, Some(owner.uid()), Some(owner.gid())).unwrap();
    }
    // One statement at a time: ALTER SYSTEM refuses to run inside the implicit transaction of a batch.
    for statement in [
        format!("ALTER SYSTEM SET ssl_cert_file = '{}'", files.cert.display()),
        format!("ALTER SYSTEM SET ssl_key_file = '{}'", files.key.display()),
        "ALTER SYSTEM SET ssl = on".to_owned(),
        "SELECT pg_reload_conf()".to_owned(),
    ] {
        admin.batch_execute(&statement).unwrap();
    }
    // The postmaster applies the reload asynchronously; a new session sees it once it has.
    for _ in 0..50 {
        let on: String = db.config.connect(postgres::NoTls).unwrap().query_one("SHOW ssl", &[]).unwrap().get(0);
        if on == "on" {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("the test PostgreSQL server did not turn TLS on");
}

#[test]
fn a_ledger_reaches_postgresql_over_verified_tls() {
    let Some(db) = custodia_tests::postgres_database("a_ledger_reaches_postgresql_over_verified_tls") else {
        return;
    };
    let (tmp, _) = setup();
    let dir = tmp.path();
    let database_ca = TestCa::new("Database CA");
    enable_postgres_tls(&db, &database_ca);
    let ca_file = dir.join("database-ca.pem");
    std::fs::write(&ca_file, database_ca.ca_pem()).unwrap();

    // The server's certificate is from a CA only sslrootcert names: without it, the ledger refuses to start.
    let unverified = format!("{}?sslmode=verify-full", db.url);
    let run = custodia_with(
        dir,
        &["ledger", "serve", "--dir", "ledger", "--listen", "127.0.0.1:0", "--db", &unverified],
        &[],
    );
    assert_ne!(run.code, 0, "{}", run.stdout);
    assert!(run.stderr.contains("unknown issuer") || run.stderr.contains("UnknownIssuer"), "{}", run.stderr);

    let verified = format!("{}?sslmode=verify-full&sslrootcert={}", db.url, ca_file.display());
    let mut args = vec!["ledger", "serve", "--dir", "ledger", "--listen", "127.0.0.1:0", "--db", &verified];
    let tls = custodia_tests::tls_args();
    args.extend(tls.iter().map(String::as_str));
    let ledger = Server::start_plain(dir, &args);
    ok(dir, &["wallet", "enroll", "--wallet", "patient", "--ledger", &ledger.url]);

    // The ledger's own sessions are the encrypted ones.
    let mut admin = db.config.connect(postgres::NoTls).unwrap();
    let encrypted: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
             WHERE ssl AND application_name = 'custodia-ledger' AND datname = current_database()",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(encrypted >= 1, "no custodia-ledger session is encrypted");
}

//! `custodia-test-ca DIR NAME...`: a throwaway certificate authority and a server certificate for NAMEs, written
//! to DIR as `ca.pem`, `server.crt` and `server.key`, for checks that run outside Rust's tests (the package
//! check in `cargo xtask test`). Never for a real deployment.

use std::path::PathBuf;
use std::process::ExitCode;

use custodia_net::test_ca::{TestCa, Validity};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: custodia-test-ca DIR NAME...");
        return ExitCode::from(2);
    };
    let names: Vec<String> = args.collect();
    if names.is_empty() || std::fs::create_dir_all(&dir).is_err() {
        eprintln!("usage: custodia-test-ca DIR NAME... (DIR must be writable)");
        return ExitCode::from(2);
    }
    let ca = TestCa::new("Custodia test CA");
    let ca_file = ca.write_ca(&dir);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let files = ca.write_server(&dir, "server", &names, Validity::Current);
    println!("{}\n{}\n{}", ca_file.display(), files.cert.display(), files.key.display());
    ExitCode::SUCCESS
}

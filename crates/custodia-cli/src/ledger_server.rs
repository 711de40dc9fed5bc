//! `custodia ledger init` and `custodia ledger serve`: run a ledger from a folder.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use custodia_core::SigningPublicKey;
use custodia_ledger::{LedgerDir, default_limits};
use serde_json::json;

use crate::service_config::LedgerServe;

pub fn init(dir: &Path, authority: &str, origin: Option<&str>, json: bool) -> Result<ExitCode> {
    let authority: SigningPublicKey =
        authority.parse().with_context(|| format!("--authority {authority:?} is not a signing key (cusig1...)"))?;
    let (ledger, verifier) = LedgerDir::init(dir, authority, origin)?;
    if json {
        let out = json!({
            "dir": dir.display().to_string(),
            "origin": ledger.config.origin,
            "authority": authority.to_string(),
            "verifier_key": verifier.to_vkey(),
        });
        println!("{out}");
    } else {
        println!("new ledger in {}", dir.display());
        println!("origin:       {}", ledger.config.origin);
        println!("authority:    {authority}");
        println!("verifier key: {}", verifier.to_vkey());
        println!(
            "give the verifier key to every wallet and auditor: it is how they know checkpoints are this ledger's"
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn serve(options: LedgerServe) -> Result<ExitCode> {
    custodia_net::log::set_format(options.log_format.unwrap_or_default());
    if options.ca_file.is_some() {
        custodia_net::Trust::configure(options.ca_file.as_deref())?;
    }
    let (dir, listen, tls) = (options.dir()?, options.listen(), options.tls()?);
    custodia_net::server::check_listen(listen, tls.is_some(), "CUSTODIA_LEDGER_PUBLIC")?;
    let ledger = LedgerDir::open(dir)?;
    let mut limits = default_limits();
    if let Some(rate) = options.rate_limit {
        limits.entries_per_key_per_second = rate;
    }
    let witness_policy = options.witness_policy.as_deref().map(read_policy).transpose()?;
    let db = options.db.as_deref();
    let database = db.map_or_else(|| format!("sqlite:{}", ledger.default_database().display()), str::to_owned);
    custodia_ledger::serve_blocking(
        &ledger,
        db,
        listen,
        limits,
        custodia_ledger::ServeOptions { tls, witness_policy },
        |url, verifier_key| {
            // The first line is for scripts and tests that start the ledger on port 0. A closed stdout
            // (the script stopped reading) must not stop the ledger, so write errors are ignored.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "listening on {url}");
            let _ = writeln!(out, "verifier key: {verifier_key}");
            let _ = writeln!(out, "database: {}", redact_password(&database));
            let _ = out.flush();
        },
        crate::shutdown_signal(),
    )?;
    custodia_net::log::info("custodia-ledger", "stopped");
    Ok(ExitCode::SUCCESS)
}

/// Reads a C2SP tlog-policy file.
pub fn read_policy(path: &Path) -> Result<custodia_log::policy::Policy> {
    let bad = |reason: String| crate::service_config::ConfigFileError { path: path.to_owned(), reason };
    let bytes = crate::common::read_input(path, "the witness policy")?;
    let text = String::from_utf8(bytes).map_err(|_| bad("it is not UTF-8 text".into()))?;
    custodia_log::policy::Policy::parse(&text).map_err(|e| bad(e.to_string()).into())
}

/// A PostgreSQL URL may carry a password; never print it.
fn redact_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_not_printed() {
        assert_eq!(super::redact_password("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(super::redact_password("sqlite:/x/y"), "sqlite:/x/y");
    }
}

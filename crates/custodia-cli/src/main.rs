//! `custodia`: the command-line face of the wallet, and later of the ledger, gateway and clinician tools.
//!
//! Thin by design: parse arguments, call custodia-wallet or custodia-core, print. Exit codes: 0 success,
//! 1 a check or verification said no, 2 bad input or usage. Every error is one line; none carries a secret.

mod commands;
mod passphrase;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = commands::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("custodia: {e:#}");
            ExitCode::from(2)
        }
    }
}

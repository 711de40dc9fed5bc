//! `custodia`: the command-line face of the wallet, and later of the ledger, gateway and clinician tools.
//!
//! Thin by design: parse arguments, call custodia-wallet or custodia-core, print. Exit codes: 0 success,
//! 1 a check or verification said no (including a ledger whose answers do not verify, and a server whose TLS
//! certificate is refused), 2 bad input, usage, a bad configuration file, or a ledger that cannot be reached or
//! refused the request. Every error is one line; none carries a secret.

mod app_server;
mod care;
mod commands;
mod common;
mod gateway;
mod grant_commands;
mod ledger_commands;
mod ledger_server;
mod network;
mod own_records;
mod passphrase;
mod recovery;
mod service_config;
mod wallet_commands;
mod witness;

use std::process::ExitCode;

use clap::Parser;
use custodia_wallet::fhir_client::FhirClientError;
use custodia_wallet::{LedgerError, WalletError};

/// Completes on Ctrl-C or SIGTERM (what a service manager sends), the end of every `serve`.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn main() -> ExitCode {
    let cli = commands::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("custodia: {e:#}");
            let said_no = e.chain().any(|cause| {
                cause.downcast_ref::<WalletError>().is_some_and(WalletError::is_verification_failure)
                    || cause.downcast_ref::<LedgerError>().is_some_and(LedgerError::is_verification_failure)
                    || matches!(cause.downcast_ref::<FhirClientError>(), Some(FhirClientError::Refused { .. }))
            });
            ExitCode::from(if said_no { 1 } else { 2 })
        }
    }
}

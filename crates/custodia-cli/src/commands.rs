//! The command tree and what each command does.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "custodia", version, about = "Custodia: a patient-held consent wallet for medical records")]
pub struct Cli {
    /// Also trust the CA certificates in this PEM file when connecting over HTTPS (a hospital's own PKI).
    /// Without it, CUSTODIA_CA_FILE if set.
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create, show and re-key a wallet.
    #[command(subcommand)]
    Wallet(crate::wallet_commands::WalletCommand),
    /// Issue, inspect, check, revoke and export access grants.
    #[command(subcommand)]
    Grant(crate::grant_commands::GrantCommand),
    /// Read Custodia QR codes.
    #[command(subcommand)]
    Qr(crate::grant_commands::QrCommand),
    /// Work with a Custodia ledger: enroll members, audit its log.
    #[command(subcommand)]
    Ledger(crate::ledger_commands::LedgerCommand),
    /// The wallet app in a browser.
    #[command(subcommand)]
    App(AppCommand),
    /// Run a hospital's record gateway.
    #[command(subcommand)]
    Gateway(crate::gateway::GatewayCommand),
    /// The network profile wallets, gateways and witnesses join a network with.
    #[command(subcommand)]
    Network(crate::network::NetworkCommand),
    /// Run a witness that cosigns a log's checkpoints (C2SP tlog-witness).
    #[command(subcommand)]
    Witness(crate::witness::WitnessCommand),
    /// The emergency room's (or a clinician's) side: show a request, wait for the answer, read records.
    #[command(subcommand)]
    Er(crate::care::ErCommand),
    /// As the patient: scan a request's QR code, see who asks for what (verified), approve or decline.
    Scan(crate::care::ScanArgs),
    /// Your own records at a hospital, read through its gateway as you (logged in your log like any
    /// read): a summary in plain words, or a FHIR Bundle with --out.
    Records(crate::own_records::RecordsArgs),
    /// Make an emergency card: a printable QR code holding a standing break-glass grant.
    Card(crate::care::CardArgs),
    /// Social recovery: choose and check guardians; as a guardian, hold shares and approve recoveries.
    #[command(subcommand)]
    Guardian(crate::recovery::GuardianCommand),
    /// Recover a lost wallet on a new device with the guardians' help, or veto a recovery.
    #[command(subcommand)]
    Recover(crate::recovery::RecoverCommand),
}

#[derive(Subcommand, Debug)]
enum AppCommand {
    /// Serve the wallet app's UI to a browser on this machine, and print the address to open.
    Serve {
        /// The wallet's folder (created by the app's onboarding if it has no wallet yet).
        #[arg(long, value_name = "DIR", env = "CUSTODIA_WALLET")]
        wallet: PathBuf,
        /// Where to listen: loopback only without TLS (port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:7421")]
        listen: std::net::SocketAddr,
        /// The ledger offered when the patient connects a new wallet.
        #[arg(long, value_name = "URL", env = "CUSTODIA_LEDGER")]
        ledger: Option<String>,
        /// The built UI (default: ui/dist of this checkout).
        #[arg(long, value_name = "DIR", env = "CUSTODIA_UI_DIR")]
        ui: Option<PathBuf>,
        /// Serve over TLS with this certificate chain (PEM), reread when it changes; then it may listen
        /// beyond loopback.
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The certificate's private key (PEM).
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    if cli.ca_file.is_some() {
        // Before any client is made: every one of them trusts the platform's roots plus this file.
        custodia_net::Trust::configure(cli.ca_file.as_deref())?;
    }
    match cli.command {
        Command::Wallet(c) => crate::wallet_commands::wallet_command(c),
        Command::Grant(c) => crate::grant_commands::grant_command(c),
        Command::Qr(crate::grant_commands::QrCommand::Decode { image, json }) => {
            crate::grant_commands::qr_decode(&image, json)
        }
        Command::Ledger(c) => crate::ledger_commands::ledger_command(c),
        Command::App(AppCommand::Serve { wallet, listen, ledger, ui, tls_cert, tls_key }) => {
            let tls = tls_cert.zip(tls_key).map(|(cert, key)| custodia_net::TlsFiles { cert, key });
            crate::app_server::serve(&wallet, listen, ledger, ui.as_deref(), tls)
        }
        Command::Gateway(c) => crate::gateway::run(c),
        Command::Witness(c) => crate::witness::run(c),
        Command::Network(c) => crate::network::run(c),
        Command::Er(c) => crate::care::er(c),
        Command::Scan(args) => crate::care::scan(args),
        Command::Records(args) => crate::own_records::records(&args),
        Command::Card(args) => crate::care::card(args),
        Command::Guardian(c) => crate::recovery::guardian(c),
        Command::Recover(c) => crate::recovery::recover(c),
    }
}

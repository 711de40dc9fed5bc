//! `custodia gateway`: a hospital's record gateway, run from a folder that holds its wallet (its key), its
//! patient links and its access-event outbox.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use custodia_core::SigningPublicKey;
use custodia_gateway::dataset::Dataset;
use custodia_gateway::links::{Links, LiveLinks, Target};
use custodia_gateway::records::Records;
use custodia_gateway::upstream::{AssertionKey, Auth, SmartClient};
use custodia_gateway::{GatewayConfig, serve_blocking};
use custodia_wallet::vault::KdfParams;
use custodia_wallet::wallet::Wallet;
use serde_json::json;
use zeroize::Zeroizing;

use crate::common::now;
use crate::passphrase;
use crate::service_config::GatewayServe;

/// The outbox file in a gateway's folder.
const OUTBOX_FILE: &str = "outbox.sqlite";

#[derive(Subcommand, Debug)]
pub enum GatewayCommand {
    /// Make the gateway's key (a wallet in DIR); the network then enrolls it as a gateway.
    Init {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// The name the network enrolls, shown to patients beside each read.
        #[arg(long, default_value = "Record gateway")]
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Link a patient's Custodia key to their record at this hospital (after checking who they are): by
    /// FHIR Patient id, or by the hospital's record number, which the gateway looks up with
    /// `Patient?identifier=`. The link survives the patient's key rotations.
    #[command(group(clap::ArgGroup::new("record").required(true).args(["fhir_id", "mrn"])))]
    Link {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        #[arg(long, value_name = "KEY")]
        patient: String,
        #[arg(long, value_name = "ID")]
        fhir_id: Option<String>,
        /// The hospital's identifier for the patient (medical record number).
        #[arg(long, value_name = "VALUE")]
        mrn: Option<String>,
        /// The identifier's system, an absolute URI (e.g. https://hospital.example/fhir/mrn); without it,
        /// any Patient identifier with that value matches.
        #[arg(long, value_name = "URI", requires = "mrn")]
        mrn_system: Option<String>,
    },
    /// Serve the FHIR read API, every read checked against a grant and logged to the ledger.
    Serve(Box<crate::service_config::GatewayServe>),
    /// Make the private key (EC P-384, ES384) the gateway signs its SMART Backend Services assertions with,
    /// and print the public JWK Set to register with the upstream's authorization server.
    UpstreamKey {
        /// Where to write the key (PEM, mode 0600); an existing file is not overwritten.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Also write the public JWK Set here.
        #[arg(long, value_name = "FILE")]
        jwks: Option<PathBuf>,
    },
    /// Write the shipped synthetic dataset (three patients, with PSY, HIV and ETH-labelled records) to DIR.
    Dataset {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

pub fn run(command: GatewayCommand) -> Result<ExitCode> {
    match command {
        GatewayCommand::Init { dir, name, json } => {
            let pass = passphrase::current(None, true)?;
            let w = Wallet::create(&dir, &name, pass, KdfParams::DEFAULT, now()?)?;
            let card = w.contact_card();
            if json {
                let out = json!({
                    "dir": dir.display().to_string(),
                    "signing_key": card.signing.to_string(),
                    "encryption_key": card.boxing.to_string(),
                    "fingerprint": w.fingerprint().to_string(),
                });
                println!("{out}");
            } else {
                println!("new gateway key in {}", dir.display());
                println!("signing key:    {}", card.signing);
                println!("encryption key: {}", card.boxing);
                println!(
                    "ask the network to enroll it: custodia ledger enroll --role gateway --key {} --box-key {} ...",
                    card.signing, card.boxing
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        GatewayCommand::Link { dir, patient, fhir_id, mrn, mrn_system } => {
            let key: SigningPublicKey =
                patient.parse().with_context(|| format!("--patient {patient:?} is not a signing key (cusig1...)"))?;
            let target = match (fhir_id, mrn) {
                (Some(id), _) => Target::fhir_id(&id)?,
                (None, Some(mrn)) => Target::identifier(mrn_system.as_deref(), &mrn)?,
                (None, None) => anyhow::bail!("give --fhir-id or --mrn"),
            };
            let links = Links::link(&dir, key, &target)?;
            println!("linked {key} to {target} ({} links; a running gateway picks it up)", links.len());
            Ok(ExitCode::SUCCESS)
        }
        GatewayCommand::Dataset { out } => {
            let dataset = Dataset::synthetic();
            dataset.write(&out).with_context(|| format!("cannot write {}", out.display()))?;
            println!(
                "wrote {} resources of {} patients to {}",
                dataset.len(),
                dataset.patient_ids().len(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        GatewayCommand::Serve(options) => serve(options.resolve()?),
        GatewayCommand::UpstreamKey { out, jwks } => {
            if out.exists() {
                anyhow::bail!("{} exists; give a new file (a key in use is never overwritten)", out.display());
            }
            let pem = AssertionKey::generate_es384_pem().map_err(anyhow::Error::msg)?;
            let key = AssertionKey::from_pem(pem.as_bytes()).map_err(anyhow::Error::msg)?;
            custodia_net::write_private(&out, pem.as_bytes())
                .with_context(|| format!("cannot write {}", out.display()))?;
            let set = serde_json::to_string_pretty(&key.jwks(&key.thumbprint()))?;
            if let Some(path) = jwks {
                std::fs::write(&path, format!("{set}\n"))
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            println!("{set}");
            eprintln!(
                "wrote {} (ES384, key id {}); register the JWK Set above with the upstream",
                out.display(),
                key.thumbprint()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// How the gateway authenticates to its upstream, from the options.
fn upstream_auth(options: &GatewayServe) -> Result<Auth> {
    if let Some(file) = &options.upstream_token_file {
        let token = Zeroizing::new(
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the upstream token {}", file.display()))?,
        );
        let token = token.trim();
        if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            anyhow::bail!("{} must hold one bearer token, on one line", file.display());
        }
        return Ok(Auth::Bearer(Zeroizing::new(token.to_owned())));
    }
    let (Some(client_id), Some(key), Some(token_url)) =
        (&options.upstream_client_id, &options.upstream_key, &options.upstream_token_url)
    else {
        if options.upstream_client_id.is_some() {
            anyhow::bail!("SMART Backend Services needs --upstream-client-id, --upstream-key and --upstream-token-url");
        }
        return Ok(Auth::None);
    };
    let pem =
        Zeroizing::new(std::fs::read(key).with_context(|| format!("cannot read the upstream key {}", key.display()))?);
    let key = AssertionKey::from_pem(&pem).map_err(|e| anyhow::anyhow!("{}: {e}", key.display()))?;
    let client = SmartClient::new(
        client_id,
        token_url,
        key,
        options.upstream_key_id.as_deref(),
        options.upstream_scope.as_deref(),
    )
    .map_err(|e| anyhow::anyhow!("--upstream-token-url / --upstream-client-id: {e}"))?;
    Ok(Auth::Smart(Box::new(client)))
}

fn serve(options: GatewayServe) -> Result<ExitCode> {
    custodia_net::log::set_format(options.log_format.unwrap_or_default());
    if options.ca_file.is_some() {
        custodia_net::Trust::configure(options.ca_file.as_deref())?;
    }
    let (dir, listen, tls) = (options.dir()?, options.listen(), options.tls()?);
    custodia_net::server::check_listen(listen, tls.is_some(), "CUSTODIA_GATEWAY_PUBLIC")?;
    let records = match (&options.data, &options.upstream) {
        (Some(d), _) => Records::Local(std::sync::Arc::new(Dataset::load(d)?)),
        (None, Some(u)) => {
            let page_size =
                options.upstream_page_size.map_or(custodia_gateway::upstream::DEFAULT_PAGE_SIZE, usize::from);
            let upstream = custodia_gateway::upstream::Upstream::new(u, upstream_auth(&options)?)?;
            Records::Upstream(std::sync::Arc::new(upstream.with_page_size(page_size)))
        }
        (None, None) => Records::Local(std::sync::Arc::new(Dataset::synthetic())),
    };
    let links = LiveLinks::watching(dir)?;
    let pass = passphrase::current(options.passphrase_file.as_deref(), false)?;
    let identity = Wallet::open(dir, pass)?.service_identity();
    let profile = options.network.as_deref().map(crate::network::read_profile).transpose()?;
    let (ledger_url, ledger_key) = match &profile {
        Some(profile) => {
            if options.ledger_key.is_some() {
                anyhow::bail!("the network profile pins the ledger's key: give --network or --ledger-key, not both");
            }
            let url = options.ledger.clone().unwrap_or_else(|| profile.ledger_url.clone());
            (url, Some(profile.log_key().to_vkey()))
        }
        None => (options.ledger()?.to_owned(), options.ledger_key.clone()),
    };
    let config = GatewayConfig {
        listen,
        public_url: options.public_url.clone(),
        ledger_url,
        ledger_key,
        records,
        links,
        outbox: dir.join(OUTBOX_FILE),
        tls,
        witness_policy: profile.map(|p| std::sync::Arc::new(p.policy)),
    };
    serve_blocking(
        identity,
        config,
        |running| {
            // The first line is for scripts and tests that start the gateway on port 0.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "listening on {}", running.url);
            let _ = writeln!(out, "gateway: {} ({})", running.shared.name, running.shared.organisation);
            let _ = writeln!(out, "patients linked: {}", running.shared.links.len());
            let _ = out.flush();
        },
        crate::shutdown_signal(),
    )?;
    custodia_net::log::info("custodia-gateway", "stopped");
    Ok(ExitCode::SUCCESS)
}

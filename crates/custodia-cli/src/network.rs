//! `custodia network`: the profile a wallet, a gateway or a witness joins a network with.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use custodia_ledger::LedgerDir;
use custodia_wallet::network::NetworkProfile;
use serde_json::json;

use crate::common::{emit, read_input};

#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Write the network profile of a ledger: its public URL, checkpoint key, authority and witness
    /// policy, with the fingerprint to publish beside it.
    Profile {
        /// The ledger's folder (for its checkpoint key and authority).
        #[arg(long, value_name = "DIR")]
        ledger_dir: PathBuf,
        /// The URL wallets and gateways reach the ledger at.
        #[arg(long, value_name = "URL")]
        url: String,
        /// The C2SP tlog-policy the ledger runs with (its `log` line must be this ledger's key).
        #[arg(long, value_name = "FILE")]
        witness_policy: PathBuf,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Also write it as a QR code (PNG).
        #[arg(long, value_name = "FILE")]
        qr: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Show a profile (file or QR picture) and its fingerprint.
    Show {
        #[arg(value_name = "FILE|IMAGE")]
        profile: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

/// Reads a network profile from its text file or a picture of its QR code.
pub fn read_profile(path: &Path) -> Result<NetworkProfile> {
    let bytes = read_input(path, "the network profile")?;
    let text = if bytes.starts_with(b"\x89PNG") || bytes.starts_with(b"\xff\xd8") {
        custodia_core::qr::decode_image(&bytes).with_context(|| format!("no QR code read in {}", path.display()))?
    } else {
        String::from_utf8(bytes)
            .map_err(|_| anyhow::anyhow!("{} is not text or a PNG or JPEG picture", path.display()))?
    };
    NetworkProfile::parse(&text).with_context(|| format!("{} is not a network profile", path.display()))
}

/// How a wallet joins a ledger: with the network's profile (nothing trusted on first use), or from a bare
/// address for a local demo.
#[derive(clap::Args, Debug)]
pub struct JoinArgs {
    /// The ledger's URL, e.g. https://ledger.example.org (with --network, it may only repeat the profile's).
    #[arg(long, value_name = "URL", env = "CUSTODIA_LEDGER", required_unless_present = "network")]
    pub ledger: Option<String>,
    /// The ledger's checkpoint key (a C2SP verifier key). Without it or --network, the key the ledger
    /// announces is trusted on first use.
    #[arg(long, value_name = "VKEY", conflicts_with = "network")]
    pub verifier_key: Option<String>,
    /// The network profile (its file, or a picture of its QR code): the ledger, its key, the authority and
    /// the witness policy, pinned.
    #[arg(long, value_name = "FILE|IMAGE")]
    pub network: Option<PathBuf>,
}

impl JoinArgs {
    /// The ledger's URL and key, and the profile if one was given; checked before anything is unlocked.
    pub fn resolve(self) -> Result<(String, Option<String>, Option<NetworkProfile>)> {
        use custodia_wallet::ledger::normalise_url;
        let profile = self.network.as_deref().map(read_profile).transpose()?;
        let url = match (&profile, self.ledger) {
            (Some(p), Some(url)) if normalise_url(&url)? != normalise_url(&p.ledger_url)? => {
                anyhow::bail!(
                    "the network profile names the ledger {}, not {url} (--ledger or CUSTODIA_LEDGER)",
                    p.ledger_url
                )
            }
            (Some(p), _) => p.ledger_url.clone(),
            (None, Some(url)) => url,
            (None, None) => anyhow::bail!("give --network FILE, or --ledger URL"),
        };
        crate::common::LedgerArgs { ledger: url.clone(), verifier_key: self.verifier_key.clone() }.check()?;
        Ok((url, self.verifier_key, profile))
    }
}

pub fn run(command: NetworkCommand) -> Result<ExitCode> {
    match command {
        NetworkCommand::Profile { ledger_dir, url, witness_policy, out, qr, json } => {
            let ledger = LedgerDir::open(&ledger_dir)?;
            let log_key = ledger.signer()?.verifier();
            let policy = crate::ledger_server::read_policy(&witness_policy)?;
            if policy.logs.len() != 1 || policy.logs[0].key != log_key {
                anyhow::bail!(
                    "the witness policy must list this ledger's key as its one log: log {}",
                    log_key.to_vkey()
                );
            }
            custodia_wallet::ledger::normalise_url(&url)?;
            let profile = NetworkProfile::build(&url, ledger.config.authority, &policy)?;
            emit(Some(&out), profile.text())?;
            if let Some(path) = &qr {
                let png = custodia_core::qr::render_document_png(profile.text())?;
                custodia_wallet::vault::write_atomic(path, &png)?;
            }
            print_profile(&profile, json, Some(&out));
        }
        NetworkCommand::Show { profile, json } => print_profile(&read_profile(&profile)?, json, None),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_profile(profile: &NetworkProfile, json: bool, written: Option<&Path>) {
    let witnesses: Vec<&str> = profile.policy.witnesses.iter().map(|w| w.name.as_str()).collect();
    if json {
        let out = json!({
            "fingerprint": profile.fingerprint().to_string(),
            "ledger": profile.ledger_url,
            "log_key": profile.log_key().to_vkey(),
            "authority": profile.authority.to_string(),
            "witnesses": witnesses,
            "out": written.map(|p| p.display().to_string()),
        });
        println!("{out:#}");
    } else {
        if let Some(path) = written {
            println!("network profile written to {}", path.display());
        }
        println!("fingerprint: {}", profile.fingerprint());
        println!("ledger:      {}", profile.ledger_url);
        println!("log key:     {}", profile.log_key().to_vkey());
        println!("authority:   {}", profile.authority);
        println!("witnesses:   {}", if witnesses.is_empty() { "none".to_owned() } else { witnesses.join(", ") });
    }
}

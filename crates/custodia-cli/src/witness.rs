//! `custodia witness`: run a C2SP tlog-witness that cosigns a log's checkpoints only when they extend
//! the ones it cosigned before.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use custodia_log::NoteVerifier;
use custodia_witness::WitnessDir;
use serde_json::json;

use crate::service_config::WitnessServe;

#[derive(Subcommand, Debug)]
pub enum WitnessCommand {
    /// Make a witness: a folder with a fresh cosigning key. Prints its verifier key (vkey).
    Init {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// The witness's key name, e.g. witness.example.org/w1 [default: custodia-witness/<key id>].
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Witness a log: trust its checkpoint key for its origin (by default the key's name).
    AddLog {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// The log's checkpoint verifier key (C2SP vkey: name+id+base64).
        #[arg(long, value_name = "VKEY", required_unless_present = "network", conflicts_with = "network")]
        vkey: Option<String>,
        /// A Custodia network profile (file or QR picture): witness its ledger, with the key it pins.
        #[arg(long, value_name = "FILE|IMAGE")]
        network: Option<PathBuf>,
        /// The log's origin line, when it is not the key's name.
        #[arg(long)]
        origin: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The logs witnessed and the size each was last cosigned at.
    Logs {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Serve POST /add-checkpoint (C2SP tlog-witness) until Ctrl-C or SIGTERM.
    Serve(WitnessServe),
}

pub fn run(command: WitnessCommand) -> Result<ExitCode> {
    match command {
        WitnessCommand::Init { dir, name, json } => {
            let witness = WitnessDir::init(&dir, name.as_deref())?;
            let vkey = witness.verifier().to_vkey();
            if json {
                println!(
                    "{}",
                    json!({ "dir": dir.display().to_string(), "name": witness.cosigner().name(), "vkey": vkey })
                );
            } else {
                println!("new witness in {}", dir.display());
                println!("name: {}", witness.cosigner().name());
                println!("vkey: {vkey}");
                println!(
                    "add the logs it witnesses with `custodia witness add-log`; give the vkey to the logs' operators"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        WitnessCommand::AddLog { dir, vkey, network, origin, json } => {
            let key: NoteVerifier = match (vkey, network) {
                (Some(vkey), _) => {
                    vkey.parse().with_context(|| format!("--vkey {vkey:?} is not a log's verifier key"))?
                }
                (None, Some(path)) => {
                    let profile = crate::network::read_profile(&path)?;
                    println!(
                        "network profile {} (compare it with the one the network published)",
                        profile.fingerprint()
                    );
                    profile.log_key().clone()
                }
                (None, None) => anyhow::bail!("give the log's key: --vkey VKEY or --network FILE"),
            };
            let origin = origin.unwrap_or_else(|| key.name().to_owned());
            let witness = WitnessDir::open(&dir)?;
            let added = witness.add_log(&origin, &key)?;
            if json {
                println!("{}", json!({ "origin": origin, "vkey": key.to_vkey(), "added": added }));
            } else if added {
                println!("witnessing {origin} (key {})", key.to_vkey());
            } else {
                println!("already witnessing {origin} with that key");
            }
            Ok(ExitCode::SUCCESS)
        }
        WitnessCommand::Logs { dir, json } => {
            let logs = WitnessDir::open(&dir)?.logs()?;
            if json {
                let logs: Vec<_> = logs
                    .iter()
                    .map(|l| {
                        json!({ "origin": l.origin, "size": l.size, "root": l.root.to_base64(),
                        "keys": l.keys.iter().map(NoteVerifier::to_vkey).collect::<Vec<_>>() })
                    })
                    .collect();
                println!("{}", json!({ "logs": logs }));
            } else {
                for log in &logs {
                    println!("{}  size {}", log.origin, log.size);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        WitnessCommand::Serve(options) => serve(options.resolve()?),
    }
}

fn serve(options: WitnessServe) -> Result<ExitCode> {
    custodia_net::log::set_format(options.log_format.unwrap_or_default());
    let (dir, listen, tls) = (options.dir()?, options.listen(), options.tls()?);
    custodia_net::server::check_listen(listen, tls.is_some(), "CUSTODIA_WITNESS_PUBLIC")?;
    let witness = WitnessDir::open(dir)?;
    let vkey = witness.verifier().to_vkey();
    custodia_witness::serve_blocking(
        witness,
        listen,
        tls,
        |url| {
            // The first line is for scripts and tests that start the witness on port 0.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "listening on {url}");
            let _ = writeln!(out, "vkey: {vkey}");
            let _ = out.flush();
        },
        crate::shutdown_signal(),
    )?;
    custodia_net::log::info("custodia-witness", "stopped");
    Ok(ExitCode::SUCCESS)
}

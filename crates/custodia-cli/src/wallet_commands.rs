//! `custodia wallet`: create, show, re-key, enroll and sync a wallet.

use anyhow::Result;
use clap::Subcommand;
use custodia_core::entry::Outcome;
use custodia_core::qr::QrPayload;
use custodia_wallet::ledger::KeyTrust;
use custodia_wallet::notices::{Delivery, NoticeKind, NoticePrefs};
use custodia_wallet::vault::KdfParams;
use custodia_wallet::wallet::{AccessRecord, Wallet, WatchUpdate};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::common::{WalletArgs, now, open_wallet, write_qr};
use crate::passphrase;

#[derive(Subcommand, Debug)]
pub(crate) enum WalletCommand {
    /// Create a new wallet with fresh keys.
    Init {
        #[command(flatten)]
        wallet: WalletArgs,
        /// The name shown to people who scan your contact card.
        #[arg(long, default_value = "Custodia wallet")]
        name: String,
    },
    /// Show the wallet's name, public keys and fingerprint.
    Show {
        #[command(flatten)]
        wallet: WalletArgs,
        #[arg(long)]
        json: bool,
        /// Also write the contact card as a QR code (.png or .svg).
        #[arg(long, value_name = "FILE")]
        qr: Option<PathBuf>,
    },
    /// Change the passphrase (the new one from CUSTODIA_NEW_PASSPHRASE or a prompt).
    Passwd {
        #[command(flatten)]
        wallet: WalletArgs,
    },
    /// Enroll this wallet on a ledger as a patient, and remember the ledger and its key: from a network
    /// profile (nothing trusted on first use), or from a bare URL for a local demo.
    Enroll {
        #[command(flatten)]
        wallet: WalletArgs,
        #[command(flatten)]
        join: crate::network::JoinArgs,
        #[arg(long)]
        json: bool,
    },
    /// Write the proof that one of this wallet's access events is on the ledger, as a C2SP tlog-proof
    /// (its index, audit path and the cosigned checkpoint) that anyone can check offline.
    Proof {
        #[command(flatten)]
        wallet: WalletArgs,
        /// The access event's index on the ledger (as `wallet sync --json` lists them).
        #[arg(long)]
        index: u64,
        /// Where to write it (default: standard output). By convention FILE.tlog-proof.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Export the evidence of a split view this wallet has seen (two checkpoints signed by its ledger
    /// that cannot both be true), as JSON, for the network's authority or a witness operator.
    Evidence {
        /// The wallet's folder (the evidence is public: no passphrase is asked).
        #[arg(long, value_name = "DIR", env = "CUSTODIA_WALLET")]
        wallet: PathBuf,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Read this wallet's entries from its ledger, verify every one, and show grants and access events.
    Sync {
        #[command(flatten)]
        wallet: WalletArgs,
        #[arg(long)]
        json: bool,
    },
    /// Follow this wallet's log live: one line per new entry as it arrives (a read, a refused attempt,
    /// a recovery request, a withdrawn permission), marked with how your preferences deliver it. Ctrl-C
    /// stops.
    Watch {
        #[command(flatten)]
        wallet: WalletArgs,
        /// One JSON object per line: kind, delivery, index, at, text.
        #[arg(long)]
        json: bool,
    },
    /// Show or change which kinds of entry interrupt you: instant (a notification), summary (the daily
    /// summary) or never (the log only). Kinds: break-glass, sensitive, refused, new-reader, routine.
    Prefs {
        /// The wallet directory (the preferences are not secret: no passphrase is asked).
        #[arg(long, env = "CUSTODIA_WALLET")]
        wallet: PathBuf,
        /// KIND=instant|summary|never. Repeatable.
        #[arg(long = "set", value_name = "KIND=DELIVERY")]
        set: Vec<String>,
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn wallet_command(command: WalletCommand) -> Result<ExitCode> {
    match command {
        WalletCommand::Init { wallet, name } => {
            let pass = passphrase::current(wallet.passphrase_file.as_deref(), true)?;
            let w = Wallet::create(&wallet.wallet, &name, pass, KdfParams::DEFAULT, now()?)?;
            println!("Created wallet {:?} in {}", w.name(), wallet.wallet.display());
            println!("signing key:  {}", w.signing_key());
            println!("fingerprint:  {}", w.fingerprint());
        }
        WalletCommand::Show { wallet, json, qr } => {
            let w = open_wallet(&wallet)?;
            let card = w.contact_card();
            if let Some(path) = &qr {
                write_qr(path, &QrPayload::Contact(card.clone()).encode())?;
            }
            if json {
                let out = json!({
                    "name": w.name(),
                    "signing_key": card.signing.to_string(),
                    "encryption_key": card.boxing.to_string(),
                    "contact_card": QrPayload::Contact(card.clone()).encode(),
                    "fingerprint": w.fingerprint().to_string(),
                    "created_at": w.created_at().to_string(),
                    "grants": w.grants().len(),
                    "ledger": w.ledger().map(|l| json!({
                        "url": l.url,
                        "enrollment_index": l.enrollment_index,
                        "checkpoint_size": l.checkpoint.size,
                        "network": l.network,
                        "witnesses": l.witness_policy.iter().flat_map(|p| p.witnesses.iter().map(|w| w.name.clone())).collect::<Vec<_>>(),
                    })),
                });
                println!("{out:#}");
            } else {
                println!("name:           {}", w.name());
                println!("signing key:    {}", card.signing);
                println!("encryption key: {}", card.boxing);
                println!("fingerprint:    {}", w.fingerprint());
                println!("grants issued:  {}", w.grants().len());
                if let Some(l) = w.ledger() {
                    println!("ledger:         {} (enrolled as entry {})", l.url, l.enrollment_index);
                }
                if let Some(path) = &qr {
                    println!("contact card QR written to {}", path.display());
                }
            }
        }
        WalletCommand::Passwd { wallet } => {
            let mut w = open_wallet(&wallet)?;
            w.change_passphrase(passphrase::new()?)?;
            println!("Passphrase changed.");
        }
        WalletCommand::Enroll { wallet, join, json } => {
            let (url, verifier_key, profile) = join.resolve()?;
            let mut w = open_wallet(&wallet)?;
            let e = match &profile {
                Some(profile) => w.enroll_network(profile, now()?)?,
                None => w.enroll(&url, verifier_key.as_deref(), now()?)?,
            };
            if json {
                let out = json!({
                    "ledger": e.url,
                    "index": e.index,
                    "already_enrolled": e.already_enrolled,
                    "verifier_key": e.verifier_key,
                    "verifier_key_trust": e.trust.as_str(),
                    "authority": e.authority.to_string(),
                    "checkpoint_size": e.checkpoint_size,
                    "network": e.network,
                    "witnesses": e.witnesses,
                });
                println!("{out:#}");
            } else {
                if e.already_enrolled {
                    println!(
                        "Already enrolled on {} as entry {}; the wallet now remembers this ledger.",
                        e.url, e.index
                    );
                } else {
                    println!("Enrolled on {} as entry {}.", e.url, e.index);
                }
                println!("ledger key: {}", e.verifier_key);
                println!("            {}", trust_note(e.trust));
                println!("authority:  {}", e.authority);
                println!("checkpoint: {} entries", e.checkpoint_size);
                match &e.network {
                    Some(fingerprint) => {
                        println!("network:    {fingerprint} (compare it with the fingerprint your network published)");
                        println!("witnesses:  {} (every checkpoint must carry their quorum)", e.witnesses.join(", "));
                    }
                    None => println!(
                        "nothing was pinned: no network profile, so no witnesses check this ledger for this wallet"
                    ),
                }
            }
        }
        WalletCommand::Proof { wallet, index, out } => {
            let w = open_wallet(&wallet)?;
            let shown = w.access_inclusion(index)?;
            let proof = shown.to_tlog_proof();
            match &out {
                // Exactly the proof's bytes: a trailing newline would end the checkpoint note twice.
                None => print!("{proof}"),
                Some(out) => crate::common::emit(Some(out), &proof)?,
            }
            if let Some(out) = &out {
                let by = if shown.cosigned_by.is_empty() {
                    String::new()
                } else {
                    format!(", cosigned by {}", shown.cosigned_by.join(", "))
                };
                println!(
                    "entry {index} is in the checkpoint of {} entries{by}; proof written to {}",
                    shown.checkpoint.size,
                    out.display()
                );
            }
        }
        WalletCommand::Evidence { wallet, out } => {
            let records =
                custodia_wallet::ledger::evidence::read_all(&wallet.join(custodia_wallet::ledger::evidence::DIR))
                    .map_err(|e| anyhow::anyhow!("cannot read the evidence in {}: {e}", wallet.display()))?;
            let text = serde_json::to_string_pretty(&json!({ "split_views": records }))?;
            crate::common::emit(Some(&out), &text)?;
            println!("{} split view(s) written to {}", records.len(), out.display());
        }
        WalletCommand::Sync { wallet, json } => {
            let mut w = open_wallet(&wallet)?;
            let now = now()?;
            let report = w.sync(now)?;
            print_sync(&report, w.access_events(), json);
        }
        WalletCommand::Watch { wallet, json } => {
            let mut w = open_wallet(&wallet)?;
            // Ctrl-C ends the process; every sync before it was saved whole.
            let stop = std::sync::atomic::AtomicBool::new(false);
            w.watch(&stop, |update| print_watch(&update, json))?;
        }
        WalletCommand::Prefs { wallet, set, json } => {
            anyhow::ensure!(
                wallet.join(custodia_wallet::vault::VAULT_FILE_NAME).is_file(),
                "there is no wallet in {}",
                wallet.display()
            );
            let mut prefs = NoticePrefs::load(&wallet)?;
            for setting in &set {
                prefs.set(setting)?;
            }
            if !set.is_empty() {
                prefs.save(&wallet)?;
            }
            if json {
                let chosen: serde_json::Map<String, serde_json::Value> =
                    prefs.all().into_iter().map(|(k, d)| (k.as_str().to_owned(), json!(d.as_str()))).collect();
                println!("{}", serde_json::Value::Object(chosen));
            } else {
                for (kind, delivery) in prefs.all() {
                    println!("{:<11} {:<8} {}", kind.as_str(), delivery.as_str(), kind.words());
                }
                println!("{:<11} {:<8} {} (always)", "recovery", "instant", NoticeKind::Recovery.words());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn trust_note(trust: KeyTrust) -> &'static str {
    match trust {
        KeyTrust::Given => "(the key you gave; the ledger agrees)",
        KeyTrust::FirstUse => {
            "(trusted on first use: the ledger announced this key; check it with the ledger's operator)"
        }
        KeyTrust::Stored => "(the key this wallet stored when it enrolled)",
        KeyTrust::Network => "(pinned by the network profile, with its authority and witness policy)",
    }
}

/// A watch's update: a notice on standard output (a line of text or JSON), the rest on standard error.
fn print_watch(update: &WatchUpdate, json: bool) {
    match update {
        WatchUpdate::Notice(n) if json => println!("{}", serde_json::to_string(n).unwrap_or_default()),
        WatchUpdate::Notice(n) => {
            let mark = match n.delivery {
                Delivery::Instant => "NOTIFY ",
                Delivery::Summary => "summary",
                Delivery::Never => "log    ",
            };
            println!("{}  {mark}  {}", n.at, n.text);
        }
        WatchUpdate::Live => eprintln!("Following the ledger: new entries show here within seconds."),
        WatchUpdate::Polling { reason } => eprintln!(
            "Cannot follow the ledger live ({reason}); reading the log every {} s until it can.",
            custodia_wallet::wallet::POLL_FALLBACK.as_secs()
        ),
        WatchUpdate::Warning(text) => eprintln!("warning: {text}"),
    }
}

pub(crate) fn print_sync(report: &custodia_wallet::wallet::SyncReport, access_events: &[AccessRecord], json: bool) {
    let events: Vec<serde_json::Value> = access_events
        .iter()
        .map(|a| {
            let mut v = serde_json::to_value(a.event.statement()).unwrap_or_default();
            v["index"] = json!(a.index);
            v["verified"] = json!(true);
            v
        })
        .collect();
    if json {
        let out = json!({
            "ledger": report.url,
            "checkpoint_size": report.checkpoint_size,
            "new_entries": report.new_entries,
            "complete": report.complete,
            "grants": report.grants.iter().map(|g| json!({
                "id": g.id.to_string(),
                "status": g.status.as_str(),
                "index": g.index,
                "revocation_index": g.revocation_index,
                "grantee": g.grantee.to_string(),
                "purpose": g.purpose.code(),
                "not_after": g.not_after.to_string(),
            })).collect::<Vec<_>>(),
            "access_events": events,
            "redacted": report.redacted.iter().map(|(i, k)| json!({"index": i, "kind": k.as_str()})).collect::<Vec<_>>(),
            "new_recovery_requests": serde_json::to_value(&report.new_recovery_requests).unwrap_or_default(),
            "witnessing": report.witnessing,
        });
        println!("{out:#}");
        return;
    }
    for r in &report.new_recovery_requests {
        println!(
            "WARNING: a new device asked your guardians to recover this wallet at {} (request {}). If it was not \
             you, cancel it now: custodia recover cancel --request {}",
            r.asked_at, r.request_id, r.request_id
        );
    }
    println!(
        "Synced with {}: {} new entries, all verified (checkpoint of {} entries).",
        report.url, report.new_entries, report.checkpoint_size
    );
    if !report.complete {
        println!("More entries remain: run `custodia wallet sync` again.");
    }
    if let Some(w) = report.witnessing.as_ref().filter(|w| w.lag_entries > 0) {
        let failing: Vec<&str> = w
            .witnesses
            .iter()
            .filter(|x| x.state != custodia_core::ledger_api::WitnessState::Ok)
            .map(|x| x.name.as_str())
            .collect();
        println!(
            "The ledger holds {} entries its witnesses have not cosigned yet (for {} s; not answering: {}): \
             they are not accepted until they are.",
            w.lag_entries,
            w.lag_seconds,
            if failing.is_empty() { "none".to_owned() } else { failing.join(", ") }
        );
    }
    if report.grants.is_empty() {
        println!("No grants.");
    }
    for g in &report.grants {
        let place = match (g.index, g.revocation_index) {
            (Some(i), Some(r)) => format!("entry {i}, revoked in entry {r}"),
            (Some(i), None) => format!("entry {i}"),
            (None, _) => "not on the ledger".to_owned(),
        };
        println!(
            "grant {}  {:<7}  {}  {}  until {}  ({place})",
            g.id,
            g.status.as_str(),
            g.purpose,
            g.grantee,
            g.not_after
        );
    }
    if access_events.is_empty() {
        println!("No access events.");
    }
    for a in access_events {
        let e = a.event.statement();
        let what: Vec<String> = e.resources.iter().map(|r| format!("{}/{}", r.resource_type, r.id)).collect();
        let outcome = match e.outcome {
            Outcome::Allowed => "read".to_owned(),
            Outcome::Denied => format!("was refused ({})", e.reason.as_deref().unwrap_or("no reason given")),
        };
        let grant = e.grant_id.map(|g| format!(" under grant {g}")).unwrap_or_default();
        println!(
            "entry {}  {}  {} ({}) {outcome} {}{grant} for {}{}",
            a.index,
            e.at,
            e.reader_name,
            e.organisation,
            if what.is_empty() { e.request.clone() } else { what.join(", ") },
            e.purpose,
            if e.break_glass { " [break-glass]" } else { "" }
        );
    }
    for (index, kind) in &report.redacted {
        println!("entry {index}  {} entry, body redacted", kind.as_str());
    }
}

//! Social recovery on the command line: `guardian` for the patient (add, list, check, remove) and for a
//! guardian (inbox, approve); `recover` for a new device (start, status, finish) and the old one (cancel).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use custodia_core::SigningPublicKey;
use custodia_core::entry::RequestId;
use custodia_core::qr;
use custodia_core::recovery::{DEFAULT_WAITING_SECONDS, default_threshold};
use custodia_core::time::{Timestamp, parse_duration};
use custodia_wallet::vault::KdfParams;
use custodia_wallet::wallet::{
    GuardianContact, GuardianSetView, Inbox, RecoveryPhase, RecoveryProgress, RequestState, Wallet,
};
use serde_json::json;

use crate::common::{WalletArgs, now, open_wallet, read_input};
use crate::passphrase;

/// Seconds added to the clock a guardian's wallet decides releases by. For end-to-end tests of the
/// waiting period only: requests to the ledger are still signed with the real time, and a patient's
/// entries dated by a shifted clock are refused as stale.
const TEST_CLOCK_OFFSET_VAR: &str = "CUSTODIA_TEST_CLOCK_OFFSET";

#[derive(Subcommand, Debug)]
pub enum GuardianCommand {
    /// Choose guardians: split this wallet's seed among them and deliver their shares (replaces any
    /// guardians chosen before, rotating the seed so their shares are worthless).
    Add {
        #[command(flatten)]
        wallet: WalletArgs,
        /// A guardian: a contact QR image (`custodia wallet show --qr`), its text, or an enrolled key.
        /// Repeat for each guardian (2 to 10).
        #[arg(long = "contact", value_name = "KEY|QR_IMAGE", required = true)]
        contacts: Vec<String>,
        /// How many guardians together can recover the wallet (default: a majority).
        #[arg(long, value_name = "K")]
        threshold: Option<u8>,
        /// How long guardians hold their shares back after a recovery request, for a veto: 24h, 3d.
        #[arg(long, value_name = "DURATION")]
        waiting_period: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show this wallet's guardians and when each last answered.
    List {
        #[command(flatten)]
        wallet: WalletArgs,
        #[arg(long)]
        json: bool,
    },
    /// Collect guardians' answers, then ask each again to prove it still holds a valid share.
    Check {
        #[command(flatten)]
        wallet: WalletArgs,
        #[arg(long)]
        json: bool,
    },
    /// Remove a guardian: the seed is rotated and re-split among the others.
    Remove {
        #[command(flatten)]
        wallet: WalletArgs,
        #[arg(long, value_name = "KEY")]
        contact: String,
        #[arg(long)]
        json: bool,
    },
    /// As a guardian: accept shares, answer checks, list recovery requests, release approved shares.
    Inbox {
        #[command(flatten)]
        wallet: WalletArgs,
        /// Also look at this ledger (for a wallet enrolled nowhere, such as a hospital's recovery desk).
        #[arg(long, value_name = "URL")]
        ledger: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// As a guardian: approve a recovery request once the patient read you the code on their new device.
    Approve {
        #[command(flatten)]
        wallet: WalletArgs,
        #[arg(long, value_name = "ID")]
        request: String,
        #[arg(long, value_name = "CODE")]
        code: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum RecoverCommand {
    /// On a new device: ask the patient's guardians for help. Prints the request id and the code to read
    /// to each guardian.
    Start {
        /// The new wallet's directory (created).
        #[arg(long, env = "CUSTODIA_WALLET")]
        wallet: PathBuf,
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
        /// The ledger, from the network profile (the recovered wallet stays pinned to it) or its address.
        #[command(flatten)]
        join: crate::network::JoinArgs,
        /// The patient's signing key (on their contact card, or shown by any of their guardians).
        #[arg(long, value_name = "KEY")]
        patient: String,
        #[arg(long)]
        json: bool,
    },
    /// On the new device: how many guardians have released their share, and the waiting period.
    Status {
        #[command(flatten)]
        wallet: WalletArgs,
        #[arg(long)]
        json: bool,
    },
    /// On the new device: recombine the shares, restore the wallet from the ledger, rotate its keys and
    /// re-split them to the guardians.
    Finish {
        #[command(flatten)]
        wallet: WalletArgs,
        #[arg(long)]
        json: bool,
    },
    /// On the patient's old device: veto recovery requests (all open ones, or --request). On a new device:
    /// give up the recovery under way and remove the device's wallet, as the app does.
    Cancel {
        #[command(flatten)]
        wallet: WalletArgs,
        #[arg(long, value_name = "ID")]
        request: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

/// The clock guardians decide releases by (see [`TEST_CLOCK_OFFSET_VAR`]).
fn guardian_now() -> Result<Timestamp> {
    let now = now()?;
    match std::env::var(TEST_CLOCK_OFFSET_VAR) {
        Ok(offset) => {
            let seconds: u64 = offset.parse().with_context(|| format!("{TEST_CLOCK_OFFSET_VAR} is not seconds"))?;
            Ok(now.checked_add(seconds)?)
        }
        Err(_) => Ok(now),
    }
}

fn print_json(value: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

/// A contact given on the command line: a signing key, a contact card QR's text, or a picture of the QR
/// code, read first.
fn contact(w: &mut Wallet, given: &str) -> Result<GuardianContact> {
    let text = if given.parse::<SigningPublicKey>().is_err() && Path::new(given).is_file() {
        let bytes = read_input(Path::new(given), "contact image")?;
        qr::decode_image(&bytes).with_context(|| given.to_owned())?
    } else {
        given.to_owned()
    };
    Ok(w.guardian_contact_from(&text).with_context(|| given.to_owned())?.0)
}

fn ts(t: Option<Timestamp>) -> String {
    t.map_or_else(|| "never".to_owned(), |t| t.to_string())
}

fn show_set(set: &GuardianSetView, json: bool) {
    if json {
        print_json(&serde_json::to_value(set).unwrap_or_default());
        return;
    }
    println!(
        "{} of {} guardians can recover this wallet; they wait {} after a request before releasing",
        set.threshold,
        set.count,
        human_duration(set.waiting_seconds)
    );
    println!("guardian set {} (ledger entry {})", set.set_id, set.entry_index.map_or("-".into(), |i| i.to_string()));
    for g in &set.guardians {
        println!(
            "  {}. {} {}  accepted: {}  last proved: {}",
            g.index,
            g.name,
            g.key,
            ts(g.accepted_at),
            ts(g.proved_at)
        );
    }
}

fn human_duration(seconds: u64) -> String {
    match seconds {
        s if s % 86_400 == 0 && s > 0 => format!("{} day(s)", s / 86_400),
        s if s % 3600 == 0 && s > 0 => format!("{} hour(s)", s / 3600),
        s if s % 60 == 0 && s > 0 => format!("{} minute(s)", s / 60),
        s => format!("{s} second(s)"),
    }
}

pub fn guardian(command: GuardianCommand) -> Result<ExitCode> {
    match command {
        GuardianCommand::Add { wallet, contacts, threshold, waiting_period, json } => {
            let waiting = match &waiting_period {
                Some(d) => parse_duration(d)?,
                None => DEFAULT_WAITING_SECONDS,
            };
            let mut w = open_wallet(&wallet)?;
            let mut guardians = Vec::with_capacity(contacts.len());
            for given in &contacts {
                guardians.push(contact(&mut w, given)?);
            }
            let count = u8::try_from(guardians.len()).unwrap_or(u8::MAX);
            let threshold = threshold.unwrap_or_else(|| default_threshold(count));
            let set = w.set_guardians(guardians, threshold, waiting, now()?)?;
            if !json {
                println!("Shares delivered; each guardian's wallet accepts its share at its next inbox check.");
            }
            show_set(&set, json);
        }
        GuardianCommand::List { wallet, json } => {
            let w = open_wallet(&wallet)?;
            let set = w.guardian_set().ok_or(custodia_wallet::WalletError::NoGuardians)?;
            show_set(&set, json);
            let held = w.held_shares();
            if !json && !held.is_empty() {
                println!("You hold shares for {} wallet(s) (see `custodia guardian inbox`).", held.len());
            }
        }
        GuardianCommand::Check { wallet, json } => {
            let mut w = open_wallet(&wallet)?;
            let set = w.check_guardians(now()?)?;
            if !json {
                println!("Asked every guardian to prove it holds a valid share; answers arrive as they check in.");
            }
            show_set(&set, json);
        }
        GuardianCommand::Remove { wallet, contact, json } => {
            let key: SigningPublicKey = contact.parse().context("--contact must be the guardian's signing key")?;
            let mut w = open_wallet(&wallet)?;
            let set = w.remove_guardian(&key, now()?)?;
            if !json {
                println!("Removed {key}; the seed was rotated and re-split, so the removed share is worthless.");
            }
            show_set(&set, json);
        }
        GuardianCommand::Inbox { wallet, ledger, json } => {
            let mut w = open_wallet(&wallet)?;
            let inbox = w.guardian_inbox(ledger.as_deref(), guardian_now()?)?;
            show_inbox(&inbox, json);
        }
        GuardianCommand::Approve { wallet, request, code, json } => {
            let id: RequestId = request.parse().map_err(anyhow::Error::msg).context("--request")?;
            let mut w = open_wallet(&wallet)?;
            let r = w.approve_recovery(id, &code, guardian_now()?)?;
            if json {
                print_json(&serde_json::to_value(&r).unwrap_or_default());
            } else if r.state == RequestState::Released {
                println!("Approved: your share of {}'s wallet was released to their new device.", r.patient_name);
            } else {
                println!(
                    "Approved: your share goes to {}'s new device at {} unless they cancel from their old device \
                     (your wallet sends it at its first inbox check after that).",
                    r.patient_name, r.release_at
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show_inbox(inbox: &Inbox, json: bool) {
    if json {
        print_json(&serde_json::to_value(inbox).unwrap_or_default());
        return;
    }
    if inbox.accepted > 0 {
        println!("Accepted {} new share(s).", inbox.accepted);
    }
    if inbox.proofs_sent > 0 {
        println!("Answered {} check(s) that you still hold a share.", inbox.proofs_sent);
    }
    let new = inbox.break_glass.len().saturating_sub(inbox.new_break_glass);
    for n in &inbox.break_glass[new..] {
        println!(
            "EMERGENCY ACCESS: {} ({}) read {}'s records with their emergency card at {}: {}",
            n.reader_name,
            n.organisation,
            n.patient_name,
            n.at,
            n.resources.join(", ")
        );
    }
    for id in &inbox.released {
        println!("Released your share for recovery request {id}.");
    }
    if inbox.shares.is_empty() {
        println!("You hold no shares.");
    }
    for s in &inbox.shares {
        println!(
            "share {} of {} for {} ({}), received {}{}",
            s.index,
            s.count,
            s.patient_name,
            s.patient,
            s.received_at,
            if s.superseded { " — superseded, no longer used" } else { "" }
        );
    }
    for r in &inbox.requests {
        let state = match r.state {
            RequestState::AwaitingCode => "call the patient, then: custodia guardian approve --request ID --code CODE",
            RequestState::Approved => "approved; released after the waiting period",
            RequestState::Released => "share released",
            RequestState::Cancelled => "cancelled from the patient's old device",
            RequestState::Locked => "locked after too many wrong codes",
        };
        println!(
            "recovery request {} for {} ({}), asked {}, releasable from {}: {state}",
            r.request_id, r.patient_name, r.patient, r.asked_at, r.release_at
        );
    }
}

fn show_progress(p: &RecoveryProgress, json: bool) {
    if json {
        print_json(&serde_json::to_value(p).unwrap_or_default());
        return;
    }
    println!("recovery request {} for {}", p.request_id, p.patient);
    println!("verification code: {}", p.code);
    let have = p.received.len();
    match p.phase {
        RecoveryPhase::Waiting => println!(
            "{} of {} needed guardians have approved, {have} released their share; shares are released from {}",
            p.approved.len(),
            p.threshold,
            p.release_at
        ),
        RecoveryPhase::Ready => {
            println!("{have} shares received, {} needed: run `custodia recover finish`", p.threshold)
        }
        RecoveryPhase::Cancelled => println!("cancelled from the patient's old device at {}", ts(p.cancelled_at)),
        RecoveryPhase::Superseded => println!("the patient's guardians changed since this request: start again"),
    }
}

pub fn recover(command: RecoverCommand) -> Result<ExitCode> {
    match command {
        RecoverCommand::Start { wallet, passphrase_file, join, patient, json } => {
            let patient: SigningPublicKey = patient.parse().context("--patient must be a signing key (cusig1…)")?;
            let (url, verifier_key, profile) = join.resolve()?;
            let pass = passphrase::current(passphrase_file.as_deref(), true)?;
            let (_, progress) = Wallet::start_recovery(
                &wallet,
                pass,
                KdfParams::DEFAULT,
                &url,
                verifier_key.as_deref(),
                profile.as_ref(),
                &patient,
                now()?,
            )?;
            if !json {
                println!("Asked {} guardians for help; {} of them must approve.", progress.count, progress.threshold);
                println!("Read the code below to each guardian, in person or on the phone.");
            }
            show_progress(&progress, json);
        }
        RecoverCommand::Status { wallet, json } => {
            let w = open_wallet(&wallet)?;
            let progress = w.recovery_status()?;
            show_progress(&progress, json);
            if progress.phase == RecoveryPhase::Cancelled {
                return Ok(ExitCode::from(1));
            }
        }
        RecoverCommand::Finish { wallet, json } => {
            let mut w = open_wallet(&wallet)?;
            let outcome = w.finish_recovery(now()?)?;
            if json {
                print_json(&serde_json::to_value(&outcome).unwrap_or_default());
            } else {
                println!("Recovered {:?}: {}", w.name(), outcome.patient);
                println!(
                    "restored {} grant(s), {} access event(s), {} guardian(s)",
                    outcome.grants, outcome.access_events, outcome.guardians
                );
                println!("rotated to a new key {}; the shares used are now worthless", outcome.new_key);
            }
        }
        RecoverCommand::Cancel { wallet, request, json } => {
            let only = request
                .as_deref()
                .map(|r| r.parse::<RequestId>().map_err(anyhow::Error::msg).context("--request"))
                .transpose()?;
            let mut w = open_wallet(&wallet)?;
            if w.is_recovering() {
                let dir = w.dir().to_owned();
                let id = w.abandon_recovery()?;
                if json {
                    print_json(&json!({ "abandoned": id.to_string() }));
                } else {
                    println!("Gave up recovery request {id} on this device; removed its wallet in {}.", dir.display());
                }
                return Ok(ExitCode::SUCCESS);
            }
            let cancelled = w.cancel_recovery(only, now()?)?;
            if json {
                print_json(&json!({ "cancelled": cancelled.iter().map(ToString::to_string).collect::<Vec<_>>() }));
            } else if cancelled.is_empty() {
                println!("No open recovery request for this wallet.");
            } else {
                for id in &cancelled {
                    println!("Cancelled recovery request {id}: guardians will not release shares for it.");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! Following the patient's log as it grows.
//!
//! The ledger streams the index of each new entry under the patient's tag as it is sequenced
//! (`GET /v1/tags/{tag}/events`). An entry is believed only once a sync has read it under a witnessed
//! checkpoint and verified it, so on each announced index the wallet syncs (again every
//! [`COVER_POLL`] until a checkpoint covers it) and turns what the sync found into [`Notice`]s. When the
//! stream cannot be followed the wallet reads its log every [`POLL_FALLBACK`] and keeps trying the
//! stream.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use custodia_core::time::Timestamp;

use super::{Wallet, WalletError};
use crate::ledger::LedgerError;
use crate::notices::{self, Delivery, Notice, NoticeKind, NoticePrefs};

/// How often the log is read while the ledger's stream cannot be followed.
pub const POLL_FALLBACK: Duration = Duration::from_secs(15);
/// How long an announced entry may wait for a witnessed checkpoint that covers it before the watch goes
/// back to the stream (a later sync still reads it).
const COVER_WAIT: Duration = Duration::from_secs(30);
/// How often the log is read while an announced entry waits for its checkpoint (the ledger publishes
/// one a second).
const COVER_POLL: Duration = Duration::from_millis(150);

/// What a watch reports as it goes.
#[derive(Debug)]
pub enum WatchUpdate {
    /// Something to tell the patient.
    Notice(Notice),
    /// The ledger's stream is followed: new entries arrive within seconds.
    Live,
    /// The stream is not available; the log is read every [`POLL_FALLBACK`] meanwhile.
    Polling { reason: String },
    /// Something the patient should know that is not an entry (unreadable preferences, a failed read).
    Warning(String),
}

impl Wallet {
    /// Follows this wallet's log until `stop` is set, calling `on` with each update. First it reads
    /// what arrived since the last sync. Ends with an error only for what a retry cannot fix (an entry
    /// that fails verification, a ledger that forked); outages fall back to polling.
    pub fn watch(&mut self, stop: &AtomicBool, mut on: impl FnMut(WatchUpdate)) -> Result<(), WalletError> {
        self.tell_new(&mut on)?;
        let mut backoff = Duration::from_secs(1);
        while !stop.load(Ordering::Relaxed) {
            let (ledger, link) = self.session()?;
            match ledger.client().follow_tag(&self.identity, link.synced_through) {
                Ok(mut stream) => {
                    on(WatchUpdate::Live);
                    backoff = Duration::from_secs(1);
                    loop {
                        match stream.next_index() {
                            Ok(Some(index)) => self.wait_covered(index, stop, &mut on)?,
                            Ok(None) => break,
                            Err(e) => {
                                on(WatchUpdate::Polling { reason: e.to_string() });
                                break;
                            }
                        }
                        if stop.load(Ordering::Relaxed) {
                            return Ok(());
                        }
                    }
                }
                Err(e) if is_outage(&e) => on(WatchUpdate::Polling { reason: e.to_string() }),
                Err(e) => return Err(e.into()),
            }
            // Whatever arrived while the stream was down, then the stream again after a pause.
            sleep_unless(stop, backoff);
            backoff = (backoff * 2).min(POLL_FALLBACK);
            self.tell_new(&mut on)?;
        }
        Ok(())
    }

    /// Syncs until entry `index` is read (or [`COVER_WAIT`] passes).
    fn wait_covered(
        &mut self,
        index: u64,
        stop: &AtomicBool,
        on: &mut impl FnMut(WatchUpdate),
    ) -> Result<(), WalletError> {
        let deadline = Instant::now() + COVER_WAIT;
        loop {
            self.tell_new(on)?;
            let read = self.ledger.as_ref().and_then(|l| l.synced_through).is_some_and(|s| s >= index);
            if read || Instant::now() >= deadline || stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            std::thread::sleep(COVER_POLL);
        }
    }

    /// One sync, and a notice for each access event, recovery request and withdrawn permission it found.
    /// An outage is a warning; the next sync reads what this one could not.
    fn tell_new(&mut self, on: &mut impl FnMut(WatchUpdate)) -> Result<(), WalletError> {
        let before = self.ledger.as_ref().and_then(|l| l.synced_through);
        let report = match self.sync(now()?) {
            Ok(report) => report,
            Err(WalletError::Ledger(e)) if is_outage(&e) => {
                on(WatchUpdate::Warning(format!("could not read the log: {e}")));
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let prefs = NoticePrefs::load(self.dir()).unwrap_or_else(|e| {
            on(WatchUpdate::Warning(format!("{e}; the default choices apply")));
            NoticePrefs::default()
        });
        for notice in notices::access_notices(self.access_events(), &report.new_access_events, &prefs) {
            on(WatchUpdate::Notice(notice));
        }
        for alert in &report.new_recovery_requests {
            on(WatchUpdate::Notice(Notice {
                kind: NoticeKind::Recovery,
                delivery: Delivery::Instant,
                index: alert.index,
                at: alert.asked_at.to_string(),
                text: format!(
                    "A new device asked your guardians to recover this wallet. If it was not you, cancel it now \
                     (request {}).",
                    alert.request_id
                ),
            }));
        }
        for grant in &report.grants {
            let Some(revoked) = grant.revocation_index.filter(|&i| before.is_none_or(|b| i > b)) else { continue };
            let name = self
                .ledger
                .as_ref()
                .and_then(|l| l.members.iter().find(|m| m.key == grant.grantee))
                .map_or_else(|| "a reader".to_owned(), |m| format!("{} at {}", m.name, m.org));
            on(WatchUpdate::Notice(Notice {
                kind: NoticeKind::Routine,
                delivery: prefs.delivery(NoticeKind::Routine),
                index: revoked,
                at: now()?.to_string(),
                text: format!("Your permission for {name} was withdrawn; they can no longer read your records."),
            }));
        }
        Ok(())
    }
}

/// A failure a later attempt may not meet: the ledger unreachable, slow or refusing its certificate.
fn is_outage(e: &LedgerError) -> bool {
    matches!(e, LedgerError::Transport { .. } | LedgerError::Status { .. })
}

fn sleep_unless(stop: &AtomicBool, pause: Duration) {
    let until = Instant::now() + pause;
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100).min(until.saturating_duration_since(Instant::now())));
    }
}

/// The real clock, as the ledger compares it with its own.
fn now() -> Result<Timestamp, WalletError> {
    Ok(crate::ledger::request_time()?)
}

//! News of the patient's log without holding the wallet: a thread follows the ledger's stream of new
//! entries under the patient's tag while the wallet is unlocked, and `wait_news` waits for the next one.
//! The UI then syncs, which reads and verifies the entry; the stream itself is only a signal to do so.
//!
//! The thread holds no secret: it borrows the wallet's signing key under the app's lock for each
//! connection and drops it once connected, and it ends at the next entry or keep-alive after the wallet
//! locks.

use std::sync::{Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use custodia_wallet::ledger::LedgerClient;
use serde::Deserialize;

use super::{App, AppError, Session, args, to_json};
use crate::views::News;

/// The longest a UI's wait for news may last; it asks again after.
pub const MAX_WAIT_MS: u32 = 25_000;

/// What the follower learned, shared with waiting commands.
#[derive(Default)]
pub(crate) struct Feed {
    state: Mutex<FeedState>,
    changed: Condvar,
}

#[derive(Default)]
struct FeedState {
    /// The newest entry the stream announced.
    latest: Option<u64>,
    /// The stream is connected.
    live: bool,
    /// A follower thread runs.
    following: bool,
}

impl Feed {
    fn update(&self, change: impl FnOnce(&mut FeedState)) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        change(&mut state);
        self.changed.notify_all();
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitArgs {
    /// The newest entry the UI knows of; the wait ends when a newer one is announced.
    #[serde(default)]
    after: Option<u64>,
    wait_ms: u32,
}

impl App {
    /// `wait_news`: waits up to `wait_ms` for an entry newer than `after`, without holding the wallet.
    pub(crate) fn wait_news(&self, args_value: serde_json::Value) -> Result<serde_json::Value, AppError> {
        let WaitArgs { after, wait_ms } = args(args_value)?;
        if wait_ms > MAX_WAIT_MS {
            return Err(AppError::bad_input(format!("wait at most {MAX_WAIT_MS} ms, then ask again")));
        }
        {
            let mut inner = self.inner();
            let Session::Unlocked(u) = &mut inner.session else { return Err(AppError::locked()) };
            if u.wallet.ledger().is_none() {
                return Err(AppError::new(super::ErrorCode::NotEnrolled, "enroll on a ledger first"));
            }
        }
        self.start_following();
        let deadline = Instant::now() + Duration::from_millis(u64::from(wait_ms));
        let mut state = self.feed.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let newer = state.latest.is_some_and(|l| after.is_none_or(|a| l > a));
            let left = deadline.saturating_duration_since(Instant::now());
            if newer || left.is_zero() {
                return to_json(News { latest: state.latest.map(|l| l as i64), live: state.live });
            }
            state = self.feed.changed.wait_timeout(state, left).unwrap_or_else(|p| p.into_inner()).0;
        }
    }

    fn start_following(&self) {
        {
            let mut state = self.feed.state.lock().unwrap_or_else(|p| p.into_inner());
            if state.following {
                return;
            }
            state.following = true;
        }
        let app = self.me.clone();
        let spawned = std::thread::Builder::new().name("custodia-news".into()).spawn(move || follow(&app));
        if spawned.is_err() {
            self.feed.update(|s| s.following = false);
        }
    }
}

/// Follows the stream while the wallet stays unlocked, reconnecting with a growing pause.
fn follow(app: &Weak<App>) {
    let mut pause = Duration::from_secs(1);
    loop {
        let Some(strong) = app.upgrade() else { return };
        // The key only for as long as it takes to connect.
        let connected = {
            let credentials = {
                let inner = strong.inner();
                match &inner.session {
                    Session::Unlocked(u) => u.wallet.ledger().map(|l| {
                        let after = l.synced_through;
                        (l.url.clone(), u.wallet.service_identity(), after)
                    }),
                    _ => None,
                }
            };
            let Some((url, identity, synced)) = credentials else {
                strong.feed.update(|s| {
                    s.following = false;
                    s.live = false;
                });
                return;
            };
            let after = strong.feed.state.lock().unwrap_or_else(|p| p.into_inner()).latest.max(synced);
            LedgerClient::new(&url).and_then(|client| client.follow_tag(&identity, after))
        };
        match connected {
            Ok(mut stream) => {
                pause = Duration::from_secs(1);
                strong.feed.update(|s| s.live = true);
                drop(strong);
                while let Ok(Some(index)) = stream.next_index() {
                    let Some(strong) = app.upgrade() else { return };
                    if !matches!(strong.inner().session, Session::Unlocked(_)) {
                        break;
                    }
                    strong.feed.update(|s| s.latest = s.latest.max(Some(index)));
                }
            }
            Err(_) => drop(strong),
        }
        if let Some(strong) = app.upgrade() {
            strong.feed.update(|s| s.live = false);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_secs(15));
    }
}

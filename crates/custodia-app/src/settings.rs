//! The app's own preferences, kept beside the vault in `app.json`. Nothing here is secret, and the
//! app needs it before the wallet is unlocked (the auto-lock time applies to the unlock screen's wallet).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{AppError, ErrorCode};

pub const SETTINGS_FILE_NAME: &str = "app.json";
pub const MAX_AUTO_LOCK_MINUTES: u32 = 240;
const DEFAULT_AUTO_LOCK_MINUTES: u32 = 5;
/// The settings file is a few bytes; a larger one is not ours.
const MAX_SETTINGS_BYTES: u64 = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSettings {
    pub auto_lock_minutes: u32,
}

impl Default for AppSettings {
    fn default() -> Self {
        AppSettings { auto_lock_minutes: DEFAULT_AUTO_LOCK_MINUTES }
    }
}

impl AppSettings {
    /// The stored settings, or the defaults if there are none or they are unreadable (preferences are
    /// not worth refusing to start over).
    pub fn load(dir: &Path) -> AppSettings {
        let path = dir.join(SETTINGS_FILE_NAME);
        let small = std::fs::metadata(&path).is_ok_and(|m| m.len() <= MAX_SETTINGS_BYTES);
        small
            .then(|| std::fs::read(&path).ok())
            .flatten()
            .and_then(|bytes| serde_json::from_slice::<AppSettings>(&bytes).ok())
            .filter(|s| s.valid())
            .unwrap_or_default()
    }

    fn valid(&self) -> bool {
        (1..=MAX_AUTO_LOCK_MINUTES).contains(&self.auto_lock_minutes)
    }

    pub fn save(&self, dir: &Path) -> Result<(), AppError> {
        if !self.valid() {
            return Err(AppError::new(
                ErrorCode::BadInput,
                format!("auto-lock must be 1 to {MAX_AUTO_LOCK_MINUTES} minutes"),
            ));
        }
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| AppError::new(ErrorCode::Internal, e.to_string()))?;
        custodia_wallet::vault::write_atomic(&dir.join(SETTINGS_FILE_NAME), &bytes)
            .map_err(|e| AppError::new(ErrorCode::Internal, e.to_string()))
    }
}

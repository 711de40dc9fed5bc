//! The commands of an unlocked wallet, by screen; `App::dispatch` picks the module.

use super::*;

pub(crate) mod access_log;
pub(crate) mod care;
pub(crate) mod grants;
pub(crate) mod home;
pub(crate) mod recovery;

/// One command for an unlocked wallet, as `App::dispatch` hands it to its screen's module.
pub(crate) struct Call<'a> {
    pub(crate) u: &'a mut Unlocked,
    pub(crate) args: Value,
    /// The app's settings (the auto-lock time the wallet's summary reports).
    pub(crate) settings: &'a AppSettings,
    pub(crate) now: Timestamp,
}

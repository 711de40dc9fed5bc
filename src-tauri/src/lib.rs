//! Custodia's desktop (and, from the same crate, mobile) shell.
//!
//! One window over the `ui/` front end and one Tauri command per app command, each a thin async
//! wrapper that runs [`custodia_app::App::dispatch`] on a blocking worker, so Argon2 and network calls
//! never hold the UI thread. Errors cross to JavaScript as `{ code, message }`. After a `sync`, each
//! new access event becomes a desktop notification.
//!
//! What this crate is not: it decides nothing. Wallet logic lives in `custodia-app` and below; this is
//! the only crate that knows about Tauri.

#[cfg(target_os = "linux")]
mod camera;
mod commands;
mod notify;

use std::path::PathBuf;

use custodia_app::App;
use tauri::Manager;

/// Overrides the wallet directory (default: `<app data dir>/wallet`).
pub const WALLET_VAR: &str = "CUSTODIA_WALLET";
/// The ledger URL the app offers when enrolling.
pub const LEDGER_VAR: &str = "CUSTODIA_LEDGER";

#[cfg_attr(mobile, tauri::mobile_entry_point)]
pub fn run() {
    let result = tauri::Builder::default()
        .plugin(tauri_plugin_notification::init())
        .invoke_handler(commands::handler())
        .setup(|app| {
            let wallet_dir = match non_empty_env(WALLET_VAR) {
                Some(dir) => PathBuf::from(dir),
                None => app.path().app_data_dir()?.join("wallet"),
            };
            let state = App::new(wallet_dir, non_empty_env(LEDGER_VAR));
            // The locker thread ends by itself once the app (its last strong reference) is gone.
            drop(state.spawn_idle_locker());
            app.manage(state);
            // The "main" webview is created from tauri.conf.json; on Linux its camera (for the Scan screen)
            // is off until WebKitGTK is told otherwise.
            #[cfg(target_os = "linux")]
            if let Some(window) = app.get_webview_window("main") {
                camera::allow_camera(&window)?;
            }
            Ok(())
        })
        .run(tauri::generate_context!());
    if let Err(error) = result {
        eprintln!("custodia: the app could not start: {error}");
        std::process::exit(1);
    }
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

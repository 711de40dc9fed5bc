//! One Tauri command per app command. Each takes the JSON arguments object (`invoke(name, { args })`),
//! runs the blocking dispatcher on a worker thread and hands back its JSON or its `{ code, message }`.

use std::sync::Arc;

use custodia_app::{App, AppError, ErrorCode};
use serde_json::Value;
use tauri::{AppHandle, State};

/// Runs one command off the UI thread; after a successful `sync`, notifies of the new access events.
async fn run(handle: AppHandle, app: Arc<App>, command: &'static str, args: Value) -> Result<Value, AppError> {
    let result = tauri::async_runtime::spawn_blocking(move || app.dispatch(command, args))
        .await
        .map_err(|_| AppError::new(ErrorCode::Internal, "The command stopped unexpectedly. Please try again."))??;
    if command == "sync" {
        crate::notify::new_events(&handle, &result);
    }
    Ok(result)
}

macro_rules! commands {
    ($($name:ident),* $(,)?) => {
        $(
            #[tauri::command]
            async fn $name(handle: AppHandle, state: State<'_, Arc<App>>, args: Value) -> Result<Value, AppError> {
                run(handle, state.inner().clone(), stringify!($name), args).await
            }
        )*

        /// The commands registered with Tauri.
        #[cfg(test)]
        pub(crate) const REGISTERED: &[&str] = &[$(stringify!($name)),*];

        /// The invoke handler that routes each registered command.
        pub(crate) fn handler() -> impl Fn(tauri::ipc::Invoke<tauri::Wry>) -> bool + Send + Sync + 'static {
            tauri::generate_handler![$($name),*]
        }
    };
}

commands![
    status,
    create_wallet,
    unlock,
    lock,
    enroll,
    network_profile,
    join_network,
    set_ledger_url,
    change_passphrase,
    set_auto_lock,
    notice_prefs,
    set_notice_prefs,
    contact_qr,
    purposes,
    home,
    grants,
    grant,
    contacts,
    resolve_contact,
    scan_image,
    create_grant,
    post_grant,
    revoke_grant,
    export_consent,
    preview_grant,
    own_records,
    sync,
    wait_news,
    access_log,
    access_proof,
    export_access_csv,
    export_audit_bundle,
    open_request,
    answer_request,
    create_emergency_card,
    guardians,
    guardian_contact,
    set_guardians,
    remove_guardian,
    check_guardians,
    guardian_inbox,
    approve_recovery,
    cancel_recovery,
    start_recovery,
    recovery_status,
    finish_recovery,
    abandon_recovery,
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::REGISTERED;

    /// What build.rs gives `allow-<command>` permissions to.
    const PERMITTED: &[&str] = include!("permitted.rs");

    fn set<'a>(names: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
        names.into_iter().map(str::to_owned).collect()
    }

    fn no_repeats(names: &[&str]) {
        assert_eq!(set(names.iter().copied()).len(), names.len(), "a command is listed twice: {names:?}");
    }

    #[test]
    fn registered_commands_are_the_app_commands() {
        no_repeats(REGISTERED);
        assert_eq!(set(REGISTERED.iter().copied()), set(custodia_app::COMMANDS.iter().copied()));
    }

    #[test]
    fn permitted_commands_are_the_app_commands() {
        no_repeats(PERMITTED);
        assert_eq!(set(PERMITTED.iter().copied()), set(custodia_app::COMMANDS.iter().copied()));
    }

    /// The main window may call exactly the app's commands, plus Tauri's core defaults and notifications.
    #[test]
    fn capability_grants_exactly_the_app_commands() {
        let capability: serde_json::Value =
            serde_json::from_str(include_str!("../capabilities/default.json")).expect("capability file is JSON");
        assert_eq!(capability["windows"], serde_json::json!(["main"]));
        let granted: Vec<&str> = capability["permissions"]
            .as_array()
            .expect("permissions is a list")
            .iter()
            .map(|p| p.as_str().expect("each permission is a plain identifier"))
            .collect();
        no_repeats(&granted);
        let mut expected = set(["core:default", "notification:default"]);
        expected.extend(custodia_app::COMMANDS.iter().map(|c| format!("allow-{}", c.replace('_', "-"))));
        assert_eq!(set(granted), expected);
    }
}

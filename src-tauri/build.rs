//! Tauri's build step: embeds tauri.conf.json and the front end, and autogenerates an `allow-<command>`
//! permission for each app command, so a command the capability file does not grant cannot be called.

const COMMANDS: &[&str] = include!("src/permitted.rs");

fn main() {
    let attributes = tauri_build::Attributes::new().app_manifest(tauri_build::AppManifest::new().commands(COMMANDS));
    if let Err(error) = tauri_build::try_build(attributes) {
        // A build script reports failure by panicking; this is its error message, not an invariant.
        panic!("tauri-build failed: {error:#}");
    }
}

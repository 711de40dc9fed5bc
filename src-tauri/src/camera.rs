//! The camera for the Scan screen's QR reader in the Linux webview (WebKitGTK).
//!
//! WebKitGTK has media capture off by default and denies any permission request that no handler answers, so
//! `getUserMedia` fails there. This turns media streams on for the main window and answers its permission
//! requests: a camera-only request from the app's own page is allowed; everything else (the microphone,
//! screen capture, geolocation, notifications through WebKit, any other page) is denied.
//!
//! Elsewhere the webview asks the operating system, which asks the patient: macOS and iOS show
//! `NSCameraUsageDescription` from `Info.plist` (merged into the app's by the Tauri CLI).

use tauri::webview::PlatformWebview;
use tauri::{Runtime, WebviewWindow};
use webkit2gtk::glib::object::Cast;
use webkit2gtk::{
    PermissionRequestExt, SettingsExt, UserMediaPermissionRequest, UserMediaPermissionRequestExt, WebViewExt,
};

/// The origin the app's own page is served from in the Linux webview.
const APP_ORIGIN: &str = "tauri://localhost";

/// Lets the page in `window` use the camera (and nothing else WebKit asks permission for).
pub fn allow_camera<R: Runtime>(window: &WebviewWindow<R>) -> tauri::Result<()> {
    window.with_webview(|platform: PlatformWebview| {
        let webview = platform.inner();
        if let Some(settings) = webview.settings() {
            settings.set_enable_media_stream(true);
            settings.set_enable_mediasource(true);
        }
        webview.connect_permission_request(|webview, request| {
            let camera_only = request
                .downcast_ref::<UserMediaPermissionRequest>()
                .is_some_and(|media| media.is_for_video_device() && !media.is_for_audio_device());
            let own_page = webview.uri().is_some_and(|uri| is_app_page(&uri));
            if camera_only && own_page {
                request.allow();
            } else {
                request.deny();
            }
            // Handled: WebKit asks nothing further.
            true
        });
    })
}

/// True for an address of the app's own page (`tauri://localhost`, with any path), and for nothing else.
fn is_app_page(uri: &str) -> bool {
    uri.strip_prefix(APP_ORIGIN).is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?', '#']))
}

#[cfg(test)]
mod tests {
    use super::is_app_page;

    #[test]
    fn only_the_apps_own_page() {
        for uri in
            ["tauri://localhost", "tauri://localhost/", "tauri://localhost/index.html#/scan", "tauri://localhost?x"]
        {
            assert!(is_app_page(uri), "{uri}");
        }
        for uri in [
            "tauri://localhost.evil.example/",
            "tauri://localhost:8080/",
            "tauri://localhostx",
            "http://localhost/",
            "https://tauri.localhost/",
            "about:blank",
            "",
        ] {
            assert!(!is_app_page(uri), "{uri}");
        }
    }
}

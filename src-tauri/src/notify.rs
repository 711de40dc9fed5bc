//! Desktop notifications for the access events a `sync` brought in.
//!
//! Only the events the patient chose to be told of at once (`delivery: instant` in the sync's `notices`)
//! raise one; the rest wait for the daily summary or stay in the log. A notice is the sentence the wallet
//! wrote in plain words (who, which kinds of record, why a refusal): never record contents, keys, FHIR
//! types or codes. Emergency-card reads come first, then sensitive records, refusals and new readers.

use serde_json::Value;
use tauri::{AppHandle, Runtime};
use tauri_plugin_notification::NotificationExt;

/// At most this many notices per sync; the rest are counted in one more, so a first sync of a busy record
/// does not bury the desktop.
pub const MAX_NOTICES: usize = 10;

#[derive(Debug, PartialEq, Eq)]
pub struct Notice {
    pub title: String,
    pub body: String,
}

/// Shows a notice for each event in a `SyncResult` the patient wants to be told of at once. A
/// notification service that is missing or refuses is reported on stderr and otherwise ignored: the
/// events are in the app either way.
pub fn new_events<R: Runtime>(handle: &AppHandle<R>, sync_result: &Value) {
    for notice in notices(sync_result) {
        let shown = handle.notification().builder().title(&notice.title).body(&notice.body).show();
        if let Err(error) = shown {
            eprintln!("custodia: could not show a notification: {error}");
        }
    }
}

/// The notices for a `SyncResult`: its instant ones, the most pressing kinds first.
pub fn notices(sync_result: &Value) -> Vec<Notice> {
    let mut told: Vec<&Value> = sync_result["notices"]
        .as_array()
        .map(|a| a.iter().filter(|n| n["delivery"].as_str() == Some("instant")).collect())
        .unwrap_or_default();
    told.sort_by_key(|n| urgency(n["kind"].as_str().unwrap_or_default()));
    let mut out: Vec<Notice> = told
        .iter()
        .take(MAX_NOTICES)
        .map(|n| Notice {
            title: title(n["kind"].as_str().unwrap_or_default()).into(),
            body: n["text"].as_str().unwrap_or_default().to_owned(),
        })
        .collect();
    let rest = told.len().saturating_sub(MAX_NOTICES);
    if rest > 0 {
        out.push(Notice {
            title: "More access to your records".into(),
            body: format!("{rest} more access {} since your last sync. Open Custodia to review them.", plural(rest)),
        });
    }
    out
}

fn urgency(kind: &str) -> u8 {
    match kind {
        "break-glass" => 0,
        "sensitive" => 1,
        "refused" => 2,
        "new-reader" => 3,
        _ => 4,
    }
}

fn title(kind: &str) -> &'static str {
    match kind {
        "break-glass" => "Someone used your emergency card",
        "sensitive" => "Your sensitive records were read",
        "refused" => "Access to your records refused",
        "new-reader" => "Someone new read your records",
        _ => "Your records were read",
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "event" } else { "events" }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn notice(kind: &str, delivery: &str, text: &str) -> Value {
        json!({ "index": 7, "kind": kind, "delivery": delivery, "text": text })
    }

    fn sync(notices: Vec<Value>) -> Value {
        json!({ "checkpoint_size": 12, "new_events": [], "notices": notices, "complete": true })
    }

    #[test]
    fn only_instant_notices_show_the_most_pressing_first() {
        let result = sync(vec![
            notice("routine", "summary", "Dr Grace Hopper at St Mary's read your lab results (1 record)."),
            notice("refused", "instant", "Dr Ada Byron tried to read your allergies and was refused: ..."),
            notice("break-glass", "instant", "Dr Who at City ER read your allergies using your emergency card."),
            notice("new-reader", "never", "Dr New read your medicines (2 records)."),
        ]);
        let got = notices(&result);
        let got: Vec<(&str, &str)> = got.iter().map(|n| (n.title.as_str(), n.body.as_str())).collect();
        assert_eq!(
            got,
            [
                (
                    "Someone used your emergency card",
                    "Dr Who at City ER read your allergies using your emergency card."
                ),
                ("Access to your records refused", "Dr Ada Byron tried to read your allergies and was refused: ..."),
            ]
        );
    }

    #[test]
    fn no_events_no_notices() {
        assert!(notices(&sync(vec![])).is_empty());
        assert!(notices(&json!({})).is_empty());
    }

    #[test]
    fn a_flood_is_capped_with_one_summary() {
        let many = (0..MAX_NOTICES + 3).map(|_| notice("routine", "instant", "Dr X read your records.")).collect();
        let got = notices(&sync(many));
        assert_eq!(got.len(), MAX_NOTICES + 1);
        assert_eq!(got[MAX_NOTICES].body, "3 more access events since your last sync. Open Custodia to review them.");
    }
}

//! Desktop notifications for the access events a `sync` brought in.
//!
//! A notice says who read (or tried to read), from which organisation, and which categories of record,
//! as the access row carries them; never record contents, keys or anything secret. Break-glass and
//! refused reads are worded apart from ordinary ones, and come first (see [`urgency`]).

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

/// Shows a notice for each event in a `SyncResult`'s `new_events`. A notification service that is missing
/// or refuses is reported on stderr and otherwise ignored: the events are in the app either way.
pub fn new_events<R: Runtime>(handle: &AppHandle<R>, sync_result: &Value) {
    for notice in notices(sync_result) {
        let shown = handle.notification().builder().title(&notice.title).body(&notice.body).show();
        if let Err(error) = shown {
            eprintln!("custodia: could not show a notification: {error}");
        }
    }
}

/// The notices for a `SyncResult`: break-glass first, then refused reads, then ordinary reads.
pub fn notices(sync_result: &Value) -> Vec<Notice> {
    let mut rows: Vec<&Value> = sync_result["new_events"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
    rows.sort_by_key(|row| urgency(row));
    let mut out: Vec<Notice> = rows.iter().take(MAX_NOTICES).map(|row| notice(row)).collect();
    let rest = rows.len().saturating_sub(MAX_NOTICES);
    if rest > 0 {
        out.push(Notice {
            title: "More access to your records".into(),
            body: format!("{rest} more access {} since your last sync. Open Custodia to review them.", plural(rest)),
        });
    }
    out
}

fn notice(row: &Value) -> Notice {
    let who = who(row);
    let what = what(row);
    let (title, body) = match (is_break_glass(row), is_denied(row)) {
        (true, false) => {
            ("Emergency access to your records", format!("{who} used break-glass emergency access to {what}."))
        }
        (true, true) => {
            ("Emergency access refused", format!("{who} tried break-glass emergency access to {what} and was refused."))
        }
        (false, true) => ("Access to your records refused", format!("{who} asked to read {what} and was refused.")),
        (false, false) => ("Your records were read", format!("{who} read {what}.")),
    };
    Notice { title: title.into(), body }
}

/// 0 for break-glass access that was allowed (records were opened), then refused break-glass, then
/// refused reads, then ordinary reads.
fn urgency(row: &Value) -> u8 {
    match (is_break_glass(row), is_denied(row)) {
        (true, false) => 0,
        (true, true) => 1,
        (false, true) => 2,
        (false, false) => 3,
    }
}

fn is_break_glass(row: &Value) -> bool {
    row["break_glass"].as_bool().unwrap_or(false)
}

fn is_denied(row: &Value) -> bool {
    row["outcome"].as_str() != Some("allowed")
}

/// "Dr. Grace Hopper (St Mary's)", or "An unnamed reader" when the reader is not known by name.
fn who(row: &Value) -> String {
    let name = row["reader"]["name"].as_str().filter(|s| !s.trim().is_empty()).unwrap_or("An unnamed reader");
    match row["organisation"].as_str().filter(|s| !s.trim().is_empty()) {
        Some(organisation) => format!("{name} ({organisation})"),
        None => name.to_owned(),
    }
}

/// "your laboratory and vital-signs records", or "your records" when no category is named.
fn what(row: &Value) -> String {
    let categories: Vec<&str> = row["categories"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).filter(|s| !s.trim().is_empty()).collect())
        .unwrap_or_default();
    match categories.as_slice() {
        [] => "your records".into(),
        [one] => format!("your {one} records"),
        [init @ .., last] => format!("your {} and {last} records", init.join(", ")),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "event" } else { "events" }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn row(name: Option<&str>, organisation: &str, outcome: &str, break_glass: bool, categories: &[&str]) -> Value {
        json!({
            "index": 7, "at": 1_760_000_000_000u64,
            "reader": { "key": "cusig1reader", "name": name, "organisation": organisation, "role": "provider", "verified": true },
            "organisation": organisation, "gateway": "cusig1gateway",
            "purpose": { "code": "TREAT", "display": "treatment" },
            "outcome": outcome, "break_glass": break_glass,
            "request": "GET Observation?category=laboratory",
            "resources": [], "categories": categories, "labels": [], "grant_id": null, "reason": null, "verified": true
        })
    }

    fn sync(rows: Vec<Value>) -> Value {
        json!({ "checkpoint_size": 12, "new_events": rows, "complete": true })
    }

    #[test]
    fn one_notice_per_event_worded_by_kind_urgent_first() {
        let result = sync(vec![
            row(Some("Dr. Grace Hopper"), "St Mary's", "allowed", false, &["laboratory"]),
            row(Some("Dr. Ada Byron"), "City ER", "denied", false, &["laboratory", "vital-signs"]),
            row(Some("Dr. Who"), "City ER", "allowed", true, &[]),
            row(None, "", "denied", true, &["a", "b", "c"]),
        ]);
        let got = notices(&result);
        let want = [
            (
                "Emergency access to your records",
                "Dr. Who (City ER) used break-glass emergency access to your records.",
            ),
            (
                "Emergency access refused",
                "An unnamed reader tried break-glass emergency access to your a, b and c records and was refused.",
            ),
            (
                "Access to your records refused",
                "Dr. Ada Byron (City ER) asked to read your laboratory and vital-signs records and was refused.",
            ),
            ("Your records were read", "Dr. Grace Hopper (St Mary's) read your laboratory records."),
        ];
        let got: Vec<(&str, &str)> = got.iter().map(|n| (n.title.as_str(), n.body.as_str())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn no_events_no_notices() {
        assert!(notices(&sync(vec![])).is_empty());
        assert!(notices(&json!({})).is_empty());
    }

    #[test]
    fn a_flood_is_capped_with_one_summary() {
        let rows = (0..MAX_NOTICES + 3).map(|_| row(Some("Dr. X"), "Y", "allowed", false, &[])).collect();
        let got = notices(&sync(rows));
        assert_eq!(got.len(), MAX_NOTICES + 1);
        assert_eq!(got[MAX_NOTICES].body, "3 more access events since your last sync. Open Custodia to review them.");
    }

    #[test]
    fn notices_carry_nothing_but_names_organisations_and_categories() {
        let got = notices(&sync(vec![row(Some("Dr. X"), "Y", "allowed", false, &["laboratory"])]));
        let text = format!("{} {}", got[0].title, got[0].body);
        for private in ["cusig1", "GET ", "TREAT", "Observation"] {
            assert!(!text.contains(private), "{text:?} shows {private:?}");
        }
    }
}

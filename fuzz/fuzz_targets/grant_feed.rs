//! What a gateway reads from the ledger's grant-change feed: any bytes as a server-sent event stream, cut
//! into events, each parsed, and its data read as a grant change or a head. Nothing panics, every cut falls
//! inside the stream, and a change that parses prints back to one that parses the same.
#![no_main]
use custodia_core::ledger_api::{FeedHead, GrantChange};
use custodia_core::sse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Some(end) = sse::event_end(rest) {
        assert!(end <= rest.len() && end >= 2);
        let event = sse::Event::parse(&String::from_utf8_lossy(&rest[..end]));
        if let Ok(change) = serde_json::from_str::<GrantChange>(&event.data) {
            let again = serde_json::to_string(&change).unwrap_or_default();
            let reparsed = serde_json::from_str::<GrantChange>(&again).map(|c| (c.index, c.kind, c.grant_id));
            assert_eq!(reparsed.ok(), Some((change.index, change.kind, change.grant_id)));
        }
        let _ = serde_json::from_str::<FeedHead>(&event.data);
        rest = &rest[end..];
    }
});

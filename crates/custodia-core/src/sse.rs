//! Server-sent events (the WHATWG `text/event-stream` format) as clients of the ledger's feeds read them:
//! the stream cut into events at blank lines, each event's type, id and data.

/// The end of the first whole event in `buffer` (past its blank line), if one is there.
pub fn event_end(buffer: &[u8]) -> Option<usize> {
    let lf = buffer.windows(2).position(|w| w == b"\n\n").map(|i| i + 2);
    let crlf = buffer.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// One event: its type (`message` unless named), id and data (lines joined by newlines).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Event {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

impl Event {
    /// Reads one event's lines; comments and unknown fields are skipped.
    pub fn parse(block: &str) -> Self {
        let mut event = Event { event: "message".into(), ..Event::default() };
        for line in block.lines() {
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => event.event = value.to_owned(),
                "id" => event.id = Some(value.to_owned()),
                "data" => {
                    if !event.data.is_empty() {
                        event.data.push('\n');
                    }
                    event.data.push_str(value);
                }
                _ => {}
            }
        }
        event
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn events_are_cut_at_blank_lines_and_parsed() {
        let stream = b"event: head\nid: 41\ndata: {\"size\":42}\n\n: keep-alive\n\nevent: change\r\nid: 7\r\ndata: a\r\ndata: b\r\n\r\npartial";
        let first = event_end(stream).unwrap();
        assert_eq!(
            Event::parse(std::str::from_utf8(&stream[..first]).unwrap()),
            Event { event: "head".into(), id: Some("41".into()), data: "{\"size\":42}".into() }
        );
        let rest = &stream[first..];
        let comment = event_end(rest).unwrap();
        assert_eq!(Event::parse(std::str::from_utf8(&rest[..comment]).unwrap()).event, "message");
        let rest = &rest[comment..];
        let change = event_end(rest).unwrap();
        let parsed = Event::parse(std::str::from_utf8(&rest[..change]).unwrap());
        assert_eq!((parsed.event.as_str(), parsed.id.as_deref(), parsed.data.as_str()), ("change", Some("7"), "a\nb"));
        assert_eq!(event_end(&rest[change..]), None, "a partial event waits for the rest");
    }
}

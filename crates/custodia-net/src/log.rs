//! The services' log: one line per event on standard error, as text (`custodia-ledger: ...`) or, for a log
//! collector, as JSON (`{"time":...,"level":"warn","component":"custodia-ledger","message":"..."}`).
//!
//! Messages name what happened and what is done about it; they never carry a key, a secret or record content.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

static JSON: AtomicBool = AtomicBool::new(false);

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Text,
    Json,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            other => Err(format!("{other:?} is not a log format: text or json")),
        }
    }
}

/// Sets the format for the rest of the process.
pub fn set_format(format: Format) {
    JSON.store(format == Format::Json, Ordering::Relaxed);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// The line for one event, without its newline.
pub fn line(level: Level, component: &str, message: &str) -> String {
    if !JSON.load(Ordering::Relaxed) {
        return format!("{component}: {message}");
    }
    let time =
        time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    serde_json::json!({ "time": time, "level": level.as_str(), "component": component, "message": message }).to_string()
}

fn write(level: Level, component: &str, message: &str) {
    let mut err = std::io::stderr().lock();
    // A closed standard error must not stop a service.
    let _ = writeln!(err, "{}", line(level, component, message));
}

pub fn info(component: &str, message: impl std::fmt::Display) {
    write(Level::Info, component, &message.to_string());
}

pub fn warn(component: &str, message: impl std::fmt::Display) {
    write(Level::Warn, component, &message.to_string());
}

pub fn error(component: &str, message: impl std::fmt::Display) {
    write(Level::Error, component, &message.to_string());
}

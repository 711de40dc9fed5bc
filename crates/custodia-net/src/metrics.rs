//! Counters for a Prometheus text endpoint (`/metrics`, exposition format 0.0.4), kept in atomics so that
//! counting costs a handler next to nothing.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A count that only goes up.
#[derive(Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    pub const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Default for Counter {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts under one label whose values are a small fixed vocabulary (refusal codes, outcomes).
#[derive(Debug)]
pub struct LabelledCounter(Mutex<BTreeMap<&'static str, u64>>);

impl LabelledCounter {
    pub const fn new() -> Self {
        Self(Mutex::new(BTreeMap::new()))
    }

    pub fn add(&self, label: &'static str, n: u64) {
        let mut counts = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *counts.entry(label).or_default() += n;
    }

    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let counts = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        counts.iter().map(|(k, v)| (*k, *v)).collect()
    }
}

impl Default for LabelledCounter {
    fn default() -> Self {
        Self::new()
    }
}

/// A `/metrics` page being written.
#[derive(Debug, Default)]
pub struct Exposition(String);

impl Exposition {
    pub fn new() -> Self {
        Self::default()
    }

    fn header(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    pub fn counter(&mut self, name: &str, help: &str, value: u64) -> &mut Self {
        self.header(name, help, "counter");
        let _ = writeln!(self.0, "{name} {value}");
        self
    }

    /// A counter family with one label; `always` are label values shown as 0 before they first happen, so a
    /// rate over them is defined from the start.
    pub fn labelled(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        counter: &LabelledCounter,
        always: &[&'static str],
    ) -> &mut Self {
        let mut values: BTreeMap<&str, u64> = always.iter().map(|v| (*v, 0)).collect();
        values.extend(counter.snapshot());
        self.family(name, help, label, values)
    }

    /// A counter family with one label whose values are fixed, each counted by its own [`Counter`].
    pub fn counters(&mut self, name: &str, help: &str, label: &str, counters: &[(&str, &Counter)]) -> &mut Self {
        self.family(name, help, label, counters.iter().map(|(value, counter)| (*value, counter.get())))
    }

    fn family<'a>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        values: impl IntoIterator<Item = (&'a str, u64)>,
    ) -> &mut Self {
        self.header(name, help, "counter");
        for (value, count) in values {
            let _ = writeln!(self.0, "{name}{{{label}=\"{}\"}} {count}", escape(value));
        }
        self
    }

    pub fn gauge(&mut self, name: &str, help: &str, value: f64) -> &mut Self {
        self.header(name, help, "gauge");
        let _ = writeln!(self.0, "{name} {value}");
        self
    }

    pub fn finish(self) -> String {
        self.0
    }
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_prometheus_text() {
        let refusals = LabelledCounter::new();
        refusals.add("stale", 2);
        let mut page = Exposition::new();
        page.counter("custodia_ledger_appends_total", "Entries appended.", 7).labelled(
            "custodia_ledger_refusals_total",
            "Refusals by reason.",
            "reason",
            &refusals,
            &["bad-signature"],
        );
        page.gauge("custodia_ledger_tree_size", "Entries in the log.", 7.0);
        let text = page.finish();
        assert!(text.contains("# TYPE custodia_ledger_appends_total counter\ncustodia_ledger_appends_total 7\n"));
        assert!(text.contains("custodia_ledger_refusals_total{reason=\"bad-signature\"} 0\n"));
        assert!(text.contains("custodia_ledger_refusals_total{reason=\"stale\"} 2\n"));
        assert!(text.contains("# TYPE custodia_ledger_tree_size gauge\ncustodia_ledger_tree_size 7\n"));
    }
}

//! The access log as the UI queries it: filtered, paged, counted over time, and exported, in Rust, so
//! a wallet with a hundred thousand reads answers each query in milliseconds and sends only one page.
//!
//! [`LogIndex`] is built once per unlock or sync from the wallet's verified access events: one compact
//! row per event with what filters compare, newest first. A page's rows are turned into full views only
//! for the page.

use std::collections::{BTreeMap, HashMap};

use custodia_core::audit_event::to_fhir_audit_bundle;
use custodia_core::entry::{Member, Outcome};
use custodia_wallet::wallet::AccessRecord;

use crate::views::{AccessFilter, AccessOutcome, AccessPage, AccessRow, Export, Histogram, Party, category_of};

/// The most rows one page may ask for.
pub const MAX_PAGE: usize = 500;
/// The most bars the timeline is drawn with.
const MAX_BUCKETS: u64 = 60;
const MINUTE_MS: u64 = 60_000;

/// What a filter looks at, for one event.
#[derive(Debug)]
struct Row {
    /// Position in the wallet's event list.
    position: usize,
    at_ms: u64,
    reader: String,
    organisation: String,
    categories: Vec<String>,
    allowed: bool,
    break_glass: bool,
    grant_id: Option<String>,
    /// Lower-cased reader name, organisation and request.
    haystack: String,
}

#[derive(Debug, Default)]
pub struct LogIndex {
    /// Newest first.
    rows: Vec<Row>,
    readers: Vec<Party>,
    organisations: Vec<String>,
    categories: Vec<String>,
    /// Reads and refused attempts per grant id, so a grant's view does not scan every event.
    per_grant: HashMap<String, (u32, u32)>,
}

impl LogIndex {
    pub fn build(events: &[AccessRecord], members: &[Member]) -> LogIndex {
        let mut rows: Vec<Row> = events
            .iter()
            .enumerate()
            .map(|(position, a)| {
                let e = a.event.statement();
                let mut categories: Vec<String> = e.resources.iter().map(category_of).collect();
                categories.sort();
                categories.dedup();
                Row {
                    position,
                    at_ms: u64::try_from(e.at.unix()).unwrap_or(0).saturating_mul(1000),
                    reader: e.reader.to_string(),
                    organisation: e.organisation.clone(),
                    categories,
                    allowed: e.outcome == Outcome::Allowed,
                    break_glass: e.break_glass,
                    grant_id: e.grant_id.map(|g| g.to_string()),
                    haystack: format!("{}\n{}\n{}", e.reader_name, e.organisation, e.request).to_lowercase(),
                }
            })
            .collect();
        rows.sort_by(|a, b| b.at_ms.cmp(&a.at_ms).then(b.position.cmp(&a.position)));
        let mut readers: BTreeMap<String, Party> = BTreeMap::new();
        let mut organisations = std::collections::BTreeSet::new();
        let mut categories = std::collections::BTreeSet::new();
        let mut per_grant: HashMap<String, (u32, u32)> = HashMap::new();
        for a in events {
            let e = a.event.statement();
            if let Some(g) = e.grant_id {
                let counts = per_grant.entry(g.to_string()).or_default();
                match e.outcome {
                    Outcome::Allowed => counts.0 += 1,
                    Outcome::Denied => counts.1 += 1,
                }
            }
            readers.entry(e.reader.to_string()).or_insert_with(|| {
                let mut p = Party::of(&e.reader, members);
                if p.name.is_none() {
                    p.name = Some(e.reader_name.clone());
                    p.organisation = Some(e.organisation.clone());
                }
                p
            });
            organisations.insert(e.organisation.clone());
            categories.extend(e.resources.iter().map(category_of));
        }
        let mut readers: Vec<Party> = readers.into_values().collect();
        readers.sort_by(|a, b| a.name.cmp(&b.name));
        LogIndex {
            rows,
            readers,
            organisations: organisations.into_iter().collect(),
            categories: categories.into_iter().collect(),
            per_grant,
        }
    }

    /// Reads made and attempts refused under one grant.
    pub fn grant_counts(&self, grant_id: &str) -> (u32, u32) {
        self.per_grant.get(grant_id).copied().unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn matching<'a>(&'a self, filter: &'a Compiled) -> impl Iterator<Item = &'a Row> + 'a {
        self.rows.iter().filter(move |r| filter.matches(r))
    }

    /// One page of the filtered log, newest first, with the facets and the timeline.
    pub fn page(
        &self,
        filter: &AccessFilter,
        offset: usize,
        limit: usize,
        events: &[AccessRecord],
        members: &[Member],
    ) -> AccessPage {
        let compiled = Compiled::new(filter);
        let mut total = 0usize;
        let mut page = Vec::new();
        let (mut oldest, mut newest) = (u64::MAX, 0u64);
        for r in self.matching(&compiled) {
            if total >= offset && page.len() < limit {
                page.push(r.position);
            }
            total += 1;
            oldest = oldest.min(r.at_ms);
            newest = newest.max(r.at_ms);
        }
        let histogram = self.histogram(&compiled, total, oldest, newest);
        AccessPage {
            total: total as i64,
            total_all: self.rows.len() as i64,
            offset: offset as i64,
            rows: page.into_iter().map(|p| AccessRow::of(&events[p], members)).collect(),
            readers: self.readers.clone(),
            organisations: self.organisations.clone(),
            categories: self.categories.clone(),
            histogram,
        }
    }

    fn histogram(&self, filter: &Compiled, total: usize, oldest: u64, newest: u64) -> Histogram {
        if total == 0 {
            return Histogram {
                from: 0,
                bucket_ms: MINUTE_MS as i64,
                allowed: vec![],
                denied: vec![],
                break_glass: vec![],
            };
        }
        let span = newest - oldest + 1;
        let bucket = span.div_ceil(MAX_BUCKETS).max(MINUTE_MS);
        let buckets = span.div_ceil(bucket) as usize;
        let (mut allowed, mut denied, mut break_glass) =
            (vec![0u32; buckets], vec![0u32; buckets], vec![0u32; buckets]);
        for r in self.matching(filter) {
            let i = ((r.at_ms - oldest) / bucket) as usize;
            if r.break_glass {
                break_glass[i] += 1;
            } else if r.allowed {
                allowed[i] += 1;
            } else {
                denied[i] += 1;
            }
        }
        Histogram { from: oldest as i64, bucket_ms: bucket as i64, allowed, denied, break_glass }
    }

    /// The filtered events, newest first, as positions in the wallet's list; lazily, so a caller that
    /// wants the newest few does not filter them all.
    pub fn positions<'a>(&'a self, filter: &'a AccessFilter) -> impl Iterator<Item = usize> + 'a {
        let compiled = Compiled::new(filter);
        self.rows.iter().filter(move |r| compiled.matches(r)).map(|r| r.position)
    }
}

/// A filter with its text lower-cased once.
struct Compiled<'a> {
    filter: &'a AccessFilter,
    text: Option<String>,
}

impl<'a> Compiled<'a> {
    fn new(filter: &'a AccessFilter) -> Self {
        let text = filter.text.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_lowercase);
        Compiled { filter, text }
    }

    fn matches(&self, r: &Row) -> bool {
        let f = self.filter;
        f.reader.as_ref().is_none_or(|k| *k == r.reader)
            && f.organisation.as_ref().is_none_or(|o| *o == r.organisation)
            && f.category.as_ref().is_none_or(|c| r.categories.iter().any(|rc| rc == c))
            && f.from.is_none_or(|from| r.at_ms as i64 >= from)
            && f.to.is_none_or(|to| (r.at_ms as i64) < to)
            && f.outcome.is_none_or(|o| (o == AccessOutcome::Allowed) == r.allowed)
            && f.break_glass.is_none_or(|b| b == r.break_glass)
            && f.grant_id.as_ref().is_none_or(|g| r.grant_id.as_ref() == Some(g))
            && self.text.as_ref().is_none_or(|t| r.haystack.contains(t.as_str()))
    }
}

/// A spreadsheet cell: quoted when needed, and never starting with a character that a spreadsheet would
/// run as a formula (a reader's name is input someone else chose).
pub(crate) fn csv_cell(text: &str) -> String {
    let guarded = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}") } else { text.to_owned() };
    if guarded.contains([',', '"', '\n', '\r']) { format!("\"{}\"", guarded.replace('"', "\"\"")) } else { guarded }
}

pub fn export_csv(positions: &[usize], events: &[AccessRecord], members: &[Member]) -> Export {
    let mut out = String::from(
        "ledger_entry,time,reader,reader_key,organisation,purpose,outcome,break_glass,records,categories,labels,grant,request,reason,verified\r\n",
    );
    for &p in positions {
        let row = AccessRow::of(&events[p], members);
        let e = events[p].event.statement();
        let records: Vec<String> = row.resources.iter().map(|r| format!("{}/{}", r.resource_type, r.id)).collect();
        let cells = [
            row.index.to_string(),
            e.at.to_string(),
            row.reader.name.clone().unwrap_or_default(),
            row.reader.key.clone(),
            row.organisation.clone(),
            row.purpose.code.clone(),
            match row.outcome {
                AccessOutcome::Allowed => "allowed".into(),
                AccessOutcome::Denied => "denied".into(),
            },
            row.break_glass.to_string(),
            records.join(" "),
            row.categories.join(" "),
            row.labels.join(" "),
            row.grant_id.clone().unwrap_or_default(),
            row.request.clone(),
            row.reason.clone().unwrap_or_default(),
            row.verified.to_string(),
        ];
        let line: Vec<String> = cells.iter().map(|c| csv_cell(c)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    Export { filename: "custodia-access-log.csv".into(), content_type: "text/csv".into(), text: out }
}

pub fn export_audit_bundle(positions: &[usize], events: &[AccessRecord]) -> Export {
    let bundle = to_fhir_audit_bundle(positions.iter().map(|&p| (events[p].event.statement(), Some(events[p].index))));
    Export {
        filename: "custodia-access-log.fhir.json".into(),
        content_type: "application/fhir+json".into(),
        text: serde_json::to_string_pretty(&bundle).unwrap_or_default(),
    }
}

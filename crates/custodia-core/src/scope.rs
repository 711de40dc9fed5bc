//! SMART App Launch v2 scopes: `patient/Observation.rs?category=laboratory`.
//!
//! A scope names a context (`patient/`: a patient grants access to their own record), a resource type or
//! `*`, the permitted interactions as an ordered subset of `cruds`, and optional search parameters that
//! narrow which resources of that type match. The gateway is read-only, so only `r` (read) and `s`
//! (search) ever allow anything; `c`, `u` and `d` parse but grant nothing there.
//!
//! Only the search parameters whose meaning we implement are accepted (`category`, `code`, `status`),
//! each a FHIR token (`system|code`, `code`, `|code`, `system|`; comma-separated alternatives). A scope
//! with a parameter we cannot enforce is refused rather than silently widened.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

pub const MAX_SCOPE_LEN: usize = 512;
const MAX_FILTERS: usize = 4;
const MAX_ALTERNATIVES: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("bad scope {scope:?}: {reason}")]
pub struct ScopeError {
    pub scope: String,
    pub reason: &'static str,
}

/// The interactions a read-only gateway serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interaction {
    Read,
    Search,
}

#[derive(Clone, PartialEq, Eq)]
pub struct Scope {
    /// `None` for `*`.
    resource_type: Option<String>,
    permissions: Permissions,
    filters: Vec<Filter>,
}

/// An ordered subset of `cruds`, as a bit set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Permissions(u8);

const PERMISSION_LETTERS: [char; 5] = ['c', 'r', 'u', 'd', 's'];

impl Permissions {
    fn parse(text: &str) -> Option<Self> {
        // SMART v2 requires the letters in the order c, r, u, d, s, each at most once.
        let mut bits = 0u8;
        let mut next = 0;
        for ch in text.chars() {
            let pos = PERMISSION_LETTERS.iter().position(|&l| l == ch)?;
            if pos < next {
                return None;
            }
            bits |= 1 << pos;
            next = pos + 1;
        }
        (bits != 0).then_some(Self(bits))
    }

    fn allows(self, interaction: Interaction) -> bool {
        let bit = match interaction {
            Interaction::Read => 1,
            Interaction::Search => 4,
        };
        self.0 & (1 << bit) != 0
    }
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, l) in PERMISSION_LETTERS.iter().enumerate() {
            if self.0 & (1 << i) != 0 {
                write!(f, "{l}")?;
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SearchParam {
    Category,
    Code,
    Status,
}

impl SearchParam {
    fn name(self) -> &'static str {
        match self {
            SearchParam::Category => "category",
            SearchParam::Code => "code",
            SearchParam::Status => "status",
        }
    }

    /// The resource element a parameter searches. For the resource types a patient grants access to,
    /// these three parameters all search the element of the same name.
    fn element(self) -> &'static str {
        self.name()
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Filter {
    param: SearchParam,
    alternatives: Vec<Token>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum SystemMatch {
    Any,
    Absent,
    Is(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Token {
    system: SystemMatch,
    code: Option<String>,
}

impl Token {
    fn parse(text: &str) -> Option<Self> {
        let (system, code) = match text.split_once('|') {
            None => (SystemMatch::Any, Some(text)),
            Some(("", code)) => (SystemMatch::Absent, Some(code)),
            Some((system, code)) => (SystemMatch::Is(system.to_owned()), Some(code).filter(|c| !c.is_empty())),
        };
        let ok = |s: &str| !s.is_empty() && s.chars().all(|c| !c.is_control() && !"|,&?= ".contains(c));
        if code.is_some_and(|c| !ok(c))
            || matches!(&system, SystemMatch::Is(s) if !ok(s))
            || code.is_none() && system == SystemMatch::Any
        {
            return None;
        }
        Some(Token { system, code: code.map(str::to_owned) })
    }

    fn matches_coding(&self, system: Option<&str>, code: Option<&str>) -> bool {
        let system_ok = match &self.system {
            SystemMatch::Any => true,
            SystemMatch::Absent => system.is_none(),
            SystemMatch::Is(s) => system == Some(s.as_str()),
        };
        system_ok && self.code.as_deref().is_none_or(|c| code == Some(c))
    }

    /// Matches a FHIR element that is a code string, a Coding, a CodeableConcept, or an array of those.
    fn matches(&self, value: &Value) -> bool {
        match value {
            // A bare code has no system: only tokens that do not name one match it.
            Value::String(code) => {
                matches!(self.system, SystemMatch::Any | SystemMatch::Absent)
                    && self.code.as_deref() == Some(code.as_str())
            }
            Value::Array(items) => items.iter().any(|v| self.matches(v)),
            Value::Object(obj) => match obj.get("coding") {
                Some(codings) => self.matches(codings),
                None => self
                    .matches_coding(obj.get("system").and_then(Value::as_str), obj.get("code").and_then(Value::as_str)),
            },
            _ => false,
        }
    }

    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.system {
            SystemMatch::Any => {}
            SystemMatch::Absent => f.write_str("|")?,
            SystemMatch::Is(s) => write!(f, "{s}|")?,
        }
        f.write_str(self.code.as_deref().unwrap_or(""))
    }
}

/// Decodes `%XX` escapes (scopes are often copied from URLs, where `|` is `%7C`).
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn is_resource_type(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_uppercase()) && name.len() <= 64 && chars.all(|c| c.is_ascii_alphanumeric())
}

impl Scope {
    /// The resource type this scope covers, or `None` for every type (`*`).
    pub fn resource_type(&self) -> Option<&str> {
        self.resource_type.as_deref()
    }

    /// Whether this scope lets its holder perform `interaction` on `resource` (a FHIR resource whose
    /// `resourceType` is `resource_type`).
    pub fn permits(&self, interaction: Interaction, resource_type: &str, resource: &Value) -> bool {
        self.permissions.allows(interaction)
            && self.resource_type.as_deref().is_none_or(|t| t == resource_type)
            && self
                .filters
                .iter()
                .all(|f| resource.get(f.param.element()).is_some_and(|v| f.alternatives.iter().any(|t| t.matches(v))))
    }

    /// The `category`/`code` filters as (parameter, system, code) triples, for the FHIR Consent export.
    pub fn coded_filters(&self) -> impl Iterator<Item = (&'static str, Option<&str>, Option<&str>)> {
        self.filters.iter().flat_map(|f| {
            f.alternatives.iter().map(move |t| {
                let system = match &t.system {
                    SystemMatch::Is(s) => Some(s.as_str()),
                    _ => None,
                };
                (f.param.name(), system, t.code.as_deref())
            })
        })
    }
}

impl FromStr for Scope {
    type Err = ScopeError;

    fn from_str(text: &str) -> Result<Self, ScopeError> {
        let err = |reason| ScopeError { scope: text.chars().take(80).collect(), reason };
        if text.len() > MAX_SCOPE_LEN {
            return Err(err("too long"));
        }
        let (context, rest) = text.split_once('/').ok_or_else(|| err("expected e.g. patient/Observation.rs"))?;
        match context {
            "patient" => {}
            "user" | "system" => return Err(err("a patient's grant covers their own record: use a patient/ scope")),
            _ => return Err(err("unknown context; expected patient/")),
        }
        let (head, query) = match rest.split_once('?') {
            Some((h, q)) => (h, Some(q)),
            None => (rest, None),
        };
        let (resource, perms) = head.rsplit_once('.').ok_or_else(|| err("missing permissions, e.g. .rs"))?;
        let resource_type = match resource {
            "*" => None,
            r if is_resource_type(r) => Some(r.to_owned()),
            _ => return Err(err("not a FHIR resource type")),
        };
        let permissions = match perms {
            "read" | "write" | "*" => return Err(err("SMART v1 permissions; use v2 letters such as .rs")),
            p => Permissions::parse(p).ok_or_else(|| err("permissions must be letters of cruds, in that order"))?,
        };
        let mut filters = Vec::new();
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            let (name, value) = pair.split_once('=').ok_or_else(|| err("a search parameter needs a value"))?;
            let param = match name {
                "category" => SearchParam::Category,
                "code" => SearchParam::Code,
                "status" => SearchParam::Status,
                _ => return Err(err("unsupported search parameter; supported: category, code, status")),
            };
            if filters.iter().any(|f: &Filter| f.param == param) {
                return Err(err("a search parameter is repeated"));
            }
            let value = percent_decode(value).ok_or_else(|| err("bad %-escape"))?;
            let alternatives =
                value.split(',').map(Token::parse).collect::<Option<Vec<_>>>().ok_or_else(|| err("bad token value"))?;
            if alternatives.len() > MAX_ALTERNATIVES {
                return Err(err("too many alternatives"));
            }
            filters.push(Filter { param, alternatives });
        }
        if filters.len() > MAX_FILTERS {
            return Err(err("too many search parameters"));
        }
        Ok(Scope { resource_type, permissions, filters })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "patient/{}.{}", self.resource_type.as_deref().unwrap_or("*"), self.permissions)?;
        for (i, filter) in self.filters.iter().enumerate() {
            write!(f, "{}{}=", if i == 0 { '?' } else { '&' }, filter.param.name())?;
            for (j, t) in filter.alternatives.iter().enumerate() {
                if j > 0 {
                    f.write_str(",")?;
                }
                t.write(f)?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scope({self})")
    }
}

crate::codes::serde_as_string!(Scope);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope(s: &str) -> Scope {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_prints_canonically() {
        for s in [
            "patient/Observation.rs",
            "patient/*.r",
            "patient/Observation.rs?category=laboratory",
            "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|vital-signs",
            "patient/Condition.s?category=problem-list-item,encounter-diagnosis&status=active",
            "patient/Observation.cruds",
        ] {
            assert_eq!(scope(s).to_string(), s);
        }
        assert_eq!(
            scope("patient/Observation.rs?code=http://loinc.org%7C1234-5").to_string(),
            "patient/Observation.rs?code=http://loinc.org|1234-5"
        );
    }

    #[test]
    fn refuses_what_it_cannot_enforce() {
        for bad in [
            "",
            "Observation.rs",
            "user/Observation.rs",
            "patient/Observation.read",
            "patient/Observation.sr",
            "patient/Observation.rr",
            "patient/Observation.",
            "patient/observation.rs",
            "patient/Observation.rs?date=gt2020",
            "patient/Observation.rs?category",
            "patient/Observation.rs?category=",
            "patient/Observation.rs?category=a&category=b",
            "patient/Observation.rs?code=%ZZ",
        ] {
            assert!(bad.parse::<Scope>().is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn matching() {
        let lab = json!({"resourceType": "Observation", "status": "final", "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}]});
        assert!(scope("patient/Observation.rs?category=laboratory").permits(Interaction::Read, "Observation", &lab));
        assert!(scope("patient/Observation.s?category=laboratory").permits(Interaction::Search, "Observation", &lab));
        assert!(!scope("patient/Observation.s").permits(Interaction::Read, "Observation", &lab));
        assert!(!scope("patient/Observation.rs?category=vital-signs").permits(Interaction::Read, "Observation", &lab));
        assert!(!scope("patient/Observation.rs?category=other-system|laboratory").permits(
            Interaction::Read,
            "Observation",
            &lab
        ));
        assert!(!scope("patient/Observation.rs?category=|laboratory").permits(Interaction::Read, "Observation", &lab));
        assert!(!scope("patient/Condition.rs").permits(Interaction::Read, "Observation", &lab));
        assert!(scope("patient/*.r").permits(Interaction::Read, "Observation", &lab));
        assert!(scope("patient/Observation.r?status=final").permits(Interaction::Read, "Observation", &lab));
        assert!(!scope("patient/Observation.r?status=amended").permits(Interaction::Read, "Observation", &lab));
        // A resource without the element a filter names does not match the filter.
        assert!(!scope("patient/Observation.r?code=1234-5").permits(Interaction::Read, "Observation", &lab));
        // AllergyIntolerance.category is an array of bare codes.
        let allergy = json!({"resourceType": "AllergyIntolerance", "category": ["food"]});
        assert!(scope("patient/AllergyIntolerance.r?category=food").permits(
            Interaction::Read,
            "AllergyIntolerance",
            &allergy
        ));
    }

    proptest::proptest! {
        #[test]
        fn display_parses_back(
            ty in proptest::option::of("[A-Z][a-zA-Z]{0,20}"),
            perms in "c?r?u?d?s?",
            cat in proptest::option::of("[a-z][a-z-]{0,15}"),
            code in proptest::option::of(("[a-z:/.]{1,20}", "[0-9-]{1,10}")),
        ) {
            proptest::prop_assume!(!perms.is_empty());
            let mut text = format!("patient/{}.{}", ty.unwrap_or_else(|| "*".into()), perms);
            let mut params = vec![];
            if let Some(c) = cat { params.push(format!("category={c}")); }
            if let Some((s, c)) = code { params.push(format!("code={s}|{c}")); }
            if !params.is_empty() { text = format!("{text}?{}", params.join("&")); }
            let parsed: Scope = text.parse().unwrap();
            proptest::prop_assert_eq!(parsed.to_string(), text.clone());
            proptest::prop_assert_eq!(parsed.to_string().parse::<Scope>().unwrap(), parsed);
        }
    }
}

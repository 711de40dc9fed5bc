//! The FHIR documents the gateway returns besides resources themselves (its CapabilityStatement, searchset
//! Bundles, OperationOutcomes), and FHIR token search on `category` and `code`.
//!
//! Everything here is FHIR R4 JSON built from values the caller passes; nothing reads a clock or does I/O.

use serde_json::{Map, Value, json};

/// The media type of FHIR JSON, for `Content-Type` and `Accept`.
pub const FHIR_JSON: &str = "application/fhir+json";

/// The FHIR version the gateway speaks.
pub const FHIR_VERSION: &str = "4.0.1";

/// The CapabilityStatement's `date`: when what it states last changed (it is required, and must not come
/// from a clock, so that the statement is the same on every start).
pub const CAPABILITY_STATEMENT_DATE: &str = "2025-06-01";

/// The token search parameters the gateway implements: (resource type, parameter, element searched).
///
/// These follow FHIR R4's search parameters of the same name; `code` on MedicationRequest searches the
/// medication's CodeableConcept. A type or parameter not listed has no token search.
const TOKEN_PARAMS: &[(&str, &str, &str)] = &[
    ("AllergyIntolerance", "category", "category"),
    ("AllergyIntolerance", "code", "code"),
    ("CarePlan", "category", "category"),
    ("Condition", "category", "category"),
    ("Condition", "code", "code"),
    ("DiagnosticReport", "category", "category"),
    ("DiagnosticReport", "code", "code"),
    ("DocumentReference", "category", "category"),
    ("MedicationRequest", "category", "category"),
    ("MedicationRequest", "code", "medicationCodeableConcept"),
    ("Observation", "category", "category"),
    ("Observation", "code", "code"),
    ("Procedure", "category", "category"),
    ("Procedure", "code", "code"),
    ("ServiceRequest", "category", "category"),
    ("ServiceRequest", "code", "code"),
];

/// FHIR's IssueType codes (`http://hl7.org/fhir/issue-type`).
const ISSUE_TYPES: &[&str] = &[
    "invalid",
    "structure",
    "required",
    "value",
    "invariant",
    "security",
    "login",
    "unknown",
    "expired",
    "forbidden",
    "suppressed",
    "processing",
    "not-supported",
    "duplicate",
    "multiple-matches",
    "not-found",
    "deleted",
    "too-long",
    "code-invalid",
    "extension",
    "too-costly",
    "business-rule",
    "conflict",
    "transient",
    "lock-error",
    "no-store",
    "exception",
    "timeout",
    "incomplete",
    "throttled",
    "informational",
];

/// The element a token search parameter searches on a resource of `resource_type`, if the gateway
/// implements that parameter for that type.
fn token_element(resource_type: &str, param: &str) -> Option<&'static str> {
    TOKEN_PARAMS.iter().find(|(t, p, _)| *t == resource_type && *p == param).map(|(_, _, element)| *element)
}

fn search_param(name: &str, kind: &str, documentation: &str) -> Value {
    json!({ "name": name, "type": kind, "documentation": documentation })
}

/// The gateway's CapabilityStatement: FHIR R4 over JSON, `read` and `search-type` on each of
/// `resource_types`, with the search parameters it implements for each, and how requests are authorised.
pub fn capability_statement(base_url: &str, resource_types: &[&str], software_version: &str) -> Value {
    let resources: Vec<Value> = resource_types
        .iter()
        .map(|&resource_type| {
            let mut params = vec![search_param(
                "patient",
                "reference",
                "The patient whose resources to return; on Patient, the patient itself.",
            )];
            if token_element(resource_type, "category").is_some() {
                params.push(search_param(
                    "category",
                    "token",
                    "`system|code`, `code`, `|code` (no system) or `system|`; alternatives separated by commas.",
                ));
            }
            if token_element(resource_type, "code").is_some() {
                params.push(search_param(
                    "code",
                    "token",
                    "`system|code`, `code`, `|code` (no system) or `system|`; alternatives separated by commas.",
                ));
            }
            params.push(search_param("_count", "number", "The most resources to return in one page."));
            json!({
                "type": resource_type,
                "interaction": [{ "code": "read" }, { "code": "search-type" }],
                "searchParam": params,
            })
        })
        .collect();
    let mut rest = Map::new();
    rest.insert("mode".into(), json!("server"));
    rest.insert(
        "security".into(),
        json!({
            "cors": false,
            "description": "Every request must carry a `Custodia-Grant` header, a grant the patient signed for \
                the clinician making the request, and a `Custodia-Signature` header, a proof of possession of \
                that clinician's key: a signature over the request's method, path and query, time, a nonce and \
                the hash of its body. A read is answered only when the grant allows it (its scopes, purpose, \
                period and sensitivity labels), and every read is recorded in the patient's ledger.",
        }),
    );
    if !resources.is_empty() {
        rest.insert("resource".into(), Value::Array(resources));
    }
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": CAPABILITY_STATEMENT_DATE,
        "publisher": "Custodia",
        "kind": "instance",
        "software": { "name": "Custodia gateway", "version": software_version },
        "implementation": {
            "description": "Custodia FHIR gateway: reads checked against the patient's signed grants",
            "url": base_url,
        },
        "fhirVersion": FHIR_VERSION,
        "format": ["json"],
        "rest": [Value::Object(rest)],
    })
}

/// A searchset Bundle of `resources`, `total` matches in all (the resources may be one page of them), with
/// `self_link` as its `self` link.
pub fn searchset<'a>(
    base_url: &str,
    self_link: &str,
    resources: impl IntoIterator<Item = &'a Value>,
    total: usize,
) -> Value {
    let base = base_url.trim_end_matches('/');
    let entries: Vec<Value> = resources
        .into_iter()
        .map(|resource| {
            let mut entry = Map::new();
            let resource_type = resource.get("resourceType").and_then(Value::as_str);
            let id = resource.get("id").and_then(Value::as_str);
            if let (Some(resource_type), Some(id)) = (resource_type, id) {
                entry.insert("fullUrl".into(), json!(format!("{base}/{resource_type}/{id}")));
            }
            entry.insert("resource".into(), resource.clone());
            entry.insert("search".into(), json!({ "mode": "match" }));
            Value::Object(entry)
        })
        .collect();
    let mut bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": [{ "relation": "self", "url": self_link }],
    });
    // FHIR JSON has no empty arrays: a search with no match has no `entry`.
    if !entries.is_empty() {
        bundle["entry"] = Value::Array(entries);
    }
    bundle
}

/// An OperationOutcome with one error issue. `code` is a FHIR IssueType (`forbidden`, `not-found`,
/// `security`, `invalid`, `processing`, `throttled`, `exception`, `not-supported`, `too-costly`, ...); any
/// other text becomes `exception`, so the outcome is always valid FHIR.
pub fn operation_outcome(code: &str, diagnostics: &str) -> Value {
    let code = if ISSUE_TYPES.contains(&code) { code } else { "exception" };
    let mut issue = json!({ "severity": "error", "code": code });
    if !diagnostics.trim().is_empty() {
        issue["diagnostics"] = json!(diagnostics);
    }
    json!({ "resourceType": "OperationOutcome", "issue": [issue] })
}

/// Which system a token asks for.
#[derive(Debug, PartialEq, Eq)]
enum System {
    /// `code`: any system, or none.
    Any,
    /// `|code`: no system.
    Absent,
    /// `system|code` or `system|`.
    Is(String),
}

#[derive(Debug, PartialEq, Eq)]
struct Token {
    system: System,
    /// `None` for `system|`: any code of that system.
    code: Option<String>,
}

/// Splits `text` at each `separator` not escaped by a backslash (FHIR search escapes `\,`, `\|`, `\$` and
/// `\\`); the pieces keep their escapes.
fn split_unescaped(text: &str, separator: char) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == separator {
            pieces.push(&text[start..i]);
            start = i + c.len_utf8();
        }
    }
    pieces.push(&text[start..]);
    pieces
}

/// Removes FHIR search's backslash escapes.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut escaped = false;
    for c in text.chars() {
        if c == '\\' && !escaped {
            escaped = true;
        } else {
            out.push(c);
            escaped = false;
        }
    }
    out
}

impl Token {
    /// Parses one alternative of a token search value; `None` for one that can match nothing (``, `|`).
    fn parse(text: &str) -> Option<Token> {
        let parts = split_unescaped(text, '|');
        let (system, code) = match parts.as_slice() {
            [code] => (System::Any, unescape(code)),
            ["", code] => (System::Absent, unescape(code)),
            [system, code] => (System::Is(unescape(system)), unescape(code)),
            _ => return None,
        };
        let code = Some(code).filter(|c| !c.is_empty());
        if code.is_none() && !matches!(system, System::Is(_)) {
            return None;
        }
        Some(Token { system, code })
    }

    fn matches_coding(&self, system: Option<&str>, code: Option<&str>) -> bool {
        let system_ok = match &self.system {
            System::Any => true,
            System::Absent => system.is_none(),
            System::Is(s) => system == Some(s.as_str()),
        };
        system_ok && self.code.as_deref().is_none_or(|c| code == Some(c))
    }

    /// Matches an element that is a bare code, a Coding, a CodeableConcept, or an array of those.
    fn matches(&self, element: &Value) -> bool {
        match element {
            // A bare code (AllergyIntolerance.category) has no system.
            Value::String(code) => self.matches_coding(None, Some(code)),
            Value::Array(items) => items.iter().any(|item| self.matches(item)),
            Value::Object(object) => match object.get("coding") {
                Some(codings) => codings.as_array().is_some_and(|codings| codings.iter().any(|c| self.matches(c))),
                None => self.matches_coding(
                    object.get("system").and_then(Value::as_str),
                    object.get("code").and_then(Value::as_str),
                ),
            },
            _ => false,
        }
    }
}

/// FHIR token search: whether `resource`'s element for the search parameter `param` (`category` or
/// `code`) matches `value`: `system|code`, `code` (any system), `|code` (no system) or `system|` (any code
/// in that system), or several of those separated by commas (any may match).
///
/// A parameter the gateway does not implement for the resource's type matches nothing, as does an empty
/// value.
pub fn matches_token(resource: &Value, param: &str, value: &str) -> bool {
    let Some(resource_type) = resource.get("resourceType").and_then(Value::as_str) else {
        return false;
    };
    let Some(element) = token_element(resource_type, param).and_then(|name| resource.get(name)) else {
        return false;
    };
    split_unescaped(value, ',').into_iter().filter_map(Token::parse).any(|t| t.matches(element))
}

/// Whether `resource` carries the identifier `value` in `system` (in any system when `system` is `None`).
pub fn has_identifier(resource: &Value, system: Option<&str>, value: &str) -> bool {
    resource.get("identifier").and_then(Value::as_array).is_some_and(|ids| {
        ids.iter().any(|id| {
            id.get("value").and_then(Value::as_str) == Some(value)
                && system.is_none_or(|s| id.get("system").and_then(Value::as_str) == Some(s))
        })
    })
}

/// `text` as one part of a token search value: `\`, `|`, `,` and `$` escaped with a backslash.
pub fn escape_token(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '|' | ',' | '$') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A word for the kind of record, for a person reading an access log: the code of the first coding of
/// the resource's `category` (`laboratory`, `vital-signs`, `LAB`, `RAD`, `problem-list-item`, `food`, ...),
/// or `None` when it has none.
pub fn category_word(resource: &Value) -> Option<String> {
    fn first_code(value: &Value) -> Option<&str> {
        match value {
            Value::String(code) => Some(code.as_str()).filter(|c| !c.is_empty()),
            Value::Array(items) => items.iter().find_map(first_code),
            Value::Object(object) => match object.get("coding") {
                Some(codings) => first_code(codings),
                None => object.get("code").and_then(Value::as_str).filter(|c| !c.is_empty()),
            },
            _ => None,
        }
    }
    first_code(resource.get("category")?).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OBS_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
    const LOINC: &str = "http://loinc.org";

    fn lab() -> Value {
        json!({
            "resourceType": "Observation",
            "id": "p1-lab-hba1c",
            "status": "final",
            "category": [{ "coding": [{ "system": OBS_CATEGORY, "code": "laboratory" }] }],
            "code": { "coding": [
                { "system": LOINC, "code": "4548-4" },
                { "code": "HBA1C" },
            ] },
        })
    }

    #[test]
    fn token_forms() {
        let lab = lab();
        let yes = |param: &str, value: &str| assert!(matches_token(&lab, param, value), "{param}={value} should match");
        let no =
            |param: &str, value: &str| assert!(!matches_token(&lab, param, value), "{param}={value} should not match");
        // code: any system
        yes("category", "laboratory");
        yes("code", "4548-4");
        yes("code", "HBA1C");
        no("category", "vital-signs");
        // system|code
        yes("category", &format!("{OBS_CATEGORY}|laboratory"));
        yes("code", "http://loinc.org|4548-4");
        no("category", "http://example.org/other|laboratory");
        no("code", "http://loinc.org|HBA1C");
        // |code: no system
        no("category", "|laboratory");
        no("code", "|4548-4");
        yes("code", "|HBA1C");
        // system|: any code in the system
        yes("category", &format!("{OBS_CATEGORY}|"));
        yes("code", "http://loinc.org|");
        no("code", "http://snomed.info/sct|");
        // alternatives
        yes("category", "vital-signs,laboratory");
        yes("code", "http://snomed.info/sct|1,http://loinc.org|4548-4");
        no("category", "vital-signs,social-history");
        // values that can match nothing
        no("category", "");
        no("category", "|");
        no("category", ",");
        no("category", "a|b|c");
        // system and code are exact, not prefixes
        no("category", "lab");
        no("code", "http://loinc.org/|4548-4");
    }

    #[test]
    fn unknown_params_and_types_match_nothing() {
        let lab = lab();
        assert!(!matches_token(&lab, "status", "final"));
        assert!(!matches_token(&lab, "patient", "p1"));
        assert!(!matches_token(&lab, "Category", "laboratory"));
        let mut untyped = lab.clone();
        untyped["resourceType"] = json!("Basic");
        assert!(!matches_token(&untyped, "category", "laboratory"));
        let immunization = json!({"resourceType": "Immunization", "code": {"coding": [{"code": "140"}]}});
        assert!(!matches_token(&immunization, "code", "140"));
        assert!(!matches_token(&json!({"category": "laboratory"}), "category", "laboratory"));
    }

    #[test]
    fn identifiers_are_matched_by_system_and_escaped_for_searches() {
        let patient =
            json!({"resourceType": "Patient", "identifier": [{"system": "https://h.example/mrn", "value": "A|1"}]});
        assert!(has_identifier(&patient, Some("https://h.example/mrn"), "A|1"));
        assert!(has_identifier(&patient, None, "A|1"));
        assert!(!has_identifier(&patient, Some("https://other.example/mrn"), "A|1"));
        assert!(!has_identifier(&patient, None, "A"));
        assert_eq!(escape_token(r"A|1,2$3\4"), r"A\|1\,2\$3\\4");
    }

    #[test]
    fn token_element_shapes() {
        // AllergyIntolerance.category is an array of bare codes, which have no system.
        let allergy = json!({"resourceType": "AllergyIntolerance", "category": ["food", "medication"]});
        assert!(matches_token(&allergy, "category", "medication"));
        assert!(matches_token(&allergy, "category", "|food"));
        assert!(!matches_token(&allergy, "category", "http://hl7.org/fhir/allergy-intolerance-category|food"));
        // A single CodeableConcept, and MedicationRequest's code is its medication.
        let request = json!({
            "resourceType": "MedicationRequest",
            "category": { "coding": [{ "code": "community" }] },
            "medicationCodeableConcept": { "coding": [{ "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "860975" }] },
        });
        assert!(matches_token(&request, "category", "community"));
        assert!(matches_token(&request, "code", "http://www.nlm.nih.gov/research/umls/rxnorm|860975"));
        // Malformed elements match nothing rather than failing.
        let odd = json!({"resourceType": "Observation", "category": [{"coding": "laboratory"}, 7, null], "code": {}});
        assert!(!matches_token(&odd, "category", "laboratory"));
        assert!(!matches_token(&odd, "code", "x"));
    }

    #[test]
    fn escaped_separators() {
        let odd = json!({"resourceType": "Condition", "code": {"coding": [{"system": "urn:a|b", "code": "x,y"}]}});
        assert!(matches_token(&odd, "code", r"x\,y"));
        assert!(matches_token(&odd, "code", r"urn:a\|b|x\,y"));
        assert!(matches_token(&odd, "code", r"nothing,urn:a\|b|"));
        assert!(!matches_token(&odd, "code", "x,y"));
        assert_eq!(split_unescaped(r"a\\,b", ','), [r"a\\", "b"]);
        assert_eq!(split_unescaped(r"a\,b,", ','), [r"a\,b", ""]);
        assert_eq!(unescape(r"a\\b\|c"), r"a\b|c");
    }

    #[test]
    fn category_words() {
        assert_eq!(category_word(&lab()).as_deref(), Some("laboratory"));
        let report = json!({"resourceType": "DiagnosticReport", "category": [{"coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD"},
            {"system": "http://loinc.org", "code": "LP29684-5"},
        ]}]});
        assert_eq!(category_word(&report).as_deref(), Some("RAD"));
        assert_eq!(category_word(&json!({"category": ["food"]})).as_deref(), Some("food"));
        assert_eq!(
            category_word(&json!({"category": [{"text": "Notes"}, {"coding": [{"code": "x"}]}]})).as_deref(),
            Some("x")
        );
        assert_eq!(category_word(&json!({"resourceType": "Immunization"})), None);
        assert_eq!(category_word(&json!({"category": [{"text": "Notes"}]})), None);
        assert_eq!(category_word(&json!({"category": [{"coding": [{"system": "s"}]}]})), None);
    }

    #[test]
    fn searchset_bundle() {
        let a = json!({"resourceType": "Observation", "id": "a"});
        let b = json!({"resourceType": "Condition", "id": "b"});
        let bundle =
            searchset("https://gw.example/fhir/", "https://gw.example/fhir/Observation?patient=p1", [&a, &b], 7);
        assert_eq!(bundle["resourceType"], "Bundle");
        assert_eq!(bundle["type"], "searchset");
        assert_eq!(bundle["total"], 7);
        assert_eq!(
            bundle["link"],
            json!([{"relation": "self", "url": "https://gw.example/fhir/Observation?patient=p1"}])
        );
        assert_eq!(bundle["entry"][0]["fullUrl"], "https://gw.example/fhir/Observation/a");
        assert_eq!(bundle["entry"][1]["fullUrl"], "https://gw.example/fhir/Condition/b");
        assert_eq!(bundle["entry"][1]["resource"], b);
        assert_eq!(bundle["entry"][0]["search"], json!({"mode": "match"}));
        assert_eq!(bundle["entry"].as_array().map(Vec::len), Some(2));

        let empty = searchset("https://gw.example/fhir", "https://gw.example/fhir/Condition", [], 0);
        assert_eq!(empty["total"], 0);
        assert!(empty.get("entry").is_none(), "FHIR JSON has no empty arrays");
    }

    #[test]
    fn outcomes() {
        let outcome = operation_outcome("forbidden", "the grant does not cover Observation");
        assert_eq!(
            outcome,
            json!({"resourceType": "OperationOutcome", "issue": [{
                "severity": "error", "code": "forbidden", "diagnostics": "the grant does not cover Observation",
            }]})
        );
        for code in [
            "forbidden",
            "not-found",
            "security",
            "invalid",
            "processing",
            "throttled",
            "exception",
            "not-supported",
            "too-costly",
        ] {
            assert_eq!(operation_outcome(code, "x")["issue"][0]["code"], code);
        }
        assert_eq!(operation_outcome("Forbidden!", "x")["issue"][0]["code"], "exception");
        assert!(operation_outcome("invalid", " ")["issue"][0].get("diagnostics").is_none());
    }

    #[test]
    fn capability() {
        let cs = capability_statement(
            "https://gw.example/fhir",
            &["Observation", "Immunization", "MedicationRequest"],
            "0.1.0",
        );
        assert_eq!(cs["resourceType"], "CapabilityStatement");
        assert_eq!(cs["kind"], "instance");
        assert_eq!(cs["fhirVersion"], "4.0.1");
        assert_eq!(cs["format"], json!(["json"]));
        assert_eq!(cs["software"]["version"], "0.1.0");
        assert_eq!(cs["implementation"]["url"], "https://gw.example/fhir");
        let rest = &cs["rest"][0];
        assert_eq!(rest["mode"], "server");
        let security = rest["security"]["description"].as_str().unwrap();
        assert!(security.contains("Custodia-Signature") && security.contains("Custodia-Grant"), "{security}");
        let names = |i: usize| -> Vec<&str> {
            rest["resource"][i]["searchParam"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect()
        };
        assert_eq!(rest["resource"][0]["type"], "Observation");
        assert_eq!(rest["resource"][0]["interaction"], json!([{"code": "read"}, {"code": "search-type"}]));
        assert_eq!(names(0), ["patient", "category", "code", "_count"]);
        assert_eq!(names(1), ["patient", "_count"]);
        assert_eq!(names(2), ["patient", "category", "code", "_count"]);
        let empty = capability_statement("https://gw.example/fhir", &[], "0.1.0");
        assert!(empty["rest"][0].get("resource").is_none());
    }
}

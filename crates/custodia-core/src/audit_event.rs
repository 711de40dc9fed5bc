//! Export of an access event as a FHIR R4 AuditEvent, so a patient can hand their access log to any
//! FHIR tool, and a custodian can file the reads it logged.
//!
//! The mapping follows the FHIR "RESTful operation" pattern: `type` rest, `subtype` read or search, action
//! R. The reader is the requesting agent, the gateway the observer (`source`) and a second agent; the
//! patient and each resource read are entities, resources with their sensitivity labels. A refused
//! attempt has outcome 4 (minor failure) with the gateway's reason. A break-glass read carries the
//! purpose BTG beside its own purpose. Keys are logical references by identifier, as in the Consent export.

use serde_json::{Value, json};

use crate::consent::{GRANT_IDENTIFIER_SYSTEM, KEY_IDENTIFIER_SYSTEM};
use crate::entry::{AccessEvent, Outcome};
use crate::purpose::{PURPOSE_SYSTEM, PurposeOfUse};

/// The identifier system for access event ids.
pub const ACCESS_EVENT_IDENTIFIER_SYSTEM: &str = "urn:custodia:access-event";
/// The identifier system for ledger entry indexes, so an exported event can be found and proven again.
pub const LEDGER_ENTRY_IDENTIFIER_SYSTEM: &str = "urn:custodia:ledger-entry";

fn key_reference(key: &impl std::fmt::Display, display: &str) -> Value {
    let mut r = json!({"identifier": {"system": KEY_IDENTIFIER_SYSTEM, "value": key.to_string()}});
    if !display.is_empty() {
        r["display"] = json!(display);
    }
    r
}

fn purpose_coding(code: &str, display: &str) -> Value {
    json!({"system": PURPOSE_SYSTEM, "code": code, "display": display})
}

/// The access event as a FHIR R4 AuditEvent (JSON); `ledger_index` is its ledger entry, when known.
pub fn to_fhir_audit_event(event: &AccessEvent, ledger_index: Option<u64>) -> Value {
    let search = event.request.split_whitespace().nth(1).is_some_and(|target| target.contains('?'));
    let (subtype, subtype_display) = if search { ("search-type", "search type") } else { ("read", "read") };
    let mut purposes = vec![purpose_coding(event.purpose.code(), event.purpose.display())];
    if event.break_glass && event.purpose.code() != "BTG" {
        let btg = "BTG".parse::<PurposeOfUse>().map(PurposeOfUse::display).unwrap_or("break the glass");
        purposes.push(purpose_coding("BTG", btg));
    }
    let purpose_of_event: Vec<Value> = purposes.iter().map(|c| json!({"coding": [c]})).collect();
    let mut entities = vec![json!({
        "what": key_reference(&event.patient, ""),
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person"},
        "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient"},
    })];
    for r in &event.resources {
        let mut entity = json!({
            "what": {"reference": format!("{}/{}", r.resource_type, r.id)},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object"},
        });
        if !r.labels.is_empty() {
            entity["securityLabel"] = r
                .labels
                .iter()
                .map(|l| json!({"system": l.system(), "code": l.code(), "display": l.display()}))
                .collect();
        }
        entities.push(entity);
    }
    entities.push(json!({
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object"},
        "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "24", "display": "Query"},
        "description": event.request,
    }));
    if let Some(grant) = event.grant_id {
        entities.push(json!({
            "what": {"identifier": {"system": GRANT_IDENTIFIER_SYSTEM, "value": grant.to_string()}, "display": "grant"},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object"},
        }));
    }
    let mut audit = json!({
        "resourceType": "AuditEvent",
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "RESTful Operation"},
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": subtype, "display": subtype_display}],
        "action": "R",
        "recorded": event.at.to_string(),
        "outcome": match event.outcome { Outcome::Allowed => "0", Outcome::Denied => "4" },
        "purposeOfEvent": purpose_of_event,
        "agent": [
            {
                "who": key_reference(&event.reader, &event.reader_name),
                "name": event.reader_name,
                "requestor": true,
                "purposeOfUse": purpose_of_event,
            },
            {
                "type": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110153", "display": "Source Role ID"}]},
                "who": key_reference(&event.gateway, &event.organisation),
                "requestor": false,
            },
        ],
        "source": {
            "site": event.organisation,
            "observer": key_reference(&event.gateway, &event.organisation),
            "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server"}],
        },
        "entity": entities,
    });
    if let Some(reason) = &event.reason {
        audit["outcomeDesc"] = json!(reason);
    }
    let mut identifiers = vec![json!({"system": ACCESS_EVENT_IDENTIFIER_SYSTEM, "value": event.id.to_string()})];
    if let Some(index) = ledger_index {
        identifiers.push(json!({"system": LEDGER_ENTRY_IDENTIFIER_SYSTEM, "value": index.to_string()}));
    }
    // AuditEvent has no identifier element in R4; the ids ride as tags, which every server keeps.
    audit["meta"] = json!({"tag": identifiers});
    audit
}

/// Access events as a FHIR R4 Bundle of type collection.
pub fn to_fhir_audit_bundle<'a>(events: impl IntoIterator<Item = (&'a AccessEvent, Option<u64>)>) -> Value {
    let entries: Vec<Value> =
        events.into_iter().map(|(e, index)| json!({"resource": to_fhir_audit_event(e, index)})).collect();
    json!({"resourceType": "Bundle", "type": "collection", "entry": entries})
}

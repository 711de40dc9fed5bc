//! Export of a grant as a FHIR R4 Consent resource, so a hospital system can file and show it.
//!
//! The mapping: the base provision denies everything, and one nested `permit` provision per scope admits
//! the grantee (actor role IRCP, information recipient) for the grant's period and purpose, to the scope's
//! resource type (`class`) and its category/code filters (`code`), with the allowed sensitivity labels.
//! Keys have no FHIR resource of their own, so patient and grantee are logical references by identifier.
//! The signed DSSE envelope rides along as `sourceAttachment`, so the Consent can be checked against the
//! patient's signature rather than trusted.

use data_encoding::BASE64;
use serde_json::{Value, json};

use crate::grant::VerifiedGrant;
use crate::labels::SensitivityLabel;
use crate::purpose::PURPOSE_SYSTEM;
use crate::statement::Statement;

/// The identifier system for Custodia signing keys in FHIR references.
pub const KEY_IDENTIFIER_SYSTEM: &str = "urn:custodia:signing-key";
/// The identifier system for grant ids.
pub const GRANT_IDENTIFIER_SYSTEM: &str = "urn:custodia:grant";

fn key_reference(key: &impl std::fmt::Display) -> Value {
    json!({"identifier": {"system": KEY_IDENTIFIER_SYSTEM, "value": key.to_string()}})
}

fn label_coding(label: &SensitivityLabel) -> Value {
    json!({"system": label.system(), "code": label.code(), "display": label.display()})
}

/// The grant as a FHIR R4 Consent (JSON).
pub fn to_fhir_consent(grant: &VerifiedGrant) -> Value {
    let g = grant.statement();
    let period = json!({"start": g.not_before.to_string(), "end": g.not_after.to_string()});
    let purpose = json!([{"system": PURPOSE_SYSTEM, "code": g.purpose.code(), "display": g.purpose.display()}]);
    let labels: Vec<Value> = g.allowed_labels.iter().map(label_coding).collect();
    let actor = json!([{
        "role": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
            "code": "IRCP",
            "display": "information recipient"
        }]},
        "reference": key_reference(&g.grantee)
    }]);
    let action =
        json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "access"}]}]);

    let permits: Vec<Value> = g
        .scopes
        .iter()
        .map(|scope| {
            let mut p = json!({
                "type": "permit",
                "period": period,
                "actor": actor,
                "action": action,
                "purpose": purpose,
            });
            if !labels.is_empty() {
                p["securityLabel"] = json!(labels);
            }
            if let Some(t) = scope.resource_type() {
                p["class"] = json!([{"system": "http://hl7.org/fhir/resource-types", "code": t}]);
            }
            let codes: Vec<Value> = scope
                .coded_filters()
                .filter(|(param, _, _)| *param != "status")
                .filter_map(|(_, system, code)| {
                    let mut coding = json!({"code": code?});
                    if let Some(s) = system {
                        coding["system"] = json!(s);
                    }
                    Some(json!({"coding": [coding]}))
                })
                .collect();
            if !codes.is_empty() {
                p["code"] = json!(codes);
            }
            p
        })
        .collect();

    let mut consent = json!({
        "resourceType": "Consent",
        "id": g.id.to_string(),
        "identifier": [{"system": GRANT_IDENTIFIER_SYSTEM, "value": g.id.to_string()}],
        "status": "active",
        "scope": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/consentscope",
            "code": "patient-privacy",
            "display": "Privacy Consent"
        }]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent"}]}],
        "patient": key_reference(&g.patient),
        "dateTime": g.issued_at.to_string(),
        "performer": [key_reference(&g.patient)],
        "sourceAttachment": {
            "contentType": "application/json",
            "data": BASE64.encode(grant.to_json().as_bytes()),
            "title": format!("Signed Custodia grant ({})", <crate::grant::Grant as Statement>::PAYLOAD_TYPE),
        },
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": {"type": "deny", "provision": permits},
    });
    if !g.note.is_empty() {
        consent["text"] = json!({
            "status": "additional",
            "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{}</div>", escape_xhtml(&g.note)),
        });
    }
    consent
}

/// The note is the patient's free text; in narrative XHTML it must be text, never markup.
fn escape_xhtml(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '&' => "&amp;".to_owned(),
            '"' => "&quot;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::GrantRequest;
    use crate::keys::{Identity, MasterSeed};
    use crate::purpose::PurposeOfUse;
    use crate::time::Timestamp;

    fn grant(scopes: &[&str]) -> VerifiedGrant {
        let patient = Identity::from_seed(&MasterSeed::from_bytes([1; 32]));
        let doctor = Identity::from_seed(&MasterSeed::from_bytes([2; 32]));
        GrantRequest {
            grantee: doctor.signing_public(),
            scopes: scopes.iter().map(|s| s.parse().unwrap()).collect(),
            allowed_labels: vec!["PSY".parse().unwrap()],
            purpose: PurposeOfUse::TREATMENT,
            duration_seconds: 86_400,
            max_reads: None,
            note: "for <my> knee & back".into(),
        }
        .sign(&patient, Timestamp::parse("2026-11-21T09:00:00Z").unwrap())
        .unwrap()
    }

    #[test]
    fn carries_the_required_r4_elements() {
        let c = to_fhir_consent(&grant(&["patient/Observation.rs?category=laboratory", "patient/*.r"]));
        assert_eq!(c["resourceType"], "Consent");
        assert_eq!(c["status"], "active");
        assert!(c["scope"]["coding"][0]["code"].is_string());
        assert!(c["category"].as_array().is_some_and(|a| !a.is_empty()));
        // ppc-1: a policy or a policyRule.
        assert!(c["policyRule"].is_object());
        // ppc-2: privacy consents name a patient.
        assert!(c["patient"]["identifier"]["value"].as_str().unwrap().starts_with("cusig1"));
        let permits = c["provision"]["provision"].as_array().unwrap();
        assert_eq!(permits.len(), 2);
        assert_eq!(permits[0]["class"][0]["code"], "Observation");
        assert_eq!(permits[0]["code"][0]["coding"][0]["code"], "laboratory");
        assert!(permits[1].get("class").is_none());
        assert_eq!(permits[0]["period"]["end"], "2026-11-22T09:00:00Z");
        assert_eq!(permits[0]["securityLabel"][0]["code"], "PSY");
        assert_eq!(permits[0]["purpose"][0]["code"], "TREAT");
        assert!(c["text"]["div"].as_str().unwrap().contains("for &lt;my&gt; knee &amp; back"));
    }

    #[test]
    fn the_attachment_is_the_signed_grant() {
        let g = grant(&["patient/*.r"]);
        let c = to_fhir_consent(&g);
        let envelope = BASE64.decode(c["sourceAttachment"]["data"].as_str().unwrap().as_bytes()).unwrap();
        let back = crate::grant::UnverifiedGrant::decode(&envelope).unwrap().verify().unwrap();
        assert_eq!(back.statement(), g.statement());
    }
}

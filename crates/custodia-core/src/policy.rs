//! The policy check: does this verified grant allow this read of this resource, for this purpose, now?
//!
//! The check is pure: the caller supplies the time and how many reads the grant has already been used
//! for (the gateway counts them). It looks only at a verified grant, so a forged or altered grant never
//! reaches it. A denial says why, in terms a patient or a clinician can act on.

use std::fmt;

use serde_json::Value;

use crate::grant::VerifiedGrant;
use crate::labels;
use crate::purpose::PurposeOfUse;
use crate::scope::Interaction;
use crate::time::Timestamp;

/// How far a grant's start may lie in the reader's future and still count as started: the patient's
/// phone and the gateway's clock may disagree a little. Expiry gets no tolerance: a patient who said
/// "until five" means it.
pub const CLOCK_SKEW_SECONDS: i64 = 60;

/// One read attempt, as the gateway sees it.
#[derive(Clone, Copy, Debug)]
pub struct ReadAttempt {
    pub interaction: Interaction,
    pub purpose: PurposeOfUse,
    pub at: Timestamp,
    /// Reads already made under this grant (for `max_reads`).
    pub reads_so_far: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(Denial),
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denial {
    NotYetValid { not_before: Timestamp },
    Expired { not_after: Timestamp },
    PurposeMismatch { granted: PurposeOfUse, requested: PurposeOfUse },
    ReadLimitReached { max_reads: u32 },
    OutOfScope { resource_type: String },
    LabelNotAllowed { label: String },
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denial::NotYetValid { not_before } => write!(f, "not yet valid: the grant starts at {not_before}"),
            Denial::Expired { not_after } => write!(f, "expired: the grant ended at {not_after}"),
            Denial::PurposeMismatch { granted, requested } => {
                write!(f, "purpose mismatch: the grant is for {granted}, the read is for {requested}")
            }
            Denial::ReadLimitReached { max_reads } => {
                write!(f, "read limit reached: the grant allows {max_reads} reads")
            }
            Denial::OutOfScope { resource_type } => {
                write!(f, "out of scope: no scope of the grant covers this {resource_type}")
            }
            Denial::LabelNotAllowed { label } => {
                write!(f, "label not allowed: the resource is labelled {label}, which the grant does not name")
            }
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("not a FHIR resource: {0}")]
    NotAResource(&'static str),
}

/// Decides one read. `Err` means the resource itself is malformed (the caller's input is wrong);
/// `Ok(Decision::Deny(_))` means a well-formed read that the grant does not allow.
pub fn check(grant: &VerifiedGrant, resource: &Value, request: &ReadAttempt) -> Result<Decision, PolicyError> {
    let resource_type = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or(PolicyError::NotAResource("no resourceType"))?;
    let restricting = restricting_labels(resource)?;

    let deny = |d| Ok(Decision::Deny(d));
    if request.at.seconds_since(grant.not_before) < -CLOCK_SKEW_SECONDS {
        return deny(Denial::NotYetValid { not_before: grant.not_before });
    }
    if request.at >= grant.not_after {
        return deny(Denial::Expired { not_after: grant.not_after });
    }
    if request.purpose != grant.purpose {
        return deny(Denial::PurposeMismatch { granted: grant.purpose, requested: request.purpose });
    }
    if let Some(max_reads) = grant.max_reads.filter(|&max| request.reads_so_far >= max) {
        return deny(Denial::ReadLimitReached { max_reads });
    }
    if !grant.scopes.iter().any(|s| s.permits(request.interaction, resource_type, resource)) {
        return deny(Denial::OutOfScope { resource_type: resource_type.to_owned() });
    }
    for (system, code) in restricting {
        let allowed = grant.allowed_labels.iter().any(|l| l.code() == code && system.is_none_or(|s| s == l.system()));
        if !allowed {
            return deny(Denial::LabelNotAllowed { label: code.to_owned() });
        }
    }
    Ok(Decision::Allow)
}

/// The `(system, code)` of every label in `meta.security` that withholds the resource unless allowed.
/// A label we cannot read is an error, never ignored: ignoring it could show a sensitive record.
fn restricting_labels(resource: &Value) -> Result<Vec<(Option<&str>, &str)>, PolicyError> {
    let Some(security) = resource.get("meta").and_then(|m| m.get("security")) else {
        return Ok(Vec::new());
    };
    let codings = security.as_array().ok_or(PolicyError::NotAResource("meta.security is not a list"))?;
    let mut out = Vec::new();
    for coding in codings {
        let code = coding
            .get("code")
            .and_then(Value::as_str)
            .ok_or(PolicyError::NotAResource("a meta.security label has no code"))?;
        let system = match coding.get("system") {
            None => None,
            Some(s) => Some(s.as_str().ok_or(PolicyError::NotAResource("a meta.security system is not a string"))?),
        };
        if labels::is_restricting(system, code) {
            out.push((system, code));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::GrantRequest;
    use crate::keys::{Identity, MasterSeed};
    use serde_json::json;

    fn at(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    fn grant(scopes: &[&str], labels: &[&str], max_reads: Option<u32>) -> VerifiedGrant {
        let patient = Identity::from_seed(&MasterSeed::from_bytes([1; 32]));
        let doctor = Identity::from_seed(&MasterSeed::from_bytes([2; 32]));
        GrantRequest {
            grantee: doctor.signing_public(),
            scopes: scopes.iter().map(|s| s.parse().unwrap()).collect(),
            allowed_labels: labels.iter().map(|s| s.parse().unwrap()).collect(),
            purpose: PurposeOfUse::TREATMENT,
            duration_seconds: 86_400,
            max_reads,
            note: String::new(),
        }
        .sign(&patient, at("2026-11-21T09:00:00Z"))
        .unwrap()
    }

    fn read(time: &str) -> ReadAttempt {
        ReadAttempt { interaction: Interaction::Read, purpose: PurposeOfUse::TREATMENT, at: at(time), reads_so_far: 0 }
    }

    fn skin() -> Value {
        json!({"resourceType": "Condition", "code": {"coding": [{"system": "http://snomed.info/sct", "code": "24079001"}]}})
    }

    fn psych_note() -> Value {
        json!({"resourceType": "Condition", "meta": {"security": [{"system": labels::ACT_CODE_SYSTEM, "code": "PSY"}]}})
    }

    #[test]
    fn allows_in_scope_in_time() {
        let g = grant(&["patient/Condition.rs"], &[], None);
        assert_eq!(check(&g, &skin(), &read("2026-11-21T12:00:00Z")).unwrap(), Decision::Allow);
    }

    #[test]
    fn time_window_with_small_skew_before_start_only() {
        let g = grant(&["patient/Condition.rs"], &[], None);
        assert!(check(&g, &skin(), &read("2026-11-21T08:59:30Z")).unwrap().is_allowed());
        assert!(matches!(
            check(&g, &skin(), &read("2026-11-21T08:58:00Z")).unwrap(),
            Decision::Deny(Denial::NotYetValid { .. })
        ));
        assert!(check(&g, &skin(), &read("2026-11-22T08:59:59Z")).unwrap().is_allowed());
        assert!(matches!(
            check(&g, &skin(), &read("2026-11-22T09:00:00Z")).unwrap(),
            Decision::Deny(Denial::Expired { .. })
        ));
    }

    #[test]
    fn purpose_and_read_limit() {
        let g = grant(&["patient/Condition.rs"], &[], Some(2));
        let mut r = read("2026-11-21T12:00:00Z");
        r.purpose = "HRESCH".parse().unwrap();
        assert!(matches!(check(&g, &skin(), &r).unwrap(), Decision::Deny(Denial::PurposeMismatch { .. })));
        let mut r = read("2026-11-21T12:00:00Z");
        r.reads_so_far = 1;
        assert!(check(&g, &skin(), &r).unwrap().is_allowed());
        r.reads_so_far = 2;
        assert_eq!(check(&g, &skin(), &r).unwrap(), Decision::Deny(Denial::ReadLimitReached { max_reads: 2 }));
    }

    #[test]
    fn labels_are_denied_unless_named() {
        let r = read("2026-11-21T12:00:00Z");
        let plain = grant(&["patient/Condition.rs"], &[], None);
        assert_eq!(
            check(&plain, &psych_note(), &r).unwrap(),
            Decision::Deny(Denial::LabelNotAllowed { label: "PSY".into() })
        );
        let psy = grant(&["patient/Condition.rs"], &["PSY"], None);
        assert!(check(&psy, &psych_note(), &r).unwrap().is_allowed());
        // A label with no system is judged by its code alone.
        let odd = json!({"resourceType": "Condition", "meta": {"security": [{"code": "PSY"}]}});
        assert!(check(&psy, &odd, &r).unwrap().is_allowed());
        let normal = json!({"resourceType": "Condition", "meta": {"security": [{"system": labels::CONFIDENTIALITY_SYSTEM, "code": "N"}]}});
        assert!(check(&plain, &normal, &r).unwrap().is_allowed());
        let restricted = json!({"resourceType": "Condition", "meta": {"security": [{"system": labels::CONFIDENTIALITY_SYSTEM, "code": "R"}]}});
        assert!(!check(&plain, &restricted, &r).unwrap().is_allowed());
    }

    #[test]
    fn out_of_scope() {
        let g = grant(&["patient/Observation.rs?category=laboratory"], &[], None);
        let r = read("2026-11-21T12:00:00Z");
        assert_eq!(
            check(&g, &skin(), &r).unwrap(),
            Decision::Deny(Denial::OutOfScope { resource_type: "Condition".into() })
        );
    }

    #[test]
    fn malformed_resources_are_errors() {
        let g = grant(&["patient/*.rs"], &[], None);
        let r = read("2026-11-21T12:00:00Z");
        for bad in [
            json!([]),
            json!({}),
            json!({"resourceType": 3}),
            json!({"resourceType": "X", "meta": {"security": {}}}),
            json!({"resourceType": "X", "meta": {"security": [{"system": "s"}]}}),
        ] {
            assert!(check(&g, &bad, &r).is_err(), "{bad} should be refused");
        }
    }

    proptest::proptest! {
        /// Whatever the time, a read is allowed exactly inside [not_before - skew, not_after).
        #[test]
        fn time_window_is_exact(offset in -200_000i64..200_000) {
            let g = grant(&["patient/Condition.rs"], &[], None);
            let t = Timestamp::from_unix(g.not_before.unix() + offset).unwrap();
            let mut r = read("2026-11-21T12:00:00Z");
            r.at = t;
            let inside = offset >= -CLOCK_SKEW_SECONDS && t < g.not_after;
            proptest::prop_assert_eq!(check(&g, &skin(), &r).unwrap().is_allowed(), inside);
        }

        /// A resource carrying any restricting label not named by the grant is never allowed.
        #[test]
        fn unnamed_labels_always_deny(code in "[A-Z]{2,8}") {
            let g = grant(&["patient/*.rs"], &["HIV"], None);
            let res = json!({"resourceType": "Observation", "meta": {"security": [{"system": labels::ACT_CODE_SYSTEM, "code": code}]}});
            let allowed = check(&g, &res, &read("2026-11-21T12:00:00Z")).unwrap().is_allowed();
            proptest::prop_assert_eq!(allowed, code == "HIV");
        }
    }
}

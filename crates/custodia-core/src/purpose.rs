//! HL7 v3 purpose-of-use codes: why a grant's holder may read. A read must state the purpose the grant
//! was given for; a treatment grant does not cover research.

/// HL7 v3 ActReason, where purpose-of-use codes live.
pub const PURPOSE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";

/// `(code, display)` for the purposes a grant may name.
pub const PURPOSE_CODES: &[(&str, &str)] = &[
    ("TREAT", "treatment"),
    ("ETREAT", "emergency treatment"),
    ("BTG", "break the glass"),
    ("CAREMGT", "care management"),
    ("COC", "coordination of care"),
    ("CLINTRCH", "clinical trial research"),
    ("HRESCH", "healthcare research"),
    ("HPAYMT", "healthcare payment"),
    ("HOPERAT", "healthcare operations"),
    ("HQUALIMP", "health quality improvement"),
    ("PATRQT", "patient requested"),
    ("FAMRQT", "family requested"),
    ("PWATRNY", "power of attorney"),
    ("SUPNWK", "support network"),
    ("PUBHLTH", "public health"),
    ("HLEGAL", "legal"),
    ("COVERAGE", "coverage under policy or program"),
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown purpose of use {0:?}; use an HL7 code such as TREAT, ETREAT, HRESCH, PATRQT")]
pub struct UnknownPurpose(pub String);

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PurposeOfUse(&'static str);

impl PurposeOfUse {
    pub const TREATMENT: PurposeOfUse = PurposeOfUse("TREAT");
    pub const EMERGENCY_TREATMENT: PurposeOfUse = PurposeOfUse("ETREAT");
    /// The patient reading their own records.
    pub const PATIENT_REQUESTED: PurposeOfUse = PurposeOfUse("PATRQT");

    pub fn code(self) -> &'static str {
        self.0
    }

    pub fn display(self) -> &'static str {
        crate::codes::find(PURPOSE_CODES, self.0).map_or("", |(_, d)| d)
    }
}

crate::codes::coded_value!(PurposeOfUse, UnknownPurpose, |code| crate::codes::find(PURPOSE_CODES, code)
    .map(|(c, _)| c));

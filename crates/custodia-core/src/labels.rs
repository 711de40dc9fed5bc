//! HL7 sensitivity labels. A resource carrying one of these in `meta.security` is withheld unless the
//! grant names the label: a dermatologist's grant does not show mental-health notes by accident.
//!
//! The known codes are the HL7 v3 ActCode information-sensitivity policies most used on records, plus the
//! confidentiality codes R (restricted) and V (very restricted). A grant may only name known codes, so a
//! typo is caught when the grant is made rather than silently allowing nothing.

/// HL7 v3 ActCode: where the sensitivity policy codes live.
pub const ACT_CODE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
/// HL7 v3 Confidentiality: N, R, V and friends.
pub const CONFIDENTIALITY_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";

/// `(code, display)` for every sensitivity code a grant may name.
pub const SENSITIVITY_CODES: &[(&str, &str)] = &[
    ("BH", "behavioral health information sensitivity"),
    ("COGN", "cognitive disability information sensitivity"),
    ("DVD", "developmental disability information sensitivity"),
    ("EMOTDIS", "emotional disturbance information sensitivity"),
    ("ETH", "substance abuse information sensitivity"),
    ("ETHUD", "alcohol use disorder information sensitivity"),
    ("GDIS", "genetic disease information sensitivity"),
    ("HIV", "HIV/AIDS information sensitivity"),
    ("MH", "mental health information sensitivity"),
    ("MST", "military sexual trauma information sensitivity"),
    ("OPIOIDUD", "opioid use disorder information sensitivity"),
    ("PREGNANT", "pregnancy information sensitivity"),
    ("PSY", "psychiatry disorder information sensitivity"),
    ("PSYTHPN", "psychotherapy note information sensitivity"),
    ("SCA", "sickle cell anemia information sensitivity"),
    ("SDV", "sexual assault, abuse, or domestic violence information sensitivity"),
    ("SEX", "sexuality and reproductive health information sensitivity"),
    ("SICKLE", "sickle cell information sensitivity"),
    ("SPI", "sensitive privacy information sensitivity"),
    ("STD", "sexually transmitted disease information sensitivity"),
    ("SUD", "substance use disorder information sensitivity"),
    ("TBOO", "taboo"),
];

/// Confidentiality codes that withhold a resource unless named: restricted and very restricted.
pub const CONFIDENTIALITY_CODES: &[(&str, &str)] = &[("R", "restricted"), ("V", "very restricted")];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown sensitivity label {0:?}; known labels are the HL7 codes such as PSY, ETH, HIV, SDV, SEX, STD, R, V")]
pub struct UnknownLabel(pub String);

/// A sensitivity or confidentiality code a grant explicitly allows.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SensitivityLabel(&'static str);

impl SensitivityLabel {
    pub fn code(self) -> &'static str {
        self.0
    }

    pub fn display(self) -> &'static str {
        crate::codes::find(SENSITIVITY_CODES, self.0)
            .or_else(|| crate::codes::find(CONFIDENTIALITY_CODES, self.0))
            .map_or("", |(_, d)| d)
    }

    /// The FHIR code system this label belongs to.
    pub fn system(self) -> &'static str {
        if crate::codes::find(CONFIDENTIALITY_CODES, self.0).is_some() {
            CONFIDENTIALITY_SYSTEM
        } else {
            ACT_CODE_SYSTEM
        }
    }
}

crate::codes::coded_value!(SensitivityLabel, UnknownLabel, |code| {
    crate::codes::find(SENSITIVITY_CODES, code)
        .or_else(|| crate::codes::find(CONFIDENTIALITY_CODES, code))
        .map(|(c, _)| c)
});

/// Which labels on a resource's `meta.security` must be allowed by a grant before it may be read.
///
/// Every ActCode label counts (known or not: an unknown one is denied, never ignored), as do the
/// confidentiality codes R and V, and codes without a system (a label whose system is missing could be
/// anything). Labels of other systems (integrity, handling instructions) do not restrict reading.
pub fn is_restricting(system: Option<&str>, code: &str) -> bool {
    match system {
        None => true,
        Some(ACT_CODE_SYSTEM) => true,
        Some(CONFIDENTIALITY_SYSTEM) => crate::codes::find(CONFIDENTIALITY_CODES, code).is_some(),
        Some(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_codes_case_insensitively() {
        assert_eq!("psy".parse::<SensitivityLabel>().unwrap().code(), "PSY");
        assert_eq!("V".parse::<SensitivityLabel>().unwrap().system(), CONFIDENTIALITY_SYSTEM);
        assert!("PSYCH".parse::<SensitivityLabel>().is_err());
    }

    #[test]
    fn which_labels_restrict() {
        assert!(is_restricting(Some(ACT_CODE_SYSTEM), "PSY"));
        assert!(is_restricting(Some(ACT_CODE_SYSTEM), "SOMETHINGNEW"));
        assert!(is_restricting(Some(CONFIDENTIALITY_SYSTEM), "R"));
        assert!(!is_restricting(Some(CONFIDENTIALITY_SYSTEM), "N"));
        assert!(is_restricting(None, "HIV"));
        assert!(!is_restricting(Some("http://terminology.hl7.org/CodeSystem/v3-ObservationValue"), "SUBSETTED"));
    }
}

//! A network profile: what a wallet, a gateway or a witness joins a Custodia network with, so that no
//! key is taken on first use from whatever answers at an address.
//!
//! ```text
//! custodia-network/v1
//! ledger https://ledger.example.org
//! authority cusig1...
//! log example.org/custodia+1a2b3c4d+AQ...          <- a C2SP tlog-policy from here on
//! witness W1 w1.example/w+5e6f...+BA... https://w1.example/
//! group Q 2 W1 W2 W3
//! quorum Q
//! ```
//!
//! The lines after the header and the two Custodia lines are a C2SP tlog-policy: the ledger's checkpoint
//! key is its one `log` line. The profile is authenticated by its fingerprint (80 bits of SHA-256 over
//! its exact bytes, read out like a contact's), which the operator publishes and the person joining
//! compares; it travels as a file or as a QR code of the same text.

use custodia_core::{Fingerprint, SigningPublicKey};
use custodia_log::NoteVerifier;
use custodia_log::policy::Policy;

pub const HEADER: &str = "custodia-network/v1";
/// The largest profile read; a QR code holds under 3 KB anyway.
pub const MAX_PROFILE_BYTES: usize = 16 * 1024;
const FINGERPRINT_LABEL: &[u8] = b"custodia network profile v1\n";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProfileError {
    #[error("not a Custodia network profile: {0}")]
    Malformed(String),
    #[error("the profile's witness policy: {0}")]
    Policy(#[from] custodia_log::policy::PolicyError),
}

/// A parsed network profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkProfile {
    pub ledger_url: String,
    pub authority: SigningPublicKey,
    pub policy: Policy,
    text: String,
}

impl NetworkProfile {
    /// Makes the profile text of a network.
    pub fn build(ledger_url: &str, authority: SigningPublicKey, policy: &Policy) -> Result<Self, ProfileError> {
        // Wallets and gateways never call witnesses: the profile carries the policy without URLs or
        // comments, which keeps its QR code small.
        Self::parse(&format!("{HEADER}\nledger {ledger_url}\nauthority {authority}\n{}", policy.verifier_text()))
    }

    pub fn parse(text: &str) -> Result<Self, ProfileError> {
        let bad = |what: &str| ProfileError::Malformed(what.to_owned());
        if text.len() > MAX_PROFILE_BYTES {
            return Err(bad("larger than 16 KiB"));
        }
        // One profile has one text, whatever a copy added or took away at its end (a pasted profile loses
        // its last newline): the fingerprint is over this form.
        let text = &format!("{}\n", text.trim_end());
        let mut lines = text.splitn(4, '\n');
        if lines.next() != Some(HEADER) {
            return Err(bad("the first line must be custodia-network/v1"));
        }
        let ledger_url = lines
            .next()
            .and_then(|l| l.strip_prefix("ledger "))
            .filter(|u| !u.is_empty() && !u.contains(char::is_whitespace))
            .ok_or_else(|| bad("the second line must be `ledger <url>`"))?;
        let authority = lines
            .next()
            .and_then(|l| l.strip_prefix("authority "))
            .and_then(|k| k.parse::<SigningPublicKey>().ok())
            .ok_or_else(|| bad("the third line must be `authority <cusig1...>`"))?;
        let policy = Policy::parse(lines.next().unwrap_or_default())?;
        if policy.logs.len() != 1 {
            return Err(bad("the policy must list exactly one log: the ledger's checkpoint key"));
        }
        Ok(Self { ledger_url: ledger_url.to_owned(), authority, policy, text: text.to_owned() })
    }

    /// The ledger's checkpoint key.
    pub fn log_key(&self) -> &NoteVerifier {
        &self.policy.logs[0].key
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// 80 bits of SHA-256 over the profile's exact bytes, in the form people compare.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_document(FINGERPRINT_LABEL, self.text.as_bytes())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn profile_text() -> String {
        let log = custodia_log::NoteSigner::new("example.org/custodia", &[1; 32]).unwrap().verifier();
        let w = custodia_log::cosignature::Cosigner::new("w1.example/w", &[2; 32]).unwrap().verifier();
        let authority =
            custodia_core::Identity::from_seed(&custodia_core::MasterSeed::from_bytes([3; 32])).signing_public();
        format!(
            "{HEADER}\nledger https://ledger.example.org\nauthority {authority}\nlog {}\nwitness W1 {} https://w1.example/\nquorum W1\n",
            log.to_vkey(),
            w.to_vkey()
        )
    }

    #[test]
    fn a_profile_parses_and_its_fingerprint_covers_every_byte() {
        let text = profile_text();
        let profile = NetworkProfile::parse(&text).unwrap();
        assert_eq!(profile.ledger_url, "https://ledger.example.org");
        assert_eq!(profile.log_key().name(), "example.org/custodia");
        assert_eq!(profile.policy.witnesses.len(), 1);
        let again = NetworkProfile::build(&profile.ledger_url, profile.authority, &profile.policy).unwrap();
        assert_eq!(again.text(), text.replace(" https://w1.example/", ""));
        assert_eq!(NetworkProfile::parse(again.text()).unwrap().fingerprint(), again.fingerprint());
        assert_eq!(profile.fingerprint().to_string().len(), 19);
        let trimmed = NetworkProfile::parse(text.trim_end()).unwrap();
        assert_eq!(trimmed.fingerprint(), profile.fingerprint(), "a copy without its last newline is the same profile");
        let changed = text.replace("ledger.example.org", "ledger.example.com");
        assert_ne!(NetworkProfile::parse(&changed).unwrap().fingerprint(), profile.fingerprint());
    }

    #[test]
    fn bad_profiles_are_refused() {
        let text = profile_text();
        for bad in [
            text.replace(HEADER, "custodia-network/v2"),
            text.replace("ledger https", "ledgr https"),
            text.replace("authority cusig1", "authority cusig2"),
            text.replace("quorum W1", "quorum W2"),
            text.lines()
                .filter(|l| !l.starts_with("log "))
                .collect::<Vec<_>>()
                .join("\n")
                .replace("quorum W1", "quorum none"),
        ] {
            assert!(NetworkProfile::parse(&bad).is_err(), "{bad}");
        }
    }
}

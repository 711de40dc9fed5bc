//! C2SP tlog-policy (c2sp.org/tlog-policy): which logs are trusted, which witnesses, and the quorum of
//! cosignatures a checkpoint needs before a client believes it.
//!
//! ```text
//! log <vkey> [<url>]
//! witness <name> <vkey> [<url>]
//! group <name> all|any|<k> <name>...
//! quorum <name>|none
//! ```
//!
//! Names are defined before use (so groups cannot be circular), a name is a member of a group at most
//! once, no key appears twice, and there is exactly one quorum line. Whitespace is spaces and tabs;
//! blank lines and `#` comments are ignored. The text must be UTF-8 (the specification allows opaque
//! high-bit octets; Custodia's names are text).

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::cosignature::{CosignatureVerifier, verify_cosignature};
use crate::note::{NoteError, NoteVerifier, SignedNote};

/// The largest policy file read.
pub const MAX_POLICY_BYTES: usize = 64 * 1024;
/// At most this many logs, witnesses and groups each (the specification recommends supporting 32).
pub const MAX_ENTRIES: usize = 256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("line {line}: {reason}")]
    Syntax { line: usize, reason: String },
    #[error("the policy is larger than {MAX_POLICY_BYTES} bytes or not UTF-8")]
    TooLarge,
    #[error("the policy has no quorum line")]
    NoQuorum,
}

/// Why a checkpoint is not accepted under a policy.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointRefusal {
    #[error("the checkpoint is not from a log this policy trusts: {0}")]
    Log(CheckpointError),
    #[error("the cosignature by witness {witness} does not verify: {reason}")]
    BadCosignature { witness: String, reason: String },
    #[error("the checkpoint (size {size}) lacks the witnesses' quorum: cosigned by {}, missing {}", list(.cosigned), list(.missing))]
    NoQuorum { size: u64, cosigned: Vec<String>, missing: Vec<String> },
}

fn list(names: &[String]) -> String {
    if names.is_empty() { "none".to_owned() } else { names.join(", ") }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyLog {
    pub key: NoteVerifier,
    pub url: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyWitness {
    pub name: String,
    pub key: CosignatureVerifier,
    pub url: Option<String>,
}

/// A group member or the quorum: a witness or a group, by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Member {
    Witness(usize),
    Group(usize),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub threshold: usize,
    pub members: Vec<Member>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub logs: Vec<PolicyLog>,
    pub witnesses: Vec<PolicyWitness>,
    pub groups: Vec<Group>,
    /// `None` for `quorum none`.
    pub quorum: Option<Member>,
    text: String,
}

/// A checkpoint the policy accepts, with the witnesses whose cosignatures verified and their times.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub checkpoint: Checkpoint,
    pub note: SignedNote,
    pub cosigned_by: Vec<(String, u64)>,
}

impl Policy {
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(PolicyError::TooLarge);
        }
        let mut policy =
            Policy { logs: Vec::new(), witnesses: Vec::new(), groups: Vec::new(), quorum: None, text: text.to_owned() };
        let mut quorum_seen = false;
        for (number, raw) in text.split('\n').enumerate() {
            let line = number + 1;
            let fail = |reason: String| PolicyError::Syntax { line, reason };
            if raw.bytes().any(|b| b < 0x20 && b != b'\t' || b == 0x7f) {
                return Err(fail("a control character other than tab".into()));
            }
            let words: Vec<&str> = raw.split([' ', '\t']).filter(|w| !w.is_empty()).collect();
            let Some((&keyword, args)) = words.split_first() else { continue };
            if keyword.starts_with('#') {
                continue;
            }
            match keyword {
                "log" => {
                    let (key, url) = match args {
                        [key] => (key, None),
                        [key, url] => (key, Some(url.to_string())),
                        _ => return Err(fail("expected `log <vkey> [<url>]`".into())),
                    };
                    let key = NoteVerifier::from_vkey(key).map_err(|e| fail(format!("bad log key: {e}")))?;
                    if policy.logs.iter().any(|l| l.key.public_key() == key.public_key()) {
                        return Err(fail("this log key is listed twice".into()));
                    }
                    if policy.logs.len() == MAX_ENTRIES {
                        return Err(fail(format!("more than {MAX_ENTRIES} logs")));
                    }
                    policy.logs.push(PolicyLog { key, url });
                }
                "witness" => {
                    let (name, key, url) = match args {
                        [name, key] => (name, key, None),
                        [name, key, url] => (name, key, Some(url.to_string())),
                        _ => return Err(fail("expected `witness <name> <vkey> [<url>]`".into())),
                    };
                    policy.check_new_name(name).map_err(fail)?;
                    let key = CosignatureVerifier::from_vkey(key).map_err(|e| fail(format!("bad witness key: {e}")))?;
                    if policy.witnesses.iter().any(|w| w.key.public_key() == key.public_key()) {
                        return Err(fail("this witness key is listed twice".into()));
                    }
                    if policy.witnesses.len() == MAX_ENTRIES {
                        return Err(fail(format!("more than {MAX_ENTRIES} witnesses")));
                    }
                    policy.witnesses.push(PolicyWitness { name: name.to_string(), key, url });
                }
                "group" => {
                    let [name, threshold, members @ ..] = args else {
                        return Err(fail("expected `group <name> all|any|<k> <name>...`".into()));
                    };
                    policy.check_new_name(name).map_err(fail)?;
                    if members.is_empty() {
                        return Err(fail("a group needs at least one member".into()));
                    }
                    let mut resolved = Vec::with_capacity(members.len());
                    for member in members {
                        let member = policy.resolve(member).map_err(fail)?;
                        if resolved.contains(&member) {
                            return Err(fail("a name is listed twice in the group".into()));
                        }
                        resolved.push(member);
                    }
                    let threshold = match *threshold {
                        "all" => resolved.len(),
                        "any" => 1,
                        k => match crate::checkpoint::parse_decimal(k) {
                            Some(k) if k >= 1 && k <= resolved.len() as u64 => k as usize,
                            _ => return Err(fail(format!("the threshold must be all, any or 1..={}", resolved.len()))),
                        },
                    };
                    if policy.groups.len() == MAX_ENTRIES {
                        return Err(fail(format!("more than {MAX_ENTRIES} groups")));
                    }
                    policy.groups.push(Group { name: name.to_string(), threshold, members: resolved });
                }
                "quorum" => {
                    let [name] = args else { return Err(fail("expected `quorum <name>`".into())) };
                    if quorum_seen {
                        return Err(fail("a second quorum line".into()));
                    }
                    quorum_seen = true;
                    policy.quorum = if *name == "none" { None } else { Some(policy.resolve(name).map_err(fail)?) };
                }
                other => return Err(fail(format!("unknown keyword {other:?}"))),
            }
        }
        if !quorum_seen {
            return Err(PolicyError::NoQuorum);
        }
        Ok(policy)
    }

    /// The policy's text, as parsed.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The same policy for verifiers: one line per log, witness and group, no URLs (only logs and
    /// monitors talk to witnesses) and no comments, thresholds as numbers.
    pub fn verifier_text(&self) -> String {
        let name = |m: &Member| match *m {
            Member::Witness(i) => self.witnesses[i].name.as_str(),
            Member::Group(g) => self.groups[g].name.as_str(),
        };
        let mut text = String::new();
        for log in &self.logs {
            text.push_str(&format!("log {}\n", log.key.to_vkey()));
        }
        for witness in &self.witnesses {
            text.push_str(&format!("witness {} {}\n", witness.name, witness.key.to_vkey()));
        }
        for group in &self.groups {
            let members: Vec<&str> = group.members.iter().map(name).collect();
            text.push_str(&format!("group {} {} {}\n", group.name, group.threshold, members.join(" ")));
        }
        text.push_str(&format!("quorum {}\n", self.quorum.as_ref().map_or("none", name)));
        text
    }

    fn check_new_name(&self, name: &str) -> Result<(), String> {
        if name == "none" {
            return Err("`none` is reserved".into());
        }
        if self.witnesses.iter().any(|w| w.name == name) || self.groups.iter().any(|g| g.name == name) {
            return Err(format!("the name {name:?} is already defined"));
        }
        Ok(())
    }

    fn resolve(&self, name: &str) -> Result<Member, String> {
        if let Some(i) = self.witnesses.iter().position(|w| w.name == name) {
            return Ok(Member::Witness(i));
        }
        if let Some(i) = self.groups.iter().position(|g| g.name == name) {
            return Ok(Member::Group(i));
        }
        Err(format!("{name:?} is not a witness or group defined above"))
    }

    fn satisfied(&self, member: Member, cosigned: &[bool]) -> bool {
        match member {
            Member::Witness(i) => cosigned.get(i).copied().unwrap_or(false),
            Member::Group(g) => {
                let group = &self.groups[g];
                group.members.iter().filter(|m| self.satisfied(**m, cosigned)).count() >= group.threshold
            }
        }
    }

    /// Whether witnesses `cosigned` (by index into [`Policy::witnesses`]) make the quorum.
    pub fn quorum_met(&self, cosigned: &[bool]) -> bool {
        self.quorum.is_none_or(|q| self.satisfied(q, cosigned))
    }

    /// The witnesses the quorum depends on (all, for `quorum none` none).
    pub fn quorum_witnesses(&self) -> Vec<usize> {
        fn walk(policy: &Policy, member: Member, out: &mut Vec<usize>) {
            match member {
                Member::Witness(i) if !out.contains(&i) => out.push(i),
                Member::Witness(_) => {}
                Member::Group(g) => policy.groups[g].members.iter().for_each(|m| walk(policy, *m, out)),
            }
        }
        let mut out = Vec::new();
        if let Some(q) = self.quorum {
            walk(self, q, &mut out);
        }
        out
    }

    /// Accepts `note` only if it is a checkpoint signed by one of the policy's logs (its origin equal
    /// to the log key's name) and cosigned by the quorum. A cosignature line by a policy witness's key
    /// that does not verify is refused outright: it is either damage or a forgery.
    pub fn accept(&self, note: &str) -> Result<Accepted, CheckpointRefusal> {
        let signed = SignedNote::parse(note).map_err(|e| CheckpointRefusal::Log(e.into()))?;
        let origin = signed.text.split('\n').next().unwrap_or_default();
        let log = self.logs.iter().find(|l| l.key.name() == origin).ok_or_else(|| {
            CheckpointRefusal::Log(NoteError::UnknownVerifier(format!("a log named {origin:?}")).into())
        })?;
        let (checkpoint, signed) = Checkpoint::open(note, &log.key).map_err(CheckpointRefusal::Log)?;
        let mut cosigned = vec![false; self.witnesses.len()];
        let mut cosigned_by = Vec::new();
        for signature in &signed.signatures {
            let Some(i) = self
                .witnesses
                .iter()
                .position(|w| w.key.name() == signature.name && w.key.key_id() == signature.key_id)
            else {
                continue;
            };
            let time = verify_cosignature(&checkpoint, signature, &self.witnesses[i].key).map_err(|e| {
                CheckpointRefusal::BadCosignature { witness: self.witnesses[i].name.clone(), reason: e.to_string() }
            })?;
            if !cosigned[i] {
                cosigned[i] = true;
                cosigned_by.push((self.witnesses[i].name.clone(), time));
            }
        }
        if !self.quorum_met(&cosigned) {
            let names = |want: bool| {
                self.quorum_witnesses()
                    .into_iter()
                    .filter(|i| cosigned[*i] == want)
                    .map(|i| self.witnesses[i].name.clone())
                    .collect::<Vec<_>>()
            };
            return Err(CheckpointRefusal::NoQuorum {
                size: checkpoint.size,
                cosigned: names(true),
                missing: names(false),
            });
        }
        Ok(Accepted { checkpoint, note: signed, cosigned_by })
    }
}

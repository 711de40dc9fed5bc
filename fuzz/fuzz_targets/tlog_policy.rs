//! Any text as a C2SP tlog-policy, and any text after it as a checkpoint to accept under it: nothing
//! panics, and a parsed policy's verifier form parses to the same logs, witnesses, groups and quorum.
#![no_main]
use custodia_log::policy::Policy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // A policy, then optionally "\0" and a note to check against it.
    let (policy, note) = text.split_once('\0').unwrap_or((text, ""));
    let Ok(policy) = Policy::parse(policy) else { return };
    let again = Policy::parse(&policy.verifier_text()).expect("a policy's verifier form parses");
    let keys = |p: &Policy| {
        let logs: Vec<_> = p.logs.iter().map(|l| l.key.clone()).collect();
        let witnesses: Vec<_> = p.witnesses.iter().map(|w| (w.name.clone(), w.key.clone())).collect();
        (logs, witnesses)
    };
    assert_eq!(keys(&again), keys(&policy));
    assert_eq!((&again.groups, again.quorum), (&policy.groups, policy.quorum));
    let n = policy.witnesses.len();
    let _ = policy.quorum_met(&vec![true; n]);
    let _ = policy.quorum_met(&vec![false; n]);
    let _ = policy.quorum_witnesses();
    let _ = policy.accept(note);
});

//! What a guardian's and a new device's wallet parse from a mailbox once a message has opened: the framed
//! recovery mail (a signed statement and perhaps a share), and a guardian roster. Neither may panic, and
//! nothing unsigned verifies.
#![no_main]
use custodia_core::recovery::{GuardianRoster, parse_mail};
use custodia_core::statement::Unverified;
use custodia_core::{Identity, MasterSeed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    if which % 2 == 0 {
        let me = Identity::from_seed(&MasterSeed::from_bytes([7; 32])).signing_public();
        assert!(parse_mail(&me, rest).is_err(), "an unsigned mail verified");
    } else if let Ok(roster) = Unverified::<GuardianRoster>::decode(rest) {
        assert!(roster.verify().is_err(), "an unsigned roster verified");
    }
});

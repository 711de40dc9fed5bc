//! How long a patient waits to unlock their wallet: one `open` with the parameters real wallets use,
//! printed beside raw Ed25519 sign/verify measured in the same run.

#[path = "../../../benches/ratio.rs"]
mod ratio;

use criterion::Criterion;
use custodia_wallet::vault::{self, KdfParams, Passphrase};

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let passphrase = Passphrase::new("correct horse battery staple".to_owned()).expect("non-empty passphrase");
    let file = vault::seal(&[0x5a; 4096], &passphrase, KdfParams::DEFAULT).expect("sealing with DEFAULT params");

    ratio::bench_ceilings(&mut c);
    // Each iteration is a deliberately slow KDF; ten samples are plenty.
    let mut slow = c.benchmark_group("vault");
    slow.sample_size(10);
    slow.bench_function("unlock (Argon2id m=64MiB t=3 p=4)", |b| {
        ratio::iter(b, "vault unlock (64 MiB, t=3, p=4)", || vault::open(&file, &passphrase).is_ok())
    });
    slow.finish();
    c.final_summary();

    ratio::summary(&[("vault unlock (64 MiB, t=3, p=4)", "slow on purpose (RFC 9106 second profile)")]);
}

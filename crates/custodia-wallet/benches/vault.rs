//! How long a patient waits to unlock their wallet: one `open` with the parameters real wallets use.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use custodia_wallet::vault::{self, KdfParams, Passphrase};

fn unlock(c: &mut Criterion) {
    // Setup failing means the bench cannot measure anything; there is nothing to recover.
    #[allow(clippy::expect_used)]
    let (file, passphrase) = {
        let passphrase = Passphrase::new("correct horse battery staple".to_owned()).expect("non-empty passphrase");
        let file = vault::seal(&[0x5a; 4096], &passphrase, KdfParams::DEFAULT).expect("sealing with DEFAULT params");
        (file, passphrase)
    };
    c.bench_function("vault unlock (Argon2id m=64MiB t=3 p=4)", |b| {
        b.iter(|| vault::open(black_box(&file), &passphrase).is_ok())
    });
}

criterion_group! {
    name = benches;
    // Each iteration is a deliberately slow KDF; ten samples are plenty.
    config = Criterion::default().sample_size(10);
    targets = unlock
}
criterion_main!(benches);

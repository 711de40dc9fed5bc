//! Where this crate asks the operating system for randomness (keys, nonces, ids). Shamir splitting is the
//! exception: blahaj draws its polynomial coefficients from `rand`'s OS-seeded generator.

/// Fills `buf` from the OS CSPRNG.
///
/// A machine that cannot give us randomness cannot make keys safely; there is nothing sensible to
/// continue with, so this is one of the few places the crate panics.
pub(crate) fn fill(buf: &mut [u8]) {
    #[allow(clippy::expect_used)]
    getrandom::fill(buf).expect("the operating system's random number generator failed");
}

pub(crate) fn array<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    fill(&mut out);
    out
}

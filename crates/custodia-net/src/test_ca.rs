//! A throwaway certificate authority for tests: a root, and server certificates it signs for chosen names and
//! validity, written as the PEM files a server and a client are given.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use crate::TlsFiles;

#[derive(Debug)]
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// How long a server certificate is valid, relative to now.
#[derive(Clone, Copy, Debug)]
pub enum Validity {
    /// From an hour ago to a day from now.
    Current,
    /// Ended a day ago.
    Expired,
}

impl TestCa {
    /// A new root named `name`.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = OffsetDateTime::now_utc() - Duration::days(2);
        params.not_after = OffsetDateTime::now_utc() + Duration::days(30);
        let key = KeyPair::generate().expect("a P-256 key for the test CA");
        let issuer = CertifiedIssuer::self_signed(params, key).expect("the test CA signs its own certificate");
        Self { issuer }
    }

    /// The root certificate, PEM, as a client's `--ca-file`.
    pub fn ca_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate and key (PEM) for `names` (DNS names or IP addresses).
    pub fn issue(&self, names: &[&str], validity: Validity) -> (String, String) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).expect("valid names");
        params.distinguished_name.push(DnType::CommonName, names.first().copied().unwrap_or("server"));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let now = OffsetDateTime::now_utc();
        (params.not_before, params.not_after) = match validity {
            Validity::Current => (now - Duration::hours(1), now + Duration::days(1)),
            Validity::Expired => (now - Duration::days(2), now - Duration::days(1)),
        };
        let key = KeyPair::generate().expect("a P-256 key for the server");
        let cert = params.signed_by(&key, &self.issuer).expect("the test CA signs");
        (cert.pem(), key.serialize_pem())
    }

    /// Writes the root to `dir/ca.pem` and returns the path.
    pub fn write_ca(&self, dir: &Path) -> std::path::PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, self.ca_pem()).expect("write the test CA");
        path
    }

    /// Writes a server certificate and key as `dir/{stem}.crt` and `dir/{stem}.key`.
    pub fn write_server(&self, dir: &Path, stem: &str, names: &[&str], validity: Validity) -> TlsFiles {
        let (cert, key) = self.issue(names, validity);
        let files = TlsFiles { cert: dir.join(format!("{stem}.crt")), key: dir.join(format!("{stem}.key")) };
        std::fs::write(&files.cert, cert).expect("write the test certificate");
        std::fs::write(&files.key, key).expect("write the test key");
        files
    }
}

//! The options of each `serve` command, given on the command line, in a TOML file (`--config FILE`), or both:
//! the command line wins. Every flag has a key of the same name (`--tls-cert` is `tls-cert`), and a key that
//! is not one of them is refused with its name, so a misspelt setting never silently falls back to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use custodia_net::{ServerTls, TlsFiles};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// A configuration file is a page of settings; a larger one is a mistake.
const MAX_CONFIG_BYTES: u64 = 256 * 1024;

/// A configuration file that cannot be used: which file, and what is wrong (the key, its line).
#[derive(Debug, thiserror::Error)]
#[error("bad configuration file {path}: {reason}")]
pub struct ConfigFileError {
    pub path: PathBuf,
    pub reason: String,
}

/// Reads `path` as TOML into `T`, refusing keys `T` does not have.
pub fn read<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigFileError> {
    use std::io::Read;
    let bad = |reason: String| ConfigFileError { path: path.to_owned(), reason };
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CONFIG_BYTES + 1).read_to_string(&mut text))
        .map_err(|e| bad(e.to_string()))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(bad(format!("it is larger than {MAX_CONFIG_BYTES} bytes")));
    }
    // toml's message names the key and shows the line; folded onto one line, as every error here is.
    toml::from_str(&text).map_err(|e| bad(e.to_string().split_whitespace().collect::<Vec<_>>().join(" ")))
}

/// `--tls-cert` and `--tls-key`, when both are given (a file alone is refused by clap, or here for a file).
fn server_tls(cert: Option<&Path>, key: Option<&Path>, origin: &str) -> Result<Option<ServerTls>> {
    match (cert, key) {
        (Some(cert), Some(key)) => {
            let files = TlsFiles { cert: cert.to_owned(), key: key.to_owned() };
            Ok(Some(ServerTls::new(&files)?))
        }
        (None, None) => Ok(None),
        _ => anyhow::bail!("{origin}: tls-cert and tls-key go together: give both, or neither for plain HTTP"),
    }
}

/// Fills each option the command line left out from the file.
macro_rules! merge_from_file {
    ($cli:expr, $file:expr, [$($field:ident),* $(,)?]) => {{
        let (cli, file) = ($cli, $file);
        Self { config: cli.config, $($field: cli.$field.or(file.$field),)* }
    }};
}

/// `custodia ledger serve`.
#[derive(Args, Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LedgerServe {
    /// A TOML file with any of these options (keys named as the flags); flags given here win.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// The ledger's folder (made by `custodia ledger init`).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// sqlite:PATH or postgres://user@host/db?sslmode=verify-full (default: the folder's ledger.sqlite).
    #[arg(long)]
    pub db: Option<String>,
    /// Where to listen [default: 127.0.0.1:7420]. Beyond loopback only with TLS, or with
    /// CUSTODIA_LEDGER_PUBLIC=1 behind a TLS proxy. Port 0 picks a free port.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Entries (and signed reads) a second allowed per key.
    #[arg(long, value_name = "N")]
    pub rate_limit: Option<u32>,
    /// Publish only checkpoints cosigned by this C2SP tlog-policy's quorum (witnesses with URLs are
    /// asked for cosignatures as the log grows).
    #[arg(long, value_name = "FILE")]
    pub witness_policy: Option<PathBuf>,
    /// Also trust this CA (PEM) for the witnesses; the same as the global --ca-file.
    #[arg(skip)]
    pub ca_file: Option<PathBuf>,
    /// Terminate TLS with this certificate chain (PEM, leaf first); reread when it changes.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Log lines as text (the default) or as JSON, one object per line, for a log collector.
    #[arg(long, value_name = "text|json")]
    pub log_format: Option<custodia_net::log::Format>,
}

impl LedgerServe {
    /// The command line's options, completed from `--config` if given.
    pub fn resolve(self) -> Result<Self> {
        let Some(path) = self.config.clone() else { return Ok(self) };
        let file: Self = read(&path)?;
        Ok(merge_from_file!(
            self,
            file,
            [dir, db, listen, rate_limit, witness_policy, ca_file, tls_cert, tls_key, log_format]
        ))
    }

    pub fn dir(&self) -> Result<&Path> {
        self.dir.as_deref().context("give the ledger's folder: --dir DIR, or dir = \"...\" in the configuration file")
    }

    pub fn listen(&self) -> SocketAddr {
        self.listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 7420)))
    }

    pub fn tls(&self) -> Result<Option<ServerTls>> {
        server_tls(self.tls_cert.as_deref(), self.tls_key.as_deref(), "ledger serve")
    }
}

/// `custodia gateway serve`.
#[derive(Args, Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct GatewayServe {
    /// A TOML file with any of these options (keys named as the flags); flags given here win.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// The gateway's folder (made by `custodia gateway init`).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// The ledger's URL (https://, or http:// on loopback).
    #[arg(long, value_name = "URL", env = "CUSTODIA_LEDGER")]
    pub ledger: Option<String>,
    /// The ledger's checkpoint key; without it, the key the ledger announces is trusted on first use.
    #[arg(long, value_name = "VKEY")]
    pub ledger_key: Option<String>,
    /// The network profile (file or QR picture): the ledger's URL (unless --ledger), its key and the
    /// witness policy every checkpoint the gateway acts on must satisfy.
    #[arg(long, value_name = "FILE")]
    pub network: Option<PathBuf>,
    /// A folder of FHIR JSON (Bundles or resources); default: the shipped synthetic dataset.
    #[arg(long, value_name = "DIR", conflicts_with = "upstream")]
    pub data: Option<PathBuf>,
    /// Proxy mode: the FHIR R4 server whose records the gateway guards (https://, or http:// on loopback).
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
    /// SMART Backend Services: the client id the upstream's authorization server registered.
    #[arg(long, value_name = "ID", requires_all = ["upstream_key", "upstream_token_url"], conflicts_with = "upstream_token_file")]
    pub upstream_client_id: Option<String>,
    /// SMART Backend Services: the private key (PEM; EC P-384 for ES384 or RSA for RS384) the client's
    /// assertions are signed with; `gateway upstream-key` makes one and prints its public JWK Set.
    #[arg(long, value_name = "FILE", requires = "upstream_client_id")]
    pub upstream_key: Option<PathBuf>,
    /// SMART Backend Services: the authorization server's token endpoint.
    #[arg(long, value_name = "URL", requires = "upstream_client_id")]
    pub upstream_token_url: Option<String>,
    /// SMART Backend Services: the key's id as registered (default: its RFC 7638 thumbprint).
    #[arg(long, value_name = "KID", requires = "upstream_client_id")]
    pub upstream_key_id: Option<String>,
    /// SMART Backend Services: the scopes asked for [default: system/*.rs].
    #[arg(long, value_name = "SCOPES", requires = "upstream_client_id")]
    pub upstream_scope: Option<String>,
    /// A static bearer token for the upstream, read from this file (mode 0600).
    #[arg(long, value_name = "FILE")]
    pub upstream_token_file: Option<PathBuf>,
    /// Resources asked of the upstream per search page [default: 200]; `next` links are followed.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub upstream_page_size: Option<u16>,
    /// Where to listen [default: 127.0.0.1:7430]. Beyond loopback only with TLS, or with
    /// CUSTODIA_GATEWAY_PUBLIC=1 behind a TLS proxy.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// The base URL clients use and sign, if not the scheme and address listened on.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Read the passphrase from this file (otherwise CUSTODIA_PASSPHRASE).
    #[arg(long)]
    pub passphrase_file: Option<PathBuf>,
    /// Terminate TLS with this certificate chain (PEM, leaf first); reread when it changes.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Log lines as text (the default) or as JSON, one object per line, for a log collector.
    #[arg(long, value_name = "text|json")]
    pub log_format: Option<custodia_net::log::Format>,
    /// Also trust this CA (PEM) for the ledger and the upstream; the same as the global --ca-file.
    #[arg(skip)]
    pub ca_file: Option<PathBuf>,
}

impl GatewayServe {
    pub fn resolve(self: Box<Self>) -> Result<Self> {
        let cli = *self;
        let Some(path) = cli.config.clone() else { return Ok(cli) };
        let file: Self = read(&path)?;
        if file.data.is_some() && (cli.upstream.is_some() || file.upstream.is_some()) {
            return Err(ConfigFileError { path, reason: "data and upstream cannot both be given".into() }.into());
        }
        Ok(merge_from_file!(
            cli,
            file,
            [
                dir,
                ledger,
                ledger_key,
                network,
                data,
                upstream,
                upstream_client_id,
                upstream_key,
                upstream_token_url,
                upstream_key_id,
                upstream_scope,
                upstream_token_file,
                upstream_page_size,
                listen,
                public_url,
                passphrase_file,
                tls_cert,
                tls_key,
                ca_file,
                log_format
            ]
        ))
    }

    pub fn dir(&self) -> Result<&Path> {
        self.dir.as_deref().context("give the gateway's folder: --dir DIR, or dir = \"...\" in the configuration file")
    }

    pub fn ledger(&self) -> Result<&str> {
        self.ledger.as_deref().context("give the ledger: --ledger URL, or ledger = \"...\" in the configuration file")
    }

    pub fn listen(&self) -> SocketAddr {
        self.listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 7430)))
    }

    pub fn tls(&self) -> Result<Option<ServerTls>> {
        server_tls(self.tls_cert.as_deref(), self.tls_key.as_deref(), "gateway serve")
    }
}

/// `custodia witness serve`.
#[derive(Args, Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct WitnessServe {
    /// A TOML file with any of these options (keys named as the flags); flags given here win.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// The witness's folder (made by `custodia witness init`).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Where to listen [default: 127.0.0.1:7440]. Beyond loopback only with TLS, or with
    /// CUSTODIA_WITNESS_PUBLIC=1 behind a TLS proxy. Port 0 picks a free port.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Terminate TLS with this certificate chain (PEM, leaf first); reread when it changes.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Log lines as text (the default) or as JSON, one object per line, for a log collector.
    #[arg(long, value_name = "text|json")]
    pub log_format: Option<custodia_net::log::Format>,
}

impl WitnessServe {
    pub fn resolve(self) -> Result<Self> {
        let Some(path) = self.config.clone() else { return Ok(self) };
        let file: Self = read(&path)?;
        Ok(merge_from_file!(self, file, [dir, listen, tls_cert, tls_key, log_format]))
    }

    pub fn dir(&self) -> Result<&Path> {
        self.dir.as_deref().context("give the witness's folder: --dir DIR, or dir = \"...\" in the configuration file")
    }

    pub fn listen(&self) -> SocketAddr {
        self.listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 7440)))
    }

    pub fn tls(&self) -> Result<Option<ServerTls>> {
        server_tls(self.tls_cert.as_deref(), self.tls_key.as_deref(), "witness serve")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Test code: a panic is the failure report.
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn the_command_line_wins_over_the_file() {
        let (_d, path) = write("dir = \"/var/lib/custodia/ledger\"\nlisten = \"0.0.0.0:443\"\nrate-limit = 5\n");
        let cli =
            LedgerServe { config: Some(path), listen: Some("127.0.0.1:1".parse().unwrap()), ..Default::default() };
        let merged = cli.resolve().unwrap();
        assert_eq!(merged.dir.as_deref(), Some(Path::new("/var/lib/custodia/ledger")));
        assert_eq!(merged.listen(), "127.0.0.1:1".parse().unwrap());
        assert_eq!(merged.rate_limit, Some(5));
    }

    #[test]
    fn an_unknown_key_is_refused_by_name() {
        let (_d, path) = write("dir = \"/x\"\nlisten-address = \"0.0.0.0:443\"\n");
        let err = read::<LedgerServe>(&path).unwrap_err().to_string();
        assert!(err.contains("ledger.toml") && err.contains("listen-address"), "{err}");
        let (_d, path) = write("listen = \"not an address\"\n");
        let err = read::<LedgerServe>(&path).unwrap_err().to_string();
        assert!(err.contains("listen"), "{err}");
    }
}

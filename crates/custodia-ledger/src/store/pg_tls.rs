//! How a PostgreSQL connection is secured, from the `sslmode` and `sslrootcert` of its connection string.
//!
//! libpq's modes are accepted; Custodia always verifies the server's certificate chain and host name when it
//! uses TLS, so `require` and `verify-ca` are as strict as `verify-full`. A database that is not on this
//! machine must be reached over TLS (`require`, `verify-ca` or `verify-full`): as with HTTP, plain connections
//! are for loopback and Unix sockets only.

use std::path::PathBuf;

use postgres::Config;
use postgres::config::{Host, SslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::StoreError;

/// What the connection string asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// No `sslmode`: libpq's `prefer`, which Custodia treats as plain on this machine and refuses beyond it.
    Unset,
    Disable,
    Prefer,
    /// `require`, `verify-ca` or `verify-full`.
    Verify,
}

/// A connection string with its TLS options taken out and turned into a connector.
pub(crate) struct Database {
    pub config: Config,
    pub tls: Option<MakeRustlsConnect>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").field("tls", &self.tls.is_some()).finish_non_exhaustive()
    }
}

fn bad(reason: impl Into<String>) -> StoreError {
    StoreError::Database(reason.into())
}

/// Minimal percent-decoding for a file path in a URL's query.
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Removes `sslmode` and `sslrootcert` from a URL (`postgres://...?a=b`) or `key=value` connection string.
fn take_tls_options(conn: &str) -> (String, Option<String>, Option<String>) {
    let (mut mode, mut rootcert) = (None, None);
    let mut take = |key: &str, value: &str| match key {
        "sslmode" => {
            mode = Some(value.to_owned());
            true
        }
        "sslrootcert" => {
            rootcert = Some(value.to_owned());
            true
        }
        _ => false,
    };
    let is_url = conn.starts_with("postgres://") || conn.starts_with("postgresql://");
    let rest = if is_url {
        match conn.split_once('?') {
            Some((base, query)) => {
                let kept: Vec<&str> = query
                    .split('&')
                    .filter(|pair| {
                        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                        !take(k, &percent_decode(v))
                    })
                    .collect();
                if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) }
            }
            None => conn.to_owned(),
        }
    } else {
        conn.split_whitespace()
            .filter(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                !take(k.trim(), v.trim().trim_matches('\''))
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    (rest, mode, rootcert)
}

fn is_local(config: &Config) -> bool {
    config.get_hosts().iter().all(|host| match host {
        Host::Tcp(name) => custodia_net::client::is_loopback_host(name),
        #[cfg(unix)]
        Host::Unix(_) => true,
    })
}

impl Database {
    /// Parses a connection string as `--db` takes it.
    pub fn parse(conn: &str) -> Result<Self, StoreError> {
        let (rest, mode, rootcert) = take_tls_options(conn);
        let mode = match mode.as_deref() {
            None => Mode::Unset,
            Some("disable") => Mode::Disable,
            Some("prefer" | "allow") => Mode::Prefer,
            Some("require" | "verify-ca" | "verify-full") => Mode::Verify,
            Some(other) => {
                return Err(bad(format!(
                    "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
                )));
            }
        };
        let mut config: Config = rest.parse()?;
        if mode != Mode::Verify && !is_local(&config) {
            let hosts: Vec<String> = config
                .get_hosts()
                .iter()
                .map(|h| match h {
                    Host::Tcp(name) => name.clone(),
                    #[cfg(unix)]
                    Host::Unix(path) => path.display().to_string(),
                })
                .collect();
            return Err(bad(format!(
                "the database at {} is not on this machine: add sslmode=verify-full to its URL (and sslrootcert=FILE \
                 for a private CA), so the connection is encrypted and the server verified",
                hosts.join(", ")
            )));
        }
        let tls = match mode {
            Mode::Verify => {
                config.ssl_mode(SslMode::Require);
                let trust = match rootcert.map(PathBuf::from) {
                    Some(path) => custodia_net::Trust::new(Some(&path)).map_err(|e| bad(e.to_string()))?,
                    None => custodia_net::Trust::global().map_err(|e| bad(e.to_string()))?.clone(),
                };
                let mut client = (*trust.client_config()).clone();
                // PostgreSQL 17 checks the protocol a client names; earlier servers ignore it.
                client.alpn_protocols = vec![b"postgresql".to_vec()];
                Some(MakeRustlsConnect::new(client))
            }
            Mode::Disable | Mode::Unset => {
                config.ssl_mode(SslMode::Disable);
                None
            }
            Mode::Prefer => None,
        };
        Ok(Self { config, tls })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Test code: a panic is the failure report.
mod tests {
    use super::*;

    #[test]
    fn tls_options_are_taken_from_urls_and_key_value_strings() {
        let (rest, mode, root) =
            take_tls_options("postgres://u@db.example.org/ledger?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem");
        assert_eq!(rest, "postgres://u@db.example.org/ledger");
        assert_eq!(mode.as_deref(), Some("verify-full"));
        assert_eq!(root.as_deref(), Some("/etc/ca.pem"));
        let (rest, mode, _) = take_tls_options("host=127.0.0.1 port=5432 sslmode=require user=postgres");
        assert_eq!(rest, "host=127.0.0.1 port=5432 user=postgres");
        assert_eq!(mode.as_deref(), Some("require"));
        let (rest, _, _) = take_tls_options("postgres://u@h/db?connect_timeout=5&sslmode=disable");
        assert_eq!(rest, "postgres://u@h/db?connect_timeout=5");
    }

    #[test]
    fn a_remote_database_must_use_tls() {
        let err = Database::parse("postgres://u@db.example.org/ledger").unwrap_err().to_string();
        assert!(err.contains("db.example.org") && err.contains("sslmode=verify-full"), "{err}");
        assert!(Database::parse("postgres://u@db.example.org/ledger?sslmode=prefer").is_err());
        assert!(Database::parse("postgres://u@db.example.org/ledger?sslmode=bogus").is_err());
        assert!(Database::parse("postgres://u@127.0.0.1/ledger").unwrap().tls.is_none());
        assert!(Database::parse("postgres://u@db.example.org/l?sslmode=verify-full").unwrap().tls.is_some());
    }
}

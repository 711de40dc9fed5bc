//! A ledger's folder: `ledger.json` (origin and network authority), `checkpoint.key` (the checkpoint
//! signing key, readable by the owner only) and, by default, `ledger.sqlite`.

use std::fs;
use std::path::{Path, PathBuf};

use custodia_core::SigningPublicKey;
use custodia_log::note::{NoteSigner, NoteVerifier};
use serde::{Deserialize, Serialize};

const CONFIG_FILE: &str = "ledger.json";
const KEY_FILE: &str = "checkpoint.key";
const DB_FILE: &str = "ledger.sqlite";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} already holds a ledger; pick an empty folder")]
    Exists(PathBuf),
    #[error("{0} is not a ledger folder (no {CONFIG_FILE}); run `custodia ledger init` first")]
    Missing(PathBuf),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is damaged: {reason}")]
    Damaged { path: PathBuf, reason: String },
    #[error("bad origin {0:?}: use a name like example.org/ledger, without spaces or '+'")]
    BadOrigin(String),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerConfig {
    /// The checkpoint origin line and the name of the checkpoint key.
    pub origin: String,
    /// The network authority: the only key that may enroll providers, gateways and emergency providers.
    pub authority: SigningPublicKey,
}

/// A ledger folder on disk.
#[derive(Debug)]
pub struct LedgerDir {
    pub path: PathBuf,
    pub config: LedgerConfig,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ConfigError + '_ {
    move |source| ConfigError::Io { path: path.to_owned(), source }
}

impl LedgerDir {
    /// Makes a new ledger folder with a fresh checkpoint key. Returns it and the checkpoint verifier key.
    pub fn init(
        path: &Path,
        authority: SigningPublicKey,
        origin: Option<&str>,
    ) -> Result<(Self, NoteVerifier), ConfigError> {
        let config_path = path.join(CONFIG_FILE);
        if config_path.exists() {
            return Err(ConfigError::Exists(path.to_owned()));
        }
        fs::create_dir_all(path).map_err(io(path))?;
        let origin = match origin {
            Some(o) => o.to_owned(),
            None => {
                let mut id = [0u8; 4];
                getrandom_fill(&mut id);
                format!("custodia.invalid/ledger/{}", data_encoding::HEXLOWER.encode(&id))
            }
        };
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        getrandom_fill(seed.as_mut());
        let signer = NoteSigner::new(&origin, &seed).map_err(|_| ConfigError::BadOrigin(origin.clone()))?;
        let key_path = path.join(KEY_FILE);
        write_private(&key_path, signer.to_skey().as_bytes())?;
        let config = LedgerConfig { origin, authority };
        // Serialising a struct of strings cannot fail.
        #[allow(clippy::expect_used)]
        let json = serde_json::to_vec_pretty(&config).expect("config serialises");
        fs::write(&config_path, json).map_err(io(&config_path))?;
        Ok((Self { path: path.to_owned(), config }, signer.verifier()))
    }

    pub fn open(path: &Path) -> Result<Self, ConfigError> {
        let config_path = path.join(CONFIG_FILE);
        if !config_path.exists() {
            return Err(ConfigError::Missing(path.to_owned()));
        }
        let bytes = fs::read(&config_path).map_err(io(&config_path))?;
        let config: LedgerConfig = serde_json::from_slice(&bytes)
            .map_err(|e| ConfigError::Damaged { path: config_path.clone(), reason: e.to_string() })?;
        Ok(Self { path: path.to_owned(), config })
    }

    pub fn signer(&self) -> Result<NoteSigner, ConfigError> {
        let key_path = self.path.join(KEY_FILE);
        let text = zeroize::Zeroizing::new(fs::read_to_string(&key_path).map_err(io(&key_path))?);
        let signer = NoteSigner::from_skey(text.trim())
            .map_err(|e| ConfigError::Damaged { path: key_path.clone(), reason: e.to_string() })?;
        if signer.name() != self.config.origin {
            return Err(ConfigError::Damaged {
                path: key_path,
                reason: format!(
                    "the key is for {:?}, not this ledger's origin {:?}",
                    signer.name(),
                    self.config.origin
                ),
            });
        }
        Ok(signer)
    }

    pub fn default_database(&self) -> PathBuf {
        self.path.join(DB_FILE)
    }
}

fn getrandom_fill(buf: &mut [u8]) {
    // Without OS randomness no key can be made safely; there is nothing sensible to continue with.
    #[allow(clippy::expect_used)]
    getrandom::fill(buf).expect("the operating system's random number generator failed");
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ConfigError> {
    custodia_net::write_private(path, bytes).map_err(io(path))
}

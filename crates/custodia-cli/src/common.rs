//! Arguments and helpers every command module shares: the wallet and ledger arguments, the clock, bounded
//! file input, opening a wallet.

use anyhow::{Context, Result, bail};
use clap::Args;
use custodia_core::qr::{self};
use custodia_core::time::Timestamp;
use custodia_wallet::ledger::{self};
use custodia_wallet::vault::write_atomic;
use custodia_wallet::wallet::Wallet;
use std::path::{Path, PathBuf};

use crate::passphrase;

/// Grants, resources and images are small; a larger file is a mistake or an attack.
pub(crate) const MAX_INPUT_BYTES: u64 = 8 * 1024 * 1024;

#[derive(Args, Debug)]
pub(crate) struct LedgerArgs {
    /// The ledger's URL, e.g. http://127.0.0.1:8080.
    #[arg(long, value_name = "URL", env = "CUSTODIA_LEDGER")]
    pub(crate) ledger: String,
    /// The ledger's checkpoint key (a C2SP verifier key, name+id+key). Without it, the key the ledger
    /// announces is trusted on first use.
    #[arg(long, value_name = "VKEY")]
    pub(crate) verifier_key: Option<String>,
}

impl LedgerArgs {
    /// Checks the URL and the key before anything is unlocked or sent.
    pub(crate) fn check(&self) -> Result<()> {
        ledger::normalise_url(&self.ledger)?;
        if let Some(key) = &self.verifier_key {
            ledger::parse_verifier_key(key)?;
        }
        Ok(())
    }
}

#[derive(Args, Debug)]
pub(crate) struct WalletArgs {
    /// The wallet directory.
    #[arg(long, env = "CUSTODIA_WALLET")]
    pub(crate) wallet: PathBuf,
    /// Read the passphrase from this file (otherwise CUSTODIA_PASSPHRASE, otherwise a prompt).
    #[arg(long)]
    pub(crate) passphrase_file: Option<PathBuf>,
}

pub(crate) fn now() -> Result<Timestamp> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs();
    Ok(Timestamp::from_unix(i64::try_from(secs)?)?)
}

pub(crate) fn read_input(path: &Path, what: &str) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {what} {}", path.display()))?;
    if meta.len() > MAX_INPUT_BYTES {
        bail!("{what} {} is larger than {} MiB", path.display(), MAX_INPUT_BYTES >> 20);
    }
    std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

pub(crate) fn open_wallet(args: &WalletArgs) -> Result<Wallet> {
    let pass = passphrase::current(args.passphrase_file.as_deref(), false)?;
    Ok(Wallet::open(&args.wallet, pass)?)
}

/// Writes `text` to `out` atomically, or prints it.
pub(crate) fn emit(out: Option<&Path>, text: &str) -> Result<()> {
    match out {
        Some(path) => Ok(write_atomic(path, text.as_bytes())?),
        None => {
            println!("{text}");
            Ok(())
        }
    }
}

pub(crate) fn write_qr(path: &Path, text: &str) -> Result<()> {
    let bytes = match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("png") => qr::render_png(text)?,
        Some("svg") => qr::render_svg(text)?.into_bytes(),
        _ => bail!("--qr file must end in .png or .svg: {}", path.display()),
    };
    Ok(write_atomic(path, &bytes)?)
}

pub(crate) fn parse_all<T: std::str::FromStr>(items: &[String]) -> Result<Vec<T>>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    items.iter().map(|s| Ok(s.parse::<T>()?)).collect()
}

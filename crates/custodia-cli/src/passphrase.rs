//! Where a passphrase comes from: `--passphrase-file`, an environment variable, or a terminal prompt.
//! Never from a command-line argument, which other users can read in the process list.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result, bail};
use custodia_wallet::vault::Passphrase;

pub const PASSPHRASE_ENV: &str = "CUSTODIA_PASSPHRASE";
pub const NEW_PASSPHRASE_ENV: &str = "CUSTODIA_NEW_PASSPHRASE";
/// A passphrase file is one line; anything larger is not one.
const MAX_PASSPHRASE_FILE_BYTES: u64 = 4096;

fn from_file(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read passphrase file {}", path.display()))?;
    if meta.len() > MAX_PASSPHRASE_FILE_BYTES {
        bail!("passphrase file {} is larger than {MAX_PASSPHRASE_FILE_BYTES} bytes", path.display());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read passphrase file {}", path.display()))?;
    // One trailing newline is the file's, not the passphrase's.
    Ok(text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text).to_owned())
}

fn prompt(question: &str, confirm: bool) -> Result<String> {
    if !std::io::stdin().is_terminal() {
        bail!("no passphrase: set {PASSPHRASE_ENV}, pass --passphrase-file, or run on a terminal");
    }
    let first = rpassword::prompt_password(question).context("cannot read the passphrase from the terminal")?;
    if confirm {
        let again =
            rpassword::prompt_password("Repeat it: ").context("cannot read the passphrase from the terminal")?;
        if again != first {
            bail!("the two passphrases differ");
        }
    }
    Ok(first)
}

/// The current passphrase of a wallet. `creating` asks twice at a prompt.
pub fn current(file: Option<&Path>, creating: bool) -> Result<Passphrase> {
    let text = match (file, std::env::var(PASSPHRASE_ENV)) {
        (Some(path), _) => from_file(path)?,
        (None, Ok(text)) => text,
        (None, Err(_)) if creating => prompt("New wallet passphrase: ", true)?,
        (None, Err(_)) => prompt("Wallet passphrase: ", false)?,
    };
    Ok(Passphrase::new(text)?)
}

/// The new passphrase for `wallet passwd`.
pub fn new() -> Result<Passphrase> {
    let text = match std::env::var(NEW_PASSPHRASE_ENV) {
        Ok(text) => text,
        Err(_) => prompt("New passphrase: ", true)?,
    };
    Ok(Passphrase::new(text)?)
}

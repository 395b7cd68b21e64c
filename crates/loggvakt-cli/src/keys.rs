use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use loggvakt_journal::SigningKey;

#[derive(clap::Args)]
pub struct KeygenArgs {
    /// Key name, shown in every signature line (printable ASCII, no spaces or '+'). Name keys
    /// by holder and date, e.g. 'helse-midt-2026-11', so a rotated key is told apart.
    #[arg(long)]
    pub name: String,
    /// Where to write the private key (created with mode 0600; refuses to overwrite).
    #[arg(long)]
    pub out: PathBuf,
    /// Also append the public key to this trusted-keys file (created if missing). To rotate,
    /// make a new key, add it here, and ingest with it: the chain continues under the new key id.
    #[arg(long)]
    pub trusted_keys: Option<PathBuf>,
}

pub fn keygen(args: &KeygenArgs) -> anyhow::Result<()> {
    let key = SigningKey::generate(&args.name)?;
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&args.out)
        .with_context(|| format!("creating {} (an existing key is never overwritten)", args.out.display()))?;
    writeln!(file, "{}", key.to_text())?;
    file.sync_all()?;
    let public = key.verifier().to_text();
    if let Some(trusted) = &args.trusted_keys {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(trusted).with_context(|| format!("opening {}", trusted.display()))?;
        writeln!(f, "# {} added {}", args.name, chrono::Utc::now().format("%Y-%m-%d"))?;
        writeln!(f, "{public}")?;
    }
    println!("private key: {}", args.out.display());
    println!("public key:  {public}");
    Ok(())
}

pub fn read_signing_key(path: &Path) -> anyhow::Result<SigningKey> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading signing key {}", path.display()))?;
    SigningKey::parse(&text).with_context(|| format!("in {}", path.display()))
}

pub fn read_trusted_keys(path: &Path) -> anyhow::Result<Vec<loggvakt_journal::VerifierKey>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading trusted keys {}", path.display()))?;
    let keys = loggvakt_journal::note::parse_trusted_keys(&text).with_context(|| format!("in {}", path.display()))?;
    if keys.is_empty() {
        bail!("{} lists no keys; add the public key(s) printed by 'loggvakt keygen'", path.display());
    }
    Ok(keys)
}

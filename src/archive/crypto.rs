//! Keys, recipients and passphrases, read the way the age CLI reads them.
//!
//! Secrets stay inside `age` types (`SecretString`, identities); nothing here
//! formats a secret into a message, and passphrases never come from argv.

use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::SecretString;
use anyhow::{Context, Result};

use crate::error::{failed, usage};

/// The environment variable that may hold a passphrase.
pub const PASSPHRASE_ENV: &str = "VOLSAFE_PASSPHRASE";

/// How a new archive is encrypted.
pub enum Encryption {
    Recipients(Vec<Box<dyn age::Recipient + Send + Sync>>),
    Passphrase(SecretString),
    None,
}

impl Encryption {
    /// Wraps `out` so that everything written to it is encrypted.
    pub fn encryptor(&self) -> Result<Option<age::Encryptor>> {
        Ok(match self {
            Encryption::Recipients(list) => Some(
                age::Encryptor::with_recipients(list.iter().map(|r| r.as_ref() as _))
                    .context("cannot encrypt to these recipients")?,
            ),
            Encryption::Passphrase(p) => Some(age::Encryptor::with_user_passphrase(p.clone())),
            Encryption::None => None,
        })
    }
}

/// How an archive is decrypted.
pub struct Decryption {
    pub identities: Vec<Box<dyn age::Identity>>,
    pub passphrase: Option<SecretString>,
    /// Public keys of the identities, for writing rollback archives.
    pub own_recipients: Vec<Box<dyn age::Recipient + Send + Sync>>,
    /// Identity files that could not give a public key (SSH keys).
    pub without_recipient: Vec<PathBuf>,
}

/// Parses one recipient as `age -r` does: `age1…` or an SSH public key.
pub fn parse_recipient(s: &str) -> Result<Box<dyn age::Recipient + Send + Sync>> {
    let s = s.trim();
    if s.starts_with("age1") {
        if let Ok(r) = age::x25519::Recipient::from_str(s) {
            return Ok(Box::new(r));
        }
    } else if s.starts_with("ssh-") {
        if let Ok(r) = age::ssh::Recipient::from_str(s) {
            return Ok(Box::new(r));
        }
    }
    // Never echo a secret, not even a prefix of it.
    if s.to_ascii_uppercase().contains("AGE-SECRET-KEY-") {
        return Err(usage(
            "recipient: this is an identity (secret key), not a public key",
            "this is an identity (secret key); pass its public key (age1…), e.g. from `volsafe keygen`",
        ));
    }
    if s.contains("PRIVATE KEY") {
        return Err(usage(
            "recipient: this is a private key, not a public key",
            "this is a private key; pass its public key (the line in the .pub file)",
        ));
    }
    let hint =
        "use an `age1…` key from `volsafe keygen`, or an ssh-ed25519 / ssh-rsa public key line";
    // Only what looks like a public key is shown: anything else could be a
    // passphrase or a line of a private key given to -R by mistake.
    if PUBLIC_PREFIXES.iter().any(|p| s.starts_with(p)) {
        let shown: String = s.chars().take(24).collect();
        return Err(usage(
            format!("recipient {shown:?}: not a valid age or supported SSH public key"),
            hint,
        ));
    }
    Err(usage(
        "recipient: not an age public key or a supported SSH public key",
        hint,
    ))
}

/// How public keys begin: age, OpenSSH, and security-key types.
const PUBLIC_PREFIXES: &[&str] = &["age1", "ssh-", "ecdsa-", "sk-"];

/// Reads a recipients file: one recipient a line, `#` comments, blank lines.
pub fn read_recipients_file(path: &Path) -> Result<Vec<Box<dyn age::Recipient + Send + Sync>>> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("recipients file {}: cannot read", path.display()))
        .map_err(|e| usage(format!("{e:#}"), "check the path given to -R"))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let r = parse_recipient(line)
            .with_context(|| format!("recipients file {}, line {}", path.display(), n + 1))?;
        out.push(r);
    }
    if out.is_empty() {
        return Err(usage(
            format!("recipients file {}: no recipients in it", path.display()),
            "put one age1… or ssh- public key on each line",
        ));
    }
    Ok(out)
}

/// Reads a passphrase from a file (its first line) or, with no file, from
/// `VOLSAFE_PASSPHRASE`.
pub fn read_passphrase(file: Option<&Path>) -> Result<Option<SecretString>> {
    if let Some(path) = file {
        let text = fs::read_to_string(path).map_err(|e| {
            usage(
                format!("passphrase file {}: {e}", path.display()),
                "check the path given to --passphrase-file",
            )
        })?;
        let first = text.lines().next().unwrap_or("");
        if first.is_empty() {
            return Err(usage(
                format!(
                    "passphrase file {}: the first line is empty",
                    path.display()
                ),
                "write the passphrase on the first line of the file",
            ));
        }
        return Ok(Some(SecretString::from(first.to_owned())));
    }
    match std::env::var(PASSPHRASE_ENV) {
        Ok(p) if !p.is_empty() => Ok(Some(SecretString::from(p))),
        _ => Ok(None),
    }
}

/// The encryption a backup asked for; no recipient and no opt-out is an error.
pub fn encryption_from_args(
    recipients: &[String],
    recipient_files: &[PathBuf],
    passphrase_file: Option<&Path>,
    no_encryption: bool,
) -> Result<Encryption> {
    if no_encryption {
        return Ok(Encryption::None);
    }
    let mut list = Vec::new();
    for r in recipients {
        list.push(parse_recipient(r)?);
    }
    for f in recipient_files {
        list.extend(read_recipients_file(f)?);
    }
    let passphrase = if list.is_empty() || passphrase_file.is_some() {
        read_passphrase(passphrase_file)?
    } else {
        None
    };
    match (list.is_empty(), passphrase) {
        (false, None) => Ok(Encryption::Recipients(list)),
        (true, Some(p)) => Ok(Encryption::Passphrase(p)),
        (false, Some(_)) => Err(usage(
            "a passphrase cannot be combined with recipients",
            "use either -r/-R or --passphrase-file (age allows one or the other)",
        )),
        (true, None) => Err(usage(
            "no recipient: the archive would not be encrypted",
            "add -r age1… (see `volsafe keygen`), -R FILE, --passphrase-file FILE, \
             or --no-encryption to write it unencrypted",
        )),
    }
}

/// Reads identity files (age or unencrypted SSH private keys) and the
/// passphrase, if any.
pub fn decryption_from_args(
    identities: &[PathBuf],
    passphrase_file: Option<&Path>,
) -> Result<Decryption> {
    let mut out = Decryption {
        identities: Vec::new(),
        passphrase: read_passphrase(passphrase_file)?,
        own_recipients: Vec::new(),
        without_recipient: Vec::new(),
    };
    for path in identities {
        let text = fs::read(path).map_err(|e| {
            usage(
                format!("identity file {}: {e}", path.display()),
                "check the path given to -i",
            )
        })?;
        let is_age = text.windows(15).any(|w| w == b"AGE-SECRET-KEY-");
        if is_age {
            let file = age::IdentityFile::from_buffer(BufReader::new(&text[..]))
                .map_err(|e| bad_identity(path, &e))?;
            // Each identity's own recipient, for encrypting the rollback
            // archive to the same key (x25519: volsafe has no plugins).
            for line in String::from_utf8_lossy(&text).lines() {
                if let Ok(id) = age::x25519::Identity::from_str(line.trim()) {
                    out.own_recipients.push(Box::new(id.to_public()));
                }
            }
            out.identities
                .extend(file.into_identities().map_err(|e| bad_identity(path, &e))?);
            continue;
        }
        let filename = Some(path.display().to_string());
        match age::ssh::Identity::from_buffer(BufReader::new(&text[..]), filename) {
            Ok(age::ssh::Identity::Unencrypted(key)) => {
                out.identities.push(Box::new(age::ssh::Identity::from(key)));
                out.without_recipient.push(path.clone());
            }
            Ok(age::ssh::Identity::Encrypted(_)) => {
                return Err(failed(
                    format!("identity file {}: the SSH key is protected by a passphrase", path.display()),
                    "volsafe runs unattended and does not prompt: use an unencrypted copy or an age identity",
                ))
            }
            Ok(age::ssh::Identity::Unsupported(_)) | Err(_) => {
                return Err(usage(
                    format!("identity file {}: not an age identity or a supported SSH private key", path.display()),
                    "pass the file written by `volsafe keygen --output` or `age-keygen -o`",
                ))
            }
        }
    }
    Ok(out)
}

fn bad_identity(path: &Path, e: &dyn std::fmt::Display) -> anyhow::Error {
    usage(
        format!("identity file {}: {e}", path.display()),
        "pass the file written by `volsafe keygen --output` or `age-keygen -o`",
    )
}

/// A new identity as `age-keygen` writes it, and its public recipient.
pub fn new_identity() -> (SecretString, String) {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    let public = id.to_public().to_string();
    let created = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let text = format!(
        "# created: {created}\n# public key: {public}\n{}\n",
        id.to_string().expose_secret()
    );
    (SecretString::from(text), public)
}

/// Maps age's decryption errors to messages a user can act on.
pub fn decrypt_error(source: &str, e: age::DecryptError) -> anyhow::Error {
    use age::DecryptError as D;
    match e {
        D::NoMatchingKeys => failed(
            format!("{source}: no identity matches this archive (wrong key)"),
            "pass the identity whose public key the backup was encrypted to with -i FILE",
        ),
        D::KeyDecryptionFailed | D::DecryptionFailed => failed(
            format!("{source}: decryption failed (wrong passphrase, or the archive is damaged)"),
            "check the passphrase; `volsafe verify` tells whether the file matches its checksum",
        ),
        D::ExcessiveWork { .. } => failed(
            format!("{source}: the passphrase's work factor is too high to try"),
            "this archive was not written by volsafe's default settings",
        ),
        // Reading the header itself failed: a truncated or damaged file.
        D::Io(io) => crate::error::integrity(
            format!("{source}: the age header is truncated or damaged ({io})"),
            "the archive is damaged; use another backup",
        ),
        other => crate::error::integrity(
            format!("{source}: not a readable age file ({other})"),
            "the file may be damaged or not an archive",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    fn message(e: &anyhow::Error) -> String {
        let hint = crate::error::find_user_error(e).and_then(|u| u.hint.clone());
        format!("{e:#}\n{}", hint.unwrap_or_default())
    }

    /// `backup -R key.txt` (an identity file) once printed part of the key.
    #[test]
    fn identity_as_recipient_never_echoes_the_secret() {
        let (identity, public) = new_identity();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.txt");
        fs::write(&path, identity.expose_secret()).unwrap();
        let secret = identity
            .expose_secret()
            .lines()
            .find(|l| l.starts_with("AGE-SECRET-KEY-"))
            .unwrap()
            .to_owned();

        let err = read_recipients_file(&path).err().unwrap();
        let text = message(&err);
        assert!(text.contains("identity (secret key)"), "{text}");
        assert!(text.contains("line 3"), "{text}");
        let body = &secret["AGE-SECRET-KEY-".len()..];
        for window in body.as_bytes().windows(6) {
            let w = std::str::from_utf8(window).unwrap();
            assert!(!text.contains(w), "secret fragment {w:?} in {text}");
        }

        let err = parse_recipient(&secret).err().unwrap();
        let text = message(&err);
        assert!(!text.contains(&secret[..20]), "{text}");
        assert!(!text.contains(&public), "{text}");
    }

    #[test]
    fn private_ssh_key_line_is_not_echoed() {
        let err = parse_recipient("-----BEGIN OPENSSH PRIVATE KEY-----")
            .err()
            .unwrap();
        assert!(!format!("{err:#}").contains("BEGIN"), "{err:#}");
    }

    /// A passphrase file given to -R: its first line is not shown.
    #[test]
    fn unknown_recipient_is_not_echoed() {
        let err = parse_recipient("correct horse battery staple")
            .err()
            .unwrap();
        assert!(!format!("{err:#}").contains("horse"), "{err:#}");
        let err = parse_recipient("age1notreallyakey").err().unwrap();
        assert!(format!("{err:#}").contains("age1notreallyakey"), "{err:#}");
    }
}

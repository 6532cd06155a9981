//! Credentials in volume driver options: spotting them, and hiding their
//! values everywhere volsafe shows options (findings, logs, errors).

use std::collections::BTreeMap;

/// What a hidden value is shown as.
pub const REDACTED: &str = "<redacted>";

/// Option keys, or `key=` items inside a comma-separated mount option
/// string, whose value is a credential.
fn secret_key(key: &str) -> bool {
    let key = key.trim().to_ascii_lowercase();
    matches!(key.as_str(), "password" | "pass" | "passwd" | "pwd")
        || key.contains("password")
        || key.contains("secret")
        || key.contains("token")
}

/// Whether a driver option holds a credential: its key names one, or its
/// value is a mount option list with `password=`/`pass=` in it.
pub fn looks_secret(key: &str, value: &str) -> bool {
    secret_key(key) || value.split(',').any(item_is_secret)
}

fn item_is_secret(item: &str) -> bool {
    item.split_once('=').is_some_and(|(k, _)| secret_key(k))
}

/// The option's value with every credential replaced by [`REDACTED`]:
/// `username=bob,password=x` becomes `username=bob,password=<redacted>`.
pub fn redact(key: &str, value: &str) -> String {
    if secret_key(key) {
        return REDACTED.to_owned();
    }
    value
        .split(',')
        .map(|item| match item.split_once('=') {
            Some((k, _)) if secret_key(k) => format!("{k}={REDACTED}"),
            _ => item.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Every option of a volume with credentials redacted.
pub fn redact_all(options: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    options
        .iter()
        .map(|(k, v)| (k.clone(), redact(k, v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cifs_password_is_hidden() {
        let v = "addr=10.0.0.2,username=bob,password=hunter2,vers=3.0";
        assert!(looks_secret("o", v));
        let shown = redact("o", v);
        assert!(!shown.contains("hunter2"));
        assert_eq!(
            shown,
            "addr=10.0.0.2,username=bob,password=<redacted>,vers=3.0"
        );
        assert_eq!(redact("o", "pass=x"), "pass=<redacted>");
        assert_eq!(redact("Password", "x"), REDACTED);
    }

    #[test]
    fn ordinary_options_are_left_alone() {
        assert!(!looks_secret("type", "nfs"));
        assert!(!looks_secret("o", "addr=10.0.0.2,rw,nfsvers=4"));
        assert!(!looks_secret("device", "/srv/passwords"));
        assert!(!looks_secret("o", "credentials=/etc/cifs-creds"));
        assert_eq!(redact("device", "/srv/passwords"), "/srv/passwords");
    }
}

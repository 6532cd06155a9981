//! Credentials in volume driver options: spotting them, and hiding their
//! values everywhere volsafe shows options (findings, logs, errors).

/// What a hidden value is shown as.
pub const REDACTED: &str = "<redacted>";

/// Option keys, or `key=` items inside a comma-separated mount option
/// string, whose value is a credential.
fn secret_key(key: &str) -> bool {
    let key = key.trim().to_ascii_lowercase();
    matches!(key.as_str(), "password" | "pass" | "passwd" | "pwd")
        || key.contains("password")
        || key.contains("passphrase")
        || key.contains("secret")
        || key.contains("token")
}

/// CIFS takes `username=user%password` too.
fn user_with_password(key: &str, value: &str) -> bool {
    matches!(
        key.trim().to_ascii_lowercase().as_str(),
        "user" | "username"
    ) && value.contains('%')
}

/// Whether a driver option holds a credential: its key names one, or its
/// value is a mount option list with `password=`/`pass=` in it.
pub fn looks_secret(key: &str, value: &str) -> bool {
    secret_key(key) || value.split(',').any(item_is_secret)
}

fn item_is_secret(item: &str) -> bool {
    item.split_once('=')
        .is_some_and(|(k, v)| secret_key(k) || user_with_password(k, v))
}

/// The option's value with every credential replaced by [`REDACTED`]:
/// `username=bob,password=x` becomes `username=bob,password=<redacted>`.
pub fn redact(key: &str, value: &str) -> String {
    if secret_key(key) {
        return REDACTED.to_owned();
    }
    let mut out: Vec<String> = Vec::new();
    let mut items = value.split(',').peekable();
    while let Some(item) = items.next() {
        match item.split_once('=') {
            Some((k, v)) if secret_key(k) || user_with_password(k, v) => {
                out.push(match v.split_once('%').filter(|_| !secret_key(k)) {
                    Some((user, _)) => format!("{k}={user}%{REDACTED}"),
                    None => format!("{k}={REDACTED}"),
                });
                // mount.cifs writes a comma inside a password as `,,`:
                // the parts after it belong to the secret too.
                while items.peek() == Some(&"") {
                    items.next();
                    items.next();
                }
            }
            _ => out.push(item.to_owned()),
        }
    }
    out.join(",")
}

/// `text` (a daemon's error message, which may quote a volume's mount
/// options) with the value of every `password=`/`pass=`-like item
/// replaced by [`REDACTED`]. A value ends at `,`, whitespace, `)`, `"` or
/// `'`.
pub fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(eq) = rest.find('=') {
        let (before, after) = rest.split_at(eq);
        let key_start = before
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .map_or(0, |i| i + 1);
        out.push_str(before);
        out.push('=');
        let after = &after[1..];
        let key = &before[key_start..];
        let end = after
            .find(|c: char| c == ',' || c.is_whitespace() || matches!(c, ')' | '"' | '\''))
            .unwrap_or(after.len());
        if secret_key(key) {
            out.push_str(REDACTED);
            rest = &after[end..];
        } else if user_with_password(key, &after[..end]) {
            let user = after[..end].split('%').next().unwrap_or("");
            out.push_str(user);
            out.push('%');
            out.push_str(REDACTED);
            rest = &after[end..];
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    out
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
    fn daemon_messages_are_scrubbed() {
        let m = "error while mounting volume: mount //h/s:/x, data: addr=1.2.3.4,username=u,password=hunter2,vers=3.0: no such device";
        let s = scrub(m);
        assert!(!s.contains("hunter2"), "{s}");
        assert!(
            s.contains("password=<redacted>,vers=3.0: no such device"),
            "{s}"
        );
        assert_eq!(
            scrub("pass=x y=1 PASSWORD=z"),
            "pass=<redacted> y=1 PASSWORD=<redacted>"
        );
        assert_eq!(scrub("no secrets here: a=b"), "no secrets here: a=b");
        assert_eq!(scrub("ends with pass="), "ends with pass=<redacted>");
        assert_eq!(
            scrub("data: username=bob%pw,vers=3"),
            "data: username=bob%<redacted>,vers=3"
        );
    }

    #[test]
    fn other_spellings_of_a_credential() {
        assert_eq!(
            redact("o", "username=bob%hunter2,vers=3.0"),
            "username=bob%<redacted>,vers=3.0"
        );
        assert_eq!(
            redact("o", "password=a,,b,vers=3.0"),
            "password=<redacted>,vers=3.0"
        );
        assert!(looks_secret("o", "user=bob%x"));
        assert!(looks_secret("passphrase", "x"));
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

//! Compose's variable rules: `${VAR}` and its default, alternative and
//! required forms in scalar values, and the `.env` file that supplies
//! variables the environment does not.
//!
//! Kept apart from the YAML reading because the rules are compose's, not
//! YAML's, and are easiest to test on plain strings.

use std::collections::HashMap;
use std::path::Path;

/// Deepest nesting of `${…}` in interpolation defaults.
const MAX_INTERPOLATION_DEPTH: usize = 16;

/// `KEY=VALUE` lines of the `.env` file next to `path`; empty when there
/// is none.
pub(super) fn read_dotenv(path: &Path) -> HashMap<String, String> {
    let file = path.parent().unwrap_or_else(|| Path::new("")).join(".env");
    match std::fs::read_to_string(&file) {
        Ok(text) => parse_dotenv(&text),
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::debug!(file = %file.display(), error = %e, "cannot read .env file");
            }
            HashMap::new()
        }
    }
}

fn parse_dotenv(text: &str) -> HashMap<String, String> {
    let mut vars = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key.is_empty() {
            continue;
        }
        let value = value.trim();
        let value = if value.len() >= 2
            && ((value.starts_with('"') && value.ends_with('"'))
                || (value.starts_with('\'') && value.ends_with('\'')))
        {
            &value[1..value.len() - 1]
        } else {
            // An unquoted value ends at a ` #` comment.
            value.split(" #").next().unwrap_or("").trim_end()
        };
        vars.insert(key.to_owned(), value.to_owned());
    }
    vars
}

/// `text` with compose variables expanded.
pub(super) fn interpolate(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    depth: usize,
) -> String {
    if !text.contains('$') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(body) = after.strip_prefix('{') {
            match closing_brace(body) {
                Some(end) => {
                    out.push_str(&expand(&body[..end], env, depth));
                    rest = &body[end + 1..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            let n = name_len(after);
            if n > 0 {
                out.push_str(&env(&after[..n]).unwrap_or_default());
                rest = &after[n..];
            } else {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Byte index of the `}` closing a `${`, nested `${…}` included.
fn closing_brace(body: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut nested = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'{') => {
                nested += 1;
                i += 1;
            }
            b'$' if bytes.get(i + 1) == Some(&b'$') => i += 1,
            b'}' if nested == 0 => return Some(i),
            b'}' => nested -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

/// Length of the variable name at the start of `s`.
fn name_len(s: &str) -> usize {
    let bytes = s.as_bytes();
    if !bytes
        .first()
        .is_some_and(|b| b.is_ascii_alphabetic() || *b == b'_')
    {
        return 0;
    }
    bytes
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count()
}

/// The value of `${body}`.
fn expand(body: &str, env: &dyn Fn(&str) -> Option<String>, depth: usize) -> String {
    let literal = || format!("${{{body}}}");
    let n = name_len(body);
    if n == 0 || depth >= MAX_INTERPOLATION_DEPTH {
        return literal();
    }
    let (name, op) = body.split_at(n);
    let value = env(name);
    let set = value.is_some();
    let non_empty = value.as_deref().is_some_and(|v| !v.is_empty());
    let nested = |s: &str| interpolate(s, env, depth + 1);
    if op.is_empty() {
        return value.unwrap_or_default();
    }
    if let Some(default) = op.strip_prefix(":-") {
        return if non_empty {
            value.unwrap_or_default()
        } else {
            nested(default)
        };
    }
    if let Some(default) = op.strip_prefix('-') {
        return if set {
            value.unwrap_or_default()
        } else {
            nested(default)
        };
    }
    if let Some(alt) = op.strip_prefix(":+") {
        return if non_empty {
            nested(alt)
        } else {
            String::new()
        };
    }
    if let Some(alt) = op.strip_prefix('+') {
        return if set { nested(alt) } else { String::new() };
    }
    if op.starts_with(":?") || op.starts_with('?') {
        let required_non_empty = op.starts_with(':');
        if !set || (required_non_empty && !non_empty) {
            tracing::debug!(
                variable = name,
                "required variable is not set; using an empty string"
            );
        }
        return value.unwrap_or_default();
    }
    literal()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::compose::tests::{env, host, mount, service};

    #[test]
    fn interpolation() {
        let e = |s: &str| interpolate(s, &env, 0);
        assert_eq!(e("nginx:${TAG}"), "nginx:1.2");
        assert_eq!(e("nginx:$TAG"), "nginx:1.2");
        assert_eq!(e("$TAG.x"), "1.2.x");
        assert_eq!(e("${NOPE}"), "");
        assert_eq!(e("$NOPE-x"), "-x");
        assert_eq!(e("${NOPE:-def}"), "def");
        assert_eq!(e("${EMPTY:-def}"), "def");
        assert_eq!(e("${EMPTY-def}"), "");
        assert_eq!(e("${NOPE-def}"), "def");
        assert_eq!(e("${TAG:-def}"), "1.2");
        assert_eq!(e("${NOPE:-${TAG}}"), "1.2");
        assert_eq!(e("${NOPE:-${ALSO:-deep}}"), "deep");
        assert_eq!(e("${NOPE:?required}"), "");
        assert_eq!(e("${TAG?required}"), "1.2");
        assert_eq!(e("${TAG:+alt}"), "alt");
        assert_eq!(e("${EMPTY:+alt}"), "");
        assert_eq!(e("${EMPTY+alt}"), "alt");
        assert_eq!(e("${NOPE+alt}"), "");
        assert_eq!(e("$$TAG"), "$TAG");
        assert_eq!(e("a$$b$$$$"), "a$b$$");
        assert_eq!(e("cost: 5$"), "cost: 5$");
        assert_eq!(e("${unterminated"), "${unterminated");
        assert_eq!(e("${}"), "${}");
        assert_eq!(e("${1BAD}"), "${1BAD}");
        assert_eq!(e("$"), "$");
        assert_eq!(e("é$TAGé"), "é1.2é");

        let h = host(
            "services:
  s:
    image: nginx:${TAG}
    network_mode: ${NET:-host}
    privileged: ${PRIV:-true}
    volumes:
      - ${DATA:-./data}:/data
      - $HOME/.ssh:/ssh:ro
    labels:
      price: $$5
",
        );
        let s = service(&h, "s");
        assert_eq!(s.network_mode, "host");
        assert!(s.privileged);
        assert_eq!(mount(s, "/data").source, "/srv/app/data");
        assert_eq!(mount(s, "/ssh").source, "/home/me/.ssh");
        assert_eq!(s.labels["price"], "$5");
    }

    #[test]
    fn dotenv_lines() {
        let vars = parse_dotenv(
            "# c\nA=1\nexport B = two \nC=\"quoted # not a comment\"\nD='x'\nE=v # comment\nnoequals\n=x\n",
        );
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["B"], "two");
        assert_eq!(vars["C"], "quoted # not a comment");
        assert_eq!(vars["D"], "x");
        assert_eq!(vars["E"], "v");
        assert_eq!(vars.len(), 5);
    }
}

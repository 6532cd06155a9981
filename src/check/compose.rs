//! Reading a compose file statically, without a daemon, into [`Host`].
//!
//! The YAML is read with `yaml-rust2`'s event parser into a small tree that
//! keeps each node's line and column, then the parts the checks look at are
//! picked out: one [`Container`] per service, one [`Volume`] per top-level
//! volume.
//!
//! How the file is read:
//!
//! - Anchors, aliases and merge keys (`<<: *common`, `<<: [*a, *b]`) are
//!   resolved. An alias shares the anchored node, so what comes through an
//!   alias carries the **anchor's** location (where the text is written).
//!   Merging is shallow, explicit keys win over merged ones, and in a list of
//!   merged mappings the earlier ones win, as the YAML merge key spec says.
//! - A key given twice in one mapping is an error, as it is for
//!   `docker compose`.
//! - Only the first YAML document is read.
//! - Scalar values (not keys) are interpolated like compose does: `$VAR`,
//!   `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?err}`,
//!   `${VAR?err}`, `${VAR:+alt}`, `${VAR+alt}`, nested defaults, and `$$`
//!   for a literal `$`. A variable that is not set expands to the empty
//!   string, even with `?` (a scan should not stop because a secret is
//!   missing from the environment); a malformed `${…` stays as written.
//! - Ignored: `x-*` extension keys (except as anchor sources; under
//!   `services` and `volumes`, where keys are names, `x-ray` is a name),
//!   `include` (the files it names are not read), `extends` (a service
//!   gets nothing from the one it extends), `profiles` (every service is
//!   read), `networks`, `secrets`, `configs`, `expose`, compose's `!reset`
//!   and `!override` tags, and the project-name prefix compose gives to
//!   volume names (a volume without `name:` is known by its key).
//! - Entries that cannot be understood (a port or mount spec left with an
//!   unset variable, say) are skipped with a debug message naming the file
//!   and line; values are never logged, since they may be secrets.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::model::{Container, Host, Location, Mount, MountKind, Port, PortRange, Volume};
use super::paths::normalize;
use crate::error::usage;

/// Deepest nesting of YAML collections accepted.
const MAX_DEPTH: usize = 64;
/// Longest chain of merge keys followed.
const MAX_MERGE_DEPTH: usize = 32;
/// Deepest nesting of `${…}` in interpolation defaults.
const MAX_INTERPOLATION_DEPTH: usize = 16;

const HINT: &str =
    "fix the compose file; `docker compose -f FILE config` shows how compose reads it";

/// Mount propagation options of the short volume syntax.
const PROPAGATION: &[&str] = &[
    "shared", "rshared", "slave", "rslave", "private", "rprivate",
];

/// Options the short volume syntax accepts after the destination.
const VOLUME_OPTIONS: &[&str] = &[
    "ro",
    "rw",
    "z",
    "Z",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "private",
    "rprivate",
    "nocopy",
    "consistent",
    "cached",
    "delegated",
];

/// Parses a compose file into the model: one Container per service, one
/// Volume per top-level volume.
///
/// Variables are read from the process environment, then from a `.env` file
/// next to the compose file (simple `KEY=VALUE` lines).
pub fn load(path: &Path) -> anyhow::Result<Host> {
    let bytes = std::fs::read(path).map_err(|e| {
        usage(
            format!("compose file {}: cannot read it: {e}", path.display()),
            "give the path of an existing, readable compose file",
        )
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        usage(
            format!(
                "compose file {}: not UTF-8 text (invalid byte at offset {})",
                path.display(),
                e.utf8_error().valid_up_to()
            ),
            HINT,
        )
    })?;
    let dotenv = read_dotenv(path);
    let env = |name: &str| {
        std::env::var(name)
            .ok()
            .or_else(|| dotenv.get(name).cloned())
    };
    parse(path, &text, &env)
}

/// Parses compose text. `path` is used for locations and to resolve
/// relative bind sources (relative to the file's directory, made absolute);
/// `env` gives the variables for interpolation.
pub fn parse(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Host> {
    let ctx = Ctx::new(path, env);
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let root = build_tree(text).map_err(|(line, what)| ctx.error_at(line, &what))?;
    let Some(root) = root else {
        return Err(ctx.error_at(1, "the file is empty"));
    };
    let Some(top) = ctx.entries(&root) else {
        return Err(ctx.error_at(
            root.line,
            "the top level must be a mapping (with keys such as `services` and `volumes`)",
        ));
    };

    let mut host = Host {
        data_root: "/var/lib/docker".to_owned(),
        cgroup_v2: true,
        docker_host: None,
        docker_tls: false,
        containers: Vec::new(),
        volumes: Vec::new(),
        dangling: BTreeSet::new(),
    };

    // Volumes first: services refer to them by key.
    let mut names: HashMap<String, String> = HashMap::new();
    if let Some(entry) = top.iter().find(|e| e.key == "volumes") {
        host.volumes = ctx.volumes(&entry.value)?;
        for v in &host.volumes {
            let key = v.compose_key.clone().unwrap_or_else(|| v.name.clone());
            names.insert(key, v.name.clone());
        }
    }
    if let Some(entry) = top.iter().find(|e| e.key == "services") {
        let services = &entry.value;
        if !services.is_null() {
            let Some(list) = ctx.entries(services) else {
                return Err(ctx.error_at(services.line, "`services` must be a mapping"));
            };
            for service in list.iter() {
                host.containers.push(ctx.service(service, &names)?);
            }
        }
    }
    Ok(host)
}

/// `KEY=VALUE` lines of the `.env` file next to `path`; empty when there
/// is none.
fn read_dotenv(path: &Path) -> HashMap<String, String> {
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

// ---------------------------------------------------------------------------
// The YAML tree.

#[derive(Debug)]
enum Value {
    Scalar { text: String, plain: bool },
    Seq(Vec<Rc<Node>>),
    Map(Vec<(Rc<Node>, Rc<Node>)>),
}

/// A YAML node and where it starts (1-based line and column).
#[derive(Debug)]
struct Node {
    value: Value,
    line: usize,
    column: usize,
}

impl Node {
    fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// The text of a scalar, as written (no interpolation).
    fn raw(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    fn is_merge_key(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true } if text == "<<")
    }
}

enum FrameKind {
    Seq(Vec<Rc<Node>>),
    Map {
        entries: Vec<(Rc<Node>, Rc<Node>)>,
        key: Option<Rc<Node>>,
        seen: HashSet<String>,
    },
}

struct Frame {
    kind: FrameKind,
    anchor: usize,
    line: usize,
    column: usize,
}

/// Builds the tree from parser events.
#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Rc<Node>>,
    root: Option<Rc<Node>>,
    documents: usize,
    /// The first problem: line and what.
    error: Option<(usize, String)>,
}

impl Builder {
    fn fail(&mut self, line: usize, what: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some((line, what.into()));
        }
    }

    fn anchor(&mut self, anchor: usize, node: &Rc<Node>) {
        if anchor != 0 {
            self.anchors.insert(anchor, Rc::clone(node));
        }
    }

    fn push(&mut self, kind: FrameKind, anchor: usize, line: usize, column: usize) {
        if self.stack.len() >= MAX_DEPTH {
            self.fail(line, format!("nested more than {MAX_DEPTH} levels deep"));
            return;
        }
        self.stack.push(Frame {
            kind,
            anchor,
            line,
            column,
        });
    }

    fn add(&mut self, node: Rc<Node>) {
        let Some(top) = self.stack.last_mut() else {
            if self.root.is_none() && self.documents == 0 {
                self.root = Some(node);
            }
            return;
        };
        match &mut top.kind {
            FrameKind::Seq(items) => items.push(node),
            FrameKind::Map { entries, key, seen } => match key.take() {
                None => *key = Some(node),
                Some(k) => {
                    if let Some(name) = k.raw() {
                        if !seen.insert(name.to_owned()) {
                            let line = k.line;
                            self.fail(line, "a key is given twice in the same mapping");
                            return;
                        }
                    }
                    entries.push((k, node));
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        // Marker lines are 1-based, columns 0-based.
        let (line, column) = (mark.line().max(1), mark.col() + 1);
        match ev {
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentStart => {}
            Event::DocumentEnd => self.documents += 1,
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(node) => {
                    let node = Rc::clone(node);
                    self.add(node);
                }
                None => self.fail(line, "an alias refers to an anchor not complete before it"),
            },
            Event::Scalar(text, style, anchor, _tag) => {
                let node = Rc::new(Node {
                    value: Value::Scalar {
                        text,
                        plain: style == TScalarStyle::Plain,
                    },
                    line,
                    column,
                });
                self.anchor(anchor, &node);
                self.add(node);
            }
            Event::SequenceStart(anchor, _) => {
                self.push(FrameKind::Seq(Vec::new()), anchor, line, column);
            }
            Event::MappingStart(anchor, _) => {
                let kind = FrameKind::Map {
                    entries: Vec::new(),
                    key: None,
                    seen: HashSet::new(),
                };
                self.push(kind, anchor, line, column);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = self.stack.pop() else {
                    self.fail(line, "unbalanced YAML structure");
                    return;
                };
                let value = match frame.kind {
                    FrameKind::Seq(items) => Value::Seq(items),
                    FrameKind::Map { entries, .. } => Value::Map(entries),
                };
                let node = Rc::new(Node {
                    value,
                    line: frame.line,
                    column: frame.column,
                });
                self.anchor(frame.anchor, &node);
                self.add(node);
            }
        }
    }
}

/// The first document's root, or `None` for an empty stream; on error the
/// line and what is wrong.
fn build_tree(text: &str) -> Result<Option<Rc<Node>>, (usize, String)> {
    let mut parser = Parser::new_from_str(text);
    let mut builder = Builder::default();
    loop {
        let (ev, mark) = parser.next_token().map_err(|e| {
            (
                e.marker().line().max(1),
                format!("not valid YAML: {}", e.info()),
            )
        })?;
        let end = ev == Event::StreamEnd;
        builder.on_event(ev, mark);
        if let Some(error) = builder.error.take() {
            return Err(error);
        }
        if end {
            break;
        }
    }
    if builder.documents > 1 {
        tracing::debug!("compose file has more than one YAML document; reading the first");
    }
    Ok(builder.root)
}

// ---------------------------------------------------------------------------
// Interpolation.

/// `text` with compose variables expanded.
fn interpolate(text: &str, env: &dyn Fn(&str) -> Option<String>, depth: usize) -> String {
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

// ---------------------------------------------------------------------------
// From the tree to the model.

/// A key of a mapping, merge keys resolved.
struct Entry {
    key: String,
    key_node: Rc<Node>,
    value: Rc<Node>,
}

struct Ctx<'a> {
    file: &'a Path,
    /// The compose file's directory, absolute when it can be made so.
    dir: String,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Ctx<'a> {
    fn new(file: &'a Path, env: &'a dyn Fn(&str) -> Option<String>) -> Self {
        let parent = file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| Path::new("."));
        let dir: PathBuf = std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf());
        Ctx {
            file,
            dir: dir.to_string_lossy().into_owned(),
            env,
        }
    }

    fn error_at(&self, line: usize, what: &str) -> anyhow::Error {
        usage(
            format!("compose file {}: line {line}: {what}", self.file.display()),
            HINT,
        )
    }

    fn location(&self, node: &Node) -> Option<Location> {
        Some(Location {
            file: self.file.to_path_buf(),
            line: node.line,
            column: node.column,
        })
    }

    fn skip(&self, node: &Node, what: &str) {
        tracing::debug!(file = %self.file.display(), line = node.line, "skipping {what} that cannot be read");
    }

    /// A scalar's text, interpolated; `None` for null and collections.
    fn text(&self, node: &Node) -> Option<String> {
        if node.is_null() {
            return None;
        }
        node.raw().map(|t| interpolate(t, self.env, 0))
    }

    fn string(&self, node: &Node) -> String {
        self.text(node).unwrap_or_default()
    }

    fn boolean(&self, node: &Node) -> bool {
        let text = self.string(node);
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" | "y" => true,
            "false" | "no" | "off" | "n" | "" => false,
            _ => {
                self.skip(node, "boolean");
                false
            }
        }
    }

    /// A list's items; a lone non-null value counts as a list of one.
    fn items(node: &Rc<Node>) -> Vec<Rc<Node>> {
        match &node.value {
            Value::Seq(items) => items.clone(),
            _ if node.is_null() => Vec::new(),
            _ => vec![Rc::clone(node)],
        }
    }

    /// A list of strings (or one string).
    fn strings(&self, node: &Rc<Node>) -> Vec<String> {
        Self::items(node)
            .iter()
            .filter_map(|item| {
                let text = self.text(item);
                if text.is_none() && !item.is_null() {
                    self.skip(item, "list item");
                }
                text
            })
            .collect()
    }

    /// A mapping's entries with merge keys resolved; `None` if not a
    /// mapping.
    fn entries(&self, node: &Node) -> Option<Vec<Entry>> {
        let Value::Map(pairs) = &node.value else {
            return None;
        };
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut visited = HashSet::new();
        collect_entries(pairs, &mut out, &mut seen, &mut visited, 0);
        Some(out)
    }

    /// Labels as a mapping or a list of `key=value`.
    fn labels(&self, node: &Rc<Node>) -> BTreeMap<String, String> {
        if let Some(entries) = self.entries(node) {
            return entries
                .into_iter()
                .map(|e| {
                    let value = self.string(&e.value);
                    (e.key, value)
                })
                .collect();
        }
        self.strings(node)
            .into_iter()
            .map(|item| match item.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (item, String::new()),
            })
            .collect()
    }

    fn volumes(&self, node: &Node) -> anyhow::Result<Vec<Volume>> {
        if node.is_null() {
            return Ok(Vec::new());
        }
        let Some(entries) = self.entries(node) else {
            return Err(self.error_at(node.line, "top-level `volumes` must be a mapping"));
        };
        let mut volumes = Vec::new();
        for entry in entries.iter() {
            let body = if entry.value.is_null() {
                Vec::new()
            } else {
                match self.entries(&entry.value) {
                    Some(body) => body,
                    None => {
                        return Err(self.error_at(
                            entry.value.line,
                            &format!("volume `{}` must be a mapping", entry.key),
                        ))
                    }
                }
            };
            let mut volume = Volume {
                name: entry.key.clone(),
                driver: "local".to_owned(),
                scope: "local".to_owned(),
                location: self.location(&entry.key_node),
                ..Volume::default()
            };
            let mut external = false;
            for field in &body {
                match field.key.as_str() {
                    "name" => {
                        if let Some(name) = self.text(&field.value).filter(|n| !n.is_empty()) {
                            volume.name = name;
                        }
                    }
                    "driver" => {
                        if let Some(driver) = self.text(&field.value).filter(|d| !d.is_empty()) {
                            volume.driver = driver;
                        }
                    }
                    "driver_opts" => {
                        if let Some(opts) = self.entries(&field.value) {
                            volume.options = opts
                                .iter()
                                .map(|o| (o.key.clone(), self.string(&o.value)))
                                .collect();
                        }
                    }
                    "labels" => volume.labels = self.labels(&field.value),
                    "external" => {
                        if let Some(legacy) = self.entries(&field.value) {
                            // `external: {name: NAME}` (compose file format 2/3).
                            external = true;
                            if let Some(name) = legacy
                                .iter()
                                .find(|e| e.key == "name")
                                .and_then(|e| self.text(&e.value))
                                .filter(|n| !n.is_empty())
                            {
                                volume.name = name;
                            }
                        } else {
                            external = self.boolean(&field.value);
                        }
                    }
                    _ => {}
                }
            }
            if external {
                volume.driver = String::new();
                volume.options.clear();
            }
            if volume.name != entry.key {
                volume.compose_key = Some(entry.key.clone());
            }
            volumes.push(volume);
        }
        Ok(volumes)
    }

    fn service(&self, entry: &Entry, names: &HashMap<String, String>) -> anyhow::Result<Container> {
        let mut c = Container {
            name: entry.key.clone(),
            location: self.location(&entry.key_node),
            ..Container::default()
        };
        let body = if entry.value.is_null() {
            Vec::new()
        } else {
            self.entries(&entry.value).ok_or_else(|| {
                self.error_at(
                    entry.value.line,
                    &format!("service `{}` must be a mapping", entry.key),
                )
            })?
        };
        for field in &body {
            let value = &field.value;
            match field.key.as_str() {
                "privileged" => c.privileged = self.boolean(value),
                "cap_add" => c.cap_add = self.strings(value),
                "security_opt" => c.security_opt = self.strings(value),
                "pid" => c.pid_mode = self.string(value),
                "ipc" => c.ipc_mode = self.string(value),
                "uts" => c.uts_mode = self.string(value),
                "userns_mode" => c.userns_mode = self.string(value),
                "cgroup" => c.cgroupns_mode = self.string(value),
                "read_only" => c.readonly_rootfs = self.boolean(value),
                "devices" => c.devices = self.devices(value),
                "device_cgroup_rules" => c.device_cgroup_rules = self.strings(value),
                "network_mode" => {
                    c.network_mode = self.string(value);
                    c.default_bridge = c.network_mode == "bridge";
                }
                "labels" => c.labels = self.labels(value),
                "ports" | "volumes"
                    if !value.is_null() && !matches!(value.value, Value::Seq(_)) =>
                {
                    return Err(self.error_at(
                        value.line,
                        &format!("service `{}`: `{}` must be a list", entry.key, field.key),
                    ));
                }
                "ports" => {
                    for item in Self::items(value) {
                        match self.port(&item) {
                            Some(port) => c.ports.push(port),
                            None => self.skip(&item, "port"),
                        }
                    }
                }
                "volumes" => {
                    for item in Self::items(value) {
                        match self.mount(&item, names) {
                            Some(mount) => c.mounts.push(mount),
                            None => self.skip(&item, "volume"),
                        }
                    }
                }
                "tmpfs" => {
                    for item in Self::items(value) {
                        match self.text(&item) {
                            Some(spec) if !spec.trim().is_empty() => {
                                let destination =
                                    spec.split(':').next().unwrap_or("").trim().to_owned();
                                c.mounts.push(Mount {
                                    kind: MountKind::Tmpfs,
                                    source: String::new(),
                                    destination,
                                    rw: true,
                                    propagation: String::new(),
                                    mode: String::new(),
                                    location: self.location(&item),
                                });
                            }
                            _ => self.skip(&item, "tmpfs"),
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(c)
    }

    /// Device strings as written; the host path for the long syntax.
    fn devices(&self, node: &Rc<Node>) -> Vec<String> {
        let mut devices = Vec::new();
        for item in Self::items(node) {
            let device = match self.entries(&item) {
                Some(long) => long
                    .iter()
                    .find(|e| e.key == "source")
                    .and_then(|e| self.text(&e.value)),
                None => self.text(&item),
            };
            match device {
                Some(d) if !d.is_empty() => devices.push(d),
                _ => self.skip(&item, "device"),
            }
        }
        devices
    }

    fn port(&self, item: &Rc<Node>) -> Option<Port> {
        if let Some(long) = self.entries(item) {
            let field = |name: &str| {
                long.iter()
                    .find(|e| e.key == name)
                    .and_then(|e| self.text(&e.value))
                    .map(|t| t.trim().to_owned())
            };
            let container_port = parse_range(&field("target")?)?;
            let host_port = match field("published").filter(|p| !p.is_empty()) {
                Some(p) => Some(parse_range(&p)?),
                None => None,
            };
            let host_ip = field("host_ip").unwrap_or_default();
            let protocol = field("protocol")
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "tcp".to_owned());
            return Some(Port {
                host_ip: strip_brackets(&host_ip).to_owned(),
                host_port,
                container_port,
                protocol,
                location: self.location(item),
            });
        }
        let (host_ip, host_port, container_port, protocol) = parse_short_port(&self.text(item)?)?;
        Some(Port {
            host_ip,
            host_port,
            container_port,
            protocol,
            location: self.location(item),
        })
    }

    fn mount(&self, item: &Rc<Node>, names: &HashMap<String, String>) -> Option<Mount> {
        if let Some(long) = self.entries(item) {
            return self.long_mount(item, &long, names);
        }
        let spec = self.text(item)?;
        let parts = split_volume(spec.trim());
        let (source, destination, mode) = match parts.as_slice() {
            [dst] => ("", dst.as_str(), ""),
            // `/data:ro`: an anonymous volume with options.
            [dst, mode] if dst.starts_with('/') && is_volume_mode(mode) => {
                ("", dst.as_str(), mode.as_str())
            }
            [src, dst] => (src.as_str(), dst.as_str(), ""),
            [src, dst, mode] => (src.as_str(), dst.as_str(), mode.as_str()),
            _ => return None,
        };
        if destination.is_empty() {
            return None;
        }
        let mut mount = Mount {
            kind: MountKind::Volume,
            source: String::new(),
            destination: destination.to_owned(),
            rw: true,
            propagation: String::new(),
            mode: mode.to_owned(),
            location: self.location(item),
        };
        if is_host_path(source) {
            mount.kind = MountKind::Bind;
            mount.source = self.bind_source(source);
        } else if !source.is_empty() {
            mount.source = names
                .get(source)
                .cloned()
                .unwrap_or_else(|| source.to_owned());
        }
        for option in mode.split(',').map(str::trim) {
            match option {
                "ro" => mount.rw = false,
                "rw" => mount.rw = true,
                p if PROPAGATION.contains(&p) => mount.propagation = p.to_owned(),
                _ => {}
            }
        }
        Some(mount)
    }

    fn long_mount(
        &self,
        item: &Node,
        long: &[Entry],
        names: &HashMap<String, String>,
    ) -> Option<Mount> {
        let field = |name: &str| long.iter().find(|e| e.key == name).map(|e| &e.value);
        let text = |name: &str| {
            field(name)
                .and_then(|v| self.text(v))
                .map(|t| t.trim().to_owned())
        };
        let destination = text("target").filter(|t| !t.is_empty())?;
        let source = text("source").unwrap_or_default();
        let kind = match text("type").as_deref() {
            Some("bind") => MountKind::Bind,
            Some("volume") => MountKind::Volume,
            Some("tmpfs") => MountKind::Tmpfs,
            None | Some("") if is_host_path(&source) => MountKind::Bind,
            None | Some("") => MountKind::Volume,
            Some(_) => MountKind::Other,
        };
        let mut mount = Mount {
            kind,
            source: String::new(),
            destination,
            rw: !field("read_only").is_some_and(|v| self.boolean(v)),
            propagation: String::new(),
            mode: String::new(),
            location: self.location(item),
        };
        match kind {
            MountKind::Bind if !source.is_empty() => mount.source = self.bind_source(&source),
            // A bind without a source is incomplete: compose rejects it.
            MountKind::Bind => return None,
            MountKind::Tmpfs => {}
            MountKind::Volume if !source.is_empty() => {
                mount.source = names.get(&source).cloned().unwrap_or(source);
            }
            MountKind::Volume => {}
            MountKind::Other => mount.source = source,
        }
        if let Some(bind) = field("bind").and_then(|b| self.entries(b)) {
            for option in &bind {
                match option.key.as_str() {
                    "propagation" => mount.propagation = self.string(&option.value),
                    "selinux" => mount.mode = self.string(&option.value),
                    _ => {}
                }
            }
        }
        Some(mount)
    }

    /// A bind source made absolute: `~` expanded, relative paths taken from
    /// the compose file's directory. Windows paths stay as written.
    fn bind_source(&self, source: &str) -> String {
        if source == "~" || source.starts_with("~/") {
            return match (self.env)("HOME").filter(|h| !h.is_empty()) {
                Some(home) => normalize(&format!("{home}/{}", &source[1..])),
                None => {
                    tracing::debug!(file = %self.file.display(), "HOME is not set; `~` left as written");
                    source.to_owned()
                }
            };
        }
        if source.starts_with('~') || source.starts_with('\\') || is_windows_absolute(source) {
            return source.to_owned();
        }
        if source.starts_with('/') {
            return normalize(source);
        }
        normalize(&format!("{}/{source}", self.dir))
    }
}

fn collect_entries(
    pairs: &[(Rc<Node>, Rc<Node>)],
    out: &mut Vec<Entry>,
    seen: &mut HashSet<String>,
    visited: &mut HashSet<*const Node>,
    depth: usize,
) {
    for (key, value) in pairs {
        if key.is_merge_key() {
            continue;
        }
        if let Some(name) = key.raw() {
            if seen.insert(name.to_owned()) {
                out.push(Entry {
                    key: name.to_owned(),
                    key_node: Rc::clone(key),
                    value: Rc::clone(value),
                });
            }
        }
    }
    if depth >= MAX_MERGE_DEPTH {
        return;
    }
    for (key, value) in pairs.iter().filter(|(k, _)| k.is_merge_key()) {
        let sources: Vec<&Rc<Node>> = match &value.value {
            Value::Seq(items) => items.iter().collect(),
            _ => vec![value],
        };
        for source in sources {
            if let Value::Map(inner) = &source.value {
                if visited.insert(Rc::as_ptr(source)) {
                    collect_entries(inner, out, seen, visited, depth + 1);
                }
            } else if !source.is_null() {
                tracing::debug!(line = key.line, "merge key value is not a mapping; ignored");
            }
        }
    }
}

/// `C:\…` or `C:/…`.
fn is_windows_absolute(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && (b[2] == b'\\' || b[2] == b'/')
}

/// Whether a short-syntax volume source is a host path rather than a
/// volume name. Any leading `.` counts (`./x`, `../x`, `.`, and `.x`, which
/// cannot be a volume name), as does `~`.
fn is_host_path(source: &str) -> bool {
    source.starts_with('/')
        || source.starts_with('.')
        || source.starts_with('~')
        || source.starts_with('\\')
        || is_windows_absolute(source)
}

fn is_volume_mode(mode: &str) -> bool {
    !mode.is_empty() && mode.split(',').all(|o| VOLUME_OPTIONS.contains(&o.trim()))
}

/// A short volume spec split on `:`, keeping Windows drive letters
/// (`C:\data`, and `C:/data` when more parts follow) with their path.
fn split_volume(spec: &str) -> Vec<String> {
    let raw: Vec<&str> = spec.split(':').collect();
    let mut parts = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let part = raw[i];
        let drive = part.len() == 1 && part.as_bytes()[0].is_ascii_alphabetic();
        if drive {
            if let Some(next) = raw.get(i + 1) {
                if next.starts_with('\\') || (next.starts_with('/') && raw.len() >= 3) {
                    parts.push(format!("{part}:{next}"));
                    i += 2;
                    continue;
                }
            }
        }
        parts.push(part.to_owned());
        i += 1;
    }
    parts
}

fn strip_brackets(ip: &str) -> &str {
    ip.strip_prefix('[')
        .and_then(|i| i.strip_suffix(']'))
        .unwrap_or(ip)
}

/// `80` or `8000-8010`.
fn parse_range(s: &str) -> Option<PortRange> {
    let s = s.trim();
    match s.split_once('-') {
        Some((a, b)) => {
            let start = parse_port(a)?;
            let end = parse_port(b)?;
            (start <= end).then_some(PortRange { start, end })
        }
        None => parse_port(s).map(PortRange::one),
    }
}

fn parse_port(s: &str) -> Option<u16> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `[[IP:][HOST]:]CONTAINER[/PROTOCOL]` into host IP (brackets removed),
/// host port, container port and protocol.
fn parse_short_port(spec: &str) -> Option<(String, Option<PortRange>, PortRange, String)> {
    let spec = spec.trim();
    let (address, protocol) = match spec.rsplit_once('/') {
        Some((a, p)) if !p.trim().is_empty() => (a, p.trim()),
        Some(_) => return None,
        None => (spec, "tcp"),
    };
    let (ip, host, container) = if let Some(rest) = address.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        let (host, container) = after.strip_prefix(':')?.split_once(':')?;
        (ip, host, container)
    } else {
        let mut parts = address.rsplitn(3, ':');
        let container = parts.next()?;
        let host = parts.next().unwrap_or("");
        let ip = parts.next().unwrap_or("");
        (ip, host, container)
    };
    let container = parse_range(container)?;
    let host = if host.trim().is_empty() {
        None
    } else {
        Some(parse_range(host)?)
    };
    Some((
        strip_brackets(ip.trim()).to_owned(),
        host,
        container,
        protocol.to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{find_user_error, Kind};

    const FILE: &str = "/srv/app/docker-compose.yml";

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/me".to_owned()),
            "TAG" => Some("1.2".to_owned()),
            "EMPTY" => Some(String::new()),
            "PORT" => Some("5432".to_owned()),
            "PASS" => Some("s3cret".to_owned()),
            _ => None,
        }
    }

    fn host(text: &str) -> Host {
        parse(Path::new(FILE), text, &env).unwrap()
    }

    fn service<'h>(host: &'h Host, name: &str) -> &'h Container {
        host.containers.iter().find(|c| c.name == name).unwrap()
    }

    fn usage_message(text: &str) -> String {
        let err = parse(Path::new(FILE), text, &env).unwrap_err();
        let user = find_user_error(&err).expect("a usage error");
        assert!(matches!(user.kind, Kind::Usage));
        assert!(user.hint.is_some());
        user.message.clone()
    }

    #[test]
    fn volumes_and_ports_must_be_lists() {
        let m = usage_message("services:\n  app:\n    volumes: \"notalist\"\n");
        assert!(
            m.contains("line 3") && m.contains("`volumes` must be a list"),
            "{m}"
        );
        let m = usage_message("services:\n  app:\n    ports: 80\n");
        assert!(m.contains("`ports` must be a list"), "{m}");
    }

    #[test]
    fn a_bind_without_source_is_skipped() {
        let h = host("services:\n  app:\n    volumes:\n      - type: bind\n        target: /x\n");
        assert!(service(&h, "app").mounts.is_empty());
    }

    fn mount<'c>(c: &'c Container, destination: &str) -> &'c Mount {
        c.mounts
            .iter()
            .find(|m| m.destination == destination)
            .unwrap_or_else(|| panic!("no mount at {destination}: {:?}", c.mounts))
    }

    #[test]
    fn short_volume_syntax() {
        let h = host(
            "services:
  app:
    volumes:
      - /usr/src/app/node_modules
      - ./data:/data
      - ../shared/:/shared
      - .:/code
      - ~/x:/x
      - ~:/home
      - /etc:/etc:ro,Z
      - /mnt:/mnt:rshared
      - db:/var/lib/postgresql/data
      - cache:/cache:ro
      - /run/docker.sock:/var/run/docker.sock
      - /data:ro
volumes:
  db:
    name: prod_db
  cache:
",
        );
        let c = service(&h, "app");
        assert_eq!(c.mounts.len(), 12);

        let anon = mount(c, "/usr/src/app/node_modules");
        assert_eq!(anon.kind, MountKind::Volume);
        assert_eq!(anon.source, "");
        assert!(anon.rw);

        let data = mount(c, "/data");
        assert_eq!(data.kind, MountKind::Bind);
        assert_eq!(data.source, "/srv/app/data");
        assert_eq!(mount(c, "/shared").source, "/srv/shared");
        assert_eq!(mount(c, "/code").source, "/srv/app");
        assert_eq!(mount(c, "/x").source, "/home/me/x");
        assert_eq!(mount(c, "/home").source, "/home/me");

        let etc = mount(c, "/etc");
        assert_eq!(etc.kind, MountKind::Bind);
        assert!(!etc.rw);
        assert_eq!(etc.mode, "ro,Z");
        assert!(etc.mode.split(',').any(|o| o == "Z"));

        let mnt = mount(c, "/mnt");
        assert_eq!(mnt.propagation, "rshared");
        assert!(mnt.rw);

        let db = mount(c, "/var/lib/postgresql/data");
        assert_eq!(db.kind, MountKind::Volume);
        assert_eq!(db.source, "prod_db");
        let cache = mount(c, "/cache");
        assert_eq!(cache.source, "cache");
        assert!(!cache.rw);

        let sock = mount(c, "/var/run/docker.sock");
        assert_eq!(
            (sock.kind, sock.source.as_str()),
            (MountKind::Bind, "/run/docker.sock")
        );

        let anon_ro = c.mounts.last().unwrap();
        assert_eq!(
            (
                anon_ro.kind,
                anon_ro.source.as_str(),
                anon_ro.destination.as_str(),
                anon_ro.rw
            ),
            (MountKind::Volume, "", "/data", false)
        );
    }

    #[test]
    fn relative_file_path_resolves_against_cwd() {
        let h = parse(
            Path::new("docker-compose.yml"),
            "services: {a: {volumes: ['./d:/d']}}",
            &env,
        )
        .unwrap();
        let expected = normalize(&format!(
            "{}/d",
            std::env::current_dir().unwrap().to_string_lossy()
        ));
        assert_eq!(h.containers[0].mounts[0].source, expected);
        assert_eq!(
            h.containers[0].location.as_ref().unwrap().file,
            PathBuf::from("docker-compose.yml")
        );
    }

    #[test]
    fn long_volume_syntax() {
        let h = host(
            "services:
  app:
    volumes:
      - type: bind
        source: ./conf
        target: /conf
        read_only: true
        bind:
          propagation: rslave
          selinux: z
          create_host_path: true
      - type: volume
        source: db
        target: /db
        volume:
          nocopy: true
      - type: volume
        target: /anon
      - type: tmpfs
        target: /tmp
      - type: npipe
        source: \\\\.\\pipe\\docker_engine
        target: \\\\.\\pipe\\docker_engine
      - type: bind
        source: /
        target: /host
volumes:
  db:
    name: real_db
",
        );
        let c = service(&h, "app");
        let conf = mount(c, "/conf");
        assert_eq!(conf.kind, MountKind::Bind);
        assert_eq!(conf.source, "/srv/app/conf");
        assert!(!conf.rw);
        assert_eq!(conf.propagation, "rslave");
        assert_eq!(conf.mode, "z");
        let db = mount(c, "/db");
        assert_eq!(
            (db.kind, db.source.as_str(), db.rw),
            (MountKind::Volume, "real_db", true)
        );
        let anon = mount(c, "/anon");
        assert_eq!((anon.kind, anon.source.as_str()), (MountKind::Volume, ""));
        assert_eq!(mount(c, "/tmp").kind, MountKind::Tmpfs);
        assert_eq!(c.mounts[4].kind, MountKind::Other);
        assert_eq!(mount(c, "/host").source, "/");
    }

    #[test]
    fn tmpfs_string_and_list() {
        let h = host("services:\n  a:\n    tmpfs: /run:size=64m\n  b:\n    tmpfs:\n      - /tmp\n      - /var/cache:mode=1777\n");
        let a = service(&h, "a");
        assert_eq!(a.mounts.len(), 1);
        assert_eq!(
            (a.mounts[0].kind, a.mounts[0].destination.as_str()),
            (MountKind::Tmpfs, "/run")
        );
        let b = service(&h, "b");
        let dests: Vec<_> = b.mounts.iter().map(|m| m.destination.as_str()).collect();
        assert_eq!(dests, ["/tmp", "/var/cache"]);
        assert_eq!(b.mounts[1].location.as_ref().unwrap().line, 7);
    }

    #[test]
    fn windows_paths_do_not_crash() {
        let h = host(
            "services:\n  w:\n    volumes:\n      - 'C:\\data:/data'\n      - C:/Users/me:/me:ro\n      - 'C:\\only'\n      - 'c:\\a:c:\\b'\n",
        );
        let c = service(&h, "w");
        let data = mount(c, "/data");
        assert_eq!(
            (data.kind, data.source.as_str()),
            (MountKind::Bind, "C:\\data")
        );
        let me = mount(c, "/me");
        assert_eq!(
            (me.kind, me.source.as_str(), me.rw),
            (MountKind::Bind, "C:/Users/me", false)
        );
        assert_eq!(c.mounts.len(), 4);
    }

    #[test]
    fn top_level_volumes() {
        let h = host(
            "volumes:
  nfs:
    driver: local
    driver_opts:
      type: nfs
      o: addr=10.0.0.1,rw,nfsvers=4,password=${PASS}
      device: :/export
      size: 100
      flag: true
  plain:
  named:
    name: other_name
    labels:
      - a=b
  ext:
    external: true
    driver_opts:
      type: nfs
  legacy:
    external:
      name: legacy_real
  custom:
    driver: rexray/ebs
    labels:
      team: x
",
        );
        let names: Vec<_> = h.volumes.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            names,
            ["nfs", "plain", "other_name", "ext", "legacy_real", "custom"]
        );
        let nfs = &h.volumes[0];
        assert_eq!(nfs.driver, "local");
        assert_eq!(nfs.scope, "local");
        assert_eq!(nfs.options["type"], "nfs");
        assert_eq!(
            nfs.options["o"],
            "addr=10.0.0.1,rw,nfsvers=4,password=s3cret"
        );
        assert_eq!(nfs.options["device"], ":/export");
        assert_eq!(nfs.options["size"], "100");
        assert_eq!(nfs.options["flag"], "true");
        assert_eq!(nfs.location.as_ref().unwrap().line, 2);
        assert_eq!(nfs.location.as_ref().unwrap().column, 3);
        assert_eq!(nfs.compose_key, None);
        let plain = &h.volumes[1];
        assert_eq!((plain.driver.as_str(), plain.options.len()), ("local", 0));
        let named = &h.volumes[2];
        assert_eq!(named.compose_key.as_deref(), Some("named"));
        assert_eq!(named.labels["a"], "b");
        let ext = &h.volumes[3];
        assert_eq!((ext.driver.as_str(), ext.options.len()), ("", 0));
        assert_eq!(h.volumes[4].driver, "");
        assert_eq!(h.volumes[4].compose_key.as_deref(), Some("legacy"));
        assert_eq!(h.volumes[5].driver, "rexray/ebs");
        assert_eq!(h.volumes[5].labels["team"], "x");
        assert!(h.containers.is_empty());
        assert_eq!(h.data_root, "/var/lib/docker");
        assert!(h.cgroup_v2);
        assert!(h.docker_host.is_none());
        assert!(h.dangling.is_empty());
    }

    #[test]
    fn ports_in_all_forms() {
        let h = host(
            r#"services:
  db:
    ports:
      - 5432
      - "5432"
      - "5433:5432"
      - "0.0.0.0:5434:5432"
      - "127.0.0.1:5435:5432"
      - "[::1]:5436:5432"
      - "::1:5437:5432"
      - "8000-8010:8000-8010"
      - "5438:5432/udp"
      - "127.0.0.1::5432"
      - "9000-9010:80"
      - 8000-8010
      - "${PORT}:5432"
      - "${NOPE}:${NOPE}"
      - "garbage"
      - "70000:80"
      - target: 80
        published: "8080"
        host_ip: 127.0.0.1
        protocol: udp
        mode: host
      - target: 443
        published: 8443-8444
        host_ip: "[::1]"
      - target: 22
      - published: 1
"#,
        );
        let c = service(&h, "db");
        let got: Vec<(String, Option<String>, String, String)> = c
            .ports
            .iter()
            .map(|p| {
                (
                    p.host_ip.clone(),
                    p.host_port.map(|r| r.to_string()),
                    p.container_port.to_string(),
                    p.protocol.clone(),
                )
            })
            .collect();
        let want = |ip: &str, host: Option<&str>, cont: &str, proto: &str| {
            (
                ip.to_owned(),
                host.map(str::to_owned),
                cont.to_owned(),
                proto.to_owned(),
            )
        };
        assert_eq!(
            got,
            vec![
                want("", None, "5432", "tcp"),
                want("", None, "5432", "tcp"),
                want("", Some("5433"), "5432", "tcp"),
                want("0.0.0.0", Some("5434"), "5432", "tcp"),
                want("127.0.0.1", Some("5435"), "5432", "tcp"),
                want("::1", Some("5436"), "5432", "tcp"),
                want("::1", Some("5437"), "5432", "tcp"),
                want("", Some("8000-8010"), "8000-8010", "tcp"),
                want("", Some("5438"), "5432", "udp"),
                want("127.0.0.1", None, "5432", "tcp"),
                want("", Some("9000-9010"), "80", "tcp"),
                want("", None, "8000-8010", "tcp"),
                want("", Some("5432"), "5432", "tcp"),
                want("127.0.0.1", Some("8080"), "80", "udp"),
                want("::1", Some("8443-8444"), "443", "tcp"),
                want("", None, "22", "tcp"),
            ]
        );
        // Locations: each port's list item.
        assert_eq!(c.ports[0].location.as_ref().unwrap().line, 4);
        assert_eq!(c.ports[4].location.as_ref().unwrap().line, 8);
        assert_eq!(c.ports[4].location.as_ref().unwrap().column, 9);
        assert_eq!(c.ports[13].location.as_ref().unwrap().line, 20);
    }

    #[test]
    fn service_security_fields() {
        let h = host(
            "services:
  bad:
    image: x
    privileged: true
    cap_add: [SYS_ADMIN, cap_net_admin]
    security_opt:
      - seccomp=unconfined
      - no-new-privileges:true
    pid: host
    ipc: host
    uts: host
    userns_mode: host
    cgroup: host
    network_mode: host
    read_only: true
    devices:
      - /dev/fuse
      - /dev/sda:/dev/xvda:rwm
      - source: /dev/ttyUSB0
        target: /dev/ttyUSB0
    device_cgroup_rules: ['c 1:3 mr']
    labels:
      a: 1
      b:
    expose: [80]
  bridge:
    network_mode: bridge
    labels: [x=y, z]
  plain:
    image: nginx
",
        );
        let bad = service(&h, "bad");
        assert!(bad.privileged);
        assert_eq!(bad.cap_add, ["SYS_ADMIN", "cap_net_admin"]);
        assert_eq!(
            bad.security_opt,
            ["seccomp=unconfined", "no-new-privileges:true"]
        );
        assert_eq!(
            [
                &bad.pid_mode,
                &bad.ipc_mode,
                &bad.uts_mode,
                &bad.userns_mode,
                &bad.cgroupns_mode
            ],
            ["host"; 5]
        );
        assert_eq!(bad.network_mode, "host");
        assert!(!bad.default_bridge);
        assert!(bad.readonly_rootfs);
        assert_eq!(
            bad.devices,
            ["/dev/fuse", "/dev/sda:/dev/xvda:rwm", "/dev/ttyUSB0"]
        );
        assert_eq!(bad.device_cgroup_rules, ["c 1:3 mr"]);
        assert_eq!(bad.labels["a"], "1");
        assert_eq!(bad.labels["b"], "");
        assert!(bad.exposed.is_empty());
        assert_eq!(
            (
                bad.id.as_str(),
                bad.running,
                bad.auto_remove,
                bad.publish_all
            ),
            ("", false, false, false)
        );

        let bridge = service(&h, "bridge");
        assert!(bridge.default_bridge);
        assert_eq!(bridge.labels["x"], "y");
        assert_eq!(bridge.labels["z"], "");

        let plain = service(&h, "plain");
        assert!(!plain.privileged);
        assert_eq!(plain.network_mode, "");
        assert!(!plain.default_bridge);
        assert!(!plain.readonly_rootfs);
        assert_eq!(plain.location.as_ref().unwrap().line, 29);
        assert_eq!(plain.location.as_ref().unwrap().column, 3);
        assert_eq!(plain.location.as_ref().unwrap().file, PathBuf::from(FILE));
    }

    #[test]
    fn anchors_and_merge_keys() {
        let h = host(
            "x-common: &common
  privileged: true
  cap_add: [SYS_ADMIN]
  volumes: &vols
    - /etc:/etc:ro
x-net: &net
  network_mode: host
  privileged: false
services:
  one:
    <<: *common
  two:
    <<: [*net, *common]
  three: &three
    <<: *common
    privileged: false
    volumes: *vols
  four:
    <<: *three
",
        );
        let names: Vec<_> = h.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["one", "two", "three", "four"]);
        let one = service(&h, "one");
        assert!(one.privileged);
        assert_eq!(one.cap_add, ["SYS_ADMIN"]);
        assert_eq!(one.mounts[0].source, "/etc");
        // Earlier mappings in a merge list win.
        let two = service(&h, "two");
        assert!(!two.privileged);
        assert_eq!(two.network_mode, "host");
        assert_eq!(two.cap_add, ["SYS_ADMIN"]);
        let three = service(&h, "three");
        assert!(!three.privileged);
        // Through an alias, the anchor's location.
        assert_eq!(three.mounts[0].location.as_ref().unwrap().line, 5);
        assert_eq!(three.location.as_ref().unwrap().line, 14);
        let four = service(&h, "four");
        assert!(!four.privileged);
        assert_eq!(four.cap_add, ["SYS_ADMIN"]);
    }

    #[test]
    fn locations() {
        let text = "# comment
services:

  web:
    image: nginx
    ports:
      - \"80:80\"
      - target: 443
        published: 443
    volumes:
      - ./html:/usr/share/nginx/html:ro
      - type: bind
        source: /etc
        target: /etc
";
        let h = host(text);
        let web = service(&h, "web");
        let loc = |l: &Option<Location>| {
            let l = l.as_ref().unwrap();
            (l.line, l.column)
        };
        assert_eq!(loc(&web.location), (4, 3));
        assert_eq!(loc(&web.ports[0].location), (7, 9));
        assert_eq!(loc(&web.ports[1].location).0, 8);
        assert_eq!(loc(&web.mounts[0].location), (11, 9));
        assert_eq!(loc(&web.mounts[1].location).0, 12);
    }

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

    #[test]
    fn load_reads_dotenv_and_reports_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("compose.yaml");
        std::fs::write(
            &file,
            "services:\n  a:\n    network_mode: ${VOLSAFE_TEST_COMPOSE_NET_UNSET_XYZ}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join(".env"),
            "VOLSAFE_TEST_COMPOSE_NET_UNSET_XYZ=host\n",
        )
        .unwrap();
        let h = load(&file).unwrap();
        assert_eq!(h.containers[0].network_mode, "host");

        let err = load(&dir.path().join("missing.yml")).unwrap_err();
        let user = find_user_error(&err).unwrap();
        assert!(matches!(user.kind, Kind::Usage));
        assert!(user.message.contains("missing.yml"), "{}", user.message);

        let junk = dir.path().join("junk.yml");
        std::fs::write(&junk, b"\xff\xfe\x00garbage").unwrap();
        let err = load(&junk).unwrap_err();
        assert!(matches!(find_user_error(&err).unwrap().kind, Kind::Usage));
    }

    #[test]
    fn no_services_and_null_services() {
        assert!(host("volumes:\n  a:\n").containers.is_empty());
        assert!(host("services:\n").containers.is_empty());
        assert!(host("name: x\nx-foo: 1\n").containers.is_empty());
        // `x-` keys are extensions only where keys are not user-defined:
        // under `services`, `x-ray` is a service.
        let h = host("services:\n  empty:\n  x-ray: {privileged: true}\n");
        assert_eq!(h.containers.len(), 2);
        assert_eq!(h.containers[0].name, "empty");
        assert!(h.containers[1].privileged);
    }

    #[test]
    fn usage_errors_name_file_and_line() {
        let m = usage_message("");
        assert!(
            m.starts_with(&format!("compose file {FILE}: line 1:")),
            "{m}"
        );
        assert!(usage_message("# only a comment\n").contains("empty"));
        let m = usage_message("- a\n- b\n");
        assert!(m.contains("line 1") && m.contains("mapping"), "{m}");
        let m = usage_message("just a string");
        assert!(m.contains("mapping"), "{m}");
        let m = usage_message("version: '3'\n\nservices:\n  - web\n");
        assert!(m.contains("line 4") && m.contains("services"), "{m}");
        let m = usage_message("services:\n  web:\n\timage: x\n");
        assert!(m.contains("line 3"), "{m}");
        let m = usage_message("services:\n  web: [1, 2\n");
        assert!(m.contains(FILE) && m.contains("line"), "{m}");
        let m = usage_message("services:\n  web:\n    image: a\n    image: b\n");
        assert!(m.contains("line 4") && m.contains("twice"), "{m}");
        let m = usage_message("services:\n  web: just-a-string\n");
        assert!(m.contains("line 2") && m.contains("web"), "{m}");
        let m = usage_message("volumes: [a]\n");
        assert!(m.contains("volumes"), "{m}");
        let m = usage_message("a: *nope\n");
        assert!(m.contains("line 1"), "{m}");
        let m = usage_message("a: &x [*x]\n");
        assert!(m.contains("line 1"), "{m}");
        let deep = format!("a: {}{}", "[".repeat(5000), "]".repeat(5000));
        assert!(usage_message(&deep).contains("line 1"));
        let deep = format!("a: {}{}", "[".repeat(100), "]".repeat(100));
        let m = usage_message(&deep);
        assert!(m.contains("nested"), "{m}");
        let mut block = String::new();
        for depth in 0..300 {
            block.push_str(&" ".repeat(depth));
            block.push_str("- \n");
        }
        assert!(usage_message(&block.replace("- \n", "-\n")).contains("nested"));
        usage_message("\u{0}\u{1}\u{7f}\u{feff}junk: [}\n");
        usage_message("services:\n  a: !!binary \"AAEC\"\n");
    }

    #[test]
    fn odd_values_are_skipped_not_fatal() {
        let h = host(
            "services:
  odd:
    privileged: maybe
    cap_add: {a: b}
    ports: [[1, 2], {}, {target: x}, '', ~, '[::1', '[::1]5432:5432', '1:2:3:4:5', '/tcp', '80/']
    volumes: [[a], {}, {target: ''}, '', ~, 'a:b:c:d', ':', ':/x']
    tmpfs: [{}, '']
    devices: [[], {target: /x}]
    labels: 7
    network_mode: [a]
    <<: 5
",
        );
        let odd = service(&h, "odd");
        assert!(!odd.privileged);
        assert!(odd.cap_add.is_empty());
        // ':/x' is an anonymous volume.
        assert_eq!(odd.mounts.len(), 1);
        assert_eq!(
            (
                odd.mounts[0].source.as_str(),
                odd.mounts[0].destination.as_str()
            ),
            ("", "/x")
        );
        // '1:2:3:4:5' reads as IPv6-ish host 1:2:3 best effort; nothing else parses.
        assert_eq!(odd.ports.len(), 1);
        assert!(odd.devices.is_empty());
        assert_eq!(odd.labels.len(), 1);
    }

    #[test]
    fn billion_laughs_is_cheap() {
        let mut text = String::from("x-a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n");
        let mut prev = 'a';
        for c in 'b'..='z' {
            text.push_str(&format!(
                "x-{c}: &{c} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
            prev = c;
        }
        text.push_str("services:\n  s:\n    volumes: *z\n    labels: *z\n    <<: [*z]\n");
        let h = host(&text);
        assert!(h.containers[0].mounts.is_empty());
    }

    /// Random mutations of a real file: errors are fine, panics are not.
    #[test]
    fn fuzz_does_not_panic() {
        let seed_text = "x-c: &c\n  privileged: true\nservices:\n  web:\n    <<: *c\n    image: \"nginx:${TAG:-1}\"\n    ports: ['127.0.0.1:80:80', {target: 1, published: '2-3'}]\n    volumes:\n      - ./a:/a:ro,z\n      - {type: bind, source: ~/b, target: /b, bind: {propagation: shared}}\n    tmpfs: /t\nvolumes:\n  v: {driver_opts: {o: 'addr=1'}}\n";
        let alphabet: &[u8] = b" \t\n:-[]{}&*<>!|'\"$#,?%@`\\/.~0123456789az\x00\xc3\xa9";
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..3000 {
            let mut bytes = seed_text.as_bytes().to_vec();
            let edits = 1 + next() % 6;
            for _ in 0..edits {
                let pos = (next() as usize) % (bytes.len() + 1);
                match next() % 3 {
                    0 if pos < bytes.len() => {
                        bytes.remove(pos);
                    }
                    1 if pos < bytes.len() => {
                        bytes[pos] = alphabet[(next() as usize) % alphabet.len()];
                    }
                    _ => bytes.insert(pos, alphabet[(next() as usize) % alphabet.len()]),
                }
            }
            let text = String::from_utf8_lossy(&bytes);
            let _ = parse(Path::new(FILE), &text, &env);
        }
    }
}

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
//!
//! The reading is split in steps, one file each: `yaml.rs` turns the text
//! into a tree of marked nodes (anchors, aliases and merge keys resolved),
//! `interpolate.rs` expands variables in scalar values and reads `.env`,
//! this file maps services and top-level volumes onto the model, and
//! `specs.rs` reads the port, mount and device entries of a service.

mod interpolate;
mod specs;
mod yaml;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use self::interpolate::{interpolate, read_dotenv};
use self::yaml::{build_tree, collect_entries, Entry, Node, Value};
use super::model::{Container, Host, Location, Mount, MountKind, Volume};
use crate::error::usage;

const HINT: &str =
    "fix the compose file; `docker compose -f FILE config` shows how compose reads it";

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

// ---------------------------------------------------------------------------
// From the tree to the model.

/// The file being read and where its variables come from; the mapping
/// here and in `specs.rs` are methods on it.
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
}

#[cfg(test)]
mod tests;

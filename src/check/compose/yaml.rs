//! The marked YAML tree a compose file is read into.
//!
//! `yaml-rust2`'s event parser gives events with positions; this module
//! builds them into nodes that keep their line and column, so findings can
//! point at the text. Aliases share the anchored node (a "billion laughs"
//! file costs nothing to build), a key given twice is an error, and
//! nesting is capped. [`collect_entries`] resolves merge keys (`<<`) when a
//! mapping is read, with its own depth cap.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Deepest nesting of YAML collections accepted.
const MAX_DEPTH: usize = 64;
/// Longest chain of merge keys followed.
const MAX_MERGE_DEPTH: usize = 32;

#[derive(Debug)]
pub(super) enum Value {
    Scalar { text: String, plain: bool },
    Seq(Vec<Rc<Node>>),
    Map(Vec<(Rc<Node>, Rc<Node>)>),
}

/// A YAML node and where it starts (1-based line and column).
#[derive(Debug)]
pub(super) struct Node {
    pub(super) value: Value,
    pub(super) line: usize,
    pub(super) column: usize,
}

impl Node {
    pub(super) fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// The text of a scalar, as written (no interpolation).
    pub(super) fn raw(&self) -> Option<&str> {
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
pub(super) fn build_tree(text: &str) -> Result<Option<Rc<Node>>, (usize, String)> {
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

/// A key of a mapping, merge keys resolved.
pub(super) struct Entry {
    pub(super) key: String,
    pub(super) key_node: Rc<Node>,
    pub(super) value: Rc<Node>,
}

pub(super) fn collect_entries(
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

#[cfg(test)]
mod tests {
    use crate::check::compose::tests::{host, service};
    use crate::check::model::Location;

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
}

//! Errors the user can act on, and the exit codes they map to.
//!
//! Most of volsafe uses `anyhow` with context naming the volume, container
//! or file at each boundary. A [`UserError`] is placed in that chain only
//! where the exit code or the hint depends on what went wrong; `main` finds
//! it by walking the chain.

use std::fmt;

/// Exit status, the same for every command (DESIGN.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success,
    Failed,
    Usage,
    Integrity,
    Findings,
    Partial,
    Interrupted(Signal),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Int,
    Term,
}

impl Exit {
    pub fn code(self) -> i32 {
        match self {
            Exit::Success => 0,
            Exit::Failed => 1,
            Exit::Usage => 2,
            Exit::Integrity => 3,
            Exit::Findings => 4,
            Exit::Partial => 5,
            Exit::Interrupted(Signal::Int) => 130,
            Exit::Interrupted(Signal::Term) => 143,
        }
    }
}

/// What kind of failure a [`UserError`] is, which decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The operation failed: daemon unreachable, volume missing, I/O, wrong key.
    Failed,
    /// The command line or a configuration file is wrong.
    Usage,
    /// An archive is corrupt, truncated or does not match its records.
    Integrity,
    /// Security findings reached `--fail-on` / `--check-fail-on`.
    Findings,
    /// The run was interrupted by a signal and cleaned up after itself.
    Interrupted(Signal),
}

/// An error with a known exit code and, usually, advice on what to do next.
#[derive(Debug)]
pub struct UserError {
    pub kind: Kind,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UserError {}

impl UserError {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        UserError {
            kind,
            message: message.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Shorthand for a failed operation with a hint.
pub fn failed(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    UserError::new(Kind::Failed, message).hint(hint).into()
}

/// Shorthand for a usage error with a hint.
pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    UserError::new(Kind::Usage, message).hint(hint).into()
}

/// Shorthand for an integrity failure with a hint.
pub fn integrity(message: impl Into<String>, hint: impl Into<String>) -> anyhow::Error {
    UserError::new(Kind::Integrity, message).hint(hint).into()
}

/// The interruption error that one-shot commands return after cleanup.
pub fn interrupted(signal: Signal) -> anyhow::Error {
    let name = match signal {
        Signal::Int => "SIGINT",
        Signal::Term => "SIGTERM",
    };
    UserError::new(Kind::Interrupted(signal), format!("interrupted by {name}")).into()
}

/// The 1-based line of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// A TOML file that does not parse, as a usage error: `what` names the
/// file (`ignore file F`), then the line when the parser knows it.
pub fn toml_syntax(what: &str, text: &str, e: &toml::de::Error, hint: &str) -> anyhow::Error {
    let at = match e.span() {
        Some(span) => format!(", line {}", line_of(text, span.start)),
        None => String::new(),
    };
    usage(format!("{what}{at}: {}", e.message().trim_end()), hint)
}

/// Finds the first [`UserError`] in an error's chain.
pub fn find_user_error(err: &anyhow::Error) -> Option<&UserError> {
    err.chain().find_map(|e| e.downcast_ref::<UserError>())
}

/// The exit status for an error.
pub fn exit_for(err: &anyhow::Error) -> Exit {
    match find_user_error(err).map(|u| u.kind) {
        Some(Kind::Usage) => Exit::Usage,
        Some(Kind::Integrity) => Exit::Integrity,
        Some(Kind::Findings) => Exit::Findings,
        Some(Kind::Interrupted(s)) => Exit::Interrupted(s),
        Some(Kind::Failed) | None => Exit::Failed,
    }
}

//! Configuration problems: one [`ConfigError`] per wrong key, collected into [`ConfigErrors`] per file.
//!
//! Invariant: no variant carries the content of a secret file, only its path, size or mode.

use std::fmt;
use std::path::PathBuf;

/// What is wrong, independent of where. The `Display` text is what a technician reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// A file could not be read.
    #[error("cannot read {}: {reason}", path.display())]
    Io { path: PathBuf, reason: String },
    /// The file is not valid TOML; nothing else could be checked.
    #[error("{}:{line}:{column}: TOML syntax error: {message}", file.display())]
    Syntax {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// A key the contract does not define (often a typo).
    #[error("unknown key ({message})")]
    UnknownKey { message: String },
    /// A value of the wrong TOML type.
    #[error("{message}")]
    WrongType { message: String },
    /// A required key is absent.
    #[error("missing; {hint}")]
    Missing { hint: String },
    /// A value of the right type that the contract does not accept.
    #[error("{0}")]
    Invalid(String),
    /// A file named by the configuration does not exist.
    #[error("{} does not exist", path.display())]
    FileMissing { path: PathBuf },
    /// A secret file others could read or change.
    #[error(
        "{} has mode {mode:04o}, readable or writable by group/other; run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    InsecurePermissions { path: PathBuf, mode: u32 },
    /// A secret file with nothing in it (after the trailing newline).
    #[error("{} is empty", path.display())]
    EmptySecret { path: PathBuf },
    /// A file whose content is not in the expected format; `reason` never quotes secret content.
    #[error("{}: {reason}", path.display())]
    BadFile { path: PathBuf, reason: String },
    /// A problem inside another file (a firmware profile) that this key refers to.
    #[error("{}: {error}", file.display())]
    InFile { file: PathBuf, error: Box<ConfigError> },
}

/// One problem, at one key path (`door[1].baud`; `door[0]` is the first `[[door]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Key path; empty when the problem is about the whole file.
    pub key: String,
    /// 1-based line of the key in its file, when known.
    pub line: Option<usize>,
    pub problem: Problem,
}

impl ConfigError {
    pub(crate) fn new(key: impl Into<String>, problem: Problem) -> Self {
        Self {
            key: key.into(),
            line: None,
            problem,
        }
    }

    /// A value problem at `key`.
    pub(crate) fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(key, Problem::Invalid(message.into()))
    }

    /// The same problem, placed at `key` (for helpers that do not know where they were called from).
    pub(crate) fn at(mut self, key: impl Into<String>) -> Self {
        self.key = key.into();
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        write!(f, "{}", self.problem)?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Something that works but probably is not what the installer meant. Never blocks startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// Key path; empty when the warning is about the whole file.
    pub key: String,
    /// 1-based line of the key, when known.
    pub line: Option<usize>,
    pub problem: Problem,
}

impl ConfigWarning {
    pub(crate) fn new(key: impl Into<String>, problem: Problem) -> Self {
        Self {
            key: key.into(),
            line: None,
            problem,
        }
    }
}

impl From<ConfigError> for ConfigWarning {
    fn from(e: ConfigError) -> Self {
        Self {
            key: e.key,
            line: e.line,
            problem: e.problem,
        }
    }
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Same shape as an error so a reader scans one format; the word says which it is.
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        write!(f, "warning: {}", self.problem)?;
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        Ok(())
    }
}

/// Every problem found in one file. Never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    /// The file the problems are in (the config file, or a profile file).
    pub file: PathBuf,
    pub errors: Vec<ConfigError>,
    /// Warnings found alongside the errors (so a report can show everything in one go).
    pub warnings: Vec<ConfigWarning>,
}

impl ConfigErrors {
    pub(crate) fn new(file: impl Into<PathBuf>, errors: Vec<ConfigError>) -> Self {
        Self {
            file: file.into(),
            errors,
            warnings: Vec::new(),
        }
    }

    pub(crate) fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.errors.iter()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "{} is invalid ({n} problem{}):",
            self.file.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.errors {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_display_puts_key_path_first_and_line_last() {
        let mut e = ConfigError::invalid("door[1].baud", "4800 is not an OSDP baud rate");
        assert_eq!(e.to_string(), "door[1].baud: 4800 is not an OSDP baud rate");
        e.line = Some(12);
        assert_eq!(e.to_string(), "door[1].baud: 4800 is not an OSDP baud rate (line 12)");
    }

    #[test]
    fn errors_display_names_the_file_and_every_problem() {
        let errs = ConfigErrors::new(
            "/etc/doorsync/doorsync.toml",
            vec![ConfigError::invalid("a", "one"), ConfigError::invalid("b", "two")],
        );
        let text = errs.to_string();
        assert!(text.starts_with("/etc/doorsync/doorsync.toml is invalid (2 problems):"));
        assert!(text.contains("\n  a: one") && text.contains("\n  b: two"));
    }
}

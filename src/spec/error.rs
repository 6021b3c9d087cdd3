//! Spec errors: what is wrong, where (file:line:col), and what was expected.

use std::path::{Path, PathBuf};

/// A problem with an experiment file, located at a line and column when possible.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{path}: cannot read the experiment file: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{col}: {message}")]
    At { path: PathBuf, line: usize, col: usize, message: String },
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
}

/// 1-based line and column of a byte offset.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Builds located errors for one source file.
pub struct Locator<'a> {
    pub path: &'a Path,
    pub src: &'a str,
    pub doc: toml_edit::ImDocument<&'a str>,
}

/// A step in a key path: a table key or an array index.
#[derive(Debug, Clone)]
pub enum Key {
    Name(String),
    Index(usize),
}

impl From<&str> for Key {
    fn from(s: &str) -> Self {
        Key::Name(s.to_string())
    }
}

impl From<usize> for Key {
    fn from(i: usize) -> Self {
        Key::Index(i)
    }
}

impl Locator<'_> {
    /// An error at the value found by following `keys`, or at the deepest part that exists.
    pub fn at(&self, keys: &[Key], message: impl Into<String>) -> SpecError {
        match self.span_of(keys) {
            Some(offset) => {
                let (line, col) = line_col(self.src, offset);
                SpecError::At { path: self.path.to_path_buf(), line, col, message: message.into() }
            }
            None => SpecError::File { path: self.path.to_path_buf(), message: message.into() },
        }
    }

    /// An error at a byte offset (from a deserializer's span).
    pub fn at_offset(&self, offset: usize, message: impl Into<String>) -> SpecError {
        let (line, col) = line_col(self.src, offset);
        SpecError::At { path: self.path.to_path_buf(), line, col, message: message.into() }
    }

    fn span_of(&self, keys: &[Key]) -> Option<usize> {
        let mut item: &toml_edit::Item = self.doc.as_item();
        let mut best = None;
        for key in keys {
            let next = match key {
                Key::Name(k) => item.get(k.as_str()),
                Key::Index(i) => item.get(*i),
            };
            let Some(next) = next else { break };
            if let Some(span) = next.span() {
                best = Some(span.start);
            }
            item = next;
        }
        best
    }
}

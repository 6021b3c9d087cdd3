//! Input errors: problems with what the user gave (a file, a record, a value), as opposed to
//! failures of the machine. The CLI exits with code 2 for these, 1 for everything else.

use std::path::PathBuf;

/// The text a panic carried (`panic!` with a literal or a formatted message), if any.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> Option<&str> {
    payload.downcast_ref::<String>().map(String::as_str).or_else(|| payload.downcast_ref::<&str>().copied())
}

/// Bad user input outside the experiment spec (data files, protocol files, features).
/// `location` is `path`, `path:line` or `path: record N`, whatever pins the problem down.
#[derive(Debug, thiserror::Error)]
#[error("{location}: {message}")]
pub struct InputError {
    pub location: String,
    pub message: String,
}

impl InputError {
    /// An error about a whole file.
    pub fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> InputError {
        InputError { location: path.into().display().to_string(), message: message.into() }
    }

    /// An error at a 1-based line of a text file.
    pub fn line(path: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> InputError {
        InputError { location: format!("{}:{line}", path.into().display()), message: message.into() }
    }

    /// An error at a 0-based record of a binary or structured file.
    pub fn record(path: impl Into<PathBuf>, record: usize, message: impl Into<String>) -> InputError {
        InputError { location: format!("{}: record {record}", path.into().display()), message: message.into() }
    }
}

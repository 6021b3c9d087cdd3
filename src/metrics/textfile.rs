//! Reading the protocols' text files: the whole file at once, with every problem reported as an
//! [`InputError`] naming the file and the 1-based line. Parsing is on bytes, field by field, so
//! the 15.7M-line IJB-C pair list reads in about a second.

use crate::error::InputError;
use std::path::Path;

/// The bytes of `path`, or an error naming it.
pub fn read(path: &Path) -> Result<Vec<u8>, InputError> {
    std::fs::read(path).map_err(|e| InputError::file(path, format!("cannot read: {e}")))
}

/// Non-empty lines as (1-based line number, bytes without the line ending).
pub fn lines(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix(b"\r").unwrap_or(l)))
        .filter(|(_, l)| l.iter().any(|b| !b.is_ascii_whitespace()))
}

/// Whitespace-separated fields of a line.
pub fn fields(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|b| b.is_ascii_whitespace()).filter(|f| !f.is_empty())
}

/// A line's fields as text, checking the count.
pub fn split_exact<'a>(
    path: &Path,
    line_no: usize,
    line: &'a [u8],
    sep: Option<u8>,
    expect: usize,
    what: &str,
) -> Result<Vec<&'a str>, InputError> {
    let parts: Vec<&[u8]> = match sep {
        None => fields(line).collect(),
        Some(s) => line.split(|&b| b == s).map(|f| f.trim_ascii()).collect(),
    };
    if parts.len() < expect {
        return Err(InputError::line(
            path,
            line_no,
            format!("expected {expect} fields ({what}), found {}: {:?}", parts.len(), String::from_utf8_lossy(line)),
        ));
    }
    parts
        .into_iter()
        .map(|p| std::str::from_utf8(p).map_err(|_| InputError::line(path, line_no, "line is not valid UTF-8 text")))
        .collect()
}

/// Parses a field as `T`, naming the field in the error.
pub fn parse<T: std::str::FromStr>(path: &Path, line_no: usize, field: &str, what: &str) -> Result<T, InputError> {
    field.parse().map_err(|_| InputError::line(path, line_no, format!("expected {what}, found {field:?}")))
}

/// Fast unsigned integer parse for the large files (no sign, digits only).
pub fn parse_u64(field: &[u8]) -> Option<u64> {
    if field.is_empty() || field.len() > 19 {
        return None;
    }
    let mut v: u64 = 0;
    for &b in field {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (b - b'0') as u64;
    }
    Some(v)
}

/// The 1-based line number of the `k`-th (0-based) non-empty line of `path`, for error messages
/// about records found after parsing.
pub fn nth_record_line(path: &Path, k: usize) -> usize {
    read(path).ok().and_then(|b| lines(&b).nth(k).map(|(n, _)| n)).unwrap_or(k + 1)
}

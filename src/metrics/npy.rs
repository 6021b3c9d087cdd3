//! `.npy` feature files: little-endian f32, C order, two dimensions [n, d]. Reads header versions
//! 1.0, 2.0 and 3.0 (the header dict is parsed, not pattern-matched); writes version 1.0, as
//! `numpy.save` does. Anything else — another dtype, big-endian, Fortran order, another rank, a
//! truncated or over-long data section — is an [`InputError`] naming the file.

use super::Features;
use crate::error::InputError;
use std::io::Read;
use std::path::Path;

const MAGIC: &[u8] = b"\x93NUMPY";

/// Reads an f32 [n, d] array.
pub fn read(path: &Path) -> Result<Features, InputError> {
    let err = |m: String| InputError::file(path, m);
    let mut file = std::fs::File::open(path).map_err(|e| err(format!("cannot open: {e}")))?;
    let file_len = file.metadata().map_err(|e| err(format!("cannot read: {e}")))?.len();
    read_from(path, &mut file, file_len)
}

/// Reads an f32 [n, d] array from the bytes of a `.npy` file; `path` only names it in errors.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<Features, InputError> {
    read_from(path, &mut &bytes[..], bytes.len() as u64)
}

/// Reads the array from `file`, `file_len` bytes long, streaming its data section.
fn read_from(path: &Path, file: &mut impl Read, file_len: u64) -> Result<Features, InputError> {
    let err = |m: String| InputError::file(path, m);
    let mut prefix = [0u8; 8];
    read_full(file, &mut prefix).map_err(|e| err(format!("not a .npy file ({e})")))?;
    if &prefix[..6] != MAGIC {
        return Err(err("not a .npy file: it does not start with \\x93NUMPY".into()));
    }
    let (major, minor) = (prefix[6], prefix[7]);
    let header_len = match major {
        1 => {
            let mut b = [0u8; 2];
            read_full(file, &mut b).map_err(|e| err(format!("truncated header ({e})")))?;
            u16::from_le_bytes(b) as usize
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            read_full(file, &mut b).map_err(|e| err(format!("truncated header ({e})")))?;
            u32::from_le_bytes(b) as usize
        }
        _ => return Err(err(format!("unsupported .npy format version {major}.{minor} (expected 1.0, 2.0 or 3.0)"))),
    };
    let prelude = if major == 1 { 10 } else { 12 };
    if (prelude + header_len) as u64 > file_len {
        return Err(err(format!("truncated header: it declares {header_len} bytes, the file has {file_len}")));
    }
    let mut header = vec![0u8; header_len];
    read_full(file, &mut header).map_err(|e| err(format!("truncated header ({e})")))?;
    let header = String::from_utf8(header).map_err(|_| err("the header is not text".into()))?;
    let (rows, dim) = parse_header(&header).map_err(err)?;
    let want = (rows as u64) * (dim as u64) * 4;
    let have = file_len - (prelude + header_len) as u64;
    if have < want {
        return Err(err(format!(
            "truncated data: shape ({rows}, {dim}) needs {want} bytes of f32, the file holds {have} \
             (a partial copy or an interrupted write?)"
        )));
    }
    if have > want {
        return Err(err(format!("{} bytes after the ({rows}, {dim}) array; not a single .npy array", have - want)));
    }
    let mut data = Vec::with_capacity(rows * dim);
    let mut buf = vec![0u8; 1 << 20];
    let mut left = want as usize;
    while left > 0 {
        let take = left.min(buf.len());
        read_full(file, &mut buf[..take]).map_err(|e| err(format!("reading the data: {e}")))?;
        data.extend(buf[..take].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])));
        left -= take;
    }
    Ok(Features::new(rows, dim, data))
}

fn read_full(file: &mut impl Read, buf: &mut [u8]) -> std::io::Result<()> {
    file.read_exact(buf)
}

/// The bytes of a version 1.0 `.npy` file holding `features`.
pub fn encode(features: &Features) -> Vec<u8> {
    let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}", features.rows, features.dim);
    // Magic (6) + version (2) + length (2) + dict + padding + '\n' is a multiple of 64.
    let unpadded = 10 + dict.len() + 1;
    let pad = (64 - unpadded % 64) % 64;
    let header_len = dict.len() + pad + 1;
    let mut out = Vec::with_capacity(10 + header_len + features.data.len() * 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header_len as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', pad));
    out.push(b'\n');
    for v in &features.data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Writes `features` as a `.npy` file (atomically: temporary name, then rename).
pub fn write(path: &Path, features: &Features) -> anyhow::Result<()> {
    crate::store::write_atomic(path, &encode(features))
}

/// Parses the header dict: `{'descr': '<f4', 'fortran_order': False, 'shape': (n, d), }`.
fn parse_header(header: &str) -> Result<(usize, usize), String> {
    let body = header.trim_end_matches(['\n', ' ', '\0']).trim();
    let inner = body
        .strip_prefix('{')
        .and_then(|b| b.strip_suffix('}'))
        .ok_or_else(|| format!("malformed header {body:?}: expected a dict"))?;
    let mut descr = None;
    let mut fortran = None;
    let mut shape = None;
    let mut rest = inner.trim();
    while !rest.is_empty() {
        let (key, after) = quoted(rest).ok_or_else(|| format!("malformed header {body:?}: expected a quoted key"))?;
        let after = after.trim_start().strip_prefix(':').ok_or_else(|| format!("malformed header {body:?}"))?;
        let after = after.trim_start();
        let (value, after) = if after.starts_with('(') {
            let end = after.find(')').ok_or_else(|| format!("malformed header {body:?}: unclosed shape"))?;
            (&after[..=end], &after[end + 1..])
        } else if after.starts_with('\'') || after.starts_with('"') {
            let (_, a) = quoted(after).ok_or_else(|| format!("malformed header {body:?}"))?;
            (&after[..after.len() - a.len()], a)
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim(), &after[end..])
        };
        match key {
            "descr" => descr = Some(value.trim_matches(['\'', '"']).to_string()),
            "fortran_order" => fortran = Some(value.trim().to_string()),
            "shape" => shape = Some(value.to_string()),
            other => return Err(format!("unexpected header key {other:?}")),
        }
        rest = after.trim_start().strip_prefix(',').unwrap_or(after).trim_start();
    }
    let descr = descr.ok_or("header has no 'descr'")?;
    match descr.as_str() {
        "<f4" => {}
        ">f4" => return Err("big-endian f32 ('>f4'); expected little-endian '<f4' (numpy: arr.astype('<f4'))".into()),
        d => return Err(format!("dtype {d:?}; expected little-endian float32 '<f4' (numpy: arr.astype('<f4'))")),
    }
    match fortran.as_deref() {
        Some("False") => {}
        Some("True") => return Err("Fortran order; expected C order (numpy: np.ascontiguousarray(arr))".into()),
        other => return Err(format!("'fortran_order' is {other:?}; expected False")),
    }
    let shape = shape.ok_or("header has no 'shape'")?;
    let dims: Vec<&str> = shape.trim_matches(['(', ')']).split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    let dims: Vec<usize> = dims
        .iter()
        .map(|d| d.trim_end_matches('L').parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("malformed shape {shape}"))?;
    match dims.as_slice() {
        [n, d] => Ok((*n, *d)),
        _ => Err(format!("shape {shape} has {} dimensions; expected 2 ([images, feature dim])", dims.len())),
    }
}

/// A leading quoted string and what follows it.
fn quoted(s: &str) -> Option<(&str, &str)> {
    let q = s.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let end = s[1..].find(q)? + 1;
    Some((&s[1..end], &s[end + 1..]))
}

//! insightface's training packs: MXNet RecordIO (`train.rec`), its index (`train.idx`) and
//! `property` (`classes,height,width`), read with the standard library alone.
//!
//! Framing (dmlc-core's RecordIO): each record is a little-endian u32 magic 0xced7230a, a u32
//! whose upper 3 bits are a continuation flag and lower 29 bits a length, then that many bytes,
//! padded with zeros to a multiple of 4. Flag 0 is a whole record; a record whose data held the
//! magic at an aligned position was split there into parts flagged 1 (first), 2 (middle) and
//! 3 (last), the magic itself dropped, so reading joins the parts with the magic between them.
//! `train.idx` has one `key<TAB>byte offset` line per record.
//!
//! Payload (MXNet's `recordio.pack`): an IRHeader — flag u32, label f32, id u64, id2 u64 — then,
//! when flag > 0, `flag` more f32 labels, then the encoded image. insightface's packs begin with
//! record 0, whose labels (flag > 0) are [first identity record, end of identity records]: the
//! images are records 1 .. that first value, and identity record k (from there on) holds the
//! [start, end) image-record range of identity k. An image's class is its label (the first of
//! its labels when flag > 0). Without that header (flag 0) every indexed record is an image and
//! the identities are found from the labels themselves.
//!
//! A [`RecordSet`] is identities `first..first + count` (at most `images_per_identity` images
//! each), relabelled from 0: it keeps one offset and one label per image and reads each image
//! from disk when a batch needs it. Errors name `train.rec` with the record (its key) and byte
//! offset, or `train.idx` with the line.

use super::{folder, Dataset, Layout};
use crate::error::InputError;
use crate::spec::DataSpec;
use std::borrow::Cow;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The RecordIO record magic.
pub const MAGIC: u32 = 0xced7_230a;
/// Bytes of MXNet's IRHeader (flag u32, label f32, id u64, id2 u64).
pub const IR_HEADER: usize = 24;
/// Bytes read ahead at a record's offset: most 112×112 JPEG records fit in one read.
const READ_AHEAD: usize = 16 << 10;

/// A `train.rec` file opened for reads at any offset (from any thread), or its bytes in memory.
pub struct RecordFile {
    path: PathBuf,
    source: Source,
    len: u64,
}

enum Source {
    File(File),
    Memory(Vec<u8>),
}

impl RecordFile {
    pub fn open(path: &Path) -> Result<RecordFile, InputError> {
        let file = File::open(path).map_err(|e| InputError::file(path, format!("cannot open: {e}")))?;
        let len = file.metadata().map_err(|e| InputError::file(path, format!("cannot read its size: {e}")))?.len();
        Ok(RecordFile { path: path.to_path_buf(), source: Source::File(file), len })
    }

    /// The bytes of a `train.rec` already in memory, errors naming `path`.
    pub fn in_memory(path: &Path, bytes: Vec<u8>) -> RecordFile {
        RecordFile { path: path.to_path_buf(), len: bytes.len() as u64, source: Source::Memory(bytes) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads `len` bytes at `pos`; `Err` says where the file ended.
    fn bytes(&self, pos: u64, len: usize, what: &str) -> Result<Vec<u8>, String> {
        if pos.checked_add(len as u64).is_none_or(|end| end > self.len) {
            return Err(format!(
                "truncated: {what} needs {len} bytes from byte {pos}, but the file ends at byte {}",
                self.len
            ));
        }
        match &self.source {
            Source::File(file) => {
                let mut buf = vec![0u8; len];
                file.read_exact_at(&mut buf, pos).map_err(|e| format!("cannot read byte {pos}: {e}"))?;
                Ok(buf)
            }
            Source::Memory(bytes) => Ok(bytes[pos as usize..pos as usize + len].to_vec()),
        }
    }

    /// The data of the record at byte `offset`, its parts joined; `Err` says what is wrong and where.
    pub fn record_at(&self, offset: u64) -> Result<Vec<u8>, String> {
        self.record_within(offset, READ_AHEAD)
    }

    /// [`RecordFile::record_at`], reading `span` bytes at once first (the distance to the next
    /// record, when the index tells it: then a whole record takes one read and no copy).
    pub fn record_within(&self, offset: u64, span: usize) -> Result<Vec<u8>, String> {
        let ahead = (span as u64).min(self.len.saturating_sub(offset)) as usize;
        let mut window = self.bytes(offset, ahead, "the record")?;
        if let Some(len) = whole_record_len(&window) {
            window.copy_within(8..8 + len, 0);
            window.truncate(len);
            return Ok(window);
        }
        // `n` bytes at `pos`: from the window read ahead where it holds them, else from the file.
        let read = |pos: u64, n: usize, what: &str| -> Result<Cow<[u8]>, String> {
            let at = (pos - offset) as usize;
            match window.get(at..at + n) {
                Some(bytes) => Ok(Cow::Borrowed(bytes)),
                None => self.bytes(pos, n, what).map(Cow::Owned),
            }
        };
        let (mut data, mut pos, mut part) = (Vec::new(), offset, 0usize);
        loop {
            let head = read(pos, 8, "the record header")?;
            let magic = u32::from_le_bytes(head[0..4].try_into().expect("4 bytes"));
            if magic != MAGIC {
                return Err(format!("no RecordIO record at byte {pos} (found 0x{magic:08x}, expected 0x{MAGIC:08x})"));
            }
            let word = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes"));
            let (flag, len) = (word >> 29, (word & ((1 << 29) - 1)) as usize);
            match (part, flag) {
                (0, 0 | 1) | (1.., 2 | 3) => {}
                _ => return Err(format!("record part at byte {pos} has continuation flag {flag} out of sequence")),
            }
            if part > 0 {
                data.extend_from_slice(&MAGIC.to_le_bytes());
            }
            data.extend_from_slice(&read(pos + 8, len, "the record")?);
            if flag == 0 || flag == 3 {
                return Ok(data);
            }
            pos += 8 + len.next_multiple_of(4) as u64;
            part += 1;
        }
    }
}

/// Bytes from `offset` to the next record's offset in `sorted` (or to `file_len`), at most
/// 16 MiB and at least the 8 bytes of a header.
fn span_to_next(sorted: &[u64], file_len: u64, offset: u64) -> u32 {
    let next = sorted.get(sorted.partition_point(|&o| o <= offset)).copied().unwrap_or(file_len);
    (next.max(offset) - offset).clamp(8, 16 << 20) as u32
}

/// The data length of a record held whole (not split) in `window`, which starts at its header.
fn whole_record_len(window: &[u8]) -> Option<usize> {
    let head = window.get(..8)?;
    let word = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes"));
    let len = (word & ((1 << 29) - 1)) as usize;
    let whole = head[..4] == MAGIC.to_le_bytes() && word >> 29 == 0 && window.len() >= 8 + len;
    whole.then_some(len)
}

/// An unpacked record: its labels (the header label, or the `flag` extra labels) and the image.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<'a> {
    pub flag: u32,
    pub labels: Vec<f32>,
    pub image: &'a [u8],
}

/// Splits a record's data into IRHeader labels and image bytes.
pub fn unpack(data: &[u8]) -> Result<Record<'_>, String> {
    if data.len() < IR_HEADER {
        return Err(format!("{} bytes: shorter than an IRHeader ({IR_HEADER} bytes)", data.len()));
    }
    let flag = u32::from_le_bytes(data[0..4].try_into().expect("4 bytes"));
    let label = f32::from_le_bytes(data[4..8].try_into().expect("4 bytes"));
    if flag == 0 {
        return Ok(Record { flag, labels: vec![label], image: &data[IR_HEADER..] });
    }
    let end = IR_HEADER + 4 * flag as usize;
    if data.len() < end {
        return Err(format!("IRHeader says {flag} labels, but the record has {} bytes", data.len()));
    }
    let labels = data[IR_HEADER..end].chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4"))).collect();
    Ok(Record { flag, labels, image: &data[end..] })
}

/// `train.idx`: the byte offset of every record key (`None` where a key is not listed).
pub fn read_index(path: &Path) -> Result<Vec<Option<u64>>, InputError> {
    let bytes = std::fs::read(path).map_err(|e| InputError::file(path, format!("cannot read: {e}")))?;
    parse_index(path, &bytes)
}

/// [`read_index`] on the file's bytes; errors name `path` and the line.
pub fn parse_index(path: &Path, bytes: &[u8]) -> Result<Vec<Option<u64>>, InputError> {
    let text = std::str::from_utf8(bytes).map_err(|e| InputError::file(path, format!("not UTF-8 text: {e}")))?;
    let mut pairs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = line.split_whitespace();
        let parsed = match (fields.next(), fields.next(), fields.next()) {
            (Some(k), Some(o), None) => k.parse::<u64>().ok().zip(o.parse::<u64>().ok()),
            _ => None,
        };
        let Some(pair) = parsed else {
            return Err(InputError::line(path, n + 1, format!("expected `key<TAB>offset`, found {line:?}")));
        };
        pairs.push(pair);
    }
    let max = pairs.iter().map(|p| p.0).max().unwrap_or(0);
    if max as usize > 4 * pairs.len() + 1024 {
        return Err(InputError::file(
            path,
            format!("keys up to {max} for {} records: not a RecordIO index", pairs.len()),
        ));
    }
    let mut offsets = vec![None; max as usize + 1];
    for (k, o) in pairs {
        offsets[k as usize] = Some(o);
    }
    Ok(offsets)
}

/// `property`: (classes, height, width). Its first line is `classes,height,width`; insightface's
/// `RecBuilder` writes the image count on a second line, which is accepted (and must be a count).
pub fn read_property(path: &Path) -> Result<(usize, usize, usize), InputError> {
    let text = std::fs::read_to_string(path).map_err(|e| InputError::file(path, format!("cannot read: {e}")))?;
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("");
    let expected = || InputError::line(path, 1, format!("expected `classes,height,width`, found {first:?}"));
    let values: Vec<usize> =
        first.split(',').map(|v| v.trim().parse::<usize>()).collect::<Result<_, _>>().map_err(|_| expected())?;
    let &[c, h, w] = values.as_slice() else { return Err(expected()) };
    match (lines.next(), lines.next()) {
        (None, _) => {}
        (Some(count), None) if count.parse::<usize>().is_ok() => {}
        (Some(count), None) => {
            return Err(InputError::line(path, 2, format!("expected the image count, found {count:?}")));
        }
        (Some(_), Some(extra)) => {
            return Err(InputError::line(path, 3, format!("expected at most two lines, found {extra:?}")));
        }
    }
    Ok((c, h, w))
}

/// The message for a pack with `available` identities where the spec needs more.
fn too_few_identities(available: usize, spec: &DataSpec) -> String {
    format!(
        "the pack has {available} identities; data.identities + data.heldout_identities needs {}",
        spec.identities + spec.heldout_identities
    )
}

/// Identities `first..first + count` of a pack (at most `images_per_identity` images each), read
/// from disk image by image.
pub struct RecordSet {
    rec: RecordFile,
    /// Per image: record key and byte offset.
    keys: Vec<u32>,
    offsets: Vec<u64>,
    /// Per image: bytes from its offset to the next record's (the file's end for the last).
    spans: Vec<u32>,
    labels: Vec<i64>,
    /// The pack's label of class 0 here (`first`).
    first: usize,
    num_classes: usize,
    channels: usize,
    size: usize,
}

impl RecordSet {
    /// Opens `<dir>/train.rec` and `train.idx` and selects the images of identities
    /// `first..first + count`.
    pub fn open(spec: &DataSpec, dir: &Path, first: usize, count: usize) -> Result<RecordSet, InputError> {
        let (rec_path, idx_path) = (dir.join("train.rec"), dir.join("train.idx"));
        let rec = RecordFile::open(&rec_path)?;
        let index = read_index(&idx_path)?;
        let property = dir.join("property");
        if property.is_file() {
            let (classes, height, width) = read_property(&property)?;
            if classes < first + count {
                return Err(InputError::file(&property, too_few_identities(classes, spec)));
            }
            if height != width {
                return Err(InputError::line(
                    &property,
                    1,
                    format!(
                        "the pack's images are {height}×{width} (height×width); p2sbench trains square images of data.image_size = {}, and would stretch these",
                        spec.image_size
                    ),
                ));
            }
        }
        RecordSet::select(spec, rec, &idx_path, &index, first, count)
    }

    /// Identities `first..first + count` of the pack `rec` with its index `index` (read from
    /// `idx_path`, which errors about missing records name).
    pub fn select(
        spec: &DataSpec,
        rec: RecordFile,
        idx_path: &Path,
        index: &[Option<u64>],
        first: usize,
        count: usize,
    ) -> Result<RecordSet, InputError> {
        let rec_path = rec.path.clone();
        let at = |key: usize| -> Result<u64, InputError> {
            index.get(key).copied().flatten().ok_or_else(|| {
                InputError::file(idx_path, format!("has no record {key}, which {} refers to", rec_path.display()))
            })
        };
        let record = |key: usize| -> Result<Vec<u8>, InputError> {
            let offset = at(key)?;
            rec.record_at(offset).map_err(|m| InputError::record(&rec_path, key, m))
        };
        let header = record(0)?;
        let head = unpack(&header).map_err(|m| InputError::record(&rec_path, 0, m))?;
        let per_identity = spec.images_per_identity;
        let mut chosen: Vec<(u32, u64, i64)> = Vec::new();
        if head.flag > 0 && head.labels.len() >= 2 {
            let (identities_start, identities_end) = (head.labels[0] as usize, head.labels[1] as usize);
            let available = identities_end.saturating_sub(identities_start);
            if available < first + count {
                return Err(InputError::record(&rec_path, 0, too_few_identities(available, spec)));
            }
            for k in 0..count {
                let key = identities_start + first + k;
                let data = record(key)?;
                let range = unpack(&data).map_err(|m| InputError::record(&rec_path, key, m))?;
                let &[start, end, ..] = range.labels.as_slice() else {
                    return Err(InputError::record(&rec_path, key, "an identity record needs [start, end) labels"));
                };
                let (start, end) = (start as usize, end as usize);
                if !(1 <= start && start <= end && end <= identities_start) {
                    return Err(InputError::record(
                        &rec_path,
                        key,
                        format!("identity range [{start}, {end}) is outside the image records 1..{identities_start}"),
                    ));
                }
                for image in (start..end).take(per_identity) {
                    chosen.push((image as u32, at(image)?, k as i64));
                }
            }
        } else {
            // No identity records: every indexed record is an image; classes from the labels.
            for (key, offset) in index.iter().enumerate() {
                let Some(offset) = *offset else { continue };
                let data = rec.record_at(offset).map_err(|m| InputError::record(&rec_path, key, m))?;
                let r = unpack(&data).map_err(|m| InputError::record(&rec_path, key, m))?;
                let label = r.labels[0] as usize;
                if (first..first + count).contains(&label) {
                    chosen.push((key as u32, offset, (label - first) as i64));
                }
            }
            chosen.sort_by_key(|&(key, _, label)| (label, key));
            let mut taken = vec![0usize; count];
            chosen.retain(|&(_, _, label)| {
                taken[label as usize] += 1;
                taken[label as usize] <= per_identity
            });
            if let Some(empty) = taken.iter().position(|&n| n == 0) {
                return Err(InputError::file(
                    &rec_path,
                    format!(
                        "has no image of identity {}; data.identities + data.heldout_identities needs it",
                        first + empty
                    ),
                ));
            }
        }
        let mut sorted_offsets: Vec<u64> = index.iter().flatten().copied().collect();
        sorted_offsets.sort_unstable();
        // A pack cut short (an interrupted copy) is found here, before anything is written:
        // every image must start inside the file, and the last one must be whole.
        for &(key, offset, _) in &chosen {
            if offset.saturating_add(8) > rec.len {
                return Err(InputError::record(
                    &rec_path,
                    key as usize,
                    format!("truncated: the record starts at byte {offset}, but the file ends at byte {}", rec.len),
                ));
            }
        }
        if let Some(&(key, offset, _)) = chosen.iter().max_by_key(|c| c.1) {
            rec.record_at(offset)
                .map_err(|m| InputError::record(&rec_path, key as usize, format!("(byte {offset}) {m}")))?;
        }
        Ok(RecordSet {
            keys: chosen.iter().map(|c| c.0).collect(),
            offsets: chosen.iter().map(|c| c.1).collect(),
            spans: chosen.iter().map(|c| span_to_next(&sorted_offsets, rec.len, c.1)).collect(),
            labels: chosen.iter().map(|c| c.2).collect(),
            rec,
            first,
            num_classes: count,
            channels: spec.channels,
            size: spec.image_size,
        })
    }

    /// (record key, byte offset) of image `i`.
    pub fn record_of(&self, i: usize) -> (usize, u64) {
        (self.keys[i] as usize, self.offsets[i])
    }
}

impl Dataset for RecordSet {
    fn layout(&self) -> Layout<'_> {
        Layout { labels: &self.labels, num_classes: self.num_classes, channels: self.channels, size: self.size }
    }
    fn read(&self, i: usize, out: &mut [u8]) -> Result<(), InputError> {
        let (key, offset) = self.record_of(i);
        let fail = |m: String| InputError::record(self.rec.path(), key, format!("(byte {offset}) {m}"));
        let data = self.rec.record_within(offset, self.spans[i] as usize).map_err(fail)?;
        let record = unpack(&data).map_err(fail)?;
        let label = record.labels[0];
        let expected = (self.labels[i] as usize + self.first) as f32;
        if label != expected {
            return Err(fail(format!("label {label}, but its identity record says {expected}")));
        }
        folder::decode_into(record.image, self.channels, self.size, out).map_err(fail)
    }
}

#[cfg(test)]
mod property_tests {
    use super::read_property;

    #[test]
    fn one_line_and_recbuilders_two_lines_read_and_others_are_located() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("property");
        for (text, expected) in [("40,112,112\n", Ok((40, 112, 112))), ("40,112,112\n480\n", Ok((40, 112, 112)))] {
            std::fs::write(&path, text).unwrap();
            assert_eq!(read_property(&path).map_err(|e| e.to_string()), expected);
        }
        for (text, line, message) in [
            ("40,112\n", 1, "expected `classes,height,width`"),
            ("40,112,112\nmany\n", 2, "expected the image count"),
            ("40,112,112\n480\n3\n", 3, "at most two lines"),
        ] {
            std::fs::write(&path, text).unwrap();
            let e = read_property(&path).unwrap_err().to_string();
            assert!(e.contains(&format!("property:{line}")) && e.contains(message), "{text:?}: {e}");
        }
    }
}

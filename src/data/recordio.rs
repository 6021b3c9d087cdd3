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
//! its labels when flag > 0). Without that header (flag 0) every indexed record is an image.
//! Either way the classes come from the images' own labels, as insightface reads them: the
//! identity records are not read, so a pack whose identity records are missing or disagree with
//! its images trains on what its images say. Opening reads only each image record's header
//! (its framing and IRHeader, [`HEADER_READ`] bytes), never the image.
//!
//! A [`RecordSet`] is identities `first..first + count` (at most `images_per_identity` images
//! each, the first by record key), relabelled from 0: it keeps one offset and one label per image
//! and reads each image from disk when a batch needs it. Errors name `train.rec` with the record (its key) and byte
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
/// Bytes read at a record's offset for its labels: the framing header, the IRHeader and up to
/// 8 extra labels (a record with more, or split inside them, is read whole).
pub const HEADER_READ: usize = 8 + IR_HEADER + 32;

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

    /// The labels of the record at byte `offset`, from its first [`HEADER_READ`] bytes (the whole
    /// record only when its IRHeader and labels do not lie within them).
    pub fn labels_at(&self, offset: u64) -> Result<Vec<f32>, String> {
        let ahead = (HEADER_READ as u64).min(self.len.saturating_sub(offset)) as usize;
        let window = self.bytes(offset, ahead.max(8), "the record header")?;
        let magic = u32::from_le_bytes(window[0..4].try_into().expect("4 bytes"));
        let word = u32::from_le_bytes(window[4..8].try_into().expect("4 bytes"));
        let (flag, len) = (word >> 29, (word & ((1 << 29) - 1)) as usize);
        if magic == MAGIC && flag <= 1 && len >= IR_HEADER && window.len() >= 8 + IR_HEADER {
            let ir_flag = u32::from_le_bytes(window[8..12].try_into().expect("4 bytes")) as usize;
            let end = IR_HEADER + 4 * ir_flag;
            if end <= len && 8 + end <= window.len() {
                return unpack(&window[8..8 + len.min(window.len() - 8)]).map(|r| r.labels);
            }
        }
        let data = self.record_at(offset)?;
        unpack(&data).map(|r| r.labels)
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

/// Bytes from record `key`'s `offset` to the next key's record when that lies after it in the
/// file (to `file_len` for the last key; packs are written in key order), else [`READ_AHEAD`];
/// at most 16 MiB and at least the 8 bytes of a header.
fn span_to_next(index: &RecordIndex, key: usize, file_len: u64, offset: u64) -> u32 {
    let next = match key + 1 < index.len() {
        false => Some(file_len),
        true => index.get(key + 1).filter(|&n| n > offset),
    };
    next.map_or(READ_AHEAD as u64, |n| n - offset).clamp(8, 16 << 20) as u32
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

/// `train.idx` in memory: the byte offset of every record key, 8 bytes a key (a key the file
/// does not list holds `u64::MAX`), so that a pack of millions of records opens in little more
/// memory than its index file takes on disk.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RecordIndex {
    offsets: Vec<u64>,
}

impl RecordIndex {
    const ABSENT: u64 = u64::MAX;

    /// The index of `offsets` by key (`None`: the key is not listed).
    pub fn from_offsets(offsets: impl IntoIterator<Item = Option<u64>>) -> RecordIndex {
        RecordIndex { offsets: offsets.into_iter().map(|o| o.unwrap_or(Self::ABSENT)).collect() }
    }

    /// Keys from 0 to the largest listed.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// The byte offset of record `key`, if the index lists it.
    pub fn get(&self, key: usize) -> Option<u64> {
        self.offsets.get(key).copied().filter(|&o| o != Self::ABSENT)
    }

    /// (key, offset) of every listed record, by key.
    pub fn listed(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.offsets.iter().enumerate().filter(|(_, &o)| o != Self::ABSENT).map(|(k, &o)| (k, o))
    }
}

/// `train.idx`: the byte offset of every record key.
pub fn read_index(path: &Path) -> Result<RecordIndex, InputError> {
    let bytes = std::fs::read(path).map_err(|e| InputError::file(path, format!("cannot read: {e}")))?;
    parse_index(path, &bytes)
}

/// [`read_index`] on the file's bytes; errors name `path` and the line. Two passes over the
/// text (the keys' range, then the offsets), so that nothing but the offsets is held.
pub fn parse_index(path: &Path, bytes: &[u8]) -> Result<RecordIndex, InputError> {
    let text = std::str::from_utf8(bytes).map_err(|e| InputError::file(path, format!("not UTF-8 text: {e}")))?;
    let entries = || {
        text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()).map(|(n, line)| {
            let mut fields = line.split_whitespace();
            let parsed = match (fields.next(), fields.next(), fields.next()) {
                (Some(k), Some(o), None) => k.parse::<u64>().ok().zip(o.parse::<u64>().ok()),
                _ => None,
            };
            parsed.ok_or_else(|| InputError::line(path, n + 1, format!("expected `key<TAB>offset`, found {line:?}")))
        })
    };
    let (mut max, mut count) = (0u64, 0usize);
    for entry in entries() {
        max = max.max(entry?.0);
        count += 1;
    }
    if max as usize > 4 * count + 1024 {
        return Err(InputError::file(path, format!("keys up to {max} for {count} records: not a RecordIO index")));
    }
    let mut offsets = vec![RecordIndex::ABSENT; max as usize + 1];
    for entry in entries() {
        let (k, o) = entry?;
        offsets[k as usize] = o;
    }
    Ok(RecordIndex { offsets })
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
        index: &RecordIndex,
        first: usize,
        count: usize,
    ) -> Result<RecordSet, InputError> {
        let rec_path = rec.path.clone();
        let at = |key: usize| -> Result<u64, InputError> {
            index.get(key).ok_or_else(|| {
                InputError::file(idx_path, format!("has no record {key}, which {} refers to", rec_path.display()))
            })
        };
        let record = |key: usize| -> Result<Vec<u8>, InputError> {
            let offset = at(key)?;
            rec.record_at(offset).map_err(|m| InputError::record(&rec_path, key, m))
        };
        // insightface's header record 0 says where the images end; without it every record is one.
        let header = record(0)?;
        let head = unpack(&header).map_err(|m| InputError::record(&rec_path, 0, m))?;
        let images: Box<dyn Iterator<Item = usize>> = if head.flag > 0 && head.labels.len() >= 2 {
            let (identities_start, identities_end) = (head.labels[0] as usize, head.labels[1] as usize);
            let available = identities_end.saturating_sub(identities_start);
            if available < first + count {
                return Err(InputError::record(&rec_path, 0, too_few_identities(available, spec)));
            }
            Box::new(1..identities_start)
        } else {
            Box::new(index.listed().map(|(key, _)| key))
        };
        // The classes from the images' own labels, each image's header read alone.
        let per_identity = spec.images_per_identity;
        let mut taken = vec![0usize; count];
        // Sized once: vectors grown by doubling would hold up to twice the memory.
        let room = index.len().min(count.saturating_mul(per_identity));
        let (mut keys, mut offsets, mut labels, mut spans) =
            (Vec::with_capacity(room), Vec::with_capacity(room), Vec::with_capacity(room), Vec::with_capacity(room));
        for key in images {
            let offset = at(key)?;
            let labels_here = rec
                .labels_at(offset)
                .map_err(|m| InputError::record(&rec_path, key, format!("(byte {offset}) {m}")))?;
            let label = labels_here[0];
            if !(label >= 0.0 && label.fract() == 0.0) {
                return Err(InputError::record(&rec_path, key, format!("label {label} is not an identity number")));
            }
            let label = label as usize;
            if (first..first + count).contains(&label) && taken[label - first] < per_identity {
                taken[label - first] += 1;
                keys.push(key as u32);
                offsets.push(offset);
                labels.push((label - first) as i64);
                spans.push(span_to_next(index, key, rec.len, offset));
            }
        }
        if let Some(empty) = taken.iter().position(|&n| n == 0) {
            return Err(InputError::file(
                &rec_path,
                format!(
                    "has no image of identity {}; data.identities + data.heldout_identities needs it",
                    first + empty
                ),
            ));
        }
        // Identities in order, each in key order (a pack sorted by identity already is).
        if !labels.windows(2).all(|w| w[0] <= w[1]) {
            let mut order: Vec<u32> = (0..labels.len() as u32).collect();
            order.sort_by_key(|&i| (labels[i as usize], keys[i as usize]));
            keys = order.iter().map(|&i| keys[i as usize]).collect();
            offsets = order.iter().map(|&i| offsets[i as usize]).collect();
            spans = order.iter().map(|&i| spans[i as usize]).collect();
            labels = order.iter().map(|&i| labels[i as usize]).collect();
        }
        // A pack cut short (an interrupted copy) is found here, before anything is written: every
        // image's header was read above, and the last image in the file must be whole.
        if let Some((i, &offset)) = offsets.iter().enumerate().max_by_key(|(_, &o)| o) {
            rec.record_at(offset)
                .map_err(|m| InputError::record(&rec_path, keys[i] as usize, format!("(byte {offset}) {m}")))?;
        }
        Ok(RecordSet {
            keys,
            offsets,
            spans,
            labels,
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
            return Err(fail(format!(
                "label {label}, but it was {expected} when the pack was opened (the file changed)"
            )));
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

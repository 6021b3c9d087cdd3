//! A small writer of insightface/MXNet RecordIO packs (`train.rec`, `train.idx`, `property`), the
//! layout `src/data/recordio.rs` reads: record 0 is a header whose two labels are
//! [first identity record, end of identity records], records 1.. are images (IRHeader with the
//! identity as label, then the encoded image), and identity record k holds the [start, end)
//! image-record range of identity k. Records whose data holds the RecordIO magic at an aligned
//! position are split there into continuation parts, as dmlc-core's writer does.
#![allow(dead_code)]

use std::path::Path;

pub const MAGIC: u32 = 0xced7_230a;

/// An IRHeader (flag, label, id, id2) with `labels` (flag = their count when more than one),
/// then `payload`.
pub fn ir_record(labels: &[f32], id: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let flag = if labels.len() == 1 { 0u32 } else { labels.len() as u32 };
    out.extend_from_slice(&flag.to_le_bytes());
    out.extend_from_slice(&(if flag == 0 { labels[0] } else { 0.0f32 }).to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    if flag > 0 {
        for l in labels {
            out.extend_from_slice(&l.to_le_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

fn part(out: &mut Vec<u8>, flag: u32, bytes: &[u8]) {
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&((flag << 29) | bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// `data` framed as one RecordIO record (split at aligned magics, as dmlc-core writes it).
pub fn frame(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut start, mut flag) = (0usize, 1u32);
    for i in (0..data.len() / 4 * 4).step_by(4) {
        if data[i..i + 4] == MAGIC.to_le_bytes() {
            part(&mut out, flag, &data[start..i]);
            start = i + 4;
            flag = 2;
        }
    }
    part(&mut out, if start == 0 { 0 } else { 3 }, &data[start..]);
    out
}

/// Writes a pack of `identities` (each a list of encoded images) into `dir`; returns the byte
/// offset of every record key. The records lie in the file in key order, as insightface's packs
/// do: header, images, identity records.
pub fn write_pack(dir: &Path, identities: &[Vec<Vec<u8>>], size: usize) -> Vec<u64> {
    write_pack_laid_out(dir, identities, size, false)
}

/// [`write_pack`], laid out otherwise in the file (`train.idx` says where each record is, so the
/// keys are the same): header, identity records, then the images last key first. Cutting the file
/// short then cuts only images, and the first to go are identity 0's (key 1 is the file's last
/// record).
pub fn write_pack_identities_first(dir: &Path, identities: &[Vec<Vec<u8>>], size: usize) -> Vec<u64> {
    write_pack_laid_out(dir, identities, size, true)
}

fn write_pack_laid_out(dir: &Path, identities: &[Vec<Vec<u8>>], size: usize, identities_first: bool) -> Vec<u64> {
    std::fs::create_dir_all(dir).unwrap();
    let images: usize = identities.iter().map(Vec::len).sum();
    let first_identity = images + 1;
    let mut records = vec![ir_record(&[first_identity as f32, (first_identity + identities.len()) as f32], 0, &[])];
    let mut ranges = Vec::new();
    for (label, list) in identities.iter().enumerate() {
        let start = records.len();
        for image in list {
            let key = records.len() as u64;
            records.push(ir_record(&[label as f32], key, image));
        }
        ranges.push((start, records.len()));
    }
    for (start, end) in ranges {
        let key = records.len() as u64;
        records.push(ir_record(&[start as f32, end as f32], key, &[]));
    }
    let mut file_order: Vec<usize> = (0..records.len()).collect();
    if identities_first {
        let image = |key: usize| key != 0 && key < first_identity;
        file_order.sort_by_key(|&key| (image(key), if image(key) { usize::MAX - key } else { key }));
    }
    let (mut rec, mut offsets) = (Vec::new(), vec![0u64; records.len()]);
    for key in file_order {
        offsets[key] = rec.len() as u64;
        rec.extend_from_slice(&frame(&records[key]));
    }
    let idx: String = offsets.iter().enumerate().map(|(key, offset)| format!("{key}\t{offset}\n")).collect();
    std::fs::write(dir.join("train.rec"), rec).unwrap();
    std::fs::write(dir.join("train.idx"), idx).unwrap();
    std::fs::write(dir.join("property"), format!("{},{size},{size}\n", identities.len())).unwrap();
    offsets
}

/// PNG bytes of a grey `size` × `size` image.
pub fn png(pixels: &[u8], size: usize) -> Vec<u8> {
    let img = image::GrayImage::from_raw(size as u32, size as u32, pixels.to_vec()).unwrap();
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageOutputFormat::Png).unwrap();
    out.into_inner()
}

/// JPEG bytes (quality 90) of an RGB `size` × `size` image given as HWC pixels.
pub fn jpeg(rgb: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode(rgb, size as u32, size as u32, image::ColorType::Rgb8)
        .unwrap();
    out
}

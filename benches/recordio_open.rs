//! Opening a headerless RecordIO pack (no header record: the classes come from every record's
//! own label) of a million records: `RecordSet::open` reads each record's header alone, not its
//! image. Prints the wall time of the open and the peak resident memory it added, against the
//! size of `train.idx` (targets: ≤ 10 s, ≤ 2× the index).
//!
//! `cargo bench --bench recordio_open` (or `make bench`); RECORDIO_OPEN_RECORDS (default
//! 1000000) sets the records, RECORDIO_OPEN_DIR where the pack is written (default a temporary
//! directory; the pack is about 0.3 GB).

use p2sbench::data::recordio::{RecordSet, MAGIC};
use p2sbench::data::Dataset;
use std::io::Write;
use std::time::Instant;

/// Images per identity in the pack.
const PER_IDENTITY: usize = 20;
/// Bytes of each record's "image" (never decoded at open; a 112×112 JPEG is ~7 kB).
const PAYLOAD: usize = 200;

fn memory_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with(field)).expect("a memory line");
    line.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()).expect("kB") / 1024.0
}

fn main() {
    let records: usize = std::env::var("RECORDIO_OPEN_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let temp = tempfile::tempdir().expect("a temporary directory");
    let dir = std::env::var("RECORDIO_OPEN_DIR").map_or_else(|_| temp.path().to_path_buf(), Into::into);
    std::fs::create_dir_all(&dir).expect("the pack's directory");
    let written = Instant::now();
    {
        let mut rec = std::io::BufWriter::new(std::fs::File::create(dir.join("train.rec")).expect("train.rec"));
        let mut idx = std::io::BufWriter::new(std::fs::File::create(dir.join("train.idx")).expect("train.idx"));
        let mut offset = 0u64;
        for key in 0..records {
            let label = (key / PER_IDENTITY) as f32;
            let mut data = Vec::with_capacity(24 + PAYLOAD);
            data.extend_from_slice(&0u32.to_le_bytes());
            data.extend_from_slice(&label.to_le_bytes());
            data.extend_from_slice(&(key as u64).to_le_bytes());
            data.extend_from_slice(&0u64.to_le_bytes());
            data.extend(std::iter::repeat_n((key % 251) as u8, PAYLOAD));
            rec.write_all(&MAGIC.to_le_bytes()).unwrap();
            rec.write_all(&(data.len() as u32).to_le_bytes()).unwrap();
            rec.write_all(&data).unwrap();
            writeln!(idx, "{key}\t{offset}").unwrap();
            offset += 8 + data.len() as u64;
        }
    }
    let identities = records / PER_IDENTITY;
    let idx_mib = std::fs::metadata(dir.join("train.idx")).unwrap().len() as f64 / (1 << 20) as f64;
    println!(
        "headerless pack: {records} records ({identities} identities × {PER_IDENTITY}), train.idx {idx_mib:.1} MiB, written in {:.1} s",
        written.elapsed().as_secs_f64()
    );
    let spec: p2sbench::spec::DataSpec = toml::from_str(&format!(
        "kind = \"recordio\"\nidentities = {}\nheldout_identities = 100\nimages_per_identity = {PER_IDENTITY}\nimage_size = 8\n",
        identities - 100
    ))
    .expect("a data table");
    let rss = memory_mib("VmRSS:");
    let t = Instant::now();
    let set = RecordSet::open(&spec, &dir, 0, identities - 100).expect("the pack opens");
    let seconds = t.elapsed().as_secs_f64();
    let added = memory_mib("VmHWM:") - rss;
    println!(
        "open (training identities, every record's header read): {seconds:.2} s (target ≤ 10 s); {} images; peak memory added {added:.1} MiB = {:.2}× train.idx (target ≤ 2×)",
        set.len(),
        added / idx_mib
    );
}

//! insightface RecordIO packs: reading (identity records, split records, labels, exact pixels),
//! training on one with the same results as the same images in memory, augmentation that is a
//! pure function of (seed, epoch, image) whatever the number of decoding threads and across a
//! resume, and clear errors for truncated or corrupt packs.

mod common;

use common::recordio as pack;
use p2sbench::data::recordio::RecordFile;
use p2sbench::data::{self, synthetic};
use p2sbench::runner::{self, RunOptions};
use p2sbench::store::{ExperimentDir, State, TrialStatus};
use p2sbench::train::{self, Checkpointing};
use std::path::Path;
use std::process::Command;

/// Packs the identities of `common::TINY` (training, then held-out) as PNG images into `dir`;
/// returns the experiment text reading them from there, and the byte offset of every record.
fn tiny_pack(dir: &Path) -> (String, Vec<u64>) {
    tiny_pack_with(dir, pack::write_pack)
}

/// One of `common::recordio`'s pack writers: (directory, identities' encoded images, image size)
/// → the byte offset of every record.
type PackWriter = fn(&Path, &[Vec<Vec<u8>>], usize) -> Vec<u64>;

/// [`tiny_pack`], written by `write`.
fn tiny_pack_with(dir: &Path, write: PackWriter) -> (String, Vec<u64>) {
    let spec = common::experiment(common::TINY).trials[0].data.clone();
    let identities: Vec<Vec<Vec<u8>>> = (0..spec.identities + spec.heldout_identities)
        .map(|k| {
            (0..spec.images_per_identity)
                .map(|j| pack::png(&synthetic::render_one(&spec, k, j), spec.image_size))
                .collect()
        })
        .collect();
    let offsets = write(dir, &identities, spec.image_size);
    let text = common::TINY.replace(
        "identities = 12\n",
        &format!("kind = \"recordio\"\npath = \"{}\"\nchannels = 1\nidentities = 12\n", dir.display()),
    );
    (text, offsets)
}

fn run_binary(args: &[&str], file: &Path, out: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_p2sbench")).args(args).arg("--out").arg(out).arg(file).output().unwrap()
}

#[test]
fn records_split_at_the_magic_are_joined_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = b"head".to_vec();
    data.extend(pack::MAGIC.to_le_bytes());
    data.extend(b"middle!!");
    data.extend(pack::MAGIC.to_le_bytes());
    data.extend(b"tail, not aligned");
    let framed = pack::frame(&data);
    assert!(framed.len() > data.len() + 8, "the writer split the record");
    let path = dir.path().join("train.rec");
    std::fs::write(&path, [pack::frame(b"first"), framed].concat()).unwrap();
    let rec = RecordFile::open(&path).unwrap();
    assert_eq!(rec.record_at(0).unwrap(), b"first");
    assert_eq!(rec.record_at(16).unwrap(), data);
    let e = rec.record_at(4).unwrap_err();
    assert!(e.contains("no RecordIO record at byte 4"), "{e}");
}

#[test]
fn a_pack_reads_identities_in_order_and_trains_as_the_same_images_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (text, _) = tiny_pack(&dir.path().join("pack"));
    let exp = common::experiment(&text);
    let spec = &exp.trials[0].data;
    let synthetic_spec = &common::experiment(common::TINY).trials[0].data;
    let train = data::training_set(spec).unwrap();
    assert!(train.in_memory().is_none(), "a pack is read as batches need it");
    let in_memory = synthetic::training_set(synthetic_spec);
    assert_eq!((train.len(), train.num_classes()), (in_memory.len(), in_memory.num_classes));
    assert_eq!(train.class_labels(), in_memory.labels.as_slice());
    let mut image = vec![0u8; 16 * 16];
    train.read(13, &mut image).unwrap();
    assert_eq!(image, in_memory.pixels[13 * 256..14 * 256]);
    let heldout = data::heldout_set(spec).unwrap();
    assert_eq!(heldout.pixels, synthetic::heldout_set(synthetic_spec).pixels);

    // Same pixels, labels, seeds: the same parquet content as the synthetic run, trial ids aside.
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let only = |e: &p2sbench::spec::Experiment| -> Vec<_> {
        e.trials.iter().filter(|t| ["p2sgrad", "arcface"].contains(&t.loss.name.as_str())).cloned().collect()
    };
    let memory_exp = common::experiment(common::TINY);
    runner::run_selected(&exp, &only(&exp), &RunOptions::new(&a)).unwrap();
    runner::run_selected(&memory_exp, &only(&memory_exp), &RunOptions::new(&b)).unwrap();
    let frames = |root: &Path, e: &p2sbench::spec::Experiment| {
        let e = p2sbench::spec::Experiment { trials: only(e), ..e.clone() };
        common::trial_frames(&ExperimentDir::new(root, &e.name), &e)
            .into_iter()
            .map(|df| df.drop("trial").unwrap_or(df))
            .collect::<Vec<_>>()
    };
    assert_eq!(frames(&a, &exp), frames(&b, &memory_exp));
}

#[test]
fn augmentation_is_the_same_for_any_worker_count_and_across_a_resume() {
    let dir = tempfile::tempdir().unwrap();
    let (text, _) = tiny_pack(&dir.path().join("pack"));
    let augmented = |workers: usize| {
        text.replace(
            "seed = 3\n",
            &format!("seed = 3\nworkers = {workers}\nprefetch = 1\n[data.augment]\nflip = true\ncrop = [0.75, 1.0]\n"),
        )
    };
    let (one, two) = (common::experiment(&augmented(1)), common::experiment(&augmented(2)));
    let trial = |e: &p2sbench::spec::Experiment| e.trials.iter().find(|t| t.loss.name == "cosface").unwrap().clone();
    assert_eq!(trial(&one).id(), trial(&two).id(), "workers and prefetch are execution settings");
    let plain = common::experiment(&text);
    let cpu = tch::Device::Cpu;
    let train = |cfg: &p2sbench::spec::TrialConfig, ck: Option<&Checkpointing>, stop_at: Option<i64>| {
        let data = runner::shared_data(cfg).unwrap();
        let set = p2sbench::data::noise::apply(&data.train, &cfg.data, &cfg.noise);
        let evaluation = runner::HeldoutEvaluation { cfg, data: &data, stop: None };
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            train::train_trial(cfg, &set, &evaluation, cpu, ck, &mut |step| {
                assert!(stop_at.is_none_or(|s| step < s), "interrupt")
            })
            .unwrap()
        }))
        .ok()
        .map(|o| (o.resumed_from, common::untimed(o.rows.steps)))
    };
    let reference = train(&trial(&one), None, None).unwrap().1;
    assert_eq!(train(&trial(&two), None, None).unwrap().1, reference, "2 decoding threads, same batches");
    assert_ne!(train(&trial(&plain), None, None).unwrap().1, reference, "the augmentation changed the batches");
    let mut resumable = trial(&two);
    resumable.train.checkpoint_every = 2;
    let ck_dir = tempfile::tempdir().unwrap();
    let id = resumable.id();
    let ck = Checkpointing { dir: ck_dir.path(), trial: &id, stop: None, pause_after: None };
    assert!(train(&resumable, Some(&ck), Some(3)).is_none(), "interrupted after step 3");
    let (resumed_from, resumed) = train(&resumable, Some(&ck), None).unwrap();
    assert_eq!(resumed_from, Some(2), "the rerun did not resume from the step-2 checkpoint");
    assert_eq!(resumed, reference, "resumed from step 2: the same draws");
}

#[test]
fn a_truncated_or_corrupt_pack_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pack");
    let (text, offsets) = tiny_pack(&root);
    let file = dir.path().join("rec.toml");
    std::fs::write(&file, &text).unwrap();
    let rec_path = root.join("train.rec");
    let original = std::fs::read(&rec_path).unwrap();

    // Cut inside the last image record (12 + 8 identities of 8 images: key 160), whose header
    // is read at open (the identity records after it in the file are not read).
    std::fs::write(&rec_path, &original[..offsets[160] as usize + 30]).unwrap();
    let out = dir.path().join("results");
    let run = run_binary(&["run"], &file, &out);
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    let expected = format!("{}: record 160: (byte {}) truncated: the record needs", rec_path.display(), offsets[160]);
    assert!(stderr.contains(&expected), "{expected:?} not in {stderr}");
    assert!(!out.exists(), "nothing is written for a truncated pack");

    // A malformed index line.
    std::fs::write(&rec_path, &original).unwrap();
    let idx = std::fs::read_to_string(root.join("train.idx")).unwrap();
    std::fs::write(root.join("train.idx"), idx.replacen("3\t", "3 x\t", 1)).unwrap();
    let run = run_binary(&["run"], &file, &out);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("train.idx:4: expected `key<TAB>offset`"));
    assert!(!out.exists());
    std::fs::write(root.join("train.idx"), idx).unwrap();

    // A pack of non-square images (RecBuilder's two-line property): refused, not stretched.
    let property = std::fs::read_to_string(root.join("property")).unwrap();
    let classes = property.split(',').next().unwrap().to_string();
    std::fs::write(root.join("property"), format!("{classes},112,96\n500\n")).unwrap();
    let run = run_binary(&["run"], &file, &out);
    assert_eq!(run.status.code(), Some(2));
    let expected = format!("{}:1: the pack's images are 112×96", root.join("property").display());
    assert!(String::from_utf8_lossy(&run.stderr).contains(&expected), "{}", String::from_utf8_lossy(&run.stderr));
    assert!(!out.exists());
    std::fs::write(root.join("property"), property).unwrap();

    // A corrupt training image (record 10): its trial stops naming the record and byte offset.
    let mut corrupt = original.clone();
    let at = offsets[10] as usize + 8 + 24 + 8;
    corrupt[at..at + 8].copy_from_slice(b"garbage!");
    std::fs::write(&rec_path, &corrupt).unwrap();
    let run = run_binary(&["run", "--only", "loss=cosface"], &file, &out);
    assert_eq!(run.status.code(), Some(1), "{}", String::from_utf8_lossy(&run.stderr));
    let trial = std::fs::read_dir(out.join("tiny/trials")).unwrap().next().unwrap().unwrap().path();
    let status = TrialStatus::read(&trial).unwrap();
    assert_eq!(status.state, State::Failed);
    let error = status.error.unwrap();
    assert!(error.contains(&format!("train.rec: record 10: (byte {})", offsets[10])), "{error}");

    // Skipped instead: left out of its batch in each of the 2 epochs, and counted.
    std::fs::write(&file, text.replace("seed = 3\n", "seed = 3\non_bad_image = \"skip\"\n")).unwrap();
    let skipped = dir.path().join("skipped");
    let run = run_binary(&["run", "--only", "loss=cosface"], &file, &skipped);
    assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));
    let trial = std::fs::read_dir(skipped.join("tiny/trials")).unwrap().next().unwrap().unwrap().path();
    let status = TrialStatus::read(&trial).unwrap();
    assert_eq!((status.state, status.skipped_images), (State::Done, 2));
    let table = p2sbench::store::read_parquet(&skipped.join("tiny/trials.parquet")).unwrap();
    let row = common::strings(&table, "trial").iter().position(|t| trial.ends_with(t)).unwrap();
    assert_eq!(table.column("skipped_images").unwrap().u64().unwrap().get(row), Some(2));
    assert_eq!(common::strings(&table, "device")[row], "cpu");
}

#[test]
fn a_pack_cut_inside_its_last_image_is_a_clear_error() {
    // Header and identity records first in the file, the images after them in reverse: a cut
    // loses only the first training identity's images, so the header and identity records read
    // and the checks on the images themselves are reached, before any training.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pack");
    let (text, offsets) = tiny_pack_with(&root, pack::write_pack_identities_first);
    let file = dir.path().join("rec.toml");
    std::fs::write(&file, &text).unwrap();
    let rec_path = root.join("train.rec");
    let original = std::fs::read(&rec_path).unwrap();
    let last = *offsets.iter().max().unwrap();
    assert_eq!(last, offsets[1], "the first image is the file's last record");
    let out = dir.path().join("results");
    let stderr = |cut: u64| {
        std::fs::write(&rec_path, &original[..cut as usize]).unwrap();
        let run = run_binary(&["run"], &file, &out);
        assert_eq!(run.status.code(), Some(2), "{}", String::from_utf8_lossy(&run.stderr));
        assert!(!out.exists(), "nothing is written for a truncated pack");
        String::from_utf8_lossy(&run.stderr).into_owned()
    };
    let cut = last + 30;
    let e = stderr(cut);
    let expected = format!("{}: record 1: (byte {last}) truncated: the record needs", rec_path.display());
    assert!(e.contains(&expected) && e.contains(&format!("the file ends at byte {cut}")), "{expected:?} not in {e}");
    // Cut before the last image's header is whole: its header cannot be read at open.
    let cut = last + 4;
    let e = stderr(cut);
    let expected = format!(
        "{}: record 1: (byte {last}) truncated: the record header needs 8 bytes from byte {last}, but the file ends at byte {cut}",
        rec_path.display()
    );
    assert!(e.contains(&expected), "{expected:?} not in {e}");
    // Whole, the same pack reads: its images are the synthetic ones.
    std::fs::write(&rec_path, &original).unwrap();
    let spec = &common::experiment(&text).trials[0].data;
    let synthetic_spec = &common::experiment(common::TINY).trials[0].data;
    let mut image = vec![0u8; 16 * 16];
    data::training_set(spec).unwrap().read(0, &mut image).unwrap();
    assert_eq!(image, synthetic::training_set(synthetic_spec).pixels[..256]);
    assert_eq!(data::heldout_set(spec).unwrap().pixels, synthetic::heldout_set(synthetic_spec).pixels);
}

#[test]
fn real_data_defaults_to_112_pixel_rgb_and_a_pack_directory_needs_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let text = |extra: &str| {
        format!(
            "name = \"r\"\n[data]\nkind = \"recordio\"\npath = \"{}\"\nidentities = 4\nheldout_identities = 2\nimages_per_identity = 5\n{extra}[train]\nepochs = 1\nbatch_size = 4\n[[loss]]\nname = \"p2sgrad\"\n",
            dir.path().display()
        )
    };
    let data = |extra: &str| {
        p2sbench::spec::parse_with(Path::new("r.toml"), &text(extra), false).unwrap().trials[0].data.clone()
    };
    assert_eq!((data("").image_size, data("").channels), (112, 3));
    assert_eq!((data("image_size = 96\nchannels = 1\n").image_size, data("channels = 1\n").channels), (96, 1));
    let e = p2sbench::spec::parse_with(Path::new("r.toml"), &text(""), true).unwrap_err().to_string();
    assert!(e.contains(&format!("r.toml:4:8: data.path: {} has no train.rec", dir.path().display())), "{e}");
}

#[test]
fn labels_come_from_the_images_when_identity_records_are_missing_or_disagree() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pack");
    let (text, _) = tiny_pack(&root);
    let spec = common::experiment(&text).trials[0].data.clone();
    let read_all = || {
        let set = data::training_set(&spec).unwrap();
        let mut pixels = vec![0u8; set.len() * 16 * 16];
        for (i, chunk) in pixels.chunks_mut(16 * 16).enumerate() {
            set.read(i, chunk).unwrap();
        }
        (set.class_labels().to_vec(), pixels, data::heldout_set(&spec).unwrap().pixels)
    };
    let expected = read_all();
    let idx = std::fs::read_to_string(root.join("train.idx")).unwrap();
    let lines: Vec<&str> = idx.lines().collect();
    // 20 identities of 8 images: records 1..=160 are images, 161..=180 identity records.
    // Missing identity records: the index lists none of them.
    std::fs::write(root.join("train.idx"), lines[..161].join("\n") + "\n").unwrap();
    assert_eq!(read_all(), expected, "identity records missing");
    // Identity records that disagree with the images: each points at the next identity's range.
    let mut shifted = lines.clone();
    shifted[161..181].rotate_left(1);
    let shifted: Vec<String> = (0..181).map(|k| format!("{k}\t{}", shifted[k].split('\t').nth(1).unwrap())).collect();
    std::fs::write(root.join("train.idx"), shifted.join("\n") + "\n").unwrap();
    assert_eq!(read_all(), expected, "identity records that disagree");
}

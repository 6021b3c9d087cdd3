//! Image-folder datasets: loading (identity order, image cap, labels, decoding, channels and
//! size), training on one end to end, and clear errors for unreadable data.

mod common;

use p2sbench::data::{self, synthetic};
use p2sbench::runner::{self, RunOptions};
use p2sbench::spec;
use std::path::Path;
use std::process::Command;

/// Writes `identities` directories of `images` PNG renders of synthetic identities; returns the
/// experiment text that trains on the first four and holds out the rest.
fn make_folder(root: &Path, identities: usize, images: usize) -> String {
    let synthetic_spec = common::experiment(common::TINY).trials[0].data.clone();
    for k in 0..identities {
        let dir = root.join(format!("person_{k:03}"));
        std::fs::create_dir_all(&dir).unwrap();
        for j in 0..images {
            let pixels = synthetic::render_one(&synthetic_spec, k, j);
            let size = synthetic_spec.image_size as u32;
            image::GrayImage::from_raw(size, size, pixels).unwrap().save(dir.join(format!("{j:02}.png"))).unwrap();
        }
    }
    std::fs::write(root.join("README.txt"), "not an identity").unwrap();
    common::TINY
        .replace(
            "identities = 12\nheldout_identities = 8",
            &format!(
                "kind = \"folder\"\npath = \"{}\"\nchannels = 1\nidentities = 4\nheldout_identities = {}",
                root.display(),
                identities - 4
            ),
        )
        .replace("images_per_identity = 8", &format!("images_per_identity = {}", images - 1))
}

#[test]
fn a_folder_dataset_loads_in_name_order_and_trains() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("faces");
    let text = make_folder(&root, 8, 9);
    let exp = common::experiment(&text);
    let spec = &exp.trials[0].data;
    let train = data::training_set(spec).unwrap();
    assert_eq!((train.len(), train.num_classes(), train.size(), train.channels()), (4 * 8, 4, 16, 1));
    assert!(train.in_memory().is_none(), "folder images are read as batches need them");
    assert_eq!(train.class_labels()[..9], [0, 0, 0, 0, 0, 0, 0, 0, 1]);
    let first = synthetic::render_one(&common::experiment(common::TINY).trials[0].data, 0, 0);
    let mut read = vec![0u8; first.len()];
    train.read(0, &mut read).unwrap();
    assert_eq!(read, first, "PNG round trip at the native size is exact");
    let heldout = data::heldout_set(spec).unwrap();
    assert_eq!((heldout.len(), heldout.num_classes), (4 * 8, 4));
    let second = synthetic::render_one(&common::experiment(common::TINY).trials[0].data, 4, 0);
    assert_eq!(&heldout.pixels[..second.len()], second.as_slice(), "held-out identities follow the training ones");

    let out = tempfile::tempdir().unwrap();
    let only_two =
        spec::filter::select(&exp.trials, Some(&spec::filter::Filter::parse("loss=cosface", "--only").unwrap()), None);
    let summaries = runner::run_selected(&exp, &only_two, &RunOptions::new(out.path())).unwrap();
    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[0].state, p2sbench::store::State::Done);
    assert!(summaries[0].lfw_accuracy.is_some());
}

#[test]
fn unreadable_folder_data_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("faces");
    let text = make_folder(&root, 8, 9);
    // A held-out image is decoded before anything is written: exit 2, nothing written.
    std::fs::write(root.join("person_005").join("01.png"), b"not a png").unwrap();
    let file = dir.path().join("folder.toml");
    std::fs::write(&file, &text).unwrap();
    let out = dir.path().join("results");
    let run =
        Command::new(env!("CARGO_BIN_EXE_p2sbench")).args(["run", "--out"]).arg(&out).arg(&file).output().unwrap();
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("person_005/01.png") && stderr.contains("cannot decode"), "{stderr}");
    assert!(!out.exists(), "nothing is written for unreadable data");

    // A training image is read when its batch is due: each trial stops with the file named and
    // the run exits 1 (failed trials); under on_bad_image = "skip" the image is left out and counted.
    std::fs::remove_file(root.join("person_005").join("01.png")).unwrap();
    std::fs::write(root.join("person_002").join("01.png"), b"not a png").unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_p2sbench"))
        .args(["run", "--only", "loss=cosface", "--out"])
        .arg(&out)
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1), "{}", String::from_utf8_lossy(&run.stderr));
    let trials = std::fs::read_dir(out.join("tiny/trials")).unwrap().map(|e| e.unwrap().path()).collect::<Vec<_>>();
    assert_eq!(trials.len(), 1);
    let status = p2sbench::store::TrialStatus::read(&trials[0]).unwrap();
    assert_eq!(status.state, p2sbench::store::State::Failed);
    let error = status.error.unwrap();
    assert!(error.contains("person_002/01.png") && error.contains("cannot decode"), "{error}");

    let skipping = text.replace("images_per_identity", "on_bad_image = \"skip\"\nimages_per_identity");
    std::fs::write(&file, &skipping).unwrap();
    let skipped_out = dir.path().join("skipped");
    let run = Command::new(env!("CARGO_BIN_EXE_p2sbench"))
        .args(["run", "--only", "loss=cosface", "--out"])
        .arg(&skipped_out)
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));
    let trial = std::fs::read_dir(skipped_out.join("tiny/trials")).unwrap().next().unwrap().unwrap().path();
    let status = p2sbench::store::TrialStatus::read(&trial).unwrap();
    assert_eq!(status.state, p2sbench::store::State::Done);
    let epochs = common::experiment(&skipping).trials[0].train.epochs as u64;
    assert_eq!(status.skipped_images, epochs, "the bad image is skipped once per epoch");
    std::fs::write(&file, &text).unwrap();

    let missing = text.replace(&root.display().to_string(), "/nonexistent/faces");
    std::fs::write(&file, missing).unwrap();
    let run =
        Command::new(env!("CARGO_BIN_EXE_p2sbench")).args(["run", "--out"]).arg(&out).arg(&file).output().unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr)
        .contains("folder.toml:4:8: data.path: /nonexistent/faces is not a directory"));
    let dry = Command::new(env!("CARGO_BIN_EXE_p2sbench")).args(["run", "--dry-run"]).arg(&file).output().unwrap();
    assert!(dry.status.success(), "--dry-run checks the form of paths, not their presence");
}

#[test]
fn the_shipped_experiments_validate() {
    let exp = spec::load_with(Path::new("experiments/paper.toml"), false).unwrap();
    assert_eq!(exp.trials.len(), 8);
    let losses: Vec<&str> = exp.trials.iter().map(|t| t.loss.name.as_str()).collect();
    assert_eq!(losses, ["p2sgrad", "softmax", "l2softmax", "normface", "sphereface", "cosface", "arcface", "adacos"]);
    for t in &exp.trials {
        assert_eq!((t.data.kind, t.data.image_size, t.data.channels), (spec::DataKind::Recordio, 112, 3));
        assert_eq!((t.model.backbone, t.model.embedding), (spec::Backbone::Iresnet50, 512));
        assert_eq!((t.train.batch_size, t.train.epochs, t.train.lr_milestones.as_slice()), (512, 34, &[21, 29][..]));
        assert_eq!(t.train.precision, spec::Precision::Amp);
        assert!(t.data.augment.is_some_and(|a| a.flip));
        assert_eq!(t.eval.protocols, ["lfw", "ijbc", "megaface"]);
        assert!(t.eval.lfw.bin.is_some() && t.eval.ijbc.meta.is_some() && t.eval.megaface.distractors.len() == 6);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_p2sbench"))
        .args(["run", "--dry-run", "experiments/paper.toml"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("8 trials"));
    let run = Command::new(env!("CARGO_BIN_EXE_p2sbench")).args(["run", "experiments/paper.toml"]).output().unwrap();
    assert_eq!(run.status.code(), Some(2), "without the data, a real run stops before writing anything");
    assert!(String::from_utf8_lossy(&run.stderr).contains("data.path: /data/faces_webface_112x112 has no train.rec"));
    let trials = |study: &str| spec::load(Path::new("experiments").join(study).as_path()).unwrap().trials.len();
    for (study, count) in [
        ("quickstart.toml", 5),
        ("quickstart_tuning.toml", 18),
        ("sensitivity.toml", 42),
        ("noise.toml", 36),
        ("p2sgrad_capacity.toml", 30),
        ("arcface_degeneracy.toml", 12),
        ("zoo.toml", 13),
        ("p2sgrad_few_classes.toml", 2),
        ("quickstart_search_grid.toml", 48),
        ("quickstart_search_halving.toml", 48),
        ("field_ratio.toml", 48),
        ("partial_fc.toml", 32),
    ] {
        assert_eq!(trials(study), count, "{study}");
    }
    // The two search files differ only in their name and [select]'s method.
    let read = |f: &str| std::fs::read_to_string(Path::new("experiments").join(f)).unwrap();
    let body = |text: String| text.lines().filter(|l| !l.starts_with('#')).map(str::to_string).collect::<Vec<_>>();
    let (grid, halving) = (body(read("quickstart_search_grid.toml")), body(read("quickstart_search_halving.toml")));
    let differ: Vec<(&String, &String)> = grid.iter().zip(&halving).filter(|(a, b)| a != b).collect();
    assert_eq!(grid.len(), halving.len());
    assert!(
        differ.iter().all(|(a, _)| a.starts_with("name") || a.starts_with("description") || a.starts_with("method")),
        "{differ:?}"
    );
    // The studies at the field's ratio: C/D ≥ 16, validated as `run --dry-run` does.
    for (study, groups) in
        [("field_ratio.toml", "8 loss/condition groups"), ("partial_fc.toml", "8 loss/condition groups")]
    {
        let exp = spec::load(Path::new("experiments").join(study).as_path()).unwrap();
        assert!(exp.trials.iter().all(|t| t.data.identities >= 16 * t.model.embedding), "{study}");
        assert_eq!(exp.select.as_ref().unwrap().method, spec::SearchMethod::Halving, "{study}");
        assert!(exp.select.as_ref().unwrap().seeds.len() >= 3, "{study}");
        let out = Command::new(env!("CARGO_BIN_EXE_p2sbench"))
            .args(["run", "--dry-run"])
            .arg(Path::new("experiments").join(study))
            .output()
            .unwrap();
        assert!(out.status.success(), "{study}: {}", String::from_utf8_lossy(&out.stderr));
        let listed = String::from_utf8_lossy(&out.stdout);
        assert!(listed.contains(groups) && listed.contains("successive halving"), "{study}: {listed}");
    }
    // Partial FC's rates put K at 16D, 4D, D and D/2.
    let exp = spec::load(Path::new("experiments/partial_fc.toml")).unwrap();
    let d = exp.trials[0].model.embedding;
    let sampled: std::collections::BTreeSet<usize> =
        exp.trials.iter().map(|t| t.model.sampled_classes(t.data.identities)).collect();
    assert_eq!(sampled.into_iter().collect::<Vec<_>>(), vec![d / 2, d, 4 * d, 16 * d]);
}

#[test]
fn relative_paths_are_relative_to_the_experiment_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("study").join("faces");
    let text = make_folder(&root, 8, 9).replace(&root.display().to_string(), "faces");
    let file = dir.path().join("study").join("folder.toml");
    std::fs::write(&file, &text).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_p2sbench"))
        .current_dir(elsewhere.path())
        .args(["run", "--only", "loss=cosface", "--out", "results"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));
    let exp = spec::load(&file).unwrap();
    let trial = exp.trials.iter().find(|t| t.loss.name == "cosface").unwrap();
    assert_eq!(trial.data.path.as_deref(), Some(root.as_path()), "recorded as the file's directory + faces");
    let config = elsewhere.path().join("results/tiny/trials").join(trial.id()).join("config.toml");
    assert!(std::fs::read_to_string(config).unwrap().contains(&root.display().to_string()));
}

#[test]
fn a_batch_larger_than_the_folder_is_an_input_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("faces");
    // 4 training identities × 2 images = 8 images, fewer than the batch of 16.
    let text = make_folder(&root, 6, 2).replace("images_per_identity = 1", "images_per_identity = 8");
    let file = dir.path().join("small.toml");
    std::fs::write(&file, &text).unwrap();
    let out = dir.path().join("results");
    let run =
        Command::new(env!("CARGO_BIN_EXE_p2sbench")).args(["run", "--out"]).arg(&out).arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("faces") && stderr.contains("train.batch_size 16 is more than the 8 training images"),
        "{stderr}"
    );
    assert!(!out.exists(), "nothing written");
}

//! `p2sbench eval` end to end: LFW on the real View 2 pairs.txt with an LFW-shaped image
//! directory built for exactly its names (features route with a worked-out accuracy, and the
//! model route against the in-process pipeline), IJB-C on a meta directory, MegaFace on a devkit
//! layout, and exit code 2 with file and line for bad input.

mod common;

use common::at_angles;
use p2sbench::data::images;
use p2sbench::metrics::megaface::formats;
use p2sbench::metrics::{lfw, npy, Features};
use p2sbench::model::Network;
use p2sbench::spec::FlipMode;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn p2sbench(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_p2sbench")).args(args).output().expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn json(args: &[&str]) -> Value {
    let (code, out, err) = p2sbench(args);
    assert_eq!(code, 0, "p2sbench {args:?} failed: {err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not one JSON object ({e}): {out}"))
}

fn metric(v: &Value, name: &str) -> f64 {
    v["metrics"][name].as_f64().unwrap_or_else(|| panic!("no metric {name} in {v}"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The real LFW View 2 pairs.txt, shipped with the tests (tests/data/lfw/README.md).
fn real_pairs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/lfw/pairs.txt")
}

/// 16×16 grey JPEGs: a gradient plus noise, 97 variants (encoding one per image would dominate the test).
fn jpegs() -> Vec<Vec<u8>> {
    (0..97u64)
        .map(|k| {
            let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(k);
            let px: Vec<u8> = (0..256)
                .map(|i| ((k * 2) as u8).saturating_add((i % 16) as u8 * 3).saturating_add(r.gen_range(0..20)))
                .collect();
            let mut out = Vec::new();
            let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
            encoder.encode(&px, 16, 16, image::ColorType::L8).unwrap();
            out
        })
        .collect()
}

#[test]
fn lfw_on_the_real_pairs_file_and_an_lfw_shaped_directory() {
    let pairs_path = real_pairs();
    let dir = tempfile::tempdir().unwrap();
    let pairs = lfw::read_pairs(&pairs_path).unwrap();
    assert_eq!((pairs.folds, pairs.per_fold, pairs.pairs.len()), (10, 300, 6000));
    let (names, _) = lfw::unique_images(&pairs);
    let root = dir.path().join("lfw");
    let variants = jpegs();
    for (i, n) in names.iter().enumerate() {
        let path = root.join(n);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &variants[(i * 31 + n.len()) % variants.len()]).unwrap();
    }

    // Features route. Every image of a person gets the person's unit vector, so matched pairs are
    // at distance 0 and mismatched ones near 2 — except that in fold k the first k matched pairs
    // whose two images appear in no other pair get the opposite vector as second image (distance
    // 4, above every threshold of the grid). Each fold's threshold is then 0.01 (the first that is
    // right on every other pair of the other folds), and fold k scores 1 − k/600.
    let mut uses = std::collections::HashMap::new();
    for p in &pairs.pairs {
        *uses.entry(p.left.clone()).or_insert(0) += 1;
        *uses.entry(p.right.clone()).or_insert(0) += 1;
    }
    let mut corrupt = std::collections::HashSet::new();
    for k in 0..10 {
        let isolated = pairs.pairs[k * 600..k * 600 + 300].iter().filter(|p| uses[&p.left] == 1 && uses[&p.right] == 1);
        corrupt.extend(isolated.take(k).map(|p| p.right.clone()));
    }
    assert_eq!(corrupt.len(), 45);
    let dim = 64;
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let unit = |r: &mut rand_chacha::ChaCha8Rng| -> Vec<f32> {
        let v: Vec<f32> = (0..dim).map(|_| r.gen_range(-1.0f32..1.0)).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    };
    let mut person: std::collections::HashMap<&str, Vec<f32>> = Default::default();
    let mut listed = names.clone();
    listed.reverse(); // the list's order is not the pairs' order
    let mut data = Vec::new();
    for n in &listed {
        let who = n.split('/').next().unwrap();
        let v = person.entry(who).or_insert_with(|| unit(&mut r)).clone();
        data.extend(if corrupt.contains(n) { v.iter().map(|x| -x).collect() } else { v });
    }
    let features = dir.path().join("f.npy");
    npy::write(&features, &Features::new(listed.len(), dim, data)).unwrap();
    let list = dir.path().join("images.txt");
    std::fs::write(&list, listed.join("\n")).unwrap();
    let v = json(&["eval", "lfw", "--pairs", s(&pairs_path), "--features", s(&features), "--list", s(&list), "--json"]);
    let per_fold: Vec<f64> = (0..10).map(|k| 1.0 - k as f64 / 600.0).collect();
    let mean = per_fold.iter().sum::<f64>() / 10.0;
    let std = (per_fold.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / 10.0).sqrt();
    assert_eq!(v["protocol"], "lfw");
    assert!((metric(&v, "accuracy_mean") - mean).abs() < 1e-12, "{v}");
    assert!((metric(&v, "accuracy_std") - std).abs() < 1e-12, "{v}");
    assert_eq!(v["variant"]["pairs"], 6000);
    assert_eq!(v["variant"]["distance"], "squared-l2-normalised");

    // Model route: a trial directory (config + checkpoint) embeds the directory's JPEGs. Its
    // exported features, scored through the features route, give the same numbers, and their
    // rows are what the checkpoint's network (seed 3, not the config's seed 1) makes of the files.
    let exp = p2sbench::spec::parse(Path::new("t.toml"), EXP).unwrap();
    let cfg = &exp.trials[0];
    let trial_dir = dir.path().join("trial");
    std::fs::create_dir_all(&trial_dir).unwrap();
    std::fs::write(trial_dir.join("config.toml"), toml::to_string(cfg).unwrap()).unwrap();
    let net = Network::new(&cfg.model, 1, 16, cfg.data.identities, false, 3, tch::Device::Cpu);
    let sgd = p2sbench::train::sgd::Sgd::new(&net.vs, 0.9, 0.0, 0.1);
    let rows = p2sbench::train::checkpoint::Rows::default();
    let state =
        p2sbench::train::checkpoint::State { step: 0, loss_state: &[], skipped: 0, scaler: None, eval_pending: false };
    p2sbench::train::checkpoint::save(&trial_dir.join("checkpoint"), "t", &net.vs, &sgd, &state, &rows).unwrap();
    let exported = dir.path().join("exported.npy");
    let args = ["eval", "lfw", "--pairs", s(&pairs_path), "--images", s(&root), "--model", s(&trial_dir)];
    let v = json(
        &[&args[..], &["--device", "cpu", "--batch", "2048", "--export-features", s(&exported), "--json"]].concat(),
    );
    assert_eq!(v["variant"]["flip"], "sum");
    assert!((0.0..=1.0).contains(&metric(&v, "accuracy_mean")));
    let exported_list = dir.path().join("exported.txt");
    assert_eq!(lfw::read_list(&exported_list).unwrap(), names);
    let again = json(&[
        "eval",
        "lfw",
        "--pairs",
        s(&pairs_path),
        "--features",
        s(&exported),
        "--list",
        s(&exported_list),
        "--json",
    ]);
    assert_eq!(again["metrics"], v["metrics"]);
    let rows = npy::read(&exported).unwrap();
    let set = images::load_files(&root, &names[..64], 1, 16).unwrap();
    let direct = p2sbench::extract::features::extract_features(&net, &set, FlipMode::Sum, 64, tch::Device::Cpu, false);
    assert_eq!(&rows.data[..64 * rows.dim], &direct.data[..]);

    // A missing image is exit code 2 naming it.
    std::fs::remove_file(root.join(&names[17])).unwrap();
    let (code, _, err) = p2sbench(&[&args[..], &["--device", "cpu", "--batch", "2048"]].concat());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&names[17]), "{err}");
}

const EXP: &str = r#"name = "t"
[data]
identities = 5
heldout_identities = 2
images_per_identity = 2
image_size = 16
[model]
widths = [4, 8]
embedding = 8
[train]
epochs = 1
batch_size = 4
[[loss]]
name = "p2sgrad"
"#;

#[test]
fn lfw_bad_input_exits_2_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = dir.path().join("pairs.txt");
    std::fs::write(&pairs, "2 1\nA 1 2\nA 1 B 1\nB 1 2\nA 2 B x\n").unwrap();
    let list = dir.path().join("list.txt");
    std::fs::write(&list, "A/A_0001.jpg\nA/A_0002.jpg\nB/B_0001.jpg\nB/B_0002.jpg\n").unwrap();
    let f = dir.path().join("f.npy");
    npy::write(&f, &Features::new(3, 2, vec![0.0; 6])).unwrap();
    let (code, _, err) = p2sbench(&["eval", "lfw", "--pairs", s(&pairs), "--features", s(&f), "--list", s(&list)]);
    assert_eq!(code, 2);
    assert!(err.contains("pairs.txt:5") && err.contains("\"x\""), "{err}");
    std::fs::write(&pairs, "2 1\nA 1 2\nA 1 B 1\nB 1 2\nA 2 B 2\n").unwrap();
    let (code, _, err) = p2sbench(&["eval", "lfw", "--pairs", s(&pairs), "--features", s(&f), "--list", s(&list)]);
    assert_eq!(code, 2);
    assert!(err.contains("f.npy") && err.contains("3 feature rows") && err.contains("4"), "{err}");
    let bytes = npy::encode(&Features::new(4, 2, vec![1.0; 8]));
    std::fs::write(&f, &bytes[..bytes.len() - 5]).unwrap();
    let (code, _, err) = p2sbench(&["eval", "lfw", "--pairs", s(&pairs), "--features", s(&f), "--list", s(&list)]);
    assert_eq!(code, 2);
    assert!(err.contains("truncated data"), "{err}");
    let (code, _, err) = p2sbench(&[
        "eval",
        "lfw",
        "--pairs",
        s(&dir.path().join("absent.txt")),
        "--features",
        s(&f),
        "--list",
        s(&list),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("absent.txt") && err.contains("cannot read"), "{err}");
}

#[test]
fn lfw_bin_pack_with_features_in_pack_order() {
    // The worked example of tests/eval_metrics.rs: two folds, squared L2 distances 0.105, 0.505,
    // 1.005, 0.305 | 0.075, 1.205, 2.005, 1.505 → fold accuracies 0.5 and 0.75.
    let dir = tempfile::tempdir().unwrap();
    let dist = [0.105f64, 0.505, 1.005, 0.305, 0.075, 1.205, 2.005, 1.505];
    let same = [true, true, false, false, true, true, false, false];
    let angles: Vec<f64> = dist.iter().flat_map(|&d| [0.0, (1.0 - d / 2.0).acos().to_degrees()]).collect();
    let f = dir.path().join("f.npy");
    npy::write(&f, &Features::new(16, 2, at_angles(&angles))).unwrap();
    // Short records and records of 256 bytes or more (a 4-byte length in the pickle).
    let images: Vec<Vec<u8>> = (0..16u8).map(|k| vec![k; if k % 2 == 0 { 3 } else { 300 }]).collect();
    let bin = dir.path().join("pack.bin");
    std::fs::write(&bin, common::pickle_pack(&images, &same)).unwrap();
    let v = json(&["eval", "lfw", "--bin", s(&bin), "--features", s(&f), "--folds", "2", "--json"]);
    assert_eq!(metric(&v, "accuracy_mean"), 0.625);
    assert_eq!(metric(&v, "accuracy_std"), 0.125);
    // 15 feature rows for 16 images.
    npy::write(&f, &Features::new(15, 2, vec![0.5; 30])).unwrap();
    let (code, _, err) = p2sbench(&["eval", "lfw", "--bin", s(&bin), "--features", s(&f)]);
    assert_eq!(code, 2);
    assert!(err.contains("15 feature rows") && err.contains("pack.bin has 16"), "{err}");
}

#[test]
fn ijbc_meta_directory_one_to_one_and_one_to_n() {
    let dir = tempfile::tempdir().unwrap();
    let meta = dir.path().join("meta");
    std::fs::create_dir_all(&meta).unwrap();
    // Template t has one image at angle a_t; scores as in tests/eval_metrics.rs: genuine 0.9, 0.7;
    // impostors 0.8, 0.1, 0.524.
    let deg = |c: f64| c.acos().to_degrees();
    let angles = [0.0, deg(0.9), deg(0.8), deg(0.7), deg(0.1)];
    let tid: String = (1..=5).map(|t| format!("{t}.jpg {t} {}\n", 50 + t)).collect();
    std::fs::write(meta.join("ijbc_face_tid_mid.txt"), tid).unwrap();
    std::fs::write(meta.join("ijbc_template_pair_label.txt"), "1 2 1\n1 3 0\n1 4 1\n1 5 0\n2 5 0\n").unwrap();
    let pts: String = (1..=5).map(|t| format!("{t}.jpg 1 2 3 4 5 6 7 8 9 10 0.{t}\n")).collect();
    std::fs::write(meta.join("ijbc_name_5pts_score.txt"), pts).unwrap();
    let f = dir.path().join("f.npy");
    npy::write(&f, &Features::new(5, 2, at_angles(&angles))).unwrap();
    let v = json(&["eval", "ijbc", "--meta", s(dir.path()), "--features", s(&f), "--json"]);
    assert_eq!(v["protocol"], "ijbc");
    assert_eq!(metric(&v, "tar@far=1e-4"), 0.5);
    assert!((metric(&v, "auc") - 5.0 / 6.0).abs() < 1e-12);
    assert!(v["metrics"].get("rank1").is_none(), "no 1:N files, no 1:N metrics: {v}");
    assert_eq!(v["variant"]["image_norm"], "l2-normalised");
    assert_eq!(v["variant"]["detector_score_weighting"], false);
    // One image per template: weighting and norms do not change the scores.
    let w = json(&["eval", "ijbc", "--meta", s(&meta), "--features", s(&f), "--scores", "--keep-norm", "--json"]);
    assert_eq!(w["metrics"], v["metrics"]);
    assert_eq!(
        (w["variant"]["image_norm"].as_str(), w["variant"]["detector_score_weighting"].as_bool()),
        (Some("kept"), Some(true))
    );

    // 1:N: G1 enrols subjects 7 (template 1) and 8 (template 5), G2 subject 9 (template 4); probes 2
    // (subject 7) and 3 (subject 8) rank 1 and 2 in G1 and are non-mated in G2.
    std::fs::write(meta.join("ijbc_1N_gallery_G1.csv"), "TEMPLATE_ID,SUBJECT_ID,FILENAME\n1,7,a\n5,8,b\n").unwrap();
    std::fs::write(meta.join("ijbc_1N_gallery_G2.csv"), "TEMPLATE_ID,SUBJECT_ID,FILENAME\n4,9,c\n").unwrap();
    std::fs::write(meta.join("ijbc_1N_probe_mixed.csv"), "TEMPLATE_ID,SUBJECT_ID,FILENAME\n2,7,d\n3,8,e\n").unwrap();
    let v = json(&["eval", "ijbc", "--meta", s(&meta), "--features", s(&f), "--json"]);
    assert_eq!(metric(&v, "g1/rank1"), 0.5);
    assert_eq!(metric(&v, "g1/rank5"), 1.0);
    assert!(v["metrics"].get("g2/rank1").is_none());

    // Bad input: a row count that does not match, a pair naming an unknown template, misordered scores.
    npy::write(&f, &Features::new(4, 2, vec![1.0; 8])).unwrap();
    let (code, _, err) = p2sbench(&["eval", "ijbc", "--meta", s(&meta), "--features", s(&f)]);
    assert_eq!(code, 2);
    assert!(err.contains("4 feature rows") && err.contains("ijbc_face_tid_mid.txt has 5"), "{err}");
    std::fs::write(meta.join("ijbc_template_pair_label.txt"), "1 2 1\n1 6 0\n").unwrap();
    let (code, _, err) = p2sbench(&["eval", "ijbc", "--meta", s(&meta), "--features", s(&f)]);
    assert_eq!(code, 2);
    assert!(err.contains("ijbc_template_pair_label.txt:2") && err.contains("template 6"), "{err}");
}

#[test]
fn megaface_devkit_layout_raw_and_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("features");
    // Probes: identity a at 0° and 20°, b at 90° and 130°; distractors at 45°, 100°, 200°, 300°.
    let probes = ["a/a_1.png", "a/a_2.png", "b/b_1.png", "b/b_2.png"];
    let distractors = ["1/x@N00/1_0.jpg", "1/x@N00/2_0.jpg", "2/y@N00/3_0.jpg", "2/y@N00/4_0.jpg"];
    let pf = at_angles(&[0.0, 20.0, 90.0, 130.0]);
    let df = at_angles(&[45.0, 100.0, 200.0, 300.0]);
    let suffix = "_test.bin";
    for (i, p) in probes.iter().enumerate() {
        formats::write_mat(&root.join("facescrub").join(format!("{p}{suffix}")), &pf[2 * i..2 * i + 2]).unwrap();
    }
    for (i, p) in distractors.iter().enumerate() {
        formats::write_mat(&root.join("megaface").join(format!("{p}{suffix}")), &df[2 * i..2 * i + 2]).unwrap();
    }
    let fs = dir.path().join("facescrub.json");
    std::fs::write(&fs, serde_json::json!({"id": ["a", "a", "b", "b"], "path": probes}).to_string()).unwrap();
    let d1 = dir.path().join("megaface_1.json");
    std::fs::write(&d1, serde_json::json!({"path": [distractors[0]]}).to_string()).unwrap();
    let d4 = dir.path().join("megaface_4.json");
    std::fs::write(&d4, serde_json::json!({"path": distractors}).to_string()).unwrap();
    let base = ["eval", "megaface", "--probes", s(&fs), "--distractors", s(&d4), "--distractors", s(&d1)];
    let opts = ["--features-root", s(&root), "--suffix", suffix, "--far", "0.18", "--json"];
    // Worked out in tests/eval_metrics.rs: rank-1 1.0 with {45°}, 0.5 with all four; TAR 0.5 (at most), 1.0 (nearest).
    let v = json(&[&base[..], &opts[..]].concat());
    assert_eq!(metric(&v, "rank1@distractors=1"), 1.0);
    assert_eq!(metric(&v, "rank1@distractors=4"), 0.5);
    assert_eq!(metric(&v, "tar@far=0.18"), 0.5);
    assert_eq!(v["variant"]["cleaning"], "raw");
    let v = json(&[&base[..], &opts[..], &["--far-readout", "nearest"]].concat());
    assert_eq!(metric(&v, "tar@far=0.18"), 1.0);
    // Cleaned: the 100° distractor is on the noise list; without it every mate ranks first.
    let noise = dir.path().join("megaface_noises.txt");
    std::fs::write(&noise, format!("# noises\n{}\n", distractors[1])).unwrap();
    let v = json(&[&base[..], &opts[..], &["--distractor-noise", s(&noise)]].concat());
    assert_eq!(metric(&v, "rank1@distractors=4"), 1.0);
    assert_eq!(v["variant"]["distractors"]["4"], 3);
    assert!(v["variant"]["cleaning"].as_str().unwrap().contains("1 MegaFace distractor entries removed"), "{v}");
    // A missing feature file is exit code 2 naming it.
    std::fs::remove_file(root.join("megaface").join(format!("{}{suffix}", distractors[3]))).unwrap();
    let (code, _, err) = p2sbench(&[&base[..], &opts[..]].concat());
    assert_eq!(code, 2);
    assert!(err.contains(&format!("{}{suffix}", distractors[3])), "{err}");
}

//! Built-in protocol construction from held-out identities (structure, determinism, metrics on
//! features whose answers are known), the training-time suite (its numbers equal to the metric
//! code's on features taken directly, built-in and real files), and `[eval]` validation errors.

mod common;

use common::real_files::{jpeg, wave};
use p2sbench::data::{images, synthetic, ImageSet};
use p2sbench::extract::features::extract_features;
use p2sbench::extract::suite::Suite;
use p2sbench::metrics::builtin::{ijbc_style, megaface_style, IjbcStyleOptions};
use p2sbench::metrics::ijbc::{self, PoolOptions};
use p2sbench::metrics::lfw::{self, Distance, LfwOptions, ThresholdGrid};
use p2sbench::metrics::megaface::{self, DistractorSets, InMemory, MegafaceOptions};
use p2sbench::metrics::roc::FarReadout;
use p2sbench::metrics::verification::{self, Pair};
use p2sbench::metrics::{Features, ProtocolResult};
use p2sbench::model::Network;
use p2sbench::spec::{self, FlipMode};
use rand::SeedableRng;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// `ids` identities with `per` images each, identity-major.
fn labels(ids: i64, per: usize) -> Vec<i64> {
    (0..ids).flat_map(|i| std::iter::repeat_n(i + 100, per)).collect()
}

#[test]
fn megaface_style_splits_identities_and_nests_distractor_sets() {
    let l = labels(10, 5);
    let m = megaface_style(&l, 3, 7);
    assert_eq!(m.probes.len(), 15);
    assert_eq!(m.distractors.len(), 35);
    assert_eq!(m.sizes, vec![10, 35]);
    let probe_ids: BTreeSet<i64> = m.probes.iter().map(|&i| l[i]).collect();
    let distractor_ids: BTreeSet<i64> = m.distractors.iter().map(|&i| l[i]).collect();
    assert_eq!(probe_ids.len(), 3);
    assert!(probe_ids.is_disjoint(&distractor_ids));
    let all: BTreeSet<usize> = m.probes.iter().chain(&m.distractors).copied().collect();
    assert_eq!(all.len(), 50);
    // probe_ids index identities consistently.
    for (k, &i) in m.probes.iter().enumerate() {
        for (k2, &j) in m.probes.iter().enumerate() {
            assert_eq!(m.probe_ids[k] == m.probe_ids[k2], l[i] == l[j]);
        }
    }
    assert_eq!(megaface_style(&l, 3, 7), m);
    assert_ne!(megaface_style(&l, 3, 8), m);
    // At most all but one identity probe.
    assert_eq!(megaface_style(&l, 50, 7).distractors.len(), 5);
}

#[test]
fn ijbc_style_templates_media_pairs_and_galleries() {
    let l = labels(6, 7);
    let opts = IjbcStyleOptions { templates_per_identity: 3, max_media_size: 2, max_impostor_pairs: 1_000 };
    let p = ijbc_style(&l, &opts, 11);
    assert_eq!(p, ijbc_style(&l, &opts, 11));
    assert_ne!(p, ijbc_style(&l, &opts, 12));
    // Each identity's 7 images make three templates of 2, 2 and 3 images; media hold 1 or 2 images of one template.
    let mut owner: HashMap<u32, i64> = HashMap::new();
    let mut sizes: HashMap<u32, usize> = HashMap::new();
    let mut media: HashMap<u32, (u32, usize)> = HashMap::new();
    for (i, (&t, &m)) in p.templates.iter().zip(&p.medias).enumerate() {
        assert!(t > 0 && m > 0, "image {i} has no template or media");
        assert_eq!(*owner.entry(t).or_insert(l[i]), l[i], "template {t} mixes identities");
        *sizes.entry(t).or_default() += 1;
        let e = media.entry(m).or_insert((t, 0));
        assert_eq!(e.0, t, "media {m} spans templates");
        e.1 += 1;
    }
    assert_eq!(owner.len(), 18);
    for id in 100..106 {
        let mut s: Vec<usize> = sizes.iter().filter(|(t, _)| owner[t] == id).map(|(_, &n)| n).collect();
        s.sort();
        assert_eq!(s, vec![2, 2, 3]);
    }
    assert!(media.values().all(|&(_, n)| (1..=2).contains(&n)));
    // Every genuine pair (6 × C(3,2) = 18) and every impostor pair (C(18,2) − 18 = 135).
    let genuine = p.pairs.genuine.iter().filter(|&&g| g).count();
    assert_eq!((genuine, p.pairs.t1.len()), (18, 153));
    for k in 0..p.pairs.t1.len() {
        assert_eq!(owner[&p.pairs.t1[k]] == owner[&p.pairs.t2[k]], p.pairs.genuine[k]);
    }
    // Two galleries of disjoint subjects covering all six; every other template probes.
    let n = p.one_to_n.as_ref().unwrap();
    let g1: BTreeSet<u32> = n.galleries[0].subjects.iter().copied().collect();
    let g2: BTreeSet<u32> = n.galleries[1].subjects.iter().copied().collect();
    assert_eq!((g1.len(), g2.len()), (3, 3));
    assert!(g1.is_disjoint(&g2));
    assert_eq!(n.probes.templates.len(), 12);
    let enrolled: BTreeSet<u32> = n.galleries.iter().flat_map(|g| g.templates.iter().copied()).collect();
    assert!(n.probes.templates.iter().all(|t| !enrolled.contains(t)));
    // A sample of impostors when there are more than allowed.
    let few = ijbc_style(&l, &IjbcStyleOptions { max_impostor_pairs: 50, ..opts }, 11);
    assert_eq!(few.pairs.genuine.iter().filter(|&&g| !g).count(), 50);
    let distinct: BTreeSet<(u32, u32)> = few.pairs.t1.iter().copied().zip(few.pairs.t2.iter().copied()).collect();
    assert_eq!(distinct.len(), 68);

    // Identity one-hot features: genuine scores 1, impostors 0; every TAR, rank and TPIR is 1.
    let feats: Vec<f32> = l.iter().flat_map(|&id| (100..106).map(move |k| if k == id { 1.0 } else { 0.0 })).collect();
    let r = ijbc::evaluate(&p, &Features::new(42, 6, feats), &PoolOptions::default(), FarReadout::Nearest);
    for m in
        ["tar@far=1e-6", "tar@far=1e-1", "auc", "rank1", "rank10", "tpir@fpir=1e-2", "g1/rank1", "g2/tpir@fpir=1e-1"]
    {
        assert_eq!(r.get(m), Some(1.0), "{m}");
    }
}

const EXPERIMENT: &str = r#"name = "evalsuite"
[data]
identities = 4
heldout_identities = 10
images_per_identity = 6
image_size = 16
seed = 5
[model]
widths = [8, 16]
embedding = 16
[train]
epochs = 1
batch_size = 8
device = "cpu"
[[loss]]
name = "p2sgrad"
[eval]
protocols = ["lfw", "megaface", "ijbc"]
[eval.lfw]
folds = 4
pairs_per_fold = 5
[eval.megaface]
probe_identities = 3
far = 1e-2
[eval.ijbc]
templates_per_identity = 2
"#;

/// The features the suite must have scored: `set` embedded by `net` directly, as the suite's
/// settings say (flip = sum, the default), in one batch.
fn embedded(net: &Network, set: &ImageSet) -> Features {
    extract_features(net, set, FlipMode::Sum, 256, tch::Device::Cpu, false)
}

/// LFW's options as `[eval.lfw]` leaves them by default, with `folds`.
fn lfw_options(folds: usize) -> LfwOptions {
    LfwOptions { distance: Distance::SquaredL2, thresholds: ThresholdGrid::default(), folds }
}

fn megaface_options(far: f64) -> MegafaceOptions {
    MegafaceOptions { far, readout: FarReadout::AtMost, block: 4096 }
}

/// Checks the defaults `lfw_options`, `megaface_options` and the IJB-C read-out assume.
fn assert_default_settings(eval: &spec::EvalSpec) {
    assert_eq!(eval.flip, FlipMode::Sum);
    assert_eq!((eval.lfw.distance.as_str(), eval.lfw.thresholds.as_str()), ("squared-l2", "0:4:0.01"));
    assert_eq!((eval.megaface.far_readout.as_str(), eval.ijbc.far_readout.as_str()), ("at-most", "nearest"));
    assert!(!eval.ijbc.keep_norm);
}

/// The metrics of `r` (the protocol's numbers, variant aside).
fn metrics(r: &ProtocolResult) -> &[(String, f64)] {
    &r.metrics
}

#[test]
fn the_suite_runs_every_selected_builtin_protocol() {
    let exp = spec::parse(Path::new("suite.toml"), EXPERIMENT).unwrap();
    let cfg = &exp.trials[0];
    assert_default_settings(&cfg.eval);
    let heldout = synthetic::heldout_set(&cfg.data);
    let suite = Suite::new(&cfg.eval, &cfg.data, &heldout.labels).unwrap();
    let net = Network::new(&cfg.model, 1, 16, 4, false, 1, tch::Device::Cpu);
    let results = suite.run(&cfg.eval, &cfg.data, &net, &heldout, tch::Device::Cpu).unwrap();
    let protocols: Vec<&str> = results.iter().map(|r| r.protocol.as_str()).collect();
    assert_eq!(protocols, vec!["lfw", "megaface", "ijbc"]);
    let (lfw_result, mf, ij) = (&results[0], &results[1], &results[2]);
    for r in &results {
        assert!(r.variant_text().starts_with("source=builtin heldout"), "{}", r.variant_text());
        assert!(r.variant_text().contains("flip=sum"));
        assert!(r.metrics.iter().all(|(_, v)| v.is_finite()));
    }

    // The same numbers as the metric code gives on the held-out features, taken directly, and
    // the protocols built from the held-out labels and data.seed.
    let f = embedded(&net, &heldout);
    let seed = cfg.data.seed;
    let pairs = verification::lfw_style_pairs(&heldout.labels, 4, 5, seed);
    assert_eq!(suite.lfw_pairs(), pairs.as_slice());
    assert_eq!(pairs.len(), 40);
    let (_, expected) = lfw::evaluate(&f, &pairs, &lfw_options(4));
    assert_eq!(metrics(lfw_result), metrics(&expected), "lfw");
    assert!(expected.get("accuracy_mean").is_some_and(|a| a > 0.0 && a < 1.0), "{expected:?}");

    // 3 probe identities (18 images) leave 42 distractors: sets of 10 and 42.
    let m = megaface_style(&heldout.labels, 3, seed);
    assert_eq!(m.sizes, vec![10, 42]);
    let rows = |idx: &[usize]| Features::new(idx.len(), f.dim, idx.iter().flat_map(|&i| f.row(i).to_vec()).collect());
    let distractors = rows(&m.distractors);
    let source = InMemory { data: &distractors.data, dim: f.dim };
    let opts = megaface_options(1e-2);
    let sets = DistractorSets::prefixes(&m.sizes, m.distractors.len());
    let outcomes = megaface::evaluate(&rows(&m.probes), &m.probe_ids, &source, &sets, &opts).unwrap();
    let expected = megaface::result(&outcomes, &opts, "", "");
    assert_eq!(metrics(mf), metrics(&expected), "megaface");
    for name in ["rank1@distractors=10", "rank1@distractors=42", "tar@far=1e-2"] {
        assert!(mf.get(name).is_some(), "{name}: {mf:?}");
    }

    let opts = IjbcStyleOptions {
        templates_per_identity: 2,
        max_media_size: cfg.eval.ijbc.max_media_size,
        max_impostor_pairs: cfg.eval.ijbc.max_impostor_pairs,
    };
    let protocol = ijbc_style(&heldout.labels, &opts, seed);
    let expected = ijbc::evaluate(&protocol, &f, &PoolOptions::default(), FarReadout::Nearest);
    assert_eq!(metrics(ij), metrics(&expected), "ijbc");
    for name in ["tar@far=1e-4", "auc", "rank1", "g1/rank1"] {
        assert!(ij.get(name).is_some(), "{name}: {ij:?}");
    }
    // Same network, same numbers (compared as text: a resample without a mated search leaves a
    // NaN replicate, which is not equal to itself).
    let again = suite.run(&cfg.eval, &cfg.data, &net, &heldout, tch::Device::Cpu).unwrap();
    assert_eq!(format!("{again:?}"), format!("{results:?}"));
}

fn spec_error(edit: (&str, &str)) -> String {
    let text = EXPERIMENT.replace(edit.0, edit.1);
    spec::parse(Path::new("suite.toml"), &text).expect_err("invalid [eval] must be rejected").to_string()
}

#[test]
fn eval_settings_are_validated_with_locations() {
    let line_of = |needle: &str| EXPERIMENT.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let e = spec_error(("far = 1e-2", "far = 2.0"));
    assert!(e.starts_with(&format!("suite.toml:{}:", line_of("far = 1e-2"))) && e.contains("eval.megaface.far"), "{e}");
    let e = spec_error(("\"lfw\", \"megaface\", \"ijbc\"]", "\"lfw\", \"ijbc\", \"lfw\"]"));
    assert!(e.contains("listed twice") && e.starts_with(&format!("suite.toml:{}:", line_of("protocols"))), "{e}");
    let e = spec_error(("probe_identities = 3", "probe_identities = 10"));
    assert!(e.contains("expected 1 to 9"), "{e}");
    let e = spec_error(("templates_per_identity = 2", "templates_per_identity = 7"));
    assert!(e.contains("eval.ijbc.templates_per_identity") && e.contains("2 to 6"), "{e}");
    let e = spec_error(("pairs_per_fold = 5", "pairs_per_fold = 5\npairs = \"/nonexistent/pairs.txt\""));
    assert!(e.contains("also give images"), "{e}");
    let e = spec_error((
        "pairs_per_fold = 5",
        "pairs_per_fold = 5\npairs = \"/nonexistent/pairs.txt\"\nimages = \"/nonexistent\"",
    ));
    assert!(e.contains("/nonexistent/pairs.txt does not exist") && e.starts_with("suite.toml:"), "{e}");
    let e = spec_error(("pairs_per_fold = 5", "pairs_per_fold = 5\ndistance = \"l1\""));
    assert!(e.contains("eval.lfw.distance"), "{e}");
    let e = spec_error(("pairs_per_fold = 5", "pairs_per_fold = 5\nthresholds = \"0:4\""));
    assert!(e.contains("start:stop:step"), "{e}");
    let e = spec_error(("far = 1e-2", "far = 1e-2\nprobes = \"/tmp\""));
    assert!(e.contains("eval.megaface.distractors: missing"), "{e}");
    let e = spec_error(("templates_per_identity = 2", "templates_per_identity = 2\nfar_readout = \"closest\""));
    assert!(e.contains("eval.ijbc.far_readout"), "{e}");
}

#[test]
fn the_suite_reads_real_files_for_every_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let files = common::real_files::write(d);
    let (pack_images, same, probes, all) = (&files.pack_images, &files.same, &files.probes, &files.distractors);
    let (crops, marks, scores, probe_ids) = (&files.crops, &files.landmarks, files.scores.clone(), files.probe_ids);
    let write = |rel: &str, bytes: &[u8]| std::fs::write(d.join(rel), bytes).unwrap();
    let p = |rel: &str| d.join(rel).display().to_string();
    let text = EXPERIMENT
        .replace("pairs_per_fold = 5", &format!("bin = \"{}\"", p("lfw.bin")))
        .replace(
            "far = 1e-2",
            &format!(
                "far = 1e-2\nprobes = \"{}\"\ndistractors = [\"{}\", \"{}\"]\nprobe_images = \"{}\"\ndistractor_images = \"{}\"",
                p("fs.json"),
                p("mf_6.json"),
                p("mf_2.json"),
                p("fs"),
                p("mf")
            ),
        )
        .replace(
            "templates_per_identity = 2",
            &format!("meta = \"{}\"\nimages = \"{}\"\ndetector_scores = true", p("meta"), p("crops")),
        )
        .replace("image_size = 16", "image_size = 16\nchannels = 3");
    let exp = spec::parse(Path::new("real.toml"), &text).unwrap();
    let cfg = &exp.trials[0];
    assert_default_settings(&cfg.eval);
    let heldout = synthetic::heldout_set(&cfg.data);
    let suite = Suite::new(&cfg.eval, &cfg.data, &heldout.labels).unwrap();
    assert!(suite.lfw_pairs().is_empty());
    let net = Network::new(&cfg.model, 3, 16, 4, false, 1, tch::Device::Cpu);
    let results = suite.run(&cfg.eval, &cfg.data, &net, &heldout, tch::Device::Cpu).unwrap();
    let sources: Vec<(String, String)> = results
        .iter()
        .map(|r| (r.protocol.clone(), r.variant.iter().find(|(k, _)| k == "source").unwrap().1.to_string()))
        .collect();
    assert_eq!(sources.len(), 3, "{sources:?}");
    assert!(sources[0].0 == "lfw" && sources[0].1.contains("bin pack"), "{sources:?}");
    assert!(sources[1].0 == "megaface" && sources[1].1.contains("devkit"), "{sources:?}");
    assert!(sources[2].0 == "ijbc" && sources[2].1.contains("5 landmarks"), "{sources:?}");
    assert_eq!(results[2].variant.iter().find(|(k, _)| k == "detector_score_weighting").unwrap().1, true);

    // Each protocol's numbers are the metric code's on features taken directly from the images
    // the test wrote, in the order it wrote them: pair k is images 2k and 2k + 1 of the pack.
    let set = images::load_encoded(&d.join("lfw.bin"), pack_images, 3, 16).unwrap();
    let pairs: Vec<Pair> = same.iter().enumerate().map(|(k, &s)| Pair { a: 2 * k, b: 2 * k + 1, same: s }).collect();
    let (_, expected) = lfw::evaluate(&embedded(&net, &set), &pairs, &lfw_options(4));
    assert_eq!(metrics(&results[0]), metrics(&expected), "lfw");
    let accuracy = expected.get("accuracy_mean").unwrap();
    assert!(accuracy > 0.5 && accuracy < 1.0, "an informative accuracy: {accuracy}");

    // MegaFace: each distractor list scored on its own.
    let probe_features = embedded(&net, &images::load_files(&d.join("fs"), probes, 3, 16).unwrap());
    let opts = megaface_options(1e-2);
    let mut outcomes = Vec::new();
    for list in [&all[..], &all[..2]] {
        let f = embedded(&net, &images::load_files(&d.join("mf"), list, 3, 16).unwrap());
        let source = InMemory { data: &f.data, dim: f.dim };
        let sets = DistractorSets::all(list.len().to_string());
        outcomes.extend(megaface::evaluate(&probe_features, &probe_ids, &source, &sets, &opts).unwrap());
    }
    let expected = megaface::result(&outcomes, &opts, "", "");
    assert_eq!(metrics(&results[1]), metrics(&expected), "megaface");
    assert!(results[1].get("rank1@distractors=6").is_some() && results[1].get("rank1@distractors=2").is_some());

    // IJB-C: each crop aligned by the landmarks written for it, weighted by its score.
    let mut pixels = Vec::new();
    for (crop, lm) in crops.iter().zip(marks) {
        let rgb = image::load_from_memory(crop).unwrap().to_rgb8();
        pixels.extend(p2sbench::metrics::align::align(rgb.as_raw(), 24, 24, lm, 16, 3));
    }
    let aligned = ImageSet { pixels, labels: vec![0; 16], num_classes: 1, channels: 3, size: 16 };
    let (protocol, _) = ijbc::load(&ijbc::MetaFiles::locate(&d.join("meta")).unwrap()).unwrap();
    let pool = PoolOptions { detector_scores: Some(scores), keep_norm: false };
    let expected = ijbc::evaluate(&protocol, &embedded(&net, &aligned), &pool, FarReadout::Nearest);
    assert_eq!(metrics(&results[2]), metrics(&expected), "ijbc");
    assert!(results[2].get("tar@far=1e-1").is_some() && results[2].get("g1/rank1").is_some());

    // A malformed real file stops the suite before any training, naming the file and line.
    write("meta/ijbc_template_pair_label.txt", b"1 2 1\n1 3 maybe\n");
    let e = Suite::new(&cfg.eval, &cfg.data, &heldout.labels).err().expect("a malformed pair list is an error");
    assert!(e.to_string().contains("ijbc_template_pair_label.txt:2"), "{e}");
}

#[test]
fn with_every_protocol_on_real_files_every_identity_trains() {
    // No held-out identities: the LFW .bin pack is the only evaluation, as insightface trains on
    // a whole pack and verifies on .bin files.
    let dir = tempfile::tempdir().unwrap();
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let same: Vec<bool> = (0..16).map(|k| k % 2 == 0).collect();
    let mut images = Vec::new();
    for (k, &s) in same.iter().enumerate() {
        let left = wave(&mut r);
        let right = if s { left } else { wave(&mut r) };
        images.push(jpeg(&left, 40, 2 * k as u64));
        images.push(jpeg(&right, 40, 2 * k as u64 + 1));
    }
    let bin = dir.path().join("lfw.bin");
    std::fs::write(&bin, common::pickle_pack(&images, &same)).unwrap();
    // A second verification set under [eval.bins] (here the same pairs under another name).
    std::fs::copy(&bin, dir.path().join("cfp_fp.bin")).unwrap();
    let text = EXPERIMENT
        .replace("heldout_identities = 10", "heldout_identities = 0")
        .replace("image_size = 16", "image_size = 16\nchannels = 3")
        .replace("protocols = [\"lfw\", \"megaface\", \"ijbc\"]", "protocols = [\"lfw\"]")
        .replace("pairs_per_fold = 5", &format!("bin = \"{}\"", bin.display()))
        + &format!("[eval.bins]\ncfp_fp = \"{}\"\n", dir.path().join("cfp_fp.bin").display());
    let exp = spec::parse(Path::new("all.toml"), &text).unwrap();
    assert_eq!(exp.trials[0].data.heldout_identities, 0);
    let out = dir.path().join("results");
    let summaries = p2sbench::runner::run_experiment(&exp, &p2sbench::runner::RunOptions::new(&out)).unwrap();
    assert_eq!(summaries[0].state, p2sbench::store::State::Done);
    assert!(summaries[0].lfw_accuracy.is_some_and(|a| a.is_finite()), "scored on the .bin pack");
    // cfp_fp is its own protocol, scored as LFW's pack is: the same pairs give the same numbers.
    let root = p2sbench::store::ExperimentDir::new(&out, "evalsuite");
    let evals = p2sbench::store::read_parquet(&root.trial(&summaries[0].id).join("evals.parquet")).unwrap();
    let rows = p2sbench::store::schema::evals_from_frame(&evals).unwrap();
    let of = |protocol: &str| -> Vec<(String, f64)> {
        rows.iter().filter(|r| r.protocol == protocol).map(|r| (r.metric.clone(), r.value)).collect()
    };
    assert!(!of("cfp_fp").is_empty(), "{rows:?}");
    assert_eq!(of("cfp_fp"), of("lfw"));
    let report = std::fs::read_to_string(p2sbench::report::write_report(&root.root).unwrap().markdown).unwrap();
    assert!(report.contains("CFP-FP accuracy"), "{report}");
    // A name taken by a protocol, or a file that is not there, is refused where it is written.
    for (bins, message) in [
        ("megaface = \"x.bin\"", "eval.bins.megaface: expected a name"),
        ("agedb_30 = \"/nonexistent/agedb_30.bin\"", "eval.bins.agedb_30: /nonexistent/agedb_30.bin does not exist"),
    ] {
        let bad = EXPERIMENT.to_string() + "[eval.bins]\n" + bins + "\n";
        let e = spec::parse(Path::new("bins.toml"), &bad).unwrap_err().to_string();
        assert!(e.starts_with("bins.toml:") && e.contains(message), "{e}");
    }
    // A built-in protocol needs held-out identities: then 0 is refused where it is written.
    let builtin = EXPERIMENT.replace("heldout_identities = 10", "heldout_identities = 0");
    let e = spec::parse(Path::new("builtin.toml"), &builtin).unwrap_err().to_string();
    assert!(
        e.starts_with("builtin.toml:4:") && e.contains("0 only when every [eval] protocol runs on real files"),
        "{e}"
    );
}

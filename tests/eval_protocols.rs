//! Built-in protocol construction from held-out identities (structure, determinism, metrics on
//! features whose answers are known), the training-time suite, and `[eval]` validation errors.

use p2sbench::data::synthetic;
use p2sbench::extract::suite::Suite;
use p2sbench::metrics::builtin::{ijbc_style, megaface_style, IjbcStyleOptions};
use p2sbench::metrics::ijbc::{self, PoolOptions};
use p2sbench::metrics::roc::FarReadout;
use p2sbench::metrics::Features;
use p2sbench::model::Network;
use p2sbench::spec;
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
widths = [4]
embedding = 8
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

#[test]
fn the_suite_runs_every_selected_builtin_protocol() {
    let exp = spec::parse(Path::new("suite.toml"), EXPERIMENT).unwrap();
    let cfg = &exp.trials[0];
    let heldout = synthetic::heldout_set(&cfg.data);
    let suite = Suite::new(&cfg.eval, &cfg.data, &heldout.labels).unwrap();
    assert_eq!(suite.lfw_pairs().len(), 40);
    let net = Network::new(&cfg.model, 1, 16, 4, false, 1, tch::Device::Cpu);
    let results = suite.run(&cfg.eval, &cfg.data, &net, &heldout, tch::Device::Cpu).unwrap();
    let protocols: Vec<&str> = results.iter().map(|r| r.protocol.as_str()).collect();
    assert_eq!(protocols, vec!["lfw", "megaface", "ijbc"]);
    let (lfw, mf, ij) = (&results[0], &results[1], &results[2]);
    assert!(lfw.get("accuracy_mean").is_some_and(|a| (0.0..=1.0).contains(&a)));
    // 3 probe identities (18 images) leave 42 distractors: sets of 10 and 42.
    assert!(mf.get("rank1@distractors=10").is_some() && mf.get("rank1@distractors=42").is_some());
    assert!(mf.get("tar@far=1e-2").is_some());
    assert!(ij.get("tar@far=1e-4").is_some() && ij.get("g1/rank1").is_some() && ij.get("rank1").is_some());
    for r in &results {
        assert!(r.variant_text().starts_with("source=builtin heldout"), "{}", r.variant_text());
        assert!(r.variant_text().contains("flip=sum"));
        assert!(r.metrics.iter().all(|(_, v)| v.is_finite()));
    }
    // Same network, same numbers.
    let again = suite.run(&cfg.eval, &cfg.data, &net, &heldout, tch::Device::Cpu).unwrap();
    assert_eq!(again, results);
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

/// 24×24 RGB JPEGs, one colour pattern per `k`.
fn jpeg(k: u8) -> Vec<u8> {
    let px: Vec<u8> =
        (0..24 * 24 * 3).map(|i| (i as u8).wrapping_mul(k | 1).wrapping_add(k.wrapping_mul(37))).collect();
    let mut out = Vec::new();
    let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90);
    encoder.encode(&px, 24, 24, image::ColorType::Rgb8).unwrap();
    out
}

/// A protocol 4 pickle of (list of bytes, list of bools), as Python 3 writes insightface packs.
fn pickle_pack(images: &[Vec<u8>], flags: &[bool]) -> Vec<u8> {
    let mut body = vec![b']', 0x94, b'('];
    for img in images {
        body.push(b'B');
        body.extend((img.len() as u32).to_le_bytes());
        body.extend(img);
        body.push(0x94);
    }
    body.extend([b'e', b']', 0x94, b'(']);
    body.extend(flags.iter().map(|&f| if f { 0x88 } else { 0x89 }));
    body.extend([b'e', 0x86, 0x94, b'.']);
    let mut out = vec![0x80, 4, 0x95];
    out.extend((body.len() as u64).to_le_bytes());
    out.extend(body);
    out
}

#[test]
fn the_suite_reads_real_files_for_every_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let write = |rel: &str, bytes: &[u8]| {
        let p = d.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
    };
    // LFW: a .bin pack of 8 pairs.
    let imgs: Vec<Vec<u8>> = (0..16).map(|k| jpeg(k as u8)).collect();
    write("lfw.bin", &pickle_pack(&imgs, &[true, true, false, false, true, true, false, false]));
    // MegaFace: 4 probes of 2 identities, 6 distractors in two lists.
    for k in 0..4 {
        write(&format!("fs/p{}/{k}.jpg", k / 2), &jpeg(100 + k));
    }
    for k in 0..6 {
        write(&format!("mf/a/b/{k}.jpg",), &jpeg(150 + k));
    }
    let probes: Vec<String> = (0..4).map(|k| format!("p{}/{k}.jpg", k / 2)).collect();
    write("fs.json", serde_json::json!({"id": ["p0", "p0", "p1", "p1"], "path": probes}).to_string().as_bytes());
    let all: Vec<String> = (0..6).map(|k| format!("a/b/{k}.jpg")).collect();
    write("mf_6.json", serde_json::json!({ "path": all }).to_string().as_bytes());
    write("mf_2.json", serde_json::json!({"path": &all[..2]}).to_string().as_bytes());
    // IJB-C: 8 images, 4 templates of 2 subjects; landmarks = ArcFace's template on a 24×24 crop.
    let lm: String = p2sbench::metrics::align::ARCFACE_TEMPLATE
        .iter()
        .map(|p| format!("{} {}", p[0] * 24.0 / 112.0, p[1] * 24.0 / 112.0))
        .collect::<Vec<_>>()
        .join(" ");
    let mut tid = String::new();
    let mut pts = String::new();
    for k in 0..8 {
        write(&format!("crops/{k}.jpg"), &jpeg(200 + k));
        tid.push_str(&format!("{k}.jpg {} {}\n", k / 2 + 1, k + 1));
        pts.push_str(&format!("{k}.jpg {lm} 0.9\n"));
    }
    write("meta/ijbc_face_tid_mid.txt", tid.as_bytes());
    write("meta/ijbc_name_5pts_score.txt", pts.as_bytes());
    write("meta/ijbc_template_pair_label.txt", b"1 2 1\n1 3 0\n2 3 0\n1 4 0\n3 4 1\n");
    write("meta/ijbc_1N_gallery_G1.csv", b"TEMPLATE_ID,SUBJECT_ID\n1,1\n");
    write("meta/ijbc_1N_gallery_G2.csv", b"TEMPLATE_ID,SUBJECT_ID\n3,2\n");
    write("meta/ijbc_1N_probe_mixed.csv", b"TEMPLATE_ID,SUBJECT_ID\n2,1\n4,2\n");
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
    assert!(results[0].get("accuracy_mean").is_some());
    assert!(results[1].get("rank1@distractors=6").is_some() && results[1].get("rank1@distractors=2").is_some());
    assert!(results[2].get("tar@far=1e-1").is_some() && results[2].get("g1/rank1").is_some());
    assert_eq!(results[2].variant.iter().find(|(k, _)| k == "detector_score_weighting").unwrap().1, true);

    // A malformed real file stops the suite before any training, naming the file and line.
    write("meta/ijbc_template_pair_label.txt", b"1 2 1\n1 3 maybe\n");
    let e = Suite::new(&cfg.eval, &cfg.data, &heldout.labels).err().expect("a malformed pair list is an error");
    assert!(e.to_string().contains("ijbc_template_pair_label.txt:2"), "{e}");
}

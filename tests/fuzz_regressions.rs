//! The fuzz targets on stable: every input of the committed seed corpus (`fuzz/seeds/<target>/`)
//! and every crash the fuzzer found (`fuzz/regressions/<target>/`) runs through the same harness
//! functions as `make fuzz` (fuzz/harness.rs), and must neither panic nor fail a check.
//!
//! The seed corpus is generated here: `P2SBENCH_WRITE_SEEDS=1 cargo test --test fuzz_regressions`
//! rewrites fuzz/seeds/; otherwise a test checks that the committed files are exactly these.

mod common;
#[path = "../fuzz/harness.rs"]
mod harness;

use common::npy_bytes;

use p2sbench::metrics::megaface::formats;
use p2sbench::metrics::{npy, Features};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn target(name: &str) -> harness::Target {
    harness::TARGETS.iter().find(|(t, _)| *t == name).unwrap_or_else(|| panic!("no fuzz target {name:?}")).1
}

/// (file name, bytes) of every file in `dir/<target>/`, by target; an unknown target panics.
fn inputs(dir: &Path) -> BTreeMap<String, Vec<(String, Vec<u8>)>> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries {
        let sub = entry.unwrap().path();
        let name = sub.file_name().unwrap().to_string_lossy().into_owned();
        target(&name);
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&sub)
            .unwrap()
            .map(|f| {
                let f = f.unwrap().path();
                (f.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&f).unwrap())
            })
            .collect();
        files.sort();
        out.insert(name, files);
    }
    out
}

/// Runs every input through its target; returns the failures as "dir/target/file: message".
fn replay(dir: &Path) -> (usize, Vec<String>) {
    let mut failures = Vec::new();
    let mut count = 0;
    for (name, files) in inputs(dir) {
        let run = target(&name);
        for (file, bytes) in files {
            count += 1;
            if let Err(panic) = std::panic::catch_unwind(|| run(&bytes)) {
                let msg = p2sbench::error::panic_message(&*panic).unwrap_or_default();
                failures.push(format!("{}/{name}/{file}: {msg}", dir.display()));
            }
        }
    }
    (count, failures)
}

#[test]
fn every_kept_crash_replays_without_a_panic() {
    let (count, failures) = replay(&fuzz_dir().join("regressions"));
    assert!(count > 0, "fuzz/regressions/ holds the crashes found so far");
    assert!(failures.is_empty(), "regressions fail again:\n{}", failures.join("\n"));
}

#[test]
fn the_seed_corpus_replays_and_its_valid_seeds_are_accepted() {
    let (count, failures) = replay(&fuzz_dir().join("seeds"));
    assert!(failures.is_empty(), "seeds fail:\n{}", failures.join("\n"));
    assert_eq!(count, seeds().len());
    for (name, file, bytes) in seeds() {
        let accepted = target(name)(&bytes);
        assert_eq!(accepted, file.starts_with("valid"), "{name}/{file}: accepted = {accepted}");
    }
}

#[test]
fn every_target_has_a_fuzz_target_file_and_seeds() {
    let seeds = inputs(&fuzz_dir().join("seeds"));
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    for (name, _) in harness::TARGETS {
        let file = fuzz_dir().join(format!("fuzz_targets/{name}.rs"));
        let source = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(source.contains(&format!("p2sbench_fuzz::{name}(data)")), "{} runs another target", file.display());
        assert!(manifest.contains(&format!("name = \"{name}\"\npath = \"fuzz_targets/{name}.rs\"")));
        assert!(seeds.get(*name).is_some_and(|s| !s.is_empty()), "no seeds for {name}");
    }
}

#[test]
fn the_committed_seed_corpus_is_the_generated_one() {
    let dir = fuzz_dir().join("seeds");
    if std::env::var_os("P2SBENCH_WRITE_SEEDS").is_some() {
        let _ = std::fs::remove_dir_all(&dir);
        for (name, file, bytes) in seeds() {
            std::fs::create_dir_all(dir.join(name)).unwrap();
            std::fs::write(dir.join(name).join(file), bytes).unwrap();
        }
    }
    let mut want: BTreeMap<String, Vec<(String, Vec<u8>)>> = BTreeMap::new();
    for (name, file, bytes) in seeds() {
        want.entry(name.to_string()).or_default().push((file, bytes));
    }
    want.values_mut().for_each(|v| v.sort());
    assert!(
        inputs(&dir) == want,
        "fuzz/seeds/ differs from the generator; run P2SBENCH_WRITE_SEEDS=1 cargo test --test fuzz_regressions"
    );
}

// ---- the seed corpus: tiny valid examples of every format and a few near misses ----

/// (target, file name, bytes); a name starting with `valid` must be accepted, any other rejected.
fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut add = |target: &'static str, file: &str, bytes: Vec<u8>| out.push((target, file.to_string(), bytes));
    for (file, text) in SPECS {
        add("spec_toml", file, text.as_bytes().to_vec());
    }
    for (file, text) in more_specs() {
        add("spec_toml", &file, text.into_bytes());
    }
    for (file, text) in LFW_PAIRS {
        add("lfw_pairs", file, text.as_bytes().to_vec());
    }
    add(
        "image_list",
        "valid.txt",
        b"Aaron_Eckhart/Aaron_Eckhart_0001.jpg\nZico/Zico_0002.jpg\r\n\n a/b c.png \n".to_vec(),
    );
    add("image_list", "duplicate.txt", b"a/a_0001.jpg\nb/b_0001.jpg\na/a_0001.jpg\n".to_vec());
    add("image_list", "not-utf8.txt", b"a/a_0001.jpg\n\xff\xfe.jpg\n".to_vec());
    for (file, bytes) in bin_packs() {
        add("bin_pack", &file, bytes);
    }
    for (file, bytes) in npys() {
        add("npy", &file, bytes);
    }
    for (file, bytes) in recordio_packs() {
        add("recordio", &file, bytes);
    }
    for (file, text) in MEGAFACE_LISTS {
        add("megaface_list", file, text.as_bytes().to_vec());
    }
    for (file, bytes) in mats() {
        add("megaface_mat", &file, bytes);
    }
    add(
        "megaface_noise",
        "valid-facescrub.txt",
        b"# FaceScrub noise\nAaron_Eckhart_1.png\nname\tAdam_Brody_3.png\n".to_vec(),
    );
    add("megaface_noise", "valid-megaface.txt", b"#images\r\n102/10222/1022282@N07_identity_0.jpg\r\n".to_vec());
    add("megaface_noise", "not-utf8.txt", b"a.jpg\n\xc3\x28\n".to_vec());
    for (file, text) in IJBC {
        let target = file.split('/').next().unwrap();
        add(target, &file[target.len() + 1..], text.as_bytes().to_vec());
    }
    let landmarks = |list: &str, points: &str| [list.as_bytes(), b"\0", points.as_bytes()].concat();
    let list = "1.jpg 1 10\n2.jpg 1 11\n";
    let row = |name: &str, score: &str| format!("{name} 38.3 51.7 73.5 51.5 56.0 71.7 41.5 92.4 70.7 92.2 {score}\n");
    add("ijbc_landmarks", "valid.txt", landmarks(list, &(row("1.jpg", "0.99") + &row("2.jpg", "0.8"))));
    add("ijbc_landmarks", "order.txt", landmarks(list, &(row("2.jpg", "0.99") + &row("1.jpg", "0.8"))));
    add("ijbc_landmarks", "nan.txt", landmarks(list, &(row("1.jpg", "nan") + &row("2.jpg", "0.8"))));
    add("ijbc_landmarks", "short.txt", landmarks(list, &row("1.jpg", "0.99")));
    for (file, bytes) in encoded_images() {
        add("image_decode", &file, bytes);
    }
    for (file, bytes) in onnx_models() {
        add("onnx", &file, bytes);
    }
    out
}

const SPEC_HEAD: &str = "name = \"seed\"\n[data]\nidentities = 4\nheldout_identities = 3\nimages_per_identity = 3\n\
                         [train]\nepochs = 2\nbatch_size = 4\n";

const SPECS: &[(&str, &str)] = &[
    ("valid-minimal.toml", "name = \"min\"\n[data]\nidentities = 2\nheldout_identities = 2\nimages_per_identity = 2\n[train]\nepochs = 1\nbatch_size = 2\n[[loss]]\nname = \"p2sgrad\"\n"),
    (
        "valid-sweep.toml",
        "name = \"sweep\"\ndescription = \"grids, zips, noise\"\n[data]\nidentities = 10\nheldout_identities = 6\n\
         images_per_identity = 4\nimage_size = 16\nchannels = 3\ndifficulty = 0.25\nseed = 3\n\
         [model]\nwidths = [4, 8]\nembedding = 8\n\
         [train]\nepochs = 3\nbatch_size = 8\nlr = 0.05\nmomentum = 0.5\nweight_decay = 0.0\nlr_milestones = [1, 2]\n\
         lr_gamma = 0.5\nseeds = [1, 2]\ndevice = \"cpu\"\nthreads = 1\nlog_every = 2\ncheckpoint_every = 5\n\
         [noise]\nratio = [0.0, 0.2]\nkind = [\"flip\", \"outlier\"]\nseed = 4\noutlier_identities = 5\n\
         [[loss]]\nname = \"cosface\"\ns = [16.0, 32]\nm = [0.2, 0.35]\nzip = [[\"s\", \"m\"]]\n\
         [[loss]]\nname = \"arcface\"\ns = 30.0\nm = [0.3, 0.5]\neasy_margin = true\ngradient = \"straight-through\"\n\
         [[loss]]\nname = \"sphereface\"\nm = 4\n\
         [[loss]]\nname = \"adacos\"\nmode = \"fixed\"\n\
         [[loss]]\nname = \"l2softmax\"\nalpha = [8.0, 16.0]\n\
         [eval]\nprotocols = [\"lfw\", \"megaface\", \"ijbc\"]\nevery_epochs = 1\nflip = \"concat\"\n\
         [eval.lfw]\nfolds = 3\npairs_per_fold = 5\ndistance = \"cosine\"\nthresholds = \"-1:1:0.5\"\n\
         [eval.megaface]\nprobe_identities = 2\nfar = 1e-3\nfar_readout = \"nearest\"\n\
         [eval.ijbc]\ntemplates_per_identity = 2\nmax_media_size = 2\nmax_impostor_pairs = 10\nfar_readout = \"at-most\"\nkeep_norm = true\n",
    ),
    (
        "valid-real-protocols.toml",
        "name = \"real\"\n[data]\nkind = \"folder\"\npath = \"/data/faces\"\nidentities = 5\nheldout_identities = 2\n\
         images_per_identity = 2\nimage_size = 112\nchannels = 3\n[train]\nepochs = 1\nbatch_size = 2\n\
         [noise]\nratio = 0.1\n[[loss]]\nname = \"combined\"\n[[loss]]\nname = \"magface\"\ns = 30.0\n\
         [eval]\nprotocols = [\"lfw\", \"ijbc\", \"megaface\"]\n[eval.lfw]\nbin = \"/data/lfw.bin\"\n\
         [eval.ijbc]\nmeta = \"/data/ijbc/meta\"\nimages = \"/data/ijbc/loose_crop\"\ndetector_scores = true\n\
         [eval.megaface]\nprobes = \"/data/mf/facescrub.json\"\ndistractors = [\"/data/mf/d_10\", \"/data/mf/d_100\"]\n\
         probe_images = \"/data/mf/fs\"\ndistractor_images = \"/data/mf/mf\"\nprobe_noise = \"/data/fs_noise.txt\"\n",
    ),
        (
            "valid-sweep-select.toml",
            "name = \"select\"\n[data]\nidentities = 4\nheldout_identities = 4\nimages_per_identity = 3\n\
             [train]\nepochs = 2\nbatch_size = 4\n[sweep]\n\"data.identities\" = [4, 6]\n\"model.embedding\" = [8, 16]\n\
             [[loss]]\nname = \"p2sgrad\"\n\"train.lr\" = [0.1, 1.0]\n\"train.epochs\" = 3\n\"train.lr_milestones\" = [2]\n\
             [[loss]]\nname = \"cosface\"\n\"train.weight_decay\" = 0.0\n\
             [select]\nmetric = \"lfw/accuracy_mean\"\ngoal = \"max\"\ntune = [\"train.lr\"]\nseeds = [2]\n",
        ),
    ("unknown-key.toml", "name = \"x\"\nspeed = 3\n[data]\nidentities = 2\nheldout_identities = 2\nimages_per_identity = 2\n[train]\nepochs = 1\nbatch_size = 2\n[[loss]]\nname = \"p2sgrad\"\n"),
    ("bad-toml.toml", "name = \"x\n[data\nidentities = = 2\n"),
    ("duplicate-trial.toml", "name = \"dup\"\n[data]\nidentities = 2\nheldout_identities = 2\nimages_per_identity = 2\n[train]\nepochs = 1\nbatch_size = 2\n[[loss]]\nname = \"cosface\"\n[[loss]]\nname = \"cosface\"\n"),
];

/// Spec seeds that need [`SPEC_HEAD`] (kept apart so the table above stays readable).
fn more_specs() -> Vec<(String, String)> {
    [
        ("zip-lengths.toml", "[[loss]]\nname = \"cosface\"\ns = [1.0, 2.0]\nm = [0.1]\nzip = [[\"s\", \"m\"]]\n"),
        ("bad-param.toml", "[[loss]]\nname = \"arcface\"\nm = -1.0\n"),
        ("no-loss.toml", "[eval]\nprotocols = [\"lfw\", \"lfw\"]\n"),
        (
            "swept-twice.toml",
            "[sweep]\n\"train.lr\" = [0.1, 1.0]\n[[loss]]\nname = \"cosface\"\n\"train.lr\" = [0.3]\n",
        ),
        ("shared-override.toml", "[[loss]]\nname = \"cosface\"\n\"data.identities\" = 5\n"),
    ]
    .iter()
    .map(|(f, t)| (f.to_string(), format!("{SPEC_HEAD}{t}")))
    .collect()
}

const LFW_PAIRS: &[(&str, &str)] = &[
    ("valid.txt", "2\t1\nAbel_Pacheco\t1\t4\nAbel_Pacheco\t1\tAkhmed_Zakayev\t3\nZico 2 3\r\nA 1 B 1\n"),
    ("view1-header.txt", "1100\nAbel_Pacheco\t1\t4\n"),
    ("order.txt", "2 1\nA 1 B 1\nA 1 2\nC 1 2\nC 1 D 1\n"),
    ("too-many.txt", "2 1\nA 1 2\nA 1 B 1\nC 1 2\nC 1 D 1\nE 1 2\n"),
    ("index-zero.txt", "2 1\nA 0 2\nA 1 B 1\nC 1 2\nC 1 D 1\n"),
];

const MEGAFACE_LISTS: &[(&str, &str)] = &[
    (
        "valid-probes.json",
        r#"{"id": ["Adam_Brody", "Adam_Brody", "Zoe"], "path": ["Adam_Brody/a_1.png", "Adam_Brody/a_2.png", "Zoe/z_1.png"]}"#,
    ),
    (
        "valid-distractors.json",
        "{\"path\": [\"102/10222/1@N07_identity_0/0.jpg\", \"7/77/7@N0_identity_1/3.jpg\"], \"ids\": 1}",
    ),
    ("valid-numeric-ids.json", r#"{"id": [1, 2.5], "path": ["1/a.jpg", "2/b.jpg"]}"#),
    ("ids-mismatch.json", r#"{"id": ["a"], "path": ["a/1.jpg", "a/2.jpg"]}"#),
    ("not-object.json", r#"["a/1.jpg"]"#),
    ("bad-json.json", "{\"path\": [\"a\",\n  ]"),
    ("empty.json", r#"{"path": []}"#),
];

const IJBC: &[(&str, &str)] = &[
    ("ijbc_images/valid.txt", "1.jpg 1 69544\n2.jpg 1 69544\r\n3.jpg 2 69545\n"),
    ("ijbc_images/fields.txt", "1.jpg 1\n"),
    ("ijbc_images/negative.txt", "1.jpg -1 3\n"),
    ("ijbc_pairs/valid.txt", "1 11065 1\n1 11066 0\n\n4294967295 0 0\n"),
    ("ijbc_pairs/label.txt", "1 2 2\n"),
    ("ijbc_pairs/overflow.txt", "4294967296 1 1\n"),
    ("ijbc_1n/valid.csv", "TEMPLATE_ID,SUBJECT_ID,FILENAME,SIGHTING_ID\n1,1,img/1.jpg,1\n1,1,img/2.jpg,1\n5,3,img/9.jpg,4\n2,2,img/3.jpg,2\n"),
    ("ijbc_1n/valid-no-header.csv", "7, 8\n"),
    ("ijbc_1n/one-column.csv", "TEMPLATE_ID\n1\n"),
    ("ijbc_1n/header-only.csv", "TEMPLATE_ID,SUBJECT_ID\n"),
];

/// Pickles of (list of bytes, list of bools) in the protocols insightface's packs were written
/// with (2 by Python 2, 3/4 by Python 3), plus a protocol-0/1 mix and near misses.
fn bin_packs() -> Vec<(String, Vec<u8>)> {
    let images: [&[u8]; 4] = [b"\xff\xd8jpeg-0", b"\xff\xd8jpeg-1", b"\x89PNG-2", b"\x89PNG-3"];
    let proto2 = {
        let mut p = b"\x80\x02]q\x00(".to_vec();
        for (i, img) in images.iter().enumerate() {
            p.push(b'U');
            p.push(img.len() as u8);
            p.extend_from_slice(img);
            p.extend([b'q', i as u8 + 1]);
        }
        p.extend(b"e]q\x05(\x88\x89e\x86q\x06.");
        p
    };
    let proto4 = {
        let mut body = b"\x95\x00\x00\x00\x00\x00\x00\x00\x00]\x94(".to_vec();
        for img in &images[..2] {
            body.push(b'C');
            body.push(img.len() as u8);
            body.extend_from_slice(img);
            body.push(0x94);
        }
        body.push(b'B');
        body.extend((images[2].len() as u32).to_le_bytes());
        body.extend_from_slice(images[2]);
        body.push(0x94);
        body.push(0x8e);
        body.extend((images[3].len() as u64).to_le_bytes());
        body.extend_from_slice(images[3]);
        body.extend(b"\x94e]\x94(K\x01K\x00e\x86\x94.");
        [b"\x80\x04".as_slice(), &body].concat()
    };
    let proto1 = {
        let mut p = b"(]p0\n".to_vec();
        for img in &images[..2] {
            p.push(b'T');
            p.extend((img.len() as u32).to_le_bytes());
            p.extend_from_slice(img);
            p.push(b'a');
        }
        p.extend(b"]p1\nI01\naI00\nat.");
        p
    };
    let truncated = proto2[..proto2.len() - 9].to_vec();
    let global = b"\x80\x02cnumpy\nndarray\nq\x00.".to_vec();
    vec![
        ("valid-proto2.bin".into(), proto2),
        ("valid-proto4.bin".into(), proto4),
        ("proto1-two-pairs-two-images.bin".into(), proto1),
        ("truncated.bin".into(), truncated),
        ("global.bin".into(), global),
    ]
}

/// ONNX models: p2sbench's export of a tiny CNN, a one-node model, and near misses (cut short, an
/// unknown operator, a vector input, an image-shaped output).
fn onnx_models() -> Vec<(String, Vec<u8>)> {
    use prost::Message;
    let spec = p2sbench::spec::ModelSpec { widths: vec![2], embedding: 4, ..Default::default() };
    let net = p2sbench::model::Network::new(&spec, 1, 4, 3, false, 1, tch::Device::Cpu);
    let cnn = net.to_onnx(1, 4, "fuzz seed").encode_to_vec();
    vec![
        ("valid-cnn.onnx".into(), cnn.clone()),
        ("valid-flatten.onnx".into(), common::one_node_onnx(&[-1, 3, 2, 2], Some(&[-1, 12]), "Flatten")),
        ("cut.onnx".into(), cnn[..cnn.len() / 2].to_vec()),
        ("unknown-op.onnx".into(), common::one_node_onnx(&[-1, 3, 2, 2], Some(&[-1, 12]), "FaceMagic")),
        ("vectors.onnx".into(), common::one_node_onnx(&[-1, 12], Some(&[-1, 12]), "Identity")),
        ("maps.onnx".into(), common::one_node_onnx(&[-1, 3, 2, 2], None, "Identity")),
    ]
}

/// `train.rec` bytes: two identities of two 8×8 grey PNGs (one record split at the magic), the
/// same cut inside its last image, and bytes with no record.
fn recordio_packs() -> Vec<(String, Vec<u8>)> {
    let dir = tempfile::tempdir().unwrap();
    let image = |v: u8| common::recordio::png(&[v; 64], 8);
    let mut split = image(9);
    split.resize(split.len().next_multiple_of(4), 0); // after IEND: the magic lands aligned
    split.extend(common::recordio::MAGIC.to_le_bytes().repeat(2));
    common::recordio::write_pack(dir.path(), &[vec![image(1), split], vec![image(3), image(4)]], 8);
    let pack = std::fs::read(dir.path().join("train.rec")).unwrap();
    let cut = pack[..pack.len() * 3 / 5].to_vec();
    // Without a header record (every record an image), one image with 12 labels (more than a
    // header read holds), and one whose IRHeader is split at the magic (in its id field).
    let mut headerless = Vec::new();
    headerless.extend(common::recordio::frame(&common::recordio::ir_record(&[0.0], 1, &image(5))));
    let many: Vec<f32> = std::iter::once(0.0).chain((1..12).map(|l| l as f32)).collect();
    headerless.extend(common::recordio::frame(&common::recordio::ir_record(&many, 2, &image(6))));
    let magic_id = u64::from(common::recordio::MAGIC);
    headerless.extend(common::recordio::frame(&common::recordio::ir_record(&[0.0], magic_id, &image(7))));
    vec![
        ("valid-pack.rec".into(), pack),
        ("valid-headerless.rec".into(), headerless),
        ("truncated.rec".into(), cut),
        ("no-record.rec".into(), b"0\t0\n1\t36\n".to_vec()),
    ]
}

fn npys() -> Vec<(String, Vec<u8>)> {
    let f = Features::new(3, 2, vec![0.5, -1.0, 2.0, 0.0, f32::MIN_POSITIVE, 1e30]);
    let dict = |shape: &str| format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    vec![
        ("valid-v1.npy".into(), npy::encode(&f)),
        ("valid-v2.npy".into(), npy_bytes(2, &dict("(2, 1)"), &[1.0, 2.0])),
        (
            "valid-v3-quotes.npy".into(),
            npy_bytes(3, "{\"shape\": (1L, 2L), \"fortran_order\": False, \"descr\": \"<f4\"}", &[1.0, 2.0]),
        ),
        ("valid-empty.npy".into(), npy_bytes(1, &dict("(0, 4)"), &[])),
        (
            "float64.npy".into(),
            npy_bytes(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1), }", &[0.0, 0.0]),
        ),
        ("fortran.npy".into(), npy_bytes(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 2), }", &[0.0, 0.0])),
        ("rank3.npy".into(), npy_bytes(1, &dict("(1, 1, 2)"), &[0.0, 0.0])),
        ("truncated.npy".into(), npy_bytes(1, &dict("(2, 2)"), &[0.0, 0.0, 0.0])),
    ]
}

fn mats() -> Vec<(String, Vec<u8>)> {
    let mut two_by_two = Vec::new();
    for v in [2i32, 2, 8, formats::CV_32FC1] {
        two_by_two.extend(v.to_le_bytes());
    }
    two_by_two.extend([1.0f32, 2.0, 3.0, 4.0].iter().flat_map(|v| v.to_le_bytes()));
    let mut float64 = formats::encode_mat(&[1.0, 2.0]);
    float64[12..16].copy_from_slice(&6i32.to_le_bytes());
    let mut strided = two_by_two.clone();
    strided[8..12].copy_from_slice(&16i32.to_le_bytes());
    let long = formats::encode_mat(&[0.25; 8]);
    vec![
        ("valid-512x1.bin".into(), formats::encode_mat(&(0..512).map(|i| i as f32 / 512.0).collect::<Vec<_>>())),
        ("valid-2x2.bin".into(), two_by_two),
        ("type-cv64f.bin".into(), float64),
        ("strided.bin".into(), strided),
        ("truncated.bin".into(), long[..long.len() - 3].to_vec()),
        ("header-only.bin".into(), long[..12].to_vec()),
    ]
}

/// Tiny JPEGs and PNGs, each behind the target's first byte (even: grey, odd: RGB; the size).
fn encoded_images() -> Vec<(String, Vec<u8>)> {
    use image::ImageEncoder;
    let grey: Vec<u8> = (0..64u32).map(|i| (i * 4 + i / 8 * 7) as u8).collect();
    let rgb: Vec<u8> = (0..64u32).flat_map(|i| [(i * 4) as u8, (255 - i * 3) as u8, (i * 11 % 256) as u8]).collect();
    let rgba: Vec<u8> = rgb.chunks(3).flat_map(|p| [p[0], p[1], p[2], 200]).collect();
    let jpeg = |px: &[u8], color| {
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80).encode(px, 8, 8, color).unwrap();
        out
    };
    let png = |px: &[u8], color| {
        let mut out = Vec::new();
        image::codecs::png::PngEncoder::new(&mut out).write_image(px, 8, 8, color).unwrap();
        out
    };
    let with = |pick: u8, bytes: Vec<u8>| [vec![pick], bytes].concat();
    let grey_jpeg = jpeg(&grey, image::ColorType::L8);
    vec![
        ("valid-grey-jpeg-to-grey-8.bin".into(), with(14, grey_jpeg.clone())),
        ("valid-rgb-jpeg-to-rgb-5.bin".into(), with(9, jpeg(&rgb, image::ColorType::Rgb8))),
        ("valid-grey-png-to-rgb-3.bin".into(), with(5, png(&grey, image::ColorType::L8))),
        ("valid-rgba-png-to-grey-16.bin".into(), with(30, png(&rgba, image::ColorType::Rgba8))),
        ("truncated-jpeg.bin".into(), with(0, grey_jpeg[..grey_jpeg.len() / 2].to_vec())),
        ("not-an-image.bin".into(), with(1, b"GIF89a".to_vec())),
    ]
}

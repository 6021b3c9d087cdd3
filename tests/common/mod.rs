//! Helpers shared by the integration tests: a tiny experiment that trains in seconds.
#![allow(dead_code)]

use p2sbench::spec;
use std::path::Path;

/// A small but real experiment: every loss of the spine, 2 epochs on 16×16 synthetic faces.
pub const TINY: &str = r#"name = "tiny"
[data]
identities = 12
heldout_identities = 8
images_per_identity = 8
image_size = 16
difficulty = 0.3
seed = 3
[model]
widths = [8, 16]
embedding = 16
[train]
epochs = 2
batch_size = 16
lr = 0.05
lr_milestones = [1]
seeds = [1]
device = "cpu"
threads = 1
log_every = 2
[[loss]]
name = "p2sgrad"
[[loss]]
name = "cosface"
s = 16.0
m = 0.2
[[loss]]
name = "arcface"
s = 16.0
m = 0.3
[[loss]]
name = "l2softmax"
alpha = 8.0
[[loss]]
name = "softmax"
[eval]
every_epochs = 1
[eval.lfw]
folds = 4
pairs_per_fold = 10
"#;

/// Every parquet file of every trial of `exp` under `root`, wall-clock column aside: what two
/// runs of one experiment must agree on.
pub fn trial_frames(root: &p2sbench::store::ExperimentDir, exp: &spec::Experiment) -> Vec<polars::prelude::DataFrame> {
    let mut frames = Vec::new();
    for t in &exp.trials {
        for file in ["steps.parquet", "evals.parquet", "angles.parquet"] {
            let df = p2sbench::store::read_parquet(&root.trial(&t.id()).join(file)).unwrap();
            frames.push(df.drop("step_seconds").unwrap_or(df));
        }
    }
    frames
}

/// The Python of the set-up's virtual environment (the one that holds the torch wheel libtorch
/// comes from): `P2SBENCH_PYTHON`, else found from `LIBTORCH` (…/venv/lib/pythonX/site-packages/torch).
pub fn reference_python() -> std::path::PathBuf {
    if let Ok(p) = std::env::var("P2SBENCH_PYTHON") {
        return std::path::PathBuf::from(p);
    }
    let libtorch = std::env::var("LIBTORCH").expect("LIBTORCH is set (run the tests with `make test`)");
    let venv = Path::new(&libtorch).ancestors().nth(4).expect("LIBTORCH is <venv>/lib/pythonX/site-packages/torch");
    let python = venv.join("bin/python");
    assert!(python.exists(), "no Python at {} (LIBTORCH={libtorch}); run `make test`", python.display());
    python
}

pub fn experiment(text: &str) -> spec::Experiment {
    spec::parse(Path::new("tiny.toml"), text).expect("the test experiment is valid")
}

/// A string column as owned strings (nulls as "").
pub fn strings(df: &polars::prelude::DataFrame, name: &str) -> Vec<String> {
    let col = df.column(name).unwrap().str().unwrap();
    (0..col.len()).map(|i| col.get(i).unwrap_or("").to_string()).collect()
}

/// A .npy file with a hand-written header dict (`major`: the format version, 1, 2 or 3).
pub fn npy_bytes(major: u8, dict: &str, data: &[f32]) -> Vec<u8> {
    let header = format!("{dict}\n");
    let mut out = b"\x93NUMPY".to_vec();
    out.extend([major, 0]);
    if major == 1 {
        out.extend((header.len() as u16).to_le_bytes());
    } else {
        out.extend((header.len() as u32).to_le_bytes());
    }
    out.extend(header.as_bytes());
    out.extend(data.iter().flat_map(|v| v.to_le_bytes()));
    out
}
pub mod recordio;
pub mod results_fixture;

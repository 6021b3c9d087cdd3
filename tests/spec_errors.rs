//! Bad experiment files: each is rejected by `p2sbench run` with exit code 2, a message naming
//! file:line:col (the column of the value at fault, or of an unknown field) and what was expected,
//! and no results directory.

use std::path::Path;
use std::process::Command;

const GOOD: &str = r#"name = "t"
[data]
identities = 4
heldout_identities = 4
images_per_identity = 4
image_size = 16
[model]
widths = [4]
embedding = 8
[train]
epochs = 1
batch_size = 8
[[loss]]
name = "cosface"
s = 30.0
m = 0.35
"#;

/// Runs `p2sbench run` on `text`; returns (exit code, stderr) and checks nothing was written.
fn run_bad(text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, text).unwrap();
    let out = dir.path().join("results");
    let result =
        Command::new(env!("CARGO_BIN_EXE_p2sbench")).arg("run").arg(&file).arg("--out").arg(&out).output().unwrap();
    assert!(!Path::new(&out).exists(), "a results directory was created for an invalid file");
    (result.status.code().unwrap_or(-1), String::from_utf8_lossy(&result.stderr).into_owned())
}

/// Checks that `text` is rejected with exit code 2 and a message holding `expected`, located at
/// `bad.toml:line:col`, where col is the (1-based) column at which `token` starts on that line
/// (it must occur there exactly once): the value that is wrong, or an unknown key.
fn expect_error(text: &str, line: usize, token: &str, expected: &str) {
    let source = text.lines().nth(line - 1).unwrap_or_else(|| panic!("no line {line} in:\n{text}"));
    assert_eq!(source.matches(token).count(), 1, "{token:?} is not once on line {line}: {source:?}");
    let col = source[..source.find(token).unwrap()].chars().count() + 1;
    let (code, stderr) = run_bad(text);
    assert_eq!(code, 2, "exit code for:\n{text}\nstderr: {stderr}");
    let at = format!("bad.toml:{line}:{col}: ");
    assert!(stderr.contains(&at), "no {at} ({token:?} on {source:?}) in {stderr:?}");
    assert!(stderr.contains(expected), "message {stderr:?} lacks {expected:?}");
}

fn replace(from: &str, to: &str) -> String {
    assert!(GOOD.contains(from), "{from}");
    GOOD.replace(from, to)
}

#[test]
fn the_good_file_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("good.toml");
    std::fs::write(&file, GOOD).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_p2sbench")).args(["run", "--dry-run"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("cosface-m0.35-s30-seed1-"), "{stdout}");
    assert!(stdout.contains("1 trials"), "{stdout}");
}

#[test]
fn unknown_top_level_key() {
    expect_error(&format!("colour = 1\n{GOOD}"), 1, "colour", "unknown field `colour`");
}

#[test]
fn unknown_train_key() {
    expect_error(
        &replace("batch_size = 8", "batch_size = 8\nbatchsize = 8"),
        13,
        "batchsize",
        "unknown field `batchsize`",
    );
}

#[test]
fn wrong_type() {
    expect_error(&replace("epochs = 1", "epochs = \"one\""), 11, "\"one\"", "invalid type");
}

#[test]
fn batch_size_outside_two_to_the_training_images() {
    // A batch of one: BatchNorm in training mode would map every input to its bias.
    expect_error(&replace("batch_size = 8", "batch_size = 1"), 12, "1", "train.batch_size: expected at least 2");
    expect_error(
        &replace("batch_size = 8", "batch_size = 17"),
        12,
        "17",
        "train.batch_size: 17 is more than the 16 training images",
    );
    // Swept data sizes are checked per combination.
    let swept = format!("{}[sweep]\n\"data.identities\" = [8, 2]\n", replace("batch_size = 8", "batch_size = 16"));
    expect_error(&swept, 18, "2", "train.batch_size: 16 is more than the 8 training images");
}

#[test]
fn negative_scale() {
    expect_error(&replace("s = 30.0", "s = -1.0"), 15, "-1.0", "cosface.s: expected a finite number > 0, found -1.0");
}

#[test]
fn negative_margin() {
    expect_error(&replace("m = 0.35", "m = -0.1"), 16, "-0.1", "cosface.m: expected a finite number >= 0");
}

#[test]
fn arcface_margin_too_large() {
    expect_error(
        &replace("name = \"cosface\"\ns = 30.0\nm = 0.35", "name = \"arcface\"\nm = 1.6"),
        15,
        "1.6",
        "0 <= m < π/2",
    );
}

#[test]
fn empty_loss_list() {
    let text = GOOD.split("[[loss]]").next().unwrap();
    let (code, stderr) = run_bad(text);
    assert_eq!(code, 2);
    assert!(stderr.contains("bad.toml") && stderr.contains("no [[loss]] blocks"), "{stderr}");
}

#[test]
fn unknown_loss_name() {
    expect_error(&replace("name = \"cosface\"", "name = \"cosfase\""), 14, "\"cosfase\"", "unknown loss \"cosfase\"");
}

#[test]
fn unknown_loss_parameter() {
    expect_error(&replace("m = 0.35", "m = 0.35\nmargin = 0.2"), 17, "0.2", "unknown key \"margin\" for loss cosface");
}

#[test]
fn loss_parameter_of_wrong_type() {
    expect_error(&replace("s = 30.0", "s = \"big\""), 15, "\"big\"", "cosface.s: expected a number, found \"big\"");
}

#[test]
fn bad_value_inside_a_sweep_list() {
    expect_error(
        &replace("s = 30.0", "s = [16.0, 0.0]"),
        15,
        "0.0",
        "cosface.s: expected a finite number > 0, found 0",
    );
}

#[test]
fn empty_sweep_list() {
    expect_error(&replace("s = 30.0", "s = []"), 15, "[]", "an empty list sweeps nothing");
}

#[test]
fn bad_choice() {
    let text = replace("name = \"cosface\"\ns = 30.0\nm = 0.35", "name = \"p2sgrad\"\nreduction = \"sum\"");
    expect_error(&text, 15, "\"sum\"", "expected one of \"paper\", \"mse-mean\"");
}

#[test]
fn bad_device() {
    expect_error(
        &replace("batch_size = 8", "batch_size = 8\ndevice = \"tpu\""),
        13,
        "\"tpu\"",
        "unknown variant `tpu`",
    );
}

#[test]
fn bad_channels() {
    expect_error(
        &replace("image_size = 16", "image_size = 16\nchannels = 2"),
        7,
        "2",
        "data.channels: expected 1 (grey) or 3 (colour)",
    );
}

#[test]
fn bad_milestones() {
    expect_error(
        &replace("batch_size = 8", "batch_size = 8\nlr_milestones = [3, 2]"),
        13,
        "[3, 2]",
        "train.lr_milestones",
    );
}

#[test]
fn unknown_protocol() {
    expect_error(&format!("{GOOD}[eval]\nprotocols = [\"lfw\", \"ytf\"]\n"), 18, "\"ytf\"", "unknown protocol \"ytf\"");
}

#[test]
fn unknown_report_baseline() {
    expect_error(
        &format!("{GOOD}[report]\nbaseline = \"nosuch\"\n"),
        18,
        "\"nosuch\"",
        "report.baseline: expected one of the file's losses",
    );
    expect_error(&format!("{GOOD}[report]\ncomparisons = \"some\"\n"), 18, "\"some\"", "unknown variant `some`");
}

#[test]
fn invalid_toml_syntax() {
    expect_error(&replace("epochs = 1", "epochs = = 1"), 11, "= 1", "invalid TOML");
}

#[test]
fn missing_required_table() {
    let text = GOOD.replace("[train]\nepochs = 1\nbatch_size = 8\n", "");
    let (code, stderr) = run_bad(&text);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("missing field `train`"), "{stderr}");
}

#[test]
fn missing_file_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_p2sbench"))
        .args(["run", "/nonexistent/x.toml", "--dry-run"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.toml: cannot read"));
}

#[test]
fn unknown_key_in_a_sweep() {
    expect_error(&format!("{GOOD}[sweep]\n\"train.lrr\" = [0.1, 1.0]\n"), 18, "[0.1, 1.0]", "train.lrr: unknown key");
}

#[test]
fn a_sweep_of_something_that_is_not_a_spec_key() {
    expect_error(&format!("{GOOD}[sweep]\n\"noise.ratio\" = [0.1]\n"), 18, "[0.1]", "noise.ratio: cannot be swept");
    expect_error(
        &format!("{GOOD}[sweep]\n\"train.seeds\" = [[1], [2]]\n"),
        18,
        "[[1], [2]]",
        "train.seeds: cannot be swept",
    );
}

#[test]
fn a_sweep_needs_a_list() {
    expect_error(
        &format!("{GOOD}[sweep]\n\"train.lr\" = 0.1\n"),
        18,
        "0.1",
        "sweep.train.lr: expected a list of values",
    );
    expect_error(&format!("{GOOD}[sweep]\n\"model.widths\" = [4, 8]\n"), 18, "[4, 8]", "expected a list of lists");
}

#[test]
fn bad_value_in_a_sweep_of_a_spec_key() {
    expect_error(
        &format!("{GOOD}[sweep]\n\"train.lr\" = [0.1, -1.0]\n"),
        18,
        "-1.0",
        "train.lr: expected a learning rate > 0",
    );
    expect_error(&format!("{GOOD}[sweep]\n\"data.identities\" = [4, \"x\"]\n"), 18, "\"x\"", "invalid type");
}

#[test]
fn a_key_swept_twice() {
    let text = replace("m = 0.35", "m = 0.35\n\"train.lr\" = [1.0, 2.0]") + "[sweep]\n\"train.lr\" = [0.1, 1.0]\n";
    expect_error(&text, 17, "[1.0, 2.0]", "\"train.lr\" is swept in [sweep] already");
    expect_error(&format!("{GOOD}[sweep]\n\"train.lr\" = [0.1]\ntrain.lr = [1.0]\n"), 18, "[0.1]", "swept twice");
}

#[test]
fn a_loss_block_cannot_change_shared_settings() {
    expect_error(&replace("m = 0.35", "m = 0.35\n\"data.identities\" = 8"), 17, "8", "cannot differ between losses");
    expect_error(&replace("m = 0.35", "m = 0.35\ntrain.batch_size = 4"), 17, "4", "cannot differ between losses");
}

#[test]
fn a_combination_that_does_not_fit() {
    // epochs 1 with the milestone at epoch 2: only the combination is wrong.
    let text = replace("batch_size = 8", "batch_size = 8\nlr_milestones = [2]\nepochs = 3").replace("epochs = 1\n", "")
        + "[sweep]\n\"train.epochs\" = [3, 1]\n";
    expect_error(&text, 19, "1", "train.epochs");
}

#[test]
fn select_errors() {
    let sweep = "[sweep]\n\"train.lr\" = [0.1, 1.0]\n";
    let select = |body: &str| format!("{GOOD}{sweep}[select]\n{body}");
    let ok = "metric = \"lfw/accuracy_mean\"\ntune = [\"train.lr\"]\nseeds = [5]\n";
    expect_error(
        &select(&ok.replace("lfw/", "megaface/")),
        20,
        "\"megaface/accuracy_mean\"",
        "protocol \"megaface\" is not in eval.protocols",
    );
    expect_error(&select(&ok.replace("[\"train.lr\"]", "[\"s\"]")), 21, "\"s\"", "\"s\" is not swept anywhere");
    expect_error(&select(&ok.replace("[5]", "[1]")), 22, "1", "1 is also a search seed");
    expect_error(&select(&format!("{ok}validation_identities = 3\n")), 23, "3", "validation and test need at least 2");
    expect_error(
        &select(&ok.replace("lfw/accuracy_mean", "accuracy")),
        20,
        "\"accuracy\"",
        "expected \"<protocol>/<metric>\"",
    );
    // The scaler's and the clipping's settings.
    for (bad, token, message) in [
        ("scaler_growth_interval = 0", "0", "train.scaler_growth_interval: expected at least 1 step"),
        ("clip_grad_norm = -5.0", "-5.0", "train.clip_grad_norm: expected a positive norm, found -5"),
        ("scaler_init_scale = 0.0", "0.0", "train.scaler_init_scale: expected a positive number"),
        ("loss_scaling = \"maybe\"", "\"maybe\"", "unknown variant"),
    ] {
        let text = replace("batch_size = 8", &format!("batch_size = 8\n{bad}"));
        let line = text.lines().position(|l| l == bad).unwrap() + 1;
        expect_error(&text, line, token, message);
    }
    // Partial FC's rate is a fraction of the classes.
    for bad in ["0.0", "1.5"] {
        let text = replace("embedding = 8", &format!("embedding = 8\nsample_rate = {bad}"));
        let line = text.lines().position(|l| l.starts_with("sample_rate")).unwrap() + 1;
        expect_error(&text, line, bad, "model.sample_rate: expected a fraction of the classes in (0, 1]");
    }
    // Successive halving: η of at least 2, a first rung before the last epoch, known methods.
    let halving = format!("{ok}method = \"halving\"\n");
    expect_error(&select(&format!("{halving}eta = 1\n")), 24, "1", "select.eta: 1 keeps every setting");
    expect_error(
        &select(&halving),
        19,
        "[select]",
        "select.min_epochs: 1 is not between 1 and the shortest trial's train.epochs 1",
    );
    expect_error(&select(&format!("{ok}method = \"hyperband\"\n")), 23, "\"hyperband\"", "unknown variant");
}

#[test]
fn sweeps_overrides_and_select_expand_in_a_dry_run() {
    let text = replace("m = 0.35", "m = 0.35\n\"train.lr\" = [1.0, 2.0]\nzip = [[\"train.lr\", \"s\"]]")
        .replace("s = 30.0", "s = [16.0, 32.0]")
        + "[[loss]]\nname = \"p2sgrad\"\ntrain = { lr = 3.0 }\n[sweep]\n\"data.identities\" = [4, 6]\n"
        + "[select]\nmetric = \"lfw/accuracy_mean\"\ntune = [\"train.lr\", \"s\"]\nseeds = [11, 12]\n";
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sweep.toml");
    std::fs::write(&file, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_p2sbench")).args(["run", "--dry-run"]).arg(&file).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // (2 zipped cosface settings + 1 p2sgrad) × 2 identity counts × 1 seed.
    assert!(stdout.contains("6 trials"), "{stdout}");
    assert!(stdout.contains("cosface-m0.35-s16-identities4-lr1-seed1-"), "{stdout}");
    assert!(stdout.contains("cosface-m0.35-s32-identities6-lr2-seed1-"), "{stdout}");
    assert!(stdout.contains("p2sgrad-identities6-lr3-seed1-"), "{stdout}");
    assert!(!stdout.contains("s16-identities4-lr2"), "zipped axes varied apart: {stdout}");
    // Groups: cosface × 2 identity counts, p2sgrad × 2; each final on 2 seeds.
    assert!(stdout.contains("each of the 4 loss/condition groups") && stdout.contains("8 final trials"), "{stdout}");
}

#[test]
fn paper_scale_keys_are_checked() {
    expect_error(&replace("widths = [4]", "backbone = \"resnet50\""), 8, "\"resnet50\"", "unknown variant `resnet50`");
    expect_error(
        &replace("widths = [4]", "backbone = \"iresnet18\"\nwidths = [4]"),
        9,
        "[4]",
        "model.widths: only for backbone = \"cnn\"",
    );
    expect_error(
        &replace("batch_size = 8", "batch_size = 8\nprecision = \"fp16\""),
        13,
        "\"fp16\"",
        "unknown variant `fp16`",
    );
    expect_error(
        &replace("image_size = 16", "image_size = 16\non_bad_image = \"ignore\""),
        7,
        "\"ignore\"",
        "unknown variant `ignore`",
    );
    expect_error(
        &replace("image_size = 16", "image_size = 16\n[data.augment]\nflip = true\ncrop = [0.9, 0.5]"),
        9,
        "[0.9, 0.5]",
        "data.augment.crop: [0.9, 0.5]; expected [lo, hi] with 0 < lo <= hi <= 1",
    );
    expect_error(
        &replace("image_size = 16", "image_size = 16\n[data.augment]\nmirror = true"),
        8,
        "mirror",
        "unknown field `mirror`",
    );
    expect_error(
        &replace("image_size = 16", "image_size = 16\nprefetch = 0"),
        7,
        "0",
        "data.prefetch: expected at least 1 batch",
    );
    expect_error(
        &replace("[data]\nidentities = 4", "[data]\nkind = \"recordio\"\nidentities = 4"),
        3,
        "\"recordio\"",
        "data.path: kind = \"recordio\" needs path",
    );
}

#[test]
fn a_range_draws_its_values_and_a_bad_one_is_located() {
    let text = replace("m = 0.35", "m = { uniform = [0.2, 0.5], samples = 4 }");
    let exp = p2sbench::spec::parse(Path::new("ranges.toml"), &text).unwrap();
    let m: Vec<f64> = exp.trials.iter().map(|t| t.loss.params["m"].as_f64().unwrap()).collect();
    assert_eq!(m.len(), 4);
    assert!(m.iter().all(|v| (0.2..=0.5).contains(v)), "{m:?}");
    assert_eq!(
        m,
        p2sbench::spec::parse(Path::new("ranges.toml"), &text)
            .unwrap()
            .trials
            .iter()
            .map(|t| t.loss.params["m"].as_f64().unwrap())
            .collect::<Vec<_>>()
    );
    expect_error(
        &replace("m = 0.35", "m = { uniform = [0.5, 0.2], samples = 4 }"),
        16,
        "{ uniform",
        "loss[0].m: the range [0.5, 0.2] needs lo < hi",
    );
    expect_error(
        &format!("{GOOD}[sweep]\n\"train.lr\" = {{ log_uniform = [0.1, 1], samples = 2, step = 1 }}\n"),
        18,
        "{ log_uniform",
        "sweep.train.lr: a range is",
    );
}

//! The `curves` analysis: values at known angles against closed forms, the feature-gradient
//! magnitude against an explicit geometry built with real vectors (for every registered loss),
//! setting resolution and its errors, the table/CSV/JSON formats, PNG/SVG files, and the
//! command's exit codes.
mod common;

use common::loss_config as config;
use p2sbench::analysis::spec::{self, Sweep};
use p2sbench::analysis::{self as an, output, CurveSpec};
use p2sbench::cli::curves::{self, CurvesArgs, Format};
use p2sbench::error::InputError;
use p2sbench::loss::{self, CosineBatch, LossConfig, LossContext, ParamValue};
use std::f64::consts::PI;
use std::process::Command;
use tch::{Device, Kind, Tensor};

fn f(v: f64) -> ParamValue {
    ParamValue::Float(v)
}

fn args(losses: &[&str]) -> CurvesArgs {
    CurvesArgs {
        losses: losses.iter().map(|s| s.to_string()).collect(),
        s: None,
        m: None,
        set: vec![],
        classes: vec![1000],
        feat_norm: 1.0,
        every: 10.0,
        out: None,
        format: Format::Table,
    }
}

fn close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() <= 1e-9 * (1.0 + b.abs()), "{what}: {a} vs closed form {b}");
}

/// Closed forms for a softmax-family loss with target logit f_y, ψ' and non-target logits 0.
fn softmax_family(c: f64, scale: f64, f_y: f64, psi_prime: f64, theta: f64) -> (f64, f64, f64) {
    let p = 1.0 / (1.0 + (c - 1.0) * (-f_y).exp());
    let p_j = 1.0 / (f_y.exp() + c - 1.0);
    let g_y = (p - 1.0) * scale * psi_prime;
    let grad = ((g_y * theta.sin()).powi(2) + (c - 1.0) * (p_j * scale).powi(2)).sqrt();
    (p, g_y, grad)
}

#[test]
fn values_at_known_angles_match_closed_forms() {
    let grid = an::grid(10.0);
    assert_eq!(grid.len(), 19);
    assert_eq!((grid[0], grid[18]), (0.0, 180.0));
    let interior = |deg: f64| deg > 0.0 && deg < 180.0;

    let (s, m, c) = (16.0, 0.35, 1000.0);
    let curve =
        an::compute(&CurveSpec { loss: config("cosface", &[("s", f(s)), ("m", f(m))]), classes: 1000 }, &grid, 1.0);
    for p in &curve.points {
        let t = p.theta_deg.to_radians();
        let (pe, ge, ne) = softmax_family(c, s, s * (t.cos() - m), 1.0, t);
        close(p.p_target, pe, &format!("cosface P at {}", p.theta_deg));
        close(p.coef_target, ge, &format!("cosface g at {}", p.theta_deg));
        close(p.grad_norm_feature, ne, &format!("cosface ‖∂L/∂x‖ at {}", p.theta_deg));
        assert_eq!(p.scale, s);
    }

    let (s, m, c) = (64.0, 0.5, 10000.0);
    let curve = an::compute(&CurveSpec { loss: config("arcface", &[]), classes: 10000 }, &grid, 1.0);
    for p in curve.points.iter().filter(|p| interior(p.theta_deg)) {
        let t = p.theta_deg.to_radians();
        let (psi, psi_prime) =
            if t + m <= PI { ((t + m).cos(), (t + m).sin() / t.sin()) } else { (t.cos() - m * m.sin(), 1.0) };
        let (pe, ge, ne) = softmax_family(c, s, s * psi, psi_prime, t);
        close(p.p_target, pe, &format!("arcface P at {}", p.theta_deg));
        close(p.coef_target, ge, &format!("arcface g at {}", p.theta_deg));
        close(p.grad_norm_feature, ne, &format!("arcface ‖∂L/∂x‖ at {}", p.theta_deg));
    }

    // P2SGrad: the stand-in cos θ, coefficient cos θ − 1, whatever C.
    for (reduction, classes) in [("paper", 100), ("mse-mean", 100)] {
        let cfg = config("p2sgrad", &[("reduction", ParamValue::Str(reduction.into()))]);
        let curve = an::compute(&CurveSpec { loss: cfg, classes }, &grid, 1.0);
        for p in &curve.points {
            let t = p.theta_deg.to_radians();
            let g = if reduction == "paper" { t.cos() - 1.0 } else { 2.0 * (t.cos() - 1.0) / classes as f64 };
            close(p.p_target, t.cos(), "p2sgrad p_target");
            close(p.coef_target, g, &format!("p2sgrad {reduction} g at {}", p.theta_deg));
            close(p.grad_norm_feature, (g * t.sin()).abs(), "p2sgrad ‖∂L/∂x‖");
        }
    }

    // Softmax with ‖x‖ = r: f_y = r cos θ, f_j = 0; the radial part makes ‖∂L/∂x‖² = (P−1)² + (C−1)P_j².
    let (r, c) = (2.5, 50.0);
    let curve = an::compute(&CurveSpec { loss: config("softmax", &[]), classes: 50 }, &grid, r);
    for p in &curve.points {
        let t = p.theta_deg.to_radians();
        let (pe, ge, _) = softmax_family(c, r, r * t.cos(), 1.0, t);
        let p_j = 1.0 / ((r * t.cos()).exp() + c - 1.0);
        close(p.p_target, pe, "softmax P");
        close(p.coef_target, ge, "softmax g");
        close(p.grad_norm_feature, ((pe - 1.0).powi(2) + (c - 1.0) * p_j * p_j).sqrt(), "softmax ‖∂L/∂x‖");
    }

    // AdaCos: fixed s = √2 ln(C−1); dynamic s = ln(C−1)/cos(min(π/4, θ)) for a batch of one sample
    // whose non-targets are at 90° (B_avg = C − 1).
    let c = 1000.0_f64;
    let fixed = an::compute(
        &CurveSpec { loss: config("adacos", &[("mode", ParamValue::Str("fixed".into()))]), classes: 1000 },
        &grid,
        1.0,
    );
    let dynamic = an::compute(&CurveSpec { loss: config("adacos", &[]), classes: 1000 }, &grid, 1.0);
    // (Interior angles: at exactly 0° the median angle is acos of the clamped cosine, 4.5e-4 rad.)
    for (pf, pd) in fixed.points.iter().zip(&dynamic.points).filter(|(p, _)| interior(p.theta_deg)) {
        let t = pf.theta_deg.to_radians();
        let s_fixed = 2f64.sqrt() * (c - 1.0).ln();
        let s_dyn = (c - 1.0).ln() / t.min(PI / 4.0).cos();
        close(pf.scale, s_fixed, "adacos fixed s");
        close(pd.scale, s_dyn, &format!("adacos dynamic s at {}", pf.theta_deg));
        close(pf.p_target, softmax_family(c, s_fixed, s_fixed * t.cos(), 1.0, t).0, "adacos fixed P");
        close(pd.p_target, softmax_family(c, s_dyn, s_dyn * t.cos(), 1.0, t).0, "adacos dynamic P");
    }
}

/// ‖∂L/∂x‖ by autograd through real vectors: x = r·e0, W_y = cos θ·e0 + sin θ·e1, W_j = e_{j+1}.
fn explicit_grad_norm(cfg: &LossConfig, classes: i64, theta_deg: f64, r: f64) -> f64 {
    let opts = (Kind::Double, Device::Cpu);
    let d = classes + 1;
    let t = theta_deg.to_radians();
    let x = (Tensor::eye(d, opts).get(0) * r).unsqueeze(0).set_requires_grad(true);
    let w = Tensor::eye(d, opts).narrow(0, 1, classes).copy();
    let mut target = w.get(0);
    target.copy_(&(Tensor::eye(d, opts).get(0) * t.cos() + Tensor::eye(d, opts).get(1) * t.sin()));
    let xn = x.norm_scalaropt_dim(2, [1], true);
    let wn = w.norm_scalaropt_dim(2, [1], true);
    let cos = (&x / &xn).matmul(&(&w / &wn).tr());
    let wn_row = wn.tr();
    let bias = Tensor::zeros([classes], opts);
    let labels = Tensor::zeros([1], (Kind::Int64, Device::Cpu));
    let mut l = loss::build(cfg, &LossContext { num_classes: classes });
    let out = l.forward(&CosineBatch {
        cos: &cos,
        feat_norm: &xn,
        weight_norm: &wn_row,
        bias: l.uses_bias().then_some(&bias),
        labels: &labels,
    });
    let g = Tensor::run_backward(&[&out.loss], &[&x], false, false).remove(0);
    g.norm().double_value(&[])
}

#[test]
fn feature_gradient_magnitude_matches_an_explicit_geometry_for_every_loss() {
    let classes = 7;
    for entry in loss::registry() {
        let cfg = config(entry.name, &[]);
        for r in [1.0, 3.0, 40.0] {
            let grid = [20.0, 75.0, 130.0];
            let curve = an::compute(&CurveSpec { loss: cfg.clone(), classes }, &grid, r);
            for p in &curve.points {
                let explicit = explicit_grad_norm(&cfg, classes, p.theta_deg, r);
                let what = format!("{} at θ = {}°, ‖x‖ = {r}", entry.name, p.theta_deg);
                assert!(p.grad_norm_feature.is_finite(), "{what}");
                close(p.grad_norm_feature, explicit, &what);
            }
        }
    }
}

#[test]
fn settings_resolve_from_specs_and_sweeps() {
    let sweep_s =
        Sweep { flag: "--s 16,32,64".into(), key: "s".into(), values: vec!["16".into(), "32".into(), "64".into()] };
    let losses: Vec<String> = ["p2sgrad", "cosface", "arcface:m=0.3"].iter().map(|s| s.to_string()).collect();
    let specs = spec::resolve(&losses, std::slice::from_ref(&sweep_s), &[1000, 10000, 100000]).unwrap();
    // p2sgrad has no s: 1 × 3 classes; cosface and arcface: 3 scales × 3 classes each.
    assert_eq!(specs.len(), 3 + 9 + 9);
    assert!(specs[..3].iter().all(|s| s.loss.name == "p2sgrad"));
    let arc: Vec<&CurveSpec> = specs.iter().filter(|s| s.loss.name == "arcface").collect();
    assert!(arc.iter().all(|s| s.loss.params["m"] == f(0.3)), "the spec's m is kept");
    let scales: Vec<f64> = arc.iter().map(|s| s.loss.f64("s")).collect();
    assert_eq!(scales, [16.0, 16.0, 16.0, 32.0, 32.0, 32.0, 64.0, 64.0, 64.0]);
    // The spec's own value wins over a sweep of the same key.
    let specs = spec::resolve(&["cosface:s=20".to_string()], std::slice::from_ref(&sweep_s), &[10]);
    assert!(specs.is_err(), "a sweep that no loss uses is an error");
    let specs =
        spec::resolve(&["cosface:s=20".to_string(), "arcface".to_string()], std::slice::from_ref(&sweep_s), &[10])
            .unwrap();
    assert_eq!(specs.iter().filter(|s| s.loss.name == "cosface").count(), 1);
    assert_eq!(specs[0].loss.f64("s"), 20.0);
    // --set sweeps any parameter; integers for integer parameters.
    let set = spec::parse_set("m=2,3").unwrap();
    let specs = spec::resolve(&["sphereface".to_string()], &[set], &[10]).unwrap();
    assert_eq!(
        specs.iter().map(|s| s.loss.params["m"].clone()).collect::<Vec<_>>(),
        [ParamValue::Int(2), ParamValue::Int(3)]
    );
}

fn err(losses: &[&str], sweeps: &[Sweep], classes: &[i64]) -> InputError {
    let losses: Vec<String> = losses.iter().map(|s| s.to_string()).collect();
    spec::resolve(&losses, sweeps, classes).unwrap_err()
}

#[test]
fn bad_settings_are_input_errors_that_say_what_is_expected() {
    let e = err(&["cosfase"], &[], &[10]);
    assert!(
        e.location.contains("cosfase") && e.message.contains("unknown loss") && e.message.contains("cosface"),
        "{e}"
    );
    let e = err(&["cosface:q=1"], &[], &[10]);
    assert!(e.message.contains("no parameter \"q\"") && e.message.contains("\"s\""), "{e}");
    let e = err(&["cosface:s=abc"], &[], &[10]);
    assert!(e.message.contains("a number"), "{e}");
    let e = err(&["cosface:s=-3"], &[], &[10]);
    assert!(e.message.contains("> 0"), "{e}");
    let e = err(&["arcface:gradient=fast"], &[], &[10]);
    assert!(e.message.contains("straight-through"), "{e}");
    let e = err(&["cosface:s"], &[], &[10]);
    assert!(e.message.contains("key=value"), "{e}");
    let e = err(&["sphereface:m=2.5"], &[], &[10]);
    assert!(e.message.contains("an integer"), "{e}");
    let e = err(&["magface:l_a=200"], &[], &[10]);
    assert!(e.message.contains("l_a"), "{e}");
    let s = Sweep { flag: "--s 16".into(), key: "s".into(), values: vec!["16".into()] };
    let e = err(&["p2sgrad"], std::slice::from_ref(&s), &[10]);
    assert!(e.location == "--s 16" && e.message.contains("\"s\""), "{e}");
    let e = err(&["cosface"], &[s.clone(), spec::parse_set("s=32").unwrap()], &[10]);
    assert!(e.message.contains("already swept"), "{e}");
    let e = err(&["cosface"], &[], &[1]);
    assert!(e.location == "--classes", "{e}");
    assert!(spec::parse_set("m").is_err() && spec::parse_set("m=").is_err() && spec::parse_set("=1").is_err());
}

#[test]
fn json_records_have_the_documented_shape() {
    let mut a = args(&["cosface:s=16", "p2sgrad"]);
    a.every = 45.0;
    a.classes = vec![100, 1000];
    let curves = curves::compute(&a).unwrap();
    let v: serde_json::Value = serde_json::from_str(&output::json(&curves).unwrap()).unwrap();
    let records = v.as_array().unwrap();
    assert_eq!(records.len(), 2 * 2 * 5, "2 losses × 2 class counts × 5 angles");
    let keys = [
        "classes",
        "coef_target",
        "feat_norm",
        "grad_norm_feature",
        "loss",
        "p_target",
        "params",
        "scale",
        "theta_deg",
    ];
    for r in records {
        let obj = r.as_object().unwrap();
        let mut got: Vec<&str> = obj.keys().map(String::as_str).collect();
        got.sort();
        assert_eq!(got, keys);
        for k in ["classes", "coef_target", "feat_norm", "grad_norm_feature", "p_target", "scale", "theta_deg"] {
            assert!(obj[k].as_f64().is_some_and(f64::is_finite), "{k} in {r}");
        }
    }
    assert_eq!(records[0]["loss"], "cosface");
    assert_eq!(records[0]["params"], serde_json::json!({"s": 16.0, "m": 0.35}));
    assert_eq!(records[0]["theta_deg"], 0.0);
    assert_eq!(records[4]["theta_deg"], 180.0);
    assert_eq!(records[5]["classes"], 1000);
    assert_eq!(records[10]["loss"], "p2sgrad");
    assert_eq!(records[10]["params"], serde_json::json!({"reduction": "paper"}));
    // θ = 90° of P2SGrad: p = cos θ = 0, g = −1.
    assert_eq!(records[12]["p_target"], 0.0);
    assert_eq!(records[12]["coef_target"], -1.0);
}

#[test]
fn csv_and_table_formats() {
    let mut a = args(&["arcface:s=32", "normface"]);
    a.every = 30.0;
    let curves = curves::compute(&a).unwrap();
    let csv = output::csv(&curves);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "loss,params,classes,feat_norm,theta_deg,p_target,coef_target,grad_norm_feature,scale");
    assert_eq!(lines.len(), 1 + 2 * 7);
    let first: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(first.len(), 9);
    assert_eq!(first[0], "arcface");
    assert_eq!(first[1], "easy_margin=false gradient=exact m=0.5 s=32");
    for v in &first[2..] {
        assert!(v.parse::<f64>().is_ok(), "{v} in {}", lines[1]);
    }
    let table = output::table(&curves);
    assert!(table.contains("# arcface s=32 m=0.5  C=1000"), "{table}");
    assert!(table.contains("# normface s=10  C=1000"), "{table}");
    assert_eq!(table.matches("theta_deg").count(), 2);
    // The table prints the same numbers as the CSV, to 7 significant digits.
    let p60: f64 = lines[3].split(',').nth(5).unwrap().parse().unwrap();
    assert!(table.contains(&format!("{p60:.6e}")), "{p60:.6e} not in\n{table}");
}

#[test]
fn png_and_svg_figures_are_written() {
    let dir = tempfile::tempdir().unwrap();
    for (format, ext) in [(Format::Png, "png"), (Format::Svg, "svg")] {
        let mut a = args(&["p2sgrad", "cosface", "arcface"]);
        a.s = Some("16,64".into());
        a.classes = vec![1000, 100000];
        a.every = 5.0;
        a.format = format;
        a.out = Some(dir.path().to_path_buf());
        curves::run(&a).unwrap();
        let path = dir.path().join(format!("curves.{ext}"));
        let bytes = std::fs::read(&path).unwrap();
        if ext == "png" {
            let decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
            let reader = decoder.read_info().unwrap();
            let info = reader.info();
            // Two rows (class counts) of three panels.
            assert!(info.width > 1800 && info.height > 800, "{}×{}", info.width, info.height);
        } else {
            let text = String::from_utf8(bytes).unwrap();
            let doc = roxmltree::Document::parse(&text).unwrap();
            let texts: Vec<String> = doc
                .descendants()
                .filter(|n| n.has_tag_name("text"))
                .filter_map(|n| n.text().map(String::from))
                .collect();
            for needle in ["C = 1000", "C = 100000", "cosface s=16 m=0.35", "arcface s=64 m=0.5", "p2sgrad"] {
                assert!(texts.iter().any(|t| t.contains(needle)), "no \"{needle}\" in the SVG texts {texts:?}");
            }
        }
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 2, "only the two figures remain: {leftovers:?}");
}

#[test]
fn out_with_the_format_s_extension_is_the_file_itself() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (format, out, written) in [
        (Format::Png, "fig.png", "fig.png"),
        (Format::Svg, "new/sub/fig.svg", "new/sub/fig.svg"),
        (Format::Csv, "data.CSV", "data.CSV"),
        (Format::Json, "data.json", "data.json"),
        (Format::Table, "table.txt", "table.txt"),
        (Format::Png, "figures", "figures/curves.png"),
        (Format::Csv, "tables.v2", "tables.v2/curves.csv"),
    ] {
        let mut a = args(&["cosface"]);
        a.every = 30.0;
        a.format = format;
        a.out = Some(d.join(out));
        curves::run(&a).unwrap();
        let path = d.join(written);
        assert!(path.is_file(), "{out}: {} is not a file", path.display());
        let bytes = std::fs::read(&path).unwrap();
        match format {
            Format::Png => assert!(bytes.starts_with(b"\x89PNG"), "{out}"),
            Format::Svg => assert!(roxmltree::Document::parse(std::str::from_utf8(&bytes).unwrap()).is_ok(), "{out}"),
            Format::Csv => assert!(bytes.starts_with(b"loss,params,classes"), "{out}"),
            Format::Json => assert!(serde_json::from_slice::<serde_json::Value>(&bytes).unwrap().is_array(), "{out}"),
            Format::Table => assert!(bytes.starts_with(b"# cosface"), "{out}"),
        }
    }
    // An existing directory stays a directory, whatever its name.
    std::fs::create_dir(d.join("old.png")).unwrap();
    let mut a = args(&["cosface"]);
    a.format = Format::Png;
    a.out = Some(d.join("old.png"));
    curves::run(&a).unwrap();
    assert!(d.join("old.png/curves.png").is_file());
    // Another format's extension: exit code 2, nothing written.
    let out = Command::new(env!("CARGO_BIN_EXE_p2sbench"))
        .args(["curves", "--loss", "cosface", "--format", "png", "--out"])
        .arg(d.join("fig.svg"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--out") && stderr.contains("--format svg"), "{stderr}");
    assert!(!d.join("fig.svg").exists());
}

#[test]
fn the_command_prints_a_table_and_exits_2_on_bad_input() {
    let bin = env!("CARGO_BIN_EXE_p2sbench");
    let out = Command::new(bin)
        .args(["curves", "--loss", "arcface", "--s", "64", "--m", "0.5", "--classes", "10000", "--every", "45"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("# arcface s=64 m=0.5  C=10000"), "{stdout}");
    assert_eq!(stdout.lines().filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit())).count(), 5);

    for bad in [
        vec!["curves", "--loss", "nosuchloss"],
        vec!["curves", "--loss", "cosface:q=1"],
        vec!["curves", "--loss", "p2sgrad", "--s", "16"],
        vec!["curves", "--loss", "cosface", "--every", "0"],
    ] {
        let out = Command::new(bin).args(&bad).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {stderr}");
        assert!(stderr.starts_with("error: --"), "{bad:?}: {stderr}");
    }
}

/// `p2sbench capacity`: LOSSES.md's numbers as JSON, a figure file, and exit 2 for a bad count.
#[test]
fn the_capacity_command_states_the_bound() {
    let run = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_p2sbench")).arg("capacity").args(args).output().unwrap();
    let out = run(&["--classes", "200,32", "--embedding", "64", "--format", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let at = |i: usize, k: &str| rows[i][k].as_f64().unwrap();
    assert!((at(0, "best_mean_cos_y") - 0.32).abs() < 1e-12 && (at(0, "surrogate_bound") - 0.34).abs() < 1e-12);
    assert_eq!((at(1, "best_mean_cos_y"), at(1, "surrogate_bound"), at(1, "ratio")), (1.0, 0.0, 0.5));
    // Partial FC: ⌊0.25 · 10575⌋ = 2643 centres a step in 512 dimensions.
    let out = run(&["--classes", "10575", "--embedding", "512", "--sample-rate", "1,0.25", "--format", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((rows[0]["sampled"].as_i64(), rows[1]["sampled"].as_i64()), (Some(10575), Some(2643)));
    assert!((rows[1]["best_mean_cos_y"].as_f64().unwrap() - 512.0 / 2643.0).abs() < 1e-12);
    let bad = run(&["--sample-rate", "1.5"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--sample-rate"));
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("capacity.png");
    let out = run(&["--format", "png", "--out", png.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let decoder = png::Decoder::new(std::fs::File::open(&png).unwrap());
    let info = decoder.read_info().unwrap().info().clone();
    assert!(info.width > 800 && info.height > 300, "{}x{}", info.width, info.height);
    let bad = run(&["--classes", "0"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--classes"));
}

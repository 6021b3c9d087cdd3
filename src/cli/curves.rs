//! The `p2sbench curves` command: its arguments, its long help (the reference for the syntax,
//! the geometry and the output formats), and running it.

use crate::analysis::curves::{self, Curve};
use crate::analysis::output;
use crate::analysis::spec::{self, Sweep};
use crate::error::InputError;
use anyhow::Result;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// The long `--help` of `curves`.
pub const LONG_ABOUT: &str = "\
Compute, without training, how a loss treats a sample as a function of its target angle θ_y
(0° to 180°): the target probability P_y(θ), the target coefficient g_y(θ) = ∂L/∂cos θ_y and the
magnitude of the feature gradient ‖∂L/∂x‖. Every value comes from the loss implementation that
training uses (autograd on a [1, C] cosine row), not from re-derived formulas.

Loss settings:
  --loss NAME[:key=value,...]   one setting; repeat --loss to overlay several, e.g.
                                --loss p2sgrad --loss cosface:s=16,m=0.35 --loss arcface
  --s 16,32,64   --m 0.2,0.35   sweep s (or m) over every listed loss that has it and does not
                                set it in its --loss (p2sgrad has no s: it stays one curve)
  --set key=v1,v2               the same for any other parameter (--set t_alpha=0.5)
  --classes 1000,10000          number of classes C (a sweep too)
Parameters not given take the loss's defaults (`p2sbench losses` lists them). Each setting
is drawn for each C.

Geometry: one sample, ‖x‖ = --feat-norm (1), every ‖W_j‖ = 1, biases 0. Every non-target class
sits at 90° (cos θ_j = 0, so Σ_{j≠y} e^{f_j} = C − 1), the non-target class directions are
orthogonal to each other and to x̂, and the target direction lies in the plane of x̂ and one more
axis. Then ‖∂L/∂x‖² = (∂L/∂‖x‖)² + (g_y·sin θ_y/‖x‖)² + Σ_{j≠y} (g_j/‖x‖)².

Per-loss notes: P2SGrad has no probability; p_target is its stand-in cos θ_y (its coefficient is
cos θ_y − 1). Each point is a freshly built loss seeing that one sample: AdaCos (dynamic) sets
s from it, CurricularFace's t and AdaFace's norm statistics take their first update from it, as on
a first training step; SphereFace's λ is its step-0 value (give base=0 for λ = lambda_min). At
exactly 0° and 180° the losses that clamp cos θ before acos/sqrt report the clamped gradient.

Output (--format): table (default, to stdout: one block per setting), csv, json (to stdout, or
to a file with --out), png, svg (one row of P_y, g_y, ‖∂L/∂x‖ panels per C, one colour per loss,
lighter shades for its further settings). --out FILE whose extension is the format's (.png, .svg,
.csv, .json, .txt for table) writes that file; any other --out is a directory that receives
curves.<ext> (png and svg default to ./curves.png|svg). An --out with another format's extension
is an error.
CSV columns: loss,params,classes,feat_norm,theta_deg,p_target,coef_target,grad_norm_feature,scale
(params: key=value pairs separated by spaces). JSON: a list of records
  {\"loss\": \"arcface\", \"params\": {\"s\": 64.0, \"m\": 0.5, ...}, \"classes\": 10000, \"feat_norm\": 1.0,
   \"theta_deg\": 30.0, \"p_target\": …, \"coef_target\": …, \"grad_norm_feature\": …, \"scale\": 64.0}
one per setting and angle: params holds every parameter of the loss, coef_target is g_y per
sample, scale is the logit scale the loss reported (AdaCos: the adapted s).

The paper-style comparison (P2SGrad vs CosFace and ArcFace at three scales and class counts):
  p2sbench curves --loss p2sgrad --loss cosface --loss arcface --s 16,32,64 \\
      --classes 1000,10000,100000 --format png --out curves.png

Exit status 2 for an invalid setting (unknown loss or parameter, value out of range).";

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
    Png,
    Svg,
}

/// Arguments of `p2sbench curves`.
#[derive(Debug, Clone, clap::Args)]
pub struct CurvesArgs {
    /// A loss setting, NAME or NAME:key=value,... (e.g. cosface:s=16,m=0.35); repeat to overlay.
    #[arg(long = "loss", value_name = "SPEC", required = true)]
    pub losses: Vec<String>,
    /// Logit scale s for every listed loss that has one; a comma list sweeps it.
    #[arg(long, value_name = "S[,S...]", allow_hyphen_values = true)]
    pub s: Option<String>,
    /// Margin m for every listed loss that has one; a comma list sweeps it.
    #[arg(long, value_name = "M[,M...]", allow_hyphen_values = true)]
    pub m: Option<String>,
    /// Any other parameter for every listed loss that has it, e.g. --set t_alpha=0.5 (repeatable).
    #[arg(long = "set", value_name = "KEY=V[,V...]")]
    pub set: Vec<String>,
    /// Number of classes C; a comma list sweeps it.
    #[arg(long, value_name = "C[,C...]", value_delimiter = ',', default_value = "10000")]
    pub classes: Vec<i64>,
    /// Feature norm ‖x‖ (matters for softmax, L2-softmax, SphereFace, MagFace, AdaFace).
    #[arg(long, value_name = "NORM", default_value_t = 1.0)]
    pub feat_norm: f64,
    /// Spacing of the θ_y grid in degrees (0° to 180°, both included).
    #[arg(long, value_name = "DEG", default_value_t = 1.0)]
    pub every: f64,
    /// Output file, named with the format's extension (fig.png, fig.svg, data.csv, data.json,
    /// table.txt), or a directory that receives curves.<ext>; text formats go to stdout without it.
    #[arg(long, value_name = "FILE|DIR")]
    pub out: Option<PathBuf>,
    /// table, csv, json, png or svg.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

fn sweep(flag: &str, key: &str, values: &str) -> Sweep {
    Sweep {
        flag: format!("{flag} {values}"),
        key: key.into(),
        values: values.split(',').map(|v| v.trim().into()).collect(),
    }
}

/// Resolves the arguments and computes every curve.
pub fn compute(args: &CurvesArgs) -> Result<Vec<Curve>, InputError> {
    if !(args.every > 0.0 && args.every <= 180.0) {
        return Err(InputError {
            location: "--every".into(),
            message: format!("expected a spacing in degrees with 0 < DEG <= 180, found {}", args.every),
        });
    }
    if !(args.feat_norm > 0.0 && args.feat_norm.is_finite()) {
        return Err(InputError {
            location: "--feat-norm".into(),
            message: format!("expected a finite norm > 0, found {}", args.feat_norm),
        });
    }
    let mut sweeps = Vec::new();
    if let Some(s) = &args.s {
        sweeps.push(sweep("--s", "s", s));
    }
    if let Some(m) = &args.m {
        sweeps.push(sweep("--m", "m", m));
    }
    for text in &args.set {
        sweeps.push(spec::parse_set(text)?);
    }
    let specs = spec::resolve(&args.losses, &sweeps, &args.classes)?;
    let grid = curves::grid(args.every);
    Ok(specs.par_iter().map(|s| curves::compute(s, &grid, args.feat_norm)).collect())
}

/// Runs the command: prints the table, CSV or JSON, or writes the file and prints its path.
pub fn run(args: &CurvesArgs) -> Result<()> {
    let curves = compute(args)?;
    let (ext, text) = match args.format {
        Format::Table => ("txt", Some(output::table(&curves))),
        Format::Csv => ("csv", Some(output::csv(&curves))),
        Format::Json => ("json", Some(output::json(&curves)?)),
        Format::Png => ("png", None),
        Format::Svg => ("svg", None),
    };
    match (text, &args.out) {
        (Some(text), None) => print!("{text}"),
        (Some(text), Some(out)) => {
            let path = output_path(out, ext, "curves")?;
            crate::store::write_atomic(&path, text.as_bytes())?;
            println!("wrote {}", path.display());
        }
        (None, out) => {
            let path = output_path(out.as_deref().unwrap_or(Path::new(".")), ext, "curves")?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            output::write_image(&curves, &path, args.format == Format::Svg)?;
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}

/// The file to write: `out` itself when it is named with the format's extension (and is not an
/// existing directory), else `out/<stem>.<ext>`. Another format's extension is an error.
pub fn output_path(out: &Path, ext: &str, stem: &str) -> Result<PathBuf, InputError> {
    const FORMATS: [(&str, &str); 5] =
        [("png", "png"), ("svg", "svg"), ("csv", "csv"), ("json", "json"), ("txt", "table")];
    let given = out.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match given.as_deref().and_then(|g| FORMATS.iter().find(|(e, _)| *e == g)) {
        _ if out.is_dir() => Ok(out.join(format!("{stem}.{ext}"))),
        Some((e, _)) if *e == ext => Ok(out.to_path_buf()),
        Some((e, format)) => Err(InputError {
            location: "--out".into(),
            message: format!(
                "{} names a .{e} file but the output format writes .{ext}; give --format {format} or a name ending in .{ext}",
                out.display()
            ),
        }),
        None => Ok(out.join(format!("{stem}.{ext}"))),
    }
}

//! The `p2sbench capacity` command: P2SGrad's capacity bound (analysis::capacity) at given class
//! counts and embedding sizes, as a table, CSV, JSON or a figure.

use super::curves::{output_path, Format};
use crate::analysis::capacity::{self, Capacity};
use crate::error::InputError;
use anyhow::Result;
use std::path::{Path, PathBuf};

/// The long `--help` of `capacity`.
pub const LONG_ABOUT: &str = "\
P2SGrad's capacity bound, without training. With C unit class weights in D dimensions, P2SGrad's
surrogate ½Σ_j(cos θ_ij − 1[j=y])², averaged over balanced samples, is at least ½·max(0, 1 − D/C)
(the best rank-D approximation of the one-hot targets), and at that minimum the mean target
cosine is D/C: the best mean cos θ_y P2SGrad can reach is min(1, D/C). While C ≤ D it can pull
every feature onto its class weight; beyond, its optimum keeps features D/C of the way there
(C = 10,575 CASIA-WebFace identities at D = 512: 0.048). The cross-entropy losses have no such
bound. The derivation is in LOSSES.md; experiments/p2sgrad_capacity.toml measures it.

Under Partial FC (model.sample_rate r) each step's loss sees K = ⌊r·C⌋ class centres (the
batch's own among them), and the bound is the same at K/D: --sample-rate gives r.

For every (C, D, r) of --classes × --embedding × --sample-rate: K, K/D, the best mean cos θ_y
and the surrogate bound.
Output (--format): table (default), csv, json (stdout, or --out FILE), png, svg (the curves
against C/D on a log axis with the asked points marked; default ./capacity.png|svg). --out FILE
with the format's extension writes that file, any other --out is a directory that receives
capacity.<ext>.

Exit status 2 for a class count or embedding size below 1, or a rate outside (0, 1].";

/// Arguments of `p2sbench capacity`.
#[derive(Debug, Clone, clap::Args)]
pub struct CapacityArgs {
    /// Numbers of classes C (comma list).
    #[arg(long, value_name = "C[,C...]", value_delimiter = ',', default_value = "200,10575,85742")]
    pub classes: Vec<i64>,
    /// Embedding dimensions D (comma list).
    #[arg(long, value_name = "D[,D...]", value_delimiter = ',', default_value = "64,512")]
    pub embedding: Vec<i64>,
    /// Partial FC's sample rates r (comma list): each step's loss sees ⌊r·C⌋ class centres.
    #[arg(long, value_name = "R[,R...]", value_delimiter = ',', default_value = "1")]
    pub sample_rate: Vec<f64>,
    /// Output file (named with the format's extension) or directory; text goes to stdout without it.
    #[arg(long, value_name = "FILE|DIR")]
    pub out: Option<PathBuf>,
    /// table, csv, json, png or svg.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// The bound at every asked (C, D).
pub fn compute(args: &CapacityArgs) -> Result<Vec<Capacity>, InputError> {
    for (flag, values) in [("--classes", &args.classes), ("--embedding", &args.embedding)] {
        if let Some(v) = values.iter().find(|&&v| v < 1) {
            return Err(InputError {
                location: flag.into(),
                message: format!("expected counts of at least 1, found {v}"),
            });
        }
    }
    if let Some(r) = args.sample_rate.iter().find(|&&r| !(r > 0.0 && r <= 1.0)) {
        return Err(InputError {
            location: "--sample-rate".into(),
            message: format!("expected rates in (0, 1], found {r}"),
        });
    }
    let mut points = Vec::new();
    for &c in &args.classes {
        for &d in &args.embedding {
            for &r in &args.sample_rate {
                points.push(capacity::sampled_capacity(c, ((r * c as f64) as i64).clamp(1, c), d));
            }
        }
    }
    Ok(points)
}

fn table(points: &[Capacity]) -> String {
    let rows: Vec<Vec<String>> = points
        .iter()
        .map(|p| {
            vec![
                p.classes.to_string(),
                p.sampled.to_string(),
                p.embedding.to_string(),
                format!("{:.4}", p.ratio),
                format!("{:.4}", p.best_mean_cos_y),
                format!("{:.4}", p.surrogate_bound),
            ]
        })
        .collect();
    let header = ["classes C", "sampled K", "embedding D", "K/D", "best mean cos θ_y", "surrogate bound"];
    crate::runner::text_columns(&header, &rows, &[true; 6])
}

fn csv(points: &[Capacity]) -> String {
    let mut out = String::from("classes,sampled,embedding,ratio,best_mean_cos_y,surrogate_bound\n");
    for p in points {
        out.push_str(&format!(
            "{},{},{},{},{},{}\n",
            p.classes, p.sampled, p.embedding, p.ratio, p.best_mean_cos_y, p.surrogate_bound
        ));
    }
    out
}

/// Runs the command: prints the table, CSV or JSON, or writes the file and prints its path.
pub fn run(args: &CapacityArgs) -> Result<()> {
    let points = compute(args)?;
    let (ext, text) = match args.format {
        Format::Table => ("txt", Some(table(&points))),
        Format::Csv => ("csv", Some(csv(&points))),
        Format::Json => ("json", Some(serde_json::to_string_pretty(&points)? + "\n")),
        Format::Png => ("png", None),
        Format::Svg => ("svg", None),
    };
    let path = match (&text, &args.out) {
        (Some(text), None) => {
            print!("{text}");
            return Ok(());
        }
        (_, out) => output_path(out.as_deref().unwrap_or(Path::new(".")), ext, "capacity")?,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    match text {
        Some(text) => crate::store::write_atomic(&path, text.as_bytes())?,
        None => capacity::write_image(&points, &path, args.format == Format::Svg)?,
    }
    println!("wrote {}", path.display());
    Ok(())
}

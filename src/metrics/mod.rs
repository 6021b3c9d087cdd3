//! Evaluation metrics without tensors: file formats and protocols on `[n, d]` f32 feature
//! matrices. Each protocol works on a feature matrix plus its own real file format, so features
//! from our trials and features exported from any other model score the same way; every result
//! carries the protocol variant that produced it.
//!
//! - [`npy`], [`pickle`]: the `.npy` feature files and insightface `.bin` packs.
//! - [`verification`]: the k-fold accuracy (LFW's metric) and LFW-style pair construction;
//!   [`lfw`]: `pairs.txt`, image lists, `.bin` packs, metric options.
//! - [`roc`]: ROC curves and TAR@FAR read-outs shared by MegaFace, IJB-C and plots.
//! - [`gemm`]: dense similarity blocks; [`megaface`]: Challenge 1 (devkit lists, per-image
//!   feature files, streaming rank-1 and TAR@FAR); [`ijbc`]: 1:1 and 1:N with template pooling.
//! - [`builtin`]: the same protocols constructed from held-out identities, from a seed;
//!   [`align`]: five-landmark alignment of IJB-C's loose crops (pixels in, pixels out).
//! - [`textfile`]: line-numbered parsing of the protocols' text files.
//! - [`bootstrap`]: each metric's 95 % interval by resampling the held-out identities, and the
//!   resolution of rates at a false-positive rate (the comparisons behind them).
//!
//! Nothing here knows about losses, networks or tensors: turning a network into features is
//! [`crate::extract`]'s job.

pub mod align;
pub mod bootstrap;
pub mod builtin;
pub mod gemm;
pub mod ijbc;
pub mod lfw;
pub mod megaface;
pub mod npy;
pub mod pickle;
pub mod roc;
pub mod textfile;
pub mod verification;

use serde_json::{Map, Value};

/// A feature matrix: row-major f32, `rows` × `dim`.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    pub rows: usize,
    pub dim: usize,
    pub data: Vec<f32>,
}

impl Features {
    /// Wraps row-major data; panics if `data.len() != rows * dim` (a programming error).
    pub fn new(rows: usize, dim: usize, data: Vec<f32>) -> Features {
        assert_eq!(data.len(), rows * dim, "feature data does not match its shape");
        Features { rows, dim, data }
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

/// An error at the first row of `features` (read from `path`) holding a NaN or infinity.
pub fn check_finite(features: &Features, path: &std::path::Path) -> Result<(), crate::error::InputError> {
    use rayon::prelude::*;
    let bad = features.data.par_chunks(features.dim.max(1)).position_first(|r| r.iter().any(|v| !v.is_finite()));
    match bad {
        Some(row) => Err(crate::error::InputError::record(path, row, "feature row holds NaN or infinity")),
        None => Ok(()),
    }
}

/// Scales every row of `data` ([_, dim]) to unit L2 norm; all-zero rows stay zero.
pub fn normalise_rows(data: &mut [f32], dim: usize) {
    use rayon::prelude::*;
    data.par_chunks_mut(dim.max(1)).for_each(|row| {
        let norm = row.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>().sqrt();
        if norm > 0.0 {
            let inv = (1.0 / norm) as f32;
            row.iter_mut().for_each(|v| *v *= inv);
        }
    });
}

/// What a metric's number rests on, beside its value.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricDetail {
    /// Impostor comparisons (TAR@FAR) or non-mated searches (TPIR@FPIR) behind a rate read at a
    /// false-positive rate.
    pub comparisons: Option<u64>,
    /// Whether those comparisons resolve the rate: at least 1/rate of them. An unresolvable
    /// point is the rate at the protocol's highest threshold, not a measurement at that rate.
    pub resolvable: Option<bool>,
    /// The 95 % percentile interval of `replicates`.
    pub interval: Option<(f64, f64)>,
    /// The metric recomputed on each bootstrap resample (NaN where a resample cannot be scored).
    pub replicates: Vec<f32>,
    /// What was resampled (`identity`, `pair`, `template`, `probe identity`).
    pub unit: Option<String>,
}

/// One row of a protocol's outcome as evals.parquet stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    pub variant: String,
    pub metric: String,
    pub value: f64,
    pub detail: MetricDetail,
}

/// One protocol's outcome: the settings that produced it and its metrics, both in a fixed order,
/// and per metric what it rests on (resolution, interval).
#[derive(Debug, Clone, PartialEq)]
pub struct ProtocolResult {
    pub protocol: String,
    pub variant: Vec<(String, Value)>,
    pub metrics: Vec<(String, f64)>,
    pub details: std::collections::BTreeMap<String, MetricDetail>,
}

impl ProtocolResult {
    pub fn new(protocol: &str) -> ProtocolResult {
        ProtocolResult {
            protocol: protocol.to_string(),
            variant: Vec::new(),
            metrics: Vec::new(),
            details: Default::default(),
        }
    }

    /// The detail record of metric `name`, created empty when absent.
    pub fn detail_mut(&mut self, name: &str) -> &mut MetricDetail {
        self.details.entry(name.to_string()).or_default()
    }

    /// Records that metric `name`, a rate read at false-positive rate `rate`, rests on
    /// `comparisons` impostor comparisons (or non-mated searches).
    pub fn resolution(&mut self, name: &str, comparisons: u64, rate: f64) {
        let d = self.detail_mut(name);
        d.comparisons = Some(comparisons);
        d.resolvable = Some(resolves(comparisons, rate));
    }

    /// Records a variant setting.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.variant.push((key.to_string(), value.into()));
    }

    /// Records a metric.
    pub fn metric(&mut self, name: impl Into<String>, value: f64) {
        self.metrics.push((name.into(), value));
    }

    /// The value of metric `name`, if recorded.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.metrics.iter().find(|(n, _)| n == name).map(|&(_, v)| v)
    }

    /// `{"protocol": ..., "variant": {...}, "metrics": {...}}`.
    pub fn to_json(&self) -> Value {
        let variant: Map<String, Value> = self.variant.iter().cloned().collect();
        let metrics: Map<String, Value> = self
            .metrics
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Number::from_f64(*v).map_or(Value::Null, Value::Number)))
            .collect();
        let number = |v: f64| serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number);
        let mut intervals = Map::new();
        let mut resolution = Map::new();
        for (name, d) in &self.details {
            if let Some((lo, hi)) = d.interval {
                let mut i = Map::new();
                i.insert("lo".into(), number(lo));
                i.insert("hi".into(), number(hi));
                i.insert("level".into(), number(0.95));
                i.insert("resamples".into(), Value::from(d.replicates.iter().filter(|v| v.is_finite()).count()));
                i.insert("unit".into(), d.unit.clone().map_or(Value::Null, Value::String));
                intervals.insert(name.clone(), Value::Object(i));
            }
            if let (Some(c), Some(r)) = (d.comparisons, d.resolvable) {
                let mut i = Map::new();
                i.insert("comparisons".into(), Value::from(c));
                i.insert("resolvable".into(), Value::Bool(r));
                resolution.insert(name.clone(), Value::Object(i));
            }
        }
        let mut out = Map::new();
        out.insert("protocol".into(), Value::String(self.protocol.clone()));
        out.insert("variant".into(), Value::Object(variant));
        out.insert("metrics".into(), Value::Object(metrics));
        if !intervals.is_empty() {
            out.insert("intervals".into(), Value::Object(intervals));
        }
        if !resolution.is_empty() {
            out.insert("resolution".into(), Value::Object(resolution));
        }
        Value::Object(out)
    }

    /// The variant as one line, `key=value; key=value`, as stored in evals.parquet.
    pub fn variant_text(&self) -> String {
        self.variant
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Rows for evals.parquet. A metric `g1/rank1` (one part of a protocol, here IJB-C's
    /// gallery G1) becomes metric `rank1` with `; part=g1` on the variant.
    pub fn rows(&self) -> Vec<MetricRow> {
        let base = self.variant_text();
        self.metrics
            .iter()
            .map(|(name, value)| {
                let (variant, metric) = match name.split_once('/') {
                    Some((part, metric)) => (format!("{base}; part={part}"), metric.to_string()),
                    None => (base.clone(), name.clone()),
                };
                let detail = self.details.get(name).cloned().unwrap_or_default();
                MetricRow { variant, metric, value: *value, detail }
            })
            .collect()
    }

    /// A human-readable table: the variant, then one metric per line.
    pub fn to_text(&self) -> String {
        let mut out = format!("{}  ({})\n", self.protocol, self.variant_text());
        for (name, value) in &self.metrics {
            let d = self.details.get(name);
            let mut line = format!("  {name:<28} {value:.6}");
            if let Some((lo, hi)) = d.and_then(|d| d.interval) {
                line.push_str(&format!("  95% [{lo:.6}, {hi:.6}]"));
            }
            if let (Some(c), Some(false)) = (d.and_then(|d| d.comparisons), d.and_then(|d| d.resolvable)) {
                line.push_str(&format!("  (not resolvable: {c} comparisons)"));
            }
            out.push_str(&line);
            out.push('\n');
        }
        out
    }
}

/// Whether `comparisons` impostor comparisons (or non-mated searches) resolve a rate read at
/// false-positive rate `rate`: at least 1/rate of them, so one false accept is at most `rate`.
pub fn resolves(comparisons: u64, rate: f64) -> bool {
    comparisons as f64 * rate >= 1.0 - 1e-9
}

/// `1e-6`-style text for a rate, as used in metric names.
pub fn rate_label(rate: f64) -> String {
    let exp = rate.log10().round() as i32;
    if (10f64.powi(exp) - rate).abs() <= rate * 1e-9 {
        format!("1e{exp}")
    } else {
        format!("{rate}")
    }
}

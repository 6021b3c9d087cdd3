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
//!
//! Nothing here knows about losses, networks or tensors: turning a network into features is
//! [`crate::extract`]'s job.

pub mod align;
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

/// One protocol's outcome: the settings that produced it and its metrics, both in a fixed order.
#[derive(Debug, Clone, PartialEq)]
pub struct ProtocolResult {
    pub protocol: String,
    pub variant: Vec<(String, Value)>,
    pub metrics: Vec<(String, f64)>,
}

impl ProtocolResult {
    pub fn new(protocol: &str) -> ProtocolResult {
        ProtocolResult { protocol: protocol.to_string(), variant: Vec::new(), metrics: Vec::new() }
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
        let mut out = Map::new();
        out.insert("protocol".into(), Value::String(self.protocol.clone()));
        out.insert("variant".into(), Value::Object(variant));
        out.insert("metrics".into(), Value::Object(metrics));
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

    /// Rows for evals.parquet: (variant, metric, value). A metric `g1/rank1` (one part of a
    /// protocol, here IJB-C's gallery G1) becomes metric `rank1` with `; part=g1` on the variant.
    pub fn rows(&self) -> Vec<(String, String, f64)> {
        let base = self.variant_text();
        self.metrics
            .iter()
            .map(|(name, value)| match name.split_once('/') {
                Some((part, metric)) => (format!("{base}; part={part}"), metric.to_string(), *value),
                None => (base.clone(), name.clone(), *value),
            })
            .collect()
    }

    /// A human-readable table: the variant, then one metric per line.
    pub fn to_text(&self) -> String {
        let mut out = format!("{}  ({})\n", self.protocol, self.variant_text());
        for (name, value) in &self.metrics {
            out.push_str(&format!("  {name:<28} {value:.6}\n"));
        }
        out
    }
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

//! Loss hyper-parameters: the values a `[[loss]]` block may hold, each loss's parameter
//! specification (kind, default, valid range), and the resolved configuration of one loss.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One resolved hyper-parameter value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl ParamValue {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ParamValue::Float(v) => Some(*v),
            ParamValue::Int(v) => Some(*v as f64),
            _ => None,
        }
    }

    /// Compact text for trial ids and tables: `64`, `0.5`, `true`, `mse-mean`.
    pub fn short(&self) -> String {
        match self {
            ParamValue::Bool(b) => b.to_string(),
            ParamValue::Int(i) => i.to_string(),
            ParamValue::Float(f) => format_float(*f),
            ParamValue::Str(s) => s.clone(),
        }
    }
}

/// Shortest text that reads back as the same f64 (`64`, `0.35`, `1e-6`).
pub fn format_float(v: f64) -> String {
    if v == v.trunc() && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The type a parameter takes, used to check TOML values.
#[derive(Debug, Clone, Copy)]
pub enum ParamKind {
    Float,
    Int,
    Bool,
    Choice(&'static [&'static str]),
}

impl ParamKind {
    pub fn describe(&self) -> String {
        match self {
            ParamKind::Float => "a number".into(),
            ParamKind::Int => "an integer".into(),
            ParamKind::Bool => "true or false".into(),
            ParamKind::Choice(c) => {
                format!("one of {}", c.iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", "))
            }
        }
    }
}

/// A default value, spelled so that it can live in a `static`.
#[derive(Debug, Clone, Copy)]
pub enum Default {
    Float(f64),
    Int(i64),
    Bool(bool),
    Str(&'static str),
}

impl Default {
    pub fn value(&self) -> ParamValue {
        match *self {
            Default::Float(v) => ParamValue::Float(v),
            Default::Int(v) => ParamValue::Int(v),
            Default::Bool(v) => ParamValue::Bool(v),
            Default::Str(v) => ParamValue::Str(v.to_string()),
        }
    }
}

/// One hyper-parameter of one loss.
#[derive(Debug, Clone, Copy)]
pub struct ParamSpec {
    pub name: &'static str,
    pub kind: ParamKind,
    pub default: Default,
    /// Range check on an already type-checked value; `Err` says what is expected.
    pub check: fn(&ParamValue) -> Result<(), String>,
    pub help: &'static str,
}

/// The logit scale s with the value most papers train with (64).
pub const SCALE_64: ParamSpec = ParamSpec {
    name: "s",
    kind: ParamKind::Float,
    default: Default::Float(64.0),
    check: positive,
    help: "logit scale s",
};

/// Accepts every value of the right kind.
pub fn any(_: &ParamValue) -> Result<(), String> {
    Ok(())
}

/// No constraint between parameters (the default [`super::LossEntry::validate`]).
pub fn no_constraints(_: &LossConfig) -> Result<(), String> {
    Ok(())
}

/// Accepts numbers > 0.
pub fn positive(v: &ParamValue) -> Result<(), String> {
    match v.as_f64() {
        Some(x) if x > 0.0 && x.is_finite() => Ok(()),
        _ => Err("a finite number > 0".into()),
    }
}

/// Accepts numbers ≥ 0.
pub fn non_negative(v: &ParamValue) -> Result<(), String> {
    match v.as_f64() {
        Some(x) if x >= 0.0 && x.is_finite() => Ok(()),
        _ => Err("a finite number >= 0".into()),
    }
}

/// The resolved configuration of one loss: its name and every parameter (defaults filled in).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossConfig {
    pub name: String,
    pub params: BTreeMap<String, ParamValue>,
}

impl LossConfig {
    /// A numeric parameter; panics only on a programming error (the spec was validated).
    pub fn f64(&self, key: &str) -> f64 {
        self.params
            .get(key)
            .and_then(ParamValue::as_f64)
            .unwrap_or_else(|| panic!("loss {} has no numeric parameter {key}", self.name))
    }

    pub fn str(&self, key: &str) -> &str {
        match self.params.get(key) {
            Some(ParamValue::Str(s)) => s,
            _ => panic!("loss {} has no text parameter {key}", self.name),
        }
    }

    pub fn bool(&self, key: &str) -> bool {
        match self.params.get(key) {
            Some(ParamValue::Bool(b)) => *b,
            _ => panic!("loss {} has no boolean parameter {key}", self.name),
        }
    }

    /// `arcface-s64-m0.5`: the name, then every numeric parameter, then non-default others.
    pub fn label(&self) -> String {
        let entry = super::find(&self.name);
        let mut out = self.name.clone();
        for (k, v) in &self.params {
            let default = entry.and_then(|e| e.params.iter().find(|p| p.name == k)).map(|p| p.default.value());
            let numeric = matches!(v, ParamValue::Float(_) | ParamValue::Int(_));
            if numeric || default.as_ref() != Some(v) {
                out.push('-');
                match v {
                    ParamValue::Bool(true) => out.push_str(k),
                    ParamValue::Bool(false) => out.push_str(&format!("no_{k}")),
                    ParamValue::Str(s) => out.push_str(s),
                    _ => out.push_str(&format!("{k}{}", v.short())),
                }
            }
        }
        out
    }

    /// `m=0.35, s=30`: every numeric parameter and the others that differ from their default.
    pub fn short_params(&self) -> String {
        let entry = super::find(&self.name);
        self.params
            .iter()
            .filter(|(k, v)| {
                let default =
                    entry.and_then(|e| e.params.iter().find(|p| p.name == k.as_str())).map(|p| p.default.value());
                v.as_f64().is_some() || default.as_ref() != Some(*v)
            })
            .map(|(k, v)| format!("{k}={}", v.short()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `s=64, m=0.5` for tables and summaries.
    pub fn params_text(&self) -> String {
        self.params.iter().map(|(k, v)| format!("{k}={}", v.short())).collect::<Vec<_>>().join(", ")
    }
}

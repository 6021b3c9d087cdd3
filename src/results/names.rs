//! Metric names as evals.parquet stores them, and what they mean for tables and figures.
//!
//! A metric is a plain name (`accuracy_mean`, `rank1`, `eer`) or a point on a curve,
//! `<name>@<parameter>=<number>`: `tar@far=1e-4` (ROC), `tpir@fpir=1e-2` (1:N), `cmc@rank=5`
//! (CMC; `rank5` is read the same way), `rank1@distractors=1000` (MegaFace rank-1 against the
//! gallery size). Values are fractions in [0, 1] for rates; they are shown as percentages.

use std::cmp::Ordering;

/// A parsed metric name.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// The name before `@` (`tar`, `rank1`, `accuracy_mean`).
    pub base: String,
    /// `(parameter, value)` after `@`, e.g. `("far", 1e-4)`.
    pub at: Option<(String, f64)>,
}

/// Which curve a metric is a point of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    /// TAR against FAR (1:1 verification).
    Roc,
    /// TPIR against FPIR (1:N open-set identification).
    Tpir,
    /// Identification rate against rank.
    Cmc,
    /// Rank-1 identification rate against the number of distractors.
    Distractors,
}

impl Metric {
    pub fn parse(name: &str) -> Metric {
        let name = name.trim();
        if let Some((base, at)) = name.split_once('@') {
            if let Some((p, v)) = at.split_once('=') {
                if let Ok(v) = v.trim().parse::<f64>() {
                    return Metric { base: base.trim().to_lowercase(), at: Some((p.trim().to_lowercase(), v)) };
                }
            }
        }
        Metric { base: name.to_lowercase(), at: None }
    }

    /// The curve this metric is a point of, and its x value.
    pub fn curve_point(&self) -> Option<(Curve, f64)> {
        match (&self.base[..], &self.at) {
            ("tar", Some((p, x))) if p == "far" => Some((Curve::Roc, *x)),
            ("tpir", Some((p, x))) if p == "fpir" => Some((Curve::Tpir, *x)),
            ("cmc" | "rank" | "identification_rate", Some((p, x))) if p == "rank" || p == "k" => Some((Curve::Cmc, *x)),
            ("rank1" | "rank-1", Some((p, x))) if p == "distractors" => Some((Curve::Distractors, *x)),
            (b, None) => b
                .strip_prefix("rank")
                .map(|k| k.trim_start_matches(['-', '_']))
                .and_then(|k| k.parse::<u32>().ok())
                .map(|k| (Curve::Cmc, k as f64)),
            _ => None,
        }
    }

    /// Whether a larger value is better (error rates and false-match rates are not).
    pub fn higher_is_better(&self) -> bool {
        !["eer", "fnir", "fpir", "far", "frr", "error", "loss"].iter().any(|w| self.base.contains(w))
    }

    /// Whether the value is a rate in [0, 1] (shown as a percentage).
    pub fn is_rate(&self) -> bool {
        ["accuracy", "tar", "tpir", "fnir", "fpir", "rank", "cmc", "eer", "auc", "identification", "verification"]
            .iter()
            .any(|w| self.base.starts_with(w))
    }

    /// Whether this is the spread across folds that a protocol reports next to its mean
    /// (`accuracy_std`): the report shows spread across seeds instead.
    pub fn is_fold_std(&self) -> bool {
        self.at.is_none() && self.base.ends_with("_std")
    }

    /// A short label: `accuracy`, `rank-1`, `TAR@FAR=1e-4`, `rank-1 @ 1000 distractors`.
    pub fn label(&self) -> String {
        match (self.curve_point(), &self.at) {
            (Some((Curve::Roc, x)), _) => format!("TAR@FAR={}", sci(x)),
            (Some((Curve::Tpir, x)), _) => format!("TPIR@FPIR={}", sci(x)),
            (Some((Curve::Cmc, x)), _) => format!("rank-{x}"),
            (Some((Curve::Distractors, x)), _) => format!("rank-1 @ {} distractors", count(x)),
            (None, Some((p, x))) => format!("{}@{}={}", self.base, p, sci(*x)),
            (None, None) if ["auc", "eer"].contains(&self.base.as_str()) => self.base.to_uppercase(),
            (None, None) => self.base.trim_end_matches("_mean").replace('_', " "),
        }
    }
}

/// `1e-4` style for powers of ten, plain otherwise.
pub fn sci(x: f64) -> String {
    let l = x.log10();
    if x > 0.0 && (l - l.round()).abs() < 1e-9 && !(0.0..=3.0).contains(&l) {
        format!("1e{}", l.round() as i64)
    } else {
        format!("{x}")
    }
}

/// `10⁶` counts as `1000000`-style text with thin grouping: `1,000,000`.
pub fn count(x: f64) -> String {
    let s = format!("{}", x.round() as i64);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A protocol's display name.
pub fn protocol_label(protocol: &str) -> String {
    match protocol.to_lowercase().as_str() {
        "lfw" => "LFW".into(),
        "megaface" => "MegaFace".into(),
        "ijbc" | "ijb-c" => "IJB-C".into(),
        "ijbb" | "ijb-b" => "IJB-B".into(),
        "cfp_fp" | "cfp-fp" => "CFP-FP".into(),
        "agedb_30" | "agedb-30" => "AgeDB-30".into(),
        _ => protocol.to_string(),
    }
}

/// Protocols in the order the tables list them.
pub fn protocol_rank(protocol: &str) -> usize {
    ["lfw", "cfp_fp", "agedb_30", "megaface", "ijbb", "ijbc"]
        .iter()
        .position(|p| p.eq_ignore_ascii_case(protocol))
        .unwrap_or(usize::MAX)
}

/// Whether a metric belongs in the paper-style table: plain metrics (not fold spreads), rank-1,
/// the decade points of TAR@FAR (1e-6 … 1e-1) and TPIR@FPIR, and MegaFace's largest gallery
/// (`largest_distractors`); other curve points are left to the figures.
pub fn is_headline(m: &Metric, largest_distractors: Option<f64>) -> bool {
    let decade = |x: f64| x > 0.0 && (x.log10() - x.log10().round()).abs() < 1e-9 && (1e-6..=0.1 + 1e-12).contains(&x);
    match m.curve_point() {
        Some((Curve::Roc | Curve::Tpir, x)) => decade(x),
        Some((Curve::Cmc, k)) => k == 1.0,
        Some((Curve::Distractors, n)) => Some(n) == largest_distractors,
        None => !m.is_fold_std(),
    }
}

/// Table order of metrics within a protocol: accuracy, rank-1, TAR by FAR, TPIR by FPIR, others.
pub fn metric_order(a: &Metric, b: &Metric) -> Ordering {
    fn key(m: &Metric) -> (u8, f64, String) {
        match m.curve_point() {
            _ if m.base.starts_with("accuracy") => (0, 0.0, m.base.clone()),
            Some((Curve::Cmc, k)) => (1, k, String::new()),
            Some((Curve::Distractors, n)) => (2, -n, String::new()),
            Some((Curve::Roc, x)) => (3, x, String::new()),
            Some((Curve::Tpir, x)) => (4, x, String::new()),
            None => (5, 0.0, m.base.clone()),
        }
    }
    let (ka, kb) = (key(a), key(b));
    ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1)).then(ka.2.cmp(&kb.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_curve_points() {
        assert_eq!(Metric::parse("tar@far=1e-4").curve_point(), Some((Curve::Roc, 1e-4)));
        assert_eq!(Metric::parse("TPIR@FPIR=0.01").curve_point(), Some((Curve::Tpir, 0.01)));
        assert_eq!(Metric::parse("cmc@rank=5").curve_point(), Some((Curve::Cmc, 5.0)));
        assert_eq!(Metric::parse("rank5").curve_point(), Some((Curve::Cmc, 5.0)));
        assert_eq!(Metric::parse("rank1@distractors=1000").curve_point(), Some((Curve::Distractors, 1000.0)));
        assert_eq!(Metric::parse("accuracy_mean").curve_point(), None);
        assert_eq!(Metric::parse("tar@far=x").at, None);
    }

    #[test]
    fn labels_and_headlines() {
        assert_eq!(Metric::parse("tar@far=1e-4").label(), "TAR@FAR=1e-4");
        assert_eq!(Metric::parse("accuracy_mean").label(), "accuracy");
        assert_eq!(Metric::parse("auc").label(), "AUC");
        assert_eq!(Metric::parse("rank1@distractors=1000000").label(), "rank-1 @ 1,000,000 distractors");
        assert!(is_headline(&Metric::parse("tar@far=1e-6"), None));
        assert!(!is_headline(&Metric::parse("tar@far=3e-4"), None));
        assert!(!is_headline(&Metric::parse("tar@far=1"), None));
        assert!(!is_headline(&Metric::parse("accuracy_std"), None));
        assert!(!is_headline(&Metric::parse("cmc@rank=5"), None));
        assert!(is_headline(&Metric::parse("rank1@distractors=1000"), Some(1000.0)));
        assert!(!Metric::parse("eer").higher_is_better());
        assert!(Metric::parse("rank1").higher_is_better());
    }
}

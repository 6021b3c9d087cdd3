//! IJB-C: template-based 1:1 verification and 1:N identification, as insightface's
//! `eval_ijbc.py` / `IJB_evals.py` compute them.
//!
//! Pooling: each image feature is L2-normalised (unless `keep_norm`) and optionally multiplied by
//! its detector score; images of one media within a template are averaged, the media means of a
//! template summed, and the sum L2-normalised. Scores are dot products of template features.
//!
//! - 1:1: TAR at FAR 1e-6 … 1e-1 read off the ROC curve ([`roc`]) at the point nearest each FAR
//!   (insightface; or [`FarReadout::AtMost`]), plus the AUC.
//! - 1:N, per gallery (G1, G2): a probe is mated when its subject is enrolled. CMC rank-k counts
//!   mated probes whose mate is within the top k (gallery templates of other subjects scoring at
//!   least the mate's score rank above it); TPIR @ FPIR uses the threshold at the ⌊FPIR·N⌋-th
//!   highest non-mated top score (N non-mated probes) and counts mated probes whose mate ranks
//!   first and scores above it. Reported per gallery and as the mean of the two.
//!
//! Formats are in [`meta`].

pub mod meta;

use super::roc::{FarReadout, Roc};
use super::{gemm, rate_label, Features, ProtocolResult};
use crate::error::InputError;
use meta::{ImageList, PairList, TemplateSubjects};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// The FARs of the 1:1 table.
pub const FARS: [f64; 6] = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1];
/// The FPIRs of the 1:N table.
pub const FPIRS: [f64; 2] = [1e-2, 1e-1];
/// The CMC ranks reported.
pub const RANKS: [usize; 3] = [1, 5, 10];

/// A protocol instance: per feature row its template and media, the 1:1 pairs and, optionally,
/// the 1:N galleries and probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IjbcProtocol {
    pub templates: Vec<u32>,
    pub medias: Vec<u32>,
    pub pairs: PairList,
    pub one_to_n: Option<OneToN>,
}

/// 1:N: two galleries and the mixed probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneToN {
    pub galleries: [TemplateSubjects; 2],
    pub probes: TemplateSubjects,
}

/// Pooling settings (the variant flags recorded with every number).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PoolOptions {
    /// Per-image detector scores to weight by.
    pub detector_scores: Option<Vec<f32>>,
    /// Keep each image feature's norm instead of normalising it first.
    pub keep_norm: bool,
}

/// Template features: ids ascending, rows L2-normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct Templates {
    pub ids: Vec<u32>,
    pub features: Features,
    index: TemplateIndex,
}

#[derive(Debug, Clone, PartialEq)]
enum TemplateIndex {
    Dense(Vec<u32>),
    Sparse(std::collections::HashMap<u32, u32>),
}

impl Templates {
    /// The row of template `id`.
    pub fn row_of(&self, id: u32) -> Option<usize> {
        let r = match &self.index {
            TemplateIndex::Dense(v) => v.get(id as usize).copied().filter(|&r| r != u32::MAX),
            TemplateIndex::Sparse(m) => m.get(&id).copied(),
        };
        r.map(|r| r as usize)
    }
}

fn build_index(ids: &[u32]) -> TemplateIndex {
    let max = ids.iter().copied().max().unwrap_or(0) as usize;
    if max < (1 << 26) {
        let mut v = vec![u32::MAX; max + 1];
        for (r, &id) in ids.iter().enumerate() {
            v[id as usize] = r as u32;
        }
        TemplateIndex::Dense(v)
    } else {
        TemplateIndex::Sparse(ids.iter().enumerate().map(|(r, &id)| (id, r as u32)).collect())
    }
}

/// Pools image features into template features (see the module docs).
pub fn pool(features: &Features, templates: &[u32], medias: &[u32], opts: &PoolOptions) -> Templates {
    let d = features.dim;
    assert_eq!(features.rows, templates.len());
    let mut order: Vec<u32> = (0..templates.len() as u32).collect();
    order.par_sort_unstable_by_key(|&i| (templates[i as usize], medias[i as usize], i));
    // Group boundaries: one group per template.
    let mut starts = vec![0usize];
    for k in 1..order.len() {
        if templates[order[k] as usize] != templates[order[k - 1] as usize] {
            starts.push(k);
        }
    }
    starts.push(order.len());
    let ids: Vec<u32> = starts[..starts.len() - 1].iter().map(|&s| templates[order[s] as usize]).collect();
    let mut data = vec![0f32; ids.len() * d];
    data.par_chunks_mut(d.max(1)).enumerate().for_each(|(t, out)| {
        let group = &order[starts[t]..starts[t + 1]];
        let mut template = vec![0f64; d];
        let mut media = vec![0f64; d];
        let mut k = 0;
        while k < group.len() {
            let m = medias[group[k] as usize];
            let mut count = 0usize;
            media.iter_mut().for_each(|v| *v = 0.0);
            while k < group.len() && medias[group[k] as usize] == m {
                let i = group[k] as usize;
                let row = features.row(i);
                let mut w = 1.0f64;
                if !opts.keep_norm {
                    let norm = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
                    w = if norm > 0.0 { 1.0 / norm } else { 0.0 };
                }
                if let Some(s) = &opts.detector_scores {
                    w *= s[i] as f64;
                }
                for (acc, &v) in media.iter_mut().zip(row) {
                    *acc += v as f64 * w;
                }
                count += 1;
                k += 1;
            }
            for (acc, v) in template.iter_mut().zip(&media) {
                *acc += v / count as f64;
            }
        }
        let norm = template.iter().map(|v| v * v).sum::<f64>().sqrt();
        let inv = if norm > 0.0 { 1.0 / norm } else { 0.0 };
        for (o, v) in out.iter_mut().zip(&template) {
            *o = (v * inv) as f32;
        }
    });
    let index = build_index(&ids);
    Templates { features: Features::new(ids.len(), d, data), ids, index }
}

/// 1:1 scores of `pairs` (every template must be pooled).
pub fn pair_scores(templates: &Templates, pairs: &PairList) -> Vec<f32> {
    let f = &templates.features;
    let mut scores = vec![0f32; pairs.t1.len()];
    scores.par_chunks_mut(1 << 14).enumerate().for_each(|(c, out)| {
        let base = c << 14;
        for (k, s) in out.iter_mut().enumerate() {
            let a = templates.row_of(pairs.t1[base + k]).expect("pair templates are validated");
            let b = templates.row_of(pairs.t2[base + k]).expect("pair templates are validated");
            *s = gemm::dot(f.row(a), f.row(b));
        }
    });
    scores
}

/// 1:1 metrics: `tar@far=<far>` and `auc`.
pub fn one_to_one(scores: &[f32], genuine: &[bool], readout: FarReadout) -> Vec<(String, f64)> {
    let roc = Roc::from_scores(scores, genuine, true);
    let mut out = Vec::new();
    for far in FARS {
        if let Some(r) = roc.tar_at_far(far, readout) {
            out.push((format!("tar@far={}", rate_label(far)), r.tar));
        }
    }
    if let Some(auc) = roc.auc() {
        out.push(("auc".to_string(), auc));
    }
    out
}

/// One 1:N search: the probe's subject, and either its mate's rank and score (mated) or its
/// highest score (non-mated).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Search {
    Mated { subject: u32, rank: usize, mate_score: f32 },
    NonMated { subject: u32, top_score: f32 },
}

impl Search {
    pub fn subject(&self) -> u32 {
        match *self {
            Search::Mated { subject, .. } | Search::NonMated { subject, .. } => subject,
        }
    }
}

/// Every probe's search of one gallery, in probe order.
pub fn searches(templates: &Templates, gallery: &TemplateSubjects, probes: &TemplateSubjects) -> Vec<Search> {
    let d = templates.features.dim;
    let gather = |ts: &TemplateSubjects| -> Vec<f32> {
        ts.templates
            .iter()
            .flat_map(|&t| templates.features.row(templates.row_of(t).expect("1:N templates are validated")).to_vec())
            .collect()
    };
    let (g, q) = (gather(gallery), gather(probes));
    let (ng, nq) = (gallery.templates.len(), probes.templates.len());
    let sim = gemm::scores(&q, nq, &g, ng, d);
    probes
        .subjects
        .iter()
        .enumerate()
        .map(|(p, &subject)| {
            let row = &sim[p * ng..(p + 1) * ng];
            let mates: Vec<usize> = (0..ng).filter(|&j| gallery.subjects[j] == subject).collect();
            if mates.is_empty() {
                return Search::NonMated { subject, top_score: row.iter().copied().fold(f32::NEG_INFINITY, f32::max) };
            }
            let mate = mates.iter().map(|&j| row[j]).fold(f32::NEG_INFINITY, f32::max);
            let above = (0..ng).filter(|&j| gallery.subjects[j] != subject && row[j] >= mate).count();
            Search::Mated { subject, rank: above + 1, mate_score: mate }
        })
        .collect()
}

/// 1:N metrics of `searches`, search `i` counted `weight(i)` times: `rank1`, `rank5`, `rank10`,
/// `tpir@fpir=<fpir>`. Empty without a (weighted) mated search.
pub fn one_to_n_metrics(searches: &[Search], weight: impl Fn(usize) -> u64) -> Vec<(String, f64)> {
    let mut mated = 0u64;
    let mut by_rank = [0u64; RANKS.len()];
    let mut nonmated: Vec<(f32, u64)> = Vec::new();
    for (i, s) in searches.iter().enumerate() {
        let w = weight(i);
        match *s {
            Search::Mated { rank, .. } => {
                mated += w;
                for (k, &r) in RANKS.iter().enumerate() {
                    if rank <= r {
                        by_rank[k] += w;
                    }
                }
            }
            Search::NonMated { top_score, .. } if w > 0 => nonmated.push((top_score, w)),
            Search::NonMated { .. } => {}
        }
    }
    let mut out = Vec::new();
    if mated == 0 {
        return out;
    }
    for (k, &r) in RANKS.iter().enumerate() {
        out.push((format!("rank{r}"), by_rank[k] as f64 / mated as f64));
    }
    if !nonmated.is_empty() {
        nonmated.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        let total: u64 = nonmated.iter().map(|n| n.1).sum();
        for fpir in FPIRS {
            // The ⌊FPIR·N⌋-th highest non-mated top score (at least the first).
            let at = ((total as f64 * fpir) as u64).saturating_sub(1);
            let mut seen = 0u64;
            let threshold = nonmated
                .iter()
                .find(|n| {
                    seen += n.1;
                    seen > at
                })
                .map_or(f32::NEG_INFINITY, |n| n.0);
            let hits: u64 = searches
                .iter()
                .enumerate()
                .filter_map(|(i, s)| match *s {
                    Search::Mated { rank: 1, mate_score, .. } if mate_score > threshold => Some(weight(i)),
                    _ => None,
                })
                .sum();
            out.push((format!("tpir@fpir={}", rate_label(fpir)), hits as f64 / mated as f64));
        }
    }
    out
}

/// 1:N metrics of one gallery: `rank1`, `rank5`, `rank10`, `tpir@fpir=<fpir>`.
pub fn one_to_n_gallery(
    templates: &Templates,
    gallery: &TemplateSubjects,
    probes: &TemplateSubjects,
) -> Vec<(String, f64)> {
    one_to_n_metrics(&searches(templates, gallery, probes), |_| 1)
}

/// What [`evaluate`] computed, for recomputing its metrics on resamples ([`super::bootstrap`]):
/// the 1:1 scores in pair order and each gallery's searches.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parts {
    pub scores: Vec<f32>,
    pub searches: Option<[Vec<Search>; 2]>,
}

/// Non-mated searches of `probes` against `gallery`: probes whose subject is not enrolled.
pub fn non_mated(gallery: &TemplateSubjects, probes: &TemplateSubjects) -> u64 {
    let enrolled: std::collections::HashSet<u32> = gallery.subjects.iter().copied().collect();
    probes.subjects.iter().filter(|s| !enrolled.contains(s)).count() as u64
}

/// Runs the protocol on `features` (rows in the protocol's image order).
pub fn evaluate(
    protocol: &IjbcProtocol,
    features: &Features,
    pool_opts: &PoolOptions,
    readout: FarReadout,
) -> ProtocolResult {
    evaluate_parts(protocol, features, pool_opts, readout).0
}

/// [`evaluate`], and the parts its metrics were computed from.
pub fn evaluate_parts(
    protocol: &IjbcProtocol,
    features: &Features,
    pool_opts: &PoolOptions,
    readout: FarReadout,
) -> (ProtocolResult, Parts) {
    let templates = pool(features, &protocol.templates, &protocol.medias, pool_opts);
    let scores = pair_scores(&templates, &protocol.pairs);
    let mut parts = Parts::default();
    let mut r = ProtocolResult::new("ijbc");
    r.set("image_norm", if pool_opts.keep_norm { "kept" } else { "l2-normalised" });
    r.set("detector_score_weighting", pool_opts.detector_scores.is_some());
    r.set("pooling", "mean within media, sum over media, l2-normalise");
    r.set("score", "dot product of template features");
    r.set("far_readout", readout.name());
    r.set("roc", "sklearn roc_curve points (drop_intermediate)");
    r.set("pairs", protocol.pairs.t1.len());
    r.set("templates", templates.ids.len());
    let impostors = protocol.pairs.genuine.iter().filter(|&&g| !g).count() as u64;
    for (name, value) in one_to_one(&scores, &protocol.pairs.genuine, readout) {
        r.metric(name, value);
    }
    for far in FARS {
        let name = format!("tar@far={}", rate_label(far));
        if r.get(&name).is_some() {
            r.resolution(&name, impostors, far);
        }
    }
    if let Some(one_to_n) = &protocol.one_to_n {
        r.set(
            "one_to_n",
            "rank/tpir: mean of galleries G1 and G2 (g1/…, g2/…: each gallery); rank ties count against the mate",
        );
        let found = [0, 1].map(|g| searches(&templates, &one_to_n.galleries[g], &one_to_n.probes));
        let per: Vec<Vec<(String, f64)>> = found.iter().map(|s| one_to_n_metrics(s, |_| 1)).collect();
        parts.searches = Some(found);
        for (name, v1) in &per[0] {
            if let Some((_, v2)) = per[1].iter().find(|(n, _)| n == name) {
                r.metric(name.clone(), (v1 + v2) / 2.0);
            }
        }
        for (gi, metrics) in per.iter().enumerate() {
            for (name, value) in metrics {
                r.metric(format!("g{}/{name}", gi + 1), *value);
            }
        }
        let non_mated_counts = [0, 1].map(|g| non_mated(&one_to_n.galleries[g], &one_to_n.probes));
        for fpir in FPIRS {
            let name = format!("tpir@fpir={}", rate_label(fpir));
            for (gi, &n) in non_mated_counts.iter().enumerate() {
                let part = format!("g{}/{name}", gi + 1);
                if r.get(&part).is_some() {
                    r.resolution(&part, n, fpir);
                }
            }
            if r.get(&name).is_some() {
                r.resolution(&name, non_mated_counts[0].min(non_mated_counts[1]), fpir);
            }
        }
    }
    parts.scores = scores;
    (r, parts)
}

/// The meta files of a directory (looked up in `dir` and then `dir/meta`).
#[derive(Debug, Clone)]
pub struct MetaFiles {
    pub images: PathBuf,
    pub pairs: PathBuf,
    pub scores: PathBuf,
    pub galleries: [PathBuf; 2],
    pub probes: PathBuf,
}

impl MetaFiles {
    pub fn locate(dir: &Path) -> Result<MetaFiles, InputError> {
        let base = if dir.join("ijbc_face_tid_mid.txt").is_file() { dir.to_path_buf() } else { dir.join("meta") };
        let files = MetaFiles {
            images: base.join("ijbc_face_tid_mid.txt"),
            pairs: base.join("ijbc_template_pair_label.txt"),
            scores: base.join("ijbc_name_5pts_score.txt"),
            galleries: [base.join("ijbc_1N_gallery_G1.csv"), base.join("ijbc_1N_gallery_G2.csv")],
            probes: base.join("ijbc_1N_probe_mixed.csv"),
        };
        for p in [&files.images, &files.pairs] {
            if !p.is_file() {
                return Err(InputError::file(
                    p,
                    "missing: the 1:1 protocol needs ijbc_face_tid_mid.txt and ijbc_template_pair_label.txt",
                ));
            }
        }
        Ok(files)
    }

    /// Whether all three 1:N files are present.
    pub fn has_one_to_n(&self) -> bool {
        self.galleries.iter().chain([&self.probes]).all(|p| p.is_file())
    }
}

/// Loads and cross-checks the protocol: every template of the pairs and 1:N files has images.
pub fn load(files: &MetaFiles) -> Result<(IjbcProtocol, ImageList), InputError> {
    let images = meta::read_image_list(&files.images)?;
    let pairs = meta::read_pairs(&files.pairs)?;
    let known = build_index(&images.templates);
    let missing = |t: u32| match &known {
        TemplateIndex::Dense(v) => v.get(t as usize).is_none_or(|&r| r == u32::MAX),
        TemplateIndex::Sparse(m) => !m.contains_key(&t),
    };
    if let Some(k) = (0..pairs.t1.len()).find(|&k| missing(pairs.t1[k]) || missing(pairs.t2[k])) {
        let t = if missing(pairs.t1[k]) { pairs.t1[k] } else { pairs.t2[k] };
        return Err(InputError::line(
            &files.pairs,
            crate::metrics::textfile::nth_record_line(&files.pairs, k),
            format!("template {t} has no images in {}", files.images.display()),
        ));
    }
    let one_to_n = if files.has_one_to_n() {
        let mut sets = Vec::new();
        for path in files.galleries.iter().chain([&files.probes]) {
            let ts = meta::read_1n(path)?;
            if let Some(&t) = ts.templates.iter().find(|&&t| missing(t)) {
                return Err(InputError::file(
                    path,
                    format!("template {t} has no images in {}", files.images.display()),
                ));
            }
            sets.push(ts);
        }
        let probes = sets.pop().expect("three sets");
        let g2 = sets.pop().expect("three sets");
        let g1 = sets.pop().expect("three sets");
        Some(OneToN { galleries: [g1, g2], probes })
    } else {
        None
    };
    let protocol = IjbcProtocol { templates: images.templates.clone(), medias: images.medias.clone(), pairs, one_to_n };
    Ok((protocol, images))
}

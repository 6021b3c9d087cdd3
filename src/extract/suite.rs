//! The protocols an experiment's `[eval]` selects, run on a network during training.
//!
//! [`Suite::new`] constructs the built-in protocols once from the held-out identities and
//! `data.seed`, and parses the real-file protocols (decoding their small image sets), so a
//! malformed file stops the run before training with an [`InputError`] naming it. Large real
//! image sets (MegaFace distractors, IJB-C) are decoded and embedded in chunks at every evaluation.

use super::features::{self, Embedder};
use crate::data::{images, ImageSet};
use crate::error::InputError;
use crate::metrics::bootstrap::{self, IjbcUnits, Resampling};
use crate::metrics::builtin::{self, IjbcStyleOptions, MegafaceStyle};
use crate::metrics::ijbc::{self, IjbcProtocol, PoolOptions};
use crate::metrics::lfw::{self, Distance, LfwOptions, ThresholdGrid};
use crate::metrics::megaface::{self, formats, DistractorSets, InMemory, MegafaceOptions};
use crate::metrics::roc::FarReadout;
use crate::metrics::verification::{self, Pair};
use crate::metrics::{align, Features, ProtocolResult};
use crate::spec::{DataSpec, EvalSpec, FlipMode};
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::PathBuf;
use tch::Device;

/// Images embedded per chunk when a real image set is streamed.
const CHUNK: usize = 4096;

/// Prepared protocols.
pub struct Suite {
    lfw_pairs: Vec<Pair>,
    megaface: Option<MegafaceStyle>,
    ijbc: Option<IjbcProtocol>,
    real: Real,
}

/// A real LFW-style protocol: images, pairs, folds, source text, and the resampling units of
/// each pair's images with their count and name.
struct RealLfw {
    set: ImageSet,
    pairs: Vec<Pair>,
    folds: usize,
    source: String,
    units: Vec<(u32, u32)>,
    unit_count: usize,
    unit: &'static str,
}

#[derive(Default)]
struct Real {
    lfw: Option<RealLfw>,
    /// `[eval.bins]`: more .bin verification sets, each reported under its name.
    bins: Vec<(String, RealLfw)>,
    megaface: Option<MegafaceReal>,
    ijbc: Option<IjbcReal>,
}

struct MegafaceReal {
    probes: ImageSet,
    probe_ids: Vec<u32>,
    noisy: Option<Vec<bool>>,
    distractors: Vec<PathBuf>,
    sets: DistractorSets,
    /// Distractor entries removed by the noise list, if one was given.
    removed: Option<usize>,
}

struct IjbcReal {
    protocol: IjbcProtocol,
    images: Vec<PathBuf>,
    landmarks: Vec<[[f32; 2]; 5]>,
    scores: Option<Vec<f32>>,
}

fn selected(spec: &EvalSpec, protocol: &str) -> bool {
    spec.protocols.iter().any(|p| p == protocol)
}

fn readout(text: &str) -> FarReadout {
    if text == "nearest" {
        FarReadout::Nearest
    } else {
        FarReadout::AtMost
    }
}

impl Suite {
    /// Constructs the selected built-in protocols over `heldout_labels` and reads the real files.
    pub fn new(spec: &EvalSpec, data: &DataSpec, heldout_labels: &[i64]) -> Result<Suite, InputError> {
        let lfw_pairs = if selected(spec, "lfw") && spec.lfw.pairs.is_none() && spec.lfw.bin.is_none() {
            verification::lfw_style_pairs(heldout_labels, spec.lfw.folds, spec.lfw.pairs_per_fold, data.seed)
        } else {
            Vec::new()
        };
        let megaface = (selected(spec, "megaface") && spec.megaface.probes.is_none()).then(|| {
            let identities = heldout_labels.iter().collect::<std::collections::BTreeSet<_>>().len();
            let k = spec.megaface.probe_identities.unwrap_or((identities / 5).max(1));
            builtin::megaface_style(heldout_labels, k, data.seed)
        });
        let ijbc = (selected(spec, "ijbc") && spec.ijbc.meta.is_none()).then(|| {
            let opts = IjbcStyleOptions {
                templates_per_identity: spec.ijbc.templates_per_identity,
                max_media_size: spec.ijbc.max_media_size,
                max_impostor_pairs: spec.ijbc.max_impostor_pairs,
            };
            builtin::ijbc_style(heldout_labels, &opts, data.seed)
        });
        Ok(Suite { lfw_pairs, megaface, ijbc, real: prepare_real(spec, data)? })
    }

    /// The built-in LFW-style pairs (empty when LFW is not selected or runs on real files).
    pub fn lfw_pairs(&self) -> &[Pair] {
        &self.lfw_pairs
    }

    /// Runs every selected protocol on `net`; `heldout` is the held-out image set.
    pub fn run(
        &self,
        spec: &EvalSpec,
        data: &DataSpec,
        net: &dyn Embedder,
        heldout: &ImageSet,
        device: Device,
    ) -> Result<Vec<ProtocolResult>, InputError> {
        let all = self.run_until(spec, data, net, heldout, device, &|| false)?;
        Ok(all.expect("never asked to stop"))
    }

    /// [`Suite::run`], asking `stop` before each protocol: `None` when it said to stop (a stop
    /// request during a long evaluation then waits for one protocol at most).
    pub fn run_until(
        &self,
        spec: &EvalSpec,
        data: &DataSpec,
        net: &dyn Embedder,
        heldout: &ImageSet,
        device: Device,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<Vec<ProtocolResult>>, InputError> {
        if stop() {
            return Ok(None);
        }
        let flip = spec.flip;
        let flip_name = flip_label(flip);
        let embed = |set: &ImageSet| features::extract_features(net, set, flip, 256, device, false);
        let needs_heldout = !self.lfw_pairs.is_empty() || self.megaface.is_some() || self.ijbc.is_some();
        let held = needs_heldout.then(|| embed(heldout));
        let real = &self.real;
        let mut out = Vec::new();
        let lfw_opts = LfwOptions {
            distance: if spec.lfw.distance == "cosine" { Distance::Cosine } else { Distance::SquaredL2 },
            thresholds: spec.lfw.thresholds.parse::<ThresholdGrid>().unwrap_or_default(),
            folds: spec.lfw.folds,
        };
        let resampling = Resampling { resamples: spec.bootstrap, seed: data.seed };
        // Held-out identities as resampling units: the rank of each image's label.
        let (identity, identities) = identity_units(&heldout.labels);
        let lfw_run = |f: &Features, pairs: &[Pair], opts: &LfwOptions, units: &[(u32, u32)], n: usize, unit: &str| {
            let (_, mut r) = lfw::evaluate(f, pairs, opts);
            let dist = lfw::distances(f, pairs, opts.distance);
            bootstrap::lfw(&mut r, pairs, &dist, &opts.thresholds.values(), opts.folds, units, n, unit, resampling);
            r
        };
        if let (Some(f), false) = (&held, self.lfw_pairs.is_empty()) {
            let units: Vec<(u32, u32)> = self.lfw_pairs.iter().map(|p| (identity[p.a], identity[p.b])).collect();
            let mut r = lfw_run(f, &self.lfw_pairs, &lfw_opts, &units, identities, "identity");
            r.variant.insert(0, ("source".into(), "builtin heldout".into()));
            r.set("flip", flip_name.clone());
            out.push(r);
        }
        if stop() {
            return Ok(None);
        }
        let named = real.lfw.iter().map(|l| ("lfw", l)).chain(real.bins.iter().map(|(n, l)| (n.as_str(), l)));
        for (protocol, l) in named {
            let opts = LfwOptions { folds: l.folds, ..lfw_opts };
            let mut r = lfw_run(&embed(&l.set), &l.pairs, &opts, &l.units, l.unit_count, l.unit);
            r.protocol = protocol.to_string();
            r.variant.insert(0, ("source".into(), l.source.clone().into()));
            r.set("flip", flip_name.clone());
            out.push(r);
        }
        let mf_opts =
            MegafaceOptions { far: spec.megaface.far, readout: readout(&spec.megaface.far_readout), block: 4096 };
        if stop() {
            return Ok(None);
        }
        if let (Some(f), Some(m)) = (&held, &self.megaface) {
            let probes = gather(f, &m.probes);
            let distractors = gather(f, &m.distractors);
            let source = InMemory { data: &distractors.data, dim: f.dim };
            let sets = DistractorSets::prefixes(&m.sizes, m.distractors.len());
            let outcomes = megaface::evaluate(&probes, &m.probe_ids, &source, &sets, &mf_opts)?;
            let mut r = megaface::result(&outcomes, &mf_opts, "builtin heldout", "raw");
            megaface_intervals(&mut r, &outcomes, &mf_opts, &m.probe_ids, resampling);
            r.set("flip", flip_name.clone());
            out.push(r);
        }
        if stop() {
            return Ok(None);
        }
        if let Some(m) = &real.megaface {
            out.push(run_megaface_real(m, &mf_opts, &embed, data, &flip_name, resampling)?);
        }
        let ij_readout = readout(&spec.ijbc.far_readout);
        if stop() {
            return Ok(None);
        }
        if let (Some(f), Some(p)) = (&held, &self.ijbc) {
            let pool = PoolOptions { detector_scores: None, keep_norm: spec.ijbc.keep_norm };
            let (mut r, parts) = ijbc::evaluate_parts(p, f, &pool, ij_readout);
            let owner: HashMap<u32, u32> = p.templates.iter().zip(&identity).map(|(&t, &u)| (t, u)).collect();
            let probe: Vec<u32> = p.one_to_n.as_ref().map_or(Vec::new(), |n| n.probes.subjects.clone());
            let units = IjbcUnits {
                template: &|t| owner[&t],
                probe: &probe,
                count: identities,
                names: ("identity", "probe identity"),
            };
            bootstrap::ijbc(&mut r, p, &parts, ij_readout, &units, resampling);
            r.variant.insert(0, ("source".into(), "builtin heldout".into()));
            r.set("flip", flip_name.clone());
            out.push(r);
        }
        if stop() {
            return Ok(None);
        }
        if let Some(j) = &real.ijbc {
            let set_of = |range: std::ops::Range<usize>| -> Result<ImageSet, InputError> {
                let pixels = range
                    .clone()
                    .into_par_iter()
                    .map(|i| {
                        let path = &j.images[i];
                        let bytes = std::fs::read(path)
                            .map_err(|e| InputError::file(path, format!("cannot read the image: {e}")))?;
                        let img = crate::data::folder::decode_bounded(&bytes)
                            .map_err(|m| InputError::file(path, m))?
                            .to_rgb8();
                        let (w, h) = (img.width() as usize, img.height() as usize);
                        Ok(align::align(img.as_raw(), w, h, &j.landmarks[i], data.image_size, data.channels))
                    })
                    .collect::<Result<Vec<_>, InputError>>()?;
                Ok(ImageSet {
                    pixels: pixels.concat(),
                    labels: vec![0; range.len()],
                    num_classes: 1,
                    channels: data.channels,
                    size: data.image_size,
                })
            };
            let f = embed_chunks(j.images.len(), set_of, &embed)?;
            let pool = PoolOptions { detector_scores: j.scores.clone(), keep_norm: spec.ijbc.keep_norm };
            let (mut r, parts) = ijbc::evaluate_parts(&j.protocol, &f, &pool, ij_readout);
            // The meta files tie no subject to a 1:1 template: each template is its own unit.
            let mut rank: HashMap<u32, u32> = HashMap::new();
            for &t in &j.protocol.templates {
                let next = rank.len() as u32;
                rank.entry(t).or_insert(next);
            }
            let probe: Vec<u32> = j
                .protocol
                .one_to_n
                .as_ref()
                .map_or(Vec::new(), |n| n.probes.templates.iter().map(|t| rank[t]).collect());
            let units = IjbcUnits {
                template: &|t| rank[&t],
                probe: &probe,
                count: rank.len(),
                names: ("template", "template"),
            };
            bootstrap::ijbc(&mut r, &j.protocol, &parts, ij_readout, &units, resampling);
            r.variant.insert(0, ("source".into(), "meta files, loose crops aligned by 5 landmarks".into()));
            r.set("flip", flip_name.clone());
            out.push(r);
        }
        Ok(Some(out))
    }
}

/// Each label's identity rank among the distinct labels (ascending), and how many there are.
fn identity_units(labels: &[i64]) -> (Vec<u32>, usize) {
    let distinct: std::collections::BTreeSet<i64> = labels.iter().copied().collect();
    let rank: HashMap<i64, u32> = distinct.iter().enumerate().map(|(i, &l)| (l, i as u32)).collect();
    (labels.iter().map(|l| rank[l]).collect(), distinct.len())
}

/// MegaFace's intervals over its probe identities.
fn megaface_intervals(
    r: &mut ProtocolResult,
    outcomes: &[megaface::SetOutcome],
    opts: &MegafaceOptions,
    probe_ids: &[u32],
    resampling: Resampling,
) {
    let identities = probe_ids.iter().map(|&i| i as usize + 1).max().unwrap_or(0);
    bootstrap::megaface(r, outcomes, opts.far, opts.readout, probe_ids, identities, resampling);
}

/// Rows `rows` of `f`, in order.
fn gather(f: &Features, rows: &[usize]) -> Features {
    Features::new(rows.len(), f.dim, rows.iter().flat_map(|&r| f.row(r).iter().copied()).collect())
}

/// Embeds `n` images built chunk by chunk by `set_of`.
fn embed_chunks(
    n: usize,
    set_of: impl Fn(std::ops::Range<usize>) -> Result<ImageSet, InputError>,
    embed: &dyn Fn(&ImageSet) -> Features,
) -> Result<Features, InputError> {
    let mut data = Vec::new();
    let mut dim = 0;
    for start in (0..n).step_by(CHUNK) {
        let f = embed(&set_of(start..(start + CHUNK).min(n))?);
        dim = f.dim;
        data.extend(f.data);
    }
    Ok(Features::new(n, dim, data))
}

fn run_megaface_real(
    m: &MegafaceReal,
    opts: &MegafaceOptions,
    embed: &dyn Fn(&ImageSet) -> Features,
    data: &DataSpec,
    flip_name: &str,
    resampling: Resampling,
) -> Result<ProtocolResult, InputError> {
    let mut probes = embed(&m.probes);
    let replaced = m.noisy.as_ref().map(|noisy| megaface::replace_noisy_probes(&mut probes, &m.probe_ids, noisy));
    let cleaning = megaface::cleaning_label(replaced, m.removed);
    let set_of =
        |range: std::ops::Range<usize>| images::load_paths(&m.distractors[range], data.channels, data.image_size);
    let distractors = embed_chunks(m.distractors.len(), set_of, embed)?;
    let source = InMemory { data: &distractors.data, dim: distractors.dim };
    let outcomes = megaface::evaluate(&probes, &m.probe_ids, &source, &m.sets, opts)?;
    let mut r = megaface::result(&outcomes, opts, "devkit lists of aligned images", &cleaning);
    megaface_intervals(&mut r, &outcomes, opts, &m.probe_ids, resampling);
    r.set("flip", flip_name);
    Ok(r)
}

/// Parses the real-file protocols of `spec` and decodes their small image sets.
fn prepare_real(spec: &EvalSpec, data: &DataSpec) -> Result<Real, InputError> {
    let mut real = Real::default();
    let (c, s) = (data.channels, data.image_size);
    // A .bin pack: images and pairs, no identities (each pair is its own resampling unit).
    let bin_pack = |bin: &std::path::Path| -> Result<RealLfw, InputError> {
        let pack = lfw::read_bin(bin)?;
        let set = images::load_encoded(bin, &pack.images, c, s)?;
        let pairs = pack.pairs();
        let units = (0..pairs.len() as u32).map(|i| (i, i)).collect();
        Ok(RealLfw {
            set,
            unit_count: pairs.len(),
            pairs,
            folds: spec.lfw.folds,
            source: format!("bin pack {}", bin.display()),
            units,
            unit: "pair",
        })
    };
    for (name, bin) in &spec.bins {
        real.bins.push((name.clone(), bin_pack(bin)?));
    }
    if selected(spec, "lfw") {
        if let Some(bin) = &spec.lfw.bin {
            real.lfw = Some(bin_pack(bin)?);
        } else if let (Some(pairs_path), Some(dir)) = (&spec.lfw.pairs, &spec.lfw.images) {
            let pairs = lfw::read_pairs(pairs_path)?;
            let (names, indexed) = lfw::unique_images(&pairs);
            let set = images::load_files(dir, &names, c, s)?;
            let source = format!("pairs {} + images {}", pairs_path.display(), dir.display());
            // Identities are the images' directories (`<name>/<name>_0001.jpg`).
            let person = |path: &str| path.split('/').next().unwrap_or(path).to_string();
            let mut rank: HashMap<String, u32> = HashMap::new();
            for n in &names {
                let next = rank.len() as u32;
                rank.entry(person(n)).or_insert(next);
            }
            let unit_of = |i: usize| rank[&person(&names[i])];
            let units = indexed.iter().map(|p| (unit_of(p.a), unit_of(p.b))).collect();
            real.lfw = Some(RealLfw {
                set,
                pairs: indexed,
                folds: pairs.folds,
                source,
                units,
                unit_count: rank.len(),
                unit: "identity",
            });
        }
    }
    let m = &spec.megaface;
    if selected(spec, "megaface") {
        if let (Some(probes), Some(proot), Some(droot)) = (&m.probes, &m.probe_images, &m.distractor_images) {
            let list = formats::read_list(probes, true)?;
            let mut id_index: HashMap<String, u32> = HashMap::new();
            let probe_ids: Vec<u32> = list
                .ids
                .as_ref()
                .expect("probe lists have ids")
                .iter()
                .map(|s| {
                    let n = id_index.len() as u32;
                    *id_index.entry(s.clone()).or_insert(n)
                })
                .collect();
            let probe_set = images::load_files(proot, &list.paths, c, s)?;
            let noisy = match &m.probe_noise {
                Some(p) => {
                    let noise = formats::read_noise_list(p)?;
                    Some(list.paths.iter().map(|path| formats::is_noise(&noise, path, 1)).collect())
                }
                None => None,
            };
            let noise = m.distractor_noise.as_deref().map(formats::read_noise_list).transpose()?;
            let lists = m.distractors.iter().map(|p| formats::read_list(p, false)).collect::<Result<Vec<_>, _>>()?;
            let mut row_of: HashMap<String, usize> = HashMap::new();
            let mut union: Vec<PathBuf> = Vec::new();
            let mut masks: Vec<u8> = Vec::new();
            let mut removed = 0usize;
            let mut order: Vec<usize> = (0..lists.len()).collect();
            order.sort_by_key(|&i| std::cmp::Reverse(lists[i].paths.len()));
            for &i in &order {
                for path in &lists[i].paths {
                    if noise.as_ref().is_some_and(|n| formats::is_noise(n, path, 3)) {
                        removed += 1;
                        continue;
                    }
                    let row = *row_of.entry(path.clone()).or_insert_with(|| {
                        union.push(droot.join(path));
                        masks.push(0);
                        union.len() - 1
                    });
                    masks[row] |= 1 << i;
                }
            }
            let mut names = Vec::new();
            for (list, path) in lists.iter().zip(&m.distractors) {
                let name = list.paths.len().to_string();
                if names.contains(&name) {
                    return Err(InputError::file(path, format!("a second distractor list of {name} entries")));
                }
                names.push(name);
            }
            let sets = DistractorSets { names, masks: (lists.len() > 1).then_some(masks) };
            let removed = noise.is_some().then_some(removed);
            real.megaface =
                Some(MegafaceReal { probes: probe_set, probe_ids, noisy, distractors: union, sets, removed });
        }
    }
    let j = &spec.ijbc;
    if selected(spec, "ijbc") {
        if let (Some(meta_dir), Some(image_dir)) = (&j.meta, &j.images) {
            let files = ijbc::MetaFiles::locate(meta_dir)?;
            let (protocol, list) = ijbc::load(&files)?;
            let (landmarks, scores) = ijbc::meta::read_landmarks(&files.scores, &list, &files.images)?;
            let images = list.names.iter().map(|n| image_dir.join(n)).collect();
            let scores = j.detector_scores.then_some(scores);
            real.ijbc = Some(IjbcReal { protocol, images, landmarks, scores });
        }
    }
    Ok(real)
}

/// A flip mode as variants record it.
pub fn flip_label(flip: FlipMode) -> String {
    format!("{flip:?}").to_lowercase()
}

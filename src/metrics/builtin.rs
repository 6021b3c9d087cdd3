//! Built-in protocols from held-out identities of any labelled image set, deterministic from a
//! seed: the same evaluation code then runs on them as on the real files.
//!
//! - LFW-style pairs: [`super::verification::lfw_style_pairs`].
//! - MegaFace-style ([`megaface_style`]): some identities are the probes (every image of theirs),
//!   the images of all other identities are distractors, in a seeded order; distractor sets are
//!   nested prefixes of sizes 10, 100, … up to the pool, and the whole pool.
//! - IJB-C-style ([`ijbc_style`]): each identity's images are split into templates, each template's
//!   images into media of 1..=`max_media_size` images; 1:1 pairs are every genuine template pair
//!   and every impostor pair (or a seeded sample of `max_impostor_pairs`); for 1:N the identities
//!   are split into two halves, G1 and G2, each enrolling its identities' first template, and
//!   every other template is a probe (mated in one gallery, non-mated in the other).

use super::ijbc::meta::{PairList, TemplateSubjects};
use super::ijbc::{IjbcProtocol, OneToN};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, HashSet};

fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// Image indices per identity, identities in increasing label order.
fn by_identity(labels: &[i64]) -> Vec<Vec<usize>> {
    let mut map: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (i, &l) in labels.iter().enumerate() {
        map.entry(l).or_default().push(i);
    }
    map.into_values().collect()
}

/// A MegaFace-style protocol over image indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MegafaceStyle {
    pub probes: Vec<usize>,
    /// Identity index of each probe.
    pub probe_ids: Vec<u32>,
    /// Distractor images in stream order; set s is the first `sizes[s]`.
    pub distractors: Vec<usize>,
    pub sizes: Vec<usize>,
}

/// Builds a MegaFace-style protocol; `probe_identities` is clamped to leave at least one
/// distractor identity.
pub fn megaface_style(labels: &[i64], probe_identities: usize, seed: u64) -> MegafaceStyle {
    let mut ids = by_identity(labels);
    let mut r = rng(seed, 2);
    ids.shuffle(&mut r);
    let k = probe_identities.clamp(1, ids.len().saturating_sub(1).max(1));
    let (probe_sets, rest) = ids.split_at(k.min(ids.len()));
    let mut probe_sets: Vec<&Vec<usize>> = probe_sets.iter().collect();
    probe_sets.sort_by_key(|s| s[0]);
    let mut probes = Vec::new();
    let mut probe_ids = Vec::new();
    for (id, set) in probe_sets.iter().enumerate() {
        probes.extend(set.iter().copied());
        probe_ids.extend(std::iter::repeat_n(id as u32, set.len()));
    }
    let mut distractors: Vec<usize> = rest.iter().flatten().copied().collect();
    distractors.sort_unstable();
    distractors.shuffle(&mut r);
    let pool = distractors.len();
    let mut sizes: Vec<usize> =
        std::iter::successors(Some(10usize), |s| s.checked_mul(10)).take_while(|&s| s <= pool).collect();
    if sizes.last() != Some(&pool) && pool > 0 {
        sizes.push(pool);
    }
    sizes.truncate(8);
    MegafaceStyle { probes, probe_ids, distractors, sizes }
}

/// Settings of the IJB-C-style construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IjbcStyleOptions {
    pub templates_per_identity: usize,
    pub max_media_size: usize,
    pub max_impostor_pairs: usize,
}

/// Builds an IJB-C-style protocol whose feature rows are the images of `labels`, in order.
pub fn ijbc_style(labels: &[i64], opts: &IjbcStyleOptions, seed: u64) -> IjbcProtocol {
    let ids = by_identity(labels);
    let mut r = rng(seed, 3);
    let mut templates = vec![0u32; labels.len()];
    let mut medias = vec![0u32; labels.len()];
    // Template ids per identity (1-based, consecutive); media ids global (1-based).
    let mut identity_templates: Vec<Vec<u32>> = Vec::with_capacity(ids.len());
    let (mut next_t, mut next_m) = (1u32, 1u32);
    for images in &ids {
        let mut imgs = images.clone();
        imgs.shuffle(&mut r);
        let t = opts.templates_per_identity.clamp(1, imgs.len());
        let mut mine = Vec::with_capacity(t);
        for k in 0..t {
            let (lo, hi) = (k * imgs.len() / t, (k + 1) * imgs.len() / t);
            let tid = next_t;
            next_t += 1;
            mine.push(tid);
            let mut at = lo;
            while at < hi {
                let len = r.gen_range(1..=opts.max_media_size.max(1)).min(hi - at);
                for &i in &imgs[at..at + len] {
                    templates[i] = tid;
                    medias[i] = next_m;
                }
                next_m += 1;
                at += len;
            }
        }
        identity_templates.push(mine);
    }
    // 1:1 pairs.
    let owner: Vec<usize> =
        identity_templates.iter().enumerate().flat_map(|(i, ts)| ts.iter().map(move |_| i)).collect();
    let all: Vec<u32> = identity_templates.iter().flatten().copied().collect();
    let mut pairs: Vec<(u32, u32, bool)> = Vec::new();
    for ts in &identity_templates {
        for (x, &a) in ts.iter().enumerate() {
            for &b in &ts[x + 1..] {
                pairs.push((a, b, true));
            }
        }
    }
    let n = all.len();
    let impostors_total: usize = {
        let same: usize = identity_templates.iter().map(|t| t.len() * t.len().saturating_sub(1) / 2).sum();
        n * n.saturating_sub(1) / 2 - same
    };
    if impostors_total <= opts.max_impostor_pairs {
        for a in 0..n {
            for b in a + 1..n {
                if owner[a] != owner[b] {
                    pairs.push((all[a], all[b], false));
                }
            }
        }
    } else {
        let mut seen = HashSet::new();
        while seen.len() < opts.max_impostor_pairs {
            let (a, b) = (r.gen_range(0..n), r.gen_range(0..n));
            if owner[a] != owner[b] && seen.insert((a.min(b), a.max(b))) {
                pairs.push((all[a.min(b)], all[a.max(b)], false));
            }
        }
    }
    pairs.sort_unstable();
    let pairs = PairList {
        t1: pairs.iter().map(|p| p.0).collect(),
        t2: pairs.iter().map(|p| p.1).collect(),
        genuine: pairs.iter().map(|p| p.2).collect(),
    };
    // 1:N: identities split into two galleries.
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.shuffle(&mut r);
    let half = order.len().div_ceil(2);
    let mut g = [Vec::new(), Vec::new()];
    let mut probes = Vec::new();
    for (pos, &i) in order.iter().enumerate() {
        let subject = i as u32;
        g[usize::from(pos >= half)].push((identity_templates[i][0], subject));
        probes.extend(identity_templates[i][1..].iter().map(|&t| (t, subject)));
    }
    let one_to_n = (!probes.is_empty() && ids.len() >= 2).then(|| OneToN {
        galleries: [TemplateSubjects::from_rows(&g[0]), TemplateSubjects::from_rows(&g[1])],
        probes: TemplateSubjects::from_rows(&probes),
    });
    IjbcProtocol { templates, medias, pairs, one_to_n }
}

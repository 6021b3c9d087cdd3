//! MegaFace on the devkit's real files: a probe list, one or more distractor lists (one per
//! distractor size; scored in a single pass over their union), per-image feature files under a
//! root, and optionally insightface's noise lists (the "cleaned" variant).

use super::formats::{self, FeatureLayout};
use super::{evaluate, replace_noisy_probes, result, DistractorSets, MatFiles, MegafaceOptions};
use crate::error::InputError;
use crate::metrics::{Features, ProtocolResult};
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::PathBuf;

/// What to score.
#[derive(Debug, Clone)]
pub struct MegafaceFiles {
    pub probes: PathBuf,
    pub distractors: Vec<PathBuf>,
    pub layout: FeatureLayout,
    /// insightface's `facescrub_noises.txt` (cleaned variant).
    pub probe_noise: Option<PathBuf>,
    /// insightface's `megaface_noises.txt` (cleaned variant).
    pub distractor_noise: Option<PathBuf>,
}

/// Runs the protocol on the files.
pub fn evaluate_files(files: &MegafaceFiles, opts: &MegafaceOptions) -> Result<ProtocolResult, InputError> {
    if files.distractors.is_empty() || files.distractors.len() > 8 {
        return Err(InputError::file(
            &files.probes,
            format!("{} distractor lists given; expected 1 to 8 (one per distractor size)", files.distractors.len()),
        ));
    }
    let probe_list = formats::read_list(&files.probes, true)?;
    let ids_text = probe_list.ids.as_ref().expect("probe lists have ids");
    let mut id_index: HashMap<&str, u32> = HashMap::new();
    let ids: Vec<u32> = ids_text
        .iter()
        .map(|s| {
            let n = id_index.len() as u32;
            *id_index.entry(s.as_str()).or_insert(n)
        })
        .collect();
    let lists = files.distractors.iter().map(|p| formats::read_list(p, false)).collect::<Result<Vec<_>, _>>()?;
    let distractor_noise = files.distractor_noise.as_deref().map(formats::read_noise_list).transpose()?;
    // Union of the lists, largest first, without the noisy distractors.
    let mut order: Vec<usize> = (0..lists.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(lists[i].paths.len()));
    let mut row_of: HashMap<&str, usize> = HashMap::new();
    let mut union: Vec<&str> = Vec::new();
    let mut masks: Vec<u8> = Vec::new();
    let mut removed = 0usize;
    for &i in &order {
        for path in &lists[i].paths {
            if distractor_noise.as_ref().is_some_and(|n| formats::is_noise(n, path, 3)) {
                removed += 1;
                continue;
            }
            let row = *row_of.entry(path.as_str()).or_insert_with(|| {
                union.push(path.as_str());
                masks.push(0);
                union.len() - 1
            });
            masks[row] |= 1 << i;
        }
    }
    let mut names: Vec<String> = Vec::new();
    for (list, path) in lists.iter().zip(&files.distractors) {
        let name = list.paths.len().to_string();
        if names.contains(&name) {
            return Err(InputError::file(
                path,
                format!("a second distractor list of {name} entries; give one list per distractor size"),
            ));
        }
        names.push(name);
    }
    let sets = if lists.len() == 1 {
        DistractorSets { names, masks: None }
    } else {
        DistractorSets { names, masks: Some(masks) }
    };
    // Probe features.
    let rows: Vec<Vec<f32>> =
        probe_list.paths.par_iter().map(|p| formats::read_mat(&files.layout.probe(p))).collect::<Result<_, _>>()?;
    let dim = rows[0].len();
    if let Some((i, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != dim) {
        return Err(InputError::file(
            files.layout.probe(&probe_list.paths[i]),
            format!("{}-d feature; the first probe's is {dim}-d", r.len()),
        ));
    }
    let mut probes = Features::new(rows.len(), dim, rows.concat());
    let replaced = match &files.probe_noise {
        Some(noise_path) => {
            let noise = formats::read_noise_list(noise_path)?;
            let noisy: Vec<bool> = probe_list.paths.iter().map(|p| formats::is_noise(&noise, p, 1)).collect();
            Some(replace_noisy_probes(&mut probes, &ids, &noisy))
        }
        None => None,
    };
    let cleaning = super::cleaning_label(replaced, distractor_noise.is_some().then_some(removed));
    let source = MatFiles { paths: union.iter().map(|p| files.layout.distractor(p)).collect(), dim };
    let outcomes = evaluate(&probes, &ids, &source, &sets, opts)?;
    let mut r = result(&outcomes, opts, "devkit lists and feature files", &cleaning);
    r.set("probes", probes.rows);
    r.set("identities", id_index.len());
    Ok(r)
}

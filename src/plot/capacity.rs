//! The capacity figure, for experiments that vary the classes per embedding dimension C/D
//! (`data.identities`, `model.embedding` or, under Partial FC, `model.sample_rate` swept: the
//! loss then sees K sampled centres a step, and the ratio is K/D): each loss's final mean target cosine
//! (training batches of the last epoch, mean over seeds) and held-out accuracy against C/D, over
//! P2SGrad's analytic best mean cos θ_y, min(1, D/C) ([`crate::analysis::capacity`]).

use super::{Ctx, Rendered};
use crate::analysis::capacity::{self, Measured};
use crate::results::{aggregate, floats, strings, Results};
use anyhow::Result;
use polars::prelude::*;
use std::collections::BTreeMap;

/// The headline metric the accuracy panel shows.
const ACCURACY: (&str, &str) = ("lfw", "accuracy_mean");

/// Each trial's value of a spec key: its swept column, else the experiment's setting.
fn per_trial(r: &Results, dotted: &str) -> Result<Vec<Option<f64>>> {
    if crate::results::has_column(&r.trials, dotted) {
        return floats(&r.trials, dotted);
    }
    let v = r.spec_value(dotted).and_then(|v| v.as_integer()).map(|v| v as f64);
    Ok(vec![v; r.trials.height()])
}

/// Per trial: mean `cos_y_mean` over the logged steps of its last epoch, and the mean number of
/// class centres those steps' loss saw (`sampled_classes`: fewer than C under Partial FC; `None`
/// for steps.parquet files written before the column).
fn last_epoch_cos_y(r: &Results) -> Result<BTreeMap<String, (f64, Option<f64>)>> {
    let Some(steps) = &r.steps else { return Ok(BTreeMap::new()) };
    let last_epoch = steps.clone().lazy().group_by([col("trial")]).agg([col("epoch").max().alias("last_epoch")]);
    let sampled = crate::results::has_column(steps, "sampled_classes");
    let mut means = vec![col("cos_y_mean").mean()];
    if sampled {
        means.push(col("sampled_classes").cast(DataType::Float64).mean());
    }
    let last = steps
        .clone()
        .lazy()
        .join(last_epoch, [col("trial")], [col("trial")], JoinArgs::new(JoinType::Inner))
        .filter(col("epoch").eq(col("last_epoch")))
        .group_by([col("trial")])
        .agg(means)
        .collect()?;
    let k = if sampled { floats(&last, "sampled_classes")? } else { vec![None; last.height()] };
    Ok(strings(&last, "trial")?
        .into_iter()
        .zip(floats(&last, "cos_y_mean")?)
        .zip(k)
        .filter_map(|((t, v), k)| Some((t, (v?, k.filter(|&k| k > 0.0).map(f64::round)))))
        .collect())
}

/// Per done trial: its last held-out accuracy (headline rows).
fn accuracy(r: &Results) -> Result<BTreeMap<String, f64>> {
    let Some(finals) = aggregate::final_evals(r) else { return Ok(BTreeMap::new()) };
    let df = finals
        .filter(col("protocol").eq(lit(ACCURACY.0)).and(col("metric").eq(lit(ACCURACY.1))))
        .select([col("trial"), col("value")])
        .collect()?;
    Ok(strings(&df, "trial")?.into_iter().zip(floats(&df, "value")?).filter_map(|(t, v)| Some((t, v?))).collect())
}

/// The capacity figure.
pub fn capacity(ctx: &Ctx) -> Result<Rendered> {
    let r = ctx.r;
    let (classes, embedding) = (per_trial(r, "data.identities")?, per_trial(r, "model.embedding")?);
    let cos_y = last_epoch_cos_y(r)?;
    let ids = strings(&r.trials, "trial")?;
    // Classes per dimension as the loss saw them: the sampled centres K under Partial FC.
    let ratios: Vec<Option<f64>> = (0..ids.len())
        .map(|i| {
            let k = cos_y.get(&ids[i]).and_then(|(_, k)| *k).or(classes[i])?;
            Some(k / embedding[i]?)
        })
        .collect();
    let mut distinct: Vec<f64> = ratios.iter().flatten().copied().collect();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    if distinct.len() < 2 {
        return Ok(Err(
            "the experiment does not vary the classes per dimension C/D (data.identities, model.embedding, model.sample_rate)".into(),
        ));
    }
    let acc = accuracy(r)?;
    let (losses, settings) = (strings(&r.trials, "loss")?, strings(&r.trials, "setting")?);
    let states = strings(&r.trials, "status")?;
    // (loss, ratio bits) → setting → (cos θ_y values, accuracies) over its done trials
    type Values = (Vec<f64>, Vec<f64>);
    let mut cells: BTreeMap<(String, u64), BTreeMap<String, Values>> = BTreeMap::new();
    for i in 0..ids.len() {
        let (Some(ratio), Some(&(cos, _))) = (ratios[i], cos_y.get(&ids[i])) else { continue };
        if states[i] != "done" {
            continue;
        }
        let entry =
            cells.entry((losses[i].clone(), ratio.to_bits())).or_default().entry(settings[i].clone()).or_default();
        entry.0.push(cos);
        entry.1.extend(acc.get(&ids[i]));
    }
    let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    let mut measured = Vec::new();
    for ((loss, bits), by_setting) in &cells {
        // Several settings at one C/D (an untuned sweep): the one with the best accuracy.
        let best = by_setting
            .values()
            .max_by(|a, b| mean(&a.1).unwrap_or(f64::NEG_INFINITY).total_cmp(&mean(&b.1).unwrap_or(f64::NEG_INFINITY)))
            .expect("a cell has a setting");
        let interval = |v: &[f64]| crate::stats::t_interval(v, crate::stats::LEVEL).map(|i| (i.lo, i.hi));
        measured.push(Measured {
            loss: loss.clone(),
            ratio: f64::from_bits(*bits),
            mean_cos_y: mean(&best.0).expect("a setting has a value"),
            accuracy: mean(&best.1),
            cos_y_interval: interval(&best.0),
            accuracy_interval: interval(&best.1),
        });
    }
    if measured.is_empty() {
        return Ok(Err("no done trial logged cos_y_mean".into()));
    }
    let fig = capacity::figure(&[], &measured, "LFW-style accuracy (%)");
    let caption = "Each loss's mean target cosine over its last epoch's training batches (mean over seeds) and its held-out LFW-style accuracy against the classes per embedding dimension C/D (under Partial FC K/D, K the class centres a step's loss sees), over P2SGrad's analytic optimum min(1, D/C) (LOSSES.md). Where a loss ran several settings at one C/D, the one with the best accuracy is drawn. Bars: 95 % t-intervals over seeds (drawn with two seeds or more).";
    Ok(Ok(vec![ctx.save(&fig, "capacity", "Mean target cosine against classes per dimension", caption)?]))
}

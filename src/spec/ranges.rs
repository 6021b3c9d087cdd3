//! Continuous ranges: a swept key written `{ uniform = [lo, hi], samples = n }` or
//! `{ log_uniform = [lo, hi], samples = n }` (optionally `seed = k`, default 0) in `[sweep]` or a
//! `[[loss]]` block becomes a list of n values, drawn before anything else reads the file, so
//! that a range is a sweep axis like any list. The draws are a Halton sequence (one prime base
//! per range: `[sweep]`'s ranges first, then each loss block's, each table's in the order of its
//! keys), each dimension shifted by a
//! rotation drawn from the seed (Cranley–Patterson), so that ranges zipped together (`zip`) form
//! one low-discrepancy design and the same file always gives the same values. Values keep 4
//! significant digits, so trial ids and labels stay readable.

use super::error::Key;
use super::sweep::Located;

/// The first primes: the Halton bases of the first ranges of a file.
const PRIMES: [u64; 16] = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53];
/// The most samples one range draws.
const MAX_SAMPLES: i64 = 10_000;

/// Replaces every range in `table` (its keys dotted below `at`) by the list of its samples;
/// `dimension` counts the ranges seen so far in the file.
pub fn expand(table: &mut toml::Table, at: &[Key], dimension: &mut usize) -> Result<(), Located> {
    for (key, value) in table.iter_mut() {
        let mut here = at.to_vec();
        here.push(Key::from(key.as_str()));
        let Some(inner) = value.as_table_mut() else { continue };
        if !(inner.contains_key("uniform") || inner.contains_key("log_uniform")) {
            expand(inner, &here, dimension)?;
            continue;
        }
        let name = dotted_name(&here);
        let samples = draw(inner, &name, *dimension).map_err(|m| (here.clone(), m))?;
        *dimension += 1;
        *value = toml::Value::Array(samples.into_iter().map(toml::Value::Float).collect());
    }
    Ok(())
}

/// `sweep.train.lr`, `loss[0].m`.
fn dotted_name(at: &[Key]) -> String {
    let mut name = String::new();
    for k in at {
        match k {
            Key::Name(n) if name.is_empty() => name.push_str(n),
            Key::Name(n) => name.push_str(&format!(".{n}")),
            Key::Index(i) => name.push_str(&format!("[{i}]")),
        }
    }
    name
}

/// The samples of one range table.
fn draw(range: &toml::Table, name: &str, dimension: usize) -> Result<Vec<f64>, String> {
    let usage = format!(
        "{name}: a range is {{ uniform = [lo, hi], samples = n }} or {{ log_uniform = [lo, hi], samples = n }}, optionally with seed = k"
    );
    if let Some(other) = range.keys().find(|k| !["uniform", "log_uniform", "samples", "seed"].contains(&k.as_str())) {
        return Err(format!("{usage}; unknown key \"{other}\""));
    }
    let log = match (range.get("uniform"), range.get("log_uniform")) {
        (Some(_), Some(_)) => return Err(format!("{usage}; not both")),
        (_, log) => log.is_some(),
    };
    let bounds = range.get(if log { "log_uniform" } else { "uniform" }).and_then(|v| v.as_array());
    let number = |v: &toml::Value| v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
    let (lo, hi) = match bounds.map(|b| b.iter().map(number).collect::<Option<Vec<f64>>>()) {
        Some(Some(b)) if b.len() == 2 => (b[0], b[1]),
        _ => return Err(format!("{usage}; the bounds are two numbers")),
    };
    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
        return Err(format!("{name}: the range [{lo}, {hi}] needs lo < hi"));
    }
    if log && lo <= 0.0 {
        return Err(format!("{name}: log_uniform needs positive bounds, found [{lo}, {hi}]"));
    }
    let samples = match range.get("samples").map(|v| v.as_integer()) {
        Some(Some(n)) if (1..=MAX_SAMPLES).contains(&n) => n as u64,
        Some(_) => return Err(format!("{name}: samples is a whole number from 1 to {MAX_SAMPLES}")),
        None => return Err(format!("{usage}; samples is missing")),
    };
    let seed = match range.get("seed").map(|v| v.as_integer()) {
        None => 0,
        Some(Some(s)) if s >= 0 => s as u64,
        Some(_) => return Err(format!("{name}: seed is a whole number ≥ 0")),
    };
    let Some(&base) = PRIMES.get(dimension) else {
        return Err(format!("{name}: at most {} ranges in one file", PRIMES.len()));
    };
    let shift = unit(splitmix(seed ^ splitmix(dimension as u64 + 1)));
    let values: Vec<f64> = (1..=samples)
        .map(|k| {
            let x = (radical_inverse(k, base) + shift).fract();
            let v = if log { (lo.ln() + x * (hi.ln() - lo.ln())).exp() } else { lo + x * (hi - lo) };
            significant(v, 4).clamp(lo, hi)
        })
        .collect();
    for (i, v) in values.iter().enumerate() {
        if values[..i].contains(v) {
            return Err(format!(
                "{name}: two of the {samples} samples round to {v} (4 significant digits); widen the range or draw fewer"
            ));
        }
    }
    Ok(values)
}

/// The van der Corput radical inverse of `k` in `base`: its digits mirrored after the point.
fn radical_inverse(mut k: u64, base: u64) -> f64 {
    let (mut x, mut scale) = (0.0, 1.0 / base as f64);
    while k > 0 {
        x += (k % base) as f64 * scale;
        k /= base;
        scale /= base as f64;
    }
    x
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// `v` rounded to `digits` significant digits.
fn significant(v: f64, digits: i32) -> f64 {
    if v == 0.0 {
        return 0.0;
    }
    let scale = 10f64.powi(digits - 1 - v.abs().log10().floor() as i32);
    (v * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(text: &str) -> toml::Table {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn halton_points_fill_the_unit_interval_evenly() {
        assert_eq!((1..=4).map(|k| radical_inverse(k, 2)).collect::<Vec<_>>(), [0.5, 0.25, 0.75, 0.125]);
        assert!((radical_inverse(1, 3) - 1.0 / 3.0).abs() < 1e-15);
        // 16 base-2 points, rotated: one in each sixteenth of the interval.
        let values = draw(&range("uniform = [0, 1]\nsamples = 16\nseed = 7"), "x", 0).unwrap();
        let mut cells: Vec<usize> = values.iter().map(|v| (v * 16.0).floor() as usize).collect();
        cells.sort_unstable();
        cells.dedup();
        assert!(cells.len() >= 15, "{values:?}");
    }

    #[test]
    fn log_ranges_are_even_in_the_logarithm_and_reproducible() {
        let t = range("log_uniform = [1e-3, 3]\nsamples = 8");
        let a = draw(&t, "train.lr", 0).unwrap();
        assert_eq!(a, draw(&t, "train.lr", 0).unwrap(), "the same file gives the same values");
        assert_ne!(a, draw(&range("log_uniform = [1e-3, 3]\nsamples = 8\nseed = 1"), "train.lr", 0).unwrap());
        assert!(a.iter().all(|&v| (1e-3..=3.0).contains(&v)));
        let below_0_1 = a.iter().filter(|&&v| v < (1e-3f64.ln() * 0.5 + 3f64.ln() * 0.5).exp()).count();
        assert_eq!(below_0_1, 4, "half the points in each half of the log range: {a:?}");
        assert!(a.iter().all(|v| significant(*v, 4) == *v));
    }

    #[test]
    fn bad_ranges_say_what_is_wrong() {
        for (text, expected) in [
            ("uniform = [1, 0]\nsamples = 4", "needs lo < hi"),
            ("log_uniform = [0, 1]\nsamples = 4", "positive bounds"),
            ("uniform = [0, 1]", "samples is missing"),
            ("uniform = [0, 1]\nsamples = 0", "whole number from 1"),
            ("uniform = [0, 1]\nsamples = 4\nsteps = 2", "unknown key \"steps\""),
            ("uniform = [0]\nsamples = 4", "two numbers"),
            ("uniform = [1, 1.001]\nsamples = 5", "round to"),
        ] {
            let e = draw(&range(text), "m", 0).unwrap_err();
            assert!(e.starts_with("m: ") && e.contains(expected), "{text}: {e}");
        }
    }

    #[test]
    fn ranges_in_a_table_become_lists_with_their_own_bases() {
        let mut t = range("[train]\nlr = { log_uniform = [0.01, 1], samples = 3 }\n[model]\nembedding = 16\n");
        t.insert("m".into(), toml::Value::Table(range("uniform = [0.1, 0.5]\nsamples = 3")));
        let mut dimension = 0;
        expand(&mut t, &[Key::from("sweep")], &mut dimension).unwrap();
        assert_eq!(dimension, 2);
        assert_eq!(t["train"]["lr"].as_array().unwrap().len(), 3);
        assert_eq!(t["model"]["embedding"].as_integer(), Some(16));
        let m: Vec<f64> = t["m"].as_array().unwrap().iter().map(|v| v.as_float().unwrap()).collect();
        // Keys in order: m (base 2), then train.lr (base 3).
        assert_eq!(m, draw(&range("uniform = [0.1, 0.5]\nsamples = 3"), "m", 0).unwrap());
    }
}

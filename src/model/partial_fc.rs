//! Partial FC (An et al., "Killing Two Birds with One Stone", CVPR 2022; insightface's
//! `partial_fc_v2.py`): each step the loss sees only a sample of the class centres. Every class
//! present in the batch is kept, and uniformly drawn other classes fill the sample up to
//! ⌊rate·C⌋ (insightface: `int(sample_rate * num_classes)`); when the batch holds more classes
//! than that, the sample is the batch's classes alone. The sample is sorted by class, and the
//! batch's labels become positions in it (insightface's `searchsorted`).
//!
//! The draw is a function of (trial seed, step) alone, so identical networks see identical
//! samples and a resumed trial draws what an uninterrupted one draws. Insightface draws with
//! `torch.rand` and `topk`; any uniform draw of the negatives is the same distribution, and
//! the PyTorch reference of `tests/parity.rs` is handed these indices.

use rand::SeedableRng;

/// One step's sample of class centres.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sampled classes, ascending.
    pub classes: Vec<i64>,
    /// The batch's labels as positions in `classes`.
    pub labels: Vec<i64>,
    /// How many of `classes` are the batch's own.
    pub positives: usize,
}

/// The sample of step `step` of a trial seeded `seed`, for a batch with `labels` among
/// `num_classes` classes, `sampled` of them wanted.
pub fn sample(labels: &[i64], num_classes: usize, sampled: usize, seed: u64, step: i64) -> Sample {
    let mut positive = vec![false; num_classes];
    for &y in labels {
        positive[y as usize] = true;
    }
    let positives = positive.iter().filter(|&&p| p).count();
    let mut classes: Vec<i64> = (0..num_classes as i64).filter(|&j| positive[j as usize]).collect();
    if sampled > positives {
        let negatives: Vec<i64> = (0..num_classes as i64).filter(|&j| !positive[j as usize]).collect();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
            seed.wrapping_mul(0x5043_4643_5f76_3221).wrapping_add(step as u64).rotate_left(17),
        );
        let drawn = rand::seq::index::sample(&mut rng, negatives.len(), sampled - positives);
        classes.extend(drawn.into_iter().map(|i| negatives[i]));
        classes.sort_unstable();
    }
    let labels =
        labels.iter().map(|y| classes.binary_search(y).expect("every label of the batch is sampled") as i64).collect();
    Sample { classes, labels, positives }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_batch_classes_fills_up_with_others_and_remaps_the_labels() {
        let labels = [7, 3, 7, 42];
        let s = sample(&labels, 100, 25, 1, 0);
        assert_eq!(s.classes.len(), 25);
        assert_eq!(s.positives, 3);
        assert!(s.classes.windows(2).all(|w| w[0] < w[1]), "sorted, distinct");
        for (y, &at) in labels.iter().zip(&s.labels) {
            assert_eq!(s.classes[at as usize], *y);
        }
        // A function of (seed, step): the same again, another step draws others.
        assert_eq!(sample(&labels, 100, 25, 1, 0), s);
        assert_ne!(sample(&labels, 100, 25, 1, 1).classes, s.classes);
        assert_ne!(sample(&labels, 100, 25, 2, 0).classes, s.classes);
        // Fewer wanted than the batch holds: the batch's classes alone.
        let few = sample(&labels, 100, 2, 1, 0);
        assert_eq!(few.classes, vec![3, 7, 42]);
        assert_eq!(few.labels, vec![1, 0, 1, 2]);
        // Every class wanted: all of them, labels unchanged.
        let all = sample(&labels, 100, 100, 1, 0);
        assert_eq!(all.classes, (0..100).collect::<Vec<i64>>());
        assert_eq!(all.labels, labels.to_vec());
    }

    #[test]
    fn negatives_are_drawn_uniformly() {
        // Over many steps each non-batch class is drawn about equally often.
        let labels = [0, 1];
        let mut counts = [0usize; 20];
        let steps = 20_000;
        for step in 0..steps {
            for &c in &sample(&labels, 20, 6, 9, step).classes {
                counts[c as usize] += 1;
            }
        }
        assert_eq!(counts[0] + counts[1], 2 * steps as usize);
        let expected = steps as f64 * 4.0 / 18.0;
        for &n in &counts[2..] {
            assert!((n as f64 - expected).abs() < 0.05 * expected, "{counts:?}");
        }
    }
}

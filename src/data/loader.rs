//! The training input pipeline: the batches of an epoch are read, decoded and augmented on a
//! pool of `data.workers` threads ahead of the training step, in order, into a queue bounded at
//! `data.prefetch` batches, so at most `prefetch + 2` batches of pixels exist at any time
//! (queued, being filled, being trained on) whatever the dataset's size.
//!
//! Unreadable images follow `data.on_bad_image`: `stop` ends the stream with the error (file and
//! record or byte offset); `skip` leaves the image out of its batch and reports it with the
//! batch. A decoder that panics counts as an unreadable image, so bad data never panics a run.

use super::augment::Augment;
use super::Dataset;
use crate::error::InputError;
use crate::spec::{BadImagePolicy, DataSpec};
use rayon::prelude::*;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

/// How a trial's images are loaded.
#[derive(Debug, Clone, Copy)]
pub struct LoaderOptions {
    /// Decoding threads.
    pub workers: usize,
    /// Batches queued ahead of the consumer.
    pub prefetch: usize,
    pub policy: BadImagePolicy,
    pub augment: Option<Augment>,
}

impl LoaderOptions {
    /// The options `[data]` sets for a trial of seed `seed` (augmentation draws depend on it).
    pub fn for_training(spec: &DataSpec, seed: u64) -> LoaderOptions {
        LoaderOptions {
            workers: match spec.workers {
                0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
                n => n,
            },
            prefetch: spec.prefetch.max(1),
            policy: spec.on_bad_image,
            augment: Augment::new(spec.augment, seed),
        }
    }

    /// The same without augmentation (reading training images for analysis).
    pub fn plain(self) -> LoaderOptions {
        LoaderOptions { augment: None, ..self }
    }
}

/// One batch as the trainer receives it.
#[derive(Debug)]
pub struct Batch {
    /// The images of the batch that were read, in batch order.
    pub indices: Vec<usize>,
    /// Their pixels (u8, CHW each), in the same order.
    pub pixels: Vec<u8>,
    /// What was wrong with each image left out (under `skip`).
    pub skipped: Vec<String>,
}

/// `set.read(i, out)`, with a panic of the decoder turned into an error naming the image.
pub fn read_guarded(set: &dyn Dataset, i: usize, out: &mut [u8]) -> Result<(), InputError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| set.read(i, out))) {
        Ok(result) => result,
        Err(panic) => {
            let what = crate::error::panic_message(&*panic).unwrap_or_default();
            Err(InputError { location: format!("image {i}"), message: format!("the decoder failed: {what}") })
        }
    }
}

/// Reads (and augments, for `epoch`) the images `batch` of `set` on the current rayon pool.
pub fn load_batch(set: &dyn Dataset, batch: &[usize], epoch: usize, opts: &LoaderOptions) -> Result<Batch, InputError> {
    let (c, s) = (set.channels(), set.size());
    let len = c * s * s;
    let mut pixels = vec![0u8; batch.len() * len];
    let results: Vec<Result<(), InputError>> = pixels
        .par_chunks_mut(len)
        .zip(batch.par_iter())
        .map(|(out, &i)| {
            read_guarded(set, i, out)?;
            if let Some(aug) = &opts.augment {
                aug.apply(epoch, i, out, c, s);
            }
            Ok(())
        })
        .collect();
    if results.iter().all(Result::is_ok) {
        return Ok(Batch { indices: batch.to_vec(), pixels, skipped: Vec::new() });
    }
    let (mut indices, mut kept, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
    for ((k, &i), result) in batch.iter().enumerate().zip(results) {
        match result {
            Ok(()) => {
                indices.push(i);
                kept.extend_from_slice(&pixels[k * len..(k + 1) * len]);
            }
            Err(e) if opts.policy == BadImagePolicy::Skip => skipped.push(e.to_string()),
            Err(e) => return Err(e),
        }
    }
    Ok(Batch { indices, pixels: kept, skipped })
}

/// The batches of one epoch, loaded in the background in order.
pub struct Loader {
    batches: Option<Receiver<Result<Batch, InputError>>>,
    worker: Option<JoinHandle<()>>,
}

impl Loader {
    /// Starts loading `batches` (image indices of `set`) of `epoch`.
    pub fn start(set: Arc<dyn Dataset>, batches: Vec<Vec<usize>>, epoch: usize, opts: LoaderOptions) -> Loader {
        let (tx, rx) = sync_channel(opts.prefetch.max(1));
        let worker = std::thread::Builder::new()
            .name("p2sbench-loader".into())
            .spawn(move || {
                let pool = match rayon::ThreadPoolBuilder::new().num_threads(opts.workers.max(1)).build() {
                    Ok(pool) => pool,
                    Err(e) => {
                        let _ = tx.send(Err(InputError {
                            location: "data loader".into(),
                            message: format!("cannot start decoding threads: {e}"),
                        }));
                        return;
                    }
                };
                for batch in &batches {
                    let result = pool.install(|| load_batch(&*set, batch, epoch, &opts));
                    let failed = result.is_err();
                    if tx.send(result).is_err() || failed {
                        return;
                    }
                }
            })
            .expect("a thread for the data loader");
        Loader { batches: Some(rx), worker: Some(worker) }
    }

    /// The next batch; `None` once every batch was delivered (or the loader stopped after an error).
    pub fn next_batch(&mut self) -> Option<Result<Batch, InputError>> {
        self.batches.as_ref()?.recv().ok()
    }
}

impl Drop for Loader {
    fn drop(&mut self) {
        // Closing the queue stops the worker at its next batch.
        self.batches.take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

//! Synthetic-identity generation throughput (images/s) at 32×32, on all cores, and the
//! 10,000-identity scale check. Run with `make bench` or `cargo bench --bench datagen`.

use p2sbench::data::synthetic;
use p2sbench::spec::{DataKind, DataSpec};
use std::time::Instant;

fn spec(identities: usize, images: usize, channels: usize) -> DataSpec {
    let text = format!(
        "identities = {identities}\nheldout_identities = 2\nimages_per_identity = {images}\nimage_size = 32\nchannels = {channels}\ndifficulty = 0.5\nseed = 1\n"
    );
    let spec: DataSpec = toml::from_str(&text).expect("a data table");
    assert_eq!(spec.kind, DataKind::Synthetic);
    spec
}

fn main() {
    println!("synthetic identities, 32x32, {} rayon threads", rayon::current_num_threads());
    for (identities, images, channels) in [(500, 20, 1), (500, 20, 3), (10_000, 10, 1)] {
        let s = spec(identities, images, channels);
        let t = Instant::now();
        let set = synthetic::training_set(&s);
        let secs = t.elapsed().as_secs_f64();
        println!(
            "  {identities:>6} identities x {images} images, {channels} channel(s): {} images in {secs:.2} s = {:.0} images/s ({} MB in memory)",
            set.len(),
            set.len() as f64 / secs,
            set.pixels.len() / 1_000_000
        );
    }
}

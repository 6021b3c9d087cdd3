//! Procedural face-like identities, generated in Rust and deterministic from a seed.
//!
//! An identity is a vector of shape parameters (head outline, eyes, brows, nose, mouth, skin
//! and hair tone, hairline, two marks). An image renders one identity under nuisance variation
//! whose range grows with `difficulty`: rotation, scale, translation, an illumination gradient,
//! expression (mouth curve, eye opening, brow raise), blur (soft edges), pixel noise and a
//! partial occlusion. Identities `0..identities` train; the next `heldout_identities` are for
//! evaluation only, so the two sets are disjoint by construction.

use super::ImageSet;
use crate::spec::DataSpec;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Shape parameters of one identity, in face coordinates (head centre at 0, y down, ~unit size).
#[derive(Debug, Clone)]
struct Identity {
    head_rx: f32,
    head_ry: f32,
    hairline: f32,
    hair_volume: f32,
    eye_y: f32,
    eye_dx: f32,
    eye_r: f32,
    eye_aspect: f32,
    brow_dy: f32,
    brow_tilt: f32,
    brow_thick: f32,
    nose_len: f32,
    nose_w: f32,
    mouth_y: f32,
    mouth_w: f32,
    mouth_curve: f32,
    mouth_thick: f32,
    skin: [f32; 3],
    hair: [f32; 3],
    marks: [(f32, f32, f32, f32); 2],
}

/// Nuisance of one image.
#[derive(Debug, Clone)]
struct Nuisance {
    angle: f32,
    scale: f32,
    shift: (f32, f32),
    light_dir: f32,
    light_strength: f32,
    brightness: f32,
    expression: f32,
    softness: f32,
    noise: f32,
    background: f32,
    occluder: Option<(f32, f32, f32, f32, f32)>,
}

/// Seeds are mixed with SplitMix64 so nearby indices give unrelated streams.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn rng_for(seed: u64, identity: usize, image: Option<usize>) -> ChaCha8Rng {
    let a = mix(seed ^ mix(identity as u64 + 1));
    let b = image.map_or(a, |i| mix(a ^ mix(0x1000_0000 + i as u64)));
    ChaCha8Rng::seed_from_u64(b)
}

impl Identity {
    fn sample(seed: u64, index: usize) -> Identity {
        let mut r = rng_for(seed, index, None);
        let mut u = |lo: f32, hi: f32| r.gen_range(lo..hi);
        let skin_base = u(0.35, 0.9);
        let skin = [skin_base, skin_base * u(0.75, 0.95), skin_base * u(0.6, 0.85)];
        let hair_base = u(0.05, 0.6);
        let hair = [hair_base, hair_base * u(0.6, 1.0), hair_base * u(0.4, 1.0)];
        let mut mark = || (u(-0.45, 0.45), u(-0.3, 0.6), u(0.03, 0.08), u(-0.35, 0.35));
        let marks = [mark(), mark()];
        Identity {
            head_rx: u(0.52, 0.74),
            head_ry: u(0.68, 0.9),
            hairline: u(-0.75, -0.35),
            hair_volume: u(1.0, 1.25),
            eye_y: u(-0.22, -0.02),
            eye_dx: u(0.18, 0.34),
            eye_r: u(0.06, 0.12),
            eye_aspect: u(0.4, 0.9),
            brow_dy: u(0.09, 0.2),
            brow_tilt: u(-0.5, 0.5),
            brow_thick: u(0.02, 0.06),
            nose_len: u(0.12, 0.32),
            nose_w: u(0.03, 0.09),
            mouth_y: u(0.32, 0.55),
            mouth_w: u(0.14, 0.34),
            mouth_curve: u(-0.12, 0.12),
            mouth_thick: u(0.02, 0.06),
            skin,
            hair,
            marks,
        }
    }
}

impl Nuisance {
    fn sample(seed: u64, identity: usize, image: usize, difficulty: f32) -> Nuisance {
        let mut r = rng_for(seed, identity, Some(image));
        let d = difficulty;
        let mut s = |range: f32| r.gen_range(-1.0f32..1.0) * range;
        let angle = s(0.1 + 0.4 * d);
        let scale = 1.0 + s(0.05 + 0.15 * d);
        let shift = (s(0.03 + 0.12 * d), s(0.03 + 0.12 * d));
        let light_dir = s(std::f32::consts::PI);
        let light_strength = (s(1.0).abs()) * (0.1 + 0.4 * d);
        let brightness = 1.0 + s(0.1 + 0.2 * d);
        let expression = s(0.3 + 0.7 * d);
        let softness = 1.0 + s(1.0).abs() * (0.5 + 2.0 * d);
        let noise = 0.01 + 0.06 * d;
        let background = 0.5 + s(0.45);
        let occluded = s(1.0).abs() < 0.05 + 0.35 * d;
        let occ = (
            s(0.6),
            s(0.6),
            0.1 + s(1.0).abs() * (0.15 + 0.3 * d),
            0.1 + s(1.0).abs() * (0.15 + 0.3 * d),
            0.5 + s(0.5),
        );
        Nuisance {
            angle,
            scale,
            shift,
            light_dir,
            light_strength,
            brightness,
            expression,
            softness,
            noise,
            background,
            occluder: occluded.then_some(occ),
        }
    }
}

/// Coverage in [0, 1] of a shape with signed distance `sd` (negative inside), edges `soft` wide.
#[inline]
fn cover(sd: f32, soft: f32) -> f32 {
    (0.5 - sd / soft).clamp(0.0, 1.0)
}

#[inline]
fn ellipse_sd(x: f32, y: f32, rx: f32, ry: f32) -> f32 {
    ((x / rx).powi(2) + (y / ry).powi(2)).sqrt().mul_add(rx.min(ry), -rx.min(ry))
}

/// Distance from (x, y) to the segment (ax, ay)–(bx, by).
#[inline]
fn segment_dist(x: f32, y: f32, ax: f32, ay: f32, bx: f32, by: f32) -> f32 {
    let (dx, dy) = (bx - ax, by - ay);
    let t = (((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy)).clamp(0.0, 1.0);
    ((x - ax - t * dx).powi(2) + (y - ay - t * dy).powi(2)).sqrt()
}

#[inline]
fn blend(dst: &mut [f32; 3], src: [f32; 3], a: f32) {
    for c in 0..3 {
        dst[c] += (src[c] - dst[c]) * a;
    }
}

/// Renders one image into `out` (c × size × size u8).
fn render(id: &Identity, nz: &Nuisance, size: usize, channels: usize, noise_rng: &mut ChaCha8Rng, out: &mut [u8]) {
    let px = 2.0 / size as f32;
    let soft = nz.softness * px / nz.scale * 1.6;
    let (sin_a, cos_a) = nz.angle.sin_cos();
    let e = nz.expression;
    let eye_ry = id.eye_r * id.eye_aspect * (1.0 - 0.35 * e.max(0.0));
    let brow_y = id.eye_y - id.brow_dy - 0.04 * e;
    let mouth_curve = id.mouth_curve + 0.08 * e;
    let (ld_s, ld_c) = nz.light_dir.sin_cos();
    let plane = size * size;
    for py in 0..size {
        for pxi in 0..size {
            let u = (pxi as f32 + 0.5) * px - 1.0;
            let v = (py as f32 + 0.5) * px - 1.0;
            // image → face coordinates: undo translation, rotation, scale
            let (tu, tv) = (u - nz.shift.0, v - nz.shift.1);
            let x = (cos_a * tu + sin_a * tv) / nz.scale / 0.85;
            let y = (-sin_a * tu + cos_a * tv) / nz.scale / 0.85;
            let mut c = [nz.background; 3];
            // hair: a larger ellipse above the hairline, behind the head
            let hair_sd = ellipse_sd(x, y + 0.05, id.head_rx * id.hair_volume, id.head_ry * 1.05);
            let hair_a = cover(hair_sd, soft) * cover(y - (id.hairline + 0.45), soft * 4.0);
            blend(&mut c, id.hair, hair_a);
            blend(&mut c, id.skin, cover(ellipse_sd(x, y, id.head_rx, id.head_ry), soft));
            // fringe: hair over the forehead above the hairline
            let fringe = cover(ellipse_sd(x, y, id.head_rx, id.head_ry), soft) * cover(y - id.hairline, soft);
            blend(&mut c, id.hair, fringe);
            for &(mx, my, mr, tone) in &id.marks {
                let a = cover(ellipse_sd(x - mx, y - my, mr, mr), soft) * 0.8;
                let t = id.skin.map(|s| (s + tone).clamp(0.0, 1.0));
                blend(&mut c, t, a);
            }
            for side in [-1.0f32, 1.0] {
                let ex = side * id.eye_dx;
                let eye = cover(ellipse_sd(x - ex, y - id.eye_y, id.eye_r, eye_ry.max(0.01)), soft);
                blend(&mut c, [0.95, 0.95, 0.95], eye);
                let pupil = cover(ellipse_sd(x - ex, y - id.eye_y, id.eye_r * 0.45, (eye_ry * 0.9).max(0.01)), soft);
                blend(&mut c, [0.05, 0.05, 0.08], pupil);
                let (bx0, bx1) = (ex - side * id.eye_r * 1.2, ex + side * id.eye_r * 1.2);
                let tilt = id.brow_tilt * id.eye_r;
                let brow_d = segment_dist(x, y, bx0, brow_y + tilt, bx1, brow_y - tilt);
                blend(&mut c, id.hair, cover(brow_d - id.brow_thick, soft));
            }
            let nose_d = segment_dist(x, y, 0.0, id.eye_y + 0.08, 0.0, id.eye_y + 0.08 + id.nose_len);
            let nose_tone = id.skin.map(|s| s * 0.7);
            blend(&mut c, nose_tone, cover(nose_d - id.nose_w, soft) * 0.8);
            if x.abs() < id.mouth_w {
                let curve_y = id.mouth_y + mouth_curve * (1.0 - (x / id.mouth_w).powi(2));
                let mouth_d = (y - curve_y).abs() - id.mouth_thick;
                blend(&mut c, [0.55, 0.15, 0.18], cover(mouth_d, soft));
            }
            if let Some((ox, oy, ow, oh, tone)) = nz.occluder {
                let d = ((x - ox).abs() - ow).max((y - oy).abs() - oh);
                blend(&mut c, [tone; 3], cover(d, soft));
            }
            let light = nz.brightness * (1.0 + nz.light_strength * (ld_c * u + ld_s * v));
            let idx = py * size + pxi;
            let grey_noise = gaussian(noise_rng) * nz.noise;
            if channels == 1 {
                let l = 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2];
                out[idx] = to_u8(l * light + grey_noise);
            } else {
                for (ch, value) in c.iter().enumerate() {
                    out[ch * plane + idx] = to_u8(value * light + grey_noise + gaussian(noise_rng) * nz.noise * 0.5);
                }
            }
        }
    }
}

#[inline]
fn to_u8(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// Approximately standard normal: the sum of three uniforms, rescaled (variance 1).
#[inline]
fn gaussian(r: &mut ChaCha8Rng) -> f32 {
    (r.gen::<f32>() + r.gen::<f32>() + r.gen::<f32>() - 1.5) * 2.0
}

/// Renders `images_per_identity` images of each identity in `first..first + count`, labelled
/// `0..count`, in parallel.
pub fn generate(spec: &DataSpec, first: usize, count: usize) -> ImageSet {
    let (size, channels, per) = (spec.image_size, spec.channels, spec.images_per_identity);
    let image_len = channels * size * size;
    let mut pixels = vec![0u8; count * per * image_len];
    pixels.par_chunks_mut(image_len).enumerate().for_each(|(k, out)| {
        out.copy_from_slice(&render_one(spec, first + k / per, k % per));
    });
    let labels = (0..count * per).map(|k| (k / per) as i64).collect();
    ImageSet { pixels, labels, num_classes: count, channels, size }
}

/// Renders image `image` of identity `identity` (any index, inside or outside the spec's ranges).
pub fn render_one(spec: &DataSpec, identity: usize, image: usize) -> Vec<u8> {
    let mut out = vec![0u8; spec.channels * spec.image_size * spec.image_size];
    let id = Identity::sample(spec.seed, identity);
    let nz = Nuisance::sample(spec.seed, identity, image, spec.difficulty as f32);
    let mut noise_rng = rng_for(spec.seed ^ 0x5eed, identity, Some(image));
    render(&id, &nz, spec.image_size, spec.channels, &mut noise_rng, &mut out);
    out
}

/// The training identities (`0..identities`).
pub fn training_set(spec: &DataSpec) -> ImageSet {
    generate(spec, 0, spec.identities)
}

/// The held-out identities (`identities..identities + heldout_identities`), disjoint from training.
pub fn heldout_set(spec: &DataSpec) -> ImageSet {
    generate(spec, spec.identities, spec.heldout_identities)
}

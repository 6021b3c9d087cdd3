//! Face alignment by five landmarks, as insightface prepares IJB-C's loose crops: the similarity
//! transform (least squares, no reflection — Umeyama's estimate) that maps the detected eyes,
//! nose and mouth corners onto ArcFace's 112×112 template, then a bilinear warp with a black
//! border, straight to the network's input size (the template scaled to it).

/// ArcFace's landmark template for a 112×112 crop: left eye, right eye, nose, mouth corners.
pub const ARCFACE_TEMPLATE: [[f32; 2]; 5] =
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]];

/// A similarity transform u = [[a, −b], [b, a]]·x + t.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    pub a: f64,
    pub b: f64,
    pub tx: f64,
    pub ty: f64,
}

impl Similarity {
    /// The least-squares similarity taking `src` points onto `dst` points.
    pub fn estimate(src: &[[f32; 2]], dst: &[[f32; 2]]) -> Similarity {
        let n = src.len().min(dst.len()).max(1) as f64;
        let mean = |p: &[[f32; 2]]| {
            let (sx, sy) = p.iter().fold((0.0, 0.0), |(x, y), q| (x + q[0] as f64, y + q[1] as f64));
            (sx / n, sy / n)
        };
        let (ms, md) = (mean(src), mean(dst));
        let (mut num_a, mut num_b, mut var) = (0.0, 0.0, 0.0);
        for (s, d) in src.iter().zip(dst) {
            let (sx, sy) = (s[0] as f64 - ms.0, s[1] as f64 - ms.1);
            let (dx, dy) = (d[0] as f64 - md.0, d[1] as f64 - md.1);
            num_a += sx * dx + sy * dy;
            num_b += sx * dy - sy * dx;
            var += sx * sx + sy * sy;
        }
        let (a, b) = if var > 0.0 { (num_a / var, num_b / var) } else { (1.0, 0.0) };
        Similarity { a, b, tx: md.0 - (a * ms.0 - b * ms.1), ty: md.1 - (b * ms.0 + a * ms.1) }
    }

    pub fn apply(&self, x: f64, y: f64) -> (f64, f64) {
        (self.a * x - self.b * y + self.tx, self.b * x + self.a * y + self.ty)
    }

    /// The inverse transform.
    pub fn inverse(&self) -> Similarity {
        let det = self.a * self.a + self.b * self.b;
        let (a, b) = (self.a / det, -self.b / det);
        let inv = Similarity { a, b, tx: 0.0, ty: 0.0 };
        let (tx, ty) = inv.apply(-self.tx, -self.ty);
        Similarity { a, b, tx, ty }
    }
}

/// Warps an RGB image (`width` × `height`, HWC) so that `landmarks` land on the ArcFace template
/// scaled to `size`; returns `channels` × `size` × `size` pixels (CHW; grey = ITU-R 601 luma).
pub fn align(
    rgb: &[u8],
    width: usize,
    height: usize,
    landmarks: &[[f32; 2]; 5],
    size: usize,
    channels: usize,
) -> Vec<u8> {
    let scale = size as f32 / 112.0;
    let dst: Vec<[f32; 2]> = ARCFACE_TEMPLATE.iter().map(|p| [p[0] * scale, p[1] * scale]).collect();
    let back = Similarity::estimate(landmarks, &dst).inverse();
    let plane = size * size;
    let mut out = vec![0u8; channels * plane];
    let px = |x: i64, y: i64, c: usize| -> f64 {
        if x < 0 || y < 0 || x >= width as i64 || y >= height as i64 {
            0.0
        } else {
            rgb[(y as usize * width + x as usize) * 3 + c] as f64
        }
    };
    for v in 0..size {
        for u in 0..size {
            let (x, y) = back.apply(u as f64, v as f64);
            let (x0, y0) = (x.floor(), y.floor());
            let (fx, fy) = (x - x0, y - y0);
            let (x0, y0) = (x0 as i64, y0 as i64);
            let mut rgb_out = [0f64; 3];
            for (c, value) in rgb_out.iter_mut().enumerate() {
                *value = px(x0, y0, c) * (1.0 - fx) * (1.0 - fy)
                    + px(x0 + 1, y0, c) * fx * (1.0 - fy)
                    + px(x0, y0 + 1, c) * (1.0 - fx) * fy
                    + px(x0 + 1, y0 + 1, c) * fx * fy;
            }
            let at = v * size + u;
            if channels == 3 {
                for (c, value) in rgb_out.iter().enumerate() {
                    out[c * plane + at] = value.round().clamp(0.0, 255.0) as u8;
                }
            } else {
                let grey = 0.299 * rgb_out[0] + 0.587 * rgb_out[1] + 0.114 * rgb_out[2];
                out[at] = grey.round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    out
}

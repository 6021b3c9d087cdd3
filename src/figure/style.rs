//! The look every figure shares, and the one place to get it from (the `curves` analysis command
//! can draw with it too): the embedded font, one colour per loss, text sizes, the figure frame
//! (title on top, legend in its own column on the right so it never covers data), and [`save`],
//! which renders a [`Figure`] to PNG, SVG and PDF, each written atomically.
//!
//! PNG text is rasterised by plotters' `ab_glyph` backend from DejaVu Sans, embedded in the
//! binary by the `dejavu` crate (Bitstream Vera / DejaVu licence, which allows embedding and
//! redistribution): nothing depends on the fonts installed on the machine. SVG text names the
//! `sans-serif` family and is rendered by the viewer. The PDF is that SVG converted by `svg2pdf`
//! (typst's, through `usvg`) with the same embedded DejaVu Sans standing in for `sans-serif`:
//! vector paths, and text as real text in a subset of the font embedded in the file. Its bytes
//! are not reproducible across processes: svg2pdf keeps the fonts in a `HashMap`, so the order
//! of the font objects (regular, bold) varies; the document is the same.

use anyhow::{anyhow, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use svg2pdf::usvg::{self, fontdb};

/// The font family every figure uses (plotters' default family, so axis text uses it too).
pub const FAMILY: &str = "sans-serif";
/// Figure title.
pub const TITLE_PX: f64 = 30.0;
/// Panel title.
pub const CAPTION_PX: f64 = 22.0;
/// Axis descriptions.
pub const AXIS_PX: f64 = 19.0;
/// Tick labels.
pub const TICK_PX: f64 = 16.0;
/// Legend text.
pub const LEGEND_PX: f64 = 18.0;
/// Size of one panel in pixels (figures are grids of panels plus title and legend).
pub const PANEL: (u32, u32) = (620, 440);
/// Height of the figure title band.
pub const TITLE_BAND: u32 = 56;

/// Registers the embedded DejaVu Sans (regular and bold) as [`FAMILY`]. Idempotent; [`save`]
/// calls it, code that draws on its own backends should call it first.
pub fn register_fonts() -> Result<()> {
    static DONE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        register_font(FAMILY, FontStyle::Normal, dejavu::sans::regular())
            .map_err(|_| "DejaVu Sans (regular) is not a valid font".to_string())?;
        register_font(FAMILY, FontStyle::Bold, dejavu::sans::bold())
            .map_err(|_| "DejaVu Sans (bold) is not a valid font".to_string())
    })
    .clone()
    .map_err(|e| anyhow!("registering the embedded font: {e}"))
}

/// Regular text of `px` pixels.
pub fn text(px: f64) -> TextStyle<'static> {
    TextStyle::from((FAMILY, px).into_font()).color(&BLACK)
}

/// Bold text of `px` pixels.
pub fn bold(px: f64) -> TextStyle<'static> {
    TextStyle::from((FAMILY, px, FontStyle::Bold).into_font()).color(&BLACK)
}

/// Fixed colours for the losses the harness knows (Okabe–Ito first, colour-blind safe, then Tol).
const LOSS_COLORS: &[(&str, RGBColor)] = &[
    ("p2sgrad", RGBColor(213, 94, 0)),
    ("cosface", RGBColor(0, 114, 178)),
    ("arcface", RGBColor(0, 158, 115)),
    ("l2softmax", RGBColor(204, 121, 167)),
    ("softmax", RGBColor(85, 85, 85)),
    ("normface", RGBColor(230, 159, 0)),
    ("sphereface", RGBColor(86, 180, 233)),
    ("sphereface_norm", RGBColor(120, 190, 60)),
    ("adacos", RGBColor(136, 34, 85)),
    ("combined", RGBColor(153, 153, 51)),
    ("curricularface", RGBColor(51, 34, 136)),
    ("adaface", RGBColor(170, 51, 119)),
    ("magface", RGBColor(102, 51, 0)),
];

/// Colours for losses not in the fixed table, chosen by a hash of the name.
const FALLBACK: &[RGBColor] = &[
    RGBColor(68, 119, 170),
    RGBColor(170, 51, 119),
    RGBColor(34, 136, 51),
    RGBColor(204, 187, 68),
    RGBColor(102, 204, 238),
    RGBColor(238, 102, 119),
    RGBColor(17, 119, 51),
    RGBColor(51, 34, 136),
];

/// The colour of a loss: the same in every figure (fixed for known losses, a stable hash of the
/// name otherwise). Variants such as `adacos-dynamic` take their family's colour
/// ([`shade`] tells settings of one family apart).
pub fn loss_color(loss: &str) -> RGBColor {
    let name = loss.to_ascii_lowercase();
    if let Some((_, c)) = LOSS_COLORS.iter().find(|(n, _)| *n == name) {
        return *c;
    }
    if let Some((_, c)) = LOSS_COLORS.iter().find(|(n, _)| name.starts_with(n) && *n != "softmax") {
        return *c;
    }
    // FNV-1a: stable across runs and platforms.
    let h = name.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3));
    FALLBACK[(h % FALLBACK.len() as u64) as usize]
}

/// The `k`-th of `n` shades of `base`: `base` itself for k = 0, lighter for larger k, for telling
/// apart several settings (or steps) of one loss while keeping its hue.
pub fn shade(base: RGBColor, k: usize, n: usize) -> RGBColor {
    if n <= 1 || k == 0 {
        return base;
    }
    let t = k as f64 / (n - 1) as f64 * 0.6;
    let mix = |c: u8| (c as f64 + (255.0 - c as f64) * t).round().clamp(0.0, 255.0) as u8;
    RGBColor(mix(base.0), mix(base.1), mix(base.2))
}

/// How a legend entry is marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Line,
    Dashed,
    Dot,
    Hollow,
    Swatch,
    /// No marker: a heading or an explanatory line.
    Text,
}

/// One legend line.
#[derive(Debug, Clone)]
pub struct LegendEntry {
    pub label: String,
    pub color: RGBColor,
    pub mark: Mark,
}

impl LegendEntry {
    pub fn new(label: impl Into<String>, color: RGBColor, mark: Mark) -> LegendEntry {
        LegendEntry { label: label.into(), color, mark }
    }
    pub fn note(label: impl Into<String>) -> LegendEntry {
        LegendEntry { label: label.into(), color: BLACK, mark: Mark::Text }
    }
}

/// Converts a plotters drawing error (generic over the backend) into an error value.
pub fn de<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing: {e}")
}

/// The width the legend column needs.
pub fn legend_width(entries: &[LegendEntry]) -> u32 {
    if entries.is_empty() {
        return 0;
    }
    // DejaVu Sans averages ~0.55 em per character; measured layout is not available before a
    // backend exists, and the column only needs to be wide enough.
    let chars = entries.iter().map(|e| e.label.chars().count()).max().unwrap_or(0) as f64;
    (chars * LEGEND_PX * 0.55 + 70.0).ceil() as u32
}

/// `text` shortened with "…" to fit `width_px` pixels at `px` (bold DejaVu Sans is ~0.65 em
/// a character).
pub fn fit(text: &str, width_px: u32, px: f64) -> String {
    let max = ((width_px as f64 - 24.0) / (px * 0.65)).floor().max(4.0) as usize;
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max - 1).collect();
    s.push('…');
    s
}

/// Figure size for `n` panels in `cols` columns with a legend column of `legend_w` pixels, wide
/// enough for `title`.
pub fn grid_size(n: usize, cols: usize, legend_w: u32, title: &str) -> (u32, u32) {
    let cols = cols.clamp(1, n.max(1));
    let rows = n.max(1).div_ceil(cols);
    let title_w = (title.chars().count() as f64 * TITLE_PX * 0.65 + 40.0).ceil() as u32;
    ((PANEL.0 * cols as u32 + legend_w).max(title_w), PANEL.1 * rows as u32 + TITLE_BAND)
}

/// Draws the title band and the legend column; returns the area left for panels.
pub fn frame<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    legend: &[LegendEntry],
) -> Result<DrawingArea<DB, Shift>> {
    let (w, _) = root.dim_in_pixel();
    let (band, body) = root.split_vertically(TITLE_BAND);
    band.draw_text(
        &fit(title, w, TITLE_PX),
        &bold(TITLE_PX).pos(Pos::new(HPos::Center, VPos::Center)),
        (w as i32 / 2, TITLE_BAND as i32 / 2),
    )
    .map_err(de)?;
    let lw = legend_width(legend);
    if lw == 0 {
        return Ok(body);
    }
    let (panels, side) = body.split_horizontally(w.saturating_sub(lw));
    draw_legend(&side, legend)?;
    Ok(panels)
}

/// Draws legend entries top-down in `area`.
pub fn draw_legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, entries: &[LegendEntry]) -> Result<()> {
    let line_h = (LEGEND_PX * 1.45) as i32;
    let style = text(LEGEND_PX).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, e) in entries.iter().enumerate() {
        let y = 24 + i as i32 * line_h;
        let (x0, x1) = (10, 44);
        let c = e.color;
        match e.mark {
            Mark::Line => area.draw(&PathElement::new(vec![(x0, y), (x1, y)], c.stroke_width(3))).map_err(de)?,
            Mark::Dashed => {
                for s in [x0, x0 + 13, x0 + 26] {
                    area.draw(&PathElement::new(vec![(s, y), (s + 8, y)], c.stroke_width(3))).map_err(de)?;
                }
            }
            Mark::Dot => area.draw(&Circle::new(((x0 + x1) / 2, y), 5, c.filled())).map_err(de)?,
            Mark::Hollow => area.draw(&Circle::new(((x0 + x1) / 2, y), 5, c.stroke_width(2))).map_err(de)?,
            Mark::Swatch => area.draw(&Rectangle::new([(x0, y - 8), (x1, y + 8)], c.filled())).map_err(de)?,
            Mark::Text => {}
        }
        let x = if e.mark == Mark::Text { x0 } else { x1 + 10 };
        area.draw_text(&e.label, &style, (x, y)).map_err(de)?;
    }
    Ok(())
}

/// Something that can be drawn on any plotters backend.
pub trait Figure {
    /// Pixel size of the whole figure.
    fn size(&self) -> (u32, u32);
    /// Draws the figure on `root` (already filled white).
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<()>;
}

/// Renders `fig` to `<dir>/<stem>.png`, `<dir>/<stem>.svg` and `<dir>/<stem>.pdf` (the SVG
/// converted, [`svg_to_pdf`]); returns the three paths.
pub fn save<F: Figure>(fig: &F, dir: &Path, stem: &str) -> Result<[PathBuf; 3]> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let [png, svg, pdf] = ["png", "svg", "pdf"].map(|ext| dir.join(format!("{stem}.{ext}")));
    write(fig, &png, false)?;
    let text = svg_text(fig, &svg)?;
    let document = svg_to_pdf(&text).with_context(|| format!("converting {} to PDF", svg.display()))?;
    crate::store::write_atomic(&svg, text.as_bytes())?;
    crate::store::write_atomic(&pdf, &document)?;
    Ok([png, svg, pdf])
}

/// `fig` drawn as SVG text (`path` names it in errors).
fn svg_text<F: Figure>(fig: &F, path: &Path) -> Result<String> {
    register_fonts()?;
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, fig.size()).into_drawing_area();
        root.fill(&WHITE).map_err(de)?;
        fig.draw(&root).with_context(|| format!("drawing {}", path.display()))?;
        root.present().map_err(de)?;
    }
    Ok(text)
}

/// The family name of the embedded font, as its name table gives it.
const DEJAVU: &str = "DejaVu Sans";

/// The fonts the PDF conversion may use: the embedded DejaVu Sans (regular and bold) alone, as
/// the `sans-serif` family and the default; no system font is looked up.
fn pdf_fonts() -> Result<Arc<fontdb::Database>> {
    static DB: OnceLock<std::result::Result<Arc<fontdb::Database>, String>> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = fontdb::Database::new();
        for bytes in [dejavu::sans::regular(), dejavu::sans::bold()] {
            db.load_font_source(fontdb::Source::Binary(Arc::new(bytes)));
        }
        let names: Vec<String> = db.faces().flat_map(|f| f.families.iter().map(|(n, _)| n.clone())).collect();
        if db.len() != 2 || names.iter().any(|n| n != DEJAVU) {
            return Err(format!("the embedded fonts load as {names:?}, not two faces of {DEJAVU}"));
        }
        db.set_sans_serif_family(DEJAVU);
        Ok(Arc::new(db))
    })
    .clone()
    .map_err(|e| anyhow!("loading the embedded font for PDF: {e}"))
}

/// An SVG document (as [`save`] writes them) as a one-page PDF: 96 SVG pixels to the inch (CSS
/// pixels), shapes as vector paths, text as text in embedded DejaVu Sans.
pub fn svg_to_pdf(svg: &str) -> Result<Vec<u8>> {
    let options = usvg::Options { fontdb: pdf_fonts()?, font_family: DEJAVU.into(), ..Default::default() };
    let tree = usvg::Tree::from_str(svg, &options).map_err(|e| anyhow!("reading the SVG: {e}"))?;
    svg2pdf::to_pdf(&tree, svg2pdf::ConversionOptions::default(), svg2pdf::PageOptions { dpi: 96.0 })
        .map_err(|e| anyhow!("writing the PDF: {e}"))
}

/// Renders `fig` to `path` as PNG (`svg = false`) or SVG, through a temporary file and a rename.
pub fn write<F: Figure>(fig: &F, path: &Path, svg: bool) -> Result<()> {
    if svg {
        return crate::store::write_atomic(path, svg_text(fig, path)?.as_bytes());
    }
    register_fonts()?;
    let size = fig.size();
    let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        root.fill(&WHITE).map_err(de)?;
        fig.draw(&root).with_context(|| format!("drawing {}", path.display()))?;
        root.present().map_err(de)?;
    }
    let mut png = Vec::new();
    image::ImageEncoder::write_image(
        image::codecs::png::PngEncoder::new(&mut png),
        &rgb,
        size.0,
        size.1,
        image::ColorType::Rgb8,
    )
    .with_context(|| format!("encoding {}", path.display()))?;
    crate::store::write_atomic(path, &png)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_colours_are_fixed_and_distinct() {
        let known: Vec<RGBColor> = crate::loss::registry().iter().map(|e| loss_color(e.name)).collect();
        for (i, a) in known.iter().enumerate() {
            assert!(known[i + 1..].iter().all(|b| b != a), "two losses share {a:?}");
        }
        assert_eq!(loss_color("ArcFace"), loss_color("arcface"));
        assert_eq!(loss_color("adacos-dynamic"), loss_color("adacos"));
        // A loss without a colour of its own gets one of the fallback colours.
        assert!(FALLBACK.contains(&loss_color("somenewloss")));
    }

    #[test]
    fn shades_start_at_the_loss_colour_and_lighten() {
        let base = RGBColor(0, 114, 178);
        let lum = |c: RGBColor| c.0 as u32 + c.1 as u32 + c.2 as u32;
        let shades: Vec<u32> = (0..4).map(|k| lum(shade(base, k, 4))).collect();
        assert!(shades.windows(2).all(|w| w[0] < w[1]), "{shades:?}");
        assert_eq!(shade(base, 0, 1), base);
        assert_eq!(shade(base, 0, 4), base);
    }

    #[test]
    fn fit_shortens_long_titles() {
        assert_eq!(fit("short", 600, 22.0), "short");
        let long = "x".repeat(200);
        let f = fit(&long, 600, 22.0);
        assert!(f.ends_with('…') && f.chars().count() < 50, "{f}");
    }

    #[test]
    fn pdf_text_is_embedded_dejavu_for_sans_serif_regular_and_bold() {
        let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" width="200" height="100">
            <text x="10" y="40" font-family="sans-serif" font-size="20">θ_y ≤ 90°</text>
            <text x="10" y="80" font-family="sans-serif" font-size="20" font-weight="bold">title</text>
            <text x="10" y="95" font-size="10">no family</text>
            </svg>"#;
        let pdf = svg_to_pdf(svg).unwrap();
        assert!(pdf.starts_with(b"%PDF-"));
        let text = String::from_utf8_lossy(&pdf);
        let mut fonts: Vec<&str> = text
            .match_indices("/BaseFont /")
            .map(|(i, _)| text[i + 18..].split(['/', ' ', '\n']).next().unwrap())
            .collect();
        fonts.sort();
        fonts.dedup();
        // Subset fonts are named `ABCDEF+Name`; one file per face used, embedded (FontFile2).
        assert_eq!(fonts, ["DejaVuSans", "DejaVuSans-Bold"], "{fonts:?}");
        assert_eq!(text.matches("/FontFile2").count(), 2);
        assert!(svg_to_pdf("<svg").is_err());
    }

    #[test]
    fn embedded_font_registers() {
        register_fonts().unwrap();
        register_fonts().unwrap();
    }
}

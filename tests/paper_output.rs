//! Paper-ready output checked by real tools on the fixture results directory
//! (`common::results_fixture`): `report`'s tables.tex compiled by pdflatex (booktabs alone, and
//! with graphicx, which shrinks wide tables) into a PDF whose text holds the report's numbers and
//! whose first page poppler renders; `plot`'s PDF beside every PNG, rendered by poppler, its
//! title and symbols extractable as text in the embedded DejaVu Sans. pdflatex and poppler-utils
//! are installed by `make test` (scripts/setup-latex.sh); without them these tests fail.

mod common;

use common::results_fixture::{png_stats, write_fixture};
use p2sbench::report::latex::{self, LatexTable};
use p2sbench::report::markdown::Table;
use p2sbench::{plot, report};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The path of an external tool, or a failure saying how to get it.
fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file()).unwrap_or_else(|| {
        panic!(
            "{name} is not installed: run `make test`, which installs pdflatex (texlive-latex-base, \
             texlive-latex-recommended) and poppler-utils with scripts/setup-latex.sh"
        )
    })
}

/// Runs `tool args` in `dir`; its stdout, or a failure with its output.
fn run(dir: &Path, name: &str, args: &[&str]) -> String {
    let out = Command::new(tool(name)).args(args).current_dir(dir).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} {args:?} failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Whitespace runs as one space.
fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The page count poppler's pdfinfo reads.
fn pages(dir: &Path, pdf: &str) -> usize {
    let info = run(dir, "pdfinfo", &[pdf]);
    let line = info.lines().find(|l| l.starts_with("Pages:")).unwrap_or_else(|| panic!("{pdf}: no page count\n{info}"));
    line["Pages:".len()..].trim().parse().unwrap()
}

/// Renders the first page of `pdf` with pdftoppm at 50 dpi to `<out>.png`; the PNG's size and
/// inked fraction.
fn render_first_page(pdf: &Path, out: &Path) -> (u32, u32, f64) {
    let dir = pdf.parent().unwrap();
    let (pdf, out) = (pdf.to_str().unwrap(), out.to_str().unwrap());
    run(dir, "pdftoppm", &["-png", "-r", "50", "-f", "1", "-l", "1", "-singlefile", pdf, out]);
    let (w, h, inked, _) = png_stats(Path::new(&format!("{out}.png")), (0, 0, 0));
    (w, h, inked)
}

/// The numeric cells of the markdown table after `heading` in `md` (bold marks removed).
fn numeric_cells(md: &str, heading: &str) -> Vec<String> {
    let start = md.find(heading).unwrap_or_else(|| panic!("no {heading:?} in the report"));
    let lines = md[start..].lines().skip_while(|l| !l.starts_with('|')).take_while(|l| l.starts_with('|'));
    lines
        .skip(2)
        .flat_map(|l| {
            l.trim_matches('|').split('|').map(|c| c.trim().trim_matches('*').to_string()).collect::<Vec<_>>()
        })
        .filter(|c| c.chars().next().is_some_and(|ch| ch.is_ascii_digit()) && c.contains('.'))
        .collect()
}

/// Writes `tables` to `work/tables.tex`, `\\input`s it in an article loading `packages` and
/// compiles that with pdflatex to `work/doc.pdf`; returns the log, or fails with its tail.
/// `\\tracinglostchars=3` makes a character missing from a font an error.
fn pdflatex(work: &Path, packages: &str, tables: &str) -> String {
    std::fs::create_dir_all(work).unwrap();
    std::fs::write(work.join("tables.tex"), tables).unwrap();
    let doc = format!(
        "\\documentclass{{article}}\n{packages}\n\\tracinglostchars=3\n\\begin{{document}}\n\\input{{tables.tex}}\n\\end{{document}}\n"
    );
    std::fs::write(work.join("doc.tex"), doc).unwrap();
    let out = Command::new(tool("pdflatex"))
        .args(["-interaction=nonstopmode", "-halt-on-error", "doc.tex"])
        .current_dir(work)
        .output()
        .unwrap();
    let log = std::fs::read_to_string(work.join("doc.log")).unwrap_or_default();
    let tail = log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    assert!(out.status.success(), "{}: pdflatex failed ({}); the log ends:\n{tail}", work.display(), out.status);
    assert!(!log.contains("Missing character"), "{}: a character has no glyph:\n{log}", work.display());
    log
}

#[test]
fn report_tables_tex_compiles_with_pdflatex_and_holds_the_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write_fixture(&tmp.path().join("results"));
    let files = report::write_report(&dir.root).unwrap();
    assert_eq!(files.latex, dir.root.join("tables.tex"));
    let tex = std::fs::read_to_string(&files.latex).unwrap();
    // The Results table (mean [95 % interval] cells), the sensitivity table and one noise table per headline metric.
    for label in ["tab:fixture:results", "tab:fixture:sensitivity", "tab:fixture:noise1"] {
        assert!(tex.contains(&format!("\\label{{{label}}}")), "{label} not in\n{tex}");
    }
    assert_eq!(tex.matches("\\begin{table}").count(), tex.matches("\\end{table}").count());
    assert!(tex.matches("\\toprule").count() >= 3, "{tex}");
    assert!(tex.is_ascii(), "tables.tex holds non-ASCII text");

    let md = std::fs::read_to_string(&files.markdown).unwrap();
    let numbers = numeric_cells(&md, "## Results");
    assert!(numbers.len() >= 10 && numbers.iter().all(|c| c.contains(" [")), "{numbers:?}");
    for (name, packages) in
        [("plain", "\\usepackage{booktabs}"), ("fit", "\\usepackage{booktabs}\\usepackage{graphicx}")]
    {
        let work = tmp.path().join(name);
        let log = pdflatex(&work, packages, &tex);
        if name == "fit" {
            // With graphicx every table fits the text width.
            assert!(!log.contains("Overfull \\hbox"), "{name}: a table is wider than the line:\n{log}");
        }
        assert!(pages(&work, "doc.pdf") >= 1);
        let (w, h, inked) = render_first_page(&work.join("doc.pdf"), &work.join("page"));
        assert!(w > 300 && h > 400, "{name}: page rendered at {w}×{h}");
        assert!(inked > 0.005, "{name}: the first page is blank ({inked:.4} inked)");
        // The typeset text holds every number of the report's Results table.
        let text = squash(&run(&work, "pdftotext", &["doc.pdf", "-"]));
        for n in &numbers {
            assert!(text.contains(n.as_str()), "{name}: {n:?} from report.md is not in the PDF's text:\n{text}");
        }
        assert!(text.contains("p2sgrad") && text.contains("cosface"), "{text}");
    }
}

#[test]
fn every_symbol_the_converter_knows_and_every_special_compiles() {
    let symbols: String = ('\u{80}'..='\u{2fff}').filter(|&c| latex::char_tex(c).is_some()).collect();
    assert!(symbols.chars().count() >= 50, "{symbols}");
    let mut t = Table::new(vec!["[v1] cell".into(), "*".into()], 1);
    let chars: Vec<char> = symbols.chars().collect();
    for chunk in chars.chunks(12) {
        t.rows.push(vec![chunk.iter().collect(), chunk.iter().rev().collect()]);
    }
    t.rows.push(vec!["specials".into(), r#"\ & % $ # _ { } ~ ^ < > | " --"#.into()]);
    t.rows.push(vec!["*starred".into(), "[1, 2]".into()]);
    t.rows.push(vec!["**97.25 ± 0.31**".into(), "`a_b{c}` and [link](https://example.org/x_y)".into()]);
    t.rows.push(vec!["漢".into(), "θ_y ≤ 90°".into()]);
    let tables = [LatexTable {
        caption: format!("All: {symbols}"),
        label: "tab:all #1".into(),
        table: &t,
        notes: vec![symbols],
    }];
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("symbols");
    pdflatex(&work, "\\usepackage{booktabs}", &latex::tables_tex("symbols", &tables));
    let text = squash(&run(&work, "pdftotext", &["doc.pdf", "-"]));
    for needle in ["[v1] cell", "& % $ #", "*starred", "[1, 2]", "97.25 ± 0.31", "b{c} and link", "θ", "≤", "?"] {
        assert!(text.contains(needle), "{needle:?} not in the PDF's text:\n{text}");
    }
}

#[test]
fn plot_writes_a_pdf_beside_every_png_with_its_text_in_the_embedded_font() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = write_fixture(&tmp.path().join("results"));
    let manifest = plot::render_all(&dir.root).unwrap();
    assert!(manifest.figures.len() >= 10, "{:?}", manifest.figures);
    let plots = dir.plots();
    let pngs: Vec<PathBuf> = std::fs::read_dir(&plots)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    assert_eq!(pngs.len(), manifest.figures.len(), "{pngs:?}");
    for png in &pngs {
        let pdf = png.with_extension("pdf");
        let bytes = std::fs::read(&pdf).unwrap_or_else(|e| panic!("{}: {e}", pdf.display()));
        assert!(bytes.starts_with(b"%PDF-"), "{}: not a PDF", pdf.display());
    }
    for f in &manifest.figures {
        let pdf = format!("{}.pdf", f.stem);
        assert_eq!(pages(&plots, &pdf), 1, "{pdf}");
        // The title is text in the PDF, not paths or missing glyphs.
        let text = squash(&run(&plots, "pdftotext", &[&pdf, "-"]));
        assert!(text.contains(&squash(&f.title)), "{pdf}: title {:?} not in its text {text:?}", f.title);
        // Its one font is the embedded DejaVu Sans subset.
        let fonts = run(&plots, "pdffonts", &[&pdf]);
        let rows: Vec<&str> = fonts.lines().skip(2).collect();
        assert!(!rows.is_empty(), "{pdf}: no font\n{fonts}");
        for row in rows {
            let cols: Vec<&str> = row.split_whitespace().collect();
            assert!(cols[0].contains("DejaVuSans"), "{pdf}: font {row}");
            // name, type (two words), encoding, emb, sub, uni, object, id
            assert_eq!(&cols[cols.len() - 5..cols.len() - 2], ["yes", "yes", "yes"], "{pdf}: not embedded: {row}");
        }
    }
    // Symbols come through as text too (θ in a legend line).
    let text = run(&plots, "pdftotext", &["coef_vs_theta.pdf", "-"]);
    assert!(text.contains("analytic g_y(θ)"), "{text}");
    // Vector, and it renders: poppler draws the figure with ink where the PNG has it.
    let (w, h, inked) = render_first_page(&plots.join("training_curves.pdf"), &tmp.path().join("page"));
    let (pw, ph, png_inked, _) = png_stats(&plots.join("training_curves.png"), (0, 0, 0));
    assert!(w > 100 && h > 100, "{w}×{h}");
    assert!((w as f64 / h as f64 - pw as f64 / ph as f64).abs() < 0.02, "{w}×{h} against the PNG's {pw}×{ph}");
    assert!(inked > 0.01 && inked < 0.6, "the PDF renders {inked:.3} inked (PNG: {png_inked:.3})");

    // The report links each figure's SVG and PDF, and both exist.
    let md = std::fs::read_to_string(report::write_report(&dir.root).unwrap().markdown).unwrap();
    for f in &manifest.figures {
        let links = format!("([SVG](plots/{0}.svg), [PDF](plots/{0}.pdf))", f.stem);
        assert!(md.contains(&links), "{links} not in the report");
    }
}

//! `tables.tex`: the report's tables as LaTeX for a paper, one `table` float per table with
//! booktabs rules, text columns left-aligned and numbers right-aligned as in the markdown, and the
//! table's notes in small type under it. Generic over [`markdown::Table`]: whatever the report
//! tabulates converts the same way.
//!
//! Cells are the markdown the report writes: `**x**` becomes `\textbf{x}`, `` `x` ``
//! `\texttt{x}`, a link `[t](u)` its text; LaTeX's special characters are escaped and the
//! Unicode the report uses (±, ×, –, θ, ≤, …) is written as LaTeX that plain pdflatex typesets
//! with no package (OT1 text, math symbols); any other non-ASCII character becomes `?`.
//!
//! The file needs `\usepackage{booktabs}` alone. A table wider than the line is shrunk to the line
//! when the document also loads `graphicx` (`\resizebox`), and printed at its natural width
//! otherwise.

use super::markdown;
use super::{comparisons, tables};
use crate::results::Results;
use anyhow::Result;
use std::fmt::Write as _;
use std::path::Path;

/// One table for [`tables_tex`]: its caption and notes (markdown, converted like the cells),
/// its `\label`, and the table itself.
#[derive(Debug, Clone)]
pub struct LatexTable<'a> {
    pub caption: String,
    pub label: String,
    pub table: &'a markdown::Table,
    pub notes: Vec<String>,
}

/// The macro every table goes through: the tabular at its natural width, shrunk to `\linewidth`
/// when it is wider and graphicx is loaded. Defined once per document (`\providecommand`), its
/// box allocated once.
const FIT_MACRO: &str = r"\ifdefined\ptbbox\else\newsavebox{\ptbbox}\fi
\providecommand{\ptbfit}[1]{\sbox{\ptbbox}{#1}%
  \ifdim\wd\ptbbox>\linewidth %
    \ifdefined\resizebox\resizebox{\linewidth}{!}{\usebox{\ptbbox}}\else\usebox{\ptbbox}\fi%
  \else\usebox{\ptbbox}\fi}
";

/// `tables` as one LaTeX file: a header comment (who wrote it, what it needs), the fit macro,
/// then one `table` float per table.
pub fn tables_tex(experiment: &str, tables: &[LatexTable]) -> String {
    let name: String = experiment.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let mut out = String::new();
    out.push_str("% Written by `p2sbench report`");
    let _ = writeln!(out, " for the experiment {name}; re-written by every `report`: do not edit.");
    out.push_str("% \\input{tables.tex} in a document that loads \\usepackage{booktabs} (the rules);\n");
    out.push_str("% with \\usepackage{graphicx} also loaded, a table wider than the line is shrunk to it.\n");
    out.push_str("% Plain pdflatex: symbols are written as text and math commands, no other package.\n");
    out.push_str(FIT_MACRO);
    for t in tables {
        out.push('\n');
        out.push_str(&table_tex(t));
    }
    out
}

/// One `table` float.
fn table_tex(t: &LatexTable) -> String {
    let table = t.table;
    let columns = table.header.len().max(table.rows.iter().map(Vec::len).max().unwrap_or(0)).max(1);
    let spec: String = (0..columns).map(|i| if i < table.numeric_from { 'l' } else { 'r' }).collect();
    let row = |cells: &[String]| {
        // `\\`, `\toprule` and `\midrule` before a row read a leading `[` or `*` as their
        // argument: an empty group keeps it text.
        let protect = |c: String| if c.starts_with(['[', '*']) { format!("{{}}{c}") } else { c };
        let mut cells: Vec<String> = cells.iter().map(|c| protect(cell(c))).collect();
        cells.resize(columns, String::new());
        format!("    {} \\\\\n", cells.join(" & "))
    };
    let mut out = String::new();
    out.push_str("\\begin{table}[tbp]\n\\centering\n");
    let _ = writeln!(out, "\\caption{{{}}}", cell(&t.caption));
    let _ = writeln!(out, "\\label{{{}}}", label(&t.label));
    let _ = writeln!(out, "\\ptbfit{{%\n  \\begin{{tabular}}{{@{{}}{spec}@{{}}}}\n    \\toprule");
    out.push_str(&row(&table.header));
    out.push_str("    \\midrule\n");
    for r in &table.rows {
        out.push_str(&row(r));
    }
    out.push_str("    \\bottomrule\n  \\end{tabular}}\n");
    if !t.notes.is_empty() {
        out.push_str("\\par\\smallskip\n{\\footnotesize\\raggedright\n");
        for n in &t.notes {
            let _ = writeln!(out, "{}\\par", cell(n));
        }
        out.push_str("}\n");
    }
    out.push_str("\\end{table}\n");
    out
}

/// A `\label` key: letters, digits and `:-.` kept, anything else `-`.
fn label(key: &str) -> String {
    key.chars().map(|c| if c.is_ascii_alphanumeric() || ":-.".contains(c) { c } else { '-' }).collect()
}

/// Writes [`tables_tex`] of `tables` to `path` (atomically).
pub fn write_tables(path: &Path, experiment: &str, tables: &[LatexTable]) -> Result<()> {
    crate::store::write_atomic(path, tables_tex(experiment, tables).as_bytes())
}

/// A markdown cell (or caption, or note) as LaTeX: bold, code and links converted, specials
/// escaped, Unicode mapped ([`char_tex`]).
pub fn cell(md: &str) -> String {
    let chars: Vec<char> = md.chars().collect();
    let mut out = String::new();
    inline(&chars, &mut out);
    out
}

/// The index of the first `pat` in `s` at or after `from`.
fn find(s: &[char], from: usize, pat: &[char]) -> Option<usize> {
    (from..s.len().saturating_sub(pat.len() - 1)).find(|&i| s[i..].starts_with(pat))
}

fn inline(s: &[char], out: &mut String) {
    let mut i = 0;
    while i < s.len() {
        // **bold**
        if s[i..].starts_with(&['*', '*']) {
            if let Some(end) = find(s, i + 2, &['*', '*']).filter(|&e| e > i + 2) {
                out.push_str("\\textbf{");
                inline(&s[i + 2..end], out);
                out.push('}');
                i = end + 2;
                continue;
            }
        }
        // `code`: no markdown inside, only escaping.
        if s[i] == '`' {
            if let Some(end) = find(s, i + 1, &['`']).filter(|&e| e > i + 1) {
                out.push_str("\\texttt{");
                for (k, &c) in s[i + 1..end].iter().enumerate() {
                    push_char(c, s.get(i + 2 + k).copied(), out);
                }
                out.push('}');
                i = end + 1;
                continue;
            }
        }
        // [text](url) → text
        if s[i] == '[' {
            if let Some(close) = find(s, i + 1, &[']', '(']) {
                if let Some(end) = find(s, close + 2, &[')']) {
                    if !s[i + 1..close].contains(&'[') {
                        inline(&s[i + 1..close], out);
                        i = end + 1;
                        continue;
                    }
                }
            }
        }
        push_char(s[i], s.get(i + 1).copied(), out);
        i += 1;
    }
}

/// One character of text as LaTeX; `next` keeps `--` from becoming a dash.
fn push_char(c: char, next: Option<char>, out: &mut String) {
    match c {
        '-' if next == Some('-') => out.push_str("-{}"),
        c if c.is_ascii() => out.push_str(&ascii_tex(c)),
        c => out.push_str(char_tex(c).unwrap_or("?")),
    }
}

/// An ASCII character in OT1 text: LaTeX's specials escaped, and the characters OT1 fonts print
/// as something else (`<`, `>`, `|`, `"`) written as the commands that print them.
fn ascii_tex(c: char) -> String {
    match c {
        '\\' => "\\textbackslash{}".into(),
        '&' | '%' | '$' | '#' | '_' | '{' | '}' => format!("\\{c}"),
        '~' => "\\textasciitilde{}".into(),
        '^' => "\\textasciicircum{}".into(),
        '<' => "\\textless{}".into(),
        '>' => "\\textgreater{}".into(),
        '|' => "\\textbar{}".into(),
        '"' => "''".into(),
        '\n' | '\r' | '\t' => " ".into(),
        c if c.is_ascii_control() => String::new(),
        c => c.to_string(),
    }
}

/// The LaTeX for a non-ASCII character that plain pdflatex typesets with no package, or `None`
/// (the caller writes `?`).
pub fn char_tex(c: char) -> Option<&'static str> {
    Some(match c {
        '±' => "$\\pm$",
        '×' => "$\\times$",
        '·' => "$\\cdot$",
        '−' => "$-$",
        '–' => "--",
        '—' => "---",
        '…' => "\\dots{}",
        '‘' => "`",
        '’' => "'",
        '“' => "``",
        '”' => "''",
        '\u{a0}' => "~",
        '\u{2009}' | '\u{202f}' => "\\,",
        '≤' => "$\\leq$",
        '≥' => "$\\geq$",
        '≈' => "$\\approx$",
        '≠' => "$\\neq$",
        '∈' => "$\\in$",
        '→' => "$\\to$",
        '←' => "$\\leftarrow$",
        '⇔' => "$\\Leftrightarrow$",
        '∞' => "$\\infty$",
        '∂' => "$\\partial$",
        '√' => "$\\surd$",
        '°' => "$^\\circ$",
        '‖' => "$\\|$",
        '²' => "$^2$",
        '³' => "$^3$",
        '½' => "1/2",
        'ᵀ' => "$^{T}$",
        '†' => "$^\\dagger$",
        '‡' => "$^\\ddagger$",
        '§' => "\\S{}",
        'α' => "$\\alpha$",
        'β' => "$\\beta$",
        'γ' => "$\\gamma$",
        'δ' => "$\\delta$",
        'ε' => "$\\varepsilon$",
        'η' => "$\\eta$",
        'θ' => "$\\theta$",
        'κ' => "$\\kappa$",
        'λ' => "$\\lambda$",
        'μ' => "$\\mu$",
        'ν' => "$\\nu$",
        'π' => "$\\pi$",
        'ρ' => "$\\rho$",
        'σ' => "$\\sigma$",
        'τ' => "$\\tau$",
        'φ' => "$\\phi$",
        'χ' => "$\\chi$",
        'ψ' => "$\\psi$",
        'ω' => "$\\omega$",
        'Δ' => "$\\Delta$",
        'Θ' => "$\\Theta$",
        'Λ' => "$\\Lambda$",
        'Σ' => "$\\Sigma$",
        'Φ' => "$\\Phi$",
        'Ψ' => "$\\Psi$",
        'Ω' => "$\\Omega$",
        'é' => "\\'e",
        'è' => "\\`e",
        'á' => "\\'a",
        'ü' => "\\\"u",
        'ö' => "\\\"o",
        'ä' => "\\\"a",
        _ => return None,
    })
}

/// The report's tables, owned, for [`write_tables`]: the Results table, the sensitivity table and
/// the noise tables, where the results have them.
pub struct ReportTables {
    experiment: String,
    tables: Vec<(String, String, markdown::Table, Vec<String>)>,
}

impl ReportTables {
    /// Builds the tables from the results (the same calls as [`super::render`]): Results (cells
    /// as `[report] latex_cells` says), Comparisons, sensitivity, noise and drop against drop.
    pub fn build(r: &Results, basis: &super::Basis) -> Result<ReportTables> {
        let (rows, clean, paired) = (basis.rows.as_slice(), basis.clean, &basis.paired);
        let std_cells = r.spec_value("report.latex_cells").and_then(|v| v.as_str()) == Some("std");
        let cells = if std_cells { tables::CellStyle::Std } else { tables::CellStyle::Interval };
        let key = label(&r.name);
        let mut out = Vec::new();
        if !rows.is_empty() {
            let (table, variants) = tables::paper_table(rows, clean, paired, cells);
            let mut notes: Vec<String> = variants
                .iter()
                .map(|(tag, v)| if tag.is_empty() { v.clone() } else { format!("{tag}: {v}") })
                .filter(|n| !(std_cells && n.starts_with("[lo, hi]")))
                .collect();
            notes.push(
                "n: the seeds column. Bold: better than the next best of the column in a paired comparison over seeds and held-out identities (p < 0.05). Only trials with status `done` are counted."
                    .into(),
            );
            let at = if r.has_noise_study()? { " at the clean noise ratio" } else { "" };
            let what = if std_cells { "mean ± std over seeds" } else { "mean [95 % interval]" };
            let caption = format!("{}: final evaluation of each setting{at}, {what}.", r.name);
            out.push((caption, format!("tab:{key}:results"), table, notes));
        }
        let found = comparisons::comparisons(r, rows, paired, clean)?;
        if !found.is_empty() {
            let caption = format!(
                "{}: paired comparisons (difference X − Y with its 95 % interval; p two-sided, Holm-corrected across the table; P(X > Y) over seeds).",
                r.name
            );
            let notes = vec![format!(
                "Paired over the seeds both settings ran and the held-out identities both were scored on: Student's t over seeds plus the identities' bootstrap variance; {} comparisons.",
                found.len()
            )];
            out.push((caption, format!("tab:{key}:comparisons"), comparisons::comparisons_table(r, &found), notes));
        }
        if let Some(t) = tables::sensitivity_table(r, rows, paired)? {
            let caption = format!(
                "{}: sensitivity to hyper-parameters: the spread (max − min) of the seed means over each loss's grid, its range, and p of a permutation test of the settings within each seed.",
                r.name
            );
            out.push((caption, format!("tab:{key}:sensitivity"), t, Vec::new()));
        }
        for (i, (title, t, notes)) in tables::noise_tables(r, rows, paired)?.into_iter().enumerate() {
            let caption = format!(
                "{}: label-noise robustness, {title}: mean [95 % interval] per noise setting and the drop from clean training (clean − noisy), paired.",
                r.name
            );
            out.push((caption, format!("tab:{key}:noise{}", i + 1), t, notes));
        }
        if let Some((t, metric)) = comparisons::drop_table(r, rows, paired)? {
            let caption = format!("{}: one loss's drop in {metric} against another's, paired, Holm-corrected.", r.name);
            out.push((caption, format!("tab:{key}:drops"), t, Vec::new()));
        }
        Ok(ReportTables { experiment: r.name.clone(), tables: out })
    }

    /// The tables as [`LatexTable`]s.
    pub fn views(&self) -> Vec<LatexTable<'_>> {
        self.tables
            .iter()
            .map(|(caption, label, table, notes)| LatexTable {
                caption: caption.clone(),
                label: label.clone(),
                table,
                notes: notes.clone(),
            })
            .collect()
    }

    /// Writes them to `path` ([`write_tables`]).
    pub fn write(&self, path: &Path) -> Result<()> {
        write_tables(path, &self.experiment, &self.views())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_becomes_latex() {
        assert_eq!(cell("**97.25 ± 0.31**"), "\\textbf{97.25 $\\pm$ 0.31}");
        assert_eq!(cell("`done` and `a_b`"), "\\texttt{done} and \\texttt{a\\_b}");
        assert_eq!(cell("[experiment.toml](experiment.toml) [v1]"), "experiment.toml [v1]");
        assert_eq!(cell("**[x](y)**"), "\\textbf{x}");
        assert_eq!(cell("m=0.35, s=32"), "m=0.35, s=32");
        // Unclosed markup is text.
        assert_eq!(cell("**a"), "**a");
        assert_eq!(cell("a ` b"), "a ` b");
        assert_eq!(cell("[v1] (x)"), "[v1] (x)");
    }

    #[test]
    fn specials_are_escaped() {
        assert_eq!(
            cell(r"\ & % $ # _ { } ~ ^"),
            r"\textbackslash{} \& \% \$ \# \_ \{ \} \textasciitilde{} \textasciicircum{}"
        );
        assert_eq!(cell("a<b>c|d"), r"a\textless{}b\textgreater{}c\textbar{}d");
        assert_eq!(cell("1e--4"), "1e-{}-4");
        assert_eq!(cell("a\nb"), "a b");
    }

    #[test]
    fn unicode_becomes_latex() {
        assert_eq!(cell("97.25 ± 0.31"), "97.25 $\\pm$ 0.31");
        assert_eq!(cell("12 × 8"), "12 $\\times$ 8");
        assert_eq!(cell("0.10 (0.2–0.4)"), "0.10 (0.2--0.4)");
        assert_eq!(cell("a — b"), "a --- b");
        assert_eq!(cell("θ_y ≤ 90°"), "$\\theta$\\_y $\\leq$ 90$^\\circ$");
        assert_eq!(cell("‖x‖²"), "$\\|$x$\\|$$^2$");
        assert_eq!(cell("Δ ≈ 1 · 2 → 3 ≥ ∞"), "$\\Delta$ $\\approx$ 1 $\\cdot$ 2 $\\to$ 3 $\\geq$ $\\infty$");
        assert_eq!(cell("α σ μ"), "$\\alpha$ $\\sigma$ $\\mu$");
        assert_eq!(cell("0.9†‡"), "0.9$^\\dagger$$^\\ddagger$");
        assert_eq!(cell("10\u{a0}s"), "10~s");
        assert_eq!(cell("a 漢 b"), "a ? b");
    }

    /// Every non-ASCII character in a string or char literal of the code that writes the report
    /// (src/report, src/results) has a LaTeX form: a new symbol in a table fails here rather than
    /// printing `?` in the paper.
    #[test]
    fn every_character_the_report_writes_is_mapped() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        for dir in ["report", "results"] {
            for e in std::fs::read_dir(root.join(dir)).unwrap() {
                let p = e.unwrap().path();
                if p.extension().is_some_and(|x| x == "rs") {
                    files.push(p);
                }
            }
        }
        assert!(files.len() >= 5, "{files:?}");
        let mut seen = Vec::new();
        // html.rs writes the page around the tables, not their text.
        for f in files.iter().filter(|f| !f.ends_with("html.rs")) {
            let text = std::fs::read_to_string(f).unwrap();
            // The code, not its unit tests.
            let code = text.split("#[cfg(test)]").next().unwrap();
            for (n, line) in code.lines().enumerate() {
                for c in literal_chars(line).into_iter().filter(|c| !c.is_ascii()) {
                    assert!(
                        char_tex(c).is_some(),
                        "{}:{}: {c:?} (U+{:04X}) has no LaTeX form",
                        f.display(),
                        n + 1,
                        c as u32
                    );
                    seen.push(c);
                }
            }
        }
        // The symbols the report's tables use today are among them (the scan reads literals).
        for c in ['±', '–', '×'] {
            assert!(seen.contains(&c), "{c} not found in a literal: {seen:?}");
        }
    }

    /// The characters inside string and char literals of one line of Rust (comments skipped).
    fn literal_chars(line: &str) -> Vec<char> {
        let s: Vec<char> = line.chars().collect();
        let (mut out, mut i, mut in_str) = (Vec::new(), 0, false);
        while i < s.len() {
            let c = s[i];
            if in_str {
                match c {
                    '\\' => {
                        out.extend(s.get(i + 1));
                        i += 2;
                        continue;
                    }
                    '"' => in_str = false,
                    c => out.push(c),
                }
            } else if c == '"' {
                in_str = true;
            } else if c == '/' && s.get(i + 1) == Some(&'/') {
                break;
            } else if c == '\'' && s.get(i + 2) == Some(&'\'') {
                out.push(s[i + 1]);
                i += 3;
                continue;
            }
            i += 1;
        }
        out
    }

    #[test]
    fn tables_have_booktabs_rules_alignment_and_notes() {
        let mut t = markdown::Table::new(vec!["loss".into(), "params".into(), "LFW acc (%)".into()], 2);
        t.rows.push(vec!["p2sgrad".into(), "–".into(), "**97.25 ± 0.31**".into()]);
        t.rows.push(vec!["cosface".into(), "m=0.35, s=32".into(), "96.10 ± 0.20".into()]);
        let tex = tables_tex(
            "demo",
            &[LatexTable {
                caption: "Results of `demo`".into(),
                label: "tab:demo results".into(),
                table: &t,
                notes: vec!["n = 2 seeds; Welch's t-test".into()],
            }],
        );
        assert!(tex.starts_with("% Written by `p2sbench report` for the experiment demo"), "{tex}");
        assert!(tex.contains("\\usepackage{booktabs}"), "{tex}");
        for needle in [
            "\\begin{table}[tbp]\n\\centering\n\\caption{Results of \\texttt{demo}}\n\\label{tab:demo-results}\n",
            "\\begin{tabular}{@{}llr@{}}\n    \\toprule\n    loss & params & LFW acc (\\%) \\\\\n    \\midrule\n",
            "    p2sgrad & -- & \\textbf{97.25 $\\pm$ 0.31} \\\\\n",
            "    cosface & m=0.35, s=32 & 96.10 $\\pm$ 0.20 \\\\\n    \\bottomrule\n  \\end{tabular}}\n",
            "\\par\\smallskip\n{\\footnotesize\\raggedright\nn = 2 seeds; Welch's t-test\\par\n}\n\\end{table}\n",
        ] {
            assert!(tex.contains(needle), "{needle:?} not in\n{tex}");
        }
        assert_eq!(tex.matches("\\begin{table}").count(), 1);
        // A short row is padded to the header's columns.
        let mut short = t.clone();
        short.rows.push(vec!["softmax".into()]);
        let tex =
            tables_tex("demo", &[LatexTable { caption: "c".into(), label: "l".into(), table: &short, notes: vec![] }]);
        assert!(tex.contains("    softmax &  &  \\\\\n"), "{tex}");
        assert!(!tex.contains("\\footnotesize"), "no notes, no note paragraph");
        // A row (or header) starting with `[` or `*` is not an argument of the rule or line end.
        let mut brackets = markdown::Table::new(vec!["[v1] test".into(), "x".into()], 1);
        brackets.rows.push(vec!["*".into(), "[1, 2]".into()]);
        let tex = tables_tex(
            "demo",
            &[LatexTable { caption: "c".into(), label: "l".into(), table: &brackets, notes: vec![] }],
        );
        assert!(tex.contains("\\toprule\n    {}[v1] test & x \\\\\n"), "{tex}");
        assert!(tex.contains("\\midrule\n    {}* & {}[1, 2] \\\\\n"), "{tex}");
    }
}

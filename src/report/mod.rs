//! `results/<experiment>/report.md` and `report.html`, re-rendered from the parquet files alone: the experiment,
//! its hardware and time, every trial's status, the paper-style results table, the sensitivity
//! spread, the noise-robustness tables, the published P2SGrad numbers beside ours, and the figures
//! `plot` wrote (embedded by relative path). What the results do not hold (a protocol that did not
//! run, no sweep, no noise study) is said in the report rather than silently left out.
//!
//! Reading and aggregating is [`crate::results`]'s; [`tables`] and [`markdown`] format; the
//! figures are found through the manifest `plot` wrote ([`crate::results::Manifest`]). The
//! markdown is the one source of the content: [`html`] renders that text as the page.

pub mod comparisons;
pub mod html;
pub mod latex;
pub mod markdown;
pub mod tables;

use crate::results::compare::{self, Paired};
use crate::results::{aggregate, Manifest, Results};
use crate::store::run_info::RunInfo;
use anyhow::Result;
use markdown::duration;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Protocols the paper tables are about; the report says which of them did not run.
const PAPER_PROTOCOLS: &[&str] = &["lfw", "megaface", "ijbc"];

/// The files [`write_report`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportFiles {
    pub markdown: PathBuf,
    pub html: PathBuf,
    /// `tables.tex`: the tables as LaTeX ([`latex`]).
    pub latex: PathBuf,
}

/// Loads the results in `dir`, writes `report.md`, `report.html` and `tables.tex` there (all
/// built before any is written), and returns their paths.
pub fn write_report(dir: &Path) -> Result<ReportFiles> {
    let r = Results::load_evaluations(dir)?;
    let basis = Basis::load(&r)?;
    let text = render(&r, &basis)?;
    let page = html::to_html(&text, &r.dir.root)?;
    let tex = latex::ReportTables::build(&r, &basis)?;
    let files = ReportFiles { markdown: r.dir.report(), html: r.dir.report_html(), latex: r.dir.tables_tex() };
    crate::store::write_atomic(&files.markdown, text.as_bytes())?;
    crate::store::write_atomic(&files.html, page.as_bytes())?;
    tex.write(&files.latex)?;
    Ok(files)
}

/// How big our run was, from experiment.toml.
pub fn scale_statement(r: &Results) -> String {
    let int = |k: &str| r.spec_value(k).and_then(|v| v.as_integer());
    let mut parts = Vec::new();
    match (int("data.identities"), int("data.images_per_identity")) {
        (Some(ids), Some(per)) => {
            let size = int("data.image_size").map_or(String::new(), |s| format!(" of {s}×{s} px"));
            parts.push(format!("{ids} training identities × {per} images{size} ({} images)", ids * per));
        }
        _ => {
            if let Some(data) = r.spec_value("data").and_then(|d| d.as_table()) {
                let kv: Vec<String> = data.iter().map(|(k, v)| format!("{k}={v}")).collect();
                parts.push(format!("data: {}", kv.join(", ")));
            }
        }
    }
    if let Some(w) = r.spec_value("model.widths").and_then(|w| w.as_array()) {
        let w: Vec<String> = w.iter().map(|v| v.to_string()).collect();
        let emb = int("model.embedding").map_or(String::new(), |e| format!(", {e}-d embedding"));
        parts.push(format!("CNN with stage widths [{}]{emb}", w.join(", ")));
    }
    if let Some(e) = epochs(r) {
        parts.push(e);
    }
    if parts.is_empty() {
        "this run (experiment.toml not found)".into()
    } else {
        parts.join("; ")
    }
}

/// `30 epochs`, or `30 epochs unless the setting says otherwise` where a `[[loss]]` block sets
/// its own `train.epochs` (the setting's label then shows it).
fn epochs(r: &Results) -> Option<String> {
    let e = r.spec_value("train.epochs")?.as_integer()?;
    let blocks = r.spec_value("loss").and_then(|l| l.as_array());
    let own = blocks.is_some_and(|b| b.iter().any(|b| b.as_table().is_some_and(|t| t.contains_key("train.epochs"))));
    Some(if own { format!("{e} epochs unless the setting says otherwise") } else { format!("{e} epochs") })
}

/// Our scale in a few words for a table cell: `12 classes × 8 images, 2 epochs`.
pub fn scale_short(r: &Results) -> String {
    let int = |k: &str| r.spec_value(k).and_then(|v| v.as_integer());
    let mut parts = Vec::new();
    if let (Some(ids), Some(per)) = (int("data.identities"), int("data.images_per_identity")) {
        parts.push(format!("{ids} classes × {per} images"));
    }
    if let Some(e) = epochs(r) {
        parts.push(e);
    }
    if parts.is_empty() {
        "this run (see Run)".into()
    } else {
        parts.join(", ")
    }
}

/// What the markdown and the LaTeX tables are both built from, computed once: each setting's
/// final metrics, the clean noise ratio, and the paired values behind the comparisons (every
/// done trial's bootstrap replicates).
pub struct Basis {
    pub rows: Vec<aggregate::SettingMetric>,
    pub clean: f64,
    pub paired: Paired,
}

impl Basis {
    pub fn load(r: &Results) -> Result<Basis> {
        let rows = aggregate::by_setting(r)?;
        let clean = aggregate::clean_ratio(r)?;
        let paired = Paired::load(r, &aggregate::headline_columns(&rows))?;
        Ok(Basis { rows, clean, paired })
    }
}

/// The whole report as markdown.
pub fn render(r: &Results, basis: &Basis) -> Result<String> {
    let mut md = String::new();
    let (rows, clean, paired) = (basis.rows.as_slice(), basis.clean, &basis.paired);
    let description = r.spec_value("description").and_then(|d| d.as_str()).unwrap_or("");
    writeln!(md, "# Report: {}\n", r.name)?;
    if !description.is_empty() {
        writeln!(md, "{description}\n")?;
    }
    writeln!(
        md,
        "Rendered by `p2sbench report` from the parquet files in this directory; the experiment as run is in [experiment.toml](experiment.toml).\n"
    )?;

    // Run.
    writeln!(md, "## Run\n")?;
    match RunInfo::read(&r.dir.root)? {
        Some(info) => {
            writeln!(md, "- Hardware: {} ({} logical cores), {}", info.cpu_model, info.logical_cores, info.os)?;
            writeln!(md, "- Device: {} ({} torch threads)", info.device, info.torch_threads)?;
            writeln!(md, "- Wall-clock time of the latest `run`: {}", duration(info.wall_seconds))?;
        }
        None => {
            writeln!(md, "- Hardware: not recorded (no run.json: the results predate it or were copied without it)")?
        }
    }
    if let Some(total) = tables::total_seconds(r)? {
        writeln!(md, "- Training and evaluation time, summed over trials: {}", duration(total))?;
    }
    writeln!(md, "- Scale: {}", scale_statement(r))?;
    let counts = tables::status_counts(r)?;
    let total: usize = counts.values().sum();
    let by: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    writeln!(md, "- Trials: {total} ({})\n", by.join(", "))?;

    // Selection.
    if let Some(table) = tables::selection_table(r)? {
        let sel = r.selection.as_ref().expect("a selection table has a selection");
        writeln!(md, "## Tuned on validation, reported on test\n")?;
        writeln!(
            md,
            "Each setting of the tuned keys ({}) was trained on the search seeds {:?} and evaluated on the {} validation identities only; per loss and condition the setting with the {} mean `{}` was trained again on the seeds {:?} and evaluated on the {} test identities only (Musgrave et al., \"A Metric Learning Reality Check\", ECCV 2020). No test number exists for any other setting, and none was used to choose. The tables below hold the final (test) trials alone.\n",
            sel.tune.join(", "),
            sel.search_seeds,
            sel.validation_identities,
            if sel.goal == "min" { "lowest" } else { "highest" },
            sel.metric,
            sel.final_seeds,
            sel.test_identities
        )?;
        md.push_str(&table.to_markdown());
        md.push('\n');
        if let Some(table) = tables::halving_table(r) {
            writeln!(
                md,
                "The search was successive halving: every setting trained to the first rung; at each rung the best 1/η of a group's settings (at least one) went on from their checkpoints, the others stopped (`pruned`); the last rung is the full training, and its best setting is the choice.\n"
            )?;
            md.push_str(&table.to_markdown());
            md.push('\n');
        }
    }

    // Results.
    writeln!(md, "## Results\n")?;
    if rows.is_empty() {
        writeln!(md, "No done trial has evaluations yet: there is nothing to tabulate.\n")?;
    } else {
        let (table, notes) = tables::paper_table(rows, clean, paired, tables::CellStyle::Interval);
        writeln!(
            md,
            "Final evaluation of each setting{}: the mean over seeds and its 95 % interval `[lo, hi]` (rates in %); with one seed, LFW-style accuracy also shows ± the std over its folds (insightface's convention). A cell is **bold** only where its setting is better than the next best of the column in a paired comparison (p < 0.05; see Comparisons). `n/r`: a rate its protocol cannot resolve. Only trials with status `done` are counted.\n",
            if r.has_noise_study()? { " at the clean noise ratio" } else { "" }
        )?;
        md.push_str(&table.to_markdown());
        md.push('\n');
        for (tag, text) in notes {
            if tag.is_empty() {
                writeln!(md, "- {text}")?;
            } else {
                writeln!(md, "- {tag}: {text}")?;
            }
        }
        let missing: Vec<String> = PAPER_PROTOCOLS
            .iter()
            .filter(|p| !rows.iter().any(|m| m.protocol == **p))
            .map(|p| crate::results::names::protocol_label(p))
            .collect();
        if !missing.is_empty() {
            writeln!(
                md,
                "\nNot evaluated in this experiment: {} (no rows for them in any evals.parquet; their columns are omitted).",
                missing.join(", ")
            )?;
        }
        md.push('\n');
    }

    // Comparisons.
    writeln!(md, "## Comparisons\n")?;
    let found = comparisons::comparisons(r, rows, paired, clean)?;
    if found.is_empty() {
        writeln!(md, "Nothing to compare: fewer than two settings with evaluations.\n")?;
    } else {
        writeln!(
            md,
            "Each setting against {} on each protocol's primary metric: the difference X − Y with its 95 % interval, paired over the seeds both ran and the held-out identities both were scored on (trials of one seed start from the same parameters, see the same batches and are evaluated on the same identities). The standard error combines the spread of the per-seed differences and the identities' bootstrap of their mean; the interval and p come from a Student's t over seeds plus a normal over identities (with one seed: the identity bootstrap's percentile interval). p is two-sided, corrected by Holm across the {} comparisons of the table; P(X > Y) is the probability of improvement over seeds (rliable, Agarwal et al. 2021). Verdict at 5 % after Holm.\n",
            match r.spec_value("report.comparisons").and_then(|v| v.as_str()) {
                Some("all") => "every other setting".to_string(),
                _ => "the baseline (`[report] baseline`; default P2SGrad, else the best setting)".to_string(),
            },
            found.len()
        )?;
        md.push_str(&comparisons::comparisons_table(r, &found).to_markdown());
        md.push('\n');
        writeln!(md, "### Power\n")?;
        writeln!(
            md,
            "What each comparison could detect: its standard error, the smallest difference a two-sided 5 % test finds with 80 % power at that error, and how many seeds would detect one point (keeping the identities' part of the error; where that part alone is larger, more held-out identities are needed, not more seeds).\n"
        )?;
        md.push_str(&comparisons::power_table(r, &found).to_markdown());
        md.push('\n');
    }

    // Convergence.
    if let Some((name, table)) = tables::plateau_table(r, rows)? {
        writeln!(md, "## Convergence\n")?;
        writeln!(
            md,
            "How far the held-out {name} moved over the last fifth of each trial's training (max − min over the evaluations in that window, the largest over seeds). Under one point the setting trained to a plateau; with a single evaluation in the window (`[eval] every_epochs` too coarse) it cannot be told.\n"
        )?;
        md.push_str(&table.to_markdown());
        md.push('\n');
    }

    // Sensitivity.
    writeln!(md, "## Sensitivity to hyper-parameters\n")?;
    match tables::sensitivity_table(r, rows, paired)? {
        Some(t) => {
            writeln!(
                md,
                "Each metric: the spread (max − min, in percentage points for rates) of the seed means over the loss's hyper-parameter grid, then the grid's (minimum–maximum); and whether that spread exceeds what seeds alone produce: p of a permutation test that shuffles the settings within each seed ({} permutations; small p: the hyper-parameters matter beyond seed noise). P2SGrad has no hyper-parameter.\n",
                compare::PERMUTATIONS
            )?;
            md.push_str(&t.to_markdown());
            md.push('\n');
        }
        None => {
            writeln!(md, "No loss was run at more than one hyper-parameter setting: there is no spread to report.\n")?
        }
    }

    // Noise.
    writeln!(md, "## Label-noise robustness\n")?;
    let noise = tables::noise_tables(r, rows, paired)?;
    if noise.is_empty() {
        writeln!(md, "No noise study: every trial trained at the same noise ratio.\n")?;
    } else {
        writeln!(
            md,
            "Each metric per noise setting (mean [95 % interval]) and its drop from clean training (clean − noisy).\n"
        )?;
        for (title, t, notes) in noise {
            writeln!(md, "### {title}\n")?;
            md.push_str(&t.to_markdown());
            md.push('\n');
            for n in notes {
                writeln!(md, "- {n}")?;
            }
            md.push('\n');
        }
        if let Some((t, metric)) = comparisons::drop_table(r, rows, paired)? {
            writeln!(md, "### Drop against drop\n")?;
            writeln!(
                md,
                "Whether one loss loses more than another under the same noise: the difference of their drops in {metric} (each loss's representative setting), paired over seeds and identities, Holm-corrected across the table.\n"
            )?;
            md.push_str(&t.to_markdown());
            md.push('\n');
        }
    }

    // Published.
    writeln!(md, "## Published numbers beside ours\n")?;
    let scale = scale_statement(r);
    writeln!(
        md,
        "The published figures come from ResNet-scale networks trained on MS1M and evaluated on the real MegaFace (refined) and IJB-C benchmarks. Ours come from this run ({scale}) and its protocols; they show how the losses compare with each other here, not how they compare with the published numbers.\n"
    )?;
    md.push_str(&tables::published_table(r, rows, &scale_short(r))?.to_markdown());
    md.push('\n');

    // Figures.
    writeln!(md, "## Figures\n")?;
    match Manifest::read(&r.dir.root)? {
        Some(m) => {
            for f in &m.figures {
                writeln!(md, "### {}\n", f.title)?;
                writeln!(md, "![{}](plots/{}.png)\n", f.title, f.stem)?;
                writeln!(md, "{} ([SVG](plots/{}.svg), [PDF](plots/{}.pdf))\n", f.caption, f.stem, f.stem)?;
            }
            if !m.skipped.is_empty() {
                writeln!(md, "Not drawn:\n")?;
                for s in &m.skipped {
                    writeln!(md, "- {}: {}", s.kind, s.reason)?;
                }
                md.push('\n');
            }
        }
        None => writeln!(md, "No figures yet: run `p2sbench plot {}`.\n", r.dir.root.display())?,
    }

    // Trials.
    writeln!(md, "## Trials\n")?;
    md.push_str(&tables::trials_table(r)?.to_markdown());
    Ok(md)
}

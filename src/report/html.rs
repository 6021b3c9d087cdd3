//! `report.html`: the markdown of report.md — the one source of the report's content — rendered
//! as one self-contained page. Converts the subset [`super::render`] writes: `#` headings,
//! paragraphs, `-` and `1.` lists, tables, fenced code, `**bold**`, `*emphasis*`, `` `code` ``,
//! links and images. Images (`![title](plots/x.png)`) are inlined from the SVG beside them
//! (`plots/x.svg`); tables sort by a column when its header is clicked (a few lines of inline
//! script); the cells of a `status` column are coloured badges; a contents line links the `##`
//! sections. The page loads nothing from anywhere (its Content-Security-Policy forbids it).

use crate::error::InputError;
use crate::store::State;
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::Path;

/// The page's style: readable text, right-aligned numeric columns, sortable headers, badges.
const STYLE: &str = r#"
body { font-family: "DejaVu Sans", system-ui, sans-serif; color: #1f2328; background: #fff; margin: 0; line-height: 1.5; }
main { max-width: 1400px; margin: 0 auto; padding: 1rem 2rem 4rem; }
h1 { border-bottom: 2px solid #d0d7de; padding-bottom: .3rem; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; margin-top: 2.5rem; }
code { font-family: "DejaVu Sans Mono", monospace; font-size: .88em; background: #f6f8fa; padding: .1em .3em; border-radius: 4px; }
pre { background: #f6f8fa; padding: .8rem; overflow-x: auto; }
.table-wrap { overflow-x: auto; margin: 1rem 0; }
table { border-collapse: collapse; font-size: .9rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .6rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; cursor: pointer; user-select: none; white-space: nowrap; }
th:hover { background: #eaeef2; }
th::after { content: " \2195"; color: #8c959f; }
th[aria-sort="ascending"]::after { content: " \25B2"; color: #1f2328; }
th[aria-sort="descending"]::after { content: " \25BC"; color: #1f2328; }
tbody tr:nth-child(even) { background: #fafbfc; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
nav.contents { margin: .5rem 0 1rem; }
figure { margin: 1rem 0; }
figure svg { max-width: 100%; height: auto; display: block; border: 1px solid #eaeef2; }
.badge { display: inline-block; padding: 0 .5em; border-radius: 1em; color: #fff; font-size: .85em; font-weight: bold; }
"#;

/// Sorting: a click (or Enter) on a header sorts the body rows by that column, ascending then
/// descending; cells that start with a number compare as numbers, empty ones (–) go last.
const SCRIPT: &str = r#"
(function () {
  function key(cell) {
    var t = cell.textContent.trim();
    return /^[-+]?\.?\d/.test(t) ? parseFloat(t.replace(/,/g, '')) : t;
  }
  function sortBy(table, th, col) {
    var asc = th.getAttribute('aria-sort') !== 'ascending';
    Array.prototype.forEach.call(th.parentNode.cells, function (h) { h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[col]), y = key(b.cells[col]);
      var nx = typeof x === 'number', ny = typeof y === 'number';
      if (nx !== ny) { return nx ? -1 : 1; }
      var c = nx ? x - y : x.localeCompare(y, undefined, { numeric: true });
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.tabIndex = 0;
      th.title = 'sort by this column';
      th.addEventListener('click', function () { sortBy(table, th, col); });
      th.addEventListener('keydown', function (e) {
        if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); sortBy(table, th, col); }
      });
    });
  });
})();
"#;

/// Nothing but the page's own inline style and script; no fetch, image, font or frame.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'";

/// A badge colour per trial state (white text on it).
fn badge_color(state: State) -> &'static str {
    match state {
        State::Done => "#1a7f37",
        State::Failed => "#cf222e",
        State::Diverged => "#bc4c00",
        State::Running => "#0969da",
        State::Pending => "#6e7781",
        State::Paused => "#8250df",
        State::Pruned => "#57606a",
    }
}

const STATES: [State; 7] =
    [State::Pending, State::Running, State::Paused, State::Done, State::Pruned, State::Failed, State::Diverged];

/// report.md's text as the page; images are read from `root` (the results directory).
pub fn to_html(markdown: &str, root: &Path) -> Result<String> {
    let mut c = Converter { root, ids: BTreeMap::new(), sections: Vec::new(), out: String::new() };
    c.blocks(markdown)?;
    // Contents: a link to every section, after the title.
    let links: Vec<String> = c.sections.iter().map(|(id, html)| format!("<a href=\"#{id}\">{html}</a>")).collect();
    let nav = format!("<nav class=\"contents\">Contents: {}</nav>\n", links.join(" · "));
    let at = c.out.find("</h1>\n").map_or(0, |p| p + "</h1>\n".len());
    if !links.is_empty() {
        c.out.insert_str(at, &nav);
    }
    let title = markdown.lines().find_map(|l| l.strip_prefix("# ")).map_or("p2sbench report".to_string(), plain);
    let mut style = STYLE.to_string();
    for s in STATES {
        style.push_str(&format!(".status-{} {{ background: {}; }}\n", s.as_str(), badge_color(s)));
    }
    Ok(format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"p2sbench report (from report.md)\">\n\
         <title>{}</title>\n<style>{style}</style>\n</head>\n<body>\n<main>\n{}</main>\n<script>{SCRIPT}</script>\n</body>\n</html>\n",
        escape(&title),
        c.out
    ))
}

fn escape(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => s.push_str("&amp;"),
            '<' => s.push_str("&lt;"),
            '>' => s.push_str("&gt;"),
            '"' => s.push_str("&quot;"),
            _ => s.push(ch),
        }
    }
    s
}

/// Inline markup removed: the text a reader sees (for titles, ids and status cells).
fn plain(text: &str) -> String {
    text.replace("**", "").replace('`', "")
}

/// `## Heading` → (2, "Heading").
fn heading(line: &str) -> Option<(usize, &str)> {
    let level = line.bytes().take_while(|&b| b == b'#').count();
    let rest = line.get(level..)?;
    ((1..=6).contains(&level) && rest.starts_with(' ')).then(|| (level, rest.trim()))
}

/// `- item` → (false, "item"); `3. item` → (true, "item").
fn list_item(line: &str) -> Option<(bool, &str)> {
    if let Some(rest) = line.strip_prefix("- ") {
        return Some((false, rest));
    }
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    (digits > 0).then(|| line[digits..].strip_prefix(". ")).flatten().map(|rest| (true, rest))
}

/// A table row's cells; `\|` is a literal bar.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().strip_prefix('|').unwrap_or(line);
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    let mut out = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' if chars.peek() == Some(&'|') => {
                out.last_mut().unwrap().push('|');
                chars.next();
            }
            '|' => out.push(String::new()),
            _ => out.last_mut().unwrap().push(ch),
        }
    }
    out.into_iter().map(|c| c.trim().to_string()).collect()
}

/// `|---|---:|` → Some([false, true]) (right-aligned columns).
fn rule(line: &str) -> Option<Vec<bool>> {
    let cs = cells(line);
    cs.iter()
        .all(|c| !c.is_empty() && c.trim_matches(':').chars().all(|ch| ch == '-'))
        .then(|| cs.iter().map(|c| c.ends_with(':')).collect())
}

struct Converter<'a> {
    root: &'a Path,
    /// Heading ids used so far, for unique anchors.
    ids: BTreeMap<String, usize>,
    /// The `##` sections: id and heading HTML.
    sections: Vec<(String, String)>,
    out: String,
}

impl Converter<'_> {
    fn blocks(&mut self, md: &str) -> Result<()> {
        let lines: Vec<&str> = md.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i];
            if line.trim().is_empty() {
                i += 1;
            } else if let Some(lang) = line.strip_prefix("```") {
                let end = lines[i + 1..].iter().position(|l| l.starts_with("```")).map_or(lines.len(), |p| i + 1 + p);
                let class =
                    if lang.trim().is_empty() { String::new() } else { format!(" class=\"{}\"", escape(lang.trim())) };
                self.out
                    .push_str(&format!("<pre><code{class}>{}</code></pre>\n", escape(&lines[i + 1..end].join("\n"))));
                i = end + 1;
            } else if let Some((level, text)) = heading(line) {
                let id = self.anchor(text);
                let html = self.inline(text)?;
                self.out.push_str(&format!("<h{level} id=\"{id}\">{html}</h{level}>\n"));
                if level == 2 {
                    self.sections.push((id, html));
                }
                i += 1;
            } else if line.starts_with('|') {
                let end = lines[i..].iter().position(|l| !l.starts_with('|')).map_or(lines.len(), |p| i + p);
                self.table(&lines[i..end])?;
                i = end;
            } else if let Some((ordered, _)) = list_item(line) {
                let tag = if ordered { "ol" } else { "ul" };
                self.out.push_str(&format!("<{tag}>\n"));
                while let Some((o, text)) = lines.get(i).and_then(|l| list_item(l)) {
                    if o != ordered {
                        break;
                    }
                    let html = self.inline(text)?;
                    self.out.push_str(&format!("<li>{html}</li>\n"));
                    i += 1;
                }
                self.out.push_str(&format!("</{tag}>\n"));
            } else {
                let end = lines[i..]
                    .iter()
                    .position(|l| {
                        l.trim().is_empty()
                            || l.starts_with("```")
                            || l.starts_with('|')
                            || heading(l).is_some()
                            || list_item(l).is_some()
                    })
                    .map_or(lines.len(), |p| i + p);
                let text = lines[i..end].iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
                let html = self.inline(&text)?;
                // A paragraph that is one image is a figure.
                let alone = text.starts_with("![") && text.ends_with(')') && text.matches("](").count() == 1;
                let tag = if alone { "figure" } else { "p" };
                self.out.push_str(&format!("<{tag}>{html}</{tag}>\n"));
                i = end;
            }
        }
        Ok(())
    }

    /// A unique id from a heading's text: `LFW accuracy (%)` → `lfw-accuracy`.
    fn anchor(&mut self, text: &str) -> String {
        let mut slug = String::new();
        for ch in plain(text).to_lowercase().chars() {
            if ch.is_alphanumeric() {
                slug.push(ch);
            } else if !slug.is_empty() && !slug.ends_with('-') {
                slug.push('-');
            }
        }
        let slug = slug.trim_end_matches('-').to_string();
        let n = self.ids.entry(slug.clone()).or_insert(0);
        *n += 1;
        if *n == 1 {
            slug
        } else {
            format!("{slug}-{n}")
        }
    }

    fn table(&mut self, lines: &[&str]) -> Result<()> {
        let header = cells(lines[0]);
        let (right, body) = match lines.get(1).and_then(|l| rule(l)) {
            Some(r) => (r, &lines[2..]),
            None => (vec![false; header.len()], &lines[1..]),
        };
        let status_col = header.iter().position(|h| plain(h) == "status");
        let class = |i: usize| if right.get(i) == Some(&true) { " class=\"num\"" } else { "" };
        self.out.push_str("<div class=\"table-wrap\"><table class=\"sortable\">\n<thead><tr>");
        for (i, h) in header.iter().enumerate() {
            let html = self.inline(h)?;
            self.out.push_str(&format!("<th{}>{html}</th>", class(i)));
        }
        self.out.push_str("</tr></thead>\n<tbody>\n");
        for line in body {
            self.out.push_str("<tr>");
            for (i, cell) in cells(line).iter().enumerate() {
                let state = (Some(i) == status_col)
                    .then(|| serde_json::from_value::<State>(serde_json::Value::String(plain(cell))).ok())
                    .flatten();
                let html = match state {
                    Some(s) => format!("<span class=\"badge status-{0}\">{0}</span>", s.as_str()),
                    None => self.inline(cell)?,
                };
                self.out.push_str(&format!("<td{}>{html}</td>", class(i)));
            }
            self.out.push_str("</tr>\n");
        }
        self.out.push_str("</tbody>\n</table></div>\n");
        Ok(())
    }

    /// Inline markup: `\x` escapes, `code`, **bold**, *emphasis*, [links](url), ![images](src).
    fn inline(&self, text: &str) -> Result<String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(ch) = rest.chars().next() {
            let after = &rest[ch.len_utf8()..];
            if ch == '\\' && after.starts_with(|c: char| c.is_ascii_punctuation()) {
                let next = after.chars().next().unwrap_or('\\');
                out.push_str(&escape(&next.to_string()));
                rest = &after[next.len_utf8()..];
            } else if let Some((code, tail)) = ch.eq(&'`').then(|| after.split_once('`')).flatten() {
                out.push_str(&format!("<code>{}</code>", escape(code)));
                rest = tail;
            } else if let Some((inner, tail)) = rest.strip_prefix("**").and_then(|r| r.split_once("**")) {
                out.push_str(&format!("<strong>{}</strong>", self.inline(inner)?));
                rest = tail;
            } else if let Some((inner, tail)) =
                (ch == '*' && !after.starts_with([' ', '*'])).then(|| after.split_once('*')).flatten()
            {
                out.push_str(&format!("<em>{}</em>", self.inline(inner)?));
                rest = tail;
            } else if let Some((label, target, tail)) = rest.strip_prefix("![").and_then(link) {
                out.push_str(&self.image(label, target)?);
                rest = tail;
            } else if let Some((label, target, tail)) = rest.strip_prefix('[').and_then(link) {
                out.push_str(&format!("<a href=\"{}\">{}</a>", escape(target), self.inline(label)?));
                rest = tail;
            } else {
                out.push_str(&escape(&ch.to_string()));
                rest = after;
            }
        }
        Ok(out)
    }

    /// The image's SVG, inline: `plots/x.png` is read from `plots/x.svg` under the results root.
    fn image(&self, alt: &str, target: &str) -> Result<String> {
        let path = self.root.join(target).with_extension("svg");
        let svg = std::fs::read_to_string(&path).map_err(|e| InputError {
            location: path.display().to_string(),
            message: format!("the report's figure \"{alt}\" has no readable SVG ({e}); re-run `p2sbench plot`"),
        })?;
        let start = svg.find("<svg").ok_or_else(|| InputError {
            location: path.display().to_string(),
            message: "not an SVG file (no <svg> element)".into(),
        })?;
        let svg = svg[start..].trim_end();
        let open_end = svg.find('>').unwrap_or(0);
        let (open, body) = svg.split_at(open_end);
        let attr = |name: &str| {
            let key = format!(" {name}=\"");
            open.find(&key).map(|p| &open[p + key.len()..]).and_then(|v| v.split('"').next())
        };
        let mut extra = format!(" role=\"img\" aria-label=\"{}\"", escape(alt));
        if attr("viewBox").is_none() {
            if let (Some(w), Some(h)) = (attr("width"), attr("height")) {
                extra.push_str(&format!(" viewBox=\"0 0 {w} {h}\""));
            }
        }
        Ok(format!("{open}{extra}{body}"))
    }
}

/// `label](target)rest` → (label, target, rest).
fn link(text: &str) -> Option<(&str, &str, &str)> {
    let (label, after) = text.split_once("](")?;
    let (target, rest) = after.split_once(')')?;
    (!label.contains('[')).then_some((label, target, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_the_report_subset() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::create_dir_all(dir.join("plots")).unwrap();
        std::fs::write(
            dir.join("plots/f.svg"),
            "<?xml version=\"1.0\"?>\n<svg width=\"40\" height=\"20\" xmlns=\"http://www.w3.org/2000/svg\"><text>T</text></svg>\n",
        )
        .unwrap();
        let md = "# Report: x\n\nSome **bold** and `a<b` text,\ncontinued [link](e.toml).\n\n- one *em*\n- two\n\n\
                  | loss | status | acc (%) |\n|---|---|---:|\n| a\\|b | failed | **97.25 ± 0.31** |\n| c | done | 1.00 |\n\n\
                  ## Figures\n\n![The title](plots/f.png)\n\n## Figures\n";
        let html = to_html(md, dir).unwrap();
        let main = &html[html.find("<main>").unwrap()..html.find("</main>").unwrap()];
        assert_eq!(
            main,
            "<main>\n<h1 id=\"report-x\">Report: x</h1>\n\
             <nav class=\"contents\">Contents: <a href=\"#figures\">Figures</a> · <a href=\"#figures-2\">Figures</a></nav>\n\
             <p>Some <strong>bold</strong> and <code>a&lt;b</code> text, continued <a href=\"e.toml\">link</a>.</p>\n\
             <ul>\n<li>one <em>em</em></li>\n<li>two</li>\n</ul>\n\
             <div class=\"table-wrap\"><table class=\"sortable\">\n<thead><tr><th>loss</th><th>status</th><th class=\"num\">acc (%)</th></tr></thead>\n<tbody>\n\
             <tr><td>a|b</td><td><span class=\"badge status-failed\">failed</span></td><td class=\"num\"><strong>97.25 ± 0.31</strong></td></tr>\n\
             <tr><td>c</td><td><span class=\"badge status-done\">done</span></td><td class=\"num\">1.00</td></tr>\n</tbody>\n</table></div>\n\
             <h2 id=\"figures\">Figures</h2>\n\
             <figure><svg width=\"40\" height=\"20\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"The title\" viewBox=\"0 0 40 20\"><text>T</text></svg></figure>\n\
             <h2 id=\"figures-2\">Figures</h2>\n"
        );
        assert!(html.contains("<title>Report: x</title>"));
        let e = to_html("![missing](plots/none.png)\n", dir).unwrap_err();
        let e = e.downcast_ref::<InputError>().unwrap();
        assert!(e.location.ends_with("plots/none.svg"), "{e}");
    }
}

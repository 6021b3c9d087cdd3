//! Markdown building blocks for the report: tables (cells escaped, numeric columns
//! right-aligned) and the `mean ± std` cell format with the best-in-column mark.

/// A markdown table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Columns from this index on are right-aligned (numbers).
    pub numeric_from: usize,
}

fn escape(cell: &str) -> String {
    cell.replace('|', "\\|").replace('\n', " ")
}

impl Table {
    pub fn new(header: Vec<String>, numeric_from: usize) -> Table {
        Table { header, rows: Vec::new(), numeric_from }
    }

    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let line =
            |cells: &[String]| format!("| {} |\n", cells.iter().map(|c| escape(c)).collect::<Vec<_>>().join(" | "));
        out.push_str(&line(&self.header));
        let rule: Vec<String> =
            (0..self.header.len()).map(|i| if i >= self.numeric_from { "---:".into() } else { "---".into() }).collect();
        out.push_str(&format!("|{}|\n", rule.join("|")));
        for r in &self.rows {
            out.push_str(&line(r));
        }
        out
    }
}

/// `97.25 ± 0.31` (rates as percentages with two decimals); `97.25` without a std.
pub fn mean_std(mean: f64, std: Option<f64>, rate: bool) -> String {
    let k = if rate { 100.0 } else { 1.0 };
    match std {
        Some(s) => format!("{:.2} ± {:.2}", mean * k, s * k),
        None => format!("{:.2}", mean * k),
    }
}

/// Marks the best cell of a column: bold.
pub fn best(cell: &str) -> String {
    format!("**{cell}**")
}

/// Seconds as `42.0 s`, `12.3 min` or `2.05 h`.
pub fn duration(seconds: f64) -> String {
    if seconds < 120.0 {
        format!("{seconds:.1} s")
    } else if seconds < 7200.0 {
        format!("{:.1} min", seconds / 60.0)
    } else {
        format!("{:.2} h", seconds / 3600.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_tables() {
        let mut t = Table::new(vec!["loss".into(), "acc".into()], 1);
        t.rows.push(vec!["a|b".into(), mean_std(0.9725, Some(0.0031), true)]);
        assert_eq!(t.to_markdown(), "| loss | acc |\n|---|---:|\n| a\\|b | 97.25 ± 0.31 |\n");
        assert_eq!(mean_std(1.5, None, false), "1.50");
        assert_eq!(best("1"), "**1**");
        assert_eq!(duration(30.0), "30.0 s");
        assert_eq!(duration(600.0), "10.0 min");
    }
}

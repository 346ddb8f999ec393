//! The table `make bench` prints: one row per measured figure, ours next to
//! the anchor measured in the same run, the ratio the target is
//! about, and whether the target is met.

use std::fmt::Write;

/// Which way a ratio is good.
#[derive(Clone, Copy)]
pub enum Goal {
    /// ratio >= bound (e.g. our speed over theirs)
    AtLeast(f64),
    /// ratio <= bound (e.g. our time over theirs)
    AtMost(f64),
    /// no target: for information
    None,
}

pub struct Row {
    /// The row this figure belongs to.
    pub section: &'static str,
    pub what: String,
    pub ours: String,
    pub anchor: String,
    pub ratio: Option<f64>,
    /// How the ratio is formed, e.g. "ours/cp".
    pub ratio_is: &'static str,
    pub goal: Goal,
    /// Every run's value, for the reader who distrusts medians.
    pub runs: String,
}

impl Row {
    pub fn target(&self) -> String {
        match self.goal {
            Goal::AtLeast(b) => format!("{} >= {b}", self.ratio_is),
            Goal::AtMost(b) => format!("{} <= {b}", self.ratio_is),
            Goal::None => "-".into(),
        }
    }

    pub fn verdict(&self) -> &'static str {
        match (self.goal, self.ratio) {
            (Goal::None, _) => "",
            (_, None) => "n/a",
            (Goal::AtLeast(b), Some(r)) if r >= b => "met",
            (Goal::AtMost(b), Some(r)) if r <= b => "met",
            _ => "NOT MET",
        }
    }

    fn cells(&self) -> [String; 7] {
        [
            self.section.to_string(),
            self.what.clone(),
            self.ours.clone(),
            self.anchor.clone(),
            self.ratio
                .map(|r| format!("{r:.2}"))
                .unwrap_or_else(|| "-".into()),
            self.target(),
            self.verdict().to_string(),
        ]
    }
}

const HEADER: [&str; 7] = [
    "row", "figure", "ours", "anchor", "ratio", "target", "verdict",
];

/// The table as aligned plain text, for the terminal.
pub fn text(rows: &[Row]) -> String {
    let cells: Vec<[String; 7]> = rows.iter().map(Row::cells).collect();
    let mut width = HEADER.map(str::len);
    for c in &cells {
        for (w, s) in width.iter_mut().zip(c.iter()) {
            *w = (*w).max(s.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, c: &[String]| {
        let parts: Vec<String> = c
            .iter()
            .zip(width.iter())
            .map(|(s, w)| format!("{s:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", parts.join("  ").trim_end());
    };
    line(&mut out, &HEADER.map(String::from));
    line(&mut out, &width.map(|w| "-".repeat(w)));
    for c in &cells {
        line(&mut out, c);
    }
    out
}

/// The table as Markdown, with every run's value, for RESULTS.md.
pub fn markdown(rows: &[Row]) -> String {
    let mut out =
        String::from("| row | figure | ours | anchor | ratio | target | verdict | all runs |\n");
    out.push_str("|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        let c = r.cells();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            c[5],
            if c[6] == "NOT MET" {
                "**NOT MET**".into()
            } else {
                c[6].clone()
            },
            r.runs
        );
    }
    out
}

/// Tab-separated, one row per line, for scripts.
pub fn tsv(rows: &[Row]) -> String {
    let mut out = HEADER.join("\t");
    out.push_str("\truns\n");
    for r in rows {
        let _ = writeln!(out, "{}\t{}", r.cells().join("\t"), r.runs);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(goal: Goal, ratio: Option<f64>) -> Row {
        Row {
            section: "x",
            what: "w".into(),
            ours: "1".into(),
            anchor: "2".into(),
            ratio,
            ratio_is: "a/b",
            goal,
            runs: String::new(),
        }
    }

    #[test]
    fn verdicts() {
        assert_eq!(row(Goal::AtLeast(1.5), Some(1.6)).verdict(), "met");
        assert_eq!(row(Goal::AtLeast(1.5), Some(1.4)).verdict(), "NOT MET");
        assert_eq!(row(Goal::AtMost(1.1), Some(1.2)).verdict(), "NOT MET");
        assert_eq!(row(Goal::AtMost(1.1), None).verdict(), "n/a");
        assert_eq!(row(Goal::None, Some(9.0)).verdict(), "");
    }

    #[test]
    fn text_is_aligned() {
        let t = text(&[row(Goal::AtMost(1.1), Some(1.0))]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].find("ours"), lines[2].find('1'));
    }
}

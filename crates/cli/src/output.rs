//! Output shapes shared by every command: readable tables by default, JSON for scripts.

use std::io::IsTerminal;

use comfy_table::{Cell, Color, ContentArrangement, presets::UTF8_BORDERS_ONLY};
use serde::Serialize;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// `-o table|json` on every command that prints data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
}

/// Pretty JSON on stdout, one document.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A table with the house style: header row, no inner borders, fitted to the terminal.
pub fn table<I, S>(header: I) -> Table
where
    I: IntoIterator<Item = S>,
    S: std::fmt::Display,
{
    Table { header: header.into_iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
}

/// Rows of text printed as a table. Columns never wrap inside a word: when the table is wider
/// than the terminal, the widest column is cut (ending in `…`) until it fits. A column headed
/// `STATE` is coloured by job state when stdout is a terminal.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// The narrowest a column is cut to.
const MIN_COLUMN: usize = 6;

impl Table {
    pub fn add_row<I, S>(&mut self, row: I) -> &mut Table
    where
        I: IntoIterator<Item = S>,
        S: std::fmt::Display,
    {
        self.rows.push(row.into_iter().map(|c| c.to_string()).collect());
        self
    }

    /// The table as text for a terminal of `width` columns (`None`: as wide as it needs).
    pub fn render(&self, width: Option<usize>, colour: bool) -> String {
        let widths = fit_columns(&self.column_widths(), width);
        let mut t = comfy_table::Table::new();
        t.load_preset(UTF8_BORDERS_ONLY).set_content_arrangement(ContentArrangement::Disabled);
        if colour {
            t.enforce_styling();
        } else {
            t.force_no_tty();
        }
        t.set_header(self.header.iter().zip(&widths).map(|(h, w)| Cell::new(cut(h, *w))));
        let state_column = self.header.iter().position(|h| h == "STATE");
        for row in &self.rows {
            t.add_row(row.iter().enumerate().map(|(i, text)| {
                let cell = Cell::new(cut(text, widths.get(i).copied().unwrap_or(usize::MAX)));
                match state_column == Some(i) && colour {
                    true => state_colour(text).map(|c| cell.clone().fg(c)).unwrap_or(cell),
                    false => cell,
                }
            }));
        }
        t.to_string()
    }

    fn column_widths(&self) -> Vec<usize> {
        let columns = self.rows.iter().map(Vec::len).chain([self.header.len()]).max().unwrap_or(0);
        (0..columns)
            .map(|i| {
                std::iter::once(&self.header)
                    .chain(&self.rows)
                    .filter_map(|r| r.get(i))
                    .map(|c| c.lines().map(UnicodeWidthStr::width).max().unwrap_or(0))
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tty = std::io::stdout().is_terminal();
        let colour = tty && std::env::var_os("NO_COLOR").is_none();
        write!(f, "{}", self.render(terminal_width(tty), colour))
    }
}

/// `COLUMNS` when set, else the terminal's width when stdout is one, else none (pipes get whole
/// cells).
fn terminal_width(tty: bool) -> Option<usize> {
    if let Some(columns) = std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse::<usize>().ok()) {
        return Some(columns);
    }
    if !tty {
        return None;
    }
    comfy_table::Table::new().width().map(usize::from)
}

/// Column widths that fit `width` (two borders, a space each side of a cell and a blank line
/// between columns included): the widest column gives a character at a time, down to
/// [`MIN_COLUMN`].
pub fn fit_columns(natural: &[usize], width: Option<usize>) -> Vec<usize> {
    let mut widths = natural.to_vec();
    let Some(width) = width else { return widths };
    let frame = 3 * widths.len() + 1;
    while widths.iter().sum::<usize>() + frame > width {
        let Some((i, w)) = widths.iter().copied().enumerate().max_by_key(|&(i, w)| (w, std::cmp::Reverse(i))) else {
            break;
        };
        if w <= MIN_COLUMN {
            break;
        }
        widths[i] = w - 1;
    }
    widths
}

/// `text` in at most `width` columns, each line ending in `…` where it was cut.
fn cut(text: &str, width: usize) -> String {
    text.lines()
        .map(|line| {
            if line.width() <= width {
                return line.to_string();
            }
            let mut out = String::new();
            let mut used = 0;
            for ch in line.chars() {
                let w = ch.width().unwrap_or(0);
                if used + w + 1 > width {
                    break;
                }
                out.push(ch);
                used += w;
            }
            out.push('…');
            out
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The colour of a job or attempt state word.
fn state_colour(state: &str) -> Option<Color> {
    match state.trim() {
        "succeeded" => Some(Color::Green),
        "running" => Some(Color::Cyan),
        "launching" => Some(Color::Blue),
        "pending" => Some(Color::Yellow),
        "failed" | "lost" => Some(Color::Red),
        "cancelled" => Some(Color::DarkGrey),
        _ => None,
    }
}

/// Node names folded the way Slurm prints host lists: `gb200-0019..gb200-0036` becomes
/// `gb200-[0019-0036]`, so an 18-node gang fits in a table cell. Order is kept; only runs of
/// consecutive numbers with one prefix and one width fold.
pub fn fold_node_names(names: &[String]) -> String {
    /// A prefix and its runs of numbers: (first, last, digits).
    struct Group {
        prefix: String,
        runs: Vec<(u64, u64, usize)>,
    }
    impl Group {
        fn render(&self) -> String {
            let parts: Vec<String> = self
                .runs
                .iter()
                .map(|&(a, b, w)| if a == b { format!("{a:0w$}") } else { format!("{a:0w$}-{b:0w$}") })
                .collect();
            match self.runs.as_slice() {
                [(a, b, _)] if a == b => format!("{}{}", self.prefix, parts[0]),
                _ => format!("{}[{}]", self.prefix, parts.join(",")),
            }
        }
    }
    let mut out: Vec<String> = Vec::new();
    let mut current: Option<Group> = None;
    for name in names {
        let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
        let (prefix, number) = name.split_at(name.len() - digits);
        let Ok(n) = number.parse::<u64>() else {
            out.extend(current.take().map(|g| g.render()));
            out.push(name.clone());
            continue;
        };
        match current.as_mut() {
            Some(group) if group.prefix == prefix => match group.runs.last_mut() {
                Some((_, end, width)) if *end + 1 == n && *width == digits => *end = n,
                _ => group.runs.push((n, n, digits)),
            },
            _ => {
                out.extend(current.take().map(|g| g.render()));
                current = Some(Group { prefix: prefix.to_string(), runs: vec![(n, n, digits)] });
            }
        }
    }
    out.extend(current.map(|g| g.render()));
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::{fit_columns, fold_node_names, table};

    #[test]
    fn tables_cut_the_widest_column_instead_of_breaking_words() {
        let mut t = table(["ID", "NAME", "STATE", "REASON"]);
        t.add_row(["1", "pretrain-70b", "succeeded", "no pool with 18 free GB200 nodes in one NVLink domain"]);
        let wide = t.render(None, false);
        assert!(wide.contains("no pool with 18 free GB200 nodes in one NVLink domain"), "no width, no cut:\n{wide}");
        let narrow = t.render(Some(60), false);
        for line in narrow.lines() {
            assert!(unicode_width::UnicodeWidthStr::width(line) <= 60, "a line is wider than 60:\n{narrow}");
        }
        assert!(narrow.contains("succeeded"), "the state is whole, the reason gave way:\n{narrow}");
        assert!(narrow.contains("no pool with 18 free GB…"), "the reason ends in an ellipsis:\n{narrow}");
        assert_eq!(narrow.lines().count(), wide.lines().count(), "no cell wraps onto a second line");
    }

    #[test]
    fn column_fitting_takes_from_the_widest_first() {
        // frame: 2 borders, 2 spaces per column and 2 blank separators = 10 for three columns
        assert_eq!(fit_columns(&[10, 40, 20], Some(60)), [10, 20, 20], "the widest gives until it ties");
        assert_eq!(fit_columns(&[10, 40, 20], Some(50)), [10, 15, 15], "then both give, in turn");
        assert_eq!(fit_columns(&[10, 40, 20], None), [10, 40, 20], "no terminal width: whole cells");
        assert_eq!(fit_columns(&[8, 8], Some(4)), [6, 6], "never narrower than six");
    }

    fn check(names: &[&str], expect: &str) {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        assert_eq!(fold_node_names(&names), expect);
    }

    #[test]
    fn node_names_fold_like_slurm_host_lists() {
        check(&["gb-0019", "gb-0020", "gb-0021"], "gb-[0019-0021]");
        check(&["node001", "node003", "node004"], "node[001,003-004]");
        check(&["vm"], "vm");
        check(&["a1", "b2", "b3"], "a1,b[2-3]");
        check(&["x", "n01", "n02"], "x,n[01-02]");
        check(&[], "");
    }
}

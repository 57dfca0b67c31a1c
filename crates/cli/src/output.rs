//! Output shapes shared by every command: readable tables by default, JSON for scripts.

use comfy_table::{ContentArrangement, Table, presets::UTF8_BORDERS_ONLY};
use serde::Serialize;

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

/// A table with the house style: header row, no inner borders, wrapped to the terminal.
pub fn table<I, S>(header: I) -> Table
where
    I: IntoIterator<Item = S>,
    S: Into<comfy_table::Cell>,
{
    let mut table = Table::new();
    table.load_preset(UTF8_BORDERS_ONLY).set_content_arrangement(ContentArrangement::Dynamic).set_header(header);
    table
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
    use super::fold_node_names;

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

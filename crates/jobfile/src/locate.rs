//! Best-effort line numbers for field paths (`resources.any_of[1].accelerators`) in block-style YAML.
//!
//! `serde_yaml::Value` keeps no positions, so problems found after parsing are located by a light
//! scan of the text: indentation gives the nesting of keys and `- ` list items. Flow-style content
//! (`{H100: 8}`) is located at the line of the key that holds it. A path the scan cannot find is
//! reported at its nearest located ancestor, or without a line.

use std::collections::HashMap;

/// Where each field path first appears, as 1-based line numbers in the whole file.
#[derive(Debug, Default)]
pub(crate) struct LineMap {
    lines: HashMap<String, usize>,
    /// The text after `key:` on the key's line, for keys with a value on that line.
    values: HashMap<String, String>,
}

#[derive(Debug)]
struct Frame {
    indent: usize,
    path: String,
    is_item: bool,
    items_seen: usize,
}

impl LineMap {
    /// Scans `text`, whose first line is line `first_line` (1-based) of the file.
    pub(crate) fn scan(text: &str, first_line: usize) -> LineMap {
        let mut map = LineMap::default();
        let mut stack: Vec<Frame> = Vec::new();
        let mut root_items = 0usize;
        // Lines indented deeper than this belong to a block scalar (`run: |`).
        let mut block_scalar_indent: Option<usize> = None;

        for (offset, raw) in text.lines().enumerate() {
            let line_no = first_line + offset;
            let trimmed = raw.trim_start_matches(' ');
            let indent = raw.len() - trimmed.len();
            if let Some(block) = block_scalar_indent {
                if trimmed.trim().is_empty() || indent > block {
                    continue;
                }
                block_scalar_indent = None;
            }
            if trimmed.trim().is_empty() || trimmed.starts_with('#') {
                continue;
            }
            if indent == 0 && (trimmed.starts_with("---") || trimmed.starts_with("...")) {
                stack.clear();
                root_items = 0;
                continue;
            }

            let mut col = indent;
            let mut rest = trimmed;
            loop {
                if rest == "-" || rest.starts_with("- ") {
                    while let Some(top) = stack.last() {
                        let keeps = if top.is_item { top.indent < col } else { top.indent <= col };
                        if keeps {
                            break;
                        }
                        stack.pop();
                    }
                    let index = match stack.last_mut() {
                        Some(parent) => {
                            parent.items_seen += 1;
                            parent.items_seen - 1
                        }
                        None => {
                            root_items += 1;
                            root_items - 1
                        }
                    };
                    let parent_path = stack.last().map(|f| f.path.as_str()).unwrap_or("");
                    let path = format!("{parent_path}[{index}]");
                    map.lines.entry(path.clone()).or_insert(line_no);
                    stack.push(Frame { indent: col, path, is_item: true, items_seen: 0 });
                    let after = rest[1..].trim_start_matches(' ');
                    col += rest.len() - after.len();
                    rest = after;
                    if rest.is_empty() || rest.starts_with('#') {
                        break;
                    }
                    continue;
                }
                let Some((key, value)) = split_key(rest) else { break };
                while let Some(top) = stack.last() {
                    if top.indent < col {
                        break;
                    }
                    stack.pop();
                }
                let parent_path = stack.last().map(|f| f.path.as_str()).unwrap_or("");
                let path = if parent_path.is_empty() { key.to_string() } else { format!("{parent_path}.{key}") };
                map.lines.entry(path.clone()).or_insert(line_no);
                let value = value.trim();
                if !value.is_empty() {
                    map.values.entry(path.clone()).or_insert_with(|| value.to_string());
                }
                stack.push(Frame { indent: col, path, is_item: false, items_seen: 0 });
                if value.starts_with('|') || value.starts_with('>') {
                    block_scalar_indent = Some(col);
                }
                break;
            }
        }
        map
    }

    /// The text written after `path:` on its line (comments included), when the scan found it.
    pub(crate) fn written(&self, path: &str) -> Option<&str> {
        self.values.get(path).map(String::as_str)
    }

    /// The line of `path`, or of its nearest ancestor that the scan found.
    pub(crate) fn find(&self, path: &str) -> Option<usize> {
        let mut current = path;
        loop {
            if let Some(line) = self.lines.get(current) {
                return Some(*line);
            }
            let cut = current.rfind(['.', '['])?;
            current = &current[..cut];
            if current.is_empty() {
                return None;
            }
        }
    }
}

/// Splits `key: value` (the key possibly quoted); `None` when the line holds no mapping key.
fn split_key(text: &str) -> Option<(&str, &str)> {
    let (key, after) = if let Some(quote @ ('"' | '\'')) = text.chars().next() {
        let end = text[1..].find(quote)? + 1;
        (&text[1..end], &text[end + 1..])
    } else {
        if text.starts_with(['{', '[', '&', '*', '!', '|', '>', '%', '@', '`']) {
            return None;
        }
        let colon = text.find(": ").or_else(|| text.strip_suffix(':').map(|s| s.len()))?;
        (&text[..colon], &text[colon..])
    };
    let after = after.trim_start_matches(' ');
    let value = after.strip_prefix(':')?;
    if !value.is_empty() && !value.starts_with(' ') {
        return None;
    }
    Some((key.trim_end(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_items_and_ancestors() {
        let text = "\
name: x
resources:
  accelerators: {H100: 8}
  any_of:
    - infra: aws
      cpus: 4
    - infra: gcp
run: |
  name: not-a-key
  echo hi
envs:
- a
- \"quoted\": 1
";
        let map = LineMap::scan(text, 1);
        assert_eq!(map.find("name"), Some(1));
        assert_eq!(map.find("resources.accelerators"), Some(3));
        assert_eq!(map.find("resources.accelerators.H100"), Some(3));
        assert_eq!(map.find("resources.any_of[0].infra"), Some(5));
        assert_eq!(map.find("resources.any_of[0].cpus"), Some(6));
        assert_eq!(map.find("resources.any_of[1].infra"), Some(7));
        assert_eq!(map.find("run"), Some(8));
        assert_eq!(map.find("envs[1].quoted"), Some(13));
        assert_eq!(map.find("nope"), None);
    }

    #[test]
    fn compact_sequences_and_offsets() {
        let text = "resources:\n  ordered:\n  - infra: aws\n  - infra: gcp\n";
        let map = LineMap::scan(text, 10);
        assert_eq!(map.find("resources.ordered[1].infra"), Some(13));
    }
}

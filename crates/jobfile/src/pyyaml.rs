//! Environment values as SkyPilot renders them. SkyPilot reads YAML with PyYAML (YAML 1.1) and
//! turns each `envs` value into text with Python's `str()` (`sky/task.py`, `from_yaml_config`):
//! `true` and `yes` become `True`, `1.0e-5` becomes `1e-05`, while `1e-5` (no dot, so not a
//! YAML 1.1 float) stays `1e-5`. Cumulo's YAML reader follows YAML 1.2, so the plain text written
//! in the file is read again here by YAML 1.1's rules.

use serde_yaml::Value;

/// The text SkyPilot passes for an env value; `None` for a null (filled from `--env`).
/// `written` is the plain text after `KEY:` on its line, when the file shows it.
pub(crate) fn env_text(value: &Value, written: Option<&str>) -> Option<String> {
    if let Some(plain) = written.and_then(plain_scalar) {
        return resolve_plain(plain);
    }
    match value {
        Value::Null => None,
        Value::Bool(b) => Some(python_bool(*b).to_string()),
        Value::Number(n) => Some(match n.as_f64().filter(|_| n.is_f64()) {
            Some(f) => python_float(f),
            None => n.to_string(),
        }),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// The text of a plain (unquoted, one-line) scalar without a trailing comment; `None` for quoted,
/// flow or block values, which YAML 1.1 and 1.2 read alike.
fn plain_scalar(written: &str) -> Option<&str> {
    let t = written.trim();
    if t.is_empty() || t.starts_with(['"', '\'', '{', '[', '|', '>', '&', '*', '!', '#']) {
        return None;
    }
    let t = match t.find(" #") {
        Some(cut) => t[..cut].trim_end(),
        None => t,
    };
    (!t.is_empty()).then_some(t)
}

/// YAML 1.1's implicit types (PyYAML's resolver), then Python's `str()`.
fn resolve_plain(text: &str) -> Option<String> {
    match text {
        "~" | "null" | "Null" | "NULL" => return None,
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => return Some("True".into()),
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => return Some("False".into()),
        _ => {}
    }
    if let Some(int) = yaml11_int(text) {
        return Some(int.to_string());
    }
    if is_yaml11_float(text)
        && let Ok(f) = text.replace('_', "").parse::<f64>()
    {
        return Some(python_float(f));
    }
    Some(text.to_string())
}

fn python_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// `[-+]?(0|[1-9][0-9_]*)`, `0x…`, `0b…` and `0…` octal, as YAML 1.1 reads integers.
fn yaml11_int(text: &str) -> Option<i128> {
    let (sign, body) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
    };
    let body_clean = body.replace('_', "");
    let value = if let Some(hex) = body.strip_prefix("0x") {
        i128::from_str_radix(&hex.replace('_', ""), 16).ok()?
    } else if let Some(bin) = body.strip_prefix("0b") {
        i128::from_str_radix(&bin.replace('_', ""), 2).ok()?
    } else if body.len() > 1 && body.starts_with('0') {
        i128::from_str_radix(&body_clean, 8).ok()?
    } else if !body.is_empty()
        && body.starts_with(|c: char| c.is_ascii_digit())
        && body.chars().all(|c| c.is_ascii_digit() || c == '_')
    {
        body_clean.parse::<i128>().ok()?
    } else {
        return None;
    };
    Some(sign * value)
}

/// YAML 1.1's float: digits, a dot, optional digits, and an optional exponent with a sign
/// (`1.0e-5`, `.5`, `3.`); `1e-5` is not one.
fn is_yaml11_float(text: &str) -> bool {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(at) => (&body[..at], Some(&body[at + 1..])),
        None => (body, None),
    };
    let Some((whole, frac)) = mantissa.split_once('.') else { return false };
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit() || c == '_');
    let mantissa_ok = if whole.is_empty() {
        !frac.is_empty() && frac.starts_with(|c: char| c.is_ascii_digit()) && digits(frac)
    } else {
        whole.starts_with(|c: char| c.is_ascii_digit()) && digits(whole) && digits(frac)
    };
    let exponent_ok = match exponent {
        None => true,
        Some(e) => e.len() > 1 && e.starts_with(['-', '+']) && e[1..].chars().all(|c| c.is_ascii_digit()),
    };
    mantissa_ok && exponent_ok
}

/// Python's `repr(float)`: the shortest digits that read back; positional from 1e-4 to below
/// 1e16 (`0.0001`, `5.0`), else with an exponent of at least two digits (`1e-05`, `1e+16`).
pub(crate) fn python_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0".into() } else { "0.0".into() };
    }
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let sign = if f < 0.0 { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let point = exp + 1;
        let text = if point <= 0 {
            format!("0.{}{}", "0".repeat((-point) as usize), digits)
        } else if point as usize >= digits.len() {
            format!("{}{}.0", digits, "0".repeat(point as usize - digits.len()))
        } else {
            format!("{}.{}", &digits[..point as usize], &digits[point as usize..])
        };
        format!("{sign}{text}")
    } else {
        let mantissa = if digits.len() > 1 { format!("{}.{}", &digits[..1], &digits[1..]) } else { digits };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{mantissa}e{exp_sign}{:02}", exp.abs())
    }
}

/// `text` with the lines that continue a flow collection (`{...}`, `[...]` over several lines)
/// indented past the block line that opened it. PyYAML reads flow content at any indentation
/// (`content: {` then `}` under `content`, as in SkyPilot's `llm/pixtral/pixtral.yaml`); libyaml
/// refuses it ("invalid indentation"). Flow content ignores leading spaces, so this changes no
/// value; lines keep their numbers. Block scalars (`run: |`) are left alone.
pub(crate) fn indent_flow_continuations(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut scan = FlowScan::default();
    for line in text.split_inclusive('\n') {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let body = line.trim();
        if let Some(parent) = scan.block_scalar {
            if body.is_empty() || indent > parent {
                out.push_str(line);
                continue;
            }
            scan.block_scalar = None;
        }
        if scan.depth > 0 && !body.is_empty() && indent <= scan.flow_indent {
            out.push_str(&" ".repeat(scan.flow_indent + 1 - indent));
        }
        out.push_str(line);
        scan.line(line, indent);
    }
    out
}

/// Where [`indent_flow_continuations`] is: flow nesting, quotes, and block scalars.
#[derive(Default)]
struct FlowScan {
    depth: usize,
    /// Indentation of the line that opened the outermost open flow collection.
    flow_indent: usize,
    quote: Option<char>,
    /// Indentation of the line that began a block scalar whose content follows.
    block_scalar: Option<usize>,
}

impl FlowScan {
    fn line(&mut self, line: &str, indent: usize) {
        let mut prev = ' ';
        let mut escaped = false;
        let mut content = String::new();
        for c in line.trim_end_matches(['\n', '\r']).chars() {
            if let Some(q) = self.quote {
                if q == '"' && c == '\\' && !escaped {
                    escaped = true;
                    continue;
                }
                if c == q && !escaped {
                    self.quote = None;
                }
                escaped = false;
                prev = c;
                continue;
            }
            let value_start = matches!(prev, ' ' | ':' | '-' | '[' | '{' | ',' | '?')
                && content.trim_end().chars().last().is_none_or(|p| matches!(p, ':' | '-' | '[' | '{' | ',' | '?'));
            match c {
                '#' if prev == ' ' || content.is_empty() => break,
                '"' | '\'' if value_start => self.quote = Some(c),
                '{' | '[' if self.depth > 0 || value_start => {
                    if self.depth == 0 {
                        self.flow_indent = indent;
                    }
                    self.depth += 1;
                }
                '}' | ']' if self.depth > 0 => self.depth -= 1,
                _ => {}
            }
            content.push(c);
            prev = c;
        }
        let tail = content.trim_end();
        let indicator = tail.trim_end_matches(|c: char| c == '+' || c == '-' || c.is_ascii_digit());
        if self.depth == 0
            && self.quote.is_none()
            && (indicator.ends_with(" |") || indicator.ends_with(" >") || indicator == "|" || indicator == ">")
        {
            self.block_scalar = Some(indent);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_renders_floats_like_repr() {
        for (f, want) in [
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (5.0, "5.0"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (123.25, "123.25"),
            (2e-4, "0.0002"),
            (-1.5, "-1.5"),
        ] {
            assert_eq!(python_float(f), want, "repr({f}) in Python");
        }
    }

    #[test]
    fn plain_scalars_resolve_by_yaml_1_1() {
        let cases = [
            ("true", Some("True")),
            ("yes", Some("True")),
            ("Off", Some("False")),
            ("1e-5", Some("1e-5")),
            ("1.0e-5", Some("1e-05")),
            ("3e-4", Some("3e-4")),
            ("0.00002", Some("2e-05")),
            ("8080", Some("8080")),
            ("1_000", Some("1000")),
            ("010", Some("8")),
            ("0x1F", Some("31")),
            ("~", None),
            ("meta-llama/Llama-3-8B", Some("meta-llama/Llama-3-8B")),
            ("1.0 # a comment", Some("1.0")),
        ];
        for (text, want) in cases {
            let got = env_text(&Value::Null, Some(text));
            assert_eq!(got.as_deref(), want, "SkyPilot's text for the plain scalar `{text}`");
        }
    }

    #[test]
    fn quoted_values_keep_their_text() {
        let got = env_text(&Value::String("yes".into()), Some("\"yes\""));
        assert_eq!(got.as_deref(), Some("yes"), "a quoted yes is a string in YAML 1.1 too");
    }

    #[test]
    fn flow_continuations_are_indented_past_their_block_line() {
        // From skypilot-org/skypilot llm/pixtral/pixtral.yaml: `}` at the key's own indentation.
        let text =
            "a:\n  b:\n    content: {\n      \"t\": \"What's {this}\",\n    }\n    n: 1\nrun: |\n  echo ${X} {\n}\n";
        let fixed = indent_flow_continuations(text);
        assert_eq!(
            fixed,
            "a:\n  b:\n    content: {\n      \"t\": \"What's {this}\",\n     }\n    n: 1\nrun: |\n  echo ${X} {\n}\n",
            "only the closing line moves; quotes, `${{X}}` and the block scalar are left alone"
        );
        assert_eq!(fixed.lines().count(), text.lines().count());
        let plain = "name: x\nenvs: {A: 1, B: [1, 2]}\nrun: echo {a,b}\n";
        assert_eq!(indent_flow_continuations(plain), plain, "one-line flow collections need nothing");
    }
}

//! Limits on what one job file may cost and hold, checked before and after building values.
//!
//! Before any YAML value is built, [`check_yaml`] walks the document's event stream (with
//! `saphyr-parser`, a YAML 1.2 parser that exposes events and stops where we stop reading) and
//! refuses a document that is too large, nests too deep, or expands through aliases to too many
//! nodes. `serde_yaml` builds values only after this: an alias bomb of a few kilobytes once took
//! gigabytes there, and deep flow nesting took its parser quadratic time.
//!
//! After the job is built, [`check_job`] bounds the sizes that reach an engine (name, scripts,
//! environment) and refuses NUL bytes, which no process argument or environment can carry. A text
//! is bounded in characters (Unicode scalar values), as JSON Schema's `maxLength` counts, so that
//! the API's OpenAPI document states each bound exactly; a character is at most 4 bytes.

use saphyr_parser::{Event, Parser, ScalarStyle};

use crate::parse::Ctx;
use crate::{Problem, ProblemKind};

/// The largest job file (one job) accepted, in bytes.
pub const MAX_JOB_FILE_BYTES: usize = 1 << 20;
/// The deepest nesting of mappings and sequences in a document.
pub const MAX_DEPTH: usize = 64;
/// The most nodes a document may hold once every alias is expanded.
pub const MAX_EXPANDED_NODES: u64 = 100_000;
/// The longest job name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// The longest `run` or `setup` script (and `workdir`, `checkpoint.dir`), in characters.
pub const MAX_SCRIPT_CHARS: usize = 64 << 10;
/// The most environment variables of a job.
pub const MAX_ENV_VARS: usize = 1_000;
/// The longest value of one environment variable, in characters.
pub const MAX_ENV_VALUE_CHARS: usize = 64 << 10;
/// The most vCPUs a job may ask for (`resources.cpus`): `u32::MAX` thousandths.
pub const MAX_CPUS: f64 = 4_294_967.295;
/// The most memory a job may ask for (`resources.memory`), in MiB; as a bare number of GB that is
/// 976,562,500,000.
pub const MAX_MEMORY_MIB: f64 = 1e15;
/// The most bytes of all environment variables together (names and values).
pub const MAX_ENV_TOTAL_BYTES: usize = 256 << 10;

fn document_problem(message: String, line: Option<usize>) -> Problem {
    Problem { kind: ProblemKind::Field, path: String::new(), message, line }
}

/// One open mapping or sequence: its anchor and the nodes under it so far (itself included).
struct Open {
    anchor: usize,
    nodes: u64,
}

/// Walks `text`'s YAML events and refuses, before any value is built, a document that nests
/// deeper than [`MAX_DEPTH`] or expands to more than [`MAX_EXPANDED_NODES`] nodes. Counting stops
/// at the first limit, so the cost is bounded by the limits, not by the text.
/// Where plain integer scalars too wide for 64 bits end (as character offsets): YAML has no
/// bound on an integer, PyYAML (SkyPilot's reader) reads any, but the value tree holds 64 bits.
#[derive(Debug, Default)]
pub(crate) struct WideIntegers {
    ends: Vec<usize>,
}

impl WideIntegers {
    /// `text` with each wide integer written as a float (`.0` after its digits), which the value
    /// tree holds; lines and columns do not move before it on its line.
    pub(crate) fn as_floats<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        if self.ends.is_empty() {
            return std::borrow::Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len() + 2 * self.ends.len());
        let mut ends = self.ends.iter().peekable();
        for (index, c) in text.chars().enumerate() {
            while ends.next_if(|end| **end == index).is_some() {
                out.push_str(".0");
            }
            out.push(c);
        }
        if ends.next().is_some() {
            out.push_str(".0");
        }
        std::borrow::Cow::Owned(out)
    }
}

/// A plain scalar that YAML reads as a decimal integer no 64-bit type holds.
fn is_wide_integer(style: ScalarStyle, value: &str) -> bool {
    let digits = value.strip_prefix(['-', '+']).unwrap_or(value);
    style == ScalarStyle::Plain
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && value.parse::<i64>().is_err()
        && value.parse::<u64>().is_err()
}

pub(crate) fn check_yaml(text: &str) -> Result<WideIntegers, Problem> {
    let mut wide = WideIntegers::default();
    let mut anchors: Vec<u64> = Vec::new();
    let mut open: Vec<Open> = Vec::new();
    let mut document_nodes: u64 = 0;
    for event in Parser::new_from_str(text) {
        let (event, span) =
            event.map_err(|e| document_problem(format!("invalid YAML: {}", e.info()), Some(e.marker().line())))?;
        let line = Some(span.start.line());
        // (nodes this event adds to its parent, anchor to record them under)
        let finished: Option<(u64, usize)> = match event {
            Event::DocumentStart(_) => {
                anchors.clear();
                document_nodes = 0;
                None
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if open.len() >= MAX_DEPTH {
                    return Err(document_problem(
                        format!("YAML nested deeper than {MAX_DEPTH} levels: a job file nests a few levels"),
                        line,
                    ));
                }
                open.push(Open { anchor, nodes: 1 });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => open.pop().map(|o| (o.nodes, o.anchor)),
            Event::Scalar(value, style, anchor, _) => {
                if is_wide_integer(style, &value) {
                    wide.ends.push(span.end.index());
                }
                Some((1, anchor))
            }
            Event::Alias(id) => Some((anchors.get(id).copied().unwrap_or(1), 0)),
            _ => None,
        };
        let Some((nodes, anchor)) = finished else { continue };
        if anchor > 0 {
            if anchors.len() <= anchor {
                anchors.resize(anchor + 1, 1);
            }
            anchors[anchor] = nodes;
        }
        match open.last_mut() {
            Some(parent) => parent.nodes = parent.nodes.saturating_add(nodes),
            None => document_nodes = document_nodes.saturating_add(nodes),
        }
        let total = document_nodes.saturating_add(open.iter().map(|o| o.nodes).fold(0, u64::saturating_add));
        if total > MAX_EXPANDED_NODES {
            return Err(document_problem(
                format!(
                    "YAML expands to more than {MAX_EXPANDED_NODES} nodes (aliases counted each time they are used): \
                     a job file holds a few hundred"
                ),
                line,
            ));
        }
    }
    Ok(wide)
}

/// Refuses a job file larger than [`MAX_JOB_FILE_BYTES`].
pub(crate) fn check_size(text: &str) -> Result<(), Problem> {
    if text.len() > MAX_JOB_FILE_BYTES {
        return Err(document_problem(
            format!("job file of {} bytes is over the limit of {MAX_JOB_FILE_BYTES} bytes", text.len()),
            None,
        ));
    }
    Ok(())
}

fn check_text(ctx: &mut Ctx<'_>, path: &str, text: &str, limit: usize) {
    let chars = text.chars().count();
    if chars > limit {
        ctx.report(path, format!("{chars} characters is over the limit of {limit} characters"));
    }
    if let Some(at) = text.find('\0') {
        ctx.report(path, format!("contains a NUL byte (at byte {at}), which no process can be given"));
    }
}

/// Bounds the sizes a job carries to its engine and refuses NUL bytes in them.
pub(crate) fn check_job(ctx: &mut Ctx<'_>, job: &cumulo_types::JobSpec) {
    check_text(ctx, "name", &job.name, MAX_NAME_CHARS);
    for (path, script) in [("setup", &job.setup), ("run", &job.run)] {
        if let Some(script) = script {
            check_text(ctx, path, script, MAX_SCRIPT_CHARS);
        }
    }
    if let Some(workdir) = &job.workdir {
        check_text(ctx, "workdir", workdir, MAX_SCRIPT_CHARS);
    }
    if let Some(checkpoint) = &job.checkpoint {
        check_text(ctx, "checkpoint.dir", &checkpoint.dir, MAX_SCRIPT_CHARS);
    }
    if job.envs.len() > MAX_ENV_VARS {
        ctx.report("envs", format!("{} variables is over the limit of {MAX_ENV_VARS}", job.envs.len()));
        return;
    }
    let mut total = 0;
    for (name, value) in &job.envs {
        check_text(ctx, &format!("envs.{name}"), value, MAX_ENV_VALUE_CHARS);
        total += name.len() + value.len();
    }
    if total > MAX_ENV_TOTAL_BYTES {
        ctx.report("envs", format!("{total} bytes in all is over the limit of {MAX_ENV_TOTAL_BYTES} bytes"));
    }
}

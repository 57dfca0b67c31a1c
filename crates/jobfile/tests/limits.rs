//! Limits of a job file (`cumulo_jobfile::limits`): hostile YAML is refused before values are
//! built, and sizes that reach an engine are bounded, each with an error naming the field.

use cumulo_jobfile::limits::{MAX_DEPTH, MAX_ENV_VALUE_CHARS, MAX_ENV_VARS, MAX_NAME_CHARS};
use cumulo_jobfile::{Problem, parse_str};

fn problems(text: &str) -> Vec<Problem> {
    parse_str(text, "job.yaml").expect_err("the job file must be refused").problems().to_vec()
}

/// The "billion laughs" shape that passes serde_yaml's own repetition limit: leaf lists of many
/// scalars, each used by many aliases (about 1.8 KB; ~17 million nodes once expanded).
pub fn alias_bomb() -> String {
    let leaf = vec!["x"; 300].join(",");
    let uses = vec!["*a"; 250].join(",");
    format!("name: bomb\nrun: 'true'\nx-a: &a [{leaf}]\nx-b: &b [{uses}]\nx-c: [*b, *b, *b, *b]\n")
}

#[test]
fn an_alias_bomb_is_refused_before_it_is_expanded() {
    let text = alias_bomb();
    assert!(text.len() < 2_000, "the bomb is small: {} bytes", text.len());
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].message.contains("expands to more than 100000 nodes"), "{}", found[0].message);
    assert_eq!(found[0].line, Some(5), "the line where the expansion passed the limit");
}

#[test]
fn deep_nesting_is_refused_at_the_depth_limit() {
    // 100,000 levels of flow sequences took serde_yaml's parser a minute (quadratic in depth).
    let text = format!("name: deep\nx-n: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let found = problems(&text);
    // The event parser's own recursion guard may answer first; either way no value is built.
    let message = &found[0].message;
    assert!(
        message.contains(&format!("nested deeper than {MAX_DEPTH} levels")) || message.contains("recursion limit"),
        "{message}"
    );
    // Block nesting too.
    let mut block = String::from("name: deep\nx-n:\n");
    for depth in 1..=MAX_DEPTH + 2 {
        block.push_str(&format!("{}- \n", " ".repeat(depth)));
    }
    assert!(problems(&block)[0].message.contains("nested deeper"), "{:?}", problems(&block));
    // Ordinary anchors and merges stay fine.
    let ok = "x-base: &base {cpus: 2}\nname: ok\nresources: {<<: *base, memory: 4}\nrun: 'true'\n";
    parse_str(ok, "ok.yaml").expect("a normal anchor and merge parse");
}

#[test]
fn a_job_file_over_one_mebibyte_is_refused() {
    let text = format!("name: big\nrun: 'true'\nx-pad: '{}'\n", "p".repeat(1 << 20));
    let found = problems(&text);
    assert!(found[0].message.contains("is over the limit of 1048576 bytes"), "{}", found[0].message);
}

#[test]
fn sizes_that_reach_an_engine_are_bounded_and_name_their_field() {
    let long_name = format!("name: {}\nrun: 'true'\n", "n".repeat(MAX_NAME_CHARS + 1));
    let found = problems(&long_name);
    assert_eq!(found[0].path, "name");
    assert!(found[0].message.contains("201 characters is over the limit of 200 characters"), "{}", found[0].message);

    let big_value = format!("name: e\nenvs:\n  BIG: '{}'\n", "v".repeat(MAX_ENV_VALUE_CHARS + 1));
    let found = problems(&big_value);
    assert_eq!(found[0].path, "envs.BIG");
    assert!(found[0].message.contains("over the limit of 65536 characters"), "{}", found[0].message);

    let mut many = String::from("name: e\nenvs:\n");
    for i in 0..=MAX_ENV_VARS {
        many.push_str(&format!("  V{i}: x\n"));
    }
    let found = problems(&many);
    assert_eq!(found[0].path, "envs");
    assert!(found[0].message.contains("1001 variables is over the limit of 1000"), "{}", found[0].message);

    let script = format!("name: s\nrun: '{}'\n", "r".repeat(64 * 1024 + 1));
    assert_eq!(problems(&script)[0].path, "run");
}

#[test]
fn text_bounds_count_characters_as_json_schema_max_length_does() {
    // 200 four-byte characters (800 bytes) is a name at the limit; one more is over it.
    let at_limit = format!("name: {}\nrun: 'true'\n", "\u{1f600}".repeat(MAX_NAME_CHARS));
    parse_str(&at_limit, "job.yaml").expect("200 characters is within the limit, whatever their bytes");
    let over = format!("name: {}\nrun: 'true'\n", "\u{e9}".repeat(MAX_NAME_CHARS + 1));
    let found = problems(&over);
    assert_eq!(found[0].path, "name");
    assert!(found[0].message.contains("201 characters is over the limit of 200 characters"), "{}", found[0].message);
}

#[test]
fn nul_bytes_are_refused_where_a_process_would_get_them() {
    let found = problems("name: \"a\\0b\"\nrun: 'true'\n");
    assert_eq!(found[0].path, "name");
    assert!(found[0].message.contains("contains a NUL byte (at byte 1)"), "{}", found[0].message);
    let found = problems("name: n\nrun: \"echo\\0\"\nenvs: {K: \"v\\0\"}\n");
    let paths: Vec<&str> = found.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(paths, vec!["run", "envs.K"], "{found:?}");
}

/// Numbers as JSON Schema (and so SkyPilot's schema and the API's OpenAPI document) reads them: a
/// float without a fraction is a whole number, and vCPUs and GB are read from the number itself,
/// not from the text it prints as (`1e-3`).
#[test]
fn numbers_are_read_as_json_schema_reads_them() {
    let job = parse_str("num_nodes: 2.0\npriority: -4.0\nresources: {cpus: 1e-3, memory: 1e-9}\n", "j.yaml")
        .expect("whole numbers with a fraction and numbers in exponent form parse");
    assert_eq!((job.num_nodes, job.priority.0), (2, -4));
    assert_eq!((job.resources[0].cpus_milli, job.resources[0].memory_mib), (1, 1), "1 thousandth, 1 MiB");
    let at_most = parse_str("resources: {cpus: 4294967.295, memory: 976562500000}\n", "j.yaml").expect("the bounds");
    assert_eq!((at_most.resources[0].cpus_milli, at_most.resources[0].memory_mib), (u32::MAX, 1_000_000_000_000_000));
    for (text, path) in [
        ("num_nodes: 2.5\n", "num_nodes"),
        ("priority: 1.5\n", "priority"),
        ("resources: {cpus: 0.0009}\n", "resources.cpus"),
        ("resources: {cpus: 4294967.3}\n", "resources.cpus"),
        ("resources: {memory: 0}\n", "resources.memory"),
        ("resources: {memory: 976562500001}\n", "resources.memory"),
    ] {
        assert_eq!(problems(text)[0].path, path, "{text}");
    }
}

#[test]
fn integers_wider_than_64_bits_are_read_and_refused_only_where_a_field_bounds_them() {
    let text = "name: wide\nrun: 'true'\nx-seed: -30847484905457278976\nenvs:\n  BIG: 123456789012345678901234\n";
    let job = parse_str(text, "job.yaml").expect("YAML bounds no integer, and neither does an anchor or an env value");
    assert!(job.envs.contains_key("BIG"), "{:?}", job.envs);

    let found = problems("name: wide\nrun: 'true'\nnum_nodes: 99999999999999999999\n");
    assert_eq!(found[0].path, "num_nodes", "the field that bounds it is named: {found:?}");
    assert_eq!(found[0].line, Some(3), "{found:?}");
}

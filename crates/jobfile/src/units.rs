//! Plain-text quantities found in job files: vCPU and memory sizes (`4+`, `64GB`), durations
//! (`30m`, `1h30m`), GPU counts (`8`, `0.25`) and closest-name suggestions for typos.

use cumulo_types::MilliGpu;

/// Why a GPU count was refused; each maps to its own message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum GpuCountError {
    /// Not a number, zero or negative.
    NotPositive,
    /// Above one GPU but not whole (`1.5`): a fraction must fit on one physical GPU.
    FractionAboveOne,
    /// More than three decimals: counts are kept in thousandths of a GPU.
    TooPrecise,
    /// Too large to count.
    TooLarge,
}

impl GpuCountError {
    pub(crate) fn expected(&self) -> &'static str {
        match self {
            GpuCountError::NotPositive => "a positive number of GPUs such as 8, or a fraction of one GPU such as 0.25",
            GpuCountError::FractionAboveOne => {
                "a whole number of GPUs, or a fraction below 1 that shares one GPU (such as 0.25 or 0.5)"
            }
            GpuCountError::TooPrecise => "at most three decimals (GPUs are shared in thousandths)",
            GpuCountError::TooLarge => "at most 4,000,000 GPUs per node",
        }
    }
}

pub(crate) fn gpu_count(text: &str) -> Result<MilliGpu, GpuCountError> {
    if let Ok(count) = MilliGpu::parse(text) {
        return Ok(count);
    }
    let t = text.trim();
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) {
        return Err(GpuCountError::NotPositive);
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > 3 {
        return Err(GpuCountError::TooPrecise);
    }
    let whole_is_zero = whole.chars().all(|c| c == '0');
    if whole_is_zero && frac.is_empty() {
        return Err(GpuCountError::NotPositive);
    }
    if whole.trim_start_matches('0').len() > 7 || whole.parse::<u64>().is_ok_and(|w| w > 4_000_000) {
        return Err(GpuCountError::TooLarge);
    }
    Err(GpuCountError::FractionAboveOne)
}

/// `4`, `4+`, `0.5`: vCPUs in thousandths, at least one thousandth. `+` ("at least") is accepted
/// and implied: a request is always a minimum.
pub(crate) fn cpus_milli(text: &str) -> Option<u32> {
    let t = text.trim();
    let t = t.strip_suffix('+').unwrap_or(t).trim_end();
    cpus_milli_of(decimal(t)?)
}

/// A number of vCPUs in thousandths, rounded; `None` below one thousandth or past [`crate::limits::MAX_CPUS`]
/// (the bounds are on the number given, as the API's OpenAPI document states them).
pub(crate) fn cpus_milli_of(vcpus: f64) -> Option<u32> {
    (0.001..=crate::limits::MAX_CPUS).contains(&vcpus).then(|| (vcpus * 1000.0).round().min(u32::MAX as f64) as u32)
}

/// `32`, `32+`, `64GB`, `1024MB`, `1.5TB`: memory in MiB. A bare number is in GB, and as in
/// SkyPilot a GB is 2^30 bytes. Rounded up to whole MiB.
pub(crate) fn memory_mib(text: &str) -> Option<u64> {
    let t = text.trim();
    let t = t.strip_suffix('+').unwrap_or(t).trim_end();
    let upper = t.to_ascii_uppercase();
    let (number, mib_per_unit) =
        // SkyPilot's units (`sky/resources.py`, MEMORY_SIZE_UNITS): two letters, one letter, bytes.
        [
            ("KB", 1.0 / 1024.0),
            ("MB", 1.0),
            ("GB", 1024.0),
            ("TB", 1024.0 * 1024.0),
            ("PB", 1024.0 * 1024.0 * 1024.0),
            ("K", 1.0 / 1024.0),
            ("M", 1.0),
            ("G", 1024.0),
            ("T", 1024.0 * 1024.0),
            ("P", 1024.0 * 1024.0 * 1024.0),
            ("B", 1.0 / (1024.0 * 1024.0)),
        ]
        .iter()
            .find_map(|(unit, scale)| upper.strip_suffix(unit).map(|n| (n.trim_end(), *scale)))
            .unwrap_or((upper.as_str(), 1024.0));
    mib_of(decimal(number)?, mib_per_unit)
}

/// Memory given as a bare number of GB, in MiB: see [`memory_mib`].
pub(crate) fn memory_mib_of_gb(gb: f64) -> Option<u64> {
    mib_of(gb, 1024.0)
}

/// `value` units of `mib_per_unit` MiB each, rounded up; `None` unless above 0 and at most
/// [`crate::limits::MAX_MEMORY_MIB`].
fn mib_of(value: f64, mib_per_unit: f64) -> Option<u64> {
    let mib = (value * mib_per_unit).ceil();
    (value > 0.0 && mib <= crate::limits::MAX_MEMORY_MIB).then_some(mib as u64)
}

/// A plain non-negative decimal (`12`, `0.5`, `.5`); no signs, exponents, `inf` or `NaN`.
fn decimal(text: &str) -> Option<f64> {
    let ok = !text.is_empty()
        && text.chars().all(|c| c.is_ascii_digit() || c == '.')
        && text.chars().filter(|c| *c == '.').count() <= 1
        && text != ".";
    if !ok {
        return None;
    }
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// `90s`, `30m`, `2h`, `1d`, `1h30m`, or a bare number of seconds; at least one second.
pub(crate) fn duration_s(text: &str) -> Option<u64> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    if t.chars().all(|c| c.is_ascii_digit()) {
        return t.parse::<u64>().ok().filter(|s| *s > 0);
    }
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let scale = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        if number.is_empty() {
            return None;
        }
        let n: u64 = number.parse().ok()?;
        total = total.checked_add(n.checked_mul(scale)?)?;
        number.clear();
    }
    if !number.is_empty() {
        return None;
    }
    (total > 0).then_some(total)
}

/// Edit distance (with adjacent transpositions) between two short names, ignoring case.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_ascii_lowercase().chars().collect();
    let b: Vec<char> = b.to_ascii_lowercase().chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The candidate closest to `wanted`, when it is close enough to be a likely typo: one edit for
/// names of three to five letters, two for longer ones, none for shorter. Ties go to the earlier
/// candidate.
pub(crate) fn closest<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = match wanted.chars().count() {
        0..=2 => return None,
        3..=5 => 1,
        _ => 2,
    };
    candidates
        .into_iter()
        .map(|c| (distance(wanted, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_counts_and_their_errors() {
        assert_eq!(gpu_count("8"), Ok(MilliGpu(8000)));
        assert_eq!(gpu_count("0.25"), Ok(MilliGpu(250)));
        assert_eq!(gpu_count("-1"), Err(GpuCountError::NotPositive));
        assert_eq!(gpu_count("0"), Err(GpuCountError::NotPositive));
        assert_eq!(gpu_count("x"), Err(GpuCountError::NotPositive));
        assert_eq!(gpu_count("1.5"), Err(GpuCountError::FractionAboveOne));
        assert_eq!(gpu_count("0.0001"), Err(GpuCountError::TooPrecise));
        assert_eq!(gpu_count("99999999999"), Err(GpuCountError::TooLarge));
    }

    #[test]
    fn cpus_and_memory() {
        assert_eq!(cpus_milli("4+"), Some(4000));
        assert_eq!(cpus_milli("0.5"), Some(500));
        assert_eq!(cpus_milli("0"), None);
        assert_eq!(cpus_milli("-2"), None);
        assert_eq!(cpus_milli("four"), None);
        assert_eq!(memory_mib("32+"), Some(32 * 1024));
        assert_eq!(memory_mib("64GB"), Some(64 * 1024));
        assert_eq!(memory_mib("1024mb"), Some(1024));
        assert_eq!(memory_mib("1TB"), Some(1024 * 1024));
        assert_eq!(memory_mib("0.5"), Some(512));
        assert_eq!(memory_mib("lots"), None);
        assert_eq!(memory_mib("NaN"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(duration_s("30m"), Some(1800));
        assert_eq!(duration_s("1h30m"), Some(5400));
        assert_eq!(duration_s("2H"), Some(7200));
        assert_eq!(duration_s("90"), Some(90));
        assert_eq!(duration_s("1d"), Some(86_400));
        for bad in ["", "0", "0s", "h", "30x", "1.5h", "-1h", "30m5"] {
            assert_eq!(duration_s(bad), None, "{bad}");
        }
    }

    #[test]
    fn closest_names() {
        assert_eq!(closest("nmae", ["name", "run"]), Some("name"));
        assert_eq!(closest("H900", ["H100", "H200"]), Some("H100"));
        assert_eq!(closest("zzzzzz", ["name", "run"]), None);
        assert_eq!(closest("x", ["y"]), None);
    }
}

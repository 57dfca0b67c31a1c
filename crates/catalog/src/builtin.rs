//! The built-in catalog: a few dozen instance types and list prices compiled into the binary, each
//! row citing where its figure comes from (`data/builtin.csv`).

use cumulo_types::{GpuModel, Money};

use crate::{Catalog, Error, Offer};

/// The text of the built-in catalog, as compiled in.
pub const BUILTIN_SOURCE: &str = include_str!("../data/builtin.csv");

impl Catalog {
    /// The built-in catalog. Fails only if the compiled-in file is broken, which a test rules out.
    pub fn builtin() -> Result<Catalog, Error> {
        parse_builtin(BUILTIN_SOURCE).map(|offers| Catalog::new("built-in", offers))
    }
}

fn parse_builtin(text: &str) -> Result<Vec<Offer>, Error> {
    let mut reader = csv::ReaderBuilder::new().comment(Some(b'#')).from_reader(text.as_bytes());
    let mut offers = Vec::new();
    for record in reader.records() {
        let record =
            record.map_err(|e| Error::Builtin { line: e.position().map_or(0, |p| p.line()), reason: e.to_string() })?;
        let line = record.position().map_or(0, |p| p.line());
        let bad = |reason: String| Error::Builtin { line, reason };
        let get = |i: usize| record.get(i).unwrap_or("").trim();
        let money = |i: usize| -> Result<Option<Money>, Error> {
            let t = get(i);
            if t.is_empty() {
                return Ok(None);
            }
            Money::parse_non_negative(t).map(Some).map_err(|e| bad(e.to_string()))
        };
        let number = |i: usize, what: &str| -> Result<u32, Error> {
            get(i).parse::<u32>().map_err(|_| bad(format!("invalid {what} `{}`", get(i))))
        };
        let gpu = match get(4) {
            "" => None,
            name => Some(GpuModel::parse(name).map_err(|e| bad(e.to_string()))?),
        };
        let source = get(10).to_string();
        if source.is_empty() {
            return Err(bad("empty source: every built-in figure must say where it comes from".to_string()));
        }
        offers.push(Offer {
            provider: get(0).to_string(),
            region: get(1).to_string(),
            zone: Some(get(2)).filter(|z| !z.is_empty()).map(str::to_string),
            instance_type: get(3).to_string(),
            gpu,
            gpus: number(5, "gpus")?,
            vcpus_milli: number(6, "vcpus")? * 1000,
            memory_mib: u64::from(number(7, "memory_gib")?) * 1024,
            price: money(8)?,
            spot_price: money(9)?,
            source,
        });
    }
    Ok(offers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_builtin_rows_are_errors_with_their_line() {
        let head = "provider,region,zone,instance_type,gpu,gpus,vcpus,memory_gib,price,spot_price,source\n";
        let err = parse_builtin(&format!("{head}aws,us-east-1,,x,H900,8,1,1,1,,here\n")).unwrap_err();
        assert!(err.to_string().starts_with("built-in catalog line 2: unknown GPU model `H900`"), "{err}");
        let err = parse_builtin(&format!("{head}aws,us-east-1,,x,H100,8,1,1,1,,\n")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "built-in catalog line 2: empty source: every built-in figure must say where it comes from"
        );
    }
}

//! Where capacity lives: providers, the kinds of capacity, and SkyPilot's `infra` selectors.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

/// A provider id: `aws`, `azure`, `gcp`, `oci`, `coreweave`, `lambda`, `nebius`, `local`, ...
///
/// Open-ended on purpose: a company's own Slurm cluster is a provider as much as a cloud is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Provider(String);

impl Provider {
    pub fn new(name: &str) -> Result<Provider, crate::Error> {
        let lower = name.trim().to_ascii_lowercase();
        if lower.is_empty() || !lower.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(crate::Error::InvalidProvider(name.to_string()));
        }
        Ok(Provider(lower))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Provider {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Provider::new(s)
    }
}

impl<'de> Deserialize<'de> for Provider {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Provider::new(&text).map_err(serde::de::Error::custom)
    }
}

/// How capacity is held, which decides its price and its risk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CapacityKind {
    /// Reserved under a contract: paid for whether used or not.
    Contract,
    /// Bought by the hour at list price.
    OnDemand,
    /// Cheap and preemptible by the provider.
    Spot,
}

impl CapacityKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            CapacityKind::Contract => "contract",
            CapacityKind::OnDemand => "on-demand",
            CapacityKind::Spot => "spot",
        }
    }
}

impl fmt::Display for CapacityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// SkyPilot's `infra` string: `aws`, `aws/us-east-1`, `aws/us-east-1/us-east-1a`, or `*/us-east-1`.
/// Empty parts and `*` match anything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InfraSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

impl InfraSelector {
    pub fn parse(text: &str) -> Result<InfraSelector, crate::Error> {
        let invalid = || crate::Error::Invalid {
            what: "infra",
            value: text.to_string(),
            expected: "provider[/region[/zone]], e.g. aws/us-east-1",
        };
        let t = text.trim();
        if t.is_empty() {
            return Err(invalid());
        }
        let parts: Vec<&str> = t.split('/').collect();
        if parts.len() > 3 {
            return Err(invalid());
        }
        let part = |i: usize| -> Option<String> {
            parts.get(i).map(|p| p.trim()).filter(|p| !p.is_empty() && *p != "*").map(|p| p.to_ascii_lowercase())
        };
        Ok(InfraSelector { provider: part(0), region: part(1), zone: part(2) })
    }

    pub fn matches(&self, provider: &str, region: &str, zone: Option<&str>) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w.eq_ignore_ascii_case(have));
        eq(&self.provider, provider)
            && eq(&self.region, region)
            && self.zone.as_deref().is_none_or(|w| zone.is_some_and(|z| w.eq_ignore_ascii_case(z)))
    }
}

impl fmt::Display for InfraSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.provider.as_deref().unwrap_or("*");
        match (&self.region, &self.zone) {
            (None, None) => f.write_str(p),
            (Some(r), None) => write!(f, "{p}/{r}"),
            (r, Some(z)) => write!(f, "{p}/{}/{z}", r.as_deref().unwrap_or("*")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infra_selectors_match() {
        let s = InfraSelector::parse("aws/us-east-1").unwrap();
        assert!(s.matches("aws", "us-east-1", Some("us-east-1a")));
        assert!(!s.matches("aws", "us-west-2", None));
        assert!(InfraSelector::parse("*/eu-north1").unwrap().matches("nebius", "eu-north1", None));
        assert!(InfraSelector::parse("a/b/c/d").is_err());
        assert!(Provider::new("AWS").is_ok());
        assert!(Provider::new("a w s").is_err());
    }
}

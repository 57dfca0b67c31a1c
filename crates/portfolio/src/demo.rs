//! The demo portfolio, compiled in: illustrative contracts modelled on publicly reported
//! commitments (the same text ships as `examples/portfolio-demo.yaml`; a test keeps them equal).

use crate::{Error, Portfolio};

/// The demo portfolio's YAML.
pub const DEMO_PORTFOLIO_YAML: &str = include_str!("../data/portfolio-demo.yaml");

impl Portfolio {
    /// The illustrative demo portfolio.
    pub fn demo() -> Result<Portfolio, Error> {
        Portfolio::from_yaml(DEMO_PORTFOLIO_YAML, "built-in demo portfolio (illustrative)")
    }
}

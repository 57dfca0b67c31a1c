//! GPU models, GPU selectors ("H100 or H200", "any GPU with ≥ 80 GB") and fractional GPU counts.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! gpu_models {
    ($( $variant:ident => $name:literal, $mem:literal, $vendor:literal, [$($alias:literal),*] );* $(;)?) => {
        /// A GPU model Cumulo knows, with its memory. Names follow SkyPilot's catalogs.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum GpuModel { $($variant),* }

        impl GpuModel {
            pub const ALL: &'static [GpuModel] = &[$(GpuModel::$variant),*];

            /// The canonical name, as SkyPilot's catalogs spell it.
            pub const fn name(self) -> &'static str {
                match self { $(GpuModel::$variant => $name),* }
            }

            /// Other names [`GpuModel::parse`] reads as this model (besides any spelling of the
            /// canonical name that differs only in case, '-', '_' or ' ').
            pub const fn aliases(self) -> &'static [&'static str] {
                match self { $(GpuModel::$variant => &[$($alias),*]),* }
            }

            /// Memory per GPU in GB, from the vendor's data sheet.
            pub const fn memory_gb(self) -> u32 {
                match self { $(GpuModel::$variant => $mem),* }
            }

            pub const fn vendor(self) -> &'static str {
                match self { $(GpuModel::$variant => $vendor),* }
            }

            /// Looks a name up case-insensitively, accepting the aliases clouds use
            /// (`A100_80GB`, `H100-SXM`, `Radeon MI25`...).
            pub fn parse(text: &str) -> Result<GpuModel, crate::Error> {
                // the canonical spelling (every stored record's) without building keys
                if let Some(model) = GpuModel::ALL.iter().find(|m| m.name() == text) {
                    return Ok(*model);
                }
                let key: String = text.trim().chars().filter(|c| !matches!(c, '-' | '_' | ' ')).collect::<String>().to_ascii_uppercase();
                $(
                    if key == canonical_key($name) $(|| key == canonical_key($alias))* {
                        return Ok(GpuModel::$variant);
                    }
                )*
                Err(crate::Error::UnknownGpu(text.trim().to_string()))
            }
        }
    };
}

fn canonical_key(name: &str) -> String {
    name.chars().filter(|c| !matches!(c, '-' | '_' | ' ')).collect::<String>().to_ascii_uppercase()
}

gpu_models! {
    K80 => "K80", 12, "nvidia", [];
    M60 => "M60", 8, "nvidia", [];
    P100 => "P100", 16, "nvidia", [];
    V100 => "V100", 16, "nvidia", [];
    V100_32 => "V100-32GB", 32, "nvidia", [];
    T4 => "T4", 16, "nvidia", [];
    A10 => "A10", 24, "nvidia", [];
    A10G => "A10G", 24, "nvidia", [];
    L4 => "L4", 24, "nvidia", [];
    Rtx6000 => "RTX6000", 24, "nvidia", ["Quadro RTX 6000"];
    A4000 => "A4000", 16, "nvidia", ["RTXA4000", "RTX_A4000"];
    A6000 => "A6000", 48, "nvidia", ["RTXA6000", "RTX_A6000"];
    A40 => "A40", 48, "nvidia", [];
    L40 => "L40", 48, "nvidia", [];
    L40S => "L40S", 48, "nvidia", [];
    Rtx6000Ada => "RTX6000Ada", 48, "nvidia", ["RTX6000-Ada", "RTX 6000 Ada"];
    RtxPro6000 => "RTXPRO6000", 96, "nvidia", ["RTX PRO 6000"];
    A100 => "A100", 40, "nvidia", ["A100-40GB"];
    A100_80 => "A100-80GB", 80, "nvidia", ["A100_PCIE_80GB", "A100-80GB-SXM", "A100_80GB"];
    H100 => "H100", 80, "nvidia", ["H100-SXM", "H100-80GB", "H100_SXM5"];
    H100Mega => "H100-MEGA", 80, "nvidia", [];
    GH200 => "GH200", 96, "nvidia", [];
    H200 => "H200", 141, "nvidia", ["H200-SXM"];
    B200 => "B200", 180, "nvidia", [];
    B300 => "B300", 288, "nvidia", [];
    GB200 => "GB200", 186, "nvidia", [];
    GB300 => "GB300", 288, "nvidia", [];
    MI25 => "MI25", 16, "amd", ["Radeon MI25"];
    MI300X => "MI300X", 192, "amd", [];
    MI325X => "MI325X", 256, "amd", [];
    MI355X => "MI355X", 288, "amd", [];
}

impl GpuModel {
    /// Comma-separated canonical names, for error messages.
    pub fn known_names() -> String {
        GpuModel::ALL.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for GpuModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for GpuModel {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GpuModel::parse(s)
    }
}

impl Serialize for GpuModel {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for GpuModel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        GpuModel::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Which GPU models a request accepts.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuSelector {
    /// Any of these models (one model, or a list of acceptable alternatives).
    Models(Vec<GpuModel>),
    /// Any GPU with at least this much memory.
    MinMemoryGb(u32),
    /// An accelerator by the name SkyPilot gives it, when that name is not one of [`GpuModel`]'s
    /// canonical names: a catalog name Cumulo folds into a model (`H100-SXM`, `A100-40GB`) or one
    /// no model knows (`B100`, `Inferentia`, `tpu-v5e-8`). It matches only pools whose model
    /// the name stands for (through [`GpuModel::parse`]'s aliases); an unknown name matches none.
    Named(String),
}

impl GpuSelector {
    pub fn accepts(&self, model: GpuModel) -> bool {
        match self {
            GpuSelector::Models(models) => models.contains(&model),
            GpuSelector::MinMemoryGb(gb) => model.memory_gb() >= *gb,
            GpuSelector::Named(name) => GpuModel::parse(name).is_ok_and(|m| m == model),
        }
    }
}

impl fmt::Display for GpuSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuSelector::Models(models) => {
                let names: Vec<&str> = models.iter().map(|m| m.name()).collect();
                f.write_str(&names.join("|"))
            }
            GpuSelector::MinMemoryGb(gb) => write!(f, "any>={gb}GB"),
            GpuSelector::Named(name) => f.write_str(name),
        }
    }
}

/// A GPU count in thousandths of a GPU: `1000` is one whole GPU, `250` a quarter.
///
/// Whole counts place on whole free GPUs; a fraction below one GPU places on a single physical GPU
/// shared with other fractions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MilliGpu(pub u32);

impl MilliGpu {
    pub const ONE: MilliGpu = MilliGpu(1000);

    pub const fn whole(gpus: u32) -> MilliGpu {
        MilliGpu(gpus * 1000)
    }

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// True for a share of one GPU (0 < n < 1).
    pub const fn is_fraction(self) -> bool {
        self.0 > 0 && self.0 < 1000
    }

    /// Whole GPUs needed, rounding a fraction up (a quarter GPU still sits on one GPU).
    pub const fn whole_gpus_ceil(self) -> u32 {
        self.0.div_ceil(1000)
    }

    /// Parses `8`, `8.0`, `0.25`; refuses zero, negatives, more than three decimals and fractions
    /// above one that are not whole (`1.5` GPUs cannot sit on one physical GPU).
    pub fn parse(text: &str) -> Result<MilliGpu, crate::Error> {
        let invalid = || crate::Error::InvalidGpuCount(text.to_string());
        let t = text.trim();
        let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
        if whole.is_empty() && frac.is_empty()
            || !whole.chars().all(|c| c.is_ascii_digit())
            || !frac.chars().all(|c| c.is_ascii_digit())
        {
            return Err(invalid());
        }
        let frac_trimmed = frac.trim_end_matches('0');
        if frac_trimmed.len() > 3 {
            return Err(invalid());
        }
        let whole: u32 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| invalid())? };
        let milli_frac: u32 = format!("{frac_trimmed:0<3}").parse().map_err(|_| invalid())?;
        let milli = whole.checked_mul(1000).and_then(|w| w.checked_add(milli_frac)).ok_or_else(invalid)?;
        if milli == 0 || (milli > 1000 && milli % 1000 != 0) {
            return Err(invalid());
        }
        Ok(MilliGpu(milli))
    }
}

impl fmt::Display for MilliGpu {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_multiple_of(1000) {
            write!(f, "{}", self.0 / 1000)
        } else {
            let s = format!("{}.{:03}", self.0 / 1000, self.0 % 1000);
            f.write_str(s.trim_end_matches('0'))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_canonical_name_parses_to_its_model_by_either_path() {
        for model in GpuModel::ALL {
            assert_eq!(GpuModel::parse(model.name()).unwrap(), *model);
            // the slow path (case and separators folded) agrees with the exact-name one
            assert_eq!(GpuModel::parse(&format!(" {} ", model.name().to_lowercase())).unwrap(), *model);
        }
    }

    #[test]
    fn parses_names_and_aliases() {
        assert_eq!(GpuModel::parse("h100").unwrap(), GpuModel::H100);
        assert_eq!(GpuModel::parse("A100_PCIE_80GB").unwrap(), GpuModel::A100_80);
        assert_eq!(GpuModel::parse("gb300").unwrap(), GpuModel::GB300);
        assert_eq!(GpuModel::parse("Radeon MI25").unwrap(), GpuModel::MI25);
        assert_eq!(GpuModel::parse("RTXA4000").unwrap(), GpuModel::A4000);
        assert_eq!(GpuModel::parse("RTX6000Ada").unwrap(), GpuModel::Rtx6000Ada);
        assert_eq!(GpuModel::parse("RTX6000-Ada").unwrap(), GpuModel::Rtx6000Ada);
        assert_eq!(GpuModel::parse("RTX6000").unwrap(), GpuModel::Rtx6000);
        let err = GpuModel::parse("H900").unwrap_err().to_string();
        assert!(err.starts_with("unknown GPU model `H900` (known: K80, M60"), "{err}");
    }

    #[test]
    fn every_required_model_has_memory() {
        for (name, gb) in [
            ("A100", 40),
            ("H100", 80),
            ("H200", 141),
            ("B200", 180),
            ("B300", 288),
            ("GB200", 186),
            ("GB300", 288),
            ("MI300X", 192),
            ("MI355X", 288),
        ] {
            assert_eq!(GpuModel::parse(name).unwrap().memory_gb(), gb, "{name}");
        }
    }

    #[test]
    fn selector_by_memory() {
        let big = GpuSelector::MinMemoryGb(80);
        assert!(big.accepts(GpuModel::H100));
        assert!(!big.accepts(GpuModel::A100));
    }

    #[test]
    fn milli_gpu_parsing() {
        assert_eq!(MilliGpu::parse("8").unwrap(), MilliGpu(8000));
        assert_eq!(MilliGpu::parse("8.0").unwrap(), MilliGpu(8000));
        assert_eq!(MilliGpu::parse("0.25").unwrap(), MilliGpu(250));
        assert_eq!(MilliGpu(250).to_string(), "0.25");
        for bad in ["0", "-1", "1.5", "0.0001", "x", ""] {
            assert!(MilliGpu::parse(bad).is_err(), "{bad}");
        }
    }
}

/// A job's speed on one GPU model relative to its other models (`speedups: {V100: 3.0}`), kept in
/// thousandths so that specs stay comparable: from [`Speed::MIN`] (0.001) to [`Speed::MAX`] (1000).
/// Written and read as a plain number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Speed(u32);

impl Speed {
    pub const MIN: Speed = Speed(1);
    pub const MAX: Speed = Speed(1_000_000);
    /// What the job file says a speed must be.
    pub const EXPECTED: &'static str =
        "a positive speed relative to the job's other GPU models, from 0.001 to 1000 (such as 3.0)";

    /// The speed a number stands for, rounded to thousandths; `None` outside 0.001..=1000 (or not
    /// a number).
    pub fn from_f64(value: f64) -> Option<Speed> {
        (Speed::MIN.as_f64()..=Speed::MAX.as_f64()).contains(&value).then(|| Speed((value * 1000.0).round() as u32))
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 1000.0
    }
}

impl fmt::Display for Speed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_f64())
    }
}

impl Serialize for Speed {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.as_f64())
    }
}

impl<'de> Deserialize<'de> for Speed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Speed, D::Error> {
        let value = f64::deserialize(d)?;
        Speed::from_f64(value)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid speed `{value}`: expected {}", Speed::EXPECTED)))
    }
}

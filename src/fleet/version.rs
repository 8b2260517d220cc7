//! A round's result becoming a new version of the device's run.
//!
//! Until the run keeps versions of its own, a version is what `serve` stores for a retrained
//! model: `RUN/serve/models/gen-N` (a complete run folder, written under a temporary name and
//! renamed), then `RUN/serve/current` pointed at it ([`Layout::publish`]), so a restarted `serve`
//! answers with it. Everything that makes a version goes through [`publish_version`].

use std::path::PathBuf;

use serde::Serialize;

use super::error::FleetError;
use crate::model::TaskModel;
use crate::run::{self, RunConfig};
use crate::serve::layout::Layout;

/// File in a version folder recording the fleet round it came from.
pub const FLEET_FILE: &str = "fleet.json";

/// Where a version came from (written as [`FLEET_FILE`]).
#[derive(Debug, Clone, Serialize)]
pub struct Provenance {
    /// The Flower run id.
    pub flower_run: u64,
    /// The server's round number.
    pub server_round: i64,
    /// The held-out score of the version it replaces and its own.
    pub old_score: f64,
    /// Its held-out score.
    pub new_score: f64,
    /// The journal entry the corrections it was checked against reach.
    pub journal_seq: u64,
}

/// Stores `model` (heads of the run `rc`) as version `after + 1` of the run in `layout` and makes
/// it the one `serve` answers with. Returns the version and its folder.
pub fn publish_version(
    layout: &Layout,
    rc: &RunConfig,
    model: &TaskModel,
    after: u64,
    provenance: &Provenance,
) -> Result<(u64, PathBuf), FleetError> {
    let next = after + 1;
    let temp = layout.temp_model(next);
    if temp.exists() {
        std::fs::remove_dir_all(&temp).map_err(FleetError::io(&temp))?;
    }
    let weights = run::weights_bytes(&model.params)?;
    let mut config = rc.clone();
    config.training.fleet = Some(serde_json::to_value(provenance).unwrap_or_default());
    run::save_run(&temp, config, &weights)?;
    let path = temp.join(FLEET_FILE);
    let json = serde_json::to_vec_pretty(provenance).unwrap_or_default();
    crate::fsutil::write_atomic(&path, &json).map_err(FleetError::io(&path))?;
    Layout::write_trained_through(&temp, provenance.journal_seq)?;
    let dest = layout.publish(&temp, next)?;
    Ok((next, dest))
}

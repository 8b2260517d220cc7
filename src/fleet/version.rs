//! A round's result becoming a new version of the device's run.
//!
//! A version is a complete run folder inside the run (`RUN/versions/N`, see
//! [`crate::run::versions`]); [`publish_version`] adds the round's model as one, made by `fleet`,
//! through [`Versions::add_run`], the one call that adds a version and swaps it in, so a
//! restarted `serve` answers with it (and a running one picks it up at its next request).

use std::path::PathBuf;

use serde::Serialize;

use super::error::FleetError;
use crate::model::TaskModel;
use crate::run::versions::{MadeBy, VersionRecord};
use crate::run::{self, RunConfig};
use crate::serve::layout::Layout;

/// File in a version folder recording the fleet round it came from.
pub const FLEET_FILE: &str = "fleet.json";

/// Where a version came from (in the version's `config.json`, `training.fleet`).
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

/// Stores `model` (heads of the run `rc`) as the next version of the run in `layout` (its
/// parent: version `after`) and makes it the one `serve` answers with (the caller has applied
/// the safe-swap rule). Returns the version and its folder.
pub fn publish_version(
    layout: &Layout,
    rc: &RunConfig,
    model: &TaskModel,
    after: u64,
    provenance: &Provenance,
) -> Result<(u64, PathBuf), FleetError> {
    let weights = run::weights_bytes(&model.params)?;
    let mut config = rc.clone();
    config.training.fleet = Some(serde_json::to_value(provenance).unwrap_or_default());
    let mut record = VersionRecord::new(
        MadeBy::Fleet,
        format!(
            "fleet round {} of Flower run {}",
            provenance.server_round, provenance.flower_run
        ),
    );
    record.parent = Some(after);
    record.journal_seq = provenance.journal_seq;
    record.old_score = Some(provenance.old_score);
    record.new_score = Some(provenance.new_score);
    record.decision = format!(
        "adopted: held-out score {:.4} -> {:.4}",
        provenance.old_score, provenance.new_score
    );
    let (n, dir, _) = layout.versions().add_run(config, &weights, record, None)?;
    let path = dir.join(FLEET_FILE);
    let json = serde_json::to_vec_pretty(provenance).unwrap_or_default();
    crate::fsutil::write_atomic(&path, &json).map_err(FleetError::io(&path))?;
    Ok((n, dir))
}

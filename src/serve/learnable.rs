//! What a run served can learn: decided once at start-up (printed) and checked for each
//! correction, so that a correction that could never be learned is answered `not_learnable` with
//! the reason instead of `ok` (`docs/versions.md`).
//!
//! A run cannot retrain when it fine-tuned backbone layers (`--unfreeze-top`: a retrain trains
//! heads on cached features of a frozen backbone), or when its training data cannot be found (no
//! copy in the run, no recorded folder, or a recorded folder whose files changed). A task of the
//! model the training data lacks (carried over unchanged from an `--init-from` run whose data was
//! not recorded) keeps its head: corrections of it cannot be learned.
//!
//! New labels for an existing task are refused (the correction is checked against the task's
//! labels): growing a head changes its shape, which the versions, the merged export and the
//! actions file all take as fixed; a new label is a new run (`train --init-from RUN` with data that
//! has it).

use std::collections::BTreeSet;
use std::path::Path;

use super::retrain::data::data_dir;
use crate::run::RunConfig;

/// What the served run can learn.
#[derive(Debug, Clone)]
pub struct Learnability {
    /// `Err(reason)` when no retrain can succeed.
    pub retrain: Result<(), String>,
    /// Tasks whose corrections cannot be learned (no training data), with the reason.
    pub frozen: BTreeSet<String>,
}

impl Learnability {
    /// Decides for the run `root` serving the version with config `rc`; `data`: `serve --data`.
    pub fn assess(root: &Path, rc: &RunConfig, data: Option<&Path>) -> Self {
        let mut out = Self {
            retrain: Ok(()),
            frozen: BTreeSet::new(),
        };
        if rc.top_layers.is_some() || rc.training.settings.unfreeze_top > 0 {
            out.retrain = Err(
                "the run fine-tuned backbone layers (--unfreeze-top); a retrain on the device trains \
                 the heads of frozen-backbone runs only"
                    .into(),
            );
            return out;
        }
        let base = match crate::run::read_config(root) {
            Ok(b) => b,
            Err(e) => {
                out.retrain = Err(e.to_string());
                return out;
            }
        };
        let place = match data_dir(&base, root, data) {
            Ok(p) => p,
            Err(e) => {
                out.retrain = Err(e.to_string());
                return out;
            }
        };
        // The tasks the data has (a retrain keeps the others as they are).
        match crate::data::load_split(&place.dir, "train", &place.read) {
            Ok(Some(train)) => {
                let have: BTreeSet<String> = train.tasks().into_iter().map(|t| t.name).collect();
                out.frozen = rc
                    .model
                    .tasks
                    .iter()
                    .map(|t| t.name.clone())
                    .filter(|n| !have.contains(n))
                    .collect();
            }
            Ok(None) => out.retrain = Err(format!("{}: no train split", place.dir.display())),
            Err(e) => out.retrain = Err(format!("the run's training data: {e}")),
        }
        out
    }

    /// One line for the start-up log.
    pub fn describe(&self) -> String {
        match &self.retrain {
            Err(reason) => format!(
                "this run cannot retrain, corrections are refused (not_learnable): {reason}"
            ),
            Ok(()) if self.frozen.is_empty() => {
                "this run can retrain: corrections of every task are learned".into()
            }
            Ok(()) => format!(
                "this run can retrain; corrections of {} are refused (not_learnable): the run's \
                 training data has no such task (carried over from --init-from)",
                self.frozen.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        }
    }

    /// `Err(reason)` when a correction giving `tasks` can never be learned.
    pub fn check(&self, tasks: &[String]) -> Result<(), String> {
        self.retrain.clone()?;
        if let Some(t) = tasks.iter().find(|t| self.frozen.contains(*t)) {
            return Err(format!(
                "task \"{t}\" cannot be retrained on this device: the run's training data has no \
                 \"{t}\" labels (its head was carried over from --init-from)"
            ));
        }
        Ok(())
    }
}

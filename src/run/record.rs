//! What a run records of its training (`config.json`'s `training`): the settings it was trained
//! with and how training went. New facts about a run's training are new fields here, each with a
//! serde default so that runs written before them still load.

use serde::{Deserialize, Serialize};

use super::settings::{limits::MAX_EPOCHS, SettingError, TrainSettings};
use crate::metrics::Metrics;

/// One epoch's log line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochLog {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub loss: f64,
    /// Validation metrics after the epoch.
    pub valid: Metrics,
    /// Wall time of the epoch.
    pub seconds: f64,
}

/// The training record of a run. In `config.json` its keys are written sorted at every depth (as
/// every run of format 2 has been written), the settings' keys beside the record's own.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TrainingRecord {
    /// The settings as trained (epochs and hidden states resolved).
    #[serde(flatten, deserialize_with = "settings_named")]
    pub settings: TrainSettings,
    /// The epoch whose weights were kept (1-based; 0 = not recorded).
    #[serde(default)]
    pub best_epoch: usize,
    /// Epochs run (early stopping may end before `settings.epochs`).
    #[serde(default)]
    pub epochs_run: usize,
    /// The train split's file or folder, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// The heads kept exactly as loaded from `init_from`: those frozen by `--freeze` and the
    /// tasks of the `--init-from` run the data lacks (the real freeze list; `freeze` is the flag).
    #[serde(default)]
    pub frozen: Vec<String>,
    /// Train examples cut at the token limit.
    #[serde(default)]
    pub truncated_train_examples: usize,
    /// One line per epoch run.
    #[serde(default)]
    pub history: Vec<EpochLog>,
    /// The fleet round a version of the run came from (`fleet::version::Provenance`, written by
    /// the fleet client; the run module does not read it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<serde_json::Value>,
}

impl TrainingRecord {
    /// Checks the settings ([`TrainSettings::validate`]) and the record's own counts: the kept
    /// epoch among the epochs run, one history line per epoch run, finite losses and times, scores
    /// that are fractions. The error names the field (`best_epoch`, `history[2].loss`, ...).
    pub fn validate(&self) -> Result<(), SettingError> {
        self.settings.validate()?;
        let bad = |setting: String, message: String| SettingError { setting, message };
        if self.epochs_run > MAX_EPOCHS {
            return Err(bad(
                "epochs_run".into(),
                format!("{} is not in 0..={MAX_EPOCHS}", self.epochs_run),
            ));
        }
        if self.best_epoch > self.epochs_run {
            return Err(bad(
                "best_epoch".into(),
                format!(
                    "{} is after the last epoch run ({})",
                    self.best_epoch, self.epochs_run
                ),
            ));
        }
        if self.history.len() > self.epochs_run {
            return Err(bad(
                "history".into(),
                format!(
                    "{} lines for {} epochs run",
                    self.history.len(),
                    self.epochs_run
                ),
            ));
        }
        for (i, h) in self.history.iter().enumerate() {
            let at = |field: &str| format!("history[{i}].{field}");
            if h.epoch == 0 || h.epoch > self.epochs_run {
                return Err(bad(
                    at("epoch"),
                    format!("{} is not in 1..={}", h.epoch, self.epochs_run),
                ));
            }
            if !h.loss.is_finite() {
                return Err(bad(at("loss"), format!("{} is not finite", h.loss)));
            }
            if !(h.seconds.is_finite() && h.seconds >= 0.0) {
                return Err(bad(
                    at("seconds"),
                    format!("{} is not a duration", h.seconds),
                ));
            }
            h.valid
                .validate()
                .map_err(|(field, m)| bad(at(&format!("valid.{field}")), m))?;
        }
        Ok(())
    }
}

/// Writes `record` through a `serde_json::Value`, whose objects sort their keys: the byte layout
/// every `config.json` of format 2 has.
pub(super) fn sorted<S: serde::Serializer>(
    record: &TrainingRecord,
    s: S,
) -> Result<S::Ok, S::Error> {
    serde_json::to_value(record)
        .map_err(serde::ser::Error::custom)?
        .serialize(s)
}

/// Reads the settings naming the one that does not parse (`batch_size: invalid value: integer
/// \`-1\`, expected usize`): serde's own message would not name a flattened field.
fn settings_named<'de, D: serde::Deserializer<'de>>(d: D) -> Result<TrainSettings, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    serde_path_to_error::deserialize(value)
        .map_err(|e| serde::de::Error::custom(format!("{}: {}", e.path(), e.inner())))
}

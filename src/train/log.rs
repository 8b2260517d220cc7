//! What training says: the headline metrics in one line, why it stopped, and the profile
//! (`EDGETUNE_PROFILE`) of memory and time.

use super::checkpoint;
use super::settings::TrainSettings;
use crate::metrics::Metrics;

/// `EDGETUNE_PROFILE` set: memory after each phase and the time of each part of an epoch, on
/// stderr.
pub(crate) struct Profiler {
    /// Whether `EDGETUNE_PROFILE` is set.
    pub on: bool,
}

impl Profiler {
    /// On when `EDGETUNE_PROFILE` is set.
    pub fn from_env() -> Self {
        Self {
            on: std::env::var_os("EDGETUNE_PROFILE").is_some(),
        }
    }

    /// The time `what` took.
    pub fn seconds(&self, what: &str, seconds: f64) {
        if self.on {
            eprintln!("  timing: {what} {seconds:.3} s");
        }
    }

    /// The process's resident and peak memory at `what`.
    pub fn memory(&self, what: &str) {
        if self.on {
            eprintln!(
                "  memory {what}: RSS {} MiB, peak {} MiB",
                crate::sys::current_rss().unwrap_or(0) >> 20,
                crate::sys::peak_rss().unwrap_or(0) >> 20
            );
        }
    }
}

/// Why training ended and which epoch's weights are kept, in one line: early stopping (after which
/// epoch, for want of a better valid score over how many epochs) or the planned epochs all run.
pub fn stop_reason(state: &checkpoint::State, settings: &TrainSettings) -> String {
    let kept = format!(
        "keeping epoch {} (best valid score {:.2}%)",
        state.best_epoch,
        100.0 * state.best_score
    );
    if state.epoch < settings.epochs {
        format!(
            "early stop after epoch {} of {}: no better valid score for {} epochs (--patience {}); {kept}",
            state.epoch, settings.epochs, state.bad_epochs, settings.patience
        )
    } else {
        format!("all {} epochs run; {kept}", settings.epochs)
    }
}

/// Headline metrics in one line, `%` for every score: the legacy intent / slot F1 / sentence
/// figures where they apply, then the other tasks.
pub fn fmt_metrics(m: &Metrics) -> String {
    let mut parts = Vec::new();
    if let Some(v) = m.intent_accuracy {
        parts.push(format!("intent {:.2}%", v * 100.0));
    }
    if let Some(v) = m.slot_f1 {
        parts.push(format!("slot F1 {:.2}%", v * 100.0));
    }
    for (name, s) in &m.tasks {
        if name == crate::data::INTENT || (name == crate::data::TAGS && m.slot_f1.is_some()) {
            continue;
        }
        if let Some(v) = s.accuracy {
            parts.push(format!("{name} {:.2}%", v * 100.0));
        } else if let Some(v) = s.span_f1 {
            parts.push(format!("{name} F1 {:.2}%", v * 100.0));
        } else if let Some(v) = s.token_accuracy {
            parts.push(format!("{name} token {:.2}%", v * 100.0));
        }
    }
    if let Some(v) = m.sentence_accuracy {
        parts.push(format!("sentence {:.2}%", v * 100.0));
    } else if let Some(v) = m.all_tasks_accuracy {
        parts.push(format!("all tasks {:.2}%", v * 100.0));
    }
    parts.join(", ")
}

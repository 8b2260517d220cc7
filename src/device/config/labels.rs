//! Checking rule names of tasks, labels and span types against what a model can output.

use super::super::model::ModelLabels;
use super::error::Problems;
use super::{Action, Actions, ConfigError, DutySource, RuleRef};
use crate::data::TAGS;

/// How many known names an "unknown name" message lists before eliding the rest.
const LIST_AT_MOST: usize = 12;

fn known(names: &[String]) -> String {
    let mut shown: Vec<&str> = names
        .iter()
        .take(LIST_AT_MOST)
        .map(String::as_str)
        .collect();
    if names.len() > LIST_AT_MOST {
        shown.push("...");
    }
    if shown.is_empty() {
        "none".to_owned()
    } else {
        shown.join(", ")
    }
}

fn task_list<T>(map: &std::collections::BTreeMap<String, T>) -> Vec<String> {
    map.keys().cloned().collect()
}

impl Actions {
    /// Checks every task, label and span type named by the rules against what the model
    /// outputs. Needs no hardware, so it can run offline (e.g. in a `check` command).
    pub fn check_labels(&self, model: &ModelLabels) -> Result<(), ConfigError> {
        let mut problems = Problems::default();
        for rule in &self.rules {
            let rule_ref = RuleRef {
                index: rule.index,
                name: Some(rule.name.clone()),
            };
            for cond in &rule.labels {
                let Some(labels) = model.sentence.get(&cond.task) else {
                    problems.rule(
                        &rule_ref,
                        &cond.field,
                        format!(
                            "the model has no sentence-level task \"{}\" (it has: {})",
                            cond.task,
                            known(&task_list(&model.sentence))
                        ),
                    );
                    continue;
                };
                for label in cond.labels.iter().filter(|l| !labels.contains(l)) {
                    problems.rule(
                        &rule_ref,
                        &cond.field,
                        format!(
                            "unknown label \"{label}\" for task \"{}\" (known: {})",
                            cond.task,
                            known(labels)
                        ),
                    );
                }
            }
            for cond in &rule.spans {
                check_span_type(
                    model,
                    &rule_ref,
                    &cond.field,
                    &cond.task,
                    &cond.kind,
                    &mut problems,
                );
            }
            if let Action::Pwm(pwm) = &rule.action {
                if let DutySource::Slot { kind, .. } = &pwm.duty {
                    check_span_type(model, &rule_ref, "pwm.slot", TAGS, kind, &mut problems);
                }
            }
        }
        problems.finish(&self.file)
    }
}

fn check_span_type(
    model: &ModelLabels,
    rule_ref: &RuleRef,
    field: &str,
    task: &str,
    kind: &str,
    problems: &mut Problems,
) {
    match model.span_types.get(task) {
        None => problems.rule(
            rule_ref,
            field,
            format!(
                "the model has no token task \"{task}\" (it has: {})",
                known(&task_list(&model.span_types))
            ),
        ),
        Some(kinds) if !kinds.iter().any(|k| k == kind) => problems.rule(
            rule_ref,
            field,
            format!(
                "unknown span type \"{kind}\" for task \"{task}\" (known: {})",
                known(kinds)
            ),
        ),
        Some(_) => {}
    }
}

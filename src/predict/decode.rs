//! From per-word probabilities to labels, the same for a run and a merged model: the arg-max
//! for sentence tasks and per-word tasks, the BIO-constrained Viterbi for span tasks.

use crate::data::{Labels, TaskInfo, TaskKind};

/// One task's decoded output for one example.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskOutput {
    /// A sentence task: the arg-max class, its probability, and the logits over all classes.
    Sentence {
        /// Arg-max class id.
        id: usize,
        /// Its probability.
        prob: f32,
        /// The logits.
        logits: Vec<f32>,
    },
    /// A token task: the full label distribution per word (what [`to_labels`] decodes).
    Token {
        /// `[words][classes]` probabilities.
        probs: Vec<Vec<f32>>,
    },
}

/// The decoded output of every task for one example (`None`: the model has no output for it).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decoded {
    /// Per task, in the model's task order.
    pub tasks: Vec<Option<TaskOutput>>,
}

/// Index and value of the largest element (first on ties; `(0, -inf)` for an empty slice).
pub fn argmax(v: &[f32]) -> (usize, f32) {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &x)| {
            if x > best.1 {
                (i, x)
            } else {
                best
            }
        })
}

/// The label ids a token task predicts from its per-word distributions: the most probable valid BIO
/// sequence for a span task, the arg-max per word otherwise.
pub fn token_ids(task: &TaskInfo, probs: &[Vec<f32>]) -> Vec<usize> {
    match task.kind {
        TaskKind::Spans => bio_viterbi(probs, &task.labels),
        _ => probs.iter().map(|p| argmax(p).0).collect(),
    }
}

/// The labels of a decoded example, one per word of `kept` (every word of the example). Words cut by
/// truncation (`kept` false, or beyond the decoded words) get the task's first label (`O` for a
/// task that has it). Class ids outside a task's labels are skipped (the label lists were checked
/// against the outputs when the model was loaded).
pub fn to_labels(tasks: &[TaskInfo], d: &Decoded, kept: &[bool]) -> Labels {
    let mut labels = Labels::default();
    for (task, out) in tasks.iter().zip(&d.tasks) {
        match out {
            Some(TaskOutput::Sentence { id, .. }) => {
                if let Some(l) = task.labels.get(*id) {
                    labels.sentence.insert(task.name.clone(), l.clone());
                }
            }
            Some(TaskOutput::Token { probs }) => {
                let fill = task.labels.first().cloned().unwrap_or_default();
                let ids = token_ids(task, probs);
                let tags = kept
                    .iter()
                    .enumerate()
                    .map(
                        |(w, &k)| match ids.get(w).and_then(|&id| task.labels.get(id)) {
                            Some(l) if k => l.clone(),
                            _ => fill.clone(),
                        },
                    )
                    .collect();
                labels.token.insert(task.name.clone(), tags);
            }
            None => {}
        }
    }
    labels
}

/// The most probable tag sequence under per-word distributions `probs` that obeys BIO: no `I-X`
/// at the start or after anything but `B-X`/`I-X`. Returns tag ids.
pub fn bio_viterbi(probs: &[Vec<f32>], tags: &[String]) -> Vec<usize> {
    let n = tags.len();
    if probs.is_empty() || n == 0 {
        return Vec::new();
    }
    let inside: Vec<Option<&str>> = tags.iter().map(|t| t.strip_prefix("I-")).collect();
    fn kind(t: &str) -> &str {
        t.get(2..).unwrap_or("")
    }
    let allowed = |prev: Option<usize>, next: usize| match inside[next] {
        None => true,
        Some(x) => prev.is_some_and(|p| {
            (tags[p].starts_with("B-") || tags[p].starts_with("I-")) && kind(&tags[p]) == x
        }),
    };
    let logp = |p: f32| (p.max(1e-12) as f64).ln();
    let mut score: Vec<f64> = (0..n)
        .map(|j| {
            if allowed(None, j) {
                logp(probs[0][j])
            } else {
                f64::NEG_INFINITY
            }
        })
        .collect();
    let mut back: Vec<Vec<usize>> = Vec::with_capacity(probs.len());
    for row in &probs[1..] {
        let mut next = vec![f64::NEG_INFINITY; n];
        let mut from = vec![0usize; n];
        for j in 0..n {
            for (i, &s) in score.iter().enumerate() {
                if s > f64::NEG_INFINITY && allowed(Some(i), j) && s > next[j] {
                    next[j] = s;
                    from[j] = i;
                }
            }
            next[j] += logp(row[j]);
        }
        back.push(from);
        score = next;
    }
    let mut best = (0..n).fold(0, |b, j| if score[j] > score[b] { j } else { b });
    let mut path = vec![best];
    for from in back.iter().rev() {
        best = from[best];
        path.push(best);
    }
    path.reverse();
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viterbi_repairs_invalid_bio() {
        let tags: Vec<String> = ["O", "B-a", "I-a", "B-b", "I-b"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        // Arg-max would be O I-a I-a: invalid start of a chunk.
        let p = vec![
            vec![0.6, 0.3, 0.05, 0.03, 0.02],
            vec![0.1, 0.1, 0.7, 0.05, 0.05],
            vec![0.1, 0.1, 0.7, 0.05, 0.05],
        ];
        assert_eq!(bio_viterbi(&p, &tags), vec![1, 2, 2]);
        // B-a I-b is invalid: the type must continue.
        let p = vec![vec![0.0, 0.9, 0.0, 0.1, 0.0], vec![0.1, 0.0, 0.3, 0.0, 0.6]];
        assert_eq!(bio_viterbi(&p, &tags), vec![1, 2]);
        // A valid arg-max path is kept.
        let p = vec![vec![0.1, 0.8, 0.1, 0.0, 0.0], vec![0.9, 0.0, 0.1, 0.0, 0.0]];
        assert_eq!(bio_viterbi(&p, &tags), vec![1, 0]);
    }
}

//! Evaluation: intent accuracy, conlleval span F1, sentence accuracy and readable reports.

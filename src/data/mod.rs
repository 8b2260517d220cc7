//! Datasets: reading labelled utterances in JointBERT, JSON lines, CoNLL and TSV/CSV formats.

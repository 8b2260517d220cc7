//! Import of Hugging Face BERT-family checkpoints.

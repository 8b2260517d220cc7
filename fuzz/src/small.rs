//! The small model and checkpoint architectures the weight targets load into, shared with the
//! seed generator (`seeds/`), which writes weights files that fit them.

use edgetune::data::{TaskKind, INTENT, TAGS};
use edgetune::hf::BertConfig;
use edgetune::model::{HeadConfig, ModelConfig, SentenceHeadConfig, TaskConfig, TokenHeadConfig};

/// The small model whose weights `run_weights` reads: a sentence task reading a token task.
pub fn small_model_config() -> ModelConfig {
    ModelConfig {
        backbone_width: 4,
        mixed_states: 2,
        tasks: vec![
            TaskConfig {
                name: INTENT.into(),
                kind: TaskKind::Sentence,
                labels: vec!["a".into(), "b".into()],
                head: HeadConfig::Sentence(SentenceHeadConfig {
                    mlp_width: 3,
                    dropout: 0.1,
                    reads: Some(TAGS.into()),
                }),
            },
            TaskConfig {
                name: TAGS.into(),
                kind: TaskKind::Spans,
                labels: vec!["O".into(), "B-x".into(), "I-x".into()],
                head: HeadConfig::Token(TokenHeadConfig {
                    gru_units: 2,
                    dropout: 0.1,
                }),
            },
        ],
    }
}

/// The architecture of the small checkpoint `hf_weights` loads layers of.
pub fn small_bert_config() -> BertConfig {
    BertConfig {
        hidden_size: 4,
        num_hidden_layers: 2,
        num_attention_heads: 2,
        intermediate_size: 8,
        vocab_size: 16,
        max_position_embeddings: 8,
        type_vocab_size: 2,
        layer_norm_eps: 1e-12,
        hidden_act: "gelu".into(),
        position_embedding_type: None,
        model_type: Some("bert".into()),
        pad_token_id: None,
        relative_attention_num_buckets: None,
    }
}

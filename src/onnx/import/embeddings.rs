//! The embedding block of an imported encoder in ONNX: word + position (+ token type) embeddings
//! and their layer norm, with each [`Architecture`]'s position convention.
//!
//! - BERT: positions `0..T` (a `Slice` of the table's first rows), token types gathered by
//!   `token_type_ids`;
//! - RoBERTa / XLM-R and MPNet: position ids computed from `input_ids` as Hugging Face does,
//!   `cumsum(ids != pad) * (ids != pad) + pad` (so real tokens count from `pad + 1` and padding
//!   reads row `pad`), then a `Gather` of the table;
//! - a token-type table of one row (RoBERTa, XLM-R) is added as a constant, without a
//!   `token_type_ids` input; MPNet has none.
//!
//! Every table is read by `Gather` or `Slice` along its rows, so the quantizer can store it in int8
//! ([`crate::onnx::quantize`]'s embedding tables).

use crate::graph::proto::tensor_proto::DataType;
use crate::graph::{attr_int, tensor, Dim, GraphBuilder, OnnxError};
use crate::hf::{BertConfig, Weights};

/// Whether the graph of `c` has a `token_type_ids` input (a token-type table of several rows).
pub fn has_token_type_input(c: &BertConfig) -> bool {
    c.architecture()
        .is_ok_and(|a| a.has_token_types() && c.type_vocab_size > 1)
}

/// Declares the graph inputs (`input_ids`, `attention_mask`, and `token_type_ids` when
/// [`has_token_type_input`]) and appends the embeddings; returns the value holding hidden state 0
/// (named `hidden.0`).
pub fn embeddings(b: &mut GraphBuilder, c: &BertConfig, w: &Weights) -> Result<String, OnnxError> {
    let arch = c.architecture().map_err(OnnxError::Invalid)?;
    let (h, hi) = (c.hidden_size, c.hidden_size as i64);
    let io = [Dim::param("batch"), Dim::param("sequence")];
    b.input("input_ids", DataType::Int64, &io);
    b.input("attention_mask", DataType::Int64, &io);
    let word = b.initializer_f32(
        "embeddings.word_embeddings.weight",
        &[c.vocab_size as i64, hi],
        w.get("embeddings.word_embeddings.weight", &[c.vocab_size, h])?,
    );
    let pos = b.initializer_f32(
        "embeddings.position_embeddings.weight",
        &[c.max_position_embeddings as i64, hi],
        w.get(
            "embeddings.position_embeddings.weight",
            &[c.max_position_embeddings, h],
        )?,
    );
    let e_word = b.op_as(
        "Gather",
        &[&word, "input_ids"],
        vec![attr_int("axis", 0)],
        "embeddings.word",
    );
    // Summed in Hugging Face's order: word (+ token type) + position.
    let mut sum = e_word;
    if arch.has_token_types() {
        let e_typ = token_types(b, c, w)?;
        sum = b.op_as("Add", &[&sum, &e_typ], vec![], "embeddings.sum");
    }
    let e_pos = if arch.padding_positions() {
        padding_positions(b, c, &pos)
    } else {
        absolute_positions(b, &pos)
    };
    let sum = b.op_as("Add", &[&sum, &e_pos], vec![], "embeddings.sum");
    super::ops::layer_norm(
        b,
        w,
        &sum,
        "embeddings.LayerNorm",
        h,
        c.layer_norm_eps as f32,
        "hidden.0",
    )
}

/// BERT: rows `0..T` of the position table (`T` the sequence length of `input_ids`).
fn absolute_positions(b: &mut GraphBuilder, pos: &str) -> String {
    let zero = b.initializer_i64("const.zero_1d", &[1], &[0]);
    let one = b.initializer_i64("const.one_1d", &[1], &[1]);
    let two = b.initializer_i64("const.two_1d", &[1], &[2]);
    let shape = b.op_as("Shape", &["input_ids"], vec![], "embeddings.ids_shape");
    let seq_len = b.op_as(
        "Slice",
        &[&shape, &one, &two, &zero],
        vec![],
        "embeddings.seq_len",
    );
    b.op_as(
        "Slice",
        &[pos, &zero, &seq_len, &zero],
        vec![],
        "embeddings.position",
    )
}

/// RoBERTa / XLM-R / MPNet: `Gather(table, cumsum(ids != pad) * (ids != pad) + pad)`.
fn padding_positions(b: &mut GraphBuilder, c: &BertConfig, pos: &str) -> String {
    let pad = b.initializer(tensor("const.pad_id", &[], &[c.pad_id() as i64]));
    let axis = b.initializer(tensor("const.axis_1", &[], &[1i64]));
    let is_pad = b.op_as("Equal", &["input_ids", &pad], vec![], "positions.is_pad");
    let real = b.op_as("Not", &[&is_pad], vec![], "positions.real");
    let real = b.op_as(
        "Cast",
        &[&real],
        vec![attr_int("to", DataType::Int64 as i64)],
        "positions.real_i64",
    );
    let count = b.op_as("CumSum", &[&real, &axis], vec![], "positions.count");
    let count = b.op_as("Mul", &[&count, &real], vec![], "positions.count_real");
    let ids = b.op_as("Add", &[&count, &pad], vec![], "positions.ids");
    b.op_as(
        "Gather",
        &[pos, &ids],
        vec![attr_int("axis", 0)],
        "embeddings.position",
    )
}

/// The token-type embeddings: gathered by `token_type_ids` when the table has several rows, else
/// its one row as a constant.
fn token_types(b: &mut GraphBuilder, c: &BertConfig, w: &Weights) -> Result<String, OnnxError> {
    let (h, hi) = (c.hidden_size, c.hidden_size as i64);
    let rows = c.type_vocab_size;
    let table = w.get("embeddings.token_type_embeddings.weight", &[rows, h])?;
    if has_token_type_input(c) {
        b.input(
            "token_type_ids",
            DataType::Int64,
            &[Dim::param("batch"), Dim::param("sequence")],
        );
        let typ = b.initializer_f32(
            "embeddings.token_type_embeddings.weight",
            &[rows as i64, hi],
            table,
        );
        Ok(b.op_as(
            "Gather",
            &[&typ, "token_type_ids"],
            vec![attr_int("axis", 0)],
            "embeddings.token_type",
        ))
    } else {
        Ok(b.initializer_f32(
            "embeddings.token_type_embeddings.weight",
            &[hi],
            &table[..h],
        ))
    }
}

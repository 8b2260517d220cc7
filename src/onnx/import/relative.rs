//! MPNet's relative position bias in ONNX: computed once per encoder from the sequence length and
//! added to every layer's attention scores.
//!
//! For `T` tokens the bias of head `h` between query `i` and key `j` is
//! `table[bucket(j - i), h]`, `table` being the checkpoint's `encoder.relative_attention_bias`
//! `[buckets, heads]` and `bucket` [`crate::hf::relative_position_bucket`]. The buckets of every
//! relative position `-(M-1)..=(M-1)` (`M` = `max_position_embeddings`) are a constant int64
//! vector; the graph builds `j - i + M - 1` with `Range`, gathers the buckets, then the table rows,
//! and transposes them to `[1, heads, T, T]`.

use crate::graph::{attr_int, attr_ints, tensor, GraphBuilder, OnnxError};
use crate::hf::{relative_bucket_table, BertConfig, Weights, RELATIVE_BIAS};

/// Appends the bias `[1, heads, T, T]` for the sequence length of `attention_mask` (int64
/// `[batch, T]`) and returns its name. The table is the initializer `encoder.relative_attention_bias.weight`.
pub fn relative_bias(
    b: &mut GraphBuilder,
    c: &BertConfig,
    w: &Weights,
    attention_mask: &str,
) -> Result<String, OnnxError> {
    let (nb, nh) = (c.relative_buckets(), c.num_attention_heads);
    let m = c.max_position_embeddings;
    let table = b.initializer_f32(
        RELATIVE_BIAS,
        &[nb as i64, nh as i64],
        w.get(RELATIVE_BIAS, &[nb, nh])?,
    );
    let buckets = relative_bucket_table(m, nb);
    let buckets = b.initializer_i64(
        "encoder.relative_buckets",
        &[buckets.len() as i64],
        &buckets,
    );
    let zero = b.initializer(tensor("const.rel_zero", &[], &[0i64]));
    let one = b.initializer(tensor("const.rel_one", &[], &[1i64]));
    let offset = b.initializer(tensor("const.rel_offset", &[], &[m as i64 - 1]));
    let shape = b.op_as("Shape", &[attention_mask], vec![], "relative.mask_shape");
    let t = b.op_as(
        "Gather",
        &[&shape, &one],
        vec![attr_int("axis", 0)],
        "relative.seq_len",
    );
    let pos = b.op_as("Range", &[&zero, &t, &one], vec![], "relative.positions");
    let ax0 = b.initializer_i64("const.rel_axis0", &[1], &[0]);
    let ax1 = b.initializer_i64("const.rel_axis1", &[1], &[1]);
    let keys = b.op_as("Unsqueeze", &[&pos, &ax0], vec![], "relative.keys");
    let queries = b.op_as("Unsqueeze", &[&pos, &ax1], vec![], "relative.queries");
    let rel = b.op_as("Sub", &[&keys, &queries], vec![], "relative.distance");
    let idx = b.op_as("Add", &[&rel, &offset], vec![], "relative.index");
    let bucket = b.op_as(
        "Gather",
        &[&buckets, &idx],
        vec![attr_int("axis", 0)],
        "relative.bucket",
    );
    let bias = b.op_as(
        "Gather",
        &[&table, &bucket],
        vec![attr_int("axis", 0)],
        "relative.bias_tth",
    );
    let bias = b.op_as(
        "Transpose",
        &[&bias],
        vec![attr_ints("perm", &[2, 0, 1])],
        "relative.bias_htt",
    );
    Ok(b.op_as("Unsqueeze", &[&bias, &ax0], vec![], "relative.bias"))
}

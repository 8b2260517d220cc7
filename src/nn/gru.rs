//! The bidirectional GRU of the token heads: a reference direction in candle primitives and the
//! fused recurrence used for training and inference.

use candle_core::{DType, Device, Result, Tensor};

use super::kernels::gru::{pack, BiGruOp};
use super::params::{Init, ParamBuilder};

/// One direction of a GRU (PyTorch's formulation, `linear_before_reset`, gate order r, z, n).
#[derive(Debug, Clone)]
pub struct GruDir {
    /// `[3H, IN]`.
    pub w_ih: Tensor,
    /// `[3H, H]`.
    pub w_hh: Tensor,
    /// `[3H]`.
    pub b_ih: Tensor,
    /// `[3H]`.
    pub b_hh: Tensor,
}

impl GruDir {
    /// `weight_ih`, `weight_hh`, `bias_ih`, `bias_hh` under `vb`'s prefix, uniform in
    /// `[-1/sqrt(hid), 1/sqrt(hid)]` (PyTorch's initialisation).
    pub fn new(vb: &mut ParamBuilder, inp: usize, hid: usize) -> Result<Self> {
        let a = 1.0 / (hid as f32).sqrt();
        Ok(Self {
            w_ih: vb.var("weight_ih", &[3 * hid, inp], Init::Uniform(a))?,
            w_hh: vb.var("weight_hh", &[3 * hid, hid], Init::Uniform(a))?,
            b_ih: vb.var("bias_ih", &[3 * hid], Init::Uniform(a))?,
            b_hh: vb.var("bias_hh", &[3 * hid], Init::Uniform(a))?,
        })
    }

    /// Units per direction.
    pub fn units(&self) -> Result<usize> {
        self.w_hh.dim(1)
    }

    /// Runs the recurrence over `x: [B, T, in]` from position 0 to T-1 -> `[B, T, hid]`. Positions
    /// after a sentence's end produce values that callers mask out; they never influence earlier
    /// positions.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, inp) = x.dims3()?;
        let hid = self.units()?;
        // Input projections for all steps at once, laid out [T, B, 3*hid] so each step is a
        // contiguous slice.
        let xp = x
            .reshape((b * t, inp))?
            .matmul(&self.w_ih.t()?)?
            .broadcast_add(&self.b_ih)?
            .reshape((b, t, 3 * hid))?
            .transpose(0, 1)?
            .contiguous()?;
        let w_hh_t = self.w_hh.t()?.contiguous()?;
        let mut h = Tensor::zeros((b, hid), DType::F32, x.device())?;
        let mut outs: Vec<Tensor> = Vec::with_capacity(t);
        for s in 0..t {
            let gi = xp.get(s)?;
            let gh = h.matmul(&w_hh_t)?.broadcast_add(&self.b_hh)?;
            let rz =
                candle_nn::ops::sigmoid(&(gi.narrow(1, 0, 2 * hid)? + gh.narrow(1, 0, 2 * hid)?)?)?;
            let (r, z) = (rz.narrow(1, 0, hid)?, rz.narrow(1, hid, hid)?);
            let n = (gi.narrow(1, 2 * hid, hid)? + r.mul(&gh.narrow(1, 2 * hid, hid)?)?)?.tanh()?;
            h = (&n + z.mul(&(&h - &n)?)?)?;
            outs.push(h.clone());
        }
        Tensor::stack(&outs, 1)
    }
}

/// For each sentence of a right-padded batch, the flat `[B*T]` gather indices that reverse its
/// first `len` positions and keep the padding in place. Applying them twice is the identity.
pub fn reverse_indices(lengths: &[usize], t: usize, dev: &Device) -> Result<Tensor> {
    let mut idx = Vec::with_capacity(lengths.len() * t);
    for (b, &len) in lengths.iter().enumerate() {
        for p in 0..t {
            let src = if p < len { len - 1 - p } else { p };
            idx.push((b * t + src) as u32);
        }
    }
    Tensor::from_vec(idx, lengths.len() * t, dev)
}

/// Reorders the positions of `x: [B, T, ...]` by flat indices from [`reverse_indices`].
pub fn gather_positions(x: &Tensor, idx: &Tensor) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let rest: usize = dims[2..].iter().product();
    x.reshape((dims[0] * dims[1], rest))?
        .index_select(idx, 0)?
        .reshape(dims)
}

/// Both directions of a bidirectional GRU over `x: [B, T, in]` with per-sentence `lengths` ->
/// `[B, T, 2 * hid]` (forward states, then backward states; zero at padding).
///
/// The fused [`BiGruOp`] (`train`: keep its gate activations for the backward pass). Equal to running [`GruDir::forward`] on `x` and on each sentence reversed.
pub fn bigru(
    fwd: &GruDir,
    bwd: &GruDir,
    x: &Tensor,
    lengths: Vec<usize>,
    train: bool,
) -> Result<Tensor> {
    let hid = fwd.units()?;
    let params = pack([
        [&fwd.w_ih, &fwd.w_hh, &fwd.b_ih, &fwd.b_hh],
        [&bwd.w_ih, &bwd.w_hh, &bwd.b_ih, &bwd.b_hh],
    ])?;
    let h = x
        .contiguous()?
        .apply_op2(&params, BiGruOp::new(lengths, hid, train))?;
    Tensor::cat(&[h.get(0)?, h.get(1)?], 2)
}

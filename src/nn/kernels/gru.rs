//! A fused bidirectional GRU recurrence with a hand-written backward pass.
//!
//! Built from candle primitives, one GRU step is about fifteen small tensor operations, each with
//! its own allocation and its own node in the backward graph; over a sentence and two directions
//! that overhead, not arithmetic, dominated an epoch (and candle's generic backward of the input
//! projection's permute and bias broadcast cost as much again). [`BiGruOp`] runs both directions
//! in one candle custom op, one direction per thread: the input projection of all positions as one
//! `gemm`, then the sequential part (`h_{t-1} W_hh^T`, the gates, the state update), and the
//! reverse, by hand, for the backward pass.
//!
//! Semantics are PyTorch's `nn.GRU` (gate order r, z, n; `linear_before_reset`), the same as
//! [`crate::nn::gru::GruDir::forward`], which stays as the reference implementation the tests compare with.

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

use super::simd::{dispatch, exp, matmul, slice};

/// Both GRU directions over a right-padded batch.
///
/// Arguments of [`Tensor::apply_op2`]:
/// - `x: [B, T, IN]`: the input sequence;
/// - `params`: the flat concatenation, per direction (forward, then backward), of `W_ih [3H, IN]`,
///   `W_hh [3H, H]`, `b_ih [3H]`, `b_hh [3H]` (see [`pack`]).
///
/// Result `[2, B, T, H]`: the hidden states of both directions at every position of every sentence,
/// zero at padding. Direction 1 runs each sentence from its own last position (`lengths[b] - 1`) to
/// 0, so padding never enters a state.
#[derive(Debug, Default)]
pub struct BiGruOp {
    /// Words per sentence; positions at and after `lengths[b]` are padding.
    pub lengths: Vec<usize>,
    /// Units per direction.
    pub hidden: usize,
    /// Keep the gate activations of the forward pass for the backward pass (training); without
    /// them the backward pass recomputes them (one more matrix product per step).
    pub save_gates: bool,
    saved: std::sync::Mutex<Option<Vec<f32>>>,
}

impl BiGruOp {
    /// The op for a batch with these sentence lengths.
    pub fn new(lengths: Vec<usize>, hidden: usize, save_gates: bool) -> Self {
        Self {
            lengths,
            hidden,
            save_gates,
            saved: Default::default(),
        }
    }
}

/// The parameters of both directions as [`BiGruOp`] takes them: a differentiable concatenation, so
/// gradients reach each parameter tensor.
pub fn pack(dirs: [[&Tensor; 4]; 2]) -> Result<Tensor> {
    let flat: Vec<Tensor> = dirs
        .iter()
        .flatten()
        .map(|t| t.flatten_all())
        .collect::<Result<_>>()?;
    Tensor::cat(&flat, 0)
}

/// Shapes of one call, checked once.
#[derive(Debug, Clone, Copy)]
struct Dims {
    b: usize,
    t: usize,
    h: usize,
    inp: usize,
}

/// Offsets of one direction's parameters in the packed vector.
#[derive(Debug, Clone, Copy)]
struct Offsets {
    w_ih: usize,
    w_hh: usize,
    b_ih: usize,
    b_hh: usize,
    len: usize,
}

impl Dims {
    fn from(x: &Layout, params: usize, hidden: usize, lengths: &[usize]) -> Result<Self> {
        let (b, t, inp) = x.shape().dims3()?;
        let dm = Self {
            b,
            t,
            h: hidden,
            inp,
        };
        let bad = |m: String| Err(candle_core::Error::Msg(format!("fused GRU: {m}")));
        if params != 2 * dm.offsets(0).len {
            return bad(format!(
                "{params} parameters for input {inp} and {hidden} units per direction"
            ));
        }
        if lengths.len() != b || lengths.iter().any(|&l| l > t) {
            return bad(format!("lengths {lengths:?} for batch {b} x {t}"));
        }
        Ok(dm)
    }

    fn offsets(&self, d: usize) -> Offsets {
        let h3 = 3 * self.h;
        let len = h3 * self.inp + h3 * self.h + 2 * h3;
        let w_ih = d * len;
        let w_hh = w_ih + h3 * self.inp;
        let b_ih = w_hh + h3 * self.h;
        Offsets {
            w_ih,
            w_hh,
            b_ih,
            b_hh: b_ih + h3,
            len,
        }
    }

    /// Position of step `s` of sentence `b` in direction `d`, if the sentence is that long.
    fn pos(&self, d: usize, s: usize, len: usize) -> Option<usize> {
        (s < len).then(|| if d == 0 { s } else { len - 1 - s })
    }
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

#[inline(always)]
fn tanh(x: f32) -> f32 {
    2.0 / (1.0 + exp(-2.0 * x)) - 1.0
}

/// Gate activations of one position: `r`, `z`, `n` and the state update, over `H` units.
/// `x`, `g`: the input and hidden gate pre-activations `[3H]`; `h`: `h_{t-1}` in, `h_t` out;
/// `keep`: `[4H]` receives `r, z, n, gh_n` for the backward pass.
#[inline(always)]
fn gates_forward(x: &[f32], g: &[f32], h: &mut [f32], keep: Option<&mut [f32]>) {
    let n_units = h.len();
    let (xr, rest) = x.split_at(n_units);
    let (xz, xn) = rest.split_at(n_units);
    let (gr, rest) = g.split_at(n_units);
    let (gz, gn) = rest.split_at(n_units);
    let xn = &xn[..n_units];
    let gn = &gn[..n_units];
    match keep {
        Some(k) => {
            let (kr, rest) = k.split_at_mut(n_units);
            let (kz, rest) = rest.split_at_mut(n_units);
            let (kn, kg) = rest.split_at_mut(n_units);
            let kg = &mut kg[..n_units];
            for j in 0..n_units {
                let r = sigmoid(xr[j] + gr[j]);
                let z = sigmoid(xz[j] + gz[j]);
                let n = tanh(xn[j] + r * gn[j]);
                h[j] = n + z * (h[j] - n);
                kr[j] = r;
                kz[j] = z;
                kn[j] = n;
                kg[j] = gn[j];
            }
        }
        None => {
            for j in 0..n_units {
                let r = sigmoid(xr[j] + gr[j]);
                let z = sigmoid(xz[j] + gz[j]);
                let n = tanh(xn[j] + r * gn[j]);
                h[j] = n + z * (h[j] - n);
            }
        }
    }
}

/// Backward through the gates of one position. `k`: `r, z, n, gh_n` `[4H]`; `hp`: `h_{t-1}`;
/// `dh`: the state's total gradient. Writes `d gi` `[3H]`, `d gh` `[3H]`, and the direct part of
/// `d h_{t-1}` into `carry`.
#[inline(always)]
fn gates_backward(
    k: &[f32],
    hp: &[f32],
    dh_out: &[f32],
    carry: &mut [f32],
    dx: &mut [f32],
    dg: &mut [f32],
) {
    let n_units = hp.len();
    let (kr, rest) = k.split_at(n_units);
    let (kz, rest) = rest.split_at(n_units);
    let (kn, kg) = rest.split_at(n_units);
    let kg = &kg[..n_units];
    let dh_out = &dh_out[..n_units];
    let carry = &mut carry[..n_units];
    let (dxr, rest) = dx.split_at_mut(n_units);
    let (dxz, dxn) = rest.split_at_mut(n_units);
    let dxn = &mut dxn[..n_units];
    let (dgr, rest) = dg.split_at_mut(n_units);
    let (dgz, dgn) = rest.split_at_mut(n_units);
    let dgn = &mut dgn[..n_units];
    for j in 0..n_units {
        let (r, z, n) = (kr[j], kz[j], kn[j]);
        let dh = carry[j] + dh_out[j];
        let dan = dh * (1.0 - z) * (1.0 - n * n);
        let daz = dh * (hp[j] - n) * z * (1.0 - z);
        let dar = dan * kg[j] * r * (1.0 - r);
        dxr[j] = dar;
        dxz[j] = daz;
        dxn[j] = dan;
        dgr[j] = dar;
        dgz[j] = daz;
        dgn[j] = dan * r;
        carry[j] = dh * z;
    }
}

/// `gh = h_prev W_hh^T + b_hh` for all rows: `[B, 3H]`.
fn hidden_gates(dm: Dims, hp: &[f32], w: &[f32], bias: &[f32], gh: &mut [f32]) {
    let h3 = 3 * dm.h;
    for row in gh.chunks_exact_mut(h3) {
        row.copy_from_slice(bias);
    }
    // rhs[k][n] = W_hh[n][k]: row stride 1, column stride H.
    matmul(
        dm.b,
        h3,
        dm.h,
        gh,
        true,
        hp,
        (dm.h as isize, 1),
        w,
        (1, dm.h as isize),
    );
}

/// Runs one direction forward; writes its `[B, T, H]` states into `out` and, when given, the gate
/// activations `[B, T, 4H]` into `keep`.
#[allow(clippy::too_many_arguments)]
fn forward_dir(
    dm: Dims,
    d: usize,
    lengths: &[usize],
    gi: &[f32],
    w: &[f32],
    bias: &[f32],
    out: &mut [f32],
    mut keep: Option<&mut [f32]>,
) {
    let (h, h3) = (dm.h, 3 * dm.h);
    let steps = lengths.iter().copied().max().unwrap_or(0);
    let mut hp = vec![0f32; dm.b * h];
    let mut gh = vec![0f32; dm.b * h3];
    for s in 0..steps {
        hidden_gates(dm, &hp, w, bias, &mut gh);
        for (b, &len) in lengths.iter().enumerate() {
            let Some(p) = dm.pos(d, s, len) else { continue };
            let at = b * dm.t + p;
            let hrow = &mut hp[b * h..][..h];
            let k = keep.as_deref_mut().map(|k| &mut k[at * 4 * h..][..4 * h]);
            gates_forward(&gi[at * h3..][..h3], &gh[b * h3..][..h3], hrow, k);
            out[at * h..][..h].copy_from_slice(hrow);
        }
    }
}

/// Gradients of one direction: `(d gi [B,T,3H], d w_hh [3H,H], d b_hh [3H])`. `saved`: the gate
/// activations of the forward pass, or `None` to recompute them.
#[allow(clippy::too_many_arguments)]
fn backward_dir(
    dm: Dims,
    d: usize,
    lengths: &[usize],
    gi: &[f32],
    w: &[f32],
    bias: &[f32],
    res: &[f32],
    grad: &[f32],
    saved: Option<&[f32]>,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (h, h3, bsz) = (dm.h, 3 * dm.h, dm.b);
    let steps = lengths.iter().copied().max().unwrap_or(0);
    let mut dgi = vec![0f32; bsz * dm.t * h3];
    // Per step: the rows' h_{t-1} and d(gh), for one weight-gradient product at the end.
    let mut hprev = vec![0f32; steps * bsz * h];
    let mut dgh = vec![0f32; steps * bsz * h3];
    for s in 1..steps {
        for (b, &len) in lengths.iter().enumerate() {
            let Some(p) = dm.pos(d, s - 1, len).filter(|_| s < len) else {
                continue;
            };
            hprev[(s * bsz + b) * h..][..h].copy_from_slice(&res[(b * dm.t + p) * h..][..h]);
        }
    }
    let mut carry = vec![0f32; bsz * h];
    let mut gh = vec![0f32; bsz * h3];
    let mut scratch = vec![0f32; 5 * h];
    for s in (0..steps).rev() {
        let hp = &hprev[s * bsz * h..][..bsz * h];
        if saved.is_none() {
            hidden_gates(dm, hp, w, bias, &mut gh);
        }
        let dg_step = &mut dgh[s * bsz * h3..][..bsz * h3];
        for (b, &len) in lengths.iter().enumerate() {
            let Some(p) = dm.pos(d, s, len) else { continue };
            let at = b * dm.t + p;
            let hprow = &hp[b * h..][..h];
            let k: &[f32] = match saved {
                Some(sv) => &sv[at * 4 * h..][..4 * h],
                None => {
                    let (k, hs) = scratch.split_at_mut(4 * h);
                    hs.copy_from_slice(hprow);
                    gates_forward(&gi[at * h3..][..h3], &gh[b * h3..][..h3], hs, Some(k));
                    &scratch[..4 * h]
                }
            };
            gates_backward(
                k,
                hprow,
                &grad[at * h..][..h],
                &mut carry[b * h..][..h],
                &mut dgi[at * h3..][..h3],
                &mut dg_step[b * h3..][..h3],
            );
        }
        // carry += d(gh) W_hh  ([B, 3H] x [3H, H]); rows of finished sentences are zero.
        matmul(
            bsz,
            h,
            h3,
            &mut carry,
            true,
            dg_step,
            (h3 as isize, 1),
            w,
            (h as isize, 1),
        );
    }
    // d W_hh = sum over steps and rows of d(gh)^T h_{t-1}: [3H, S*B] x [S*B, H].
    let mut dw = vec![0f32; h3 * h];
    matmul(
        h3,
        h,
        steps * bsz,
        &mut dw,
        false,
        &dgh,
        (1, h3 as isize),
        &hprev,
        (h as isize, 1),
    );
    let mut db = vec![0f32; h3];
    for row in dgh.chunks_exact(h3) {
        for (a, v) in db.iter_mut().zip(row) {
            *a += v;
        }
    }
    (dgi, dw, db)
}

/// `gi = x W_ih^T + b_ih` for all positions of one direction: `[B*T, 3H]`.
fn input_gates(dm: Dims, x: &[f32], p: &[f32], o: Offsets) -> Vec<f32> {
    let h3 = 3 * dm.h;
    let bias = &p[o.b_ih..][..h3];
    let mut gi = Vec::with_capacity(dm.b * dm.t * h3);
    for _ in 0..dm.b * dm.t {
        gi.extend_from_slice(bias);
    }
    // rhs[k][n] = W_ih[n][k]: row stride 1, column stride IN.
    matmul(
        dm.b * dm.t,
        h3,
        dm.inp,
        &mut gi,
        true,
        x,
        (dm.inp as isize, 1),
        &p[o.w_ih..][..h3 * dm.inp],
        (1, dm.inp as isize),
    );
    gi
}

impl CustomOp2 for BiGruOp {
    fn name(&self) -> &'static str {
        "edgetune-bigru"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, p) = (
            slice(s1, l1, "fused GRU input")?,
            slice(s2, l2, "fused GRU parameters")?,
        );
        let dm = Dims::from(l1, p.len(), self.hidden, &self.lengths)?;
        let (h, h3, per_out) = (dm.h, 3 * dm.h, dm.b * dm.t * dm.h);
        let mut out = vec![0f32; 2 * per_out];
        let (o0, o1) = out.split_at_mut(per_out);
        let mut keep = vec![0f32; if self.save_gates { 2 * 4 * per_out } else { 0 }];
        let (k0, k1) = if self.save_gates {
            let (a, b) = keep.split_at_mut(4 * per_out);
            (Some(a), Some(b))
        } else {
            (None, None)
        };
        let lens = &self.lengths;
        let run = |d: usize, out: &mut [f32], keep: Option<&mut [f32]>| {
            let o = dm.offsets(d);
            dispatch(|| {
                let gi = input_gates(dm, x, p, o);
                let (w, bias) = (&p[o.w_hh..][..h3 * h], &p[o.b_hh..][..h3]);
                forward_dir(dm, d, lens, &gi, w, bias, out, keep)
            })
        };
        rayon::join(|| run(0, o0, k0), || run(1, o1, k1));
        if self.save_gates {
            *self.saved.lock().expect("gate store poisoned") = Some(keep);
        }
        Ok((CpuStorage::F32(out), Shape::from((2, dm.b, dm.t, dm.h))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        params: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let flat = |x: &Tensor| -> Result<Vec<f32>> { x.flatten_all()?.to_vec1::<f32>() };
        let (xv, pv, rv, gv) = (flat(x)?, flat(params)?, flat(res)?, flat(grad_res)?);
        let (b, t, inp) = x.dims3()?;
        let dm = Dims {
            b,
            t,
            h: self.hidden,
            inp,
        };
        let (h, h3, bt) = (dm.h, 3 * dm.h, b * t);
        let po = bt * h;
        let lens = &self.lengths;
        let want_dx = x.track_op();
        // The backward pass runs once per forward pass: take the saved gates.
        let saved = self.saved.lock().expect("gate store poisoned").take();
        let saved = saved.filter(|v| v.len() == 2 * 4 * po);
        let run = |d: usize| {
            let o = dm.offsets(d);
            dispatch(|| {
                let w_ih = &pv[o.w_ih..][..h3 * inp];
                let gi = if saved.is_some() {
                    Vec::new()
                } else {
                    input_gates(dm, &xv, &pv, o)
                };
                let (dgi, dw_hh, db_hh) = backward_dir(
                    dm,
                    d,
                    lens,
                    &gi,
                    &pv[o.w_hh..][..h3 * h],
                    &pv[o.b_hh..][..h3],
                    &rv[d * po..][..po],
                    &gv[d * po..][..po],
                    saved.as_deref().map(|v| &v[d * 4 * po..][..4 * po]),
                );
                let mut dp = vec![0f32; o.len];
                // d W_ih = d(gi)^T x: [3H, B*T] x [B*T, IN].
                matmul(
                    h3,
                    inp,
                    bt,
                    &mut dp[..h3 * inp],
                    false,
                    &dgi,
                    (1, h3 as isize),
                    &xv,
                    (inp as isize, 1),
                );
                dp[h3 * inp..][..h3 * h].copy_from_slice(&dw_hh);
                let db_ih = &mut dp[h3 * inp + h3 * h..][..h3];
                for row in dgi.chunks_exact(h3) {
                    for (a, v) in db_ih.iter_mut().zip(row) {
                        *a += v;
                    }
                }
                dp[h3 * inp + h3 * h + h3..].copy_from_slice(&db_hh);
                // d x = d(gi) W_ih: [B*T, 3H] x [3H, IN].
                let mut dx = vec![0f32; if want_dx { bt * inp } else { 0 }];
                if want_dx {
                    matmul(
                        bt,
                        inp,
                        h3,
                        &mut dx,
                        false,
                        &dgi,
                        (h3 as isize, 1),
                        w_ih,
                        (inp as isize, 1),
                    );
                }
                (dx, dp)
            })
        };
        let ((dx0, dp0), (dx1, dp1)) = rayon::join(|| run(0), || run(1));
        let dev = x.device();
        let dp = Tensor::from_vec([dp0, dp1].concat(), params.shape(), dev)?;
        let dx = if want_dx {
            let sum: Vec<f32> = dx0.iter().zip(&dx1).map(|(a, b)| a + b).collect();
            Some(Tensor::from_vec(sum, x.shape(), dev)?)
        } else {
            None
        };
        Ok((dx, Some(dp)))
    }
}

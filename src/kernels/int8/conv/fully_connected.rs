//! int8 FULLY_CONNECTED, the reference kernel (`int8::packed` has the fast one).

use super::{check_bias, check_len, dot, Requant, Rounding, ScaleProduct};
use crate::graph::FusedActivation;
use crate::kernels::fixed_point::QuantizedMultiplier;
use crate::kernels::int8::{Arithmetic, QParams};
use crate::kernels::KernelError;

/// Prepared int8 FULLY_CONNECTED: `[rows, depth] x [units, depth]^T -> [rows, units]`.
/// Flattening the input to rows and `keep_num_dims` are the caller's business.
#[derive(Clone, Debug, PartialEq)]
pub struct FullyConnectedInt8 {
    pub(crate) rq: Requant,
}

impl FullyConnectedInt8 {
    /// `filter_scales` has one entry per unit, or one for all. TFLite treats a single
    /// scale (even for one unit) as per-tensor and then multiplies `input * filter` in
    /// f32 before dividing in f64 (`GetQuantizedConvolutionMultipler`); several scales
    /// take the all-f64 per-channel formula. Like TFLite's `Prepare`, only NONE / RELU /
    /// RELU_N1_TO_1 / RELU6 may be fused. Other errors as [`ConvInt8::new`].
    pub fn new(
        input: QParams,
        filter_scales: &[f32],
        output: QParams,
        activation: FusedActivation,
        units: usize,
    ) -> Result<Self, KernelError> {
        if matches!(activation, FusedActivation::Tanh | FusedActivation::SignBit) {
            return Err(KernelError::Options {
                what: "fused activation",
                found: format!("{activation:?}"),
                allowed: "int8 FULLY_CONNECTED fuses only NONE, RELU, RELU_N1_TO_1 and RELU6",
            });
        }
        let product = if filter_scales.len() == 1 {
            ScaleProduct::FloatProduct
        } else {
            ScaleProduct::Double
        };
        Requant::new(input, filter_scales, output, activation, units, product)
            .map(|rq| FullyConnectedInt8 { rq })
    }

    /// Requantize like `arithmetic` (LiteRT's builtin kernels unless told otherwise).
    pub fn with_arithmetic(mut self, arithmetic: Arithmetic) -> Self {
        self.rq.set_arithmetic(arithmetic);
        self
    }

    /// The per-unit fixed-point multipliers, as TFLite stores them.
    pub fn multipliers(&self) -> &[QuantizedMultiplier] {
        &self.rq.multipliers
    }

    /// The int8 range the fused activation leaves.
    pub fn activation_range(&self) -> (i32, i32) {
        (self.rq.act_min, self.rq.act_max)
    }

    /// `input` is `[rows, depth]`, `filter` `[units, depth]`, `out` `[rows, units]`.
    pub fn run(
        &self,
        rows: usize,
        depth: usize,
        input: &[i8],
        filter: &[i8],
        bias: Option<&[i32]>,
        out: &mut [i8],
    ) -> Result<(), KernelError> {
        let units = self.rq.multipliers.len();
        let size = |a: usize, b: usize| {
            a.checked_mul(b)
                .ok_or_else(|| KernelError::overflow("rows x depth x units", [rows, depth, units]))
        };
        check_len("input", input.len(), size(rows, depth)?)?;
        check_len("filter", filter.len(), size(units, depth)?)?;
        check_len("output", out.len(), size(rows, units)?)?;
        check_bias(bias, units)?;
        if depth == 0 {
            // No products: every output is the requantized bias (or zero).
            for dst in out.chunks_exact_mut(units) {
                for (u, o) in dst.iter_mut().enumerate() {
                    let acc = bias.map_or(0, |b| b[u]);
                    *o = self.rq.output(acc, u, Rounding::HalfUp);
                }
            }
            return Ok(());
        }
        for (x, dst) in input.chunks_exact(depth).zip(out.chunks_exact_mut(units)) {
            for ((u, o), w) in dst.iter_mut().enumerate().zip(filter.chunks_exact(depth)) {
                let acc = dot(x, w, self.rq.input_offset).wrapping_add(bias.map_or(0, |b| b[u]));
                // Both ruy (several rows) and CustomGemv (one row) round ties up.
                *o = self.rq.output(acc, u, Rounding::HalfUp);
            }
        }
        Ok(())
    }
}

//! Kernels qdbg writes itself, on plain slices, where candle has no fitting op or is slow:
//! depthwise convolution (candle's grouped conv runs one convolution per channel),
//! pointwise convolution with its bias and activation fused (candle: three passes),
//! TFLite-style pooling (SAME average pooling ignores padded cells), resizing, and POW
//! (candle's `pow` is wrong for negative bases).
//! They plug into candle tensors through [`run_on_host`].

pub mod argmax_pool_f32;
pub mod conv_f32;
pub mod depthwise_f32;
pub mod element;
pub mod error;
pub mod fixed_point;
pub mod im2col_f32;
pub mod int16;
pub mod int8;
pub mod min_max_f32;
pub mod pointwise_f32;
pub mod pool_f32;
pub mod pow_f32;
pub mod reduce_f32;
pub mod resize_f32;
pub mod simd;
#[cfg(target_arch = "x86_64")]
mod vec_f32;
pub mod window;

pub use error::KernelError;

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp1, Device, Layout, Shape, Tensor as CTensor};

/// Runs `kernel` over the contiguous f32 contents of `x`. On the CPU the tensor's storage
/// is used in place; on a GPU the data makes a round trip through host memory, which is
/// correct but slow (these kernels have no GPU versions yet).
pub fn run_on_host<F: Fn(&[f32], &mut [f32])>(
    name: &'static str,
    x: &CTensor,
    out_shape: &[usize],
    kernel: F,
) -> candle_core::Result<CTensor> {
    // SAFETY: the closure initialises every element (to zero) before `kernel` sees them.
    unsafe {
        run_on_host_filling(name, x, out_shape, |input, out| {
            for o in out.iter_mut() {
                o.write(0.0);
            }
            // SAFETY: initialised just above; MaybeUninit<f32> has f32's layout.
            let out = std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<f32>(), out.len());
            kernel(input, out)
        })
    }
}

fn apply_on_host(x: &CTensor, op: &impl CustomOp1) -> candle_core::Result<CTensor> {
    let x = x.to_dtype(candle_core::DType::F32)?.contiguous()?;
    if x.device().is_cpu() {
        x.apply_op1_no_bwd(op)
    } else {
        let device = x.device().clone();
        x.to_device(&Device::Cpu)?
            .apply_op1_no_bwd(op)?
            .to_device(&device)
    }
}

/// A host kernel that writes every element of its output, which therefore starts
/// uninitialised: zero-filling it first is a memset over the whole output per op.
struct FillingKernel<'a, F: Fn(&[f32], &mut [MaybeUninit<f32>])> {
    name: &'static str,
    out_shape: &'a [usize],
    kernel: F,
}

impl<F: Fn(&[f32], &mut [MaybeUninit<f32>])> CustomOp1 for FillingKernel<'_, F> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("{} expects float32 input", self.name)
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("{} expects a contiguous input", self.name)
        };
        let len = self.out_shape.iter().product();
        let mut out = Vec::<f32>::with_capacity(len);
        (self.kernel)(&data[start..end], &mut out.spare_capacity_mut()[..len]);
        // SAFETY: `run_on_host_filling`'s contract: the kernel initialised all `len`
        // elements, within the capacity reserved above.
        unsafe { out.set_len(len) };
        Ok((CpuStorage::F32(out), Shape::from(self.out_shape.to_vec())))
    }
}

/// [`run_on_host`] for a kernel that writes its whole output, skipping the zero fill.
///
/// # Safety
/// `kernel` must initialise every element of the output slice it is given (or panic).
pub unsafe fn run_on_host_filling<F: Fn(&[f32], &mut [MaybeUninit<f32>])>(
    name: &'static str,
    x: &CTensor,
    out_shape: &[usize],
    kernel: F,
) -> candle_core::Result<CTensor> {
    let op = FillingKernel {
        name,
        out_shape,
        kernel,
    };
    apply_on_host(x, &op)
}

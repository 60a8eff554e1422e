//! 8-lane (AVX2) and 16-lane (AVX-512) f32 vectors behind one trait, so the float
//! convolution kernels are written once and instantiated per level.
//!
//! Every method is `#[inline(always)]` and has no `target_feature` of its own: it is
//! only ever called from a function compiled with the level's features
//! (`avx2,fma` or `avx512f`), into which it inlines, and its intrinsics with it.

use std::arch::x86_64::*;

pub(crate) trait F32Vec: Copy {
    /// f32 lanes per vector.
    const LANES: usize;
    /// Selects the first lanes of a partial vector (a channel tail).
    type Mask: Copy;

    /// # Safety
    /// The level's CPU features are present (true of every method here).
    unsafe fn mask(n: usize) -> Self::Mask;
    unsafe fn zero() -> Self;
    unsafe fn splat(x: f32) -> Self;
    /// `LANES` floats from `p`.
    unsafe fn load(p: *const f32) -> Self;
    /// The masked lanes from `p`, zeros elsewhere; memory behind unmasked lanes is not
    /// read (masked loads do not fault), so a tail may end at the end of a slice.
    unsafe fn load_part(p: *const f32, m: Self::Mask) -> Self;
    /// `*p` in every lane.
    unsafe fn broadcast(p: *const f32) -> Self;
    /// `a * b + c`, rounded once.
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self;
    /// `min(hi, max(lo, self))`, with NaN passing through like TFLite's
    /// `std::min(std::max(x, lo), hi)` (x86 `max`/`min` return their second operand
    /// when either is NaN).
    unsafe fn clamp(self, lo: Self, hi: Self) -> Self;
    unsafe fn store(self, p: *mut f32);
    /// Writes the masked lanes only.
    unsafe fn store_part(self, p: *mut f32, m: Self::Mask);
}

#[derive(Clone, Copy)]
pub(crate) struct Avx2(__m256);

impl F32Vec for Avx2 {
    const LANES: usize = 8;
    type Mask = __m256i;

    #[inline(always)]
    unsafe fn mask(n: usize) -> __m256i {
        // Lane i is on when i < n: the sign bit is what maskload/maskstore read.
        _mm256_cmpgt_epi32(
            _mm256_set1_epi32(n as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        )
    }
    #[inline(always)]
    unsafe fn zero() -> Self {
        Avx2(_mm256_setzero_ps())
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Avx2(_mm256_set1_ps(x))
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        Avx2(_mm256_loadu_ps(p))
    }
    #[inline(always)]
    unsafe fn load_part(p: *const f32, m: __m256i) -> Self {
        Avx2(_mm256_maskload_ps(p, m))
    }
    #[inline(always)]
    unsafe fn broadcast(p: *const f32) -> Self {
        Avx2(_mm256_broadcast_ss(&*p))
    }
    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        Avx2(_mm256_fmadd_ps(a.0, b.0, c.0))
    }
    #[inline(always)]
    unsafe fn clamp(self, lo: Self, hi: Self) -> Self {
        Avx2(_mm256_min_ps(hi.0, _mm256_max_ps(lo.0, self.0)))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        _mm256_storeu_ps(p, self.0)
    }
    #[inline(always)]
    unsafe fn store_part(self, p: *mut f32, m: __m256i) {
        _mm256_maskstore_ps(p, m, self.0)
    }
}

#[derive(Clone, Copy)]
pub(crate) struct Avx512(__m512);

impl F32Vec for Avx512 {
    const LANES: usize = 16;
    type Mask = __mmask16;

    #[inline(always)]
    unsafe fn mask(n: usize) -> __mmask16 {
        ((1u32 << n.min(16)) - 1) as __mmask16
    }
    #[inline(always)]
    unsafe fn zero() -> Self {
        Avx512(_mm512_setzero_ps())
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Avx512(_mm512_set1_ps(x))
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        Avx512(_mm512_loadu_ps(p))
    }
    #[inline(always)]
    unsafe fn load_part(p: *const f32, m: __mmask16) -> Self {
        Avx512(_mm512_maskz_loadu_ps(m, p))
    }
    #[inline(always)]
    unsafe fn broadcast(p: *const f32) -> Self {
        Avx512(_mm512_set1_ps(*p))
    }
    #[inline(always)]
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
        Avx512(_mm512_fmadd_ps(a.0, b.0, c.0))
    }
    #[inline(always)]
    unsafe fn clamp(self, lo: Self, hi: Self) -> Self {
        Avx512(_mm512_min_ps(hi.0, _mm512_max_ps(lo.0, self.0)))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        _mm512_storeu_ps(p, self.0)
    }
    #[inline(always)]
    unsafe fn store_part(self, p: *mut f32, m: __mmask16) {
        _mm512_mask_storeu_ps(p, m, self.0)
    }
}

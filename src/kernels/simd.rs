//! Which instruction set the fast kernels use, decided once per process.
//!
//! The scalar kernels are the reference: they define the results. The SIMD kernels
//! compute the same integers (int8) or stay within the float oracle's tolerance (f32) and
//! are tested against the scalar ones on every level the CPU offers. `QDBG_KERNELS`
//! (`scalar`, `avx2`, `avx512` on x86-64; `scalar`, `neon`, `dotprod` on aarch64) caps
//! the level, so tests and benchmarks can pin one; asking for more than the CPU has
//! gives the best it has, and naming the other architecture's level is ignored like any
//! unknown name.
//!
//! aarch64 has NEON versions of the packed int8 CONV_2D / FULLY_CONNECTED /
//! DEPTHWISE_CONV_2D kernels only (`kernels::int8::packed`); its other kernels (f32,
//! elementwise, calibration) run the scalar code. `scripts/test_aarch64.sh` tests them
//! under qemu. Other targets run the scalar kernels.

use std::sync::OnceLock;

/// Defines `fn NAME(level: Level, ARGS) -> RET` running `BODY(ARGS)` compiled for the x86
/// vectors `level` allows, as far as the CPU has them (AVX-512 F/BW/VL, else AVX2 + FMA),
/// else compiled for the baseline. `BODY` must be `#[inline(always)]` so that each build
/// inlines its own copy: the results are the same, only the vector width differs (which is
/// why `BODY` is written with the operations and the order it wants, `mul_add` where it
/// fuses). The one home of this dispatch for the float passes that read every value (the
/// debugger's error sums, the calibration's ranges); callers pass [`active`], tests each
/// level of [`available`]. On aarch64 every level runs the baseline build (the compiler's
/// NEON).
///
/// ```ignore
/// widest_build! {
///     /// Docs.
///     pub fn min_max(values: &[f32]) -> (f32, f32) = min_max_body;
/// }
/// ```
macro_rules! widest_build {
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty = $body:path;
    ) => {
        $(#[$meta])*
        $vis fn $name(level: $crate::kernels::simd::Level, $($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                use $crate::kernels::simd::{supported, Level};

                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) -> $ret {
                    $body($($arg),*)
                }

                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) -> $ret {
                    $body($($arg),*)
                }

                match supported(level) {
                    // SAFETY: `supported` never names a level the CPU lacks.
                    Level::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: as above; the AVX2 level includes FMA.
                    Level::Avx2 => return unsafe { avx2($($arg),*) },
                    _ => {}
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = level;
            $body($($arg),*)
        }
    };
}
pub(crate) use widest_build;

/// An instruction-set level, ordered from least to most capable within one
/// architecture. The aarch64 levels sort below the x86 ones, so the x86 code's
/// `active() >= Level::Avx2` tests stay false on aarch64; `detected`, `available`,
/// `active` and `supported` only ever return levels of the architecture they run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// The reference kernels.
    Scalar,
    /// aarch64 Advanced SIMD (baseline on every aarch64 CPU).
    Neon,
    /// aarch64 Advanced SIMD with the dot product extension (`sdot`): Cortex-A55/A75,
    /// Apple M1, Neoverse N1 and later.
    NeonDot,
    /// AVX2 + FMA (x86-64, Haswell / Zen 1 and later).
    Avx2,
    /// AVX-512 F/BW/VL with VNNI (`vpdpbusd`): Ice Lake, Zen 4 and later.
    Avx512,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Scalar => "scalar",
            Level::Neon => "neon",
            Level::NeonDot => "dotprod",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        match s.trim().to_ascii_lowercase().as_str() {
            "scalar" | "none" | "off" => Some(Level::Scalar),
            "avx2" => Some(Level::Avx2),
            "avx512" | "avx512vnni" | "avx512-vnni" => Some(Level::Avx512),
            "neon" => Some(Level::Neon),
            "dotprod" | "neondot" | "neon-dotprod" => Some(Level::NeonDot),
            _ => None,
        }
    }

    /// Whether the level's instructions exist on the architecture this was built for
    /// (whether the CPU has them is `detected`'s business).
    fn native(self) -> bool {
        match self {
            Level::Scalar => true,
            Level::Neon | Level::NeonDot => cfg!(target_arch = "aarch64"),
            Level::Avx2 | Level::Avx512 => cfg!(target_arch = "x86_64"),
        }
    }
}

/// The best level this CPU supports.
pub fn detected() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512vnni")
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
        {
            return Level::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Level::Avx2;
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("dotprod") {
            return Level::NeonDot;
        }
    }
    // Advanced SIMD is part of the aarch64 base architecture.
    if cfg!(target_arch = "aarch64") {
        Level::Neon
    } else {
        Level::Scalar
    }
}

/// Every level this CPU can run, lowest first: what the equivalence tests iterate over.
pub fn available() -> Vec<Level> {
    let best = detected();
    [
        Level::Scalar,
        Level::Neon,
        Level::NeonDot,
        Level::Avx2,
        Level::Avx512,
    ]
    .into_iter()
    .filter(|&l| l.native() && l <= best)
    .collect()
}

/// The level the kernels use: the detected one, capped by `QDBG_KERNELS` when set.
/// An unknown value is ignored (the detected level runs) rather than failing inference.
pub fn active() -> Level {
    static ACTIVE: OnceLock<Level> = OnceLock::new();
    *ACTIVE.get_or_init(|| {
        let best = detected();
        match std::env::var("QDBG_KERNELS")
            .ok()
            .as_deref()
            .and_then(Level::parse)
        {
            Some(wanted) => supported(wanted),
            None => best,
        }
    })
}

/// `level` limited to what the CPU has, so a caller can never reach an instruction the
/// CPU lacks (the kernels' `unsafe` rests on this). A level of another architecture
/// gives the best this CPU has.
pub fn supported(level: Level) -> Level {
    if level.native() {
        level.min(detected())
    } else {
        detected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_and_order() {
        assert_eq!(Level::parse("AVX2"), Some(Level::Avx2));
        assert_eq!(Level::parse("avx512"), Some(Level::Avx512));
        assert_eq!(Level::parse("scalar"), Some(Level::Scalar));
        assert_eq!(Level::parse("sse9"), None);
        assert!(Level::Scalar < Level::Avx2 && Level::Avx2 < Level::Avx512);
        assert_eq!(available()[0], Level::Scalar);
        assert!(active() <= detected());
        assert_eq!(supported(Level::Avx512), detected());
        assert_eq!(supported(Level::NeonDot), detected());
        for level in available() {
            assert_eq!(Level::parse(level.name()), Some(level));
            assert_eq!(supported(level), level);
        }
        assert_eq!(Level::parse("DotProd"), Some(Level::NeonDot));
        assert_eq!(Level::parse("neon"), Some(Level::Neon));
        assert!(Level::Scalar < Level::Neon && Level::Neon < Level::NeonDot);
    }

    /// Only the levels of the architecture this runs on, with the x86 ones out of reach
    /// of the x86 code's `>=` tests on aarch64.
    #[test]
    fn levels_belong_to_this_architecture() {
        let levels = available();
        assert!(levels.iter().all(|l| l.native()));
        assert!(levels.contains(&detected()));
        #[cfg(target_arch = "aarch64")]
        {
            assert!(levels.contains(&Level::Neon));
            assert!(detected() < Level::Avx2);
            assert_eq!(supported(Level::Avx2), detected());
        }
        #[cfg(target_arch = "x86_64")]
        {
            assert!(!levels.contains(&Level::Neon) && !levels.contains(&Level::NeonDot));
            assert_eq!(supported(Level::Neon), detected());
        }
    }

    /// A test script that knows what CPU it runs on (scripts/test_aarch64.sh under
    /// `qemu -cpu max`) sets `QDBG_EXPECT_DETECTED`, so an emulator or detection that
    /// hides a level fails here instead of silently leaving its kernels untested.
    #[test]
    fn detected_level_is_the_expected_one() {
        if let Ok(want) = std::env::var("QDBG_EXPECT_DETECTED") {
            assert_eq!(
                Some(detected()),
                Level::parse(&want),
                "QDBG_EXPECT_DETECTED={want}"
            );
        }
    }
}

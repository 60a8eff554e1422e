//! Which instruction set the fast kernels use, decided once per process.
//!
//! The scalar kernels are the reference: they define the results. The SIMD kernels
//! compute the same integers (int8) or stay within the float oracle's tolerance (f32) and
//! are tested against the scalar ones on every level the CPU offers. `QDBG_KERNELS`
//! (`scalar`, `avx2`, `avx512`) caps the level, so tests and benchmarks can pin one;
//! asking for more than the CPU has gives the best it has.
//!
//! aarch64 (and every other non-x86 target) runs the scalar kernels: NEON versions are
//! not written yet, since this build machine cannot compile or test them.

use std::sync::OnceLock;

/// An instruction-set level, ordered from least to most capable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// The reference kernels.
    Scalar,
    /// AVX2 + FMA (x86-64, Haswell / Zen 1 and later).
    Avx2,
    /// AVX-512 F/BW/VL with VNNI (`vpdpbusd`): Ice Lake, Zen 4 and later.
    Avx512,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Scalar => "scalar",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
        }
    }

    pub fn parse(s: &str) -> Option<Level> {
        match s.trim().to_ascii_lowercase().as_str() {
            "scalar" | "none" | "off" => Some(Level::Scalar),
            "avx2" => Some(Level::Avx2),
            "avx512" | "avx512vnni" | "avx512-vnni" => Some(Level::Avx512),
            _ => None,
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
    Level::Scalar
}

/// Every level this CPU can run, lowest first: what the equivalence tests iterate over.
pub fn available() -> Vec<Level> {
    let best = detected();
    [Level::Scalar, Level::Avx2, Level::Avx512]
        .into_iter()
        .filter(|&l| l <= best)
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
            Some(wanted) => wanted.min(best),
            None => best,
        }
    })
}

/// `level` limited to what the CPU has, so a caller can never reach an instruction the
/// CPU lacks (the kernels' `unsafe` rests on this).
pub fn supported(level: Level) -> Level {
    level.min(detected())
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
    }
}

//! 16x8 AVERAGE_POOL_2D and MAX_POOL_2D: LiteRT's int16 pooling (reference
//! `AveragePool` / `MaxPool` for int16) is int8's arithmetic on wider codes: raw values
//! pooled, window sums in int32 divided by the covered cell count with rounding half away
//! from zero, the fused activation clamped in the int16 range. So the int8 kernel,
//! written over [`QuantizedElement`](crate::kernels::element::QuantizedElement), is the
//! int16 one too: `Pool2d::run::<i16>`.

pub use crate::kernels::int8::pool::{Pool2d, PoolKind};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{FusedActivation, Padding};
    use crate::kernels::int16::QParams;

    #[test]
    fn int16_average_and_max_by_hand() {
        let q = QParams::new(1.0 / 1024.0, 0);
        let avg = Pool2d::new(
            PoolKind::Average,
            [1, 2, 2, 1],
            (2, 2),
            (1, 1),
            Padding::Valid,
            FusedActivation::Relu6,
            q,
            q,
        )
        .unwrap();
        let mut out = [0i16; 1];
        // (7000 + 7001 + 7001 + 7000) / 4 = 7000.5 -> 7001, above RELU6's 6 * 1024.
        avg.run(&[7000i16, 7001, 7001, 7000], &mut out).unwrap();
        assert_eq!(out, [6144]);
        // (-3 - 3 - 3 - 1) / 4 = -2.5 -> -3 (away from zero), then RELU6 clamps to 0;
        // without an activation it stays.
        let plain = Pool2d::new(
            PoolKind::Average,
            [1, 2, 2, 1],
            (2, 2),
            (1, 1),
            Padding::Valid,
            FusedActivation::None,
            q,
            q,
        )
        .unwrap();
        plain.run(&[-3i16, -3, -3, -1], &mut out).unwrap();
        assert_eq!(out, [-3]);
        let max = Pool2d::new(
            PoolKind::Max,
            [1, 2, 2, 1],
            (2, 2),
            (1, 1),
            Padding::Valid,
            FusedActivation::None,
            q,
            q,
        )
        .unwrap();
        max.run(&[-30000i16, 20000, 300, -1], &mut out).unwrap();
        assert_eq!(out, [20000]);
    }
}

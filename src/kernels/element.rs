//! The integer element types the quantized kernels store: int8 and int16 codes. Kernels
//! that move or compare codes without rescaling them (pooling, padding, concatenation)
//! are written once over [`QuantizedElement`] and serve both the int8 and the 16x8
//! (int16 activation) models.

/// An integer code of a quantized tensor.
pub trait QuantizedElement: Copy + Ord + Default + Send + Sync + std::fmt::Debug + 'static {
    /// The smallest and largest codes, as i32.
    const MIN: i32;
    const MAX: i32;
    /// The type's name in messages ("int8").
    const NAME: &'static str;

    fn to_i32(self) -> i32;

    /// `v` clamped to the type's range.
    fn saturate(v: i32) -> Self;
}

impl QuantizedElement for i8 {
    const MIN: i32 = i8::MIN as i32;
    const MAX: i32 = i8::MAX as i32;
    const NAME: &'static str = "int8";

    fn to_i32(self) -> i32 {
        i32::from(self)
    }

    fn saturate(v: i32) -> Self {
        v.clamp(<i8 as QuantizedElement>::MIN, <i8 as QuantizedElement>::MAX) as i8
    }
}

impl QuantizedElement for i16 {
    const MIN: i32 = i16::MIN as i32;
    const MAX: i32 = i16::MAX as i32;
    const NAME: &'static str = "int16";

    fn to_i32(self) -> i32 {
        i32::from(self)
    }

    fn saturate(v: i32) -> Self {
        v.clamp(
            <i16 as QuantizedElement>::MIN,
            <i16 as QuantizedElement>::MAX,
        ) as i16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturation_stops_at_each_types_bounds() {
        assert_eq!(i8::saturate(300), 127);
        assert_eq!(i8::saturate(-129), -128);
        assert_eq!(i16::saturate(40_000), 32_767);
        assert_eq!(i16::saturate(-40_000), -32_768);
        assert_eq!(i16::saturate(-129), -129);
    }
}

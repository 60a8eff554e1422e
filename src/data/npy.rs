//! `.npy` decoding from bytes already in memory.
//!
//! ndarray-npy allocates whatever the header claims (the header text length, then the
//! element count) before reading, so the claims are checked against the bytes actually
//! present first; only then are its element readers called.

use ndarray::{ArrayD, IxDyn, ShapeBuilder};
use ndarray_npy::npy::header::Header;
use ndarray_npy::ReadableElement;

use crate::graph::DType;

/// An array as stored, before it is matched against a model input.
#[derive(Debug)]
pub(crate) enum RawArray {
    /// Widened on read: nothing downstream computes in half precision.
    F16(ArrayD<f32>),
    F32(ArrayD<f32>),
    F64(ArrayD<f64>),
    I8(ArrayD<i8>),
    U8(ArrayD<u8>),
    I16(ArrayD<i16>),
    U16(ArrayD<u16>),
    I32(ArrayD<i32>),
    U32(ArrayD<u32>),
    I64(ArrayD<i64>),
    U64(ArrayD<u64>),
}

macro_rules! with_raw {
    ($value:expr, $array:ident => $body:expr) => {
        match $value {
            RawArray::F16($array) => $body,
            RawArray::F32($array) => $body,
            RawArray::F64($array) => $body,
            RawArray::I8($array) => $body,
            RawArray::U8($array) => $body,
            RawArray::I16($array) => $body,
            RawArray::U16($array) => $body,
            RawArray::I32($array) => $body,
            RawArray::U32($array) => $body,
            RawArray::I64($array) => $body,
            RawArray::U64($array) => $body,
        }
    };
}

impl RawArray {
    pub(crate) fn dtype(&self) -> DType {
        match self {
            RawArray::F16(_) => DType::F16,
            RawArray::F32(_) => DType::F32,
            RawArray::F64(_) => DType::F64,
            RawArray::I8(_) => DType::I8,
            RawArray::U8(_) => DType::U8,
            RawArray::I16(_) => DType::I16,
            RawArray::U16(_) => DType::U16,
            RawArray::I32(_) => DType::I32,
            RawArray::U32(_) => DType::U32,
            RawArray::I64(_) => DType::I64,
            RawArray::U64(_) => DType::U64,
        }
    }

    pub(crate) fn shape(&self) -> &[usize] {
        with_raw!(self, a => a.shape())
    }
}

const MAGIC: &[u8] = b"\x93NUMPY";

/// Decodes a whole `.npy` file. The error is a reason, without the path, for the caller
/// to wrap.
pub(crate) fn parse_npy(bytes: &[u8]) -> Result<RawArray, String> {
    let header = parse_header(bytes, bytes.len() as u64)?;
    let data = bytes.get(header.data_start..).unwrap_or_default();
    header.decode(&header.shape, data)
}

const RESAVE: &str = "re-save it with numpy.save";

/// An `.npy` header, checked against the size of the whole file: the data that follows
/// it is exactly what the shape and dtype need.
#[derive(Clone, Debug)]
pub(crate) struct NpyHeader {
    header: Header,
    kind: ElemKind,
    /// Where the data starts in the file.
    pub data_start: usize,
    pub shape: Vec<usize>,
    pub fortran: bool,
}

/// Where the data starts according to the first 10 bytes of a file (magic, version,
/// header length), if they are there: how much [`parse_header`] needs to read.
pub(crate) fn header_span(first: &[u8]) -> Option<usize> {
    let rest = first.strip_prefix(MAGIC)?;
    match rest {
        [1, _, a, b, ..] => Some(MAGIC.len() + 4 + usize::from(u16::from_le_bytes([*a, *b]))),
        [2 | 3, _, a, b, c, d, ..] => {
            let len = usize::try_from(u32::from_le_bytes([*a, *b, *c, *d])).ok()?;
            (MAGIC.len() + 6).checked_add(len)
        }
        _ => None,
    }
}

/// Parses the header at the start of `prefix` (the file's first bytes, as many as there
/// are up to [`MAX_HEADER_PREFIX`]) of a file of `file_len` bytes.
/// Brackets a plain array's header nests: the dict, and the shape tuple inside it.
const MAX_HEADER_NESTING: usize = 2;

/// Refuses, before the Python-literal parser sees them, headers no plain numeric array
/// has: lists (structured dtypes) and deeper nesting. The parser backtracks through nested
/// brackets for a time that grows exponentially with their depth (a fuzzed header of 60
/// `[` took over 10 s).
fn screen_header(head: &[u8]) -> Result<(), String> {
    let mut depth = 0usize;
    for &b in head {
        match b {
            b'[' => {
                return Err(
                    "unsupported .npy dtype (a structured/record dtype); save a plain numeric \
                     array"
                        .to_string(),
                )
            }
            b'(' | b'{' => {
                depth += 1;
                if depth > MAX_HEADER_NESTING {
                    return Err(format!(
                        "invalid .npy header: brackets nested deeper than a plain array's; \
                         {RESAVE}"
                    ));
                }
            }
            b')' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

pub(crate) fn parse_header(prefix: &[u8], file_len: u64) -> Result<NpyHeader, String> {
    let truncated_header = || format!("the .npy header is truncated; {RESAVE}");

    let rest = prefix.strip_prefix(MAGIC).ok_or_else(|| {
        "not a .npy file (it does not start with the \\x93NUMPY magic string)".to_string()
    })?;
    let (header_len, prefix_len) = match rest {
        [1, _, a, b, ..] => (usize::from(u16::from_le_bytes([*a, *b])), MAGIC.len() + 4),
        [2 | 3, _, a, b, c, d, ..] => {
            let len = u32::from_le_bytes([*a, *b, *c, *d]);
            let len = usize::try_from(len).map_err(|_| truncated_header())?;
            (len, MAGIC.len() + 6)
        }
        [major @ (1..=3), ..] if rest.len() < 6 => {
            return Err(format!(
                "the .npy header of format version {major} is truncated; {RESAVE}"
            ))
        }
        [major, minor, ..] => {
            return Err(format!(
                "unsupported .npy format version {major}.{minor}; {RESAVE}"
            ))
        }
        _ => return Err(truncated_header()),
    };
    let data_start = prefix_len
        .checked_add(header_len)
        .ok_or_else(truncated_header)?;
    let (mut head, _) = prefix
        .split_at_checked(data_start)
        .ok_or_else(truncated_header)?;
    screen_header(head)?;
    let header = Header::from_reader(&mut head)
        .map_err(|e| format!("invalid .npy header: {e}; {RESAVE}"))?;

    let descr = header
        .type_descriptor
        .as_string()
        .ok_or_else(|| {
            format!(
                "unsupported .npy dtype {} (a structured/record dtype); save a plain numeric array",
                header.type_descriptor
            )
        })?
        .clone();
    let kind = ElemKind::from_descr(&descr).ok_or_else(|| {
        format!(
            "unsupported .npy dtype '{descr}'; qdbg reads float16/32/64 and (u)int8/16/32/64 arrays"
        )
    })?;

    let count = header
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let nbytes = count.and_then(|c| c.checked_mul(kind.size()));
    let Some(nbytes) = nbytes else {
        return Err(format!(
            "the .npy header claims shape {} which is too large; the file is corrupt",
            fmt_shape(&header.shape)
        ));
    };
    let data_len = file_len.saturating_sub(data_start as u64);
    if data_len != nbytes as u64 {
        let problem = if data_len < nbytes as u64 {
            "is truncated"
        } else {
            "has trailing bytes"
        };
        return Err(format!(
            "the .npy file {problem}: its header describes a {} {} array ({nbytes} bytes of data) \
             but {data_len} bytes follow the header; {RESAVE}",
            fmt_shape(&header.shape),
            kind.dtype(),
        ));
    }
    Ok(NpyHeader {
        shape: header.shape.clone(),
        fortran: header.layout.is_fortran(),
        header,
        kind,
        data_start,
    })
}

impl NpyHeader {
    /// Bytes per element as stored.
    pub(crate) fn elem_size(&self) -> usize {
        self.kind.size()
    }

    /// The stored dtype (float16 included; it is widened on decode).
    pub(crate) fn dtype(&self) -> DType {
        self.kind.dtype()
    }

    /// Whether the data is float32 in this machine's byte order, C order: bytes that are
    /// the values as they are (see [`NpyHeader::read_f32`]).
    pub(crate) fn is_native_f32(&self) -> bool {
        let descr = if cfg!(target_endian = "little") {
            "<f4"
        } else {
            ">f4"
        };
        matches!(self.kind, ElemKind::F32)
            && !self.fortran
            && self.header.type_descriptor.as_string().map(String::as_str) == Some(descr)
    }

    /// [`NpyHeader::decode`] for data [`NpyHeader::is_native_f32`], read straight from
    /// `source` into the array's own buffer: no byte buffer, no conversion.
    pub(crate) fn read_f32(
        &self,
        shape: &[usize],
        source: &mut impl std::io::Read,
    ) -> Result<RawArray, String> {
        let count = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| format!("shape {} is too large", fmt_shape(shape)))?;
        let mut values = vec![0f32; count];
        source
            .read_exact(bytemuck::cast_slice_mut(&mut values))
            .map_err(|e| e.to_string())?;
        Ok(RawArray::F32(shaped(shape, false, values)?))
    }

    /// Decodes `data`, which holds exactly an array of `shape` in this header's dtype and
    /// layout: the whole file's data, or (C order) a run of whole samples.
    pub(crate) fn decode(&self, shape: &[usize], data: &[u8]) -> Result<RawArray, String> {
        let count = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .filter(|&c| c.checked_mul(self.kind.size()) == Some(data.len()))
            .ok_or_else(|| {
                format!(
                    "cannot read the .npy data: {} bytes for shape {}",
                    data.len(),
                    fmt_shape(shape)
                )
            })?;
        let fortran = self.fortran;
        let header = &self.header;
        let raw = match self.kind {
            ElemKind::F16 { big_endian } => {
                let values = data
                    .chunks_exact(2)
                    .filter_map(|b| <[u8; 2]>::try_from(b).ok())
                    .map(|b| {
                        let h = if big_endian {
                            half::f16::from_be_bytes(b)
                        } else {
                            half::f16::from_le_bytes(b)
                        };
                        h.to_f32()
                    })
                    .collect();
                RawArray::F16(shaped(shape, fortran, values)?)
            }
            ElemKind::F32 => RawArray::F32(read(header, shape, fortran, data, count)?),
            ElemKind::F64 => RawArray::F64(read(header, shape, fortran, data, count)?),
            ElemKind::I8 => RawArray::I8(read(header, shape, fortran, data, count)?),
            ElemKind::U8 => RawArray::U8(read(header, shape, fortran, data, count)?),
            ElemKind::I16 => RawArray::I16(read(header, shape, fortran, data, count)?),
            ElemKind::U16 => RawArray::U16(read(header, shape, fortran, data, count)?),
            ElemKind::I32 => RawArray::I32(read(header, shape, fortran, data, count)?),
            ElemKind::U32 => RawArray::U32(read(header, shape, fortran, data, count)?),
            ElemKind::I64 => RawArray::I64(read(header, shape, fortran, data, count)?),
            ElemKind::U64 => RawArray::U64(read(header, shape, fortran, data, count)?),
        };
        Ok(raw)
    }
}

fn read<T: ReadableElement + Clone>(
    header: &Header,
    shape: &[usize],
    fortran: bool,
    data: &[u8],
    count: usize,
) -> Result<ArrayD<T>, String> {
    let values = T::read_to_end_exact_vec(data, &header.type_descriptor, count)
        .map_err(|e| format!("cannot read the .npy data: {e}"))?;
    shaped(shape, fortran, values)
}

/// Builds a C-order array, whatever order the file stored.
fn shaped<T: Clone>(shape: &[usize], fortran: bool, values: Vec<T>) -> Result<ArrayD<T>, String> {
    let array = ArrayD::from_shape_vec(IxDyn(shape).set_f(fortran), values).map_err(|e| {
        format!(
            "the .npy data does not fit its shape {}: {e}",
            fmt_shape(shape)
        )
    })?;
    Ok(if array.is_standard_layout() {
        array
    } else {
        array.as_standard_layout().into_owned()
    })
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum ElemKind {
    F16 { big_endian: bool },
    F32,
    F64,
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
}

impl ElemKind {
    /// Only the spellings numpy writes (and ndarray-npy reads): `<` or `>` for multi-byte
    /// types, `|` (or nothing) for single bytes.
    fn from_descr(descr: &str) -> Option<Self> {
        let (order, code) = match descr.split_at_checked(1) {
            Some((o @ ("<" | ">" | "|"), code)) => (o, code),
            _ => ("|", descr),
        };
        let single = order == "|";
        let kind = match code {
            "i1" | "b" => ElemKind::I8,
            "u1" | "B" => ElemKind::U8,
            _ if single => return None,
            "f2" => ElemKind::F16 {
                big_endian: order == ">",
            },
            "f4" => ElemKind::F32,
            "f8" => ElemKind::F64,
            "i2" => ElemKind::I16,
            "u2" => ElemKind::U16,
            "i4" => ElemKind::I32,
            "u4" => ElemKind::U32,
            "i8" => ElemKind::I64,
            "u8" => ElemKind::U64,
            _ => return None,
        };
        Some(kind)
    }

    fn size(self) -> usize {
        self.dtype().size_bytes().unwrap_or(1)
    }

    fn dtype(self) -> DType {
        match self {
            ElemKind::F16 { .. } => DType::F16,
            ElemKind::F32 => DType::F32,
            ElemKind::F64 => DType::F64,
            ElemKind::I8 => DType::I8,
            ElemKind::U8 => DType::U8,
            ElemKind::I16 => DType::I16,
            ElemKind::U16 => DType::U16,
            ElemKind::I32 => DType::I32,
            ElemKind::U32 => DType::U32,
            ElemKind::I64 => DType::I64,
            ElemKind::U64 => DType::U64,
        }
    }
}

/// `[1, 224, 224, 3]`, the way the rest of qdbg prints shapes.
pub(crate) fn fmt_shape(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    format!("[{}]", dims.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use ndarray_npy::WriteNpyExt;

    fn npy_bytes<T: WriteNpyExt>(a: &T) -> Vec<u8> {
        let mut out = Vec::new();
        a.write_npy(&mut out).unwrap();
        out
    }

    #[test]
    fn reads_f64_and_fortran_order_as_c_order() {
        let a = array![[1.0f64, 2.0, 3.0], [4.0, 5.0, 6.0]];
        let f = a.t().as_standard_layout().into_owned().reversed_axes();
        assert!(!f.is_standard_layout());
        let RawArray::F64(back) = parse_npy(&npy_bytes(&f)).unwrap() else {
            panic!("wrong dtype")
        };
        assert!(back.is_standard_layout());
        assert_eq!(back, a.into_dyn());
    }

    /// A version-1 .npy file with the given header dict and data bytes.
    fn handmade_npy(dict: &str, data: &[u8]) -> Vec<u8> {
        let mut header = dict.as_bytes().to_vec();
        // numpy pads the header with spaces so the data starts on a 64-byte boundary.
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(b' ');
        }
        header.push(b'\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&u16::try_from(header.len()).unwrap().to_le_bytes());
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(data);
        bytes
    }

    #[test]
    fn decodes_float16_by_hand() {
        // 1.0 = 0x3C00, -2.0 = 0xC000, 0.5 = 0x3800, little-endian.
        let le = handmade_npy(
            "{'descr': '<f2', 'fortran_order': False, 'shape': (3,), }",
            &[0x00, 0x3C, 0x00, 0xC0, 0x00, 0x38],
        );
        let RawArray::F16(a) = parse_npy(&le).unwrap() else {
            panic!("wrong dtype")
        };
        assert_eq!(a.into_raw_vec_and_offset().0, vec![1.0, -2.0, 0.5]);

        let be = handmade_npy(
            "{'descr': '>f2', 'fortran_order': False, 'shape': (1,), }",
            &[0xC0, 0x00],
        );
        let RawArray::F16(a) = parse_npy(&be).unwrap() else {
            panic!("wrong dtype")
        };
        assert_eq!(a.into_raw_vec_and_offset().0, vec![-2.0]);
    }

    #[test]
    fn huge_header_length_is_an_error_not_an_allocation() {
        // Version 2 header claiming 4 GiB of header text in a 12-byte file.
        let err = parse_npy(b"\x93NUMPY\x02\x00\xff\xff\xff\xff").unwrap_err();
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn huge_shape_is_an_error_not_an_allocation() {
        let bytes = handmade_npy(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (100000000000,), }",
            &[0; 8],
        );
        let err = parse_npy(&bytes).unwrap_err();
        assert!(
            err.contains("is truncated") && err.contains("[100000000000]"),
            "{err}"
        );

        let overflowing = handmade_npy(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }",
            &[],
        );
        let err = parse_npy(&overflowing).unwrap_err();
        assert!(err.contains("too large"), "{err}");
    }

    #[test]
    fn trailing_bytes_and_bad_magic() {
        let bytes = handmade_npy(
            "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }",
            &[1, 2, 3],
        );
        assert!(parse_npy(&bytes).unwrap_err().contains("trailing bytes"));
        assert!(parse_npy(b"PK\x03\x04")
            .unwrap_err()
            .contains("not a .npy file"));
        assert!(parse_npy(b"").unwrap_err().contains("not a .npy file"));
    }

    #[test]
    fn descriptors() {
        assert_eq!(ElemKind::from_descr("<f4"), Some(ElemKind::F32));
        assert_eq!(ElemKind::from_descr("|u1"), Some(ElemKind::U8));
        assert_eq!(ElemKind::from_descr(">i8"), Some(ElemKind::I64));
        assert_eq!(ElemKind::from_descr("|f4"), None);
        assert_eq!(ElemKind::from_descr("<c8"), None);
        assert_eq!(ElemKind::from_descr("|b1"), None);
        assert_eq!(ElemKind::from_descr(""), None);
    }
}

//! The int8 RESIZE_BILINEAR kernel (`kernels::int8::resize`) against LiteRT.
//!
//! Each `tests/fixtures/kernels/transpose_conv_matmul_resize/resize_*.npz` holds one op's
//! int8 input, quantization parameters and attributes as LiteRT 2.3.0 ran them, and
//! LiteRT's int8 output; the kernel must reproduce that output exactly. Made by
//! `scripts/kernel_vectors/make_transpose_conv_matmul_resize_vectors.py` (which documents
//! the keys), a batch that also made the TRANSPOSE_CONV and BATCH_MATMUL vectors of
//! `tests/int8_conv_family_kernels.rs`; the folder keeps the batch's name.

mod common;

use common::kernel_vectors::{mismatches, single_run_vectors, Vector};

use qdbg::kernels::int8::resize::{ResizeBilinearInt8, ResizeDims};

/// The `kind` code of a RESIZE_BILINEAR vector.
const RESIZE_BILINEAR: i32 = 2;

const DIR: &str = "kernels/transpose_conv_matmul_resize";

#[test]
fn resize_bilinear_matches_litert_exactly() {
    let vectors = single_run_vectors(DIR, "resize_");
    // Guard against a vacuous pass.
    assert!(vectors.len() >= 5, "too few resize vectors in {DIR}");
    let mut bad = Vec::new();
    for path in &vectors {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let mut v = Vector::open(path, &name);
        assert_eq!(v.scalar::<i32>("kind"), RESIZE_BILINEAR, "{name}");
        let output_q = v.qparams("output");
        let expected = v.array::<i8>("output");
        let input = v.array::<i8>("input");
        let size = v.vec::<i32>("size");
        let (is, os) = (input.shape(), expected.shape());
        assert_eq!((size[0] as usize, size[1] as usize), (os[1], os[2]));
        let d = ResizeDims {
            batch: is[0],
            in_h: is[1],
            in_w: is[2],
            channels: is[3],
            out_h: os[1],
            out_w: os[2],
        };
        let input_q = v.qparams("input");
        assert_eq!(input_q, output_q, "the converter shares resize parameters");
        let op = ResizeBilinearInt8::new(
            input_q,
            output_q,
            v.flag("align_corners"),
            v.flag("half_pixel_centers"),
        )
        .unwrap();
        let x: Vec<i8> = input.iter().copied().collect();
        let mut out = vec![0i8; expected.len()];
        op.run(&d, &x, &mut out).unwrap();
        let litert: Vec<i8> = expected.iter().copied().collect();
        let (n, max_lsb) = mismatches(&out, &litert);
        eprintln!(
            "{name:32} {:5} elements: {n} mismatching, max {max_lsb} LSB",
            litert.len()
        );
        if n > 0 {
            bad.push(format!(
                "{name} ({n} of {} elements, max {max_lsb} LSB)",
                litert.len()
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "not bit-exact with LiteRT: {}",
        bad.join("; ")
    );
}

/// The batch's folder holds only the resize vectors above and the conv-family ones
/// (`tconv_`, `bmm_`) that `tests/int8_conv_family_kernels.rs` runs: none goes untested.
#[test]
fn every_vector_of_the_batch_has_a_test_file() {
    let all = single_run_vectors(DIR, "");
    assert!(!all.is_empty());
    for path in all {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            ["resize_", "tconv_", "bmm_"]
                .iter()
                .any(|p| name.starts_with(p)),
            "{DIR}/{name} is run by no test"
        );
    }
}

//! Hand-computed cases: each `want` is worked out from the encoding described in the
//! module comment, not from this code's output.

use super::*;
use flatbuffers::FlatBufferBuilder;

/// An index vector in one of the three widths the schema allows.
#[derive(Clone)]
enum Idx {
    I32(Vec<i32>),
    U16(Vec<u16>),
    U8(Vec<u8>),
}

/// One level of `dim_metadata`.
#[derive(Clone)]
enum Dim {
    Dense(i32),
    Csr(Idx, Idx),
    /// A SPARSE_CSR level whose vectors are left out.
    CsrWithoutArrays,
    /// A SPARSE_CSR level that also carries a dense_size (a block level stored sparse).
    CsrWithSize(i32, Idx, Idx),
}

fn u8s(v: &[u8]) -> Idx {
    Idx::U8(v.to_vec())
}

fn u16s(v: &[u16]) -> Idx {
    Idx::U16(v.to_vec())
}

fn i32s(v: &[i32]) -> Idx {
    Idx::I32(v.to_vec())
}

fn csr(segments: &[u8], indices: &[u8]) -> Dim {
    Dim::Csr(u8s(segments), u8s(indices))
}

/// Serializes a `SparsityParameters` table as a flatbuffer of its own, so the tests
/// go through the same generated accessors as a model file.
fn build(traversal: Option<&[i32]>, block_map: Option<&[i32]>, dims: &[Dim]) -> Vec<u8> {
    let mut b = FlatBufferBuilder::new();
    let index = |b: &mut FlatBufferBuilder<'_>, idx: &Idx| match idx {
        Idx::I32(v) => {
            let values = Some(b.create_vector(v));
            let t = fb::Int32Vector::create(b, &fb::Int32VectorArgs { values });
            (fb::SparseIndexVector::Int32Vector, t.as_union_value())
        }
        Idx::U16(v) => {
            let values = Some(b.create_vector(v));
            let t = fb::Uint16Vector::create(b, &fb::Uint16VectorArgs { values });
            (fb::SparseIndexVector::Uint16Vector, t.as_union_value())
        }
        Idx::U8(v) => {
            let values = Some(b.create_vector(v));
            let t = fb::Uint8Vector::create(b, &fb::Uint8VectorArgs { values });
            (fb::SparseIndexVector::Uint8Vector, t.as_union_value())
        }
    };
    let mut metas = Vec::new();
    for d in dims {
        let args = match d {
            Dim::Dense(size) => fb::DimensionMetadataArgs {
                format: fb::DimensionType::DENSE,
                dense_size: *size,
                ..Default::default()
            },
            Dim::Csr(segments, indices) | Dim::CsrWithSize(_, segments, indices) => {
                let (st, s) = index(&mut b, segments);
                let (it, i) = index(&mut b, indices);
                fb::DimensionMetadataArgs {
                    format: fb::DimensionType::SPARSE_CSR,
                    dense_size: match d {
                        Dim::CsrWithSize(size, ..) => *size,
                        _ => 0,
                    },
                    array_segments_type: st,
                    array_segments: Some(s),
                    array_indices_type: it,
                    array_indices: Some(i),
                }
            }
            Dim::CsrWithoutArrays => fb::DimensionMetadataArgs {
                format: fb::DimensionType::SPARSE_CSR,
                ..Default::default()
            },
        };
        metas.push(fb::DimensionMetadata::create(&mut b, &args));
    }
    let traversal_order = traversal.map(|t| b.create_vector(t));
    let block_map = block_map.map(|m| b.create_vector(m));
    let dim_metadata = Some(b.create_vector(&metas));
    let root = fb::SparsityParameters::create(
        &mut b,
        &fb::SparsityParametersArgs {
            traversal_order,
            block_map,
            dim_metadata,
        },
    );
    b.finish(root, None);
    b.finished_data().to_vec()
}

fn densify_with<T: Copy>(
    shape: &[usize],
    traversal: Option<&[i32]>,
    block_map: Option<&[i32]>,
    dims: &[Dim],
    values: &[T],
    zero: T,
    max_elements: usize,
) -> Result<Vec<T>, String> {
    let bytes = build(traversal, block_map, dims);
    let params = flatbuffers::root::<fb::SparsityParameters>(&bytes).unwrap();
    let layout = Layout::new(shape, &params, max_elements)?;
    assert_eq!(layout.value_count(), values.len(), "value count");
    layout.densify(values, zero)
}

fn densify(
    shape: &[usize],
    traversal: &[i32],
    block_map: Option<&[i32]>,
    dims: &[Dim],
    values: &[f32],
) -> Result<Vec<f32>, String> {
    densify_with(
        shape,
        Some(traversal),
        block_map,
        dims,
        values,
        0.0,
        1 << 30,
    )
}

/// The error of a layout that must not be accepted (values are not looked at).
fn refused(shape: &[usize], traversal: &[i32], block_map: Option<&[i32]>, dims: &[Dim]) -> String {
    refused_with(shape, Some(traversal), block_map, dims, 1 << 30)
}

fn refused_with(
    shape: &[usize],
    traversal: Option<&[i32]>,
    block_map: Option<&[i32]>,
    dims: &[Dim],
    max_elements: usize,
) -> String {
    let bytes = build(traversal, block_map, dims);
    let params = flatbuffers::root::<fb::SparsityParameters>(&bytes).unwrap();
    match Layout::new(shape, &params, max_elements) {
        Ok(l) => panic!("accepted, with {} values", l.value_count()),
        Err(e) => e,
    }
}

fn expect_err(err: String, needle: &str) {
    assert!(err.contains(needle), "'{needle}' not in: {err}");
}

#[test]
fn csr_matrix() {
    // Rows 0 and 2 hold values: row 0 at columns 1 and 3, row 2 at column 0.
    let got = densify(
        &[3, 4],
        &[0, 1],
        None,
        &[Dim::Dense(3), csr(&[0, 2, 2, 3], &[1, 3, 0])],
        &[1.0, 2.0, 3.0],
    )
    .unwrap();
    #[rustfmt::skip]
    let want = [
        0.0, 1.0, 0.0, 2.0,
        0.0, 0.0, 0.0, 0.0,
        3.0, 0.0, 0.0, 0.0,
    ];
    assert_eq!(got, want);
}

#[test]
fn sparse_rows_of_dense_columns() {
    // Dimension 0 sparse (rows 0 and 2 present), dimension 1 dense: whole rows stored.
    let got = densify(
        &[3, 2],
        &[0, 1],
        None,
        &[csr(&[0, 2], &[0, 2]), Dim::Dense(2)],
        &[1.0, 2.0, 3.0, 4.0],
    )
    .unwrap();
    assert_eq!(got, [1.0, 2.0, 0.0, 0.0, 3.0, 4.0]);
}

#[test]
fn sparse_dense_sparse_mix() {
    // [2, 3, 2]: dimension 0 sparse (only index 1), dimension 1 dense (3 nodes under
    // it), dimension 2 sparse per node: node 0 -> index 0, node 1 -> none,
    // node 2 -> index 1. Values land at (1,0,0) = flat 6 and (1,2,1) = flat 11.
    let got = densify(
        &[2, 3, 2],
        &[0, 1, 2],
        None,
        &[
            csr(&[0, 1], &[1]),
            Dim::Dense(3),
            csr(&[0, 1, 1, 2], &[0, 1]),
        ],
        &[5.0, 6.0],
    )
    .unwrap();
    let mut want = [0.0; 12];
    want[6] = 5.0;
    want[11] = 6.0;
    assert_eq!(got, want);
}

#[test]
fn column_major_traversal() {
    // traversal (1, 0): columns first. Column 0 has row 1, column 1 nothing, column 2
    // rows 0 and 1.
    let got = densify(
        &[2, 3],
        &[1, 0],
        None,
        &[Dim::Dense(3), csr(&[0, 1, 1, 3], &[1, 0, 1])],
        &[7.0, 8.0, 9.0],
    )
    .unwrap();
    assert_eq!(got, [0.0, 0.0, 8.0, 7.0, 0.0, 9.0]);
}

#[test]
fn four_d_traversal_permutation() {
    // [2, 1, 2, 2] traversed (3, 0, 2, 1), all dense: value k sits at the coordinate
    // whose digits in that order (sizes 2, 2, 2, 1) spell k.
    let values: Vec<f32> = (1..=8).map(|v| v as f32).collect();
    let got = densify(
        &[2, 1, 2, 2],
        &[3, 0, 2, 1],
        None,
        &[Dim::Dense(2), Dim::Dense(2), Dim::Dense(2), Dim::Dense(1)],
        &values,
    )
    .unwrap();
    let mut want = [0.0; 8];
    for (k, &v) in values.iter().enumerate() {
        let (d3, d0, d2) = (k / 4, (k / 2) % 2, k % 2);
        want[d0 * 4 + d2 * 2 + d3] = v;
    }
    assert_eq!(got, want);
}

#[test]
fn one_by_four_blocks() {
    // The converter's FULLY_CONNECTED encoding: [2, 8] with 1x4 blocks along
    // dimension 1 (2 blocks per row). Row 0 keeps block 1, row 1 both blocks.
    let values: Vec<f32> = (1..=12).map(|v| v as f32).collect();
    let got = densify(
        &[2, 8],
        &[0, 1, 2],
        Some(&[1]),
        &[Dim::Dense(2), csr(&[0, 1, 3], &[1, 0, 1]), Dim::Dense(4)],
        &values,
    )
    .unwrap();
    #[rustfmt::skip]
    let want = [
        0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0,
        5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0,
    ];
    assert_eq!(got, want);
}

#[test]
fn four_by_one_blocks() {
    // [8, 2] with 4x1 blocks along dimension 0: block row 0 keeps column 1.
    let got = densify(
        &[8, 2],
        &[0, 1, 2],
        Some(&[0]),
        &[Dim::Dense(2), csr(&[0, 1, 1], &[1]), Dim::Dense(4)],
        &[1.0, 2.0, 3.0, 4.0],
    )
    .unwrap();
    let mut want = [0.0; 16];
    for (r, v) in [1.0, 2.0, 3.0, 4.0].into_iter().enumerate() {
        want[r * 2 + 1] = v;
    }
    assert_eq!(got, want);
}

#[test]
fn two_by_two_blocks() {
    // [4, 4] in 2x2 blocks: block (0, 0) then block (1, 1), each row-major inside.
    let values: Vec<f32> = (1..=8).map(|v| v as f32).collect();
    let got = densify(
        &[4, 4],
        &[0, 1, 2, 3],
        Some(&[0, 1]),
        &[
            Dim::Dense(2),
            csr(&[0, 1, 2], &[0, 1]),
            Dim::Dense(2),
            Dim::Dense(2),
        ],
        &values,
    )
    .unwrap();
    #[rustfmt::skip]
    let want = [
        1.0, 2.0, 0.0, 0.0,
        3.0, 4.0, 0.0, 0.0,
        0.0, 0.0, 5.0, 6.0,
        0.0, 0.0, 7.0, 8.0,
    ];
    assert_eq!(got, want);
}

#[test]
fn two_by_two_blocks_traversed_column_major_inside() {
    // traversal (0, 1, 3, 2): inside a block the column index varies slowest.
    let got = densify(
        &[2, 2],
        &[0, 1, 3, 2],
        Some(&[0, 1]),
        &[Dim::Dense(1), Dim::Dense(1), Dim::Dense(2), Dim::Dense(2)],
        &[1.0, 2.0, 3.0, 4.0],
    )
    .unwrap();
    assert_eq!(got, [1.0, 3.0, 2.0, 4.0]);
}

#[test]
fn block_not_dividing_the_dimension_keeps_whole_blocks() {
    // [2, 6] with 1x4 blocks: one whole block per row; columns 4 and 5 stay zero.
    let got = densify(
        &[2, 6],
        &[0, 1, 2],
        Some(&[1]),
        &[Dim::Dense(2), csr(&[0, 1, 1], &[0]), Dim::Dense(4)],
        &[1.0, 2.0, 3.0, 4.0],
    )
    .unwrap();
    assert_eq!(
        got,
        [1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    );
}

#[test]
fn every_index_vector_width() {
    // The csr_matrix case with segments and indices in each width (and mixed).
    #[rustfmt::skip]
    let want = [
        0.0, 1.0, 0.0, 2.0,
        0.0, 0.0, 0.0, 0.0,
        3.0, 0.0, 0.0, 0.0,
    ];
    for (segments, indices) in [
        (u8s(&[0, 2, 2, 3]), u8s(&[1, 3, 0])),
        (u16s(&[0, 2, 2, 3]), u16s(&[1, 3, 0])),
        (i32s(&[0, 2, 2, 3]), i32s(&[1, 3, 0])),
        (u16s(&[0, 2, 2, 3]), u8s(&[1, 3, 0])),
        (u8s(&[0, 2, 2, 3]), i32s(&[1, 3, 0])),
    ] {
        let got = densify(
            &[3, 4],
            &[0, 1],
            None,
            &[Dim::Dense(3), Dim::Csr(segments, indices)],
            &[1.0, 2.0, 3.0],
        )
        .unwrap();
        assert_eq!(got, want);
    }
}

#[test]
fn wide_indices_need_wide_vectors() {
    // Column 300 needs 16 bits, column 70000 needs the Int32Vector.
    let got = densify(
        &[1, 301],
        &[0, 1],
        None,
        &[Dim::Dense(1), Dim::Csr(u8s(&[0, 1]), u16s(&[300]))],
        &[4.0],
    )
    .unwrap();
    assert_eq!(got[300], 4.0);
    assert_eq!(got.iter().filter(|&&v| v != 0.0).count(), 1);
    let got = densify(
        &[70_001],
        &[0],
        None,
        &[Dim::Csr(u8s(&[0, 2]), i32s(&[5, 70_000]))],
        &[1.5, 2.5],
    )
    .unwrap();
    assert_eq!((got[5], got[70_000]), (1.5, 2.5));
    assert_eq!(got.iter().filter(|&&v| v != 0.0).count(), 2);
}

#[test]
fn int8_values_and_scalars() {
    let got = densify_with(
        &[2, 2],
        Some(&[0, 1]),
        None,
        &[Dim::Dense(2), csr(&[0, 1, 2], &[1, 0])],
        &[-3i8, 7],
        0,
        1 << 30,
    )
    .unwrap();
    assert_eq!(got, [0, -3, 7, 0]);
    // A scalar has no levels and one value.
    let got = densify(&[], &[], None, &[], &[9.0]).unwrap();
    assert_eq!(got, [9.0]);
}

#[test]
fn an_index_named_twice_takes_the_later_value() {
    // LiteRT writes each leaf in turn, so the last one wins.
    let got = densify(&[3], &[0], None, &[csr(&[0, 2], &[1, 1])], &[1.0, 2.0]).unwrap();
    assert_eq!(got, [0.0, 2.0, 0.0]);
}

#[test]
fn empty_rows_and_no_values() {
    let got = densify(
        &[2, 3],
        &[0, 1],
        None,
        &[Dim::Dense(2), csr(&[0, 0, 0], &[])],
        &[],
    )
    .unwrap();
    assert_eq!(got, [0.0; 6]);
}

/// A round trip on many small tensors: encode every mix of dense and sparse levels
/// and every traversal order the way the converter's DenseToSparse does (a sparse
/// level keeps only coordinates under which some value is non-zero), then decode.
#[test]
fn round_trip_over_formats_and_orders() {
    let shape = [2usize, 3, 2];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let orders: [[usize; 3]; 6] = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for order in orders {
        for formats in 0..8u32 {
            for _ in 0..4 {
                let dense: Vec<f32> = (0..12)
                    .map(|_| match next() % 3 {
                        0 => (next() % 9) as f32 + 1.0,
                        _ => 0.0,
                    })
                    .collect();
                let sparse = |l: usize| formats >> l & 1 == 1;
                let (dims, values) = encode(&shape, &order, &sparse, &dense);
                let traversal: Vec<i32> = order.iter().map(|&d| d as i32).collect();
                let got = densify(&shape, &traversal, None, &dims, &values).unwrap();
                assert_eq!(got, dense, "order {order:?} formats {formats:03b}");
            }
        }
    }
}

/// The test's own encoder (level by level, no blocks): for each node, its prefix of
/// coordinates in traversal order.
fn encode(
    shape: &[usize],
    order: &[usize],
    sparse: &dyn Fn(usize) -> bool,
    dense: &[f32],
) -> (Vec<Dim>, Vec<f32>) {
    let flat = |coords: &[usize]| -> usize {
        // coords[l] is the coordinate of dimension order[l].
        let mut c = vec![0; shape.len()];
        for (l, &d) in order.iter().enumerate() {
            c[d] = coords[l];
        }
        c.iter().zip(shape).fold(0, |acc, (&x, &n)| acc * n + x)
    };
    // Whether any full coordinate extending `prefix` holds a non-zero.
    let any_nonzero = |prefix: &[usize]| -> bool {
        let rest = &order[prefix.len()..];
        let count: usize = rest.iter().map(|&d| shape[d]).product();
        (0..count).any(|mut k| {
            let mut coords = prefix.to_vec();
            let mut tail = vec![0; rest.len()];
            for (i, &d) in rest.iter().enumerate().rev() {
                tail[i] = k % shape[d];
                k /= shape[d];
            }
            coords.extend(tail);
            dense[flat(&coords)] != 0.0
        })
    };
    let mut nodes: Vec<Vec<usize>> = vec![vec![]];
    let mut dims = Vec::new();
    for (l, &d) in order.iter().enumerate() {
        let mut next_nodes = Vec::new();
        if sparse(l) {
            let mut segments = vec![0i32];
            let mut indices = Vec::new();
            for prefix in &nodes {
                for x in 0..shape[d] {
                    let mut p = prefix.clone();
                    p.push(x);
                    if any_nonzero(&p) {
                        indices.push(x as i32);
                        next_nodes.push(p);
                    }
                }
                segments.push(indices.len() as i32);
            }
            dims.push(Dim::Csr(Idx::I32(segments), Idx::I32(indices)));
        } else {
            for prefix in &nodes {
                for x in 0..shape[d] {
                    let mut p = prefix.clone();
                    p.push(x);
                    next_nodes.push(p);
                }
            }
            dims.push(Dim::Dense(shape[d] as i32));
        }
        nodes = next_nodes;
    }
    let values = nodes.iter().map(|c| dense[flat(c)]).collect();
    (dims, values)
}

#[test]
fn malformed_traversal_orders() {
    let dims = [Dim::Dense(2), csr(&[0, 0, 0], &[])];
    expect_err(
        refused_with(&[2, 2], None, None, &dims, 1 << 30),
        "traversal_order is missing",
    );
    expect_err(
        refused(&[2, 2], &[0], None, &dims),
        "traversal_order has 1 entries",
    );
    expect_err(
        refused(&[2, 2], &[1, 1], None, &dims),
        "lists dimension 1 twice",
    );
    expect_err(refused(&[2, 2], &[0, 2], None, &dims), "not a permutation");
    expect_err(refused(&[2, 2], &[-1, 0], None, &dims), "not a permutation");
    // A block dimension among the first `rank` entries.
    expect_err(
        refused(
            &[2, 8],
            &[0, 2, 1],
            Some(&[1]),
            &[Dim::Dense(2), Dim::Dense(4), Dim::Dense(2)],
        ),
        "not a permutation",
    );
    expect_err(
        refused(&[2, 2], &[0, 1], None, &[Dim::Dense(2)]),
        "dim_metadata has 1 entries",
    );
    let seventeen: Vec<i32> = (0..17).collect();
    expect_err(
        refused(&[1; 17], &seventeen, None, &vec![Dim::Dense(1); 17]),
        "at most 16",
    );
}

#[test]
fn malformed_block_maps() {
    let dims = [Dim::Dense(2), csr(&[0, 0, 0], &[]), Dim::Dense(4)];
    expect_err(
        refused(&[2, 8], &[0, 1, 2], Some(&[2]), &dims),
        "block_map[0] = 2 is not a dimension",
    );
    expect_err(
        refused(&[2, 8], &[0, 1, 2], Some(&[-1]), &dims),
        "block_map[0] = -1",
    );
    expect_err(
        refused(&[8], &[0, 1, 2], Some(&[0, 0]), &dims),
        "block_map has 2 entries, more than the tensor's 1",
    );
    expect_err(
        refused(
            &[4, 4],
            &[0, 1, 2, 3],
            Some(&[1, 0]),
            &[Dim::Dense(2), Dim::Dense(2), Dim::Dense(2), Dim::Dense(2)],
        ),
        "not strictly increasing",
    );
    expect_err(
        refused(
            &[2, 8],
            &[0, 1, 2],
            Some(&[1]),
            &[Dim::Dense(2), Dim::Dense(2), Dim::Dense(0)],
        ),
        "block size 0",
    );
    expect_err(
        refused(
            &[2, 8],
            &[0, 1, 2],
            Some(&[1]),
            &[
                Dim::Dense(2),
                Dim::Dense(2),
                Dim::CsrWithSize(4, u8s(&[0, 0]), u8s(&[])),
            ],
        ),
        "blocks are stored dense",
    );
    // 2x4 blocks traversed column-first inside: LiteRT's verifier would divide the
    // rows by 4 and the columns by 2, its converter by 2 and 4.
    expect_err(
        refused(
            &[4, 8],
            &[0, 1, 3, 2],
            Some(&[0, 1]),
            &[Dim::Dense(2), Dim::Dense(2), Dim::Dense(4), Dim::Dense(2)],
        ),
        "ambiguous",
    );
}

#[test]
fn malformed_dense_levels() {
    expect_err(
        refused(&[3, 4], &[0, 1], None, &[Dim::Dense(2), Dim::Dense(4)]),
        "dim_metadata[0] (dimension 0, DENSE) has dense_size 2, but that dimension has 3",
    );
    expect_err(
        refused(&[3, 4], &[0, 1], None, &[Dim::Dense(-3), Dim::Dense(4)]),
        "dense_size -3",
    );
    // The block's outer dimension has 8 / 4 = 2 positions, not 8.
    expect_err(
        refused(
            &[2, 8],
            &[0, 1, 2],
            Some(&[1]),
            &[Dim::Dense(2), Dim::Dense(8), Dim::Dense(4)],
        ),
        "dense_size 8, but that dimension has 2",
    );
}

#[test]
fn malformed_segments() {
    let case = |segments: Idx, indices: Idx| {
        refused(
            &[3, 4],
            &[0, 1],
            None,
            &[Dim::Dense(3), Dim::Csr(segments, indices)],
        )
    };
    expect_err(
        refused(
            &[3, 4],
            &[0, 1],
            None,
            &[Dim::Dense(3), Dim::CsrWithoutArrays],
        ),
        "array_segments is missing",
    );
    expect_err(
        case(u8s(&[0, 2, 3]), u8s(&[1, 3, 0])),
        "array_segments has 3 entries, but the level above has 3 nodes (needs 4)",
    );
    expect_err(
        case(u8s(&[1, 2, 2, 3]), u8s(&[1, 3, 0])),
        "array_segments starts at 1",
    );
    expect_err(
        case(u8s(&[0, 2, 1, 3]), u8s(&[1, 3, 0])),
        "array_segments[2] = 1 is less than array_segments[1] = 2",
    );
    expect_err(
        case(i32s(&[0, -2, 2, 3]), u8s(&[1, 3, 0])),
        "array_segments[1] = -2",
    );
    expect_err(
        case(u8s(&[0, 2, 2, 4]), u8s(&[1, 3, 0])),
        "array_segments ends at 4, but array_indices has 3 entries",
    );
    expect_err(
        case(u16s(&[0, 2, 2, 2]), u8s(&[1, 3, 0])),
        "array_segments ends at 2",
    );
}

#[test]
fn malformed_indices() {
    let case = |indices: Idx| {
        refused(
            &[3, 4],
            &[0, 1],
            None,
            &[Dim::Dense(3), Dim::Csr(u8s(&[0, 2, 2, 3]), indices)],
        )
    };
    expect_err(
        case(u8s(&[1, 4, 0])),
        "dim_metadata[1] (dimension 1, SPARSE_CSR): array_indices[1] = 4 is outside the \
         dimension's 4 positions",
    );
    expect_err(case(i32s(&[1, -1, 0])), "array_indices[1] = -1");
    expect_err(case(u16s(&[1, 3, 60_000])), "array_indices[2] = 60000");
    // Inside a 1x4 block layout, the sparse level counts blocks: 8 / 4 = 2.
    expect_err(
        refused(
            &[2, 8],
            &[0, 1, 2],
            Some(&[1]),
            &[Dim::Dense(2), csr(&[0, 1, 1], &[2]), Dim::Dense(4)],
        ),
        "array_indices[0] = 2 is outside the dimension's 2 positions",
    );
}

#[test]
fn sizes_beyond_the_limit() {
    // Repeated indices widen the tree past the dense size: 3 rows of 4 in a 2x4
    // tensor, against a limit of 8 elements.
    expect_err(
        refused_with(
            &[2, 4],
            Some(&[0, 1]),
            None,
            &[csr(&[0, 3], &[0, 0, 0]), Dim::Dense(4)],
            8,
        ),
        "wider than",
    );
    expect_err(
        refused_with(
            &[4, 4],
            Some(&[0, 1]),
            None,
            &[Dim::Dense(4), Dim::Dense(4)],
            8,
        ),
        "too large",
    );
}

#[test]
fn value_count_must_match() {
    let bytes = build(
        Some(&[0, 1]),
        None,
        &[Dim::Dense(3), csr(&[0, 2, 2, 3], &[1, 3, 0])],
    );
    let params = flatbuffers::root::<fb::SparsityParameters>(&bytes).unwrap();
    let layout = Layout::new(&[3, 4], &params, 1 << 30).unwrap();
    assert_eq!(layout.value_count(), 3);
    expect_err(
        layout.densify(&[1.0f32, 2.0], 0.0).unwrap_err(),
        "2 values stored, but the sparsity metadata addresses 3",
    );
}

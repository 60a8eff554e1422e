//! Densifies TFLite sparse constants (a tensor's `SparsityParameters`) into plain dense
//! values, as LiteRT's format converter (`sparsity_format_converter.cc`) does when it runs
//! a DENSIFY op or a kernel that cannot use the sparse form.
//!
//! Why at load time: a model converted with `tf.lite.Optimize.EXPERIMENTAL_SPARSITY`
//! stores a weight as its non-zero values plus index metadata, and either a DENSIFY op
//! turns it dense before the op that reads it, or the op (FULLY_CONNECTED with 1x4 /
//! 1x16 blocks, DEQUANTIZE of float16) reads the sparse tensor itself. Expanding the
//! constant once here makes every later stage (executor, quantizer, writer) see an
//! ordinary dense constant, the weight the converter started from.
//!
//! The encoding. A tensor of rank `n` with a `k`-dimensional block is seen as `n + k`
//! *expanded* dimensions: original dimension `d` keeps `shape[d]` positions, or
//! `shape[d] / b` when block dimension `n + j` (of size `b`) maps to it
//! (`block_map[j] == d`); the block dimensions then address positions inside one block,
//! so the dense coordinate along `d` is `outer * b + inner`. `traversal_order` lists the
//! expanded dimensions in storage order, one *level* each, and `dim_metadata[l]`
//! describes level `l`. The levels form a tree whose leaves, in depth-first order, are
//! the stored values:
//!
//! - a DENSE level has `dense_size` children per parent node, at coordinates
//!   `0..dense_size`; child `i` of node `p` is node `p * dense_size + i` of the level;
//! - a SPARSE_CSR level gives node `p` the children `array_segments[p] ..
//!   array_segments[p + 1]`, child `j` sitting at coordinate `array_indices[j]`; its
//!   node number is `j`.
//!
//! Positions no leaf reaches are zero. A dense coordinate is a sum of each level's
//! coordinate times a fixed stride, so the walk carries one running offset per level.
//!
//! Every number in the metadata comes from the file: [`Layout::new`] checks all of it
//! (shapes of the tree, segment order and bounds, index bounds, sizes and overflow)
//! before anything is allocated from it, and returns a reason instead of panicking.

use super::fb;

/// Most levels (dimensions plus block dimensions) a sparse tensor may have. The walk's
/// cost grows with the number of levels times the nodes on each; the converter writes
/// rank 2 or 4 tensors with at most one block dimension, so 16 is generous, and a file
/// with a long chain of size-1 dimensions cannot make a small file cost a long walk.
const MAX_LEVELS: usize = 16;

/// One index vector of a sparse level, in the integer width the file chose (the
/// converter picks the narrowest that holds the largest value).
#[derive(Clone, Copy)]
enum IndexArray<'a> {
    I32(flatbuffers::Vector<'a, i32>),
    U16(flatbuffers::Vector<'a, u16>),
    U8(&'a [u8]),
}

impl<'a> IndexArray<'a> {
    fn len(&self) -> usize {
        match self {
            IndexArray::I32(v) => v.len(),
            IndexArray::U16(v) => v.len(),
            IndexArray::U8(v) => v.len(),
        }
    }

    /// Element `i`, or `None` past the end (never a panic: flatbuffers' own `get`
    /// asserts). Signed, because an Int32Vector may hold negative values.
    fn get(&self, i: usize) -> Option<i64> {
        if i >= self.len() {
            return None;
        }
        Some(match self {
            IndexArray::I32(v) => i64::from(v.get(i)),
            IndexArray::U16(v) => i64::from(v.get(i)),
            IndexArray::U8(v) => i64::from(v[i]),
        })
    }

    /// Element `i` as a position, for arrays [`Layout::new`] has already checked to be
    /// non-negative and in range.
    fn at(&self, i: usize) -> Result<usize, String> {
        self.get(i)
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| format!("index vector read at {i} out of its checked range"))
    }

    /// Which union member `kind` names, or why it cannot be used.
    fn from_union(
        kind: fb::SparseIndexVector,
        meta: &fb::DimensionMetadata<'a>,
        segments: bool,
    ) -> Result<Self, String> {
        let what = if segments {
            "array_segments"
        } else {
            "array_indices"
        };
        let missing = || format!("{what} is missing");
        let array = match kind {
            fb::SparseIndexVector::Int32Vector => {
                let table = if segments {
                    meta.array_segments_as_int_32vector()
                } else {
                    meta.array_indices_as_int_32vector()
                };
                IndexArray::I32(table.and_then(|t| t.values()).ok_or_else(missing)?)
            }
            fb::SparseIndexVector::Uint16Vector => {
                let table = if segments {
                    meta.array_segments_as_uint_16vector()
                } else {
                    meta.array_indices_as_uint_16vector()
                };
                IndexArray::U16(table.and_then(|t| t.values()).ok_or_else(missing)?)
            }
            fb::SparseIndexVector::Uint8Vector => {
                let table = if segments {
                    meta.array_segments_as_uint_8vector()
                } else {
                    meta.array_indices_as_uint_8vector()
                };
                IndexArray::U8(table.and_then(|t| t.values()).ok_or_else(missing)?)
            }
            fb::SparseIndexVector::NONE => return Err(missing()),
            other => return Err(format!("{what} has unknown index vector type {}", other.0)),
        };
        Ok(array)
    }
}

/// One level of the tree, ready to walk.
enum Level<'a> {
    Dense {
        size: usize,
        stride: usize,
    },
    Sparse {
        segments: IndexArray<'a>,
        indices: IndexArray<'a>,
        stride: usize,
    },
}

/// Where each stored value of a sparse tensor goes in its dense form: the checked
/// metadata, borrowed from the file.
pub(crate) struct Layout<'a> {
    levels: Vec<Level<'a>>,
    /// How many values the buffer must hold (the leaves of the tree).
    values: usize,
    /// Elements of the dense tensor.
    dense_len: usize,
}

impl<'a> Layout<'a> {
    /// Checks `sparsity` against the dense `shape` (already bounded by the reader: its
    /// product is at most `max_elements`). The reason of an error says which field is
    /// wrong and how.
    pub(crate) fn new(
        shape: &[usize],
        sparsity: &fb::SparsityParameters<'a>,
        max_elements: usize,
    ) -> Result<Self, String> {
        let rank = shape.len();
        let traversal = sparsity
            .traversal_order()
            .ok_or("traversal_order is missing")?;
        let metadata = sparsity.dim_metadata().ok_or("dim_metadata is missing")?;
        // An absent block_map means no blocks.
        let block_map: Vec<i32> = sparsity
            .block_map()
            .map(|v| v.iter().collect())
            .unwrap_or_default();
        if block_map.len() > rank {
            return Err(format!(
                "block_map has {} entries, more than the tensor's {rank} dimensions",
                block_map.len()
            ));
        }
        let levels = rank + block_map.len();
        if levels > MAX_LEVELS {
            return Err(format!(
                "{levels} levels (dimensions plus block dimensions); qdbg reads sparse \
                 tensors of at most {MAX_LEVELS}"
            ));
        }
        if traversal.len() != levels {
            return Err(format!(
                "traversal_order has {} entries, but a rank-{rank} tensor with {} block \
                 dimensions needs {levels}",
                traversal.len(),
                block_map.len()
            ));
        }
        if metadata.len() != levels {
            return Err(format!(
                "dim_metadata has {} entries, but traversal_order has {levels}",
                metadata.len()
            ));
        }
        let order: Vec<i32> = traversal.iter().collect();
        let order = check_traversal(&order, rank)?;

        // Block dimension j maps to original dimension block_map[j]. LiteRT's converter
        // pairs them in increasing order of original dimension and gives a dimension at
        // most one block; other maps make it read sizes of 0, so they are refused.
        let mut blocked_dims = Vec::with_capacity(block_map.len());
        for (j, &d) in block_map.iter().enumerate() {
            let d = usize::try_from(d)
                .ok()
                .filter(|&d| d < rank)
                .ok_or_else(|| {
                    format!("block_map[{j}] = {d} is not a dimension of a rank-{rank} tensor")
                })?;
            if blocked_dims.last().is_some_and(|&prev| prev >= d) {
                return Err(format!(
                    "block_map {block_map:?} is not strictly increasing (each dimension takes \
                     at most one block, listed in dimension order)"
                ));
            }
            blocked_dims.push(d);
        }

        // The level that stores each expanded dimension.
        let mut level_of = vec![0usize; levels];
        for (l, &e) in order.iter().enumerate() {
            level_of[e] = l;
        }
        // Block sizes live in their level's dense_size. LiteRT's converter reads block
        // j's size from dim_metadata[traversal_order[rank + j]] and its verifier from
        // dim_metadata[rank + j]; both equal the size at block j's own level when the
        // blocks are traversed in order (what converters write), and for two blocks of
        // equal size in either order. A file where the readings differ means different
        // things to different readers: refuse it rather than guess.
        let mut block_sizes = Vec::with_capacity(blocked_dims.len());
        for j in 0..blocked_dims.len() {
            let l = level_of[rank + j];
            let meta = metadata.get(l);
            if meta.format() != fb::DimensionType::DENSE {
                return Err(format!(
                    "dim_metadata[{l}] (block dimension {}) is not DENSE; blocks are stored dense",
                    rank + j
                ));
            }
            let size = meta.dense_size();
            if size < 1 {
                return Err(format!(
                    "dim_metadata[{l}] (block dimension {}) has block size {size}",
                    rank + j
                ));
            }
            let converter = metadata.get(order[rank + j]).dense_size();
            let verifier = metadata.get(rank + j).dense_size();
            if converter != size || verifier != size {
                return Err(format!(
                    "block dimension {} has size {size} at level {l}, but LiteRT's densifier \
                     would read {converter} (and its verifier {verifier}) for it: the block \
                     dimensions' traversal order is ambiguous",
                    rank + j
                ));
            }
            block_sizes.push(size as usize);
        }

        // Sizes and dense strides of the expanded dimensions.
        let dense_len = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .filter(|&n| n <= max_elements)
            .ok_or_else(|| format!("the dense shape {shape:?} is too large"))?;
        let mut row_stride = vec![1usize; rank];
        for d in (0..rank.saturating_sub(1)).rev() {
            // Bounded by dense_len, which did not overflow.
            row_stride[d] = row_stride[d + 1] * shape[d + 1];
        }
        let mut extent = shape.to_vec();
        let mut stride = row_stride.clone();
        extent.resize(levels, 0);
        stride.resize(levels, 0);
        for (j, (&d, &b)) in blocked_dims.iter().zip(&block_sizes).enumerate() {
            // As LiteRT: a dimension not divisible by its block keeps only whole blocks
            // (the remainder is unreachable, hence zero).
            extent[d] = shape[d] / b;
            stride[d] = row_stride[d]
                .checked_mul(b)
                .ok_or_else(|| format!("block size {b} of dimension {d} overflows"))?;
            extent[rank + j] = b;
            stride[rank + j] = row_stride[d];
        }

        // The tree, level by level: `nodes` counts the nodes of the level above.
        let mut walk = Vec::with_capacity(levels);
        let mut nodes = 1usize;
        for (l, &e) in order.iter().enumerate() {
            let meta = metadata.get(l);
            let dim = if e < rank {
                format!("dimension {e}")
            } else {
                format!("block dimension {e}")
            };
            match meta.format() {
                fb::DimensionType::DENSE => {
                    let size = meta.dense_size();
                    if usize::try_from(size).ok() != Some(extent[e]) {
                        return Err(format!(
                            "dim_metadata[{l}] ({dim}, DENSE) has dense_size {size}, but that \
                             dimension has {} positions",
                            extent[e]
                        ));
                    }
                    nodes = nodes
                        .checked_mul(extent[e])
                        .filter(|&n| n <= max_elements)
                        .ok_or_else(|| {
                            format!(
                                "dim_metadata[{l}] ({dim}) makes the tree wider than 2^30 nodes"
                            )
                        })?;
                    walk.push(Level::Dense {
                        size: extent[e],
                        stride: stride[e],
                    });
                }
                fb::DimensionType::SPARSE_CSR => {
                    let at = |m| format!("dim_metadata[{l}] ({dim}, SPARSE_CSR): {m}");
                    let segments = IndexArray::from_union(meta.array_segments_type(), &meta, true)
                        .map_err(at)?;
                    let indices = IndexArray::from_union(meta.array_indices_type(), &meta, false)
                        .map_err(at)?;
                    check_segments(&segments, nodes, indices.len()).map_err(at)?;
                    check_indices(&indices, extent[e]).map_err(at)?;
                    nodes = indices.len();
                    walk.push(Level::Sparse {
                        segments,
                        indices,
                        stride: stride[e],
                    });
                }
                other => {
                    return Err(format!(
                        "dim_metadata[{l}] ({dim}) has unknown format {}",
                        other.0
                    ));
                }
            }
        }
        Ok(Layout {
            levels: walk,
            values: nodes,
            dense_len,
        })
    }

    /// How many values the tensor's buffer must hold.
    pub(crate) fn value_count(&self) -> usize {
        self.values
    }

    /// Elements of the dense tensor [`Layout::densify`] allocates.
    pub(crate) fn dense_len(&self) -> usize {
        self.dense_len
    }

    /// The dense tensor: `values` (in storage order) placed at their positions, `zero`
    /// everywhere else. A position named twice takes the later value, as in LiteRT.
    pub(crate) fn densify<T: Copy>(&self, values: &[T], zero: T) -> Result<Vec<T>, String> {
        if values.len() != self.values {
            return Err(format!(
                "{} values stored, but the sparsity metadata addresses {}",
                values.len(),
                self.values
            ));
        }
        let mut dense = vec![zero; self.dense_len];
        let depth = self.levels.len();
        if depth == 0 {
            // A scalar: one value, no levels.
            if let (Some(slot), Some(&v)) = (dense.first_mut(), values.first()) {
                *slot = v;
            }
            return Ok(dense);
        }
        // Depth-first walk without recursion. Per level: the node being visited, the end
        // of its siblings' range, where that range started (a dense level's coordinate is
        // the distance from it), and the dense offset accumulated above the level.
        let mut node = vec![0usize; depth];
        let mut end = vec![0usize; depth];
        let mut first = vec![0usize; depth];
        let mut base = vec![0usize; depth];
        let mut next_value = 0usize;
        let mut level = 0usize;
        self.enter(0, 0, &mut node, &mut end, &mut first)?;
        loop {
            if node[level] >= end[level] {
                if level == 0 {
                    break;
                }
                level -= 1;
                node[level] += 1;
                continue;
            }
            let n = node[level];
            let offset = base[level] + self.coordinate(level, n, first[level])?;
            if level + 1 == depth {
                let slot = dense
                    .get_mut(offset)
                    .ok_or_else(|| format!("value lands at {offset}, past the dense tensor"))?;
                *slot = *values
                    .get(next_value)
                    .ok_or("more leaves than stored values")?;
                next_value += 1;
                node[level] += 1;
            } else {
                level += 1;
                base[level] = offset;
                self.enter(level, n, &mut node, &mut end, &mut first)?;
            }
        }
        Ok(dense)
    }

    /// Points `level` at the children of node `parent` of the level above.
    fn enter(
        &self,
        level: usize,
        parent: usize,
        node: &mut [usize],
        end: &mut [usize],
        first: &mut [usize],
    ) -> Result<(), String> {
        let (lo, hi) = match &self.levels[level] {
            Level::Dense { size, .. } => {
                // parent < nodes of the level above, and nodes * size was checked.
                let lo = parent * size;
                (lo, lo + size)
            }
            Level::Sparse { segments, .. } => (segments.at(parent)?, segments.at(parent + 1)?),
        };
        node[level] = lo;
        end[level] = hi;
        first[level] = lo;
        Ok(())
    }

    /// The dense offset contributed by node `n` of `level`.
    fn coordinate(&self, level: usize, n: usize, first: usize) -> Result<usize, String> {
        // Coordinates are below their dimension's extent, so each term is below the
        // dense length and the sum of one term per level cannot overflow.
        Ok(match &self.levels[level] {
            Level::Dense { stride, .. } => (n - first) * stride,
            Level::Sparse {
                indices, stride, ..
            } => indices.at(n)? * stride,
        })
    }
}

/// `order` must list the `rank` original dimensions first (in any order), then the block
/// dimensions `rank..` (in any order). Returns it as positions.
fn check_traversal(order: &[i32], rank: usize) -> Result<Vec<usize>, String> {
    let levels = order.len();
    let mut seen = vec![false; levels];
    let mut out = Vec::with_capacity(levels);
    for (l, &e) in order.iter().enumerate() {
        let (lo, hi) = if l < rank { (0, rank) } else { (rank, levels) };
        let e = usize::try_from(e)
            .ok()
            .filter(|e| (lo..hi).contains(e))
            .ok_or_else(|| {
                format!(
                    "traversal_order {order:?} is not a permutation of the dimensions \
                     0..{rank} followed by the block dimensions {rank}..{levels} (entry {l} \
                     is {e})"
                )
            })?;
        if std::mem::replace(&mut seen[e], true) {
            return Err(format!(
                "traversal_order {order:?} lists dimension {e} twice"
            ));
        }
        out.push(e);
    }
    Ok(out)
}

/// `segments` splits `indices` among the `nodes` nodes of the level above, in order:
/// one more entry than nodes, starting at 0, never decreasing, ending at the number of
/// indices.
fn check_segments(segments: &IndexArray, nodes: usize, indices: usize) -> Result<(), String> {
    if nodes.checked_add(1) != Some(segments.len()) {
        return Err(format!(
            "array_segments has {} entries, but the level above has {nodes} nodes (needs {})",
            segments.len(),
            nodes.saturating_add(1)
        ));
    }
    let mut prev = 0i64;
    for i in 0..segments.len() {
        let s = segments
            .get(i)
            .ok_or("array_segments is shorter than it says")?;
        if i == 0 && s != 0 {
            return Err(format!("array_segments starts at {s}, not 0"));
        }
        if s < prev {
            return Err(format!(
                "array_segments[{i}] = {s} is less than array_segments[{}] = {prev}",
                i - 1
            ));
        }
        prev = s;
    }
    if usize::try_from(prev).ok() != Some(indices) {
        return Err(format!(
            "array_segments ends at {prev}, but array_indices has {indices} entries"
        ));
    }
    Ok(())
}

/// Every index is a position of a dimension with `extent` positions.
fn check_indices(indices: &IndexArray, extent: usize) -> Result<(), String> {
    for i in 0..indices.len() {
        let v = indices
            .get(i)
            .ok_or("array_indices is shorter than it says")?;
        if usize::try_from(v).map_or(true, |v| v >= extent) {
            return Err(format!(
                "array_indices[{i}] = {v} is outside the dimension's {extent} positions"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
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
    fn refused(
        shape: &[usize],
        traversal: &[i32],
        block_map: Option<&[i32]>,
        dims: &[Dim],
    ) -> String {
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
}

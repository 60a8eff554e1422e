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
mod tests;

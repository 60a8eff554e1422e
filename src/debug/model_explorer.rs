//! Per-layer statistics as node data for Google's Model Explorer, the graph viewer LiteRT
//! users have: open the float model there, load the file from "Node data", and each op is
//! coloured by its layer's metric (`rmse/scale` unless told otherwise).
//!
//! The file is Model Explorer's single-graph node data (`GraphNodeData` in its Python
//! `node_data_builder`, every field that writes, defaults included), which the viewer
//! applies to the graph on screen. Results are keyed by node id, and the TFLite adapter
//! names an op's node by its index in the subgraph's operator list: the float model's
//! operator index (`Node::source_index`, which stays the file's even where the reader
//! folded float16 DEQUANTIZEs away).

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Map, Value};

use super::report::{metric_value, LAYER_METRICS};
use super::LayerStats;
use crate::error::{Error, Result};
use crate::graph::Graph;

/// Whether a larger value of `metric` means a worse layer (errors) or a better one
/// (agreement: SQNR, cosine, correlation).
fn larger_is_worse(metric: &str) -> bool {
    !matches!(metric, "sqnr_db" | "cosine" | "correlation")
}

/// The node data document for `layers` of a debug run on `float_graph`, coloured by
/// `metric`. Layers whose metric is missing or not finite (JSON has no NaN) get no value;
/// an op with several rows (SPLIT) shows its worst output.
pub fn node_data(layers: &[LayerStats], float_graph: &Graph, metric: &str) -> Result<Value> {
    if !LAYER_METRICS.contains(&metric) {
        return Err(Error::usage(
            "--model-explorer-metric",
            format!(
                "unknown metric '{metric}'; use one of {}",
                LAYER_METRICS.join(", ")
            ),
        ));
    }
    let worse = larger_is_worse(metric);
    let mut by_node: BTreeMap<usize, f64> = BTreeMap::new();
    for layer in layers {
        let Some(value) = metric_value(layer, metric) else {
            continue;
        };
        if !value.is_finite() {
            continue;
        }
        let node = float_graph
            .nodes
            .get(layer.info.float_node)
            .ok_or_else(|| {
                Error::Internal(format!(
                    "layer '{}' names float node {}, which the float graph does not have",
                    layer.info.tensor_name, layer.info.float_node
                ))
            })?;
        by_node
            .entry(node.source_index)
            .and_modify(|v| {
                if (value > *v) == worse {
                    *v = value
                }
            })
            .or_insert(value);
    }
    let results: Map<String, Value> = by_node
        .iter()
        .map(|(index, value)| (index.to_string(), json!({ "value": value })))
        .collect();
    let (thresholds, gradient) = colours(metric, by_node.values().copied());
    Ok(json!({
        "results": results,
        "name": format!("qdbg {metric}"),
        "thresholds": thresholds,
        "gradient": gradient,
        "hideInAggregatedStatsTable": false,
        "hideInChildrenStatsTable": false,
        "showExpandedSummaryOnGroupNode": false,
        "showLabelCountColumnsInChildrenStatsTable": false,
    }))
}

/// `rmse/scale` has fixed bands with a meaning: up to 0.35 is rounding noise (uniform
/// rounding gives 0.289), up to 0.7 is the tutorial's threshold, then worse and bad. Other
/// metrics get a green-to-red gradient over their own span (Model Explorer maps stop 0 to
/// the smallest value), reversed where larger is better.
fn colours(metric: &str, values: impl Iterator<Item = f64>) -> (Value, Value) {
    const GOOD: &str = "#4caf50";
    const FAIR: &str = "#ffeb3b";
    const POOR: &str = "#ff9800";
    const BAD: &str = "#f44336";
    if metric == "rmse/scale" {
        // A node above the last threshold would be left uncoloured: end at the largest.
        let top = values.fold(1.5f64, f64::max);
        let bands = [(0.35, GOOD), (0.7, FAIR), (1.5, POOR), (top, BAD)];
        let thresholds = bands
            .iter()
            .map(|(value, colour)| json!({ "value": value, "bgColor": colour }))
            .collect();
        return (Value::Array(thresholds), json!([]));
    }
    let (low, high) = if larger_is_worse(metric) {
        (GOOD, BAD)
    } else {
        (BAD, GOOD)
    };
    let gradient = json!([
        { "stop": 0, "bgColor": low },
        { "stop": 0.5, "bgColor": FAIR },
        { "stop": 1, "bgColor": high },
    ]);
    (json!([]), gradient)
}

/// Writes [`node_data`] to `path` (atomically).
pub fn write_node_data(
    path: &Path,
    layers: &[LayerStats],
    float_graph: &Graph,
    metric: &str,
) -> Result<()> {
    let doc = node_data(layers, float_graph, metric)?;
    let text = serde_json::to_string_pretty(&doc).map_err(|e| Error::Internal(e.to_string()))?;
    crate::atomic::write_bytes_atomic(path, text.as_bytes())
}

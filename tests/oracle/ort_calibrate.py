"""ONNX Runtime's percentile and entropy thresholds on histograms made by qdbg.

    python ort_calibrate.py REQUEST.json > ANSWER.json

REQUEST: {"percentiles": [99.9, ...], "quantized_bins": 128, "entropy": true,
          "histograms": [{"name": ..., "counts": [...], "edges": [...], "min": m, "max": M}]}
ANSWER:  {"NAME": {"percentile": {"99.9": [lo, hi], ...}, "entropy": [lo, hi],
                   "entropy_divergences": [kl or null when infinite, ...]}}
(the entropy keys only when the request's "entropy" is true: about a second a histogram)

The thresholds come from ONNX Runtime's own HistogramCollector (non-symmetric mode), its
histogram replaced by qdbg's: `compute_percentile` and `get_entropy_threshold`. The
divergence of every entropy candidate (the thresholds ONNX Runtime compares) is computed
with ONNX Runtime's `smooth_distribution` and `entropy`, so the Rust test can tell a float32
near-tie from a real disagreement; this script checks that its candidate loop picks the
threshold ONNX Runtime picks.
"""

import contextlib
import json
import sys

import numpy as np
from onnxruntime.quantization.calibrate import HistogramCollector, entropy
from onnxruntime.quantization.quant_utils import smooth_distribution


def collector(histogram, percentile, quantized_bins):
    c = HistogramCollector(
        method="entropy",
        symmetric=False,
        num_bins=len(histogram[0]),
        num_quantized_bins=quantized_bins,
        percentile=percentile,
        scenario="same",
    )
    c.histogram_dict = {"t": histogram}
    return c


def divergences(hist, quantized_bins):
    """KL divergence of each candidate ONNX Runtime's entropy search tries, in its order."""
    bins = hist.size
    center = bins // 2
    out = []
    for half in range(quantized_bins // 2, center + 1):
        lo, hi = center - half, min(center + half + 1, bins)
        kept = hist[lo:hi]
        reference = kept.copy()
        reference[0] += hist[:lo].sum()
        reference[-1] += hist[hi:].sum()
        per_group = kept.size // quantized_bins
        spread = np.zeros(kept.size, dtype=np.int64)
        for g in range(quantized_bins):
            a, b = g * per_group, (g + 1) * per_group
            total = kept[a:b].sum()
            if g == quantized_bins - 1:
                total += kept[quantized_bins * per_group :].sum()
            nonzero = int((reference[a:b] != 0).sum())
            if nonzero:
                spread[a:b] = total / nonzero
        p = smooth_distribution(reference)
        q = smooth_distribution(spread)
        out.append(float("inf") if p is None or q is None else float(np.float32(entropy(p, q))))
    return out


def main():
    with open(sys.argv[1]) as f:
        request = json.load(f)
    answer = {}
    for h in request["histograms"]:
        counts = np.asarray(h["counts"], dtype=np.int64)
        edges = np.asarray(h["edges"], dtype=np.float32)
        lo, hi = np.float32(h["min"]), np.float32(h["max"])
        histogram = (counts, edges, lo, hi, np.float32(edges[-1]))
        qbins = request["quantized_bins"]
        result = {"percentile": {}}
        # ONNX Runtime prints progress on stdout: keep stdout for the answer.
        with contextlib.redirect_stdout(sys.stderr):
            for p in request["percentiles"]:
                t = collector(histogram, p, qbins).compute_percentile()["t"]
                result["percentile"][repr(p)] = [float(t[0]), float(t[1])]
            if request.get("entropy", True):
                t = collector(histogram, 99.99, qbins).get_entropy_threshold(histogram, qbins)
        answer[h["name"]] = result
        if not request.get("entropy", True):
            continue
        result["entropy"] = [float(t[0]), float(t[1])]
        kl = divergences(counts, qbins)
        best = int(np.argmin(kl))
        center = counts.size // 2
        half = qbins // 2 + best
        mine = (
            max(float(edges[center - half]), float(lo)),
            min(float(edges[min(center + half + 1, counts.size)]), float(hi)),
        )
        assert mine == tuple(result["entropy"]), (h["name"], mine, result["entropy"])
        # JSON has no infinity: a candidate ONNX Runtime cannot score is null.
        result["entropy_divergences"] = [k if np.isfinite(k) else None for k in kl]
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()

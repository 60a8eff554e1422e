"""Writes how Model Explorer's TFLite adapter names a model's op nodes.

    python node_ids.py MODEL.tflite OUT.json

OUT.json: {"model": file name, "graphs": [{"id": graph id, "ops": [{"id": node id,
"label": op label, "outputs": [output tensor names]}]}]}, the op nodes only (the adapter
also adds GraphInputs, GraphOutputs and one pseudo_const node per constant).
"""

import json
import os
import sys

import ai_edge_model_explorer_adapter as adapter

AUXILIARY = {"GraphInputs", "GraphOutputs", "pseudo_const"}


def main(model, out):
    collections = json.loads(
        adapter.ConvertFlatbufferDirectlyToJson(adapter.VisualizeConfig(), model)
    )
    graphs = []
    for collection in collections:
        for graph in collection["subgraphs"]:
            ops = []
            for node in graph["nodes"]:
                if node["label"] in AUXILIARY:
                    continue
                outputs = []
                for meta in node.get("outputsMetadata", []):
                    attrs = {a["key"]: a["value"] for a in meta["attrs"]}
                    outputs.append(attrs["tensor_name"])
                ops.append({"id": node["id"], "label": node["label"], "outputs": outputs})
            graphs.append({"id": graph["id"], "ops": ops})
    doc = {"model": os.path.basename(model), "graphs": graphs}
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(tmp, out)
    print(f"{out}: {sum(len(g['ops']) for g in graphs)} op nodes", file=sys.stderr)


if __name__ == "__main__":
    main(*sys.argv[1:])

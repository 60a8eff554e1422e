"""Rebuilds a node data file with Model Explorer's own node_data_builder and prints it.

    python model_explorer_node_data.py NODE_DATA.json

Every field goes through the builder's dataclasses (GraphNodeData, NodeDataResult,
ThresholdItem, GradientItem), which refuse unknown or missing fields; the builder's
to_json_string() is printed, for the caller to compare with the file.
"""

import importlib.util
import json
import sys
import types

# Only node_data_builder is wanted: importing the package itself would start on its web
# server's dependencies, which the oracle venv does not install.
spec = importlib.util.find_spec("model_explorer")
package = types.ModuleType("model_explorer")
package.__path__ = list(spec.submodule_search_locations)
sys.modules["model_explorer"] = package
from model_explorer import node_data_builder as ndb  # noqa: E402


def main(path):
    with open(path) as f:
        doc = json.load(f)
    fields = dict(doc)
    fields["results"] = {k: ndb.NodeDataResult(**v) for k, v in doc["results"].items()}
    fields["thresholds"] = [ndb.ThresholdItem(**t) for t in doc.get("thresholds", [])]
    fields["gradient"] = [ndb.GradientItem(**g) for g in doc.get("gradient", [])]
    print(ndb.GraphNodeData(**fields).to_json_string())


if __name__ == "__main__":
    main(sys.argv[1])

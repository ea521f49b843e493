#!/usr/bin/python3
"""Writes what ONNX's own Python API reports about each model in a folder, as JSON.

The C++ tests compare `slmopt inspect --json` against these numbers, so the
parameter counts and op histograms are checked against an independent reader.
Usage: model_facts.py MODEL_DIR > facts.json
"""
import collections
import json
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper


def count_subgraph_nodes(graph):
    total = 0
    for node in graph.node:
        for attr in node.attribute:
            subgraphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
            for g in subgraphs:
                total += len(g.node) + count_subgraph_nodes(g)
    return total


def dims(value_info):
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]


def facts(path):
    model = onnx.load(path)
    g = model.graph
    params = {}
    for init in g.initializer:
        params[init.name] = int(np.prod(init.dims, dtype=np.int64)) if len(init.dims) else 1
    return {
        "params": int(sum(params.values())),
        "initializers": params,
        "bytes": int(sum(numpy_helper.to_array(i).nbytes for i in g.initializer)),
        "ops": dict(collections.Counter(n.op_type for n in g.node)),
        "nodes": len(g.node),
        "subgraph_nodes": count_subgraph_nodes(g),
        "opsets": {(o.domain or "ai.onnx"): o.version for o in model.opset_import},
        "inputs": [{"name": v.name, "shape": dims(v)} for v in g.input],
        "outputs": [{"name": v.name, "shape": dims(v)} for v in g.output],
    }


def main():
    folder = sys.argv[1]
    out = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".onnx"):
            out[name] = facts(os.path.join(folder, name))
    json.dump(out, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()

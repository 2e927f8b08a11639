"""A one-node-deep edit of Kokoro's ONNX graph: the two padding tokens get one frame each.

Kokoro predicts a duration for the padding token (id 0) at both ends of the input, and the
decoder then renders ~0.3 s of silence at the start and more at the end of every chunk. The
front-end trims that silence anyway, and the decoder's cost grows with the number of frames, so
rendering it is pure waste: for a short first chunk it is half the work. The edit inserts
`dur - (dur - 1) * (tokens == 0)` after the duration cast; the speech frames are unchanged.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

DURATION_TENSOR = "/encoder/Cast_output_0"  # int64 [1, T+2] frame counts, in the v1.0 export


def with_short_pads(source: Path, cache: Path) -> Path:
    """The model at `source` with padding durations set to one frame, cached under `cache`.

    Returns `source` unchanged when its graph does not have the expected duration tensor.
    """
    import onnx
    from onnx import TensorProto, helper

    target = cache / f"{source.stem}-{source.stat().st_size}-shortpads.onnx"
    if target.is_file():
        return target
    model = onnx.load(str(source))
    graph = model.graph
    if not any(DURATION_TENSOR in node.output for node in graph.node):
        log.warning("%s has no %s; using it unedited", source.name, DURATION_TENSOR)
        return source
    new = DURATION_TENSOR + "_short_pads"
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == DURATION_TENSOR:
                node.input[i] = new
    graph.initializer.append(helper.make_tensor("pads_zero", TensorProto.INT64, [], [0]))
    graph.initializer.append(helper.make_tensor("pads_one", TensorProto.INT64, [], [1]))
    graph.node.extend(
        [
            helper.make_node("Equal", ["tokens", "pads_zero"], ["pads_is_pad"]),
            helper.make_node("Cast", ["pads_is_pad"], ["pads_mask"], to=TensorProto.INT64),
            helper.make_node("Sub", [DURATION_TENSOR, "pads_one"], ["pads_extra"]),
            helper.make_node("Mul", ["pads_extra", "pads_mask"], ["pads_cut"]),
            helper.make_node("Sub", [DURATION_TENSOR, "pads_cut"], [new]),
        ]
    )
    # Topological order: the new nodes go right after the node that makes the durations.
    nodes = list(graph.node)
    tail = nodes[-5:]
    at = next(i for i, n in enumerate(nodes) if DURATION_TENSOR in n.output) + 1
    del graph.node[:]
    graph.node.extend(nodes[:at] + tail + nodes[at:-5])
    onnx.checker.check_model(model)
    partial = target.with_suffix(f".{os.getpid()}.part")
    onnx.save(model, str(partial))
    partial.replace(target)
    log.info("Wrote %s (padding tokens shortened to one frame)", target)
    return target

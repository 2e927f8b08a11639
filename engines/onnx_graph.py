"""ONNX graph rewrites that make the dynamically quantized Kokoro model faster on CPU.

``onnxruntime.quantization.quantize_dynamic`` turns every float ``Conv`` into::

    DynamicQuantizeLinear(x) -> ConvInteger(xq, Wq, x_zp, w_zp)
        [-> Add(Reshape(Cast(Floor(bias / (x_scale * w_scale)))))]  # only when the conv has a bias
        -> Cast(to=float) -> Mul(x_scale * w_scale)

onnxruntime's ``ConvInteger`` kernel is much slower than its float ``Conv`` (it dominates the run
time of the Kokoro int8 model), so :func:`dequantize_conv_integer` folds each exactly matching
chain back into one float ``Conv`` whose weight is ``(Wq - w_zp) * w_scale`` and whose bias is the
original float bias initializer.  Anything that does not match exactly is left untouched.
"""
from __future__ import annotations

import logging
import os
from collections import defaultdict

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

logger = logging.getLogger(__name__)

__all__ = ["dequantize_conv_integer"]


def _load(model: bytes | str | os.PathLike[str] | onnx.ModelProto) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return onnx.load_from_string(model.SerializeToString())
    if isinstance(model, (bytes, bytearray)):
        return onnx.load_from_string(bytes(model))
    return onnx.load(os.fspath(model))


def _match(conv: onnx.NodeProto, prod: dict, cons: dict, inits: dict, outputs: set) -> tuple | None:
    """Return (dql, chain ending in the scale Mul, w_scale name, bias name | None) for an exact match."""
    if len(conv.input) != 4 or conv.input[1] not in inits or conv.input[3] not in inits:
        return None
    w, dql = inits[conv.input[1]], prod.get(conv.input[0])
    if dql is None or dql.op_type != "DynamicQuantizeLinear" or list(dql.output[::2]) != [conv.input[0], conv.input[2]]:
        return None

    def only_user(name: str, op: str) -> onnx.NodeProto | None:
        users = cons.get(name, [])
        ok = len(users) == 1 and users[0].op_type == op and name not in outputs
        return users[0] if ok else None

    def is_scale(name: str) -> str | None:
        """``name`` = Mul(x_scale, w_scale) -> w_scale initializer name."""
        mul = prod.get(name)
        if mul is None or mul.op_type != "Mul" or dql.output[1] not in mul.input:
            return None
        other = mul.input[1] if mul.input[0] == dql.output[1] else mul.input[0]
        return other if other in inits else None

    chain, bias, nxt = [conv], None, only_user(conv.output[0], "Add")
    if nxt is not None:  # bias branch: Add(acc, Reshape(Cast(Floor(Div(bias, scale)))))
        chain.append(nxt)
        reshape = prod.get(nxt.input[1] if nxt.input[0] == conv.output[0] else nxt.input[0])
        cast = prod.get(reshape.input[0]) if reshape is not None and reshape.op_type == "Reshape" else None
        floor = prod.get(cast.input[0]) if cast is not None and cast.op_type == "Cast" else None
        div = prod.get(floor.input[0]) if floor is not None and floor.op_type == "Floor" else None
        if div is None or div.op_type != "Div" or div.input[0] not in inits or inits[div.input[0]].dims != w.dims[:1]:
            return None
        bias, bias_scale = div.input[0], is_scale(div.input[1])
        nxt = only_user(nxt.output[0], "Cast")
    else:
        nxt = only_user(conv.output[0], "Cast")
    if nxt is None or {a.name: a.i for a in nxt.attribute}.get("to") != TensorProto.FLOAT:
        return None
    chain.append(nxt)
    mul = only_user(nxt.output[0], "Mul")
    w_scale = mul and is_scale(mul.input[1] if mul.input[0] == nxt.output[0] else mul.input[0])
    if w_scale is None or (bias is not None and bias_scale != w_scale):
        return None
    # per-tensor, or per-output-channel shaped to broadcast over the (N, M, *spatial) accumulator
    per_channel = [w.dims[0]] + [1] * (len(w.dims) - 2)
    zp_dims, scale_dims = list(inits[conv.input[3]].dims), list(inits[w_scale].dims)
    if (zp_dims not in ([], [1], per_channel[:1]) or scale_dims not in ([], [1], per_channel)
            or (bias is not None and len(scale_dims) > 1)):
        return None
    return dql, chain + [mul], w_scale, bias


def _float_weight(wq: np.ndarray, zp: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(Wq - zp) * scale with per-tensor or per-output-channel (axis 0) parameters."""
    shape = (-1,) + (1,) * (wq.ndim - 1)
    zp, scale = (a.reshape(shape) if a.size > 1 else a.reshape(()) for a in (zp, scale))
    return ((wq.astype(np.float32) - zp.astype(np.float32)) * scale.astype(np.float32)).astype(np.float32)


def _prune(graph: onnx.GraphProto) -> tuple[int, int]:
    """Drop nodes whose outputs are unused, then unused initializers; return the counts."""
    keep_out, removed_nodes = {o.name for o in graph.output}, 0
    while True:
        used = keep_out | {i for n in graph.node for i in n.input}
        dead = [n for n in graph.node if not any(o in used for o in n.output if o)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
        removed_nodes += len(dead)
    dead_inits = [t for t in graph.initializer if t.name not in used]
    for t in dead_inits:
        graph.initializer.remove(t)
    return removed_nodes, len(dead_inits)


def dequantize_conv_integer(model: bytes | str | os.PathLike[str] | onnx.ModelProto) -> onnx.ModelProto:
    """Replace dynamic-quantized ``ConvInteger`` chains with float ``Conv`` nodes.

    ``model`` is serialized ONNX bytes, a file path or a ``ModelProto`` (which is copied, not
    modified).  Returns the rewritten model; chains that do not match exactly are kept as they are.
    """
    proto = _load(model)
    g = proto.graph
    prod = {o: n for n in g.node for o in n.output}
    cons: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for n in g.node:
        for i in n.input:
            cons[i].append(n)
    inits = {t.name: t for t in g.initializer}
    outputs = {o.name for o in g.output}
    arr = lambda name: numpy_helper.to_array(inits[name])  # noqa: E731

    new_inits: dict[tuple[str, str, str], str] = {}
    total = replaced = 0
    for conv in [n for n in g.node if n.op_type == "ConvInteger"]:
        total += 1
        found = _match(conv, prod, cons, inits, outputs)
        if found is None:
            logger.debug("ConvInteger %s: pattern not matched, left as is", conv.name)
            continue
        dql, chain, w_scale, bias = found
        key = (conv.input[1], conv.input[3], w_scale)
        if key not in new_inits:
            name = f"{conv.input[1]}_dequantized_{len(new_inits)}"
            weight = _float_weight(arr(conv.input[1]), arr(conv.input[3]), arr(w_scale))
            g.initializer.append(numpy_helper.from_array(weight, name))
            new_inits[key] = name
        inputs = [dql.input[0], new_inits[key]] + ([bias] if bias is not None else [])
        tail = chain[-1]
        node = helper.make_node("Conv", inputs, [tail.output[0]], name=f"{conv.name or 'ConvInteger'}_dequant_{replaced}")
        node.attribute.extend(conv.attribute)
        g.node.insert(list(g.node).index(tail), node)
        for n in chain:
            g.node.remove(n)
        replaced += 1
    nodes, initializers = _prune(g)
    logger.info("dequantize_conv_integer: %d/%d ConvInteger chains -> Conv (%d left as is); pruned %d nodes, "
                "%d initializers", replaced, total, total - replaced, nodes, initializers)
    return proto


def optimized_model_path(source: str | os.PathLike[str]) -> str:
    """A float-conv copy of an int8 ONNX model, rewritten once and cached beside the other models.

    Falls back to `source` itself when the rewrite fails, so a new export never stops the engine.
    """
    from .weights import cache_dir

    source = os.fspath(source)
    stat = os.stat(source)
    target = cache_dir() / f"{os.path.splitext(os.path.basename(source))[0]}-{stat.st_size}-fconv.onnx"
    if target.is_file():
        return str(target)
    try:
        rewritten = dequantize_conv_integer(source)
        partial = target.with_suffix(f".{os.getpid()}.part")
        onnx.save(rewritten, str(partial))
        partial.replace(target)
    except Exception:  # the original model still works, only slower
        logger.exception("Could not rewrite %s; using it as it is", source)
        return source
    return str(target)

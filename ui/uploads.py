"""File inputs take uploads only: a file given as a link is refused before Gradio would fetch it.

Gradio 6.17.3 moves every input file into its cache before an event's function runs
(`Blocks.preprocess_data` -> `processing_utils.async_move_files_to_cache`); a FileData whose `path` is
an http(s) URL is downloaded there (`Block.async_move_resource_to_block_cache` ->
`async_ssrf_protected_download`) from any public host, with no size cap and no time limit. Every way
into an event (the page, the Gradio API, `gradio_client`, MCP) passes through `preprocess_data`, so
`uploads_only` wraps it once: an input holding such a path is answered with one sentence, and nothing
is fetched. An upload's FileData (its `path` in Gradio's upload folder; its `url` pointing back at this
server) passes as before.
"""

from __future__ import annotations

import gradio as gr

LINK_REFUSED = "Files are taken as uploads only, not as links; please upload the file itself."
_SCHEMES = ("http://", "https://", "ftp://", "//")
_MAX_NODES = 10_000  # inputs are parsed JSON of bounded size; the walk stops here whatever they hold


def uploads_only(demo: gr.Blocks) -> gr.Blocks:
    """Make `demo` refuse file inputs given as links (see the module docstring); returns `demo`."""
    preprocess = demo.preprocess_data

    async def preprocess_data(block_fn, inputs, *args, **kwargs):
        if holds_link(inputs):
            raise gr.Error(LINK_REFUSED, print_exception=False)
        return await preprocess(block_fn, inputs, *args, **kwargs)

    demo.preprocess_data = preprocess_data
    return demo


def holds_link(data: object) -> bool:
    """Whether any file object (a dict with a `path`) in `data` names a remote location instead of an upload."""
    stack, seen = [data], 0
    while stack and seen < _MAX_NODES:
        node, seen = stack.pop(), seen + 1
        if isinstance(node, dict):
            path = node.get("path")
            if isinstance(path, str) and path.strip().lower().startswith(_SCHEMES):
                return True
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
    return False

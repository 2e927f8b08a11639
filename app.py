"""The Gradio page: the Kokoro, Qwen3-TTS, Batch, Compare and Arena tabs of `ui/`, in one gr.Blocks.

UI only: every model call goes through the engine registry, every figure shown comes from
`engines.timing`. Errors reach the user as one sentence (gr.Error), never as a traceback.
`main()` serves the page, its Gradio API (also as MCP tools) and the OpenAI-compatible routes of
`api/` on one server.
"""

from __future__ import annotations

import logging
import os
import threading

import gradio as gr

from api import router as api_router
from engines import registry
from ui.arena_tab import build_tab as build_arena_tab
from ui.batch_tab import build_tab as build_batch_tab
from ui.common import banner as banner_for
from ui.compare_tab import build_tab as build_compare_tab
from ui.kokoro_tab import build_tab as build_kokoro_tab
from ui.owner import build as build_owner
from ui.qwen_tab import build_tab as build_qwen_tab

log = logging.getLogger("app")


def build() -> gr.Blocks:
    with gr.Blocks(title="Kokoro vs Qwen3-TTS") as demo:
        gr.Markdown("# Open TTS side by side\nHear Kokoro-82M speak as it is being generated.")
        banner = gr.Markdown(banner_for("kokoro"))
        owner = build_owner(demo)  # whose saved voices this visitor sees (a token kept in the browser)
        default_voice = build_kokoro_tab(banner)
        build_qwen_tab(owner)
        build_batch_tab(default_voice, owner)
        build_compare_tab(owner)
        build_arena_tab()
        demo.load(lambda: banner_for("kokoro"), None, banner, api_visibility="private")
    return demo


def preload(engine_id: str) -> None:
    """Load an engine in the background so that the first click does not wait for it."""
    try:
        registry.get(engine_id)
    except Exception as exc:  # the tab reports it; the page must come up regardless
        log.warning("%s is not available: %s", engine_id, exc)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # One thread, one model after another: concurrent from_pretrained calls race on transformers'
    # global meta-device initialisation ("Cannot copy out of meta tensor").
    available = [e for e in ("kokoro", "qwen-custom", "qwen-clone") if registry.info(e).available]
    threading.Thread(target=lambda: [preload(e) for e in available], daemon=True).start()
    demo = build()
    demo.queue(default_concurrency_limit=2).launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        theme=gr.themes.Soft(),
        mcp_server=True,  # the named API endpoints become MCP tools at /gradio_api/mcp/
        # The OpenAI-compatible /v1 routes, handed to the FastAPI app that launch() builds: they are
        # registered before Gradio's own routes, on the same server and port as the page.
        app_kwargs={"routes": list(api_router.routes)},
        # Client-side rendering: in SSR mode (the default on Hugging Face Spaces) a Node proxy faces the
        # port and forwards only Gradio's own paths to Python, so /v1 would reach the page renderer.
        ssr_mode=False,
    )


if __name__ == "__main__":
    main()

"""The Gradio page: the Kokoro, Qwen3-TTS, Batch, Compare and Arena tabs of `ui/`, in one gr.Blocks.

UI only: every model call goes through the engine registry, every figure shown comes from
`engines.timing`. Errors reach the user as one sentence (gr.Error), never as a traceback.
`main()` serves the page, its Gradio API (also as MCP tools) and the OpenAI-compatible routes of
`api/` on one server, behind `api.guard` (API keys, the per-client rate limit, CORS).
"""

from __future__ import annotations

import logging
import os
import threading

from ui import janitor

janitor.use_own_gradio_cache()  # before Gradio is imported: it reads GRADIO_TEMP_DIR then

import gradio as gr  # noqa: E402

from api import guard, kokoro_browser  # noqa: E402
from api import router as api_router  # noqa: E402
from engines import device, registry, timing  # noqa: E402
from engines.reference import upload_limit_bytes  # noqa: E402
from engines.settings import env_int  # noqa: E402
from ui.arena_tab import build_tab as build_arena_tab  # noqa: E402
from ui.batch_tab import build_tab as build_batch_tab  # noqa: E402
from ui.compare_tab import build_tab as build_compare_tab  # noqa: E402
from ui.kokoro_tab import build_tab as build_kokoro_tab  # noqa: E402
from ui.kokoro_tab import engine_banner as kokoro_banner  # noqa: E402
from ui.owner import build as build_owner  # noqa: E402
from ui.qwen_tab import build_tab as build_qwen_tab  # noqa: E402
from ui.script_tab import build_tab as build_script_tab  # noqa: E402

log = logging.getLogger("app")
# Events waiting in Gradio's own queue (Compare, Arena, Batch; the engines' events go straight to their
# engine's work queue, which admits them or refuses at once); past this Gradio answers "queue full".
QUEUE_MAX_SIZE = int(os.environ.get("QUEUE_MAX_SIZE", "64"))


def build() -> gr.Blocks:
    # Gradio's own sweep of the files it made for this page (the janitor bounds their total size too)
    ttl = int(janitor.ttl_s())
    with gr.Blocks(title="Kokoro vs Qwen3-TTS", delete_cache=(min(ttl, int(janitor.SWEEP_EVERY_S)), ttl)) as demo:
        gr.Markdown(
            "# Open TTS side by side\nHear Kokoro-82M and Qwen3-TTS speak while the rest is being generated, "
            "render many texts at once, compare two voices with measured figures, and vote on blind pairs."
        )
        banner = gr.Markdown(kokoro_banner())
        owner = build_owner(demo)  # whose saved voices this visitor sees (a token kept in the browser)
        build_kokoro_tab(banner)
        build_qwen_tab(owner)
        build_batch_tab(owner)
        build_script_tab(owner)
        build_compare_tab(owner)
        build_arena_tab()
        demo.load(kokoro_banner, None, banner, api_visibility="private")
    return demo


def work_events(demo: gr.Blocks) -> guard.StartsWork:
    """Which events start work, for the rate limit: those whose handler `ui.common.user_errors`
    marked (every handler that runs an engine); page loads, examples and UI updates do not count."""
    marked = {fn_id: block_fn for fn_id, block_fn in demo.fns.items() if getattr(block_fn.fn, "starts_work", False)}
    ids, names = set(marked), {block_fn.api_name for block_fn in marked.values()}
    return lambda fn_index, api_name: fn_index in ids if api_name is None else api_name in names


def preload(engine_id: str) -> None:
    """Load an engine in the background so that the first click does not wait for it (its speed,
    measured as it loads, sets its work queue's first estimates and default bound)."""
    try:
        timing.load(engine_id)
    except Exception as exc:  # the tab reports it; the page must come up regardless
        log.warning("%s is not available: %s", engine_id, exc)


MAX_SESSIONS = 1000  # default of `MAX_SESSIONS`


def public_limits() -> dict:
    """launch() options that keep a long-running public page bounded: the upload limit (`MAX_UPLOAD_MB`,
    refused by Gradio as it arrives), where clips are served from, and how many sessions' state Gradio
    keeps in memory (`MAX_SESSIONS`; each costs ~0.36 MB with this page's ~210 components, measured, and
    Gradio's own default of 10,000 never frees a session an API client opened; past the bound the oldest
    session's state goes first)."""
    sessions = env_int("MAX_SESSIONS", MAX_SESSIONS, minimum=0) or MAX_SESSIONS
    return {
        "max_file_size": upload_limit_bytes(),
        "allowed_paths": [str(janitor.OUTPUT_DIR)],  # clips are served from TTS_OUTPUT_DIR wherever it is
        "state_session_capacity": sessions,
    }


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # One thread, one model after another: concurrent from_pretrained calls race on transformers'
    # global meta-device initialisation ("Cannot copy out of meta tensor").
    available = [e for e in registry.ENGINES if registry.info(e).available]
    load_all = lambda: [preload(e) for e in available]  # noqa: E731
    if device.zero_gpu():
        load_all()  # in the main thread, before launch: ZeroGPU takes the weights placed on CUDA by then
    else:
        threading.Thread(target=load_all, daemon=True).start()
    janitor.start()  # TTS_OUTPUT_DIR and Gradio's cache: OUTPUT_TTL_S, OUTPUT_MAX_MB
    demo = build()
    serve(demo)
    demo.block_thread()


def serve(demo: gr.Blocks, **launch_kwargs) -> gr.Blocks:
    """Launch `demo` (queue settings, the /v1 routes, MCP) with `api.guard` in front; returns once it
    serves (`launch_kwargs` override the defaults, e.g. a port in tests)."""
    options = dict(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        theme=gr.themes.Soft(),
        mcp_server=True,  # the named API endpoints become MCP tools at /gradio_api/mcp/
        **public_limits(),
        # The OpenAI-compatible /v1 routes, handed to the FastAPI app that launch() builds: they are
        # registered before Gradio's own routes, on the same server and port as the page.
        app_kwargs={"routes": [*api_router.routes, *kokoro_browser.router.routes]},  # + Kokoro in the browser
        # Client-side rendering: in SSR mode (the default on Hugging Face Spaces) a Node proxy faces the
        # port and forwards only Gradio's own paths to Python, so /v1 would reach the page renderer.
        ssr_mode=False,
    )
    options.update(launch_kwargs)
    # uvicorn believes X-Forwarded-For from loopback peers and rewrites the client address with it, so
    # a forged header from this machine would move a client to another rate-limit bucket; the proxies
    # this app trusts are counted by TRUSTED_PROXY_HOPS instead (api.auth.client_address).
    os.environ.setdefault("FORWARDED_ALLOW_IPS", "")
    demo.queue(default_concurrency_limit=2, max_size=QUEUE_MAX_SIZE).launch(**options, prevent_thread_lock=True)
    # Outside Gradio's own middleware (its CORS answers every origin): keys, rate limit, CORS. Put in
    # place right after the server starts, before this function returns and the page is announced.
    guard.install(demo.app, work_events(demo))
    return demo


if __name__ == "__main__":
    main()

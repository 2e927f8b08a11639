"""The Gradio page: the Kokoro, Qwen3-TTS, Batch, Compare and Arena tabs of `ui/`, in one gr.Blocks.

UI only: every model call goes through the engine registry, every figure shown comes from
`engines.runtime.timing`. Errors reach the user as one sentence (gr.Error), never as a traceback.
`main()` serves the page, its Gradio API (also as MCP tools) and the OpenAI-compatible routes of
`api/` on one server, behind `api.guard` (routes, API keys, cross-site writes, body sizes, CORS); every
use case meters its caller in `service/`.
"""

from __future__ import annotations

import logging
import os
import threading

from engines.settings import settings, settings_or_exit

if __name__ == "__main__":
    settings_or_exit()  # a bad variable ends the start in one sentence, before the heavy imports below

from service import janitor  # noqa: E402

janitor.use_own_gradio_cache()  # before Gradio is imported: it reads GRADIO_TEMP_DIR then

import gradio as gr  # noqa: E402

from api import guard, kokoro_in_browser  # noqa: E402
from api import router as api_router  # noqa: E402
from engines.reference import upload_limit_bytes  # noqa: E402
from engines.runtime import device, registry, timing  # noqa: E402
from ui import sessions  # noqa: E402
from ui.arena_tab import build_tab as build_arena_tab  # noqa: E402
from ui.batch_tab import build_tab as build_batch_tab  # noqa: E402
from ui.common import header, owner_details  # noqa: E402
from ui.compare_tab import build_tab as build_compare_tab  # noqa: E402
from ui.kokoro_tab import build_tab as build_kokoro_tab  # noqa: E402
from ui.owner import build as build_owner  # noqa: E402
from ui.page import CSS, counter  # noqa: E402
from ui.qwen_tab import build_tab as build_qwen_tab  # noqa: E402
from ui.script_tab import build_tab as build_script_tab  # noqa: E402
from ui.uploads import uploads_only  # noqa: E402

log = logging.getLogger("app")


def build() -> gr.Blocks:
    # Gradio's own sweep of the files it made for this page (the janitor bounds their total size too)
    ttl = int(janitor.ttl_s())
    with gr.Blocks(title="Kokoro vs Qwen3-TTS", delete_cache=(min(ttl, int(janitor.SWEEP_EVERY_S)), ttl)) as demo:
        gr.Markdown(
            "# Open TTS side by side\nHear Kokoro-82M and Qwen3-TTS speak while the rest is being generated, "
            "render many texts at once, compare two voices with measured figures, and vote on blind pairs."
        )
        banner = gr.Markdown(header(), elem_id="engines-header")  # what each engine can do here
        with gr.Accordion("For the Space's owner", open=False, elem_id="owner-details"):
            details = gr.Markdown(owner_details())
        counter()  # a character counter under every text box (ui.page)
        owner = build_owner(demo)  # whose saved voices this visitor sees (a token kept in the browser)
        build_kokoro_tab(banner, owner)
        build_qwen_tab(owner)
        build_batch_tab(owner)
        build_script_tab(owner)
        build_compare_tab(owner)
        build_arena_tab()
        demo.load(lambda: (header(), owner_details()), None, [banner, details], api_visibility="private", queue=False)
    return uploads_only(demo)  # file inputs: uploads, never links Gradio would fetch


def preload(engine_id: str) -> None:
    """Load an engine in the background so that the first click does not wait for it (its speed,
    measured as it loads, sets its work queue's first estimates and default bound)."""
    try:
        timing.load(engine_id)
    except Exception as exc:  # the tab reports it; the page must come up regardless
        log.warning("%s is not available: %s", engine_id, exc)


def public_limits() -> dict:
    """launch() options that keep a long-running public page bounded: the upload limit (`MAX_UPLOAD_MB`,
    refused by Gradio as it arrives), where clips are served from, and how many sessions' state Gradio
    keeps in memory (`MAX_SESSIONS`; each costs ~0.36 MB with this page's ~210 components, measured, and
    Gradio's own default of 10,000 never frees a session an API client opened; past the bound the oldest
    session's state goes first)."""
    return {
        "max_file_size": upload_limit_bytes(),
        "allowed_paths": [str(janitor.output_dir())],  # clips are served from TTS_OUTPUT_DIR wherever it is
        "state_session_capacity": settings().max_sessions,
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
        server_name=settings().gradio_server_name,
        server_port=settings().gradio_server_port,
        theme=gr.themes.Soft(),
        css=CSS,  # ui.page: the character counters, example buttons, the phone layout
        mcp_server=True,  # the named API endpoints become MCP tools at /gradio_api/mcp/
        **public_limits(),
        # The OpenAI-compatible /v1 routes, handed to the FastAPI app that launch() builds: they are
        # registered before Gradio's own routes, on the same server and port as the page.
        app_kwargs={"routes": [*api_router.routes, *kokoro_in_browser.router.routes]},  # + Kokoro in the browser
        # Client-side rendering: in SSR mode (the default on Hugging Face Spaces) a Node proxy faces the
        # port and forwards only Gradio's own paths to Python, so /v1 would reach the page renderer.
        ssr_mode=False,
    )
    options.update(launch_kwargs)
    # uvicorn believes X-Forwarded-For from loopback peers and rewrites the client address with it, so
    # a forged header from this machine would move a client to another rate-limit bucket; the proxies
    # this app trusts are counted by TRUSTED_PROXY_HOPS instead (api.auth.client_address). A write that
    # configures uvicorn, which reads FORWARDED_ALLOW_IPS itself.
    os.environ.setdefault("FORWARDED_ALLOW_IPS", "")
    # Events waiting in Gradio's own queue (Compare, Arena, Batch; the engines' events go straight to their
    # engine's work queue, which admits them or refuses at once); past QUEUE_MAX_SIZE Gradio answers "queue full".
    queue = demo.queue(default_concurrency_limit=2, max_size=settings().queue_max_size)
    queue.launch(**options, prevent_thread_lock=True)
    # Outside Gradio's own middleware (its CORS answers every origin): routes, keys, cross-site writes, body
    # sizes, CORS (the limits are the service's, where the work is). Put in
    # place right after the server starts, before this function returns and the page is announced.
    guard.install(demo.app)
    sessions.bound(demo)  # MAX_SESSIONS_PER_ADDRESS: one address cannot push other visitors' state out
    return demo


if __name__ == "__main__":
    main()

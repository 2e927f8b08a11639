"""Kokoro rendered in the visitor's browser, on the page: the "Render in: server / this browser" choice
of the Kokoro tab, its status line, and the page's scripts (`kokoro_in_browser.js`: `window.kokoroBrowser`;
`kokoro_in_browser_worker.js`: the Web Worker with ONNX Runtime Web; `kokoro_in_browser_tab.js`: the tab's wiring),
served by `api.kokoro_in_browser` at `/kokoro/assets/`.

In browser mode Generate fetches the server's plan (`/kokoro/plan`: the same G2P and chunking as the
server path), the worker renders chunk by chunk and the chunks play through the tab's own player
(`ui/player.js`), Stop stops both. A browser that cannot run it (no WebAssembly SIMD, too little memory,
the worker or session failing) gets one sentence and the server renders instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr

from api import kokoro_in_browser
from engines import lexicon
from engines.runtime import registry

from .lexicon_panel import visitor
from .player import StreamPlayer

HERE = Path(__file__).parent
MODULE_URL = kokoro_in_browser.add_page_file("kokoro_in_browser.js", HERE / "kokoro_in_browser.js")
kokoro_in_browser.add_page_file("kokoro_in_browser_worker.js", HERE / "kokoro_in_browser_worker.js")
TAB_JS = (HERE / "kokoro_in_browser_tab.js").read_text(encoding="utf-8")
SERVER, BROWSER = "server", "this browser"
# For any script on the page that wants window.kokoroBrowser (e.g. a Compare slot): loads it once.
LOADER_JS = (
    "if (!window.kokoroBrowser && !document.querySelector('script[data-kokoro-browser]')) {"
    " const s = document.createElement('script'); s.src = " + json.dumps(MODULE_URL) + ";"
    " s.dataset.kokoroBrowser = '1'; document.head.appendChild(s); }"
)


def render_in() -> gr.Radio:
    """The "Render in" choice, inside the caller's layout."""
    return gr.Radio(
        [SERVER, BROWSER],
        value=SERVER,
        label="Render in",
        elem_id="kokoro-render-in",
        info="This browser: the server plans the text, your device runs the model (a 92 MB download, once).",
    )


def visitor_phonemes() -> dict[str, str]:
    """The page visitor's pronunciations for the engine the browser runs (`ui.lexicon_panel`): the page
    sends them with the text, so the plan speaks them as the server path would."""
    engine_id, owner = registry.browser_engine(), visitor()
    if not engine_id or not owner:
        return {}
    return lexicon.owner_mapping(owner, registry.capabilities(engine_id).lexicon)


def bind(choice: gr.Radio, generate: gr.Button, player: StreamPlayer, inputs: list, owner=None) -> gr.Button:
    """Inside the Blocks, after the tab's Generate button and player: the browser path's status line and
    its event. `inputs` are the text, voice, blend, speed and language components, in that order; `owner`
    the page's owner token (the plan then knows the visitor's found voices). Returns the hidden button a
    browser run starts with (the tab clears the server path's last status line and files with it)."""
    spec = {"player": player.elem_id, "generate": generate.elem_id, "go": "kokoro-browser-go", "module": MODULE_URL}
    js = f"({TAB_JS})(element, {json.dumps(spec)});"
    gr.HTML(value="", html_template="", elem_id="kokoro-browser-status", js_on_load=js)
    go = gr.Button("Generate in this browser", visible="hidden", elem_id=spec["go"])
    pronunciations = gr.JSON(visible=False)
    go.click(visitor_phonemes, None, pronunciations, queue=False, api_visibility="private").then(
        None, [*inputs, pronunciations, *([owner] if owner is not None else [])], None, api_visibility="private",
        js="(...values) => { window.kokoroTab.generate(...values); }",  # ..., language, lexicon, owner token
    )  # fmt: skip
    choice.change(None, choice, None, js="(m) => { window.kokoroRenderIn = m; }", api_visibility="private")
    return go

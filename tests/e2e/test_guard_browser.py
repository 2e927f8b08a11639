"""What the page shows when the service's limit refuses one of its events: one sentence in a toast; and
the door's allow-list lets the page itself work in a real browser."""

from __future__ import annotations

import re

import gradio as gr
import pytest
from conftest import _free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def limited_page():
    """A page with one work event (a test face: it resolves its caller and calls a use case of the
    service), served by `app.serve` at one request a minute per client."""
    import app
    from service import owners
    from ui.caller import caller
    from ui.common import user_errors

    @user_errors
    def echo(text: str) -> str:
        owners.issue(caller())
        return f"said: {text}"

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("API_RATE_PER_MIN", "1")
        mp.delenv("TRUSTED_PROXY_HOPS", raising=False)
        with gr.Blocks() as demo:
            box = gr.Textbox(elem_id="say")
            out = gr.Textbox(elem_id="said")
            gr.Button("Say", elem_id="say-button").click(echo, box, out)
        port = _free_port()
        app.serve(demo, server_name="127.0.0.1", server_port=port, quiet=True, mcp_server=False)
        try:
            yield f"http://127.0.0.1:{port}/"
        finally:
            demo.close()


def test_a_refused_event_shows_one_sentence(limited_page, browser, artifacts):
    page = browser.new_page()
    page.goto(limited_page, wait_until="load", timeout=60_000)
    page.locator("#say textarea").fill("one")
    page.locator("#say-button").click()
    page.wait_for_function("() => document.querySelector('#said textarea').value === 'said: one'", timeout=30_000)
    page.locator("#say textarea").fill("two")
    page.locator("#say-button").click()
    # the wait left is what the minute has left (60 s, or less on a busy machine)
    sentence = re.compile(r"Too many requests: at most 1 a minute from one client; try again in \d+ s\.")
    toast = page.locator("[data-testid=toast-text]", has_text=sentence)
    try:
        toast.wait_for(timeout=30_000)  # the page's error toast, the sentence alone
        page.wait_for_timeout(800)  # for the screenshot only: the toast slides in
    finally:
        page.screenshot(path=str(artifacts / "rate_limited.png"))
    assert sentence.fullmatch(toast.inner_text().strip()), toast.inner_text()
    assert page.locator("text=Traceback").count() == 0
    assert page.locator("#said textarea").input_value() == "said: one"

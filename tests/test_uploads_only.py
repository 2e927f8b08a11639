"""The app's file inputs take uploads only: a file given as a link (which Gradio 6.17.3 would download from
any public host, uncapped, before the event runs) is refused in one sentence; uploads work as before."""

from __future__ import annotations

import json
import urllib.request

import pytest

from ui.uploads import LINK_REFUSED, holds_link

FILE = {"_type": "gradio.FileData"}


def test_a_link_anywhere_in_the_inputs_is_found_and_an_upload_is_not():
    upload = {"path": "/tmp/gradio/abc/batch.txt", "url": "http://127.0.0.1:7860/gradio_api/file=/tmp/x", "meta": FILE}
    assert not holds_link(["text", 3, None, upload, [upload], {"value": upload}])
    for link in ("https://example.com/a.wav", "HTTP://example.com/a.wav", " http://10.0.0.1/x", "//example.com/a"):
        assert holds_link(["text", {"path": link, "meta": FILE}])
        assert holds_link([[{"path": link}]])  # a multiple-file input
        assert holds_link([{"value": {"path": link}}])  # a component's props sent as an input


def call(app_url: str, api_name: str, data: list) -> tuple[str, str]:
    """POST /gradio_api/call/<name> and read its event stream: (last event, its error sentence or "")."""
    base = f"{app_url}gradio_api/call/{api_name}"
    request = urllib.request.Request(base, json.dumps({"data": data}).encode(), {"Content-Type": "application/json"})
    event_id = json.loads(urllib.request.urlopen(request, timeout=60).read())["event_id"]
    stream = urllib.request.urlopen(f"{base}/{event_id}", timeout=300).read().decode()
    event, payload = "", None
    for line in stream.splitlines():
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            payload = line.split(":", 1)[1].strip()
    answer = json.loads(payload) if payload else None
    return event, (answer.get("error") or "") if isinstance(answer, dict) else ""


@pytest.mark.slow
def test_the_running_app_refuses_a_linked_file_through_gradio_client(app_url, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(app_url, verbose=False)
    with pytest.raises(Exception) as refused:  # gradio_client raises AppError carrying the server's sentence
        client.predict(handle_file("https://example.com/lines.txt"), api_name="/batch")
    assert LINK_REFUSED in str(refused.value)
    # an upload passes the guard: the batch tab's own sentence about its content comes back instead
    empty = tmp_path / "lines.txt"
    empty.write_text("\n")
    with pytest.raises(Exception) as own_answer:
        client.predict(handle_file(str(empty)), api_name="/batch")
    assert LINK_REFUSED not in str(own_answer.value) and "batch file" in str(own_answer.value).lower()


@pytest.mark.slow
def test_the_running_app_refuses_a_link_written_in_capitals_over_raw_http(app_url):
    config = json.loads(urllib.request.urlopen(f"{app_url}config", timeout=60).read())
    named = {d.get("api_name"): d for d in config["dependencies"] if d.get("api_name")}
    batch = named["batch"]
    data = [None] * len(batch["inputs"])
    data[0] = {"path": "HTTPS://example.com/lines.txt", "meta": FILE}
    event, sentence = call(app_url, "batch", data)
    assert event == "error" and sentence == LINK_REFUSED

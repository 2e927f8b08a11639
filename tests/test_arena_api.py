"""The running app's arena board as an API and MCP user gets it: the same table as before, with an optional
prompt category and language, the board named in its last column, and one sentence for a bad one."""

from __future__ import annotations

import json
import urllib.request

import pytest
from gradio_client import Client

pytestmark = pytest.mark.slow

COLUMNS = ["system", "rating", "95% CI", "votes", "wins", "losses", "ties", "both bad"]  # before categories


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


def test_the_leaderboard_endpoint_keeps_its_table_and_takes_a_category_and_a_language(client):
    board = client.predict(api_name="/leaderboard")  # as before: no arguments, every vote
    assert board["headers"][:8] == COLUMNS
    assert board["headers"][8:] == ["won for", "lost for", "flagged", "left out", "board"]
    assert all(row[-1] == "all votes" for row in board["data"])
    names = client.predict("names", "es", api_name="/leaderboard")
    assert names["headers"] == board["headers"] and all(
        row[-1] == "category names, language es" for row in names["data"]
    )
    for category, language, sentence in (
        ("poetry", "all", "A prompt category is one of"),
        ("all", "xx", "A language is"),
    ):
        with pytest.raises(Exception) as caught:
            client.predict(category, language, api_name="/leaderboard")
        assert sentence in str(caught.value) and "Traceback" not in str(caught.value)
    chosen = client.predict(api_name="/better_measured_chosen")
    assert chosen["headers"][0] == "the better-measured clip has" and chosen["data"][0][:2] == [
        "lower error rate",
        "all",
    ]


def mcp(app_url: str, method: str, params: dict) -> dict:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    request = urllib.request.Request(
        app_url + "gradio_api/mcp/", json.dumps(body).encode(),
        {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"},
    )  # fmt: skip
    text = urllib.request.urlopen(request, timeout=120).read().decode()
    return json.loads(next(line[5:] for line in text.splitlines() if line.startswith("data:")))


def test_the_leaderboard_mcp_tool_takes_an_optional_category_and_language(app_url):
    tools = {t["name"]: t for t in mcp(app_url, "tools/list", {})["result"]["tools"]}
    name = next(n for n in tools if n.endswith("leaderboard"))
    schema = tools[name]["inputSchema"]
    assert {"category", "language"} <= set(schema["properties"]) and not set(schema.get("required") or []) & {
        "category",
        "language",
    }
    answer = mcp(app_url, "tools/call", {"name": name, "arguments": {"category": "dialogue"}})["result"]
    assert not answer.get("isError") and "board" in answer["content"][0]["text"]
    bad = mcp(app_url, "tools/call", {"name": name, "arguments": {"category": "poetry"}})
    text = bad["error"]["message"] if "error" in bad else bad["result"]["content"][0]["text"]
    # MCP checks the tool's schema (the categories as an enum) first; either way one line naming the choices
    assert ("A prompt category is one of" in text or "'poetry' is not one of" in text) and "dialogue" in text
    assert "\n" not in text and "Traceback" not in text

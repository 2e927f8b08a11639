"""Owned saved voices through the Gradio API (gradio_client against the running app, as MCP clients
call the same endpoints): two owners, a caller without a token, a forged token and a guessed owner id.
Owner tokens themselves are checked in process."""

from __future__ import annotations

import base64
import hashlib
import secrets

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from service import owners as token_home
from ui import owner as owners

NOT_YOURS = "no saved voice called 'narrator' that you can use"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture()
def secret_in(tmp_path, monkeypatch):
    monkeypatch.setenv("VOICE_LIBRARY_DIR", str(tmp_path))
    monkeypatch.delenv("OWNER_TOKEN_SECRET", raising=False)
    monkeypatch.setattr(token_home, "_secret", None)
    return tmp_path


def test_a_token_stands_for_one_owner_and_nothing_else_passes(secret_in):
    token = owners.new_token()
    owner = owners.owner_of_token(token)
    assert owner.startswith("visitor:") and owner == owners.owner_of_token(f"  {token} ")
    assert owners.owner_of_token(owners.new_token()) != owner  # each token its own owner
    _, nonce, signature = token.split(".")
    forged = [
        f"v1.{_b64(secrets.token_bytes(16))}.{_b64(secrets.token_bytes(16))}",  # a made-up token
        f"v1.{nonce}.{_b64(secrets.token_bytes(16))}",  # a real nonce, a guessed signature
        f"v1.{_b64(secrets.token_bytes(16))}.{signature}",  # a real signature on another nonce
        owner,  # the owner id itself (e.g. read from a voice record)
        owner.removeprefix("visitor:"),
        "",
        None,
        "v1." + "A" * 22 + "." + "A" * 22,
        token + "x",
    ]
    assert [owners.owner_of_token(t) for t in forged] == [None] * len(forged)
    assert (secret_in / token_home.SECRET_FILE).stat().st_mode & 0o777 == 0o600


def test_tokens_survive_a_restart_and_a_new_secret_voids_them(secret_in, monkeypatch):
    token = owners.new_token()
    monkeypatch.setattr(token_home, "_secret", None)  # a new process reads the kept secret
    assert owners.owner_of_token(token) is not None
    monkeypatch.setenv("OWNER_TOKEN_SECRET", "another secret for this server, set by its operator")
    assert owners.owner_of_token(token) is None


def test_the_page_keeps_its_browsers_token_or_mints_one(secret_in):
    token = owners.new_token()
    assert owners._keep_or_mint(token) == (token, token)
    for stored in (None, "", "forged", {"token": token}):
        fresh, shown = owners._keep_or_mint(stored)
        assert fresh == shown and owners.owner_of_token(fresh) and fresh != token


def test_a_signed_in_hugging_face_account_owns_its_voices_whatever_the_token(secret_in):
    from types import SimpleNamespace

    def request(session: dict | None):
        scope = {"type": "http"} | ({"session": session} if session is not None else {})
        return SimpleNamespace(request=SimpleNamespace(scope=scope, session=session))

    signed_in = request({"oauth_info": {"userinfo": {"sub": "6543", "preferred_username": "ada"}}})
    token = owners.new_token()
    assert owners.owner_of("", signed_in) == owners.owner_of(token, signed_in) == "hf:6543"
    assert owners.owner_of(token, request({})) == owners.owner_of_token(token)  # signed out: the token
    assert owners.owner_of(token, request(None)) == owners.owner_of_token(token)  # no sign-in on this server
    assert owners.owner_of("", None) is None


def test_compare_runs_keep_a_visitors_voice_name_out_of_the_shared_records(secret_in, monkeypatch):
    from test_voice_library import prompt

    from engines import voice_library
    from evaluation.compare import Slot
    from ui.compare_tab import stored_voice

    monkeypatch.delenv("VOICE_LIBRARY_SHARED", raising=False)
    owner = owners.owner_of_token(owners.new_token())
    voice_library.save_voice("my-secret-name", prompt(), owner=owner)
    assert stored_voice(Slot("qwen-clone", "my-secret-name", owner=owner)) == "saved voice"
    assert stored_voice(Slot("kokoro", "jm_kumo", owner=owner)) == "jm_kumo"
    assert stored_voice(Slot("qwen-clone", "", owner=owner)) == "reference"


# ----- the running app: the Gradio API (the same endpoints are the MCP tools) ----------------------


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from test_qwen import wav_bytes

    path = tmp_path_factory.mktemp("owned") / "me.wav"
    path.write_bytes(wav_bytes(2.0))
    return handle_file(str(path))


def save(client, clip, token, name="Narrator", **options) -> tuple[str, list[str]]:
    """(the saved voice, the saved-voice list the endpoint answers with: the caller's own voices)."""
    update = client.predict(clip, "", True, name, owner_token=token, api_name="/qwen_save_voice", **options)
    return update["value"], [value for _, value in update["choices"][1:]]


@pytest.mark.slow
def test_a_second_owner_cannot_see_use_or_delete_the_first_owners_voice(client, clip, app_url):
    alice, bob = client.predict(api_name="/owner_token"), client.predict(api_name="/owner_token")
    assert alice != bob
    assert save(client, clip, alice) == ("narrator", ["narrator"])
    forged = f"v1.{_b64(secrets.token_bytes(16))}.{_b64(secrets.token_bytes(16))}"
    nonce = base64.urlsafe_b64decode(alice.split(".")[1] + "==")
    alice_id = "visitor:" + hashlib.sha256(nonce).hexdigest()[:32]  # her owner id, as a voice record holds it
    strangers = {"bob": bob, "no token": "", "forged": forged, "alice's owner id": alice_id}
    for who, token in strangers.items():
        with pytest.raises(AppError, match=NOT_YOURS):  # use: the clone endpoint
            client.predict(
                None, "", False, "Hello.", "Auto", "narrator", owner_token=token, api_name="/qwen_clone_stream"
            )
        _, _, summary = client.predict(  # use: Compare
            "Hello.", "qwen-clone:narrator", "qwen-clone:narrator", owner_token=token, api_name="/compare"
        )
        assert NOT_YOURS in summary["a"]["error"] and NOT_YOURS in summary["b"]["error"], who
        with pytest.raises(AppError, match=NOT_YOURS):  # delete
            client.predict("narrator", owner_token=token, api_name="/qwen_delete_voice")
    # see: a batch row naming it fails for Bob, in the same words
    _, table = client.predict(_csv("Hello.,qwen-clone,narrator"), owner_token=bob, api_name="/batch")
    assert NOT_YOURS in table["data"][0][-1]
    # Alice still has it and speaks with it
    job = client.submit(None, "", False, "Hi.", "Auto", "narrator", owner_token=alice, api_name="/qwen_clone_stream")
    job.result(timeout=300)
    assert "Finished" in job.outputs()[-1][1]
    # Bob's own "Narrator" is another voice; saving over a name needs overwrite, in any case
    assert save(client, clip, bob, "Solo") == ("solo", ["solo"])  # Bob's list: his own voice only
    assert save(client, clip, bob, "NARRATOR") == ("narrator", ["narrator", "solo"])
    with pytest.raises(AppError, match="already have a voice called 'narrator'; pass overwrite"):
        save(client, clip, alice, "narrator")
    assert save(client, clip, alice, "narrator", overwrite=True, share_in_arena=True) == ("narrator", ["narrator"])
    fresh = Client(app_url, verbose=False)  # another session: the token alone names her voices
    left = fresh.predict("Narrator", owner_token=alice, api_name="/qwen_delete_voice")
    assert [value for _, value in left["choices"][1:]] == []
    with pytest.raises(AppError, match=NOT_YOURS):
        client.predict("narrator", owner_token=alice, api_name="/qwen_delete_voice")
    left = client.predict("narrator", owner_token=bob, api_name="/qwen_delete_voice")  # Bob's was untouched
    assert [value for _, value in left["choices"][1:]] == ["solo"]


@pytest.mark.slow
def test_saving_without_an_owner_is_refused(client, clip):
    for token in ("", "v1.forged.token"):
        with pytest.raises(AppError, match="Saving a voice needs an owner"):
            save(client, clip, token, "orphan")


@pytest.mark.slow
def test_the_endpoints_and_mcp_tools_take_an_owner_token(client):
    info = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    for endpoint in ("/qwen_save_voice", "/qwen_delete_voice", "/qwen_clone_stream", "/compare", "/batch"):
        names = [p["parameter_name"] for p in info[endpoint]["parameters"]]
        assert "owner_token" in names and "request" not in names, endpoint
    assert "/owner_token" in info


@pytest.mark.slow
def test_the_mcp_tools_take_an_owner_token_and_say_what_it_is(app_url):
    import json
    import urllib.request

    with urllib.request.urlopen(f"{app_url}gradio_api/mcp/schema", timeout=60) as response:
        tools = {tool["name"]: tool for tool in json.loads(response.read())}
    for name in ("save_reference", "delete_saved", "clone_stream", "compare_api", "batch_render"):
        described = tools[name]["inputSchema"]["properties"]
        assert "/owner_token" in described["owner_token"]["description"], name
        assert "request" not in described, name
    assert "owner_token" in tools and "save_from_page" not in tools and "my_library" not in tools


def _csv(*rows: str):
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False, encoding="utf-8") as out:
        out.write("text,engine,voice\n" + "\n".join(rows) + "\n")
    return handle_file(out.name)

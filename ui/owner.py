"""Whose saved voices a page visitor, a Gradio API caller or an MCP client may see, use and delete.

- On a Space with Hugging Face sign-in (`hf_oauth: true`), a signed-in visitor is their HF account
  (`hf:<account id>`); the page shows `gr.LoginButton`.
- Otherwise a visitor is an **owner token** kept in their browser (`gr.BrowserState`): 128 random
  bits signed by the server (HMAC-SHA256 with `OWNER_TOKEN_SECRET`, or a secret made once and kept
  in the voice library folder). A token the server did not sign, or an owner id passed as a token,
  is refused: guessing needs the 128 bits, forging needs the secret. The owner id derived from a
  token (`visitor:<sha256 of its random part>`) is what the library stores, never the token.
- Gradio API and MCP callers pass the token as `owner_token` (a new one from the `/owner_token`
  endpoint; the page shows its own under "Your saved voices from scripts"). A call without a valid
  token has no saved voices.

Events read the hidden `token` component that `build` returns; `owner_of(token, request)` gives the
owner id for `engines.voice_library` (None: no owner).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import secrets
import threading

import gradio as gr

from engines.voice_library import library_dir

log = logging.getLogger(__name__)

SECRET_ENV = "OWNER_TOKEN_SECRET"
SECRET_FILE = ".owner-secret"
STORAGE_KEY = "tts-compare-owner"  # the browser's localStorage key for the token
NONCE_BYTES = 16  # 128 bits
_TOKEN = re.compile(r"^v1\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{22})$")
_secret_lock = threading.Lock()
_secret: bytes | None = None


def _server_secret() -> bytes:
    """The signing secret: `OWNER_TOKEN_SECRET`, else one made once and kept beside the voices."""
    global _secret
    configured = os.environ.get(SECRET_ENV, "").strip()
    if configured:
        return configured.encode("utf-8")
    with _secret_lock:
        if _secret is None:
            path = library_dir() / SECRET_FILE
            try:
                handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                _secret = path.read_bytes()
            else:
                _secret = secrets.token_bytes(32)
                with os.fdopen(handle, "wb") as out:
                    out.write(_secret)
            if len(_secret) < 32:
                raise RuntimeError("The owner-token secret file is too short; delete it to make a new one.")
        return _secret


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _signature(nonce: bytes) -> bytes:
    return hmac.new(_server_secret(), b"owner-token:" + nonce, hashlib.sha256).digest()[:16]


def new_token() -> str:
    """A fresh owner token: `v1.<128 random bits>.<signature>` (base64url)."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    return f"v1.{_b64(nonce)}.{_b64(_signature(nonce))}"


def owner_of_token(token: object) -> str | None:
    """The owner id of a token this server signed; None for anything else (forged, guessed, empty)."""
    match = _TOKEN.match(token.strip()) if isinstance(token, str) else None
    if match is None:
        return None
    nonce = base64.urlsafe_b64decode(match[1] + "==")
    given = base64.urlsafe_b64decode(match[2] + "==")
    if len(nonce) != NONCE_BYTES or not hmac.compare_digest(given, _signature(nonce)):
        return None
    return "visitor:" + hashlib.sha256(nonce).hexdigest()[:32]


def signed_in_user(request: gr.Request | None) -> str | None:
    """The Hugging Face account signed in through the page's LoginButton (a Space with hf_oauth)."""
    inner = getattr(request, "request", None)
    if inner is None or "session" not in getattr(inner, "scope", {}):
        return None  # no session middleware: no sign-in on this server
    userinfo = (inner.session.get("oauth_info") or {}).get("userinfo") or {}
    account = userinfo.get("sub") or userinfo.get("preferred_username")
    return f"hf:{account}" if account else None


def owner_of(token: object, request: gr.Request | None = None) -> str | None:
    """Whose saved voices this call may use: the signed-in HF account, else the token's owner."""
    return signed_in_user(request) or owner_of_token(token)


def sign_in_offered() -> bool:
    """Hugging Face sign-in exists on a Space with `hf_oauth: true` (it sets OAUTH_CLIENT_ID)."""
    return bool(os.environ.get("OAUTH_CLIENT_ID") and os.environ.get("SPACE_ID"))


def _keep_or_mint(stored: object) -> tuple[str, str]:
    """The browser's token if this server signed it, else a new one (first visit, new secret)."""
    token = stored if owner_of_token(stored) else new_token()
    return token, token


def owner_token() -> str:
    """A new owner token for saving and using voices through the Gradio API or MCP.

    Returns:
        a token to pass as `owner_token` to qwen_save_voice, qwen_delete_voice, qwen_clone_stream,
        compare and batch; keep it secret: whoever has it can use and delete its voices.
    """
    return new_token()


def build(demo: gr.Blocks) -> gr.Textbox:
    """The page's owner: its token in the browser, a hidden component events read, the sign-in
    button where the Space offers it, and the `/owner_token` API endpoint."""
    if sign_in_offered():
        gr.LoginButton()
    # a fixed key and cipher secret, so a restart still reads what browsers stored (the cipher only
    # obscures localStorage: its secret is in the page; the token's own signature is what counts)
    stored = gr.BrowserState(None, storage_key=STORAGE_KEY, secret=STORAGE_KEY)
    token = gr.Textbox("", visible=False, elem_id="owner-token")  # "": optional for API callers
    demo.load(_keep_or_mint, stored, [stored, token], api_visibility="private")
    gr.api(owner_token, api_name="owner_token")
    return token

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

import logging

import gradio as gr

from engines.settings import settings
from service import owners
from service.owners import new_token, owner_of_token

from .caller import caller, owner_of, signed_in_user

__all__ = ["new_token", "owner_of", "owner_of_token", "owner_token", "signed_in_user"]

log = logging.getLogger(__name__)

STORAGE_KEY = "tts-compare-owner"  # the browser's localStorage key for the token


def sign_in_offered() -> bool:
    """Hugging Face sign-in exists on a Space with `hf_oauth: true` (it sets OAUTH_CLIENT_ID)."""
    return bool(settings().oauth_client_id and settings().space_id)


def _keep_or_mint(stored: object) -> tuple[str, str]:
    """The browser's token if this server signed it, else a new one (first visit, new secret)."""
    token = stored if owner_of_token(stored) else new_token()
    return token, token


def owner_token(request: gr.Request) -> str:
    """A new owner token for saving and using voices through the Gradio API or MCP.

    Returns:
        a token to pass as `owner_token` to qwen_save_voice, qwen_delete_voice, qwen_clone_stream,
        compare and batch; keep it secret: whoever has it can use and delete its voices.
    """
    return owners.issue(caller(None, request))


def build(demo: gr.Blocks) -> gr.Textbox:
    """The page's owner: its token in the browser, a hidden component events read, the sign-in
    button where the Space offers it, and the `/owner_token` API endpoint."""
    if sign_in_offered():
        gr.LoginButton()
    # a fixed key and cipher secret, so a restart still reads what browsers stored (the cipher only
    # obscures localStorage: its secret is in the page; the token's own signature is what counts)
    stored = gr.BrowserState(None, storage_key=STORAGE_KEY, secret=STORAGE_KEY)
    token = gr.Textbox("", visible=False, elem_id="owner-token")  # "": optional for API callers
    demo.load(_keep_or_mint, stored, [stored, token], api_visibility="private", queue=False)  # see `ui.page`
    gr.api(owner_token, api_name="owner_token")
    return token

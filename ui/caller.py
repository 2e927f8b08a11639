"""The page's caller (and the Gradio API's and MCP's, which run the same events): resolved once per
event from Gradio's request: the signed-in Hugging Face account or the owner token, the session, the
client address (the owner's one home on the page: `owner_of`). Outside an event (a handler called in
process) the caller is the operator."""

from __future__ import annotations

from dataclasses import replace

import gradio as gr
from gradio.context import LocalContext

from service.caller import Caller, client_address, operator
from service.owners import owner_of_token


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


def caller(owner_token: object = None, request: gr.Request | None = None) -> Caller:
    """Who runs this event: owner (HF sign-in, else the owner token), address, session, event id."""
    request = request or LocalContext.request.get(None)
    if request is None:  # in process: the operator's limits (none), the token's owner
        return replace(operator(), owner=owner_of(owner_token))
    event = LocalContext.event_id.get(None)
    try:
        address = client_address(request)
    except AttributeError:  # a request without a connection (a handler called in process)
        address = "unknown"
    return Caller(
        address,
        "page",
        owner=owner_of(owner_token, request),
        session=getattr(request, "session_hash", None),
        request_id=f"event-{event}" if event else None,
    )

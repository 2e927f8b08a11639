"""Owner tokens: who a caller without a Hugging Face account is, across visits (one home for every face).

A token is 128 random bits signed by the server (HMAC-SHA256 with `OWNER_TOKEN_SECRET`, or a secret
made once and kept in the voice library folder). A token the server did not sign, or an owner id
passed as a token, is refused: guessing needs the 128 bits, forging needs the secret. The owner id
derived from a token (`visitor:<sha256 of its random part>`) is what the library stores, never the
token. `issue(caller)` is the use case (a request that counts); the rest are the token's arithmetic.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import threading

from engines.settings import settings
from engines.voice_library import library_dir

from . import admission
from .caller import Caller

SECRET_FILE = ".owner-secret"
NONCE_BYTES = 16  # 128 bits
_TOKEN = re.compile(r"^v1\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{22})$")
_secret_lock = threading.Lock()
_secret: bytes | None = None


def _server_secret() -> bytes:
    """The signing secret: `OWNER_TOKEN_SECRET`, else one made once and kept beside the voices."""
    global _secret
    configured = settings().owner_token_secret
    if configured:
        return configured.get_secret_value().encode("utf-8")
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


def issue(caller: Caller) -> str:
    """A new owner token for `caller` (counted as one request of theirs)."""
    admission.admit(caller)
    return new_token()

"""The HTTP face's caller (`/v1`, `/kokoro/plan`): resolved once per request from its key and address."""

from __future__ import annotations

from itertools import count

from starlette.requests import HTTPConnection

from service.caller import Caller

from .auth import api_key, client_address, owner_of_key

_ids = count()


def caller(request: HTTPConnection, face: str = "v1") -> Caller:
    """Who sent this request: its valid API key's owner (also whose voices and lexicon), its address."""
    key = api_key(request)
    owner = owner_of_key(key) if key else None
    return Caller(client_address(request), face, owner=owner, key=owner, request_id=f"http-{next(_ids)}")

"""Plan for the browser: Kokoro's own front-end (G2P, chunk plan, style rows) for a caller, admitted by
the G2P's estimated compute (`service.admission.plan_cost`) before it runs."""

from __future__ import annotations

from engines.base import SynthesisRequest, UnavailableError
from engines.runtime import registry

from . import admission
from .caller import Caller


def front_end(caller: Caller, engine_id: str, request: SynthesisRequest) -> list:
    """The chunks the engine's server path would synthesize for `request` (its `front_end`)."""
    engine = registry.get(engine_id)
    run = getattr(engine, "front_end", None)
    if run is None:  # a remote engine tier: its front-end is not in this process
        raise UnavailableError("Rendering in the browser needs Kokoro's front-end on this server; use the server.")
    admission.admit(caller, compute_s=admission.plan_cost(request.text))
    return list(run(request))

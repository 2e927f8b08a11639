"""Batch: many texts rendered for one caller, admitted by their total estimated compute before the first,
then `engines.batch.render` with each group in the caller's turn (the line serves others between groups)."""

from __future__ import annotations

from pathlib import Path

from engines.batch import BatchItem
from engines.batch import render as render_items

from . import admission
from .caller import Caller


def cost(items: list[BatchItem]) -> float:
    """Estimated seconds of compute for every good item."""
    return sum(admission.speech_cost(item.engine, item.text) for item in items if not item.error)


def render(caller: Caller, items: list[BatchItem], out_dir: Path, *args, **kwargs) -> dict:
    """`engines.batch.render` for `caller` (its owner's saved voices), once the whole batch is admitted."""
    admission.admit(caller, compute_s=cost(items))
    kwargs.setdefault("owner", caller.owner)
    return render_items(items, out_dir, *args, caller=caller.bucket, **kwargs)

"""Batch: many texts rendered for one caller, admitted by their total estimated compute before the first,
then rendered with each group in the caller's turn (the line serves others between groups).

The items come from a batch file (`engines.batch_files`). Engines whose capabilities say they batch
(`synthesize_batch`: several texts in one model call, Qwen3-TTS) get the items of one voice and language
grouped by similar length; the others render item by item. Every clip goes through the same
post-processing (`engines.audio.process`) and its duration and loudness are measured on the result.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from engines.audio import FORMATS, OutputSettings, integrated_loudness, join, process, write
from engines.base import SAMPLE_RATE, Engine, EngineError, InputError, SynthesisRequest, shown
from engines.batch_files import GROUP_SIZE, MANIFEST, BatchItem, Progress, slug
from engines.lexicon import Entry
from engines.lexicon import mapping as lexicon_mapping
from engines.runtime import gpu, registry, stop, work_queue
from engines.text import length_groups as text_length_groups

from . import admission
from .caller import Caller

log = logging.getLogger(__name__)


def cost(items: list[BatchItem]) -> float:
    """Estimated seconds of compute for every good item."""
    return sum(admission.speech_cost(item.engine, item.text) for item in items if not item.error)


def render(caller: Caller, items: list[BatchItem], out_dir: Path, *args, **kwargs) -> dict:
    """`render_items` for `caller` (its owner's saved voices), once the whole batch is admitted."""
    admission.admit(caller, compute_s=cost(items))
    kwargs.setdefault("owner", caller.owner)
    return render_items(items, out_dir, *args, caller=caller.bucket, **kwargs)


def length_groups(items: list[BatchItem], size: int = GROUP_SIZE) -> list[list[BatchItem]]:
    """Items sorted by text length, cut into groups of up to `size` whose lengths are within 2x
    (`engines.text.length_groups`)."""
    return [[items[i] for i in group] for group in text_length_groups([i.text for i in items], size, sort=True)]


def render_items(
    items: list[BatchItem],
    out_dir: Path,
    fmt: str = "wav",
    settings: OutputSettings | None = None,
    speed: float = 1.0,
    language: str | None = None,
    max_new_tokens: int | None = None,
    progress: Progress | None = None,
    get_engine: Callable[[str], Engine] = registry.get,
    owner: str | None = None,
    lexicon: Iterable[Entry] = (),
    caller: str | None = None,
) -> dict:
    """Render every good item into `out_dir` (`001-<slug>.<fmt>`), write `manifest.json`, return it.

    `progress(done, total)` is called after each item. An item that fails gets its error in the
    manifest; the others still render. `get_engine` maps an engine id to a loaded engine (the
    registry; tests pass their own). `owner` is whose saved voices the items may name; `lexicon` the
    pronunciation entries every item speaks with (each engine takes its column: `engines.lexicon`);
    `caller` whose turns the groups take (the line serves callers in turn between groups).
    """
    fmt = str(fmt).lower()
    if fmt not in FORMATS:
        raise InputError(f"Unknown audio format {shown(fmt)}; choose one of: {', '.join(FORMATS)}.")
    settings = settings or OutputSettings()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    done, total = sum(1 for i in items if i.error), len(items)
    if progress:
        progress(done, total)

    entries = tuple(lexicon)
    columns = {e: lexicon_mapping(entries, registry.capabilities(e).lexicon) for e in registry.ENGINES}

    def request(item: BatchItem) -> SynthesisRequest:
        return SynthesisRequest(
            text=item.text,
            voice=item.voice,
            speed=speed,
            language=item.language or language,
            max_new_tokens=max_new_tokens,
            owner=owner,
            lexicon=columns[item.engine],
        )

    for engine_id in dict.fromkeys(i.engine for i in items if not i.error):
        todo = [i for i in items if not i.error and i.engine == engine_id]
        try:
            engine = get_engine(engine_id)
        except EngineError as exc:
            for item in todo:
                item.error = str(exc)
            done += len(todo)
            if progress:
                progress(done, total)
            continue
        # an engine that batches (its capabilities) renders several texts in one model call
        many = engine.synthesize_batch if registry.capabilities(engine_id).batches else None
        if many is not None:
            kinds = dict.fromkeys((i.voice, i.language) for i in todo)  # one model call shares both
            work = [g for k in kinds for g in length_groups([i for i in todo if (i.voice, i.language) == k])]
        else:
            work = [[item] for item in todo]
        for group in work:
            try:
                # each group takes its turn in the engine's line (first come, first served, like every
                # request); a batch already admitted is not refused between its groups
                cost = work_queue.cost_of(engine_id, " ".join(item.text for item in group))
                with work_queue.enter(engine_id, cost, bounded=False, caller=caller) as ticket:
                    ticket.wait_turn()
                    if many is not None:
                        clips = gpu.call(engine, "synthesize_batch", [request(item) for item in group])
                    else:
                        clips = [join(gpu.stream(engine, request(group[0])))]
            except EngineError as exc:
                for item in group:
                    item.error = str(exc)
            except Exception:  # a model failure on one group must not end the batch
                if stop.stopped():  # the visitor's Stop cut the model call short: not a failure
                    for item in group:
                        item.error = "Stopped."
                else:
                    log.exception("Batch group failed")
                    for item in group:
                        item.error = "Synthesis failed unexpectedly."
            else:
                for item, clip in zip(group, clips, strict=True):
                    item.spoken_language = registry.spoken_language(engine_id, request(item))
                    _finish(item, clip, out_dir, fmt, settings)
            done += len(group)
            if progress:
                progress(done, total)
    manifest = {
        "format": fmt,
        "settings": settings.as_dict(),
        "rendered": sum(1 for i in items if not i.error),
        "failed": sum(1 for i in items if i.error),
        "items": [i.as_dict() for i in items],
    }
    (out_dir / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    return manifest


def _finish(item: BatchItem, clip: np.ndarray, out_dir: Path, fmt: str, settings: OutputSettings) -> None:
    """Post-process one clip, write it and record its file, duration and loudness."""
    try:
        audio, item.notes = process(clip, SAMPLE_RATE, settings)
        name = f"{item.index:03d}-{slug(item.text)}.{fmt}"
        write(out_dir / name, audio, fmt)
    except EngineError as exc:
        item.error = str(exc)
        return
    item.file = name
    item.duration_s = round(len(audio) / SAMPLE_RATE, 3)
    loudness = integrated_loudness(audio)
    item.lufs = None if loudness is None else round(loudness, 2)

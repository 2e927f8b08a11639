"""Read-along on the page: which words a run's player gets (`ui.player.StreamPlayer` messages) and the
"Check the words" step of the Kokoro and Qwen3-TTS tabs.

Live: where an engine's chunks carry the model's own word times (`AudioChunk.words`: Kokoro on its
PyTorch back-end), `LiveWords` hands each piece the words new since the last one, timed from the run's
first sample (`evaluation.captions.model_words` does the offsets). Checked, on request since the
speech recogniser roughly doubles a run's CPU: once the run's audio has been sent, `check_run` aligns
the clip to its text (`evaluation.alignment.align_clip`) and gives the player's words message (ok,
substituted or dropped per word), a line with the error rate and the `.srt`/`.vtt` files
(`evaluation.captions`: `.asr.` from the alignment, `.model.` from the model's own durations, which need
no recogniser and so come without the check too).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from engines.audio import join
from engines.base import SAMPLE_RATE, AudioChunk, EngineError
from evaluation.alignment import DROPPED, SUBSTITUTED, Alignment, align_clip
from evaluation.captions import SOURCES, model_words, write_captions
from evaluation.compare import ClipResult, Slot, spoken_language
from service import janitor
from service.janitor import output_dir

from .player import StreamPlayer

log = logging.getLogger(__name__)
CHECK_LABEL = "Check the words (speech recogniser: error rate, read-along, .srt/.vtt; roughly doubles the CPU)"
NOT_CHECKED = "The words could not be checked for this clip."
CAPTIONS_LABEL = "Captions (.asr: from the speech recogniser's alignment; .model: from the model's own word times)"


def captions_box(prefix: str, check: gr.Checkbox) -> gr.File:
    """The captions download next to a tab's clip, inside the caller's layout: shown while `check` ("Check
    the words") is on, or once a run's model gave its own word times."""
    box = gr.File(
        label=CAPTIONS_LABEL, file_count="multiple", interactive=False, visible=False, elem_id=f"{prefix}-captions"
    )
    check.change(lambda on: gr.update(visible=bool(on)), check, box, queue=False, api_visibility="private")
    return box


class LiveWords:
    """The model's word times of a run's chunks (the list the run appends to), each handed out once."""

    def __init__(self, chunks: list[AudioChunk]) -> None:
        self.chunks = chunks
        self.sent = 0

    def new(self) -> list[dict]:
        """The words of the chunks so far not handed out yet, in seconds from the run's first sample."""
        words = model_words(self.chunks)
        fresh, self.sent = words[self.sent :], len(words)
        return fresh


@dataclass(frozen=True)
class Checked:
    """What a finished run's words give the page: the player's words message (None: no words), the
    caption files, and one line for the status (error rate and where the times come from, or why not)."""

    message: str | None = None
    files: list[str] = field(default_factory=list)
    line: str = ""


def spoken(engine_id: str, voice: str, language: str | None, text: str) -> str | None:
    """The language to hear a tab's run in (Whisper's code; None: detected), as Compare decides it."""
    try:
        return spoken_language(Slot(engine_id, voice or "", language=language), text)
    except Exception:  # an odd voice spec: let the alignment decide from the text
        return language


def check_run(
    run: str, chunks: list[AudioChunk], text: str, language: str | None, check: bool, prefix: str
) -> Checked | None:
    """A finished run's words: aligned by the speech recogniser when `check`, else (and for the captions
    as well) the model's own word times where its chunks carry them; None when there is nothing to show."""
    model = model_words(chunks)
    if not chunks or (not check and not model):
        return None
    aligned, sentence = None, ""
    if check:
        try:
            aligned = align_clip(join(chunks), SAMPLE_RATE, text, language)
        except EngineError as exc:
            sentence = str(exc)
        except Exception:
            log.exception("the words of a %s run could not be aligned", prefix)
            sentence = NOT_CHECKED
    if aligned is not None:
        message = StreamPlayer.words(run, "asr", aligned.words)
    elif model:
        message = StreamPlayer.words(run, "model", model)
    else:
        message = None
    files = caption_files(prefix, aligned, chunks)
    line = " · ".join(filter(None, [sentence, summary(aligned), captions_line(files)]))
    return Checked(message, files, line)


def slot_words(result: ClipResult) -> str | None:
    """A finished Compare slot's words for its player (the alignment its metrics made, else the model's
    own word times); None when it has none or never started a run."""
    run = getattr(result, "player_run", None)
    if run is None or not result.finished:
        return None
    if result.alignment is not None:
        return StreamPlayer.words(run, "asr", result.alignment.words)
    model = model_words(result.chunks)
    return StreamPlayer.words(run, "model", model) if model else None


def summary(aligned: Alignment | None) -> str:
    """The error rate and the words that went wrong, e.g. "Word error rate 12.5 % (1 dropped, 1 substituted)"."""
    if aligned is None or aligned.error_rate is None:
        return ""
    unit = "Character" if aligned.error_unit == "character" else "Word"
    counts = [(sum(w["status"] == s for w in aligned.words), s) for s in (DROPPED, SUBSTITUTED)]
    wrong = ", ".join(f"{n} {status}" for n, status in counts if n)
    return f"{unit} error rate {aligned.error_rate * 100:.1f} %" + (f" ({wrong})" if wrong else "")


def captions_line(files: Iterable[str]) -> str:
    """Which sources made the caption files, in words."""
    sources = [s for s in SOURCES if any(f".{s}." in Path(f).name for f in files)]
    return ("Captions: " + "; ".join(SOURCES[s] for s in sources)) if sources else ""


def caption_files(prefix: str, aligned: Alignment | None, chunks: list[AudioChunk]) -> list[str]:
    """`<prefix>.asr.srt/.vtt` (the alignment) and `<prefix>.model.srt/.vtt` (the model's durations)
    where there are timed words, in a folder of their own under `output_dir()`."""
    output_dir().mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="captions-", dir=output_dir()))
    unit = aligned.error_unit if aligned is not None else "word"
    names = write_captions(folder, prefix, aligned.words if aligned is not None else None, chunks, unit)
    janitor.written()
    return [str(folder / name) for name in names]


class CheckedRun:
    """A tab's run updates, `(int16 piece or None, *other outputs, stats)`, with one more output before
    `stats`: the captions box (emptied as the run starts). Keeps the last status line (at
    `status_at` in each update) for `after`, which `ui.streaming.played` calls once the audio is sent."""

    def __init__(self, updates: Iterable[tuple], status_at: int) -> None:
        self.updates = iter(updates)
        self.status_at = status_at
        self.status = ""
        self.width = 0  # outputs of the event: the player, the others and the captions box
        self.started = False

    def __iter__(self) -> CheckedRun:
        return self

    def __next__(self) -> tuple:
        update = next(self.updates)
        self.width = len(update)
        if isinstance(update[self.status_at], str):
            self.status = update[self.status_at]
        box = gr.skip() if self.started else gr.update(value=None)
        self.started = True
        return (*update[:-1], box, update[-1])

    def after(
        self, chunks: list[AudioChunk], text: str, language: str | None, check: bool, prefix: str
    ) -> Callable[[str], Iterator[tuple]]:
        """The updates after a run's audio: its words to the player, the error rate on the status line,
        the captions in their box (`check_run`); nothing when the run has no words to give."""

        def row(message, status, box) -> tuple:
            out = [gr.skip()] * self.width
            out[0], out[self.status_at], out[-1] = message, status, box
            return tuple(out)

        def updates(run: str) -> Iterator[tuple]:
            if check:
                yield row(gr.skip(), " · ".join(filter(None, [self.status, "Checking the words…"])), gr.skip())
            checked = check_run(run, chunks, text, language, check, prefix)
            if checked is None:
                return
            status = " · ".join(filter(None, [self.status, checked.line]))
            box = gr.update(value=checked.files or None, visible=True) if checked.files else gr.skip()
            yield row(checked.message or gr.skip(), status, box)

        return updates

"""The page's streamed-audio player: a Web Audio player in the browser (`ui/player.js`) fed 16-bit PCM
chunks as the server yields them, in place of `gr.Audio(streaming=True)`.

Why not gr.Audio: on the pinned Gradio 6.17.3 a streamed, autoplaying gr.Audio plays only the first
run of a page (upstream gradio issue 13807, fixed in later releases, all of which need huggingface-hub
>=1.2 while qwen-tts pins transformers 4.57.3, which needs huggingface-hub <1.0), and its HLS path
(ffmpeg segments, playlist polling) adds about a second before the first sound. Here each yielded
value of the player's `output` (a gr.HTML) is one JSON message
`{"k": "start"|"piece"|"end", "run", "seq", "sr", "pcm" (base64 int16 LE), "ttfa"}`; the browser
schedules the pieces gap-free at a running cursor, measures when the run's first sample reaches the
output (the ear figure) and the stalls, shows them next to the server's figure, and writes them to
`report` as JSON `{"run", "played_s", "ear_ttfa_s", "stalls", "ended", "stopped"}`.

Read-along: a `piece` may carry `"words"` (`[{"word", "start", "end"}]`, the model's own word times
for the audio sent so far, new words only), and after the run's audio a message
`{"k": "words", "run", "source": "asr"|"model", "words": [{"word", "start", "end", "status", "heard"}]}`
gives the run's whole text (status ok/substituted/dropped from the alignment, null from the model;
a dropped word has null times). Every time is in seconds from the run's first sample. The browser
shows the words as a line of spans under the player, the one being played (live, or on replay) with
the class `tts-word-now`, and once the clip has ended the dropped and substituted ones with
`tts-word-dropped`/`tts-word-substituted` (title: what was heard). `window.ttsPlayers[elem_id].feed(message)`
is the one JS entry for every message (an object or its JSON text).
"""

from __future__ import annotations

import base64
import itertools
import json
import uuid
from pathlib import Path

import gradio as gr
import numpy as np

from engines.audio import pcm16
from engines.base import SAMPLE_RATE
from engines.strict_json import BadJson
from engines.strict_json import parse as parse_json

from .stopping import bind_stop

PLAYER_JS = (Path(__file__).with_name("player.js")).read_text(encoding="utf-8")
_SEQ = itertools.count()  # one order for every message the process sends (the browser checks it)


def _message(kind: str, **fields) -> str:
    return json.dumps({"k": kind, "seq": next(_SEQ), **fields}, separators=(",", ":"))


def _timed(word: dict) -> dict:
    """A word as the player takes it: its text, and start and end in seconds (null when not said)."""
    start, end = word.get("start"), word.get("end")
    return {
        "word": str(word["word"]),
        "start": None if start is None else round(float(start), 3),
        "end": None if end is None else round(float(end), 3),
    }


class StreamPlayer:
    """A player the app controls, built inside the caller's gr.Blocks.

    Handlers yield `start()` once per run, `piece(audio)` per chunk and `end()` last, to `output`.
    `autoplay=False` with `follows` set makes a player wait until that player's run has played to its
    end (Compare and Arena: B after A); `figures=False` hides the first-audio line (Arena, before the
    vote). `bind` names the buttons that start a run (the ear figure counts from their click) and stop it.
    """

    def __init__(
        self,
        elem_id: str,
        label: str,
        autoplay: bool = True,
        follows: StreamPlayer | None = None,
        figures: bool = True,
    ):
        self.elem_id = elem_id
        self._spec = {
            "id": elem_id,
            "label": label,
            "autoplay": autoplay,
            "follows": follows.elem_id if follows is not None and not autoplay else None,
            "figures": figures,
            "arm_on": [],  # elem_ids of the buttons that start a run (see `bind`)
            "stop_on": [],
        }
        self.output = gr.HTML(
            value="", html_template="", js_on_load=self._js(), elem_id=elem_id, label=label,
            elem_classes=["tts-player-block"],
        )  # fmt: skip
        report_js = f"(window.ttsReports = window.ttsReports || {{}})[{json.dumps(elem_id)}] = props;"
        self.report = gr.HTML(
            value="", html_template="", js_on_load=report_js, visible="hidden", elem_id=f"{elem_id}-report"
        )

    def _js(self) -> str:
        return PLAYER_JS + f"\nwindow.ttsPlayerMount(element, props, watch, {json.dumps(self._spec)});"

    @staticmethod
    def start() -> str:
        """The first value of a run: the browser stops what this player still plays and starts fresh."""
        return _message("start", run=uuid.uuid4().hex[:12])

    @staticmethod
    def piece(
        audio: np.ndarray | tuple[int, np.ndarray], ttfa_s: float | None = None, words: list[dict] | None = None
    ) -> str:
        """One chunk of int16 (or float in [-1, 1]) mono audio, or a `(sample_rate, audio)` pair;
        `ttfa_s`, the server's time to first audio, is shown next to the ear figure; `words`, the
        model's word times new with this piece (seconds from the run's first sample), for a live
        highlight."""
        rate = SAMPLE_RATE
        if isinstance(audio, tuple):
            rate, audio = audio
        pcm = base64.b64encode(pcm16(audio)).decode("ascii")
        fields = {"sr": int(rate), "pcm": pcm}
        if ttfa_s is not None:
            fields["ttfa"] = round(float(ttfa_s), 3)
        if words:
            fields["words"] = [_timed(w) for w in words]
        return _message("piece", **fields)

    @staticmethod
    def words(run: str, source: str, words: list[dict]) -> str:
        """A run's whole text with its times, sent after its audio: `source` "asr" (the alignment's
        words, with status and heard) or "model" (the model's own durations: status null)."""
        if source not in ("asr", "model"):
            raise ValueError(f"Unknown word source {source!r}.")
        entries = [
            {**_timed(w), "status": w.get("status") if source == "asr" else None, "heard": w.get("heard")}
            for w in words
        ]
        return _message("words", run=run, source=source, words=entries)

    @staticmethod
    def run_of(message: str) -> str:
        """The run id of a `start()` message."""
        return json.loads(message)["run"]

    @staticmethod
    def end() -> str:
        """The last value of a run."""
        return _message("end")

    @staticmethod
    def parse_report(value: str | None) -> dict | None:
        """The browser's report as a dict (None when empty or not a report)."""
        try:
            report = parse_json(str(value or "").encode("utf-8", "replace"))
        except BadJson:
            return None
        return report if isinstance(report, dict) and "run" in report else None

    def bind(
        self, go: gr.Button, stop: gr.Button | None = None, events: list | None = None, statuses: list | None = None
    ) -> None:
        """Inside the Blocks, before it closes: a click on `go` arms the player (the ear figure counts
        from that click, the gesture that lets audio start); a click on `stop` silences it at once, in
        the browser, cancels `events` on the server and shows "Stopped." in `statuses`
        (`ui.stopping.bind_stop`). Both buttons need an elem_id."""
        for button, key in ((go, "arm_on"), (stop, "stop_on")):
            if button is None:
                continue
            if not button.elem_id:
                raise ValueError("StreamPlayer.bind needs buttons with an elem_id.")
            self._spec[key].append(button.elem_id)
        self.output.js_on_load = self._js()
        if stop is not None and events:
            bind_stop(stop, events, statuses)

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

PLAYER_JS = (Path(__file__).with_name("player.js")).read_text(encoding="utf-8")
_SEQ = itertools.count()  # one order for every message the process sends (the browser checks it)


def _message(kind: str, **fields) -> str:
    return json.dumps({"k": kind, "seq": next(_SEQ), **fields}, separators=(",", ":"))


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
    def piece(audio: np.ndarray | tuple[int, np.ndarray], ttfa_s: float | None = None) -> str:
        """One chunk of int16 (or float in [-1, 1]) mono audio, or a `(sample_rate, audio)` pair;
        `ttfa_s`, the server's time to first audio, is shown next to the ear figure."""
        rate = SAMPLE_RATE
        if isinstance(audio, tuple):
            rate, audio = audio
        pcm = base64.b64encode(pcm16(audio)).decode("ascii")
        fields = {"sr": int(rate), "pcm": pcm}
        if ttfa_s is not None:
            fields["ttfa"] = round(float(ttfa_s), 3)
        return _message("piece", **fields)

    @staticmethod
    def end() -> str:
        """The last value of a run."""
        return _message("end")

    @staticmethod
    def parse_report(value: str | None) -> dict | None:
        """The browser's report as a dict (None when empty or not a report)."""
        try:
            report = json.loads(value or "")
        except ValueError:
            return None
        return report if isinstance(report, dict) and "run" in report else None

    def bind(self, go: gr.Button, stop: gr.Button | None = None, events: list | None = None) -> None:
        """Inside the Blocks, before it closes: a click on `go` arms the player (the ear figure counts
        from that click, the gesture that lets audio start); a click on `stop` silences it at once, in
        the browser, and cancels `events` on the server. Both buttons need an elem_id."""
        for button, key in ((go, "arm_on"), (stop, "stop_on")):
            if button is None:
                continue
            if not button.elem_id:
                raise ValueError("StreamPlayer.bind needs buttons with an elem_id.")
            self._spec[key].append(button.elem_id)
        self.output.js_on_load = self._js()
        if stop is not None and events:
            stop.click(None, None, None, cancels=events, api_visibility="private")

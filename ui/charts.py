"""Pictures for the comparison: a metrics table, a grouped bar chart and waveform + spectrogram plots; and
for the arena after a vote, the outcome next to each clip's figures and the "better-measured clip chosen" table.

Figures are plain `matplotlib.figure.Figure` objects, never registered with pyplot: nothing keeps them
once Gradio has drawn them (pyplot's figures live until closed, two per comparison on a busy page).
User text (slot names, voice names) is drawn literally (`plain`), never as mathtext.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from engines.base import SAMPLE_RATE

ROWS = (
    ("ttfa_s", "first audio on the server (s)"),
    ("ear_ttfa_s", "first audio in your browser (s)"),
    ("stalls", "stalls while playing"),
    ("total_s", "total time (s)"),
    ("speed", "× faster than real time"),
    ("duration_s", "duration (s)"),
    ("lufs", "loudness as generated (LUFS)"),
    ("error_rate", "words misheard by a speech recogniser (error rate)"),
    ("error_unit", "error rate counted per (word or character)"),
    ("similarity", "speaker similarity to the reference"),
    ("mos", "predicted quality (1–5, DNSMOS)"),
    ("transcript", "what the speech recogniser heard"),
)
# What the arena shows next to a vote's outcome: (metric key, column, format of a value)
AFTER_VOTE = (
    ("error_rate", "error rate", lambda v: f"{v:.1%}"),
    ("mos", "predicted MOS", lambda v: f"{v:.2f}"),
    ("duration_s", "duration", lambda v: f"{v:.1f} s"),
    ("ttfa_s", "first audio", lambda v: f"{v:.2f} s"),
)
FIGURE_NAMES = {"error_rate": "lower error rate", "mos": "higher predicted MOS"}
AGREEMENT_HEADERS = [
    "the better-measured clip has", "prompts", "votes (A or B chosen)", "chose it", "share (95% interval)",
    "ties and both bad",
]  # fmt: skip
TIMES = ("ttfa_s", "total_s", "duration_s")
SCORES = ("error_rate", "similarity", "mos")


def plain(text: str) -> str:
    """User text as matplotlib draws it literally: `$` escaped (else `$…$` is parsed as mathtext,
    which can fail or draw something else), at most 60 characters."""
    text = text if len(text) <= 60 else text[:59] + "…"
    text = " " + text if text.startswith("_") else text  # a legend leaves out labels starting with "_"
    return text.replace("$", r"\$")


TICKS = {
    "ttfa_s": "first audio", "total_s": "total time", "duration_s": "duration",
    "error_rate": "error rate", "similarity": "similarity", "mos": "predicted quality",
}  # fmt: skip


def _shown(metrics: dict | None) -> dict:
    """A slot's figures as the table shows them: none for a slot that failed (its zeros were never
    measured), speed as "× faster than real time" (1 / the real-time factor)."""
    m = dict(metrics or {})
    if m.get("error"):
        return {"transcript": None}
    rtf = m.get("rtf")
    m["speed"] = round(1 / rtf, 2) if rtf else None
    return m


def table(named: dict[str, dict | None]) -> list[list]:
    """Rows of `metric, <slot>, <slot>`; an en dash where a metric does not apply or was not measured."""
    shown = [_shown(m) for m in named.values()]
    return [[label, *("–" if m.get(key) is None else m[key] for m in shown)] for key, label in ROWS]


def bars(named: dict[str, dict | None]):
    """Grouped bars: seconds on the left, quality scores on the right."""
    fig = Figure(figsize=(9, 2.8), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, keys, unit in ((axes[0], TIMES, "seconds"), (axes[1], SCORES, "score")):
        x = np.arange(len(keys))
        width = 0.8 / max(1, len(named))
        for i, (name, m) in enumerate(named.items()):
            values = [np.nan if (m or {}).get(k) is None else float(m[k]) for k in keys]
            ax.bar(x + i * width - 0.4 + width / 2, values, width, label=plain(name))
        ax.set_xticks(x, [TICKS.get(k, k) for k in keys])
        ax.set_ylabel(unit)
    axes[0].legend(fontsize=8)
    return fig


def waveforms(named: dict[str, np.ndarray | None], sample_rate: int = SAMPLE_RATE):
    """Waveform above spectrogram for each clip, side by side."""
    fig = Figure(figsize=(9, 4), layout="constrained")
    axes = fig.subplots(2, len(named), squeeze=False)
    for col, (name, audio) in enumerate(named.items()):
        top, bottom = axes[0][col], axes[1][col]
        top.set_title(plain(name), fontsize=9)
        if audio is None or len(audio) == 0:
            top.text(0.5, 0.5, "no audio", ha="center", va="center", transform=top.transAxes)
            bottom.set_axis_off()
            continue
        t = np.arange(len(audio)) / sample_rate
        top.plot(t, audio, linewidth=0.4)
        top.set_xlim(0, t[-1])
        top.set_ylim(-1, 1)
        bottom.specgram(audio, NFFT=512, Fs=sample_rate, noverlap=384, cmap="magma")
        bottom.set_xlabel("seconds")
        bottom.set_ylabel("Hz")
    return fig


def outcome(clips: dict[str, tuple[str, dict | None]], outcomes: dict[str, str], better: dict[str, str | None]) -> str:
    """A Markdown table of a vote's outcome: per clip (name -> (system, metrics)) its system, what the
    vote made of it (`outcomes`), and its figures (`AFTER_VOTE`), the better of each compared figure
    marked (`better`: metric key -> clip name or None). "not measured" where a clip lacks a figure."""
    lines = [
        "| | system | vote | " + " | ".join(column for _, column, _ in AFTER_VOTE) + " |",
        "|---|---|---|" + "---|" * len(AFTER_VOTE),
    ]
    for name, (system, metrics) in clips.items():
        cells = []
        for key, _, shown in AFTER_VOTE:
            value = (metrics or {}).get(key)
            cell = "not measured" if value is None else shown(float(value))
            if key == "error_rate" and value is not None and (metrics or {}).get("error_unit"):
                cell += f" of {metrics['error_unit']}s"
            cells.append(cell + (" (better)" if better.get(key) == name else ""))
        lines.append(f"| {name} | {system} | {outcomes[name]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def agreement_rows(rows: list[dict], scope_names: dict[str, str]) -> list[list]:
    """Rows of the "better-measured clip chosen" table (`evaluation.arena.agreement`), with counts."""
    table = []
    for row in rows:
        if row["share"] is None:
            share = "–"
        else:
            share = f"{row['share']:.0%} ({row['ci_low']:.0%} – {row['ci_high']:.0%})"
        table.append(
            [
                FIGURE_NAMES.get(row["figure"], row["figure"]), scope_names.get(row["scope"], row["scope"]),
                row["votes"], row["chose_better"], share, row["undecided"],
            ]
        )  # fmt: skip
    return table

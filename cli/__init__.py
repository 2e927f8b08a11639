"""The command line: `python -m engines list | synth | batch | compare | bench | align | kokoro-voice |
script | serve` (or `python -m cli ...`).

A top-level package because it drives both `engines/` and `evaluation/` (compare); `engines/__main__.py`
is only the entry-point shim that calls `main`. `commands` holds the parser and the dispatch (`main`); each
subcommand adds its parser and runs from one module:
`speech` (list, synth, bench, and the inputs they share), `batch`, `compare`, `align`, `voice_search`
(kokoro-voice), `script`; `serve` hands over to `serve.cli` (the engine tier). Bad input ends with one
line on stderr and exit status 2, never a traceback.
"""


def main(argv: list[str] | None = None) -> int:
    """The command line (`commands.main`). Its modules are imported when it runs, not with this package,
    so that `python -m cli` checks the settings before any of them reads one (`engines.runtime.gpu` does at import)."""
    from .commands import main as run

    return run(argv)


__all__ = ["main"]

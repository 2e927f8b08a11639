"""Page-wide touches every tab shares: a character counter under each text box (the limit shown before
it bites), example buttons, and the layout on a phone.

Why example buttons and not `gr.Examples`: on Gradio 6.17.3 its gallery renders each sample through a
lazily loaded component and, on about half the page loads, reads a sample's component before it has
loaded (`TypeError: Cannot read properties of undefined (reading '0')`, four times, on the console).
A button that puts its text in the box needs no server and cannot race.

Why the page's load and owner-token handlers run outside Gradio's queue (`queue=False`): the queue
answers over one event stream per page, which the server closes once no event of the page is pending.
On Gradio 6.17.3 a new event sent while that close is on its way is lost, or its new stream is cut
(`AbortError` on the console): at load, five quick reads (the visitor's lexicon, saved voices, Compare's
voices) finished one by one and raced it on about one load in four. They are cheap reads, so they go
as plain requests, and the stream opens only for real work.
"""

from __future__ import annotations

import json

import gradio as gr

from engines.base import MAX_TEXT_CHARS

COUNTED = "tts-counted"  # elem_classes of a text box that gets a counter
HIDE_EMPTY = ["tts-hide-empty"]  # elem_classes of a file or chart box hidden while empty
# A counter under every counted text box: "n / limit characters", and one sentence once over the limit
# (the server refuses such a text in the same words, and speaks nothing). Kept up to date on typing and
# on values set by the page (examples, drawn prompts), which fire no input event.
COUNTER_JS = """
(() => {
  if (window.ttsCounters) return;
  window.ttsCounters = true;
  const LIMIT = __LIMIT__;
  const fmt = (n) => n.toLocaleString("en-US");
  function update(box) {
    const area = box.querySelector("textarea");
    if (!area) return;
    let line = box.querySelector(".tts-count");
    if (!line) {
      line = document.createElement("div");
      line.className = "tts-count";
      line.setAttribute("aria-live", "polite");
      (area.parentElement || area).after(line);
    }
    const n = area.value.length;
    const over = n > LIMIT;
    const text = over
      ? `${fmt(n)} / ${fmt(LIMIT)} characters: over the limit by ${fmt(n - LIMIT)}; shorten the text to speak it.`
      : `${fmt(n)} / ${fmt(LIMIT)} characters`;
    if (line.textContent !== text) line.textContent = text;
    line.classList.toggle("tts-count-over", over);
  }
  const all = () => document.querySelectorAll(".__CLASS__").forEach(update);
  document.addEventListener("input", (e) => {
    const box = e.target instanceof Element ? e.target.closest(".__CLASS__") : null;
    if (box) update(box);
  }, true);
  setInterval(all, 400);
  all();
})();
""".replace("__LIMIT__", str(MAX_TEXT_CHARS)).replace("__CLASS__", COUNTED)

CSS = """
.tts-count { font-size: var(--text-sm); color: var(--body-text-color-subdued); text-align: right; margin-top: 2px; }
.tts-count-over { color: var(--error-text-color, #b91c1c); font-weight: 600; }
.tts-example { min-width: 0 !important; flex: 0 1 auto !important; }
/* a file or chart box with nothing in it yet takes no room (shown once it has something) */
.tts-hide-empty:has(> .empty) { display: none !important; }
@media (max-width: 640px) {
  /* a phone: the buttons that start a run sit right under the text, the options below them */
  .tts-form { display: flex; flex-direction: column; }
  .tts-form > .tts-text-column { order: 1; }
  .tts-form > .tts-options-column { order: 3; }
  .tts-actions { order: 2; }
}
"""


def counter() -> None:
    """Inside the page's Blocks, once: the counters' script (a hidden component runs it on load)."""
    gr.HTML(value="", html_template="", js_on_load=COUNTER_JS, visible="hidden", elem_id="tts-counters")


def example_buttons(examples: list[str], target: gr.Textbox, width: int = 44) -> None:
    """A row of small buttons, one per example, each putting its text in `target` (in the browser)."""
    with gr.Row(elem_classes=["tts-examples"]):
        for example in examples:
            label = example if len(example) <= width else example[: width - 1].rstrip() + "…"
            button = gr.Button(label, size="sm", variant="secondary", elem_classes=["tts-example"])
            button.click(None, None, target, js=f"() => {json.dumps(example)}", api_visibility="private")

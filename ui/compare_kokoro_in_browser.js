// Compare's "Kokoro in this browser" slots, run by the Compare button in the page before its server event
// (ui/compare_tab.py passes this function as the click's `js`): each such slot is rendered with
// window.kokoroBrowser (ui/kokoro_in_browser.js), encoded as a 16-bit mono WAV and put, base64 in a JSON
// payload, into the slot's hidden input; the server decodes and checks it (evaluation/kokoro_in_browser_clip.py),
// plays it in the slot's player at the matched loudness and measures it like any slot's clip. A browser
// that cannot render sends {"error", "fallback"} instead: a fallback slot is rendered on the server.
// spec: {kind, module, slots: [{name, engine, voice, clip, status}] (argument positions and element ids),
//        stop, max_seconds, owner (the owner token's position: a voice the visitor found plans too)};
// args: the click's input values, returned with the clips filled in.
async function (spec, args) {
  const result = args.slice();
  const say = (id, text) => {
    const block = document.getElementById(id);
    if (!block) return;
    let line = block.querySelector("[data-browser-progress]");
    if (!line) {
      line = document.createElement("div");
      line.dataset.browserProgress = "1";
      block.appendChild(line);
    }
    line.textContent = text;
  };
  const load = async () => {
    if (!window.kokoroBrowser && !document.querySelector("script[data-kokoro-browser]")) {
      const script = document.createElement("script");
      script.src = spec.module;
      script.dataset.kokoroBrowser = "1";
      document.head.appendChild(script);
    }
    for (let i = 0; i < 300 && !window.kokoroBrowser; i++) await new Promise((r) => setTimeout(r, 100));
    if (!window.kokoroBrowser) {
      const error = new Error("This browser could not load Kokoro's script, so the server renders it.");
      error.fallback = true;
      throw error;
    }
    return window.kokoroBrowser;
  };
  const wav = (audio, rate) => {
    const bytes = new ArrayBuffer(44 + audio.length * 2);
    const view = new DataView(bytes);
    const text = (at, s) => { for (let i = 0; i < s.length; i++) view.setUint8(at + i, s.charCodeAt(i)); };
    text(0, "RIFF"); view.setUint32(4, 36 + audio.length * 2, true); text(8, "WAVE");
    text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
    view.setUint32(24, rate, true); view.setUint32(28, rate * 2, true); view.setUint16(32, 2, true);
    view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, audio.length * 2, true);
    for (let i = 0; i < audio.length; i++) {
      const s = Math.max(-1, Math.min(1, audio[i] || 0));
      view.setInt16(44 + i * 2, s < 0 ? s * 0x8000 : s * 0x7fff, true);
    }
    return new Blob([bytes], { type: "audio/wav" });
  };
  const base64 = (blob) => new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1] || "");
    reader.onerror = () => reject(new Error("This browser could not encode its clip."));
    reader.readAsDataURL(blob);
  });
  const stopButton = document.getElementById(spec.stop);
  let stopped = false;
  const onStop = () => { stopped = true; if (window.kokoroBrowser) window.kokoroBrowser.stop(); };
  if (stopButton) stopButton.addEventListener("click", onStop);
  try {
    for (const slot of spec.slots) {
      result[slot.clip] = "";
      if (args[slot.engine] !== spec.kind) continue;
      if (stopped) { result[slot.clip] = JSON.stringify({ error: "Stopped in this browser before it rendered." }); continue; }
      try {
        const kokoro = await load();
        say(slot.status, "Rendering in this browser…");
        const out = await kokoro.render(String(args[0] || ""), String(args[slot.voice] || ""), 1.0, {
          ownerToken: typeof args[spec.owner] === "string" ? args[spec.owner] : null,
          onStatus: (s) => {
            if (s.stage === "download") say(slot.status, s.total ? `Downloading the model: ${Math.round((100 * s.loaded) / s.total)} %` : "Downloading the model…");
            else if (s.stage === "chunk") say(slot.status, `Rendering in this browser: chunk ${s.index + 1} of ${s.chunks}…`);
          },
        });
        if (out.stopped) throw new Error("Stopped in this browser before it finished.");
        const rate = out.sample_rate || 24000;
        if (out.audio.length > spec.max_seconds * rate) throw new Error(`This browser's clip is over ${spec.max_seconds} s; compare a shorter text.`);
        say(slot.status, "Rendered in this browser and sent back to be measured.");
        result[slot.clip] = JSON.stringify({
          wav: await base64(wav(out.audio, rate)), backend: out.backend, ttfa_s: out.ttfa_s, rtf: out.rtf,
          total_s: out.total_s, model_download_s: out.model_download_s, chunks: out.chunks,
        });
      } catch (e) {
        const sentence = (e && e.message) || "This browser could not render it.";
        say(slot.status, sentence);
        result[slot.clip] = JSON.stringify({ error: sentence, fallback: !!(e && e.fallback) });
      }
    }
  } finally {
    if (stopButton) stopButton.removeEventListener("click", onStop);
  }
  return result;
}

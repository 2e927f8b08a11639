// The Kokoro tab's "Render in: this browser" (see ui/kokoro_in_browser.py): with that choice, a click on
// Generate is kept from the server's event and the hidden browser button's event runs instead (Gradio
// hands it the inputs' values); window.kokoroBrowser renders chunk by chunk and the chunks play through
// the tab's own player (window.ttsPlayers[id], the same messages the server sends). A browser that
// cannot run it gets one sentence and the server renders (a click on Generate let through).
// SPEC is {player, generate, go, module} (element ids and the page module's URL).
((element, spec) => {
  if (!window.kokoroBrowser && !document.querySelector("script[data-kokoro-browser]")) {
    const script = document.createElement("script");
    script.src = spec.module;
    script.dataset.kokoroBrowser = "1";
    document.head.appendChild(script);
  }
  const line = document.createElement("div");
  line.className = "kokoro-browser-line";
  line.id = "kokoro-browser-line";
  element.after(line);
  const say = (text) => { line.textContent = text; };
  let bypass = false;
  let myRun = null;

  function feed(message) {
    const player = (window.ttsPlayers || {})[spec.player];
    if (!player) return;
    if (player.feed) player.feed(message);
    else player.receive(JSON.stringify(message));
  }
  function pcmBase64(float32) {
    const bytes = new Uint8Array(float32.length * 2);
    const view = new DataView(bytes.buffer);
    for (let i = 0; i < float32.length; i++) {
      const v = Math.max(-1, Math.min(1, float32[i]));
      view.setInt16(2 * i, Math.round(v * 32767), true);
    }
    let text = "";
    for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return btoa(text);
  }
  const mb = (n) => (n / 1e6).toFixed(0);
  function describe(s) {
    if (s.stage === "plan") return "Planning the text on the server…";
    if (s.stage === "download")
      return s.total ? `Downloading Kokoro's model to this browser (once): ${mb(s.loaded)} of ${mb(s.total)} MB…`
        : "Loading Kokoro in this browser…";
    if (s.stage === "session") return "Starting Kokoro in this browser…";
    if (s.stage === "ready") return `Rendering in this browser (${s.backend})…`;
    if (s.stage === "chunk") return `Rendering in this browser: chunk ${s.index + 1} of ${s.chunks}…`;
    return "";
  }
  function summary(r, stats) {
    const parts = [`Rendered in this browser (${r.backend})`];
    if (r.model_download_s != null) parts.push(`model download ${r.model_download_s.toFixed(1)} s (first time)`);
    else if (r.model_cached && r.session_s != null) parts.push("model from this browser's cache");
    // the first-audio figure is the player's ("heard … after your click"), once; the speed in words
    if (r.rtf != null && r.rtf > 0)
      parts.push(r.rtf <= 1 ? `${(1 / r.rtf).toFixed(1)}× faster than real time` : `${r.rtf.toFixed(1)}× slower than real time`);
    const stalls = stats ? stats.stalls : 0;
    parts.push(`${stalls} stall${stalls === 1 ? "" : "s"}`);
    if (r.stopped) parts.push("stopped");
    return parts.join(" · ");
  }
  function fallback(reason) {
    say(reason);
    const button = document.getElementById(spec.generate);
    if (!button) return;
    bypass = true;
    button.click();
  }

  async function generate(text, voice, blend, speed, language, lexicon, ownerToken) {
    const kb = window.kokoroBrowser;
    const check = kb ? kb.capable() : { ok: false, reason: "Kokoro's browser module did not load, so the server renders it." };
    if (!check.ok) return fallback(check.reason);
    const run = "browser-" + Math.random().toString(36).slice(2, 10);
    myRun = run;
    feed({ k: "start", run });
    try {
      const result = await kb.render(text, (blend || "").trim() || voice, speed, {
        language,
        lexicon: lexicon && typeof lexicon === "object" ? lexicon : {},  // the visitor's pronunciations
        ownerToken: typeof ownerToken === "string" && ownerToken ? ownerToken : null,  // their found voices
        onStatus: (s) => { if (myRun === run) say(describe(s)); },
        onChunk: (audio, info) => { if (myRun === run) feed({ k: "piece", run, sr: info.sample_rate, pcm: pcmBase64(audio) }); },
      });
      if (myRun !== run) return;
      feed({ k: "end", run });
      const player = (window.ttsPlayers || {})[spec.player];
      window.kokoroBrowserLast = { ...result, audio: undefined, stalls: player ? player.stats().stalls : null };
      say(summary(result, player ? player.stats() : null));
    } catch (error) {
      if (myRun !== run) return;
      feed({ k: "end", run });
      if (error && error.fallback) fallback(error.message);
      else say((error && error.message) || "Rendering in this browser failed; please try again.");
    }
  }

  window.kokoroTab = { generate, say };
  if (!window.kokoroTabIntercept) {
    window.kokoroTabIntercept = true;
    // After the player's own document-level listeners (they arm the player and wake the audio
    // context): body, capture phase, before the button's own handler.
    document.body.addEventListener("click", (event) => {
      const target = event.target instanceof Element ? event.target.closest("#" + CSS.escape(spec.generate)) : null;
      if (!target || window.kokoroRenderIn !== "this browser") return;
      if (bypass) { bypass = false; return; }
      event.stopImmediatePropagation();
      event.preventDefault();
      const go = document.getElementById(spec.go);
      if (go) go.click();
    }, true);
    // Stop (the tab's button or the player's own): the player reports the run stopped.
    document.addEventListener("tts-played", (event) => {
      const d = event.detail || {};
      if (d.id === spec.player && d.stopped && d.run === myRun && window.kokoroBrowser) {
        window.kokoroBrowser.stop();
        myRun = null;
        say("Stopped.");
      }
    });
  }
})

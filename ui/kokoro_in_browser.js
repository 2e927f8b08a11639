// Kokoro in the visitor's browser, the page side: window.kokoroBrowser.
//   capable() -> {ok, reason}: can this browser run it (WebAssembly SIMD, a Worker, enough memory)?
//   render(text, voice, speed, {onChunk(float32Array, chunkInfo), onStatus(obj), language})
//     -> Promise<{backend, model_download_s, ttfa_s, rtf, audio: Float32Array, ...}>
//   stop(): no further chunks; the running render resolves with what it has (stopped: true).
//   capable(), info(), busy(), rendered(): see below.
// The server plans (POST /kokoro/plan: the same G2P and chunking as its own Kokoro path), one Web Worker
// (kokoro_in_browser_worker.js) holds the session for the page's lifetime and renders chunk by chunk. Figures are
// measured here: ttfa_s from render() to the first chunk's audio (the one-time model download and
// session creation excluded: they are model_download_s and session_s), rtf = compute / audio seconds.
// Errors reject with an Error whose message is one sentence for the visitor; `fallback` on it says
// the server should render instead (the browser cannot).
(() => {
  if (window.kokoroBrowser) return;
  const script = document.currentScript;
  const base = new URL(".", (script && script.src) || location.origin + "/kokoro/assets/").href;
  const MIN_MEMORY_GB = 2; // navigator.deviceMemory under this: the session (~0.4 GB) may not fit
  // (module (type () -> v128) (func (i32.const 0) i8x16.splat i8x16.popcnt drop)): valid only with SIMD
  const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11]);
  let worker = null;
  let ready = null; // promise of the worker's "ready" message
  let info = null;
  let current = null; // the render in progress: {stopped}
  let statusSink = null; // the running render's onStatus (download progress comes from the worker)
  let nextId = 0;
  let renderedCount = 0;
  const waiting = new Map(); // chunk id -> {resolve, reject}

  function failure(message, fallback) {
    const error = new Error(message);
    error.fallback = !!fallback;
    return error;
  }

  function capable() {
    try {
      if (typeof WebAssembly !== "object" || !WebAssembly.validate(SIMD_PROBE))
        return { ok: false, reason: "This browser cannot run Kokoro itself (it lacks WebAssembly SIMD), so the server renders it." };
    } catch (e) {
      return { ok: false, reason: "This browser cannot run Kokoro itself (it lacks WebAssembly SIMD), so the server renders it." };
    }
    if (typeof Worker !== "function")
      return { ok: false, reason: "This browser cannot run Kokoro itself (it has no Web Workers), so the server renders it." };
    const memory = navigator.deviceMemory;
    if (typeof memory === "number" && memory < MIN_MEMORY_GB)
      return { ok: false, reason: `This device reports ${memory} GB of memory, too little to run Kokoro in the browser (it needs ${MIN_MEMORY_GB} GB), so the server renders it.` };
    return { ok: true, reason: null };
  }

  function startWorker(plan) {
    if (ready) return ready;
    ready = new Promise((resolve, reject) => {
      try {
        worker = new Worker(base + "kokoro_in_browser_worker.js", { type: "module" });
      } catch (e) {
        reject(failure("This browser could not start a worker to run Kokoro, so the server renders it.", true));
        return;
      }
      worker.onmessage = (event) => {
        const msg = event.data;
        if (msg.type === "progress") { if (statusSink) statusSink({ stage: "download", loaded: msg.loaded, total: msg.total }); }
        else if (msg.type === "session") { if (statusSink) statusSink({ stage: "session" }); }
        else if (msg.type === "ready") { info = msg; resolve(msg); }
        else if (msg.type === "audio") { renderedCount += 1; const w = waiting.get(msg.id); waiting.delete(msg.id); if (w) w.resolve(msg); }
        else if (msg.type === "error") {
          if (msg.stage === "init") reject(failure("This browser could not load Kokoro's model, so the server renders it.", true));
          const w = waiting.get(msg.id);
          waiting.delete(msg.id);
          if (w) w.reject(failure("Kokoro failed while rendering in this browser, so the server renders it.", true));
        }
      };
      worker.onerror = () => {
        reject(failure("This browser could not start Kokoro's worker, so the server renders it.", true));
        for (const w of waiting.values()) w.reject(failure("Kokoro's worker stopped in this browser, so the server renders it.", true));
        waiting.clear();
      };
      worker.postMessage({ type: "init", model: new URL(plan.model, location.origin).href, ort: new URL(plan.ort, location.origin).href });
    });
    ready.catch(() => { if (worker) worker.terminate(); worker = null; ready = null; });
    return ready;
  }

  function renderChunk(chunk, speed, plan) {
    const id = ++nextId;
    return new Promise((resolve, reject) => {
      waiting.set(id, { resolve, reject });
      worker.postMessage({
        type: "run", id, tokens: chunk.tokens, style: chunk.style, speed, pause_s: chunk.pause_s,
        trim: plan.trim, sample_rate: plan.sample_rate,
      });
    });
  }

  async function fetchPlan(text, voice, speed, language, lexicon, ownerToken) {
    let response;
    try {
      response = await fetch(location.origin + "/kokoro/plan", {
        method: "POST", headers: { "Content-Type": "application/json" },
        // the visitor's owner token (the page's, ui/owner.py): a voice found for their clip plans too
        body: JSON.stringify({ text, voice, speed, language: language || null, lexicon: lexicon || {},
                               owner_token: ownerToken || null }),
      });
    } catch (e) {
      throw failure("The server could not be reached to plan the text; please try again.", false);
    }
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) {
      const message = body && body.error && body.error.message;
      // 503: this server cannot send the model or plan for browsers; the server path may still work
      throw failure(message || "The server could not plan the text; please try again.", response.status === 503);
    }
    return body;
  }

  async function render(text, voice, speed, options) {
    const { onChunk, onStatus, language, lexicon, ownerToken } = options || {};
    const status = (obj) => { try { if (onStatus) onStatus(obj); } catch (e) { /* the caller's problem */ } };
    stop();
    const check = capable();
    if (!check.ok) throw failure(check.reason, true);
    const me = { stopped: false };
    current = me;
    const t0 = performance.now();
    status({ stage: "plan" });
    const plan = await fetchPlan(text, voice, Number(speed) || 1, language, lexicon, ownerToken);
    if (me.stopped) return finish(me, null, [], 0, 0, null, plan);
    const firstTime = !ready;
    if (firstTime) status({ stage: "download", loaded: 0, total: 0 });
    statusSink = status;
    const started = startWorker(plan);
    const setup0 = performance.now();
    const workerInfo = await started;
    const setupS = firstTime ? (performance.now() - setup0) / 1000 : 0;
    status({ stage: "ready", backend: workerInfo.backend, model_download_s: firstTime ? workerInfo.model_download_s : null, model_cached: workerInfo.model_cached });
    const pieces = [];
    let computeS = 0;
    let ttfa = null;
    for (const [index, chunk] of plan.chunks.entries()) {
      if (me.stopped) break;
      const out = await renderChunk(chunk, Number(speed) || 1, plan);
      computeS += out.compute_s;
      if (me.stopped) break;
      if (ttfa === null) ttfa = (performance.now() - t0) / 1000 - setupS;
      pieces.push(out.audio);
      const chunkInfo = {
        index, text: chunk.text, phonemes: chunk.phonemes, compute_s: out.compute_s,
        audio_s: out.audio.length / plan.sample_rate, sample_rate: plan.sample_rate, last: index === plan.chunks.length - 1,
      };
      try { if (onChunk) onChunk(out.audio, chunkInfo); } catch (e) { /* the caller's problem */ }
      status({ stage: "chunk", ...chunkInfo, chunks: plan.chunks.length });
    }
    return finish(me, workerInfo, pieces, computeS, ttfa, setupS, plan, t0);
  }

  function finish(me, workerInfo, pieces, computeS, ttfa, setupS, plan, t0) {
    if (current === me) current = null;
    const total = pieces.reduce((n, p) => n + p.length, 0);
    const audio = new Float32Array(total);
    let at = 0;
    for (const p of pieces) { audio.set(p, at); at += p.length; }
    const sr = (plan && plan.sample_rate) || 24000;
    const audioS = total / sr;
    return {
      backend: workerInfo ? workerInfo.backend : null,
      model_download_s: workerInfo && setupS ? workerInfo.model_download_s : null,
      model_cached: workerInfo ? !!workerInfo.model_cached : null,
      session_s: workerInfo && setupS ? workerInfo.session_s : null,
      ttfa_s: ttfa, rtf: audioS ? computeS / audioS : null, audio, sample_rate: sr, audio_s: audioS,
      compute_s: computeS, chunks: pieces.length, planned_chunks: plan ? plan.chunks.length : 0,
      stopped: me.stopped, total_s: t0 ? (performance.now() - t0) / 1000 : null,
    };
  }

  function stop() {
    if (current) current.stopped = true;
    current = null;
  }

  // info(): the worker's ready message; busy(): a chunk is in the worker; rendered(): chunks done so far
  window.kokoroBrowser = { capable, render, stop, info: () => info, busy: () => waiting.size > 0, rendered: () => renderedCount };
})();

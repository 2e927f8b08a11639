// Kokoro in the visitor's browser, the Web Worker (a module worker): loads ONNX Runtime Web from this
// app (/kokoro/assets/ort-<version>/), fetches the int8 model once (kept in the Cache Storage API, so a
// second page load does not download it again; progress is posted), creates one session (WebGPU where
// the browser has an adapter, WASM otherwise), then renders chunks of token ids and posts Float32 audio,
// trimmed as the server's front-end trims it (engines.audio.trim_silence, fade_edges; the plan sends
// their numbers). Messages in: {type: "init", model, ort, backend}, {type: "run", id, tokens, style,
// speed, pause_s, trim}. Out: {type: "progress", loaded, total}, {type: "ready", backend,
// model_download_s, model_cached, session_s}, {type: "session"} (the model is here, the session starts), {type: "audio", id, audio, compute_s}, {type: "error", id, message}.
const CACHE = "kokoro-browser-model";
let ort = null;
let session = null;
let backend = null;

async function modelBytes(url) {
  let cache = null;
  try { cache = await caches.open(CACHE); } catch (e) { cache = null; } // no Cache Storage: HTTP cache only
  if (cache) {
    const hit = await cache.match(url);
    if (hit) return { bytes: new Uint8Array(await hit.arrayBuffer()), seconds: null, cached: true };
  }
  const t0 = performance.now();
  const response = await fetch(url);
  if (!response.ok) throw new Error(`The model could not be downloaded (HTTP ${response.status}).`);
  const total = Number(response.headers.get("content-length")) || 0;
  const reader = response.body.getReader();
  const parts = [];
  let loaded = 0;
  let lastPost = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    loaded += value.length;
    if (performance.now() - lastPost > 100) {
      lastPost = performance.now();
      postMessage({ type: "progress", loaded, total });
    }
  }
  postMessage({ type: "progress", loaded, total: total || loaded });
  const bytes = new Uint8Array(loaded);
  let at = 0;
  for (const part of parts) { bytes.set(part, at); at += part.length; }
  const seconds = (performance.now() - t0) / 1000;
  if (cache) {
    try {
      for (const old of await cache.keys()) if (old.url !== new URL(url, location.href).href) await cache.delete(old);
      await cache.put(url, new Response(new Blob([bytes]), { headers: { "Content-Type": "application/octet-stream" } }));
    } catch (e) { /* over quota: the next load downloads again */ }
  }
  return { bytes, seconds, cached: false };
}

async function gpuAdapter() {
  try { return navigator.gpu ? await navigator.gpu.requestAdapter() : null; } catch (e) { return null; }
}

async function init({ model, ort: ortBase, backend: wanted }) {
  const useGpu = wanted !== "wasm" && (await gpuAdapter()) !== null;
  ort = await import(ortBase + (useGpu ? "ort.webgpu.min.mjs" : "ort.wasm.min.mjs"));
  ort.env.wasm.wasmPaths = ortBase; // an absolute URL: relative ones fail to load the module
  // Threads need SharedArrayBuffer (cross-origin isolation); otherwise one thread.
  ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
  const { bytes, seconds, cached } = await modelBytes(model);
  postMessage({ type: "session" });
  const t0 = performance.now();
  const tries = useGpu ? ["webgpu", "wasm"] : ["wasm"];
  let lastError = null;
  for (const ep of tries) {
    try {
      session = await ort.InferenceSession.create(bytes, { executionProviders: [ep] });
      backend = ep;
      break;
    } catch (e) { lastError = e; }
  }
  if (!session) throw lastError || new Error("No back-end could run the model.");
  postMessage({
    type: "ready", backend, model_download_s: seconds, model_cached: cached,
    session_s: (performance.now() - t0) / 1000,
  });
}

// engines.audio.silent_edges + trim_silence + fade_edges, with the plan's numbers.
function trim(audio, sr, t, pauseS) {
  const frame = t.frame;
  const frames = Math.floor(audio.length / frame);
  let start = 0;
  let stop = audio.length;
  if (frames > 0) {
    const threshold = 10 ** (t.threshold_db / 20);
    let first = -1;
    let last = -1;
    for (let f = 0; f < frames; f++) {
      let sum = 0;
      for (let i = f * frame; i < (f + 1) * frame; i++) sum += audio[i] * audio[i];
      if (Math.sqrt(sum / frame) > threshold) { if (first < 0) first = f; last = f; }
    }
    if (first < 0) { start = 0; stop = 0; } else { start = first * frame; stop = Math.min(audio.length, (last + 1) * frame); }
  }
  const pause = Math.floor(pauseS * sr);
  if (stop <= start) return new Float32Array(pause);
  const keep = Math.floor(t.keep_s * sr);
  const head = Math.max(0, start - keep);
  const end = Math.min(audio.length, stop + keep);
  const out = new Float32Array(end - head + pause);
  out.set(audio.subarray(head, end));
  const n = Math.min(Math.floor(sr * t.fade_s), Math.floor(out.length / 2));
  for (let i = 0; i < n; i++) {
    const ramp = n > 1 ? 0.5 - 0.5 * Math.cos((Math.PI * i) / (n - 1)) : 0;
    out[i] *= ramp;
    out[out.length - 1 - i] *= ramp;
  }
  return out;
}

async function run({ id, tokens, style, speed, pause_s: pauseS, trim: t, sample_rate: sr }) {
  const ids = BigInt64Array.from([0, ...tokens, 0].map((v) => BigInt(v)));
  const feeds = {
    tokens: new ort.Tensor("int64", ids, [1, ids.length]),
    style: new ort.Tensor("float32", Float32Array.from(style), [1, style.length]),
    speed: new ort.Tensor("float32", Float32Array.from([speed]), [1]),
  };
  const t0 = performance.now();
  const out = await session.run(feeds);
  const raw = out[session.outputNames[0]].data;
  const compute_s = (performance.now() - t0) / 1000;
  const audio = trim(raw, sr, t, pauseS);
  postMessage({ type: "audio", id, audio, compute_s, raw_samples: raw.length }, [audio.buffer]);
}

self.onmessage = async (event) => {
  const msg = event.data || {};
  try {
    if (msg.type === "init") await init(msg);
    else if (msg.type === "run") await run(msg);
  } catch (e) {
    postMessage({ type: "error", id: msg.id ?? null, stage: msg.type, message: String((e && e.message) || e) });
  }
};

// The page's own audio player: Web Audio fed 16-bit PCM chunks as they arrive, gap-free at a running
// cursor. One AudioContext for the page; one TTSPlayer per player element, in window.ttsPlayers[id].
// Fed by the server (gr.HTML values, see ui/player.py) or by any script, through one entry:
// feed(message), the same messages the server sends (an object or its JSON text). Measures the ear figure (click -> the run's first sample at the output)
// and stalls (the cursor running dry before the run's end), shows them, and reports them through
// `tts-played` events on document and the player's hidden report component. Read-along: the run's words
// (from pieces' "words", the model's own times, or a "words" message after the audio) are a line of
// spans under the player; the one being played, live or on replay, has the class tts-word-now; once the
// clip has ended, dropped and substituted words get tts-word-dropped / tts-word-substituted (title: what
// was heard).
(() => {
  if (window.TTSPlayer) return;
  const LEAD_S = 0.01; // the first chunk starts this far ahead of the context's clock
  const KEEP_RUNS = 20;
  let context = null;
  let lastClick = -Infinity;

  function audioContext() {
    if (!context) {
      const Context = window.AudioContext || window.webkitAudioContext;
      context = new Context({ latencyHint: "interactive" });
    }
    return context;
  }
  // Any click or key press on the page is a user gesture: it may start (resume) the audio context.
  // A click on a player's Generate button arms it (the ear figure counts from here) and one on its
  // Stop button silences it, in the click itself (Gradio runs JS-only listeners later).
  function wake(event) {
    if (event && event.type === "click") {
      lastClick = performance.now();
      const target = event.target instanceof Element ? event.target : null;
      const hit = (ids) => target && (ids || []).some((id) => target.closest("#" + CSS.escape(id)));
      for (const player of Object.values(window.ttsPlayers || {})) {
        if (hit(player.spec.stop_on)) player.stop();
        if (hit(player.spec.arm_on)) player.arm();
      }
    }
    const ctx = audioContext();
    if (ctx.state !== "running") ctx.resume().catch(() => {});
  }
  for (const type of ["pointerdown", "keydown", "click"]) document.addEventListener(type, wake, true);

  // performance.now() at which the context time `t` reaches the speakers (output latency included).
  function audibleAt(t) {
    const ctx = audioContext();
    const stamp = ctx.getOutputTimestamp ? ctx.getOutputTimestamp() : null;
    if (stamp && stamp.performanceTime > 0) return stamp.performanceTime + (t - stamp.contextTime) * 1000;
    return performance.now() + (t - ctx.currentTime) * 1000;
  }

  const CJK = /^[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff]$/; // one character, written without spaces
  const STYLE =
    ".tts-words{margin:.4em 0 .2em;line-height:1.7}.tts-word{padding:0 .1em;border-radius:3px}" +
    ".tts-word-now{background:#fde047;color:#111}" +
    ".tts-word-dropped{text-decoration:line-through;color:#b91c1c}" +
    ".tts-word-substituted{text-decoration:underline wavy #d97706}";
  const SOURCES = {
    asr: "word times from the speech recogniser's alignment",
    model: "word times from the model's own durations",
  };

  // A piece's samples: base64 int16 LE (the server's), or an Int16Array / Float32Array (a script's).
  function samplesOf(pcm) {
    if (typeof pcm === "string") return decode(pcm);
    if (pcm instanceof Int16Array) return pcm;
    if (pcm instanceof Float32Array) {
      const out = new Int16Array(pcm.length);
      for (let i = 0; i < pcm.length; i++) out[i] = Math.max(-32768, Math.min(32767, Math.round(pcm[i] * 32767)));
      return out;
    }
    return new Int16Array(0);
  }

  function wordOf(w) {
    const time = (v) => (typeof v === "number" && isFinite(v) ? v : null);
    return {
      word: String(w.word ?? ""), start: time(w.start), end: time(w.end),
      status: w.status ?? null, heard: w.heard ?? null,
    };
  }

  function decode(b64) {
    const bytes = atob(b64);
    const out = new Int16Array(bytes.length >> 1);
    for (let i = 0, j = 0; i < out.length; i++, j += 2) {
      const v = bytes.charCodeAt(j) | (bytes.charCodeAt(j + 1) << 8);
      out[i] = v > 32767 ? v - 65536 : v;
    }
    return out;
  }

  class TTSPlayer {
    constructor(id, spec, ui) {
      this.id = id;
      this.spec = spec || {};
      this.ui = ui;
      this.runs = []; // per-run stats, newest last
      this.run = null;
      this.armedAt = null;
      this.lastSeq = -1;
      this.disorder = 0; // messages that arrived out of order (should stay 0)
      this.replayGain = null;
      this.muted = false;
      this.replaying = null; // {start, end} on the audio clock while "Play again" plays
      this.ticking = false; // the read-along highlight follows the audio
      this.nowIndex = -1; // the word highlighted now
    }

    // The click that asks for a new run: its time is where the ear figure counts from.
    arm() {
      const now = performance.now();
      this.armedAt = now - lastClick < 1500 ? lastClick : now;
    }

    // A message from the server (the gr.HTML value's JSON text).
    receive(text) {
      if (text) this.feed(text);
    }

    // The one entry for messages, the server's or any script's (an object or its JSON text):
    // {k: "start", run} | {k: "piece", run, pcm, sr, ttfa, words} | {k: "end"} |
    // {k: "words", run, source, words: [{word, start, end, status, heard}]}. Times are seconds from the
    // run's first sample; a piece's words are new ones (the model's own times).
    feed(message) {
      let msg = message;
      if (typeof msg === "string") {
        try { msg = JSON.parse(msg); } catch (e) { return; }
      }
      if (!msg || typeof msg !== "object") return;
      if (typeof msg.seq === "number") {
        if (msg.seq <= this.lastSeq) this.disorder += 1;
        this.lastSeq = msg.seq;
      }
      if (msg.k === "start") {
        this.muted = false;
        this.start(msg.run, { serverTtfa: null });
      } else if (msg.k === "piece") {
        if (this.muted) return; // the rest of a stopped run, still on its way
        if (!this.run || this.run.closed) this.start(msg.run || "?", {});
        if (msg.ttfa != null && this.run.serverTtfa == null) this.run.serverTtfa = msg.ttfa;
        this.run.pieces += 1;
        if (this.run.firstAt === null && msg.pcm) this.run.firstAt = performance.now();
        if (msg.pcm) this.push(samplesOf(msg.pcm), msg.sr || 24000);
        if (Array.isArray(msg.words) && msg.words.length) this.addWords(this.run, msg.words);
      } else if (msg.k === "end") this.end();
      else if (msg.k === "words") this.setWords(msg);
    }

    // --- read-along ---------------------------------------------------------------------------------

    // Words that came with a piece (the model's own times): appended, highlighted as they play.
    addWords(run, words) {
      run.words.push(...words.map(wordOf));
      run.wordSource = run.wordSource || "model";
      if (run === this.run) this.renderWords();
      this.watchWords();
    }

    // The run's whole text after its audio (`run` names it; else the current run): replaces the live words.
    setWords(msg) {
      const run = this.runs.find((r) => r.run === String(msg.run)) || this.run;
      if (!run || !Array.isArray(msg.words)) return;
      run.words = msg.words.map(wordOf);
      run.wordSource = msg.source || null;
      run.wordsFinal = true;
      if (run !== this.run) return;
      this.renderWords();
      if (run.closed) this.markWords();
    }

    renderWords() {
      const box = this.ui && this.ui.querySelector(".tts-words");
      if (!box) return;
      const run = this.run;
      const words = run ? run.words : [];
      box.textContent = "";
      this.nowIndex = -1;
      box.hidden = !words.length;
      box.title = run && run.wordSource ? SOURCES[run.wordSource] || "" : "";
      if (run) box.dataset.source = run.wordSource || "";
      words.forEach((w, i) => {
        if (i && !(CJK.test(words[i - 1].word) && CJK.test(w.word))) box.append(" ");
        const span = document.createElement("span");
        span.className = "tts-word";
        span.dataset.i = String(i);
        span.textContent = w.word;
        box.append(span);
      });
      if (run && run.closed && run.wordsFinal) this.markWords();
    }

    // After the clip: dropped and substituted words marked, with what was heard as their title.
    markWords() {
      const box = this.ui && this.ui.querySelector(".tts-words");
      const run = this.run;
      if (!box || !run) return;
      run.words.forEach((w, i) => {
        const span = box.querySelector(`[data-i="${i}"]`);
        if (!span) return;
        span.classList.toggle("tts-word-dropped", w.status === "dropped");
        span.classList.toggle("tts-word-substituted", w.status === "substituted");
        if (w.status === "substituted") span.title = w.heard ?? "";
        else if (w.status === "dropped") span.title = w.heard ?? "not heard";
        else span.removeAttribute("title");
      });
    }

    // Seconds into the current run's audio being heard now (live or on replay); null when not playing.
    position() {
      const ctx = audioContext();
      if (this.replaying) {
        const { start, end } = this.replaying;
        if (ctx.currentTime >= end) { this.replaying = null; return null; }
        return ctx.currentTime >= start ? ctx.currentTime - start : null;
      }
      const run = this.run;
      if (!run || run.closed || !run.segments.length || ctx.currentTime < run.segments[0][0]) return null;
      return this.playedSeconds(run);
    }

    highlight(pos) {
      const run = this.run;
      let index = -1;
      if (pos !== null && run) {
        run.words.forEach((w, i) => { if (w.start !== null && w.start <= pos) index = i; });
      }
      if (index === this.nowIndex) return;
      const box = this.ui && this.ui.querySelector(".tts-words");
      if (box) {
        for (const span of box.querySelectorAll(".tts-word-now")) span.classList.remove("tts-word-now");
        const span = index >= 0 ? box.querySelector(`[data-i="${index}"]`) : null;
        if (span) span.classList.add("tts-word-now");
      }
      this.nowIndex = index;
    }

    // Follow the audio with the highlight while a run plays or replays.
    watchWords() {
      if (this.ticking) return;
      this.ticking = true;
      const step = () => {
        const pos = this.position();
        this.highlight(pos);
        const live = this.run && !this.run.closed;
        if (pos === null && !live && !this.replaying) { this.ticking = false; return; }
        setTimeout(step, 30);
      };
      step();
    }

    // A new run: whatever the previous run still plays stops at once.
    start(runId, info) {
      this.silence();
      const ctx = audioContext();
      const leader = this.spec.follows ? window.ttsPlayers[this.spec.follows] : null;
      const waiting = !!(leader && leader.run && !leader.run.closed && !leader.run.stopped);
      // a follower's figure counts from when its leader's run ended, if that was after the click
      let t0 = this.armedAt ?? performance.now();
      if (leader && leader.run && leader.run.endAt != null && !waiting) t0 = Math.max(t0, leader.run.endAt);
      const run = {
        run: String(runId), t0, startAt: performance.now(), firstAt: null,
        waiting, pending: [], pieces: 0,
        samples: 0, sampleRate: null, sumsq: 0, segments: [], buffers: [], cursor: null, stalls: 0,
        earAt: null, ear_ttfa_s: null, serverTtfa: (info || {}).serverTtfa ?? null, serverEnded: false,
        endAt: null, closed: false, stopped: false, ended: false, gain: ctx.createGain(), sources: new Set(),
        words: [], wordSource: null, wordsFinal: false,
      };
      run.gain.connect(ctx.destination);
      this.armedAt = null;
      this.run = run;
      this.runs.push(run);
      if (this.runs.length > KEEP_RUNS) this.runs.shift();
      this.renderWords();
      this.show();
      return run;
    }

    push(int16, sampleRate) {
      const run = this.run || this.start("local", {});
      const ctx = audioContext();
      const n = int16.length;
      if (!n) return;
      const buffer = ctx.createBuffer(1, n, sampleRate);
      const data = buffer.getChannelData(0);
      let sumsq = 0;
      for (let i = 0; i < n; i++) {
        const v = int16[i] / 32768;
        data[i] = v;
        sumsq += v * v;
      }
      run.samples += n;
      run.sampleRate = sampleRate;
      run.sumsq += sumsq;
      run.buffers.push(buffer);
      if (run.waiting) run.pending.push(buffer);
      else this.schedule(run, buffer);
    }

    schedule(run, buffer) {
      const ctx = audioContext();
      const now = ctx.currentTime;
      let when;
      if (run.cursor === null) when = now + LEAD_S;
      else if (run.cursor < now) {
        // the cursor ran dry before the run's end: a stall (unless the context itself was paused)
        if (ctx.state === "running") run.stalls += 1;
        when = now + LEAD_S;
      } else when = run.cursor;
      const source = ctx.createBufferSource();
      source.buffer = buffer;
      source.connect(run.gain);
      source.start(when);
      run.sources.add(source);
      run.segments.push([when, buffer.duration]);
      run.cursor = when + buffer.duration;
      source.onended = () => {
        run.sources.delete(source);
        this.maybeFinish(run);
      };
      if (run.segments.length === 1) this.watchStart(run, when);
    }

    // The first sample is audible when the context's clock passes it: confirm, then date it exactly.
    watchStart(run, when) {
      const check = () => {
        if (run.stopped || run !== this.run && run.closed) return;
        const ctx = audioContext();
        if (ctx.currentTime >= when) {
          run.earAt = Math.max(audibleAt(when), run.t0);
          run.ear_ttfa_s = (run.earAt - run.t0) / 1000;
          this.show();
          this.report(run);
        } else setTimeout(check, 5);
      };
      check();
    }

    end() {
      const run = this.run;
      if (!run) return;
      run.serverEnded = true;
      this.maybeFinish(run);
    }

    maybeFinish(run) {
      if (run.closed || !run.serverEnded || run.waiting || run.sources.size) return;
      run.closed = true;
      run.ended = !run.stopped;
      run.endAt = run.cursor === null ? performance.now() : audibleAt(run.cursor); // its last sample
      if (run === this.run) { this.highlight(null); if (run.wordsFinal) this.markWords(); }
      this.show();
      this.report(run);
    }

    // The leader of a follower ended: the follower's run starts now (its ear figure counts from here).
    release() {
      const run = this.run;
      if (!run || !run.waiting || run.stopped) return;
      run.waiting = false;
      const leader = window.ttsPlayers[this.spec.follows];
      run.t0 = Math.max(run.t0, (leader && leader.run && leader.run.endAt) || performance.now());
      for (const buffer of run.pending.splice(0)) this.schedule(run, buffer);
      this.maybeFinish(run);
    }

    silence() {
      if (this.replayGain) { this.replayGain.disconnect(); this.replayGain = null; }
      this.replaying = null;
      this.highlight(null);
      const run = this.run;
      if (!run || run.closed) return;
      run.stopped = true;
      run.stoppedAt = audioContext().currentTime;
      run.gain.disconnect();
      for (const s of run.sources) { try { s.stop(); } catch (e) { /* already stopped */ } }
      run.sources.clear();
      run.waiting = false;
      run.closed = true;
      if (run.wordsFinal) this.markWords();
      this.show();
      this.report(run);
    }

    // Stop button: the sound stops at once, and what the stopped run still sends is dropped.
    stop() {
      this.muted = true;
      this.silence();
    }

    // Play the last run again from its start (no figures).
    replay() {
      const run = this.runs[this.runs.length - 1];
      if (!run || !run.buffers.length) return;
      if (!run.closed) return;
      wake();
      this.silence();
      const ctx = audioContext();
      const gain = ctx.createGain();
      gain.connect(ctx.destination);
      this.replayGain = gain;
      const start = ctx.currentTime + LEAD_S;
      let t = start;
      for (const buffer of run.buffers) {
        const s = ctx.createBufferSource();
        s.buffer = buffer;
        s.connect(gain);
        s.start(t);
        t += buffer.duration;
      }
      this.replaying = { start, end: t };
      this.watchWords();
    }

    playedSeconds(run) {
      run = run || this.run;
      if (!run) return 0;
      const now = run.stoppedAt ?? audioContext().currentTime;
      let played = 0;
      for (const [when, dur] of run.segments) played += Math.min(Math.max(now - when, 0), dur);
      return played;
    }

    stats(run) {
      run = run || this.run;
      if (!run) return null;
      return {
        run: run.run, pieces: run.pieces, samples: run.samples, sample_rate: run.sampleRate,
        scheduled_s: run.sampleRate ? run.samples / run.sampleRate : 0, played_s: this.playedSeconds(run),
        rms: run.samples ? Math.sqrt(run.sumsq / run.samples) : 0, ear_ttfa_s: run.ear_ttfa_s,
        server_ttfa_s: run.serverTtfa, stalls: run.stalls, ended: run.ended, stopped: run.stopped,
        waiting: run.waiting, disorder: this.disorder,
        // where the ear figure's time went: click -> the run's start message, -> its first piece
        t0_ms: run.t0, ear_at_ms: run.earAt, end_at_ms: run.endAt,
        start_ctx: run.segments.length ? run.segments[0][0] : null, end_ctx: run.cursor, // audio clock (s)
        start_msg_s: (run.startAt - run.t0) / 1000, first_piece_s: run.firstAt === null ? null : (run.firstAt - run.t0) / 1000,
      };
    }

    allStats() { return this.runs.map((r) => this.stats(r)); }

    show() {
      if (!this.ui) return;
      const run = this.run;
      const line = this.ui.querySelector(".tts-line");
      let text = "";
      if (run && this.spec.figures !== false) {
        // one figure here: when the visitor heard the first sound (the server's own figure is in the
        // tab's status line, once)
        if (run.ear_ttfa_s != null) text = `heard ${run.ear_ttfa_s.toFixed(2)} s after your click`;
        if (run.stalls) text += ` · ${run.stalls} stall${run.stalls > 1 ? "s" : ""}`;
      }
      if (run && run.stopped) text = (text ? text + " · " : "") + "stopped";
      else if (run && run.waiting) text = "waiting for the other clip to end…";
      line.textContent = text;
      this.ui.querySelector(".tts-replay").disabled = !(run && run.closed && run.buffers.length);
    }

    report(run) {
      const detail = {
        run: run.run, played_s: Math.round(this.playedSeconds(run) * 1000) / 1000,
        ear_ttfa_s: run.ear_ttfa_s == null ? null : Math.round(run.ear_ttfa_s * 1000) / 1000,
        stalls: run.stalls, ended: run.ended, stopped: run.stopped,
      };
      document.dispatchEvent(new CustomEvent("tts-played", { detail: { ...detail, id: this.id } }));
      const sink = (window.ttsReports || {})[this.id];
      if (sink) sink.value = JSON.stringify(detail);
    }
  }

  // A follower starts when its leader's run ends (Compare and Arena: B after A).
  document.addEventListener("tts-played", (event) => {
    const { id, ended, stopped } = event.detail;
    if (!ended && !stopped) return;
    for (const player of Object.values(window.ttsPlayers)) {
      if (player.spec.follows === id) {
        if (stopped) player.stop();
        else player.release();
      }
    }
  });

  window.TTSPlayer = TTSPlayer;
  window.ttsPlayers = window.ttsPlayers || {};
  window.ttsAudioContext = audioContext;
  // Mount the player of a gr.HTML element (called from its js_on_load; again after a re-mount).
  window.ttsPlayerMount = (element, props, watch, spec) => {
    const old = window.ttsPlayers[spec.id];
    const ui = document.createElement("div");
    ui.className = "tts-player";
    ui.innerHTML =
      '<span class="tts-label"></span> <button type="button" class="tts-replay" disabled>▶ Play again</button> ' +
      '<button type="button" class="tts-stop">■ Stop</button> <span class="tts-line"></span>' +
      '<div class="tts-words" hidden></div>';
    ui.querySelector(".tts-label").textContent = spec.label || "";
    element.after(ui); // outside the element: gr.HTML re-renders its template into it on every value
    const player = old || new TTSPlayer(spec.id, spec, ui);
    player.ui = ui;
    player.spec = spec;
    window.ttsPlayers[spec.id] = player;
    ui.querySelector(".tts-replay").addEventListener("click", () => player.replay());
    // the player's own Stop does what the tab's Stop does (silence here, cancel the server's run, "Stopped.")
    ui.querySelector(".tts-stop").addEventListener("click", () => {
      const tabStop = (player.spec.stop_on || []).map((id) => document.getElementById(id)).find(Boolean);
      if (tabStop) tabStop.click();
      else player.stop();
    });
    if (!document.getElementById("tts-words-style")) {
      const style = document.createElement("style");
      style.id = "tts-words-style";
      style.textContent = STYLE;
      document.head.append(style);
    }
    player.renderWords();
    player.show();
    let seen = null;
    watch("value", () => {
      if (props.value !== seen) {
        seen = props.value;
        player.receive(props.value);
      }
    });
  };
  window.ttsReportMount = (props, id) => {
    window.ttsReports = window.ttsReports || {};
    window.ttsReports[id] = props;
  };
})();

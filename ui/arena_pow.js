// The Arena's proof of work (evaluation/ballot.py): find a counter whose SHA-256 of `nonce:counter` starts
// with `bits` zero bits, in batches through Web Crypto, while the clips play. The vote button waits for it.
(() => {
  const BATCH = 512; // digests in flight at once: Web Crypto is asynchronous, one at a time is slow
  const encoder = new TextEncoder();
  const zeros = (bytes) => {
    let n = 0;
    for (const b of bytes) {
      if (b !== 0) return n + Math.clz32(b) - 24;
      n += 8;
    }
    return n;
  };
  const solve = async (nonce, bits) => {
    if (!bits) return "";
    if (!(window.crypto && crypto.subtle)) return "";
    for (let start = 0; ; start += BATCH) {
      const digests = await Promise.all(
        Array.from({ length: BATCH }, (_, i) => crypto.subtle.digest("SHA-256", encoder.encode(`${nonce}:${start + i}`))),
      );
      for (let i = 0; i < BATCH; i++) {
        if (zeros(new Uint8Array(digests[i])) >= bits) return String(start + i);
      }
    }
  };
  window.arenaPow = window.arenaPow || { nonce: null, proof: Promise.resolve(""), solve };
  // the vote's inputs with the proof as the last one, once it is found
  window.arenaVoteInputs = async (...args) => {
    const proof = await window.arenaPow.proof;
    return [...args.slice(0, -1), proof];
  };
  window.arenaChallenge = (value) => {
    let challenge;
    try {
      challenge = JSON.parse(value || "{}");
    } catch {
      return;
    }
    if (!challenge.nonce || challenge.nonce === window.arenaPow.nonce) return;
    const started = performance.now();
    window.arenaPow.nonce = challenge.nonce;
    window.arenaPow.proof = solve(challenge.nonce, challenge.bits).then((proof) => {
      window.arenaPow.ms = performance.now() - started;
      return proof;
    });
  };
})();

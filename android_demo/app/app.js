// Frontier camera demo: the phone's camera -> an exported .tflite detector (LiteRT.js) -> boxes.
//
// Everything runs in the page, on the phone; nothing is sent anywhere. State for tests and
// curious users is on `window.frontier` (see the end of this file).
import {Detector, initRuntime} from './detector.js';
import {openCamera} from './camera.js';
import {drawDetections} from './draw.js';
import {benchmark, download} from './bench.js';

const $ = (id) => document.getElementById(id);
const video = $('video');
const view = $('view');
const viewCtx = view.getContext('2d', {willReadFrequently: true});

const state = {
  detector: null, stream: null, facing: 'environment', cameraOn: false, threshold: 0.5,
  benchmarking: false, frameTimes: [], info: {models: [], litertjs: '?'},
};
const frontier = {
  ready: false, model: null, frames: 0, lastDetections: [], lastMs: null, history: [],
  messages: [], error: null, cameraError: null, lastBenchmark: null,
};
window.frontier = frontier;

// One model run at a time: the live loop, the benchmark and the test hooks share the model.
let lock = Promise.resolve();
function exclusive(fn) {
  const p = lock.then(fn);
  lock = p.catch(() => {});
  return p;
}

function message(text, level = 'info') {
  frontier.messages.push({level, text});
  if (level === 'error') frontier.error = text;
  const el = document.createElement('div');
  el.className = `message ${level}`;
  el.textContent = text;
  const box = $('messages');
  box.prepend(el);
  while (box.children.length > 4) box.lastChild.remove();
  (level === 'error' ? console.warn : console.log)(text);
}

// ---- models ---------------------------------------------------------------------------------

/** Loads a model (its embedded metadata first; `sidecar`: its .json object or null, read from
 * `sidecarFile`) and makes it the running one; a bad one leaves the current model running. */
async function switchModel(bytes, sidecar, name, sidecarFile) {
  $('stats').textContent = `loading ${name}…`;
  try {
    const det = await Detector.load(bytes, sidecar, name, sidecarFile);
    await exclusive(() => {
      const old = state.detector;
      state.detector = det;
      if (old) old.delete();
    });
    frontier.model = {name, dtype: det.dtype, height: det.height, width: det.width,
      numBoxes: det.numBoxes, labels: det.labels, resize: det.resize, metadata: det.source,
      mean: det.mean, std: det.std, color: det.color, categoryIds: det.categoryIds,
      title: det.meta.standard?.name ?? null};
    const classes = det.labels.length ? `${det.labels.length} classes` : 'unnamed classes';
    message(`model ${name}: ${det.width}×${det.height} ${det.dtype} input (${det.resize}), `
      + `${classes} (metadata: ${det.source}), ${(det.bytes / 1e6).toFixed(2)} MB`);
    return true;
  } catch (e) {
    message(`${e.message || e}${state.detector ? ` — still running ${state.detector.name}` : ''}`, 'error');
    return false;
  }
}

async function fetchBytes(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

async function loadBundled(entry) {
  try {
    const bytes = await fetchBytes(entry.file);
    // bundled only when the build found one: the model's embedded metadata is enough
    const sidecar = entry.meta ? JSON.parse(new TextDecoder().decode(await fetchBytes(entry.meta))) : null;
    return await switchModel(bytes, sidecar, entry.name, entry.meta?.split('/').pop());
  } catch (e) {
    message(`${entry.file}: cannot load (${e.message || e})`, 'error');
    return false;
  }
}

/** A .tflite (and optionally its .json sidecar, for exports older than the embedded
 * metadata) picked from the phone's storage. */
async function loadFiles(files) {
  const list = [...files];
  const json = list.find((f) => f.name.toLowerCase().endsWith('.json'));
  const model = list.find((f) => f !== json);
  if (!model) {
    message(`${list.map((f) => f.name).join(', ') || 'nothing'}: pick a .tflite model (and optionally its .json)`, 'error');
    return false;
  }
  let meta = null;
  if (json) {
    try {
      meta = JSON.parse(await json.text());
    } catch (e) {
      message(`${json.name}: not valid JSON (${e.message}) — still running ${state.detector?.name ?? 'no model'}`, 'error');
      return false;
    }
  }
  return switchModel(new Uint8Array(await model.arrayBuffer()), meta, model.name, json?.name);
}

// ---- camera and the live loop ------------------------------------------------------------------

async function startCamera() {
  try {
    state.stream = await openCamera(video, state.facing, state.stream);
    state.cameraOn = true;
    frontier.cameraError = null;
  } catch (e) {
    state.cameraOn = false;
    frontier.cameraError = e.message;
    message(e.message, 'error');
    drawTestPattern();
  }
}

/** What the view shows without a camera (and what the benchmark then runs on). */
function drawTestPattern() {
  view.width = 640; view.height = 480;
  const g = viewCtx.createLinearGradient(0, 0, 640, 480);
  g.addColorStop(0, '#345'); g.addColorStop(1, '#a98');
  viewCtx.fillStyle = g; viewCtx.fillRect(0, 0, 640, 480);
  viewCtx.fillStyle = '#e33'; viewCtx.beginPath(); viewCtx.arc(200, 220, 90, 0, 2 * Math.PI); viewCtx.fill();
  viewCtx.fillStyle = '#3c6'; viewCtx.fillRect(360, 140, 170, 170);
}

async function processFrame() {
  const det = state.detector;
  const w = video.videoWidth; const h = video.videoHeight;
  if (!det || !w || !h) return;
  if (view.width !== w || view.height !== h) { view.width = w; view.height = h; }
  viewCtx.drawImage(video, 0, 0, w, h);  // the model sees exactly the frame that is shown
  const r = await det.detect(view, w, h, state.threshold);
  drawDetections(viewCtx, r.detections, w, h);
  const t = performance.now();
  state.frameTimes.push(t);
  while (state.frameTimes[0] < t - 2000) state.frameTimes.shift();
  const fps = state.frameTimes.length > 1
    ? (state.frameTimes.length - 1) * 1000 / (t - state.frameTimes[0]) : 0;
  frontier.frames += 1;
  frontier.fps = fps;
  frontier.lastDetections = r.detections;
  frontier.lastMs = r.ms;
  frontier.history.push(r.detections);
  if (frontier.history.length > 100) frontier.history.shift();
  $('stats').textContent = `${fps.toFixed(1)} FPS · ${r.ms.end_to_end.toFixed(1)} ms/frame `
    + `(resize ${r.ms.preprocess.toFixed(1)}, invoke ${r.ms.invoke.toFixed(1)}, `
    + `parse ${r.ms.postprocess.toFixed(1)}) · ${r.detections.length} objects · ${det.name}`;
}

/** Resolves at the camera's next new frame (so FPS counts camera frames, not repaints). */
function nextFrame() {
  return new Promise((resolve) => {
    if (state.cameraOn && video.requestVideoFrameCallback) {
      video.requestVideoFrameCallback(() => resolve());
      setTimeout(resolve, 250);  // a stalled or closed camera must not stop the loop
    } else {
      requestAnimationFrame(() => resolve());
    }
  });
}

async function loop() {
  for (;;) {
    await nextFrame();
    if (!state.cameraOn || state.benchmarking || !state.detector || video.readyState < 2) continue;
    try {
      await exclusive(processFrame);
    } catch (e) {
      message(`${state.detector?.name}: inference failed (${e.message || e})`, 'error');
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

// ---- benchmark ----------------------------------------------------------------------------------

async function runBenchmark(runs = 100, warmup = 10) {
  if (!state.detector) { message('benchmark: no model loaded', 'error'); return null; }
  state.benchmarking = true;
  $('bench').disabled = true;
  $('stats').textContent = `benchmark: ${warmup} + ${runs} frames of ${state.detector.name}…`;
  try {
    if (!view.width || !view.height) drawTestPattern();
    const still = document.createElement('canvas');  // a frozen frame: every run sees the same input
    still.width = view.width; still.height = view.height;
    still.getContext('2d').drawImage(view, 0, 0);
    const report = await exclusive(() => benchmark(state.detector, still, still.width, still.height,
      {runs, warmup, version: state.info.litertjs}));
    frontier.lastBenchmark = report;
    const s = report.results[0].stages_ms;
    $('bench-result').textContent = `${report.results[0].model}: invoke median ${s.invoke.median.toFixed(2)} ms, `
      + `p90 ${s.invoke.p90.toFixed(2)} ms; end to end ${s.end_to_end.median.toFixed(2)} ms `
      + `(${runs} frames, litert.js ${state.info.litertjs}, 1 thread)`;
    return report;
  } catch (e) {
    message(`benchmark failed: ${e.message || e}`, 'error');
    return null;
  } finally {
    state.benchmarking = false;
    $('bench').disabled = false;
  }
}

// ---- wiring -----------------------------------------------------------------------------------

function wire() {
  $('threshold').addEventListener('input', (e) => {
    state.threshold = Number(e.target.value);
    $('threshold-value').textContent = state.threshold.toFixed(2);
  });
  state.threshold = Number($('threshold').value);
  $('threshold-value').textContent = state.threshold.toFixed(2);
  $('switch').addEventListener('click', async () => {
    state.facing = state.facing === 'environment' ? 'user' : 'environment';
    await startCamera();
  });
  $('model').addEventListener('change', async (e) => {
    const entry = state.info.models.find((m) => m.id === e.target.value);
    if (entry) await loadBundled(entry);
  });
  $('load').addEventListener('click', () => $('file').click());
  $('file').addEventListener('change', async (e) => {
    if (e.target.files.length) await loadFiles(e.target.files);
    e.target.value = '';
  });
  $('bench').addEventListener('click', async () => {
    const report = await runBenchmark(Math.max(1, Number($('bench-runs').value) || 100));
    if (report) {
      const stamp = report.date.replace(/[:.]/g, '-');
      download(report, `benchmark-${report.results[0].model.replace(/\.tflite$/, '')}-${stamp}.json`);
    }
  });
}

async function main() {
  wire();
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.register('sw.js').catch((e) => console.warn('no offline cache:', e));
  }
  try {
    state.info = await (await fetch('build-info.json')).json();
  } catch (e) {
    message('build-info.json is missing: build the app with `make android-demo`', 'error');
  }
  for (const m of state.info.models) $('model').add(new Option(m.label, m.id));
  const runtime = initRuntime().catch((e) => {
    message(`LiteRT.js runtime failed to load (${e.message || e})`, 'error');
  });
  await Promise.all([startCamera(), runtime.then(() => state.info.models[0] && loadBundled(state.info.models[0]))]);
  frontier.ready = true;
  loop();
}

// Test hooks (used by tests/test_android_demo.py; harmless for users).
frontier.loadFiles = loadFiles;
frontier.runBenchmark = runBenchmark;
/** Runs the current model on RGB pixels (base64, exactly the model's size): all four outputs. */
frontier.detectRgb = (base64) => exclusive(async () => {
  const det = state.detector;
  det.setRgb(Uint8Array.from(atob(base64), (c) => c.charCodeAt(0)));
  const out = await det.invoke();
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, Array.from(v)]));
});
/** The current model's detections (labels and all, score >= 0) on RGB pixels as above. */
frontier.detectionsRgb = (base64) => exclusive(async () => {
  const det = state.detector;
  det.setRgb(Uint8Array.from(atob(base64), (c) => c.charCodeAt(0)));
  return det.parse(await det.invoke(), 0);
});

main();

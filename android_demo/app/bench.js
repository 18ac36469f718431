// The in-browser benchmark, as JSON in the schema of `python -m edge_runtime benchmark`
// (edge_runtime/benchmark.py), so the benchmark report can put "phone (browser)" next to the
// Raspberry Pi and the desktop.
import {wasmHeapMb, wasmVariant} from './detector.js';

const STAGES = ['preprocess', 'invoke', 'postprocess', 'end_to_end'];

/** Median, p90, p99 (linear interpolation, as numpy.percentile), mean, min of milliseconds. */
export function summarize(ms) {
  const a = [...ms].sort((x, y) => x - y);
  const q = (p) => {
    const k = (a.length - 1) * p; const f = Math.floor(k); const c = Math.min(f + 1, a.length - 1);
    return a[f] + (a[c] - a[f]) * (k - f);
  };
  return {median: q(0.5), p90: q(0.9), p99: q(0.99), mean: a.reduce((s, v) => s + v, 0) / a.length,
    min: a[0], n: a.length};
}

export function machineInfo() {
  const ua = navigator.userAgent;
  const platform = navigator.userAgentData?.platform || navigator.platform || '';
  return {cpu: `${platform || 'unknown platform'} (browser)`, cores: navigator.hardwareConcurrency || null, arch: platform,
    os: ua, user_agent: ua, python: null, hostname: location.host};
}

/**
 * Times `runs` frames (after `warmup` untimed ones) of `detector` on `source` (sw x sh), one
 * after another. Returns the report {tool, machine, date, results: [one result]}.
 */
export async function benchmark(detector, source, sw, sh, {runs = 100, warmup = 10, version = '?'} = {}) {
  const times = Object.fromEntries(STAGES.map((s) => [s, []]));
  for (let i = 0; i < warmup + runs; i++) {
    const {ms} = await detector.detect(source, sw, sh, 0);
    if (i >= warmup) for (const s of STAGES) times[s].push(ms[s]);
  }
  const stages = Object.fromEntries(STAGES.map((s) => [s, summarize(times[s])]));
  const result = {
    model: detector.name, path: detector.name, model_bytes: detector.bytes,
    quantize: detector.meta.export?.quantize ?? null,
    input: {shape: [1, detector.height, detector.width, 3], dtype: detector.dtype},
    image: [sh, sw, 3], interpolation: 'canvas drawImage', threads: 1, runs, warmup,
    runtime: {runtime: 'litert.js', version, accelerator: 'wasm (XNNPACK, single thread)', wasm: wasmVariant},
    stages_ms: stages,
    fps: 1000 / stages.end_to_end.median,
    overhead_fraction: (stages.preprocess.median + stages.postprocess.median) / stages.invoke.median,
    peak_rss_mb: wasmHeapMb(),
    memory_note: 'peak_rss_mb is the LiteRT.js WebAssembly heap: a web page cannot read its process RSS',
    invoke_note: 'invoke = LiteRT.js run() plus copying the four outputs out of the WebAssembly heap',
    timer_note: 'performance.now() is coarsened by the browser (0.1 ms without cross-origin isolation)',
  };
  return {tool: 'android_demo (litert.js in the browser)', machine: machineInfo(),
    date: new Date().toISOString(), results: [result]};
}

/** Offers `report` as a file download. */
export function download(report, filename) {
  const blob = new Blob([JSON.stringify(report, null, 1)], {type: 'application/json'});
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}

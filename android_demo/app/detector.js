// A .tflite detector run by LiteRT.js (WebAssembly, XNNPACK): frame in, detections out.
//
// Mirrors edge_runtime/detector.py: the input is stretched (SSD; or letterboxed, centred on
// grey, if the metadata says "resize": "letterbox…") to the model's [1, H, W, 3] input, or, for
// "resize": "keep_aspect_ratio" (Faster R-CNN, R-FCN), scaled as in training and put at the
// top-left of the input on black (zero) padding; given as raw uint8 pixels or float32
// (pixel - mean) / std (per channel if the metadata says so); the four outputs are read by
// their signature names, and only the first num_detections rows are valid (LiteRT.js leaves
// the rest uninitialised). The metadata is the model's own (metadata.js), else its sidecar.
import {loadLiteRt, loadAndCompile, Tensor, getGlobalLiteRt, supportsFeature} from './vendor/litertjs/core.js';
import {isTflite, withStaticOutputShapes, OUTPUTS} from './tflite_patch.js';
import {modelMetadata, sidecarName} from './metadata.js';

let runtime = null;

/** Which WebAssembly build LiteRT.js loads here (it picks by browser support). */
export let wasmVariant = null;

/** Loads the LiteRT.js WebAssembly runtime once (no threads: they need cross-origin isolation). */
export function initRuntime(wasmDir = './vendor/litertjs/wasm/') {
  runtime ??= (async () => {
    wasmVariant = (await supportsFeature('relaxedSimd'))
      ? 'litert_wasm_internal (relaxed SIMD)' : 'litert_wasm_compat_internal (no relaxed SIMD)';
    return loadLiteRt(wasmDir);
  })().catch((e) => { runtime = null; throw e; });
  return runtime;
}

/** Size of the WebAssembly heap in MB (it only grows: the runtime's peak memory). */
export function wasmHeapMb() {
  try { return getGlobalLiteRt().liteRtWasm.HEAPU8.buffer.byteLength / 2 ** 20; } catch { return null; }
}

const now = () => performance.now();

/** Python's round() for x >= 0: halves go to the even integer (as tf.round in training). */
function roundHalfEven(x) {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * The size [h, w] an image of `sh` x `sw` pixels gets inside an `inH` x `inW` input of a
 * keep_aspect_ratio model: the shorter edge becomes `minDim` unless the longer would pass
 * `maxDim` (edge_runtime's Detector.scaled_size, the training resizer's rule, its rounding too).
 */
export function keepAspectSize(sh, sw, inH, inW, minDim, maxDim) {
  const scale = Math.min(minDim / Math.min(sh, sw), maxDim / Math.max(sh, sw));
  return [Math.min(Math.max(roundHalfEven(sh * scale), 1), inH),
    Math.min(Math.max(roundHalfEven(sw * scale), 1), inW)];
}

/**
 * The four outputs of TFLite_Detection_PostProcess -> [{box, classId, label, score}], as
 * edge_runtime/detector.py's parse_outputs does: the first num_detections rows scoring
 * >= threshold, boxes clipped to [0, 1] (the op never clips; then mapped from the model's
 * input to the source through `frame`, the letterbox, and clipped again), and rows whose box
 * has zero area (decoded wholly outside the image, or wholly on the letterbox's padding)
 * dropped, as TensorFlow's batch_multiclass_nms drops them. Order (by score) kept.
 * `frame`: {x0, y0, sx, sy} model-normalised -> source-normalised; `label`: classId -> name.
 */
export function parseOutputs(out, threshold = 0, frame = {x0: 0, y0: 0, sx: 1, sy: 1},
  label = (c) => `class ${c}`) {
  const n = Math.max(0, Math.min(Math.round(out.num_detections[0]), out.detection_scores.length));
  const {x0, y0, sx, sy} = frame;
  const clip = (v) => Math.min(1, Math.max(0, v));
  const dets = [];
  for (let i = 0; i < n; i++) {
    const score = out.detection_scores[i];
    if (!(score >= threshold)) continue;
    const b = out.detection_boxes; const o = 4 * i;
    const box = [clip((clip(b[o]) - y0) * sy), clip((clip(b[o + 1]) - x0) * sx),
      clip((clip(b[o + 2]) - y0) * sy), clip((clip(b[o + 3]) - x0) * sx)];
    if (!(box[2] > box[0] && box[3] > box[1])) continue;  // zero area after clipping
    const classId = Math.round(out.detection_classes[i]);
    dets.push({box, classId, label: label(classId), score});
  }
  return dets;
}

/**
 * Pixels (`stride` values each: 3 RGB, 4 RGBA) -> the model input `out` (H * W * 3): raw for
 * a Uint8Array, else (pixel - mean[c]) / std[c] per channel c, as edge_runtime's to_input.
 */
export function toInput(px, stride, out, mean, std) {
  const n = out.length / 3;
  if (out instanceof Uint8Array) {
    for (let i = 0, j = 0; i < n; i++, j += stride) {
      out[3 * i] = px[j]; out[3 * i + 1] = px[j + 1]; out[3 * i + 2] = px[j + 2];
    }
    return;
  }
  const [a0, a1, a2] = std.map((s) => 1 / s);
  const [b0, b1, b2] = mean.map((m, c) => m / std[c]);
  for (let i = 0, j = 0; i < n; i++, j += stride) {
    out[3 * i] = px[j] * a0 - b0; out[3 * i + 1] = px[j + 1] * a1 - b1; out[3 * i + 2] = px[j + 2] * a2 - b2;
  }
}

export class Detector {
  /**
   * bytes: Uint8Array of the .tflite; sidecar: its .json object or null (`sidecarFile`: that
   * file's name); name: for messages. The metadata embedded in the model comes first; a
   * sidecar that disagrees with it is an error. Throws an Error naming the file and the
   * problem for anything that is not a detector.
   */
  static async load(bytes, sidecar, name, sidecarFile = sidecarName(name)) {
    if (!isTflite(bytes)) {
      throw new Error(`${name}: not a .tflite model (no "TFL3" file identifier)`);
    }
    const {meta, source} = await modelMetadata(bytes, sidecar, name, sidecarFile);
    let fixed;
    try {
      fixed = withStaticOutputShapes(bytes, meta?.postprocess?.max_detections);
    } catch (e) {
      throw new Error(e instanceof RangeError ? `${name}: truncated or corrupt .tflite (${e.message})`
        : `${name}: ${e.message}`);
    }
    await initRuntime();
    let model;
    try {
      model = await loadAndCompile(fixed.bytes, {accelerator: 'wasm'});
    } catch (e) {
      throw new Error(`${name}: LiteRT.js cannot load it (${e.message || e})`);
    }
    try {
      return new Detector(model, meta, name, bytes.length, fixed.info.numBoxes, source);
    } catch (e) {
      model.delete();
      throw e;
    }
  }

  constructor(model, meta, name, size, numBoxes, source = meta ? 'sidecar' : 'none') {
    this.model = model;
    this.meta = meta || {};
    this.source = source;  // where the metadata came from: embedded, embedded + sidecar, sidecar, none
    this.name = name;
    this.bytes = size;
    this.numBoxes = numBoxes;
    const inputs = model.getInputDetails();
    const shape = inputs.length === 1 ? Array.from(inputs[0].shape) : [];
    if (shape.length !== 4 || shape[0] !== 1 || shape[3] !== 3) {
      throw new Error(`${name}: expected one [1, H, W, 3] image input, got `
        + JSON.stringify(inputs.map((d) => Array.from(d.shape))));
    }
    const names = model.getOutputDetails().map((d) => d.name);
    if (!OUTPUTS.every((o) => names.includes(o))) {
      throw new Error(`${name}: outputs [${names.join(', ')}] are not the four-output detection layout`);
    }
    this.inputName = inputs[0].name;
    [, this.height, this.width] = shape;
    this.dtype = inputs[0].dtype;
    if (this.dtype !== 'uint8' && this.dtype !== 'float32') {
      throw new Error(`${name}: unsupported input dtype ${this.dtype} (uint8 or float32 only)`);
    }
    const mi = this.meta.input || {};
    // one value or one per channel; uint8 models take raw pixels (their metadata says 0 and 1)
    const channels = (v, dflt) => (Array.isArray(v) ? v.map(Number) : Array(3).fill(Number(v ?? dflt)));
    this.mean = this.dtype === 'float32' ? channels(mi.mean, 127.5) : [0, 0, 0];
    this.std = this.dtype === 'float32' ? channels(mi.std, 127.5) : [1, 1, 1];
    this.color = String(mi.color ?? 'RGB');
    if (this.color !== 'RGB') {  // the camera gives RGB; a grey model would silently see colour
      throw new Error(`${name}: its metadata says the input colour space is ${this.color}; `
        + 'this app feeds RGB camera frames');
    }
    this.resize = String(mi.resize || 'stretch');
    this.letterbox = this.resize.startsWith('letterbox');
    this.keepAspectRatio = this.resize === 'keep_aspect_ratio';
    if (this.keepAspectRatio) {
      this.minDimension = Number(mi.min_dimension);
      this.maxDimension = Number(mi.max_dimension);
      if (!(this.minDimension > 0 && this.maxDimension > 0)) {
        throw new Error(`${name}: its metadata says "resize": "keep_aspect_ratio" without positive `
          + '"min_dimension" and "max_dimension"');
      }
    }
    this.labels = this.meta.labels || [];
    this.categoryIds = this.meta.category_ids || null;  // COCO ids (frontier.json), else class + 1
    this.input = this.dtype === 'uint8' ? new Uint8Array(this.height * this.width * 3)
      : new Float32Array(this.height * this.width * 3);
    this.canvas = document.createElement('canvas');
    this.canvas.width = this.width;
    this.canvas.height = this.height;
    this.ctx = this.canvas.getContext('2d', {willReadFrequently: true});
    this.frame = {x0: 0, y0: 0, sx: 1, sy: 1};  // model-normalised -> source-normalised
  }

  label(c) { return c >= 0 && c < this.labels.length ? this.labels[c] : `class ${c}`; }

  /**
   * Where a `sw` x `sh` source goes in the input of a keep_aspect_ratio model: its scaled size
   * {height, width} at the top-left, and the `frame` that maps boxes back (the window
   * (height / H, width / W) of edge_runtime's parse: boxes are divided by it).
   */
  keepAspectFrame(sw, sh) {
    const [height, width] = keepAspectSize(sh, sw, this.height, this.width,
      this.minDimension, this.maxDimension);
    return {height, width, frame: {x0: 0, y0: 0, sx: this.width / width, sy: this.height / height}};
  }

  /** Draws `source` (video, canvas, image) of `sw` x `sh` pixels into the model input. */
  preprocess(source, sw, sh) {
    const {width: w, height: h, ctx} = this;
    if (this.letterbox) {  // keep the aspect ratio, pad with grey; remember how to map boxes back
      const s = Math.min(w / sw, h / sh);
      const dw = sw * s; const dh = sh * s;
      ctx.fillStyle = 'rgb(128,128,128)';
      ctx.fillRect(0, 0, w, h);
      ctx.drawImage(source, 0, 0, sw, sh, (w - dw) / 2, (h - dh) / 2, dw, dh);
      this.frame = {x0: (w - dw) / 2 / w, y0: (h - dh) / 2 / h, sx: w / dw, sy: h / dh};
    } else if (this.keepAspectRatio) {  // scaled as in training, top-left, zero (black) padding
      const {height: dh, width: dw, frame} = this.keepAspectFrame(sw, sh);
      ctx.fillStyle = 'rgb(0,0,0)';
      ctx.fillRect(0, 0, w, h);
      ctx.drawImage(source, 0, 0, sw, sh, 0, 0, dw, dh);
      this.frame = frame;
    } else {
      ctx.drawImage(source, 0, 0, sw, sh, 0, 0, w, h);
      this.frame = {x0: 0, y0: 0, sx: 1, sy: 1};
    }
    this.setRgba(ctx.getImageData(0, 0, w, h).data);
  }

  /** RGBA pixels (the model's size) -> the input tensor's data. */
  setRgba(rgba) { toInput(rgba, 4, this.input, this.mean, this.std); }

  /**
   * RGB uint8 pixels [H * W * 3] of exactly the model's size -> the input (no resizing); the
   * boxes are then read relative to the whole input (set `frame` after it, e.g. to
   * keepAspectFrame(...).frame, for pixels already scaled and padded elsewhere).
   */
  setRgb(rgb) {
    if (rgb.length !== this.input.length) {
      throw new Error(`expected ${this.height}x${this.width}x3 pixels, got ${rgb.length} values`);
    }
    toInput(rgb, 3, this.input, this.mean, this.std);
    this.frame = {x0: 0, y0: 0, sx: 1, sy: 1};
  }

  /** Runs the model on the current input: {output name: Float32Array copy}. */
  async invoke() {
    const tensor = new Tensor(this.input, [1, this.height, this.width, 3]);
    let result;
    try {
      result = await this.model.run({[this.inputName]: tensor});
    } finally {
      tensor.delete();
    }
    const out = {};
    for (const [name, t] of Object.entries(result)) {
      if (OUTPUTS.includes(name)) out[name] = Float32Array.from(t.toTypedArray());
      t.delete();
    }
    return out;
  }

  /**
   * The valid rows above `threshold`: [{box: [ymin, xmin, ymax, xmax] of the source, classId,
   * label, score, categoryId}] (categoryId as edge_runtime detect writes it).
   */
  parse(out, threshold = 0) {
    const dets = parseOutputs(out, threshold, this.frame, (c) => this.label(c));
    for (const d of dets) d.categoryId = this.categoryIds?.[d.classId] ?? d.classId + 1;
    return dets;
  }

  /** preprocess + invoke + parse of one frame, with the time of each stage in ms. */
  async detect(source, sw, sh, threshold) {
    const t0 = now();
    this.preprocess(source, sw, sh);
    const t1 = now();
    const out = await this.invoke();
    const t2 = now();
    const detections = this.parse(out, threshold);
    const t3 = now();
    return {detections, out, ms: {preprocess: t1 - t0, invoke: t2 - t1, postprocess: t3 - t2, end_to_end: t3 - t0}};
  }

  delete() { this.model.delete(); }
}

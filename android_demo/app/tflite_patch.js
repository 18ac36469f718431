// Gives the four detection outputs of a .tflite their static shapes, in the model bytes.
//
// Why: convert/ (like every TF2 export with TFLite_Detection_PostProcess) writes the op's
// outputs with an empty shape; the op sets their size at Prepare time. ai-edge-litert copes,
// but LiteRT.js 2.5 allocates each output buffer from the static shape (zero bytes) and the
// op then writes out of bounds ("memory access out of bounds"). We append shape vectors
// [1, N, 4], [1, N], [1, N], [1] to the flatbuffer and point the output tensors at them,
// N = max_detections * max_classes_per_detection read from the op's own options.
//
// Only what is needed of the schema (tensorflow/lite/schema/schema.fbs) is read here.
import {Reader} from './flatbuffer.js';

const MAGIC = 'TFL3';
export const OUTPUTS = ['detection_boxes', 'detection_classes', 'detection_scores', 'num_detections'];

/** True when the bytes carry the TFLite file identifier ("TFL3" at byte 4). */
export function isTflite(bytes) {
  return bytes.length >= 8 && String.fromCharCode(...bytes.subarray(4, 8)) === MAGIC;
}

/** The int entries of a FlexBuffer map (the custom options of TFLite_Detection_PostProcess). */
export function flexbufferIntMap(bytes) {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const uint = (p, w) => (w === 1 ? v.getUint8(p) : w === 2 ? v.getUint16(p, true)
    : w === 4 ? v.getUint32(p, true) : Number(v.getBigUint64(p, true)));
  const n = bytes.length;
  const rootWidth = v.getUint8(n - 1);
  const rootType = v.getUint8(n - 2);
  if ((rootType >> 2) !== 9) throw new Error('custom options are not a FlexBuffer map');
  const rootPos = n - 2 - rootWidth;
  const values = rootPos - uint(rootPos, rootWidth);
  const w = 1 << (rootType & 3);
  const size = uint(values - w, w);
  const keysWidth = uint(values - 2 * w, w);
  const keys = values - 3 * w - uint(values - 3 * w, w);
  const out = {};
  for (let k = 0; k < size; k++) {
    const kp = keys + k * keysWidth;
    const s = kp - uint(kp, keysWidth);
    let e = s;
    while (bytes[e] !== 0) e++;
    const name = new TextDecoder().decode(bytes.subarray(s, e));
    const type = v.getUint8(values + size * w + k) >> 2;
    const p = values + k * w;
    if (type === 1) out[name] = w === 8 ? Number(v.getBigInt64(p, true))
      : w === 4 ? v.getInt32(p, true) : w === 2 ? v.getInt16(p, true) : v.getInt8(p);
    else if (type === 2) out[name] = uint(p, w);
  }
  return out;
}

/**
 * Reads the detection layout of a .tflite: {outputs: {name: tensorIndex}, numBoxes, shapes}
 * (outputs by the signature's names; numBoxes from the post-processing op, or null: then
 * withStaticOutputShapes takes it from the static output shape).
 */
export function describe(bytes) {
  const r = new Reader(bytes);
  const model = r.root();
  const [subgraphs, nSub] = r.vector(model, 2);
  if (!nSub) throw new Error('the model has no subgraph');
  const graph = r.table(subgraphs, 0);
  const [tensors] = r.vector(graph, 0);
  const outputs = {};
  const [sigs, nSigs] = r.vector(model, 7);
  if (nSigs) {
    const sig = r.table(sigs, 0);
    const [maps, nMaps] = r.vector(sig, 1);
    for (let k = 0; k < nMaps; k++) {
      const m = r.table(maps, k);
      outputs[r.string(m, 0)] = r.int(m, 1);
    }
  }
  const shapes = {};
  for (const [name, index] of Object.entries(outputs)) {
    const [p, n] = r.vector(r.table(tensors, index), 0);
    shapes[name] = Array.from({length: n}, (_, k) => r.i32(p + 4 * k));
  }
  return {outputs, shapes, numBoxes: postprocessBoxes(r, model, graph)};
}

function postprocessBoxes(r, model, graph) {
  const [codes, nCodes] = r.vector(model, 1);
  let code = -1;
  for (let k = 0; k < nCodes; k++) {
    if (r.field(r.table(codes, k), 1) && r.string(r.table(codes, k), 1) === 'TFLite_Detection_PostProcess') code = k;
  }
  if (code < 0) return null;
  const [ops, nOps] = r.vector(graph, 3);
  for (let k = 0; k < nOps; k++) {
    const op = r.table(ops, k);
    if (r.int(op, 0) !== code) continue;
    const [p, n] = r.vector(op, 5, 1);  // custom_options (bytes)
    if (!n) return null;
    const opts = flexbufferIntMap(r.b.subarray(p, p + n));
    return (opts.max_detections || 0) * (opts.max_classes_per_detection || 1) || null;
  }
  return null;
}

/**
 * Returns model bytes whose four detection outputs have static shapes (a new array when it
 * had to patch, the same bytes when they already had shapes). `fallbackBoxes`: N when the
 * op's options cannot be read (e.g. from the sidecar metadata).
 */
export function withStaticOutputShapes(bytes, fallbackBoxes = null) {
  const info = describe(bytes);
  const missing = OUTPUTS.filter((name) => !(name in info.outputs));
  if (missing.length) {
    const have = Object.keys(info.outputs).sort().join(', ') || 'none (no signature)';
    throw new Error(`outputs [${have}] are not the four-output detection layout `
      + `(${OUTPUTS.join(', ')}); export it with convert/ and its post-processing op`);
  }
  if (OUTPUTS.every((name) => info.shapes[name].length > 0)) {
    // static already (two-stage exports end in built-in NMS, not the fused op): N is the shape's
    return {bytes, info: {...info, numBoxes: info.numBoxes || info.shapes.detection_boxes[1]}, patched: false};
  }
  const n = info.numBoxes || fallbackBoxes;
  if (!n) throw new Error('the detection outputs have no static shape and the number of boxes is unknown');
  const want = {
    detection_boxes: [1, n, 4], detection_classes: [1, n], detection_scores: [1, n], num_detections: [1],
  };
  // Append the four int32 vectors (4-aligned, after everything: uoffsets point forward).
  let size = (bytes.length + 3) & ~3;
  const places = {};
  for (const name of OUTPUTS) { places[name] = size; size += 4 + 4 * want[name].length; }
  const out = new Uint8Array(size);
  out.set(bytes);
  const r = new Reader(out);
  const graph = r.table(r.vector(r.root(), 2)[0], 0);
  const [tensors] = r.vector(graph, 0);
  for (const name of OUTPUTS) {
    const at = places[name];
    r.v.setUint32(at, want[name].length, true);
    want[name].forEach((d, k) => r.v.setInt32(at + 4 + 4 * k, d, true));
    const f = r.field(r.table(tensors, info.outputs[name]), 0);
    if (!f) throw new Error(`output ${name} has no shape field to patch`);
    r.v.setUint32(f, at - f, true);
  }
  return {bytes: out, info: {...info, shapes: want, numBoxes: n}, patched: true};
}

// What the app knows of a model, as edge_runtime/metadata.py reads it: the standard TFLite
// Model Metadata embedded in the .tflite first, the .json sidecar only for models without it.
//
// The embedded metadata is a flatbuffer (metadata_schema.fbs, identifier "M001") in the buffer
// that the model's `metadata` entry "TFLITE_METADATA" names; its associated files are a zip
// archive appended to the model (zip.js). Field numbers (see edge_runtime/tflite_metadata.py):
//
//   Model (TFLite)    4 buffers, 6 metadata;  Metadata 0 name, 1 buffer;  Buffer 0 data, 1 offset, 2 size
//   ModelMetadata     0 name, 1 description, 2 version, 3 subgraph_metadata, 4 author,
//                     5 license, 6 associated_files, 7 min_parser_version
//   SubGraphMetadata  2 input_tensor_metadata, 3 output_tensor_metadata
//   TensorMetadata    0 name, 1 description, 3 content, 4 process_units, 6 associated_files
//   Content           0-1 content_properties (union; 2 = ImageProperties: 0 color_space)
//   ProcessUnit       0-1 options (union; 1 = NormalizationOptions: 0 mean, 1 std)
//   AssociatedFile    0 name, 1 description, 2 type (2 axis labels, 3 value labels)
//
// Labels, mean/std (one value or one per channel) and colour space come from the standard
// fields; everything the schema has no field for (COCO category ids, the resize rule, NMS
// settings, provenance) from frontier.json, the model-level file Frontier's exporter adds. A
// model made elsewhere has only the standard part; that is enough for its class names.
import {Reader} from './flatbuffer.js';
import {zipEntries, readEntry, ZipError} from './zip.js';

export const FORMAT = 'frontier-detector';
const VERSION = 1;
const METADATA_NAME = 'TFLITE_METADATA';
const IDENTIFIER = 'M001';
export const RECORD_FILE = 'frontier.json';
const TENSOR_AXIS_LABELS = 2;
const TENSOR_VALUE_LABELS = 3;
const IMAGE_PROPERTIES = 2;
const NORMALIZATION_OPTIONS = 1;
const COLOR_SPACES = {0: 'UNKNOWN', 1: 'RGB', 2: 'GRAYSCALE'};

/** The TFLITE_METADATA buffer of a model flatbuffer (a view of `model`), or null. */
export function metadataBuffer(model) {
  const r = new Reader(model);
  const root = r.root();
  const buffers = r.tables(root, 4);
  for (const entry of r.tables(root, 6)) {
    if (r.string(entry, 0) !== METADATA_NAME) continue;
    const k = r.int(entry, 1);
    if (k < 0 || k >= buffers.length) throw new RangeError(`it names buffer ${k} of ${buffers.length}`);
    const b = buffers[k];
    const offset = r.field(b, 1) ? r.u64(r.field(b, 1)) : 0;
    if (offset > 1) {  // models over 2 GB keep buffers after the flatbuffer
      const size = r.field(b, 2) ? r.u64(r.field(b, 2)) : 0;
      if (offset + size > model.length) throw new RangeError(`buffer ${k} runs past the end of the file`);
      return model.subarray(offset, offset + size);
    }
    return r.bytes(b, 0);
  }
  return null;
}

function associated(r, tables) {
  return tables.map((f) => ({name: r.string(f, 0), description: r.string(f, 1), type: r.byte(f, 2)}));
}

function tensor(r, t) {
  const info = {name: r.string(t, 0), description: r.string(t, 1),
    associated_files: associated(r, r.tables(t, 6))};
  const content = r.child(t, 3);
  if (content) {
    const [kind, props] = r.union(content, 0);
    if (kind === IMAGE_PROPERTIES && props) info.color_space = COLOR_SPACES[r.byte(props, 0)] ?? 'UNKNOWN';
  }
  for (const unit of r.tables(t, 4)) {
    const [kind, options] = r.union(unit, 0);
    if (kind === NORMALIZATION_OPTIONS && options) {
      info.mean = r.floats(options, 0);
      info.std = r.floats(options, 1);
    }
  }
  return info;
}

/**
 * A metadata flatbuffer -> {name, description, version, author, license, min_parser_version,
 * associated_files, inputs: [tensor], outputs: [tensor]} (edge_runtime's parse(), key for
 * key). Throws an Error saying what is wrong.
 */
export function parseMetadata(buf) {
  const r = new Reader(buf);
  if (r.identifier() !== IDENTIFIER) {
    throw new Error(`no "${IDENTIFIER}" file identifier (not TFLite metadata)`);
  }
  try {
    const root = r.root();
    const subgraphs = r.tables(root, 3);
    if (subgraphs.length !== 1) throw new Error(`subgraph_metadata has ${subgraphs.length} entries, expected 1`);
    return {name: r.string(root, 0), description: r.string(root, 1), version: r.string(root, 2),
      author: r.string(root, 4), license: r.string(root, 5), min_parser_version: r.string(root, 7),
      associated_files: associated(r, r.tables(root, 6)),
      inputs: r.tables(subgraphs[0], 2).map((t) => tensor(r, t)),
      outputs: r.tables(subgraphs[0], 3).map((t) => tensor(r, t))};
  } catch (e) {
    if (e instanceof RangeError || e instanceof TypeError) {
      throw new Error(`malformed metadata flatbuffer (${e.message})`);
    }
    throw e;
  }
}

/** The name of a tensor's label file (value labels first, as MediaPipe reads them), or null. */
export function labelsFile(t) {
  for (const kind of [TENSOR_VALUE_LABELS, TENSOR_AXIS_LABELS]) {
    const f = (t?.associated_files || []).find((a) => a.type === kind && a.name);
    if (f) return f.name;
  }
  return null;
}

/**
 * The metadata embedded in `model` (Uint8Array) in the sidecar's schema, or null if it has
 * none: frontier.json (if present) + "labels" from the category output's label file,
 * "input.mean"/"input.std" (a number, or three) and "input.color" from the image input, and
 * "standard": name, version, author, licence. Throws an Error naming `name` and the problem.
 */
export async function embeddedMetadata(model, name) {
  let buf;
  try {
    buf = metadataBuffer(model);
  } catch (e) {
    throw new Error(`${name}: corrupt model flatbuffer, cannot look for metadata (${e.message})`);
  }
  if (buf === null) return null;
  const where = `${name}: embedded TFLite metadata`;
  let md; let files;
  try {
    md = parseMetadata(buf);
    files = zipEntries(model);
  } catch (e) {
    const why = e instanceof ZipError ? `its associated files are unreadable (${e.message})` : e.message;
    throw new Error(`${where}: ${why}`);
  }
  const read = async (file) => {
    let data;
    try {
      data = await readEntry(file, files[file]);
      return new TextDecoder('utf-8', {fatal: true}).decode(data);
    } catch (e) {
      throw new Error(`${where}: ${data ? `${file} is not UTF-8` : e.message}`);
    }
  };
  let meta = {};
  if (Object.hasOwn(files, RECORD_FILE)) {
    try {
      meta = JSON.parse(await read(RECORD_FILE));
    } catch (e) {
      throw new Error(e.message.startsWith(where) ? e.message
        : `${where}: ${RECORD_FILE} is unreadable (${e.message})`);
    }
    if (!isObject(meta) || meta.format !== FORMAT) {
      throw new Error(`${where}: ${RECORD_FILE} is not Frontier model metadata`);
    }
  }
  const category = md.outputs.find((t) => t.name === 'category')
    || md.outputs.find((t) => labelsFile(t));
  const labels = labelsFile(category);
  if (labels !== null) {
    if (!Object.hasOwn(files, labels)) {
      throw new Error(`${where}: output '${category.name}' names the label file '${labels}', `
        + 'which the model does not carry');
    }
    meta.labels = (await read(labels)).split('\n').map((line) => line.replace(/\r$/, ''));
    while (meta.labels.length && !meta.labels[meta.labels.length - 1]) meta.labels.pop();
  }
  const input = {...(isObject(meta.input) ? meta.input : {})};
  const image = md.inputs[0] || {};
  for (const key of ['mean', 'std']) {
    const values = image[key];
    if (values?.length) {
      if (values.length !== 1 && values.length !== 3) {
        throw new Error(`${where}: input '${image.name}' has ${values.length} normalisation ${key} `
          + 'values, expected 1 or 3');
      }
      input[key] = values.every((x) => x === values[0]) ? values[0] : values;
    }
  }
  if (image.color_space && image.color_space !== 'UNKNOWN') input.color = image.color_space;
  if (Object.keys(input).length) meta.input = input;
  meta.standard = Object.fromEntries(['name', 'version', 'author', 'license', 'min_parser_version']
    .map((k) => [k, md[k]]));
  checkSchema(meta, where);
  return meta;
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const isNumber = (v) => typeof v === 'number' && Number.isFinite(v);
const short = (v) => { const s = JSON.stringify(v) ?? String(v); return s.length > 60 ? `${s.slice(0, 57)}...` : s; };

/** Type checks of every key the app reads (edge_runtime's check_schema). */
export function checkSchema(meta, where) {
  const bad = (key, v, expected) => {
    throw new Error(`${where}: model metadata '${key}' is ${short(v)}, expected ${expected}`);
  };
  if ((meta.version ?? VERSION) !== VERSION) bad('version', meta.version, `${VERSION} (a newer or corrupt file?)`);
  for (const key of ['input', 'postprocess', 'export']) {
    if (meta[key] != null && !isObject(meta[key])) bad(key, meta[key], 'an object');
  }
  const {labels, category_ids: ids} = meta;
  if (labels != null && !(Array.isArray(labels) && labels.every((x) => typeof x === 'string'))) {
    bad('labels', labels, 'a list of strings');
  }
  if (ids != null && !(Array.isArray(ids) && ids.every(Number.isInteger))) {
    bad('category_ids', ids, 'a list of integers');
  }
  if (labels != null && ids != null && labels.length !== ids.length) {
    bad('category_ids', ids, `one id per label (${labels.length})`);
  }
  const input = meta.input || {};
  for (const key of ['mean', 'std']) {
    if (!(key in input)) continue;
    const values = Array.isArray(input[key]) && input[key].length === 3 ? input[key] : [input[key]];
    if (!values.every((v) => isNumber(v) && (key === 'mean' || v !== 0))) {
      bad(`input.${key}`, input[key], `a finite number or three${key === 'std' ? ' (not 0)' : ''}`);
    }
  }
  if ('resize' in input && typeof input.resize !== 'string') bad('input.resize', input.resize, 'a string');
  if (input.resize === 'keep_aspect_ratio') {
    for (const key of ['min_dimension', 'max_dimension']) {
      if (!(Number.isInteger(input[key]) && input[key] > 0)) bad(`input.${key}`, input[key], 'a positive integer');
    }
  }
  const post = meta.postprocess || {};
  if ('max_detections' in post && !(Number.isInteger(post.max_detections) && post.max_detections > 0)) {
    bad('postprocess.max_detections', post.max_detections, 'a positive integer');
  }
}

/** Equal as edge_runtime compares them: numbers within float32 precision, the rest exactly. */
function same(a, b) {
  if (isNumber(a) && isNumber(b)) return Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(b));
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, k) => same(x, b[k]));
  if (isObject(a) && isObject(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && same(a[k], b[k]));
  }
  return a === b;
}

/** [key path, embedded value, sidecar value] of the first key both hold differently, or null. */
function firstDifference(embedded, sidecar, prefix = '') {
  for (const [key, mine] of Object.entries(embedded)) {
    if (!Object.hasOwn(sidecar, key) || key === 'standard') continue;
    const theirs = sidecar[key];
    if (isObject(mine) && isObject(theirs)) {
      const found = firstDifference(mine, theirs, `${prefix}${key}.`);
      if (found) return found;
    } else if (!same(mine, theirs)) {
      return [prefix + key, mine, theirs];
    }
  }
  return null;
}

/** The sidecar's file name for a model's (model.tflite -> model.json). */
export function sidecarName(modelName) {
  return `${modelName.replace(/\.tflite$/i, '')}.json`;
}

/**
 * The model's metadata and where it came from: {meta, source} with source "embedded",
 * "embedded + sidecar", "sidecar" or "none". The embedded metadata wins; a sidecar (parsed
 * JSON, or null) adds its extra keys (the parity check) but must agree on every key both
 * hold, labels and normalisation included, or this throws an Error naming the sidecar, the
 * model and the key (as edge_runtime's read_metadata does).
 */
export async function modelMetadata(model, sidecar, name, sidecarFile = sidecarName(name)) {
  if (sidecar != null) {
    if (!isObject(sidecar) || sidecar.format !== FORMAT) {
      throw new Error(`${sidecarFile}: not Frontier model metadata (no "format": "${FORMAT}")`);
    }
    checkSchema(sidecar, sidecarFile);
  }
  const embedded = await embeddedMetadata(model, name);
  if (!embedded) return {meta: sidecar || {}, source: sidecar ? 'sidecar' : 'none'};
  if (!sidecar) return {meta: embedded, source: 'embedded'};
  const diff = firstDifference(embedded, sidecar);
  if (diff) {
    const [key, mine, theirs] = diff;
    throw new Error(`${sidecarFile}: '${key}' is ${short(theirs)} but the metadata embedded in ${name} `
      + `says ${short(mine)}; re-export the model or drop the stale .json`);
  }
  return {meta: {...sidecar, ...embedded}, source: 'embedded + sidecar'};
}

// The associated files of a .tflite (labels.txt, frontier.json): a zip archive that the
// metadata writer appends to the model flatbuffer.
//
// Read as Python's zipfile reads it (edge_runtime/tflite_metadata.py): the end-of-central-
// directory record is found from the end, and the archive's offsets count from its own start,
// wherever the model bytes before it end. The writer stores entries uncompressed; deflated
// ones (another tool's) are inflated with the browser's DecompressionStream. CRC-32 is checked.

const EOCD = 0x06054b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const utf8 = new TextDecoder();

/** Bad archive: the message says what is wrong (the caller adds the model's name). */
export class ZipError extends Error {}

function endRecord(v) {
  const last = v.byteLength - 22;
  for (let p = last; p >= Math.max(0, last - 0xffff); p--) {
    // the record's comment must end the file, or these 4 bytes are a chance match
    if (v.getUint32(p, true) === EOCD && p + 22 + v.getUint16(p + 20, true) === v.byteLength) return p;
  }
  return -1;
}

/** {name: {method, crc, compressed, size, data}} of the archive at the end of `bytes` ({} when
 * there is none). `data` is the stored (maybe compressed) bytes; read it with readEntry. */
export function zipEntries(bytes) {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.length >= 22 ? endRecord(v) : -1;
  if (end < 0) return {};
  const count = v.getUint16(end + 10, true);
  const cdSize = v.getUint32(end + 12, true);
  const cdOffset = v.getUint32(end + 16, true);
  if (cdOffset === 0xffffffff || count === 0xffff) throw new ZipError('a ZIP64 archive (not supported)');
  const base = end - cdSize - cdOffset;  // where the archive starts in the model file
  if (base < 0) throw new ZipError('its central directory lies before the start of the file');
  const entries = {};
  let p = base + cdOffset;
  for (let k = 0; k < count; k++) {
    if (p + 46 > end || v.getUint32(p, true) !== CENTRAL) {
      throw new ZipError(`central directory entry ${k} is damaged`);
    }
    const flags = v.getUint16(p + 8, true);
    const nameLen = v.getUint16(p + 28, true);
    const name = utf8.decode(bytes.subarray(p + 46, p + 46 + nameLen));
    const local = base + v.getUint32(p + 42, true);
    const compressed = v.getUint32(p + 20, true);
    if (flags & 1) throw new ZipError(`${name} is encrypted`);
    if (local + 30 > bytes.length || v.getUint32(local, true) !== LOCAL) {
      throw new ZipError(`${name}: its local header is damaged`);
    }
    const start = local + 30 + v.getUint16(local + 26, true) + v.getUint16(local + 28, true);
    if (start + compressed > bytes.length) throw new ZipError(`${name} runs past the end of the file`);
    entries[name] = {method: v.getUint16(p + 10, true), crc: v.getUint32(p + 16, true), compressed,
      size: v.getUint32(p + 24, true), data: bytes.subarray(start, start + compressed)};
    p += 46 + nameLen + v.getUint16(p + 30, true) + v.getUint16(p + 32, true);
  }
  return entries;
}

let crcTable = null;
export function crc32(bytes) {
  crcTable ??= Uint32Array.from({length: 256}, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c;
  });
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** The uncompressed bytes of one entry of zipEntries (ZipError if unreadable). */
export async function readEntry(name, entry) {
  let data;
  if (entry.method === 0) {
    data = entry.data;
  } else if (entry.method === 8 && typeof DecompressionStream !== 'undefined') {
    try {
      const stream = new Blob([entry.data]).stream().pipeThrough(new DecompressionStream('deflate-raw'));
      data = new Uint8Array(await new Response(stream).arrayBuffer());
    } catch (e) {
      throw new ZipError(`${name} does not inflate (${e.message || e})`);
    }
  } else {
    throw new ZipError(`${name} is compressed with method ${entry.method} (stored or deflated only)`);
  }
  if (data.length !== entry.size || crc32(data) !== entry.crc) {
    throw new ZipError(`${name} is damaged (its size or CRC-32 does not match)`);
  }
  return data;
}

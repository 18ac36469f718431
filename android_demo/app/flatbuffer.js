// A minimal FlatBuffers reader over a Uint8Array: the few accessors the model flatbuffer
// (tflite_patch.js) and the metadata flatbuffer (metadata.js) need.
//
// Why not the flatbuffers npm runtime: without code generated from the schemas (flatc) it only
// offers these same offset helpers. A table's field i sits at vtable slot 4 + 2 i (a union
// takes two fields, type first). Every vector is bounds-checked: a corrupt or hostile file gives
// a RangeError (DataView's own, or ours), never a read past the bytes or a huge loop.

const utf8 = new TextDecoder('utf-8', {fatal: true});

export class Reader {
  constructor(bytes) {
    this.b = bytes;
    this.v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  u8(p) { return this.v.getUint8(p); }
  i8(p) { return this.v.getInt8(p); }
  u16(p) { return this.v.getUint16(p, true); }
  i32(p) { return this.v.getInt32(p, true); }
  u32(p) { return this.v.getUint32(p, true); }
  u64(p) { return Number(this.v.getBigUint64(p, true)); }
  root() { return this.u32(0); }
  /** The 4-byte file identifier at byte 4 ("TFL3", "M001"). */
  identifier() { return this.b.length >= 8 ? String.fromCharCode(...this.b.subarray(4, 8)) : ''; }
  /** Absolute position of field `i` of the table at `t`, or 0 when absent. */
  field(t, i) {
    const vt = t - this.i32(t);
    const off = 4 + 2 * i < this.u16(vt) ? this.u16(vt + 4 + 2 * i) : 0;
    return off ? t + off : 0;
  }
  ref(p) { return p + this.u32(p); }  // follow a uoffset
  /** [position of element 0, length] of the vector field `i` of table `t` ([0, 0] if absent). */
  vector(t, i, elementSize = 4) {
    const f = this.field(t, i);
    if (!f) return [0, 0];
    const v = this.ref(f);
    const n = this.u32(v);
    if (v + 4 + n * elementSize > this.b.length) {
      throw new RangeError(`a vector of ${n} items at byte ${v} runs past the end (${this.b.length} bytes)`);
    }
    return [v + 4, n];
  }
  table(vecStart, k) { return this.ref(vecStart + 4 * k); }
  /** The tables of vector field `i` of `t`. */
  tables(t, i) {
    const [p, n] = this.vector(t, i);
    return Array.from({length: n}, (_, k) => this.table(p, k));
  }
  /** The table field `i` of `t`, or 0. */
  child(t, i) { const f = this.field(t, i); return f ? this.ref(f) : 0; }
  /** The string field `i` of `t` (UTF-8; TypeError if it is not), or null when absent. */
  string(t, i) {
    const f = this.field(t, i);
    if (!f) return null;
    const [p, n] = this.vector(t, i, 1);
    return utf8.decode(this.b.subarray(p, p + n));
  }
  bytes(t, i) { const [p, n] = this.vector(t, i, 1); return this.b.subarray(p, p + n); }
  floats(t, i) {
    const [p, n] = this.vector(t, i);
    return Array.from({length: n}, (_, k) => this.v.getFloat32(p + 4 * k, true));
  }
  int(t, i, dflt = 0) { const f = this.field(t, i); return f ? this.i32(f) : dflt; }
  byte(t, i, dflt = 0) { const f = this.field(t, i); return f ? this.i8(f) : dflt; }
  /** [type, table or 0] of the union whose type is field `i` (its value field i + 1). */
  union(t, i) {
    const f = this.field(t, i);
    return [f ? this.u8(f) : 0, this.child(t, i + 1)];
  }
}

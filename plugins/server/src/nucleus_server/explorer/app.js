// Built by `npm run build:explorer` in clients/typescript from explorer/explorer.ts: do not edit.

// node_modules/@noble/hashes/esm/crypto.js
var crypto = typeof globalThis === "object" && "crypto" in globalThis ? globalThis.crypto : void 0;

// node_modules/@noble/hashes/esm/utils.js
/*! noble-hashes - MIT License (c) 2022 Paul Miller (paulmillr.com) */
function isBytes(a) {
  return a instanceof Uint8Array || ArrayBuffer.isView(a) && a.constructor.name === "Uint8Array";
}
function anumber(n) {
  if (!Number.isSafeInteger(n) || n < 0)
    throw new Error("positive integer expected, got " + n);
}
function abytes(b, ...lengths) {
  if (!isBytes(b))
    throw new Error("Uint8Array expected");
  if (lengths.length > 0 && !lengths.includes(b.length))
    throw new Error("Uint8Array expected of length " + lengths + ", got length=" + b.length);
}
function aexists(instance, checkFinished = true) {
  if (instance.destroyed)
    throw new Error("Hash instance has been destroyed");
  if (checkFinished && instance.finished)
    throw new Error("Hash#digest() has already been called");
}
function aoutput(out, instance) {
  abytes(out);
  const min = instance.outputLen;
  if (out.length < min) {
    throw new Error("digestInto() expects output buffer of length at least " + min);
  }
}
function u8(arr) {
  return new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength);
}
function u32(arr) {
  return new Uint32Array(arr.buffer, arr.byteOffset, Math.floor(arr.byteLength / 4));
}
function clean(...arrays) {
  for (let i = 0; i < arrays.length; i++) {
    arrays[i].fill(0);
  }
}
function createView(arr) {
  return new DataView(arr.buffer, arr.byteOffset, arr.byteLength);
}
function rotr(word, shift) {
  return word << 32 - shift | word >>> shift;
}
var isLE = /* @__PURE__ */ (() => new Uint8Array(new Uint32Array([287454020]).buffer)[0] === 68)();
function byteSwap(word) {
  return word << 24 & 4278190080 | word << 8 & 16711680 | word >>> 8 & 65280 | word >>> 24 & 255;
}
var swap8IfBE = isLE ? (n) => n : (n) => byteSwap(n);
function byteSwap32(arr) {
  for (let i = 0; i < arr.length; i++) {
    arr[i] = byteSwap(arr[i]);
  }
  return arr;
}
var swap32IfBE = isLE ? (u) => u : byteSwap32;
var hasHexBuiltin = /* @__PURE__ */ (() => (
  // @ts-ignore
  typeof Uint8Array.from([]).toHex === "function" && typeof Uint8Array.fromHex === "function"
))();
var hexes = /* @__PURE__ */ Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));
function bytesToHex(bytes) {
  abytes(bytes);
  if (hasHexBuiltin)
    return bytes.toHex();
  let hex = "";
  for (let i = 0; i < bytes.length; i++) {
    hex += hexes[bytes[i]];
  }
  return hex;
}
var asciis = { _0: 48, _9: 57, A: 65, F: 70, a: 97, f: 102 };
function asciiToBase16(ch) {
  if (ch >= asciis._0 && ch <= asciis._9)
    return ch - asciis._0;
  if (ch >= asciis.A && ch <= asciis.F)
    return ch - (asciis.A - 10);
  if (ch >= asciis.a && ch <= asciis.f)
    return ch - (asciis.a - 10);
  return;
}
function hexToBytes(hex) {
  if (typeof hex !== "string")
    throw new Error("hex string expected, got " + typeof hex);
  if (hasHexBuiltin)
    return Uint8Array.fromHex(hex);
  const hl = hex.length;
  const al = hl / 2;
  if (hl % 2)
    throw new Error("hex string expected, got unpadded hex of length " + hl);
  const array = new Uint8Array(al);
  for (let ai = 0, hi = 0; ai < al; ai++, hi += 2) {
    const n1 = asciiToBase16(hex.charCodeAt(hi));
    const n2 = asciiToBase16(hex.charCodeAt(hi + 1));
    if (n1 === void 0 || n2 === void 0) {
      const char = hex[hi] + hex[hi + 1];
      throw new Error('hex string expected, got non-hex character "' + char + '" at index ' + hi);
    }
    array[ai] = n1 * 16 + n2;
  }
  return array;
}
function utf8ToBytes(str2) {
  if (typeof str2 !== "string")
    throw new Error("string expected");
  return new Uint8Array(new TextEncoder().encode(str2));
}
function toBytes(data) {
  if (typeof data === "string")
    data = utf8ToBytes(data);
  abytes(data);
  return data;
}
function concatBytes(...arrays) {
  let sum = 0;
  for (let i = 0; i < arrays.length; i++) {
    const a = arrays[i];
    abytes(a);
    sum += a.length;
  }
  const res = new Uint8Array(sum);
  for (let i = 0, pad = 0; i < arrays.length; i++) {
    const a = arrays[i];
    res.set(a, pad);
    pad += a.length;
  }
  return res;
}
var Hash = class {
};
function createHasher(hashCons) {
  const hashC = (msg) => hashCons().update(toBytes(msg)).digest();
  const tmp = hashCons();
  hashC.outputLen = tmp.outputLen;
  hashC.blockLen = tmp.blockLen;
  hashC.create = () => hashCons();
  return hashC;
}
function createXOFer(hashCons) {
  const hashC = (msg, opts) => hashCons(opts).update(toBytes(msg)).digest();
  const tmp = hashCons({});
  hashC.outputLen = tmp.outputLen;
  hashC.blockLen = tmp.blockLen;
  hashC.create = (opts) => hashCons(opts);
  return hashC;
}
function randomBytes(bytesLength = 32) {
  if (crypto && typeof crypto.getRandomValues === "function") {
    return crypto.getRandomValues(new Uint8Array(bytesLength));
  }
  if (crypto && typeof crypto.randomBytes === "function") {
    return Uint8Array.from(crypto.randomBytes(bytesLength));
  }
  throw new Error("crypto.getRandomValues must be defined");
}

// node_modules/@noble/hashes/esm/_md.js
function setBigUint64(view, byteOffset, value, isLE2) {
  if (typeof view.setBigUint64 === "function")
    return view.setBigUint64(byteOffset, value, isLE2);
  const _32n2 = BigInt(32);
  const _u32_max = BigInt(4294967295);
  const wh = Number(value >> _32n2 & _u32_max);
  const wl = Number(value & _u32_max);
  const h = isLE2 ? 4 : 0;
  const l = isLE2 ? 0 : 4;
  view.setUint32(byteOffset + h, wh, isLE2);
  view.setUint32(byteOffset + l, wl, isLE2);
}
function Chi(a, b, c) {
  return a & b ^ ~a & c;
}
function Maj(a, b, c) {
  return a & b ^ a & c ^ b & c;
}
var HashMD = class extends Hash {
  constructor(blockLen, outputLen, padOffset, isLE2) {
    super();
    this.finished = false;
    this.length = 0;
    this.pos = 0;
    this.destroyed = false;
    this.blockLen = blockLen;
    this.outputLen = outputLen;
    this.padOffset = padOffset;
    this.isLE = isLE2;
    this.buffer = new Uint8Array(blockLen);
    this.view = createView(this.buffer);
  }
  update(data) {
    aexists(this);
    data = toBytes(data);
    abytes(data);
    const { view, buffer, blockLen } = this;
    const len = data.length;
    for (let pos = 0; pos < len; ) {
      const take = Math.min(blockLen - this.pos, len - pos);
      if (take === blockLen) {
        const dataView = createView(data);
        for (; blockLen <= len - pos; pos += blockLen)
          this.process(dataView, pos);
        continue;
      }
      buffer.set(data.subarray(pos, pos + take), this.pos);
      this.pos += take;
      pos += take;
      if (this.pos === blockLen) {
        this.process(view, 0);
        this.pos = 0;
      }
    }
    this.length += data.length;
    this.roundClean();
    return this;
  }
  digestInto(out) {
    aexists(this);
    aoutput(out, this);
    this.finished = true;
    const { buffer, view, blockLen, isLE: isLE2 } = this;
    let { pos } = this;
    buffer[pos++] = 128;
    clean(this.buffer.subarray(pos));
    if (this.padOffset > blockLen - pos) {
      this.process(view, 0);
      pos = 0;
    }
    for (let i = pos; i < blockLen; i++)
      buffer[i] = 0;
    setBigUint64(view, blockLen - 8, BigInt(this.length * 8), isLE2);
    this.process(view, 0);
    const oview = createView(out);
    const len = this.outputLen;
    if (len % 4)
      throw new Error("_sha2: outputLen should be aligned to 32bit");
    const outLen = len / 4;
    const state = this.get();
    if (outLen > state.length)
      throw new Error("_sha2: outputLen bigger than state");
    for (let i = 0; i < outLen; i++)
      oview.setUint32(4 * i, state[i], isLE2);
  }
  digest() {
    const { buffer, outputLen } = this;
    this.digestInto(buffer);
    const res = buffer.slice(0, outputLen);
    this.destroy();
    return res;
  }
  _cloneInto(to) {
    to || (to = new this.constructor());
    to.set(...this.get());
    const { blockLen, buffer, length, finished, destroyed, pos } = this;
    to.destroyed = destroyed;
    to.finished = finished;
    to.length = length;
    to.pos = pos;
    if (length % blockLen)
      to.buffer.set(buffer);
    return to;
  }
  clone() {
    return this._cloneInto();
  }
};
var SHA256_IV = /* @__PURE__ */ Uint32Array.from([
  1779033703,
  3144134277,
  1013904242,
  2773480762,
  1359893119,
  2600822924,
  528734635,
  1541459225
]);
var SHA512_IV = /* @__PURE__ */ Uint32Array.from([
  1779033703,
  4089235720,
  3144134277,
  2227873595,
  1013904242,
  4271175723,
  2773480762,
  1595750129,
  1359893119,
  2917565137,
  2600822924,
  725511199,
  528734635,
  4215389547,
  1541459225,
  327033209
]);

// node_modules/@noble/hashes/esm/_u64.js
var U32_MASK64 = /* @__PURE__ */ BigInt(2 ** 32 - 1);
var _32n = /* @__PURE__ */ BigInt(32);
function fromBig(n, le = false) {
  if (le)
    return { h: Number(n & U32_MASK64), l: Number(n >> _32n & U32_MASK64) };
  return { h: Number(n >> _32n & U32_MASK64) | 0, l: Number(n & U32_MASK64) | 0 };
}
function split(lst, le = false) {
  const len = lst.length;
  let Ah = new Uint32Array(len);
  let Al = new Uint32Array(len);
  for (let i = 0; i < len; i++) {
    const { h, l } = fromBig(lst[i], le);
    [Ah[i], Al[i]] = [h, l];
  }
  return [Ah, Al];
}
var shrSH = (h, _l, s) => h >>> s;
var shrSL = (h, l, s) => h << 32 - s | l >>> s;
var rotrSH = (h, l, s) => h >>> s | l << 32 - s;
var rotrSL = (h, l, s) => h << 32 - s | l >>> s;
var rotrBH = (h, l, s) => h << 64 - s | l >>> s - 32;
var rotrBL = (h, l, s) => h >>> s - 32 | l << 64 - s;
function add(Ah, Al, Bh, Bl) {
  const l = (Al >>> 0) + (Bl >>> 0);
  return { h: Ah + Bh + (l / 2 ** 32 | 0) | 0, l: l | 0 };
}
var add3L = (Al, Bl, Cl) => (Al >>> 0) + (Bl >>> 0) + (Cl >>> 0);
var add3H = (low, Ah, Bh, Ch) => Ah + Bh + Ch + (low / 2 ** 32 | 0) | 0;
var add4L = (Al, Bl, Cl, Dl) => (Al >>> 0) + (Bl >>> 0) + (Cl >>> 0) + (Dl >>> 0);
var add4H = (low, Ah, Bh, Ch, Dh) => Ah + Bh + Ch + Dh + (low / 2 ** 32 | 0) | 0;
var add5L = (Al, Bl, Cl, Dl, El) => (Al >>> 0) + (Bl >>> 0) + (Cl >>> 0) + (Dl >>> 0) + (El >>> 0);
var add5H = (low, Ah, Bh, Ch, Dh, Eh) => Ah + Bh + Ch + Dh + Eh + (low / 2 ** 32 | 0) | 0;

// node_modules/@noble/hashes/esm/_blake.js
function G1s(a, b, c, d, x) {
  a = a + b + x | 0;
  d = rotr(d ^ a, 16);
  c = c + d | 0;
  b = rotr(b ^ c, 12);
  return { a, b, c, d };
}
function G2s(a, b, c, d, x) {
  a = a + b + x | 0;
  d = rotr(d ^ a, 8);
  c = c + d | 0;
  b = rotr(b ^ c, 7);
  return { a, b, c, d };
}

// node_modules/@noble/hashes/esm/blake2.js
var BLAKE2 = class extends Hash {
  constructor(blockLen, outputLen) {
    super();
    this.finished = false;
    this.destroyed = false;
    this.length = 0;
    this.pos = 0;
    anumber(blockLen);
    anumber(outputLen);
    this.blockLen = blockLen;
    this.outputLen = outputLen;
    this.buffer = new Uint8Array(blockLen);
    this.buffer32 = u32(this.buffer);
  }
  update(data) {
    aexists(this);
    data = toBytes(data);
    abytes(data);
    const { blockLen, buffer, buffer32 } = this;
    const len = data.length;
    const offset = data.byteOffset;
    const buf = data.buffer;
    for (let pos = 0; pos < len; ) {
      if (this.pos === blockLen) {
        swap32IfBE(buffer32);
        this.compress(buffer32, 0, false);
        swap32IfBE(buffer32);
        this.pos = 0;
      }
      const take = Math.min(blockLen - this.pos, len - pos);
      const dataOffset = offset + pos;
      if (take === blockLen && !(dataOffset % 4) && pos + take < len) {
        const data32 = new Uint32Array(buf, dataOffset, Math.floor((len - pos) / 4));
        swap32IfBE(data32);
        for (let pos32 = 0; pos + blockLen < len; pos32 += buffer32.length, pos += blockLen) {
          this.length += blockLen;
          this.compress(data32, pos32, false);
        }
        swap32IfBE(data32);
        continue;
      }
      buffer.set(data.subarray(pos, pos + take), this.pos);
      this.pos += take;
      this.length += take;
      pos += take;
    }
    return this;
  }
  digestInto(out) {
    aexists(this);
    aoutput(out, this);
    const { pos, buffer32 } = this;
    this.finished = true;
    clean(this.buffer.subarray(pos));
    swap32IfBE(buffer32);
    this.compress(buffer32, 0, true);
    swap32IfBE(buffer32);
    const out32 = u32(out);
    this.get().forEach((v, i) => out32[i] = swap8IfBE(v));
  }
  digest() {
    const { buffer, outputLen } = this;
    this.digestInto(buffer);
    const res = buffer.slice(0, outputLen);
    this.destroy();
    return res;
  }
  _cloneInto(to) {
    const { buffer, length, finished, destroyed, outputLen, pos } = this;
    to || (to = new this.constructor({ dkLen: outputLen }));
    to.set(...this.get());
    to.buffer.set(buffer);
    to.destroyed = destroyed;
    to.finished = finished;
    to.length = length;
    to.pos = pos;
    to.outputLen = outputLen;
    return to;
  }
  clone() {
    return this._cloneInto();
  }
};
function compress(s, offset, msg, rounds, v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, v14, v15) {
  let j = 0;
  for (let i = 0; i < rounds; i++) {
    ({ a: v0, b: v4, c: v8, d: v12 } = G1s(v0, v4, v8, v12, msg[offset + s[j++]]));
    ({ a: v0, b: v4, c: v8, d: v12 } = G2s(v0, v4, v8, v12, msg[offset + s[j++]]));
    ({ a: v1, b: v5, c: v9, d: v13 } = G1s(v1, v5, v9, v13, msg[offset + s[j++]]));
    ({ a: v1, b: v5, c: v9, d: v13 } = G2s(v1, v5, v9, v13, msg[offset + s[j++]]));
    ({ a: v2, b: v6, c: v10, d: v14 } = G1s(v2, v6, v10, v14, msg[offset + s[j++]]));
    ({ a: v2, b: v6, c: v10, d: v14 } = G2s(v2, v6, v10, v14, msg[offset + s[j++]]));
    ({ a: v3, b: v7, c: v11, d: v15 } = G1s(v3, v7, v11, v15, msg[offset + s[j++]]));
    ({ a: v3, b: v7, c: v11, d: v15 } = G2s(v3, v7, v11, v15, msg[offset + s[j++]]));
    ({ a: v0, b: v5, c: v10, d: v15 } = G1s(v0, v5, v10, v15, msg[offset + s[j++]]));
    ({ a: v0, b: v5, c: v10, d: v15 } = G2s(v0, v5, v10, v15, msg[offset + s[j++]]));
    ({ a: v1, b: v6, c: v11, d: v12 } = G1s(v1, v6, v11, v12, msg[offset + s[j++]]));
    ({ a: v1, b: v6, c: v11, d: v12 } = G2s(v1, v6, v11, v12, msg[offset + s[j++]]));
    ({ a: v2, b: v7, c: v8, d: v13 } = G1s(v2, v7, v8, v13, msg[offset + s[j++]]));
    ({ a: v2, b: v7, c: v8, d: v13 } = G2s(v2, v7, v8, v13, msg[offset + s[j++]]));
    ({ a: v3, b: v4, c: v9, d: v14 } = G1s(v3, v4, v9, v14, msg[offset + s[j++]]));
    ({ a: v3, b: v4, c: v9, d: v14 } = G2s(v3, v4, v9, v14, msg[offset + s[j++]]));
  }
  return { v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, v14, v15 };
}

// node_modules/@noble/hashes/esm/blake3.js
var B3_Flags = {
  CHUNK_START: 1,
  CHUNK_END: 2,
  PARENT: 4,
  ROOT: 8,
  KEYED_HASH: 16,
  DERIVE_KEY_CONTEXT: 32,
  DERIVE_KEY_MATERIAL: 64
};
var B3_IV = SHA256_IV.slice();
var B3_SIGMA = /* @__PURE__ */ (() => {
  const Id = Array.from({ length: 16 }, (_, i) => i);
  const permute = (arr) => [2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8].map((i) => arr[i]);
  const res = [];
  for (let i = 0, v = Id; i < 7; i++, v = permute(v))
    res.push(...v);
  return Uint8Array.from(res);
})();
var BLAKE3 = class _BLAKE3 extends BLAKE2 {
  constructor(opts = {}, flags = 0) {
    super(64, opts.dkLen === void 0 ? 32 : opts.dkLen);
    this.chunkPos = 0;
    this.chunksDone = 0;
    this.flags = 0 | 0;
    this.stack = [];
    this.posOut = 0;
    this.bufferOut32 = new Uint32Array(16);
    this.chunkOut = 0;
    this.enableXOF = true;
    const { key, context } = opts;
    const hasContext = context !== void 0;
    if (key !== void 0) {
      if (hasContext)
        throw new Error('Only "key" or "context" can be specified at same time');
      const k = toBytes(key).slice();
      abytes(k, 32);
      this.IV = u32(k);
      swap32IfBE(this.IV);
      this.flags = flags | B3_Flags.KEYED_HASH;
    } else if (hasContext) {
      const ctx = toBytes(context);
      const contextKey = new _BLAKE3({ dkLen: 32 }, B3_Flags.DERIVE_KEY_CONTEXT).update(ctx).digest();
      this.IV = u32(contextKey);
      swap32IfBE(this.IV);
      this.flags = flags | B3_Flags.DERIVE_KEY_MATERIAL;
    } else {
      this.IV = B3_IV.slice();
      this.flags = flags;
    }
    this.state = this.IV.slice();
    this.bufferOut = u8(this.bufferOut32);
  }
  // Unused
  get() {
    return [];
  }
  set() {
  }
  b2Compress(counter, flags, buf, bufPos = 0) {
    const { state: s, pos } = this;
    const { h, l } = fromBig(BigInt(counter), true);
    const { v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, v14, v15 } = compress(B3_SIGMA, bufPos, buf, 7, s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], B3_IV[0], B3_IV[1], B3_IV[2], B3_IV[3], h, l, pos, flags);
    s[0] = v0 ^ v8;
    s[1] = v1 ^ v9;
    s[2] = v2 ^ v10;
    s[3] = v3 ^ v11;
    s[4] = v4 ^ v12;
    s[5] = v5 ^ v13;
    s[6] = v6 ^ v14;
    s[7] = v7 ^ v15;
  }
  compress(buf, bufPos = 0, isLast = false) {
    let flags = this.flags;
    if (!this.chunkPos)
      flags |= B3_Flags.CHUNK_START;
    if (this.chunkPos === 15 || isLast)
      flags |= B3_Flags.CHUNK_END;
    if (!isLast)
      this.pos = this.blockLen;
    this.b2Compress(this.chunksDone, flags, buf, bufPos);
    this.chunkPos += 1;
    if (this.chunkPos === 16 || isLast) {
      let chunk = this.state;
      this.state = this.IV.slice();
      for (let last, chunks = this.chunksDone + 1; isLast || !(chunks & 1); chunks >>= 1) {
        if (!(last = this.stack.pop()))
          break;
        this.buffer32.set(last, 0);
        this.buffer32.set(chunk, 8);
        this.pos = this.blockLen;
        this.b2Compress(0, this.flags | B3_Flags.PARENT, this.buffer32, 0);
        chunk = this.state;
        this.state = this.IV.slice();
      }
      this.chunksDone++;
      this.chunkPos = 0;
      this.stack.push(chunk);
    }
    this.pos = 0;
  }
  _cloneInto(to) {
    to = super._cloneInto(to);
    const { IV, flags, state, chunkPos, posOut, chunkOut, stack, chunksDone } = this;
    to.state.set(state.slice());
    to.stack = stack.map((i) => Uint32Array.from(i));
    to.IV.set(IV);
    to.flags = flags;
    to.chunkPos = chunkPos;
    to.chunksDone = chunksDone;
    to.posOut = posOut;
    to.chunkOut = chunkOut;
    to.enableXOF = this.enableXOF;
    to.bufferOut32.set(this.bufferOut32);
    return to;
  }
  destroy() {
    this.destroyed = true;
    clean(this.state, this.buffer32, this.IV, this.bufferOut32);
    clean(...this.stack);
  }
  // Same as b2Compress, but doesn't modify state and returns 16 u32 array (instead of 8)
  b2CompressOut() {
    const { state: s, pos, flags, buffer32, bufferOut32: out32 } = this;
    const { h, l } = fromBig(BigInt(this.chunkOut++));
    swap32IfBE(buffer32);
    const { v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, v14, v15 } = compress(B3_SIGMA, 0, buffer32, 7, s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], B3_IV[0], B3_IV[1], B3_IV[2], B3_IV[3], l, h, pos, flags);
    out32[0] = v0 ^ v8;
    out32[1] = v1 ^ v9;
    out32[2] = v2 ^ v10;
    out32[3] = v3 ^ v11;
    out32[4] = v4 ^ v12;
    out32[5] = v5 ^ v13;
    out32[6] = v6 ^ v14;
    out32[7] = v7 ^ v15;
    out32[8] = s[0] ^ v8;
    out32[9] = s[1] ^ v9;
    out32[10] = s[2] ^ v10;
    out32[11] = s[3] ^ v11;
    out32[12] = s[4] ^ v12;
    out32[13] = s[5] ^ v13;
    out32[14] = s[6] ^ v14;
    out32[15] = s[7] ^ v15;
    swap32IfBE(buffer32);
    swap32IfBE(out32);
    this.posOut = 0;
  }
  finish() {
    if (this.finished)
      return;
    this.finished = true;
    clean(this.buffer.subarray(this.pos));
    let flags = this.flags | B3_Flags.ROOT;
    if (this.stack.length) {
      flags |= B3_Flags.PARENT;
      swap32IfBE(this.buffer32);
      this.compress(this.buffer32, 0, true);
      swap32IfBE(this.buffer32);
      this.chunksDone = 0;
      this.pos = this.blockLen;
    } else {
      flags |= (!this.chunkPos ? B3_Flags.CHUNK_START : 0) | B3_Flags.CHUNK_END;
    }
    this.flags = flags;
    this.b2CompressOut();
  }
  writeInto(out) {
    aexists(this, false);
    abytes(out);
    this.finish();
    const { blockLen, bufferOut } = this;
    for (let pos = 0, len = out.length; pos < len; ) {
      if (this.posOut >= blockLen)
        this.b2CompressOut();
      const take = Math.min(blockLen - this.posOut, len - pos);
      out.set(bufferOut.subarray(this.posOut, this.posOut + take), pos);
      this.posOut += take;
      pos += take;
    }
    return out;
  }
  xofInto(out) {
    if (!this.enableXOF)
      throw new Error("XOF is not possible after digest call");
    return this.writeInto(out);
  }
  xof(bytes) {
    anumber(bytes);
    return this.xofInto(new Uint8Array(bytes));
  }
  digestInto(out) {
    aoutput(out, this);
    if (this.finished)
      throw new Error("digest() was already called");
    this.enableXOF = false;
    this.writeInto(out);
    this.destroy();
    return out;
  }
  digest() {
    return this.digestInto(new Uint8Array(this.outputLen));
  }
};
var blake3 = /* @__PURE__ */ createXOFer((opts) => new BLAKE3(opts));

// src/errors.ts
var NucleusError = class extends Error {
  static code = "nucleus_error";
  code;
  field;
  seq;
  reason;
  recordId;
  moduleId;
  trustedSize;
  presentedSize;
  /** The HTTP status of the response this error was rebuilt from, if any. */
  status;
  constructor(message, details = {}) {
    super(message);
    this.name = new.target.name;
    this.code = new.target.code;
    this.field = details.field;
    this.seq = details.seq;
    this.reason = details.reason;
    this.recordId = details.recordId;
    this.moduleId = details.moduleId;
    this.trustedSize = details.trustedSize;
    this.presentedSize = details.presentedSize;
    this.status = details.status;
  }
};
var ConfigurationError = class extends NucleusError {
  static code = "configuration_error";
};
var LedgerNotFoundError = class extends ConfigurationError {
  static code = "ledger_not_found";
};
var NotFoundError = class extends NucleusError {
  static code = "not_found";
};
var PluginError = class extends NucleusError {
  static code = "plugin_error";
};
var ValidationError = class extends NucleusError {
  static code = "validation_error";
};
var RecordValidationError = class extends ValidationError {
  static code = "invalid_record";
};
var RecordTooLargeError = class extends RecordValidationError {
  static code = "record_too_large";
};
var QueryError = class extends ValidationError {
  static code = "invalid_query";
};
var MalformedRequestError = class extends ValidationError {
  static code = "malformed_request";
};
var RequestTooLargeError = class extends ValidationError {
  static code = "request_too_large";
};
var StorageError = class extends NucleusError {
  static code = "storage_error";
};
var StorageUnavailableError = class extends StorageError {
  static code = "storage_unavailable";
};
var IntegrityError = class extends StorageError {
  static code = "integrity_error";
};
var CheckpointRefusedError = class extends IntegrityError {
  static code = "checkpoint_refused";
};
var CheckpointMismatchError = class extends IntegrityError {
  static code = "checkpoint_mismatch";
};
var ConflictError = class extends StorageError {
  static code = "conflict";
};
var DuplicateRecordError = class extends ConflictError {
  static code = "duplicate_record";
};
var ReadOnlyLedgerError = class extends StorageError {
  static code = "read_only";
};
var TrustedStateError = class extends StorageError {
  static code = "trusted_state_error";
};
var LedgerClosedError = class extends NucleusError {
  static code = "ledger_closed";
};
var MethodNotAllowedError = class extends NucleusError {
  static code = "method_not_allowed";
};
var AuthenticationError = class extends NucleusError {
  static code = "unauthenticated";
};
var MissingRequesterError = class extends AuthenticationError {
  static code = "missing_requester";
};
var TokenInvalidError = class extends AuthenticationError {
  static code = "invalid_token";
};
var TokenExpiredError = class extends TokenInvalidError {
  static code = "token_expired";
};
var AuthorizationError = class extends NucleusError {
  static code = "forbidden";
};
var AccessDeniedError = class extends AuthorizationError {
  static code = "access_denied";
};
var InsufficientScopeError = class extends AuthorizationError {
  static code = "insufficient_scope";
};
var ModuleError = class extends NucleusError {
  static code = "module_error";
};
var RecordRejectedError = class extends ModuleError {
  static code = "record_rejected";
};
var LogVerificationError = class extends IntegrityError {
  static code = "log_verification_failed";
};
var CheckpointSignatureError = class extends LogVerificationError {
  static code = "checkpoint_signature_invalid";
};
var InconsistentLogError = class extends LogVerificationError {
  static code = "log_inconsistent";
};
var RollbackError = class extends LogVerificationError {
  static code = "log_rollback";
};
var InclusionProofError = class extends LogVerificationError {
  static code = "inclusion_proof_invalid";
};
var EntryContentError = class extends LogVerificationError {
  static code = "entry_content_invalid";
};
var AnswerMismatchError = class extends LogVerificationError {
  static code = "answer_mismatch";
};
var WitnessPolicyError = class extends LogVerificationError {
  static code = "witness_policy_unmet";
};
var CLASSES = [
  NucleusError,
  ConfigurationError,
  LedgerNotFoundError,
  NotFoundError,
  PluginError,
  ValidationError,
  RecordValidationError,
  RecordTooLargeError,
  QueryError,
  MalformedRequestError,
  RequestTooLargeError,
  StorageError,
  StorageUnavailableError,
  IntegrityError,
  CheckpointRefusedError,
  CheckpointMismatchError,
  ConflictError,
  DuplicateRecordError,
  ReadOnlyLedgerError,
  TrustedStateError,
  LedgerClosedError,
  MethodNotAllowedError,
  AuthenticationError,
  MissingRequesterError,
  TokenInvalidError,
  TokenExpiredError,
  AuthorizationError,
  AccessDeniedError,
  InsufficientScopeError,
  ModuleError,
  RecordRejectedError,
  LogVerificationError,
  CheckpointSignatureError,
  InconsistentLogError,
  RollbackError,
  InclusionProofError,
  EntryContentError,
  AnswerMismatchError,
  WitnessPolicyError
];
var BY_CODE = new Map(CLASSES.map((cls) => [cls.code, cls]));
function errorClass(code) {
  return BY_CODE.get(code) ?? NucleusError;
}
function str(value) {
  return typeof value === "string" ? value : void 0;
}
function int(value) {
  return typeof value === "number" && Number.isInteger(value) ? value : void 0;
}
function rebuildError(document2, status) {
  const error = typeof document2 === "object" && document2 !== null ? document2.error : void 0;
  if (typeof error !== "object" || error === null || typeof error.code !== "string") {
    const message2 = `the server answered ${status} without an error document`;
    return status === 503 ? new StorageUnavailableError(message2, { status }) : new NucleusError(message2, { status });
  }
  const doc = error;
  const code = doc["code"];
  const message = str(doc["message"]) ?? code;
  const cls = errorClass(code);
  const reason = str(doc["reason"]);
  const rebuilt = new cls(message, {
    field: str(doc["field"]),
    seq: int(doc["seq"]),
    reason: reason === void 0 && (cls === IntegrityError || cls.prototype instanceof IntegrityError) ? message : reason,
    recordId: str(doc["record_id"]),
    moduleId: str(doc["module_id"]),
    trustedSize: int(doc["trusted_size"]),
    presentedSize: int(doc["presented_size"]),
    status
  });
  return rebuilt;
}

// src/canonical.ts
var LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
var MAX_DEPTH = 200;
function encodeString(value) {
  if (LONE_SURROGATE.test(value)) {
    throw new ValidationError("a string holds a lone surrogate (not I-JSON)", { field: "record" });
  }
  return JSON.stringify(value);
}
function encode(value, depth, out) {
  if (depth > MAX_DEPTH) throw new ValidationError("JSON nested too deeply", { field: "record" });
  if (value === null) {
    out.push("null");
  } else if (value === true) {
    out.push("true");
  } else if (value === false) {
    out.push("false");
  } else if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new ValidationError("NaN and infinities are not JSON", { field: "record" });
    out.push(Object.is(value, -0) ? "0" : String(value));
  } else if (typeof value === "string") {
    out.push(encodeString(value));
  } else if (Array.isArray(value)) {
    out.push("[");
    value.forEach((item, i) => {
      if (i) out.push(",");
      encode(item, depth + 1, out);
    });
    out.push("]");
  } else if (typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
    const obj = value;
    const keys = Object.keys(obj).sort();
    out.push("{");
    keys.forEach((key, i) => {
      if (i) out.push(",");
      out.push(encodeString(key), ":");
      encode(obj[key], depth + 1, out);
    });
    out.push("}");
  } else {
    throw new ValidationError(`${typeof value} is not a JSON value`, { field: "record" });
  }
}
function canonicalize(value) {
  const out = [];
  encode(value, 0, out);
  return out.join("");
}
var encoder = new TextEncoder();
function canonicalBytes(value) {
  return encoder.encode(canonicalize(value));
}

// src/bytes.ts
var HEX64 = /^[0-9a-f]{64}$/;
var encoder2 = new TextEncoder();
function utf8(text) {
  return encoder2.encode(text);
}
function isHash(value) {
  return typeof value === "string" && HEX64.test(value);
}
var HEX_OF_BYTE = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));
function bytesToHex2(bytes) {
  let out = "";
  for (let i = 0; i < bytes.length; i++) out += HEX_OF_BYTE[bytes[i]];
  return out;
}
function nibble(code) {
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 97 && code <= 102) return code - 87;
  if (code >= 65 && code <= 70) return code - 55;
  return -1;
}
function hexToBytes2(hex) {
  if (hex.length % 2 !== 0) throw new RangeError("not hex");
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) {
    const hi = nibble(hex.charCodeAt(2 * i));
    const lo = nibble(hex.charCodeAt(2 * i + 1));
    if (hi < 0 || lo < 0) throw new RangeError("not hex");
    out[i] = hi << 4 | lo;
  }
  return out;
}
function concatBytes2(parts) {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}
function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
function base64Encode(bytes) {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}
function base64DecodeStrict(text) {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return null;
  let binary;
  try {
    binary = atob(text);
  } catch {
    return null;
  }
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return base64Encode(out) === text ? out : null;
}

// src/entry.ts
var STREAM = /^_?[a-z][a-z0-9_.-]{0,63}$/;
var OID = /^oid:[a-z0-9][a-z0-9_-]{0,63}:[a-z0-9][a-z0-9_-]{0,63}:[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$/;
var AUTH_SOURCE = /^[a-z][a-z0-9_.-]{0,63}$/;
var ID_CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
var SPACE = "[\\t\\n\\v\\f\\r \\u001c-\\u001f\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";
var EDGE_SPACE = new RegExp(`^${SPACE}|${SPACE}$`, "u");
var MAX_SAFE = Number.MAX_SAFE_INTEGER;
var TAG_V1 = utf8("nucleus/entry/v1\0");
var TAG_V2 = utf8("nucleus/entry/v2\0");
var RECORD_KEYS = /* @__PURE__ */ new Set(["id", "stream", "timestamp", "payload", "meta"]);
function isPlainObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
function recordProblem(value) {
  if (!isPlainObject(value)) return "a record is a JSON object";
  for (const key of Object.keys(value)) {
    if (!RECORD_KEYS.has(key)) return `unknown record key ${JSON.stringify(key)}`;
  }
  const { id, stream, timestamp, payload } = value;
  if (typeof id !== "string") return "id must be a string";
  const points = id.length <= 256 ? id.length : [...id].length;
  if (id.length < 1 || points > 256) return "id must be 1-256 characters";
  if (ID_CONTROL.test(id)) return "id must not hold control characters";
  if (EDGE_SPACE.test(id)) return "id must not start or end with whitespace";
  if (typeof stream !== "string" || !STREAM.test(stream)) return "stream must match [a-z][a-z0-9_.-]{0,63} (or _ and 62)";
  if (typeof timestamp !== "number" || !Number.isInteger(timestamp) || timestamp < 1 || timestamp > MAX_SAFE) {
    return "timestamp must be an integer from 1 to 2^53-1 (Unix milliseconds)";
  }
  if (typeof payload !== "object" || payload === null) return "payload must be an object or an array";
  if ("meta" in value && !isPlainObject(value["meta"])) return "meta must be an object when present";
  return null;
}
function checkRecord(value) {
  const why = recordProblem(value);
  if (why !== null) throw new ValidationError(why, { field: "record" });
  canonicalBytes(value);
  return value;
}
function entryHash(ledgerId, seq, prevHash, canonical, version, appender = null, authSource = null, committedAt = null) {
  return bytesToHex2(blake3(entryPreimage(ledgerId, seq, prevHash, canonical, version, appender, authSource, committedAt)));
}
function entryPreimage(ledgerId, seq, prevHash, canonical, version, appender = null, authSource = null, committedAt = null) {
  const id = utf8(ledgerId);
  let who = null;
  let how = null;
  if (version === 2) {
    if (appender === null || authSource === null || committedAt === null) {
      throw new ValidationError("a version-2 entry has an appender, an auth source and a commit time");
    }
    who = utf8(appender);
    how = utf8(authSource);
  }
  const middle = who === null || how === null ? 0 : 8 + 2 + who.length + 2 + how.length;
  const out = new Uint8Array(17 + 2 + id.length + 8 + 32 + middle + 8 + canonical.length);
  const view = new DataView(out.buffer);
  let at = 0;
  out.set(version === 1 ? TAG_V1 : TAG_V2, at);
  at += 17;
  view.setUint16(at, id.length);
  out.set(id, at + 2);
  at += 2 + id.length;
  writeU64(view, at, seq);
  out.set(hexToBytes2(prevHash), at + 8);
  at += 40;
  if (who !== null && how !== null) {
    writeU64(view, at, committedAt);
    view.setUint16(at + 8, who.length);
    out.set(who, at + 10);
    at += 10 + who.length;
    view.setUint16(at, how.length);
    out.set(how, at + 2);
    at += 2 + how.length;
  }
  writeU64(view, at, canonical.length);
  out.set(canonical, at + 8);
  return out;
}
function writeU64(view, at, n) {
  view.setUint32(at, Math.floor(n / 2 ** 32));
  view.setUint32(at + 4, n >>> 0);
}
function columnsProblem(version, appender, authSource, committedAt) {
  if (version === 1) {
    return appender === null && authSource === null && committedAt === null ? null : "a version-1 entry has no appender, auth source or commit time";
  }
  if (version !== 2) return `unknown entry format version ${JSON.stringify(version)}`;
  if (typeof appender !== "string" || !OID.test(appender)) return "the appender is not an OID";
  if (typeof authSource !== "string" || !AUTH_SOURCE.test(authSource)) return "the auth source is malformed";
  if (typeof committedAt !== "number" || !Number.isInteger(committedAt) || committedAt < 1 || committedAt > MAX_SAFE) {
    return "committed_at is not an integer from 1 to 2^53-1";
  }
  return null;
}
var ENTRY_KEYS = ["seq", "hash", "prev_hash", "version", "appender", "auth_source", "committed_at", "record"];
function entryFromJson(doc, ledgerId) {
  if (!isPlainObject(doc) || Object.keys(doc).length !== ENTRY_KEYS.length || !ENTRY_KEYS.every((k) => k in doc)) {
    throw new IntegrityError("the server sent something that is not an entry");
  }
  const { seq, hash, prev_hash: prevHash, version, appender, auth_source: authSource, committed_at: committedAt } = doc;
  if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 1 || !isHash(hash) || !isHash(prevHash)) {
    throw new IntegrityError("the server sent an entry with a malformed seq or hash");
  }
  const why = recordProblem(doc["record"]);
  if (why !== null) throw new IntegrityError(`entry ${seq}: the server sent an invalid record (${why})`, { seq });
  const record = doc["record"];
  const columns = columnsProblem(version, appender, authSource, committedAt);
  if (columns !== null) {
    throw new IntegrityError(`entry ${seq}: the server sent malformed fields (${columns})`, { seq, reason: columns });
  }
  let canonical;
  try {
    canonical = canonicalBytes(record);
  } catch (err) {
    throw new IntegrityError(`entry ${seq}: the server sent a record that is not I-JSON (${err.message})`, { seq });
  }
  const v = version;
  const expected = entryHash(
    ledgerId,
    seq,
    prevHash,
    canonical,
    v,
    appender,
    authSource,
    committedAt
  );
  if (expected !== hash) {
    throw new IntegrityError(`entry ${seq}: hash does not match the record the server sent`, { seq, reason: "hash mismatch" });
  }
  return {
    seq,
    hash,
    prevHash,
    version: v,
    appender,
    authSource,
    committedAt,
    record,
    canonical
  };
}

// node_modules/@noble/hashes/esm/sha2.js
var SHA256_K = /* @__PURE__ */ Uint32Array.from([
  1116352408,
  1899447441,
  3049323471,
  3921009573,
  961987163,
  1508970993,
  2453635748,
  2870763221,
  3624381080,
  310598401,
  607225278,
  1426881987,
  1925078388,
  2162078206,
  2614888103,
  3248222580,
  3835390401,
  4022224774,
  264347078,
  604807628,
  770255983,
  1249150122,
  1555081692,
  1996064986,
  2554220882,
  2821834349,
  2952996808,
  3210313671,
  3336571891,
  3584528711,
  113926993,
  338241895,
  666307205,
  773529912,
  1294757372,
  1396182291,
  1695183700,
  1986661051,
  2177026350,
  2456956037,
  2730485921,
  2820302411,
  3259730800,
  3345764771,
  3516065817,
  3600352804,
  4094571909,
  275423344,
  430227734,
  506948616,
  659060556,
  883997877,
  958139571,
  1322822218,
  1537002063,
  1747873779,
  1955562222,
  2024104815,
  2227730452,
  2361852424,
  2428436474,
  2756734187,
  3204031479,
  3329325298
]);
var SHA256_W = /* @__PURE__ */ new Uint32Array(64);
var SHA256 = class extends HashMD {
  constructor(outputLen = 32) {
    super(64, outputLen, 8, false);
    this.A = SHA256_IV[0] | 0;
    this.B = SHA256_IV[1] | 0;
    this.C = SHA256_IV[2] | 0;
    this.D = SHA256_IV[3] | 0;
    this.E = SHA256_IV[4] | 0;
    this.F = SHA256_IV[5] | 0;
    this.G = SHA256_IV[6] | 0;
    this.H = SHA256_IV[7] | 0;
  }
  get() {
    const { A, B, C, D, E, F, G, H } = this;
    return [A, B, C, D, E, F, G, H];
  }
  // prettier-ignore
  set(A, B, C, D, E, F, G, H) {
    this.A = A | 0;
    this.B = B | 0;
    this.C = C | 0;
    this.D = D | 0;
    this.E = E | 0;
    this.F = F | 0;
    this.G = G | 0;
    this.H = H | 0;
  }
  process(view, offset) {
    for (let i = 0; i < 16; i++, offset += 4)
      SHA256_W[i] = view.getUint32(offset, false);
    for (let i = 16; i < 64; i++) {
      const W15 = SHA256_W[i - 15];
      const W2 = SHA256_W[i - 2];
      const s0 = rotr(W15, 7) ^ rotr(W15, 18) ^ W15 >>> 3;
      const s1 = rotr(W2, 17) ^ rotr(W2, 19) ^ W2 >>> 10;
      SHA256_W[i] = s1 + SHA256_W[i - 7] + s0 + SHA256_W[i - 16] | 0;
    }
    let { A, B, C, D, E, F, G, H } = this;
    for (let i = 0; i < 64; i++) {
      const sigma1 = rotr(E, 6) ^ rotr(E, 11) ^ rotr(E, 25);
      const T1 = H + sigma1 + Chi(E, F, G) + SHA256_K[i] + SHA256_W[i] | 0;
      const sigma0 = rotr(A, 2) ^ rotr(A, 13) ^ rotr(A, 22);
      const T2 = sigma0 + Maj(A, B, C) | 0;
      H = G;
      G = F;
      F = E;
      E = D + T1 | 0;
      D = C;
      C = B;
      B = A;
      A = T1 + T2 | 0;
    }
    A = A + this.A | 0;
    B = B + this.B | 0;
    C = C + this.C | 0;
    D = D + this.D | 0;
    E = E + this.E | 0;
    F = F + this.F | 0;
    G = G + this.G | 0;
    H = H + this.H | 0;
    this.set(A, B, C, D, E, F, G, H);
  }
  roundClean() {
    clean(SHA256_W);
  }
  destroy() {
    this.set(0, 0, 0, 0, 0, 0, 0, 0);
    clean(this.buffer);
  }
};
var K512 = /* @__PURE__ */ (() => split([
  "0x428a2f98d728ae22",
  "0x7137449123ef65cd",
  "0xb5c0fbcfec4d3b2f",
  "0xe9b5dba58189dbbc",
  "0x3956c25bf348b538",
  "0x59f111f1b605d019",
  "0x923f82a4af194f9b",
  "0xab1c5ed5da6d8118",
  "0xd807aa98a3030242",
  "0x12835b0145706fbe",
  "0x243185be4ee4b28c",
  "0x550c7dc3d5ffb4e2",
  "0x72be5d74f27b896f",
  "0x80deb1fe3b1696b1",
  "0x9bdc06a725c71235",
  "0xc19bf174cf692694",
  "0xe49b69c19ef14ad2",
  "0xefbe4786384f25e3",
  "0x0fc19dc68b8cd5b5",
  "0x240ca1cc77ac9c65",
  "0x2de92c6f592b0275",
  "0x4a7484aa6ea6e483",
  "0x5cb0a9dcbd41fbd4",
  "0x76f988da831153b5",
  "0x983e5152ee66dfab",
  "0xa831c66d2db43210",
  "0xb00327c898fb213f",
  "0xbf597fc7beef0ee4",
  "0xc6e00bf33da88fc2",
  "0xd5a79147930aa725",
  "0x06ca6351e003826f",
  "0x142929670a0e6e70",
  "0x27b70a8546d22ffc",
  "0x2e1b21385c26c926",
  "0x4d2c6dfc5ac42aed",
  "0x53380d139d95b3df",
  "0x650a73548baf63de",
  "0x766a0abb3c77b2a8",
  "0x81c2c92e47edaee6",
  "0x92722c851482353b",
  "0xa2bfe8a14cf10364",
  "0xa81a664bbc423001",
  "0xc24b8b70d0f89791",
  "0xc76c51a30654be30",
  "0xd192e819d6ef5218",
  "0xd69906245565a910",
  "0xf40e35855771202a",
  "0x106aa07032bbd1b8",
  "0x19a4c116b8d2d0c8",
  "0x1e376c085141ab53",
  "0x2748774cdf8eeb99",
  "0x34b0bcb5e19b48a8",
  "0x391c0cb3c5c95a63",
  "0x4ed8aa4ae3418acb",
  "0x5b9cca4f7763e373",
  "0x682e6ff3d6b2b8a3",
  "0x748f82ee5defb2fc",
  "0x78a5636f43172f60",
  "0x84c87814a1f0ab72",
  "0x8cc702081a6439ec",
  "0x90befffa23631e28",
  "0xa4506cebde82bde9",
  "0xbef9a3f7b2c67915",
  "0xc67178f2e372532b",
  "0xca273eceea26619c",
  "0xd186b8c721c0c207",
  "0xeada7dd6cde0eb1e",
  "0xf57d4f7fee6ed178",
  "0x06f067aa72176fba",
  "0x0a637dc5a2c898a6",
  "0x113f9804bef90dae",
  "0x1b710b35131c471b",
  "0x28db77f523047d84",
  "0x32caab7b40c72493",
  "0x3c9ebe0a15c9bebc",
  "0x431d67c49c100d4c",
  "0x4cc5d4becb3e42b6",
  "0x597f299cfc657e2a",
  "0x5fcb6fab3ad6faec",
  "0x6c44198c4a475817"
].map((n) => BigInt(n))))();
var SHA512_Kh = /* @__PURE__ */ (() => K512[0])();
var SHA512_Kl = /* @__PURE__ */ (() => K512[1])();
var SHA512_W_H = /* @__PURE__ */ new Uint32Array(80);
var SHA512_W_L = /* @__PURE__ */ new Uint32Array(80);
var SHA512 = class extends HashMD {
  constructor(outputLen = 64) {
    super(128, outputLen, 16, false);
    this.Ah = SHA512_IV[0] | 0;
    this.Al = SHA512_IV[1] | 0;
    this.Bh = SHA512_IV[2] | 0;
    this.Bl = SHA512_IV[3] | 0;
    this.Ch = SHA512_IV[4] | 0;
    this.Cl = SHA512_IV[5] | 0;
    this.Dh = SHA512_IV[6] | 0;
    this.Dl = SHA512_IV[7] | 0;
    this.Eh = SHA512_IV[8] | 0;
    this.El = SHA512_IV[9] | 0;
    this.Fh = SHA512_IV[10] | 0;
    this.Fl = SHA512_IV[11] | 0;
    this.Gh = SHA512_IV[12] | 0;
    this.Gl = SHA512_IV[13] | 0;
    this.Hh = SHA512_IV[14] | 0;
    this.Hl = SHA512_IV[15] | 0;
  }
  // prettier-ignore
  get() {
    const { Ah, Al, Bh, Bl, Ch, Cl, Dh, Dl, Eh, El, Fh, Fl, Gh, Gl, Hh, Hl } = this;
    return [Ah, Al, Bh, Bl, Ch, Cl, Dh, Dl, Eh, El, Fh, Fl, Gh, Gl, Hh, Hl];
  }
  // prettier-ignore
  set(Ah, Al, Bh, Bl, Ch, Cl, Dh, Dl, Eh, El, Fh, Fl, Gh, Gl, Hh, Hl) {
    this.Ah = Ah | 0;
    this.Al = Al | 0;
    this.Bh = Bh | 0;
    this.Bl = Bl | 0;
    this.Ch = Ch | 0;
    this.Cl = Cl | 0;
    this.Dh = Dh | 0;
    this.Dl = Dl | 0;
    this.Eh = Eh | 0;
    this.El = El | 0;
    this.Fh = Fh | 0;
    this.Fl = Fl | 0;
    this.Gh = Gh | 0;
    this.Gl = Gl | 0;
    this.Hh = Hh | 0;
    this.Hl = Hl | 0;
  }
  process(view, offset) {
    for (let i = 0; i < 16; i++, offset += 4) {
      SHA512_W_H[i] = view.getUint32(offset);
      SHA512_W_L[i] = view.getUint32(offset += 4);
    }
    for (let i = 16; i < 80; i++) {
      const W15h = SHA512_W_H[i - 15] | 0;
      const W15l = SHA512_W_L[i - 15] | 0;
      const s0h = rotrSH(W15h, W15l, 1) ^ rotrSH(W15h, W15l, 8) ^ shrSH(W15h, W15l, 7);
      const s0l = rotrSL(W15h, W15l, 1) ^ rotrSL(W15h, W15l, 8) ^ shrSL(W15h, W15l, 7);
      const W2h = SHA512_W_H[i - 2] | 0;
      const W2l = SHA512_W_L[i - 2] | 0;
      const s1h = rotrSH(W2h, W2l, 19) ^ rotrBH(W2h, W2l, 61) ^ shrSH(W2h, W2l, 6);
      const s1l = rotrSL(W2h, W2l, 19) ^ rotrBL(W2h, W2l, 61) ^ shrSL(W2h, W2l, 6);
      const SUMl = add4L(s0l, s1l, SHA512_W_L[i - 7], SHA512_W_L[i - 16]);
      const SUMh = add4H(SUMl, s0h, s1h, SHA512_W_H[i - 7], SHA512_W_H[i - 16]);
      SHA512_W_H[i] = SUMh | 0;
      SHA512_W_L[i] = SUMl | 0;
    }
    let { Ah, Al, Bh, Bl, Ch, Cl, Dh, Dl, Eh, El, Fh, Fl, Gh, Gl, Hh, Hl } = this;
    for (let i = 0; i < 80; i++) {
      const sigma1h = rotrSH(Eh, El, 14) ^ rotrSH(Eh, El, 18) ^ rotrBH(Eh, El, 41);
      const sigma1l = rotrSL(Eh, El, 14) ^ rotrSL(Eh, El, 18) ^ rotrBL(Eh, El, 41);
      const CHIh = Eh & Fh ^ ~Eh & Gh;
      const CHIl = El & Fl ^ ~El & Gl;
      const T1ll = add5L(Hl, sigma1l, CHIl, SHA512_Kl[i], SHA512_W_L[i]);
      const T1h = add5H(T1ll, Hh, sigma1h, CHIh, SHA512_Kh[i], SHA512_W_H[i]);
      const T1l = T1ll | 0;
      const sigma0h = rotrSH(Ah, Al, 28) ^ rotrBH(Ah, Al, 34) ^ rotrBH(Ah, Al, 39);
      const sigma0l = rotrSL(Ah, Al, 28) ^ rotrBL(Ah, Al, 34) ^ rotrBL(Ah, Al, 39);
      const MAJh = Ah & Bh ^ Ah & Ch ^ Bh & Ch;
      const MAJl = Al & Bl ^ Al & Cl ^ Bl & Cl;
      Hh = Gh | 0;
      Hl = Gl | 0;
      Gh = Fh | 0;
      Gl = Fl | 0;
      Fh = Eh | 0;
      Fl = El | 0;
      ({ h: Eh, l: El } = add(Dh | 0, Dl | 0, T1h | 0, T1l | 0));
      Dh = Ch | 0;
      Dl = Cl | 0;
      Ch = Bh | 0;
      Cl = Bl | 0;
      Bh = Ah | 0;
      Bl = Al | 0;
      const All = add3L(T1l, sigma0l, MAJl);
      Ah = add3H(All, T1h, sigma0h, MAJh);
      Al = All | 0;
    }
    ({ h: Ah, l: Al } = add(this.Ah | 0, this.Al | 0, Ah | 0, Al | 0));
    ({ h: Bh, l: Bl } = add(this.Bh | 0, this.Bl | 0, Bh | 0, Bl | 0));
    ({ h: Ch, l: Cl } = add(this.Ch | 0, this.Cl | 0, Ch | 0, Cl | 0));
    ({ h: Dh, l: Dl } = add(this.Dh | 0, this.Dl | 0, Dh | 0, Dl | 0));
    ({ h: Eh, l: El } = add(this.Eh | 0, this.El | 0, Eh | 0, El | 0));
    ({ h: Fh, l: Fl } = add(this.Fh | 0, this.Fl | 0, Fh | 0, Fl | 0));
    ({ h: Gh, l: Gl } = add(this.Gh | 0, this.Gl | 0, Gh | 0, Gl | 0));
    ({ h: Hh, l: Hl } = add(this.Hh | 0, this.Hl | 0, Hh | 0, Hl | 0));
    this.set(Ah, Al, Bh, Bl, Ch, Cl, Dh, Dl, Eh, El, Fh, Fl, Gh, Gl, Hh, Hl);
  }
  roundClean() {
    clean(SHA512_W_H, SHA512_W_L);
  }
  destroy() {
    clean(this.buffer);
    this.set(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
  }
};
var sha256 = /* @__PURE__ */ createHasher(() => new SHA256());
var sha512 = /* @__PURE__ */ createHasher(() => new SHA512());

// src/merkle.ts
var HASH_SIZE = 32;
var EMPTY_ROOT = sha256(new Uint8Array(0));
var MAX_TREE_SIZE = 2 ** 53 - 1;
var ProofError = class extends Error {
  constructor(message) {
    super(message);
    this.name = "ProofError";
  }
};
var LEAF = new Uint8Array([0]);
var NODE_INPUT = new Uint8Array(1 + 2 * HASH_SIZE);
NODE_INPUT[0] = 1;
function leafHash(leaf) {
  return sha256(concatBytes2([LEAF, leaf]));
}
function nodeHash(left, right) {
  if (left.length !== HASH_SIZE || right.length !== HASH_SIZE) {
    return sha256(concatBytes2([NODE_INPUT.subarray(0, 1), left, right]));
  }
  NODE_INPUT.set(left, 1);
  NODE_INPUT.set(right, 1 + HASH_SIZE);
  return sha256(NODE_INPUT);
}
function checkHash(value, what) {
  if (!(value instanceof Uint8Array) || value.length !== HASH_SIZE) throw new ProofError(`${what} is not ${HASH_SIZE} bytes`);
  return value;
}
function checkCount(value, what) {
  if (!Number.isInteger(value) || value < 0 || value > MAX_TREE_SIZE) {
    throw new ProofError(`${what} is not an integer from 0 to 2^53-1`);
  }
  return value;
}
function checkProof(proof, what) {
  if (!Array.isArray(proof)) throw new ProofError(`${what} is a list of hashes`);
  return proof.map((p, i) => checkHash(p, `${what} element ${i}`));
}
var odd = (n) => n % 2 === 1;
var half = (n) => Math.floor(n / 2);
function verifyInclusion(leaf, index, size, proof, root) {
  checkHash(leaf, "the leaf hash");
  checkHash(root, "the root hash");
  const path = checkProof(proof, "the inclusion proof");
  checkCount(index, "the leaf index");
  checkCount(size, "the tree size");
  if (index >= size) throw new ProofError(`the leaf index ${index} is not below the tree size ${size}`);
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of path) {
    if (sn === 0) throw new ProofError("the inclusion proof has more hashes than the tree size allows");
    if (odd(fn) || fn === sn) {
      r = nodeHash(p, r);
      while (!odd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0) throw new ProofError("the inclusion proof has fewer hashes than the tree size needs");
  if (!equalBytes(r, root)) throw new ProofError("the inclusion proof does not lead to the root hash");
}
function isPowerOfTwo(n) {
  while (n > 1 && n % 2 === 0) n /= 2;
  return n === 1;
}
function largestPowerOfTwoBelow(n) {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}
function verifyMultiInclusion(leaves, indices, size, proof, root) {
  checkHash(root, "the root hash");
  checkCount(size, "the tree size");
  const given = leaves.map((leaf, i) => checkHash(leaf, `leaf hash ${i}`));
  const path = checkProof(proof, "the inclusion proof");
  if (!Array.isArray(indices) || indices.length !== given.length || given.length === 0) {
    throw new ProofError("one leaf index per leaf hash, at least one, is needed");
  }
  const order = indices.map((index) => checkCount(index, "a leaf index"));
  for (let i = 1; i < order.length; i++) {
    if (order[i] <= order[i - 1]) throw new ProofError("the leaf indices are not strictly increasing");
  }
  const last = order[order.length - 1];
  if (last >= size) throw new ProofError(`the leaf index ${last} is not below the tree size ${size}`);
  let next = 0;
  const mth = (start2, end, lo, hi) => {
    if (lo === hi) {
      const value = path[next++];
      if (value === void 0) throw new ProofError("the inclusion proof has fewer hashes than the leaves and tree size need");
      return value;
    }
    if (end - start2 === 1) return given[lo];
    const k = largestPowerOfTwoBelow(end - start2);
    let mid = lo;
    while (mid < hi && order[mid] < start2 + k) mid++;
    return nodeHash(mth(start2, start2 + k, lo, mid), mth(start2 + k, end, mid, hi));
  };
  const computed = mth(0, size, 0, order.length);
  if (next !== path.length) throw new ProofError("the inclusion proof has more hashes than the leaves and tree size need");
  if (!equalBytes(computed, root)) throw new ProofError("the inclusion proof does not lead to the root hash");
}
function verifyConsistency(first, second, firstRoot, secondRoot, proof) {
  checkHash(firstRoot, "the first root hash");
  checkHash(secondRoot, "the second root hash");
  const path = checkProof(proof, "the consistency proof");
  checkCount(first, "the first tree size");
  checkCount(second, "the second tree size");
  if (first > second) throw new ProofError(`the first tree size ${first} is larger than the second ${second}`);
  if (first === 0 || second === 0) {
    if (!equalBytes(firstRoot, EMPTY_ROOT) || second === 0 && !equalBytes(secondRoot, EMPTY_ROOT)) {
      throw new ProofError("the root hash of the empty tree is SHA-256 of the empty string");
    }
    if (path.length) throw new ProofError("a consistency proof from the empty tree is empty");
    return;
  }
  if (first === second) {
    if (path.length) throw new ProofError("a consistency proof between equal tree sizes is empty");
    if (!equalBytes(firstRoot, secondRoot)) throw new ProofError("the two tree heads have the same size and different root hashes");
    return;
  }
  if (path.length === 0) throw new ProofError("the consistency proof is empty");
  if (isPowerOfTwo(first)) path.unshift(firstRoot);
  let fn = first - 1;
  let sn = second - 1;
  while (odd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = path[0];
  let sr = fr;
  for (const c of path.slice(1)) {
    if (sn === 0) throw new ProofError("the consistency proof has more hashes than the tree sizes allow");
    if (odd(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (!odd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  if (sn !== 0) throw new ProofError("the consistency proof has fewer hashes than the tree sizes need");
  if (!equalBytes(fr, firstRoot)) throw new ProofError("the consistency proof does not lead to the first root hash");
  if (!equalBytes(sr, secondRoot)) throw new ProofError("the consistency proof does not lead to the second root hash");
}

// node_modules/@noble/curves/esm/utils.js
/*! noble-curves - MIT License (c) 2022 Paul Miller (paulmillr.com) */
var _0n = /* @__PURE__ */ BigInt(0);
var _1n = /* @__PURE__ */ BigInt(1);
function _abool2(value, title = "") {
  if (typeof value !== "boolean") {
    const prefix = title && `"${title}"`;
    throw new Error(prefix + "expected boolean, got type=" + typeof value);
  }
  return value;
}
function _abytes2(value, length, title = "") {
  const bytes = isBytes(value);
  const len = value?.length;
  const needsLen = length !== void 0;
  if (!bytes || needsLen && len !== length) {
    const prefix = title && `"${title}" `;
    const ofLen = needsLen ? ` of length ${length}` : "";
    const got = bytes ? `length=${len}` : `type=${typeof value}`;
    throw new Error(prefix + "expected Uint8Array" + ofLen + ", got " + got);
  }
  return value;
}
function hexToNumber(hex) {
  if (typeof hex !== "string")
    throw new Error("hex string expected, got " + typeof hex);
  return hex === "" ? _0n : BigInt("0x" + hex);
}
function bytesToNumberBE(bytes) {
  return hexToNumber(bytesToHex(bytes));
}
function bytesToNumberLE(bytes) {
  abytes(bytes);
  return hexToNumber(bytesToHex(Uint8Array.from(bytes).reverse()));
}
function numberToBytesBE(n, len) {
  return hexToBytes(n.toString(16).padStart(len * 2, "0"));
}
function numberToBytesLE(n, len) {
  return numberToBytesBE(n, len).reverse();
}
function ensureBytes(title, hex, expectedLength) {
  let res;
  if (typeof hex === "string") {
    try {
      res = hexToBytes(hex);
    } catch (e) {
      throw new Error(title + " must be hex string or Uint8Array, cause: " + e);
    }
  } else if (isBytes(hex)) {
    res = Uint8Array.from(hex);
  } else {
    throw new Error(title + " must be hex string or Uint8Array");
  }
  const len = res.length;
  if (typeof expectedLength === "number" && len !== expectedLength)
    throw new Error(title + " of length " + expectedLength + " expected, got " + len);
  return res;
}
function equalBytes2(a, b) {
  if (a.length !== b.length)
    return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++)
    diff |= a[i] ^ b[i];
  return diff === 0;
}
function copyBytes(bytes) {
  return Uint8Array.from(bytes);
}
var isPosBig = (n) => typeof n === "bigint" && _0n <= n;
function inRange(n, min, max) {
  return isPosBig(n) && isPosBig(min) && isPosBig(max) && min <= n && n < max;
}
function aInRange(title, n, min, max) {
  if (!inRange(n, min, max))
    throw new Error("expected valid " + title + ": " + min + " <= n < " + max + ", got " + n);
}
function bitLen(n) {
  let len;
  for (len = 0; n > _0n; n >>= _1n, len += 1)
    ;
  return len;
}
var bitMask = (n) => (_1n << BigInt(n)) - _1n;
function _validateObject(object, fields, optFields = {}) {
  if (!object || typeof object !== "object")
    throw new Error("expected valid options object");
  function checkField(fieldName, expectedType, isOpt) {
    const val = object[fieldName];
    if (isOpt && val === void 0)
      return;
    const current = typeof val;
    if (current !== expectedType || val === null)
      throw new Error(`param "${fieldName}" is invalid: expected ${expectedType}, got ${current}`);
  }
  Object.entries(fields).forEach(([k, v]) => checkField(k, v, false));
  Object.entries(optFields).forEach(([k, v]) => checkField(k, v, true));
}
var notImplemented = () => {
  throw new Error("not implemented");
};
function memoized(fn) {
  const map = /* @__PURE__ */ new WeakMap();
  return (arg, ...args) => {
    const val = map.get(arg);
    if (val !== void 0)
      return val;
    const computed = fn(arg, ...args);
    map.set(arg, computed);
    return computed;
  };
}

// node_modules/@noble/curves/esm/abstract/modular.js
/*! noble-curves - MIT License (c) 2022 Paul Miller (paulmillr.com) */
var _0n2 = BigInt(0);
var _1n2 = BigInt(1);
var _2n = /* @__PURE__ */ BigInt(2);
var _3n = /* @__PURE__ */ BigInt(3);
var _4n = /* @__PURE__ */ BigInt(4);
var _5n = /* @__PURE__ */ BigInt(5);
var _7n = /* @__PURE__ */ BigInt(7);
var _8n = /* @__PURE__ */ BigInt(8);
var _9n = /* @__PURE__ */ BigInt(9);
var _16n = /* @__PURE__ */ BigInt(16);
function mod(a, b) {
  const result = a % b;
  return result >= _0n2 ? result : b + result;
}
function pow2(x, power, modulo) {
  let res = x;
  while (power-- > _0n2) {
    res *= res;
    res %= modulo;
  }
  return res;
}
function invert(number, modulo) {
  if (number === _0n2)
    throw new Error("invert: expected non-zero number");
  if (modulo <= _0n2)
    throw new Error("invert: expected positive modulus, got " + modulo);
  let a = mod(number, modulo);
  let b = modulo;
  let x = _0n2, y = _1n2, u = _1n2, v = _0n2;
  while (a !== _0n2) {
    const q = b / a;
    const r = b % a;
    const m = x - u * q;
    const n = y - v * q;
    b = a, a = r, x = u, y = v, u = m, v = n;
  }
  const gcd = b;
  if (gcd !== _1n2)
    throw new Error("invert: does not exist");
  return mod(x, modulo);
}
function assertIsSquare(Fp2, root, n) {
  if (!Fp2.eql(Fp2.sqr(root), n))
    throw new Error("Cannot find square root");
}
function sqrt3mod4(Fp2, n) {
  const p1div4 = (Fp2.ORDER + _1n2) / _4n;
  const root = Fp2.pow(n, p1div4);
  assertIsSquare(Fp2, root, n);
  return root;
}
function sqrt5mod8(Fp2, n) {
  const p5div8 = (Fp2.ORDER - _5n) / _8n;
  const n2 = Fp2.mul(n, _2n);
  const v = Fp2.pow(n2, p5div8);
  const nv = Fp2.mul(n, v);
  const i = Fp2.mul(Fp2.mul(nv, _2n), v);
  const root = Fp2.mul(nv, Fp2.sub(i, Fp2.ONE));
  assertIsSquare(Fp2, root, n);
  return root;
}
function sqrt9mod16(P) {
  const Fp_ = Field(P);
  const tn = tonelliShanks(P);
  const c1 = tn(Fp_, Fp_.neg(Fp_.ONE));
  const c2 = tn(Fp_, c1);
  const c3 = tn(Fp_, Fp_.neg(c1));
  const c4 = (P + _7n) / _16n;
  return (Fp2, n) => {
    let tv1 = Fp2.pow(n, c4);
    let tv2 = Fp2.mul(tv1, c1);
    const tv3 = Fp2.mul(tv1, c2);
    const tv4 = Fp2.mul(tv1, c3);
    const e1 = Fp2.eql(Fp2.sqr(tv2), n);
    const e2 = Fp2.eql(Fp2.sqr(tv3), n);
    tv1 = Fp2.cmov(tv1, tv2, e1);
    tv2 = Fp2.cmov(tv4, tv3, e2);
    const e3 = Fp2.eql(Fp2.sqr(tv2), n);
    const root = Fp2.cmov(tv1, tv2, e3);
    assertIsSquare(Fp2, root, n);
    return root;
  };
}
function tonelliShanks(P) {
  if (P < _3n)
    throw new Error("sqrt is not defined for small field");
  let Q = P - _1n2;
  let S = 0;
  while (Q % _2n === _0n2) {
    Q /= _2n;
    S++;
  }
  let Z = _2n;
  const _Fp = Field(P);
  while (FpLegendre(_Fp, Z) === 1) {
    if (Z++ > 1e3)
      throw new Error("Cannot find square root: probably non-prime P");
  }
  if (S === 1)
    return sqrt3mod4;
  let cc = _Fp.pow(Z, Q);
  const Q1div2 = (Q + _1n2) / _2n;
  return function tonelliSlow(Fp2, n) {
    if (Fp2.is0(n))
      return n;
    if (FpLegendre(Fp2, n) !== 1)
      throw new Error("Cannot find square root");
    let M = S;
    let c = Fp2.mul(Fp2.ONE, cc);
    let t = Fp2.pow(n, Q);
    let R = Fp2.pow(n, Q1div2);
    while (!Fp2.eql(t, Fp2.ONE)) {
      if (Fp2.is0(t))
        return Fp2.ZERO;
      let i = 1;
      let t_tmp = Fp2.sqr(t);
      while (!Fp2.eql(t_tmp, Fp2.ONE)) {
        i++;
        t_tmp = Fp2.sqr(t_tmp);
        if (i === M)
          throw new Error("Cannot find square root");
      }
      const exponent = _1n2 << BigInt(M - i - 1);
      const b = Fp2.pow(c, exponent);
      M = i;
      c = Fp2.sqr(b);
      t = Fp2.mul(t, c);
      R = Fp2.mul(R, b);
    }
    return R;
  };
}
function FpSqrt(P) {
  if (P % _4n === _3n)
    return sqrt3mod4;
  if (P % _8n === _5n)
    return sqrt5mod8;
  if (P % _16n === _9n)
    return sqrt9mod16(P);
  return tonelliShanks(P);
}
var isNegativeLE = (num, modulo) => (mod(num, modulo) & _1n2) === _1n2;
var FIELD_FIELDS = [
  "create",
  "isValid",
  "is0",
  "neg",
  "inv",
  "sqrt",
  "sqr",
  "eql",
  "add",
  "sub",
  "mul",
  "pow",
  "div",
  "addN",
  "subN",
  "mulN",
  "sqrN"
];
function validateField(field) {
  const initial = {
    ORDER: "bigint",
    MASK: "bigint",
    BYTES: "number",
    BITS: "number"
  };
  const opts = FIELD_FIELDS.reduce((map, val) => {
    map[val] = "function";
    return map;
  }, initial);
  _validateObject(field, opts);
  return field;
}
function FpPow(Fp2, num, power) {
  if (power < _0n2)
    throw new Error("invalid exponent, negatives unsupported");
  if (power === _0n2)
    return Fp2.ONE;
  if (power === _1n2)
    return num;
  let p = Fp2.ONE;
  let d = num;
  while (power > _0n2) {
    if (power & _1n2)
      p = Fp2.mul(p, d);
    d = Fp2.sqr(d);
    power >>= _1n2;
  }
  return p;
}
function FpInvertBatch(Fp2, nums, passZero = false) {
  const inverted = new Array(nums.length).fill(passZero ? Fp2.ZERO : void 0);
  const multipliedAcc = nums.reduce((acc, num, i) => {
    if (Fp2.is0(num))
      return acc;
    inverted[i] = acc;
    return Fp2.mul(acc, num);
  }, Fp2.ONE);
  const invertedAcc = Fp2.inv(multipliedAcc);
  nums.reduceRight((acc, num, i) => {
    if (Fp2.is0(num))
      return acc;
    inverted[i] = Fp2.mul(acc, inverted[i]);
    return Fp2.mul(acc, num);
  }, invertedAcc);
  return inverted;
}
function FpLegendre(Fp2, n) {
  const p1mod2 = (Fp2.ORDER - _1n2) / _2n;
  const powered = Fp2.pow(n, p1mod2);
  const yes = Fp2.eql(powered, Fp2.ONE);
  const zero = Fp2.eql(powered, Fp2.ZERO);
  const no = Fp2.eql(powered, Fp2.neg(Fp2.ONE));
  if (!yes && !zero && !no)
    throw new Error("invalid Legendre symbol result");
  return yes ? 1 : zero ? 0 : -1;
}
function nLength(n, nBitLength) {
  if (nBitLength !== void 0)
    anumber(nBitLength);
  const _nBitLength = nBitLength !== void 0 ? nBitLength : n.toString(2).length;
  const nByteLength = Math.ceil(_nBitLength / 8);
  return { nBitLength: _nBitLength, nByteLength };
}
function Field(ORDER, bitLenOrOpts, isLE2 = false, opts = {}) {
  if (ORDER <= _0n2)
    throw new Error("invalid field: expected ORDER > 0, got " + ORDER);
  let _nbitLength = void 0;
  let _sqrt = void 0;
  let modFromBytes = false;
  let allowedLengths = void 0;
  if (typeof bitLenOrOpts === "object" && bitLenOrOpts != null) {
    if (opts.sqrt || isLE2)
      throw new Error("cannot specify opts in two arguments");
    const _opts = bitLenOrOpts;
    if (_opts.BITS)
      _nbitLength = _opts.BITS;
    if (_opts.sqrt)
      _sqrt = _opts.sqrt;
    if (typeof _opts.isLE === "boolean")
      isLE2 = _opts.isLE;
    if (typeof _opts.modFromBytes === "boolean")
      modFromBytes = _opts.modFromBytes;
    allowedLengths = _opts.allowedLengths;
  } else {
    if (typeof bitLenOrOpts === "number")
      _nbitLength = bitLenOrOpts;
    if (opts.sqrt)
      _sqrt = opts.sqrt;
  }
  const { nBitLength: BITS, nByteLength: BYTES } = nLength(ORDER, _nbitLength);
  if (BYTES > 2048)
    throw new Error("invalid field: expected ORDER of <= 2048 bytes");
  let sqrtP;
  const f = Object.freeze({
    ORDER,
    isLE: isLE2,
    BITS,
    BYTES,
    MASK: bitMask(BITS),
    ZERO: _0n2,
    ONE: _1n2,
    allowedLengths,
    create: (num) => mod(num, ORDER),
    isValid: (num) => {
      if (typeof num !== "bigint")
        throw new Error("invalid field element: expected bigint, got " + typeof num);
      return _0n2 <= num && num < ORDER;
    },
    is0: (num) => num === _0n2,
    // is valid and invertible
    isValidNot0: (num) => !f.is0(num) && f.isValid(num),
    isOdd: (num) => (num & _1n2) === _1n2,
    neg: (num) => mod(-num, ORDER),
    eql: (lhs, rhs) => lhs === rhs,
    sqr: (num) => mod(num * num, ORDER),
    add: (lhs, rhs) => mod(lhs + rhs, ORDER),
    sub: (lhs, rhs) => mod(lhs - rhs, ORDER),
    mul: (lhs, rhs) => mod(lhs * rhs, ORDER),
    pow: (num, power) => FpPow(f, num, power),
    div: (lhs, rhs) => mod(lhs * invert(rhs, ORDER), ORDER),
    // Same as above, but doesn't normalize
    sqrN: (num) => num * num,
    addN: (lhs, rhs) => lhs + rhs,
    subN: (lhs, rhs) => lhs - rhs,
    mulN: (lhs, rhs) => lhs * rhs,
    inv: (num) => invert(num, ORDER),
    sqrt: _sqrt || ((n) => {
      if (!sqrtP)
        sqrtP = FpSqrt(ORDER);
      return sqrtP(f, n);
    }),
    toBytes: (num) => isLE2 ? numberToBytesLE(num, BYTES) : numberToBytesBE(num, BYTES),
    fromBytes: (bytes, skipValidation = true) => {
      if (allowedLengths) {
        if (!allowedLengths.includes(bytes.length) || bytes.length > BYTES) {
          throw new Error("Field.fromBytes: expected " + allowedLengths + " bytes, got " + bytes.length);
        }
        const padded = new Uint8Array(BYTES);
        padded.set(bytes, isLE2 ? 0 : padded.length - bytes.length);
        bytes = padded;
      }
      if (bytes.length !== BYTES)
        throw new Error("Field.fromBytes: expected " + BYTES + " bytes, got " + bytes.length);
      let scalar = isLE2 ? bytesToNumberLE(bytes) : bytesToNumberBE(bytes);
      if (modFromBytes)
        scalar = mod(scalar, ORDER);
      if (!skipValidation) {
        if (!f.isValid(scalar))
          throw new Error("invalid field element: outside of range 0..ORDER");
      }
      return scalar;
    },
    // TODO: we don't need it here, move out to separate fn
    invertBatch: (lst) => FpInvertBatch(f, lst),
    // We can't move this out because Fp6, Fp12 implement it
    // and it's unclear what to return in there.
    cmov: (a, b, c) => c ? b : a
  });
  return Object.freeze(f);
}

// node_modules/@noble/curves/esm/abstract/curve.js
/*! noble-curves - MIT License (c) 2022 Paul Miller (paulmillr.com) */
var _0n3 = BigInt(0);
var _1n3 = BigInt(1);
function negateCt(condition, item) {
  const neg = item.negate();
  return condition ? neg : item;
}
function normalizeZ(c, points) {
  const invertedZs = FpInvertBatch(c.Fp, points.map((p) => p.Z));
  return points.map((p, i) => c.fromAffine(p.toAffine(invertedZs[i])));
}
function validateW(W, bits) {
  if (!Number.isSafeInteger(W) || W <= 0 || W > bits)
    throw new Error("invalid window size, expected [1.." + bits + "], got W=" + W);
}
function calcWOpts(W, scalarBits) {
  validateW(W, scalarBits);
  const windows = Math.ceil(scalarBits / W) + 1;
  const windowSize = 2 ** (W - 1);
  const maxNumber = 2 ** W;
  const mask = bitMask(W);
  const shiftBy = BigInt(W);
  return { windows, windowSize, mask, maxNumber, shiftBy };
}
function calcOffsets(n, window2, wOpts) {
  const { windowSize, mask, maxNumber, shiftBy } = wOpts;
  let wbits = Number(n & mask);
  let nextN = n >> shiftBy;
  if (wbits > windowSize) {
    wbits -= maxNumber;
    nextN += _1n3;
  }
  const offsetStart = window2 * windowSize;
  const offset = offsetStart + Math.abs(wbits) - 1;
  const isZero = wbits === 0;
  const isNeg = wbits < 0;
  const isNegF = window2 % 2 !== 0;
  const offsetF = offsetStart;
  return { nextN, offset, isZero, isNeg, isNegF, offsetF };
}
function validateMSMPoints(points, c) {
  if (!Array.isArray(points))
    throw new Error("array expected");
  points.forEach((p, i) => {
    if (!(p instanceof c))
      throw new Error("invalid point at index " + i);
  });
}
function validateMSMScalars(scalars, field) {
  if (!Array.isArray(scalars))
    throw new Error("array of scalars expected");
  scalars.forEach((s, i) => {
    if (!field.isValid(s))
      throw new Error("invalid scalar at index " + i);
  });
}
var pointPrecomputes = /* @__PURE__ */ new WeakMap();
var pointWindowSizes = /* @__PURE__ */ new WeakMap();
function getW(P) {
  return pointWindowSizes.get(P) || 1;
}
function assert0(n) {
  if (n !== _0n3)
    throw new Error("invalid wNAF");
}
var wNAF = class {
  // Parametrized with a given Point class (not individual point)
  constructor(Point, bits) {
    this.BASE = Point.BASE;
    this.ZERO = Point.ZERO;
    this.Fn = Point.Fn;
    this.bits = bits;
  }
  // non-const time multiplication ladder
  _unsafeLadder(elm, n, p = this.ZERO) {
    let d = elm;
    while (n > _0n3) {
      if (n & _1n3)
        p = p.add(d);
      d = d.double();
      n >>= _1n3;
    }
    return p;
  }
  /**
   * Creates a wNAF precomputation window. Used for caching.
   * Default window size is set by `utils.precompute()` and is equal to 8.
   * Number of precomputed points depends on the curve size:
   * 2^(𝑊−1) * (Math.ceil(𝑛 / 𝑊) + 1), where:
   * - 𝑊 is the window size
   * - 𝑛 is the bitlength of the curve order.
   * For a 256-bit curve and window size 8, the number of precomputed points is 128 * 33 = 4224.
   * @param point Point instance
   * @param W window size
   * @returns precomputed point tables flattened to a single array
   */
  precomputeWindow(point, W) {
    const { windows, windowSize } = calcWOpts(W, this.bits);
    const points = [];
    let p = point;
    let base = p;
    for (let window2 = 0; window2 < windows; window2++) {
      base = p;
      points.push(base);
      for (let i = 1; i < windowSize; i++) {
        base = base.add(p);
        points.push(base);
      }
      p = base.double();
    }
    return points;
  }
  /**
   * Implements ec multiplication using precomputed tables and w-ary non-adjacent form.
   * More compact implementation:
   * https://github.com/paulmillr/noble-secp256k1/blob/47cb1669b6e506ad66b35fe7d76132ae97465da2/index.ts#L502-L541
   * @returns real and fake (for const-time) points
   */
  wNAF(W, precomputes, n) {
    if (!this.Fn.isValid(n))
      throw new Error("invalid scalar");
    let p = this.ZERO;
    let f = this.BASE;
    const wo = calcWOpts(W, this.bits);
    for (let window2 = 0; window2 < wo.windows; window2++) {
      const { nextN, offset, isZero, isNeg, isNegF, offsetF } = calcOffsets(n, window2, wo);
      n = nextN;
      if (isZero) {
        f = f.add(negateCt(isNegF, precomputes[offsetF]));
      } else {
        p = p.add(negateCt(isNeg, precomputes[offset]));
      }
    }
    assert0(n);
    return { p, f };
  }
  /**
   * Implements ec unsafe (non const-time) multiplication using precomputed tables and w-ary non-adjacent form.
   * @param acc accumulator point to add result of multiplication
   * @returns point
   */
  wNAFUnsafe(W, precomputes, n, acc = this.ZERO) {
    const wo = calcWOpts(W, this.bits);
    for (let window2 = 0; window2 < wo.windows; window2++) {
      if (n === _0n3)
        break;
      const { nextN, offset, isZero, isNeg } = calcOffsets(n, window2, wo);
      n = nextN;
      if (isZero) {
        continue;
      } else {
        const item = precomputes[offset];
        acc = acc.add(isNeg ? item.negate() : item);
      }
    }
    assert0(n);
    return acc;
  }
  getPrecomputes(W, point, transform) {
    let comp = pointPrecomputes.get(point);
    if (!comp) {
      comp = this.precomputeWindow(point, W);
      if (W !== 1) {
        if (typeof transform === "function")
          comp = transform(comp);
        pointPrecomputes.set(point, comp);
      }
    }
    return comp;
  }
  cached(point, scalar, transform) {
    const W = getW(point);
    return this.wNAF(W, this.getPrecomputes(W, point, transform), scalar);
  }
  unsafe(point, scalar, transform, prev) {
    const W = getW(point);
    if (W === 1)
      return this._unsafeLadder(point, scalar, prev);
    return this.wNAFUnsafe(W, this.getPrecomputes(W, point, transform), scalar, prev);
  }
  // We calculate precomputes for elliptic curve point multiplication
  // using windowed method. This specifies window size and
  // stores precomputed values. Usually only base point would be precomputed.
  createCache(P, W) {
    validateW(W, this.bits);
    pointWindowSizes.set(P, W);
    pointPrecomputes.delete(P);
  }
  hasCache(elm) {
    return getW(elm) !== 1;
  }
};
function pippenger(c, fieldN, points, scalars) {
  validateMSMPoints(points, c);
  validateMSMScalars(scalars, fieldN);
  const plength = points.length;
  const slength = scalars.length;
  if (plength !== slength)
    throw new Error("arrays of points and scalars must have equal length");
  const zero = c.ZERO;
  const wbits = bitLen(BigInt(plength));
  let windowSize = 1;
  if (wbits > 12)
    windowSize = wbits - 3;
  else if (wbits > 4)
    windowSize = wbits - 2;
  else if (wbits > 0)
    windowSize = 2;
  const MASK = bitMask(windowSize);
  const buckets = new Array(Number(MASK) + 1).fill(zero);
  const lastBits = Math.floor((fieldN.BITS - 1) / windowSize) * windowSize;
  let sum = zero;
  for (let i = lastBits; i >= 0; i -= windowSize) {
    buckets.fill(zero);
    for (let j = 0; j < slength; j++) {
      const scalar = scalars[j];
      const wbits2 = Number(scalar >> BigInt(i) & MASK);
      buckets[wbits2] = buckets[wbits2].add(points[j]);
    }
    let resI = zero;
    for (let j = buckets.length - 1, sumI = zero; j > 0; j--) {
      sumI = sumI.add(buckets[j]);
      resI = resI.add(sumI);
    }
    sum = sum.add(resI);
    if (i !== 0)
      for (let j = 0; j < windowSize; j++)
        sum = sum.double();
  }
  return sum;
}
function createField(order, field, isLE2) {
  if (field) {
    if (field.ORDER !== order)
      throw new Error("Field.ORDER must match order: Fp == p, Fn == n");
    validateField(field);
    return field;
  } else {
    return Field(order, { isLE: isLE2 });
  }
}
function _createCurveFields(type, CURVE, curveOpts = {}, FpFnLE) {
  if (FpFnLE === void 0)
    FpFnLE = type === "edwards";
  if (!CURVE || typeof CURVE !== "object")
    throw new Error(`expected valid ${type} CURVE object`);
  for (const p of ["p", "n", "h"]) {
    const val = CURVE[p];
    if (!(typeof val === "bigint" && val > _0n3))
      throw new Error(`CURVE.${p} must be positive bigint`);
  }
  const Fp2 = createField(CURVE.p, curveOpts.Fp, FpFnLE);
  const Fn2 = createField(CURVE.n, curveOpts.Fn, FpFnLE);
  const _b = type === "weierstrass" ? "b" : "d";
  const params = ["Gx", "Gy", "a", _b];
  for (const p of params) {
    if (!Fp2.isValid(CURVE[p]))
      throw new Error(`CURVE.${p} must be valid field element of CURVE.Fp`);
  }
  CURVE = Object.freeze(Object.assign({}, CURVE));
  return { CURVE, Fp: Fp2, Fn: Fn2 };
}

// node_modules/@noble/curves/esm/abstract/edwards.js
/*! noble-curves - MIT License (c) 2022 Paul Miller (paulmillr.com) */
var _0n4 = BigInt(0);
var _1n4 = BigInt(1);
var _2n2 = BigInt(2);
var _8n2 = BigInt(8);
function isEdValidXY(Fp2, CURVE, x, y) {
  const x2 = Fp2.sqr(x);
  const y2 = Fp2.sqr(y);
  const left = Fp2.add(Fp2.mul(CURVE.a, x2), y2);
  const right = Fp2.add(Fp2.ONE, Fp2.mul(CURVE.d, Fp2.mul(x2, y2)));
  return Fp2.eql(left, right);
}
function edwards(params, extraOpts = {}) {
  const validated = _createCurveFields("edwards", params, extraOpts, extraOpts.FpFnLE);
  const { Fp: Fp2, Fn: Fn2 } = validated;
  let CURVE = validated.CURVE;
  const { h: cofactor } = CURVE;
  _validateObject(extraOpts, {}, { uvRatio: "function" });
  const MASK = _2n2 << BigInt(Fn2.BYTES * 8) - _1n4;
  const modP = (n) => Fp2.create(n);
  const uvRatio2 = extraOpts.uvRatio || ((u, v) => {
    try {
      return { isValid: true, value: Fp2.sqrt(Fp2.div(u, v)) };
    } catch (e) {
      return { isValid: false, value: _0n4 };
    }
  });
  if (!isEdValidXY(Fp2, CURVE, CURVE.Gx, CURVE.Gy))
    throw new Error("bad curve params: generator point");
  function acoord(title, n, banZero = false) {
    const min = banZero ? _1n4 : _0n4;
    aInRange("coordinate " + title, n, min, MASK);
    return n;
  }
  function aextpoint(other) {
    if (!(other instanceof Point))
      throw new Error("ExtendedPoint expected");
  }
  const toAffineMemo = memoized((p, iz) => {
    const { X, Y, Z } = p;
    const is0 = p.is0();
    if (iz == null)
      iz = is0 ? _8n2 : Fp2.inv(Z);
    const x = modP(X * iz);
    const y = modP(Y * iz);
    const zz = Fp2.mul(Z, iz);
    if (is0)
      return { x: _0n4, y: _1n4 };
    if (zz !== _1n4)
      throw new Error("invZ was invalid");
    return { x, y };
  });
  const assertValidMemo = memoized((p) => {
    const { a, d } = CURVE;
    if (p.is0())
      throw new Error("bad point: ZERO");
    const { X, Y, Z, T } = p;
    const X2 = modP(X * X);
    const Y2 = modP(Y * Y);
    const Z2 = modP(Z * Z);
    const Z4 = modP(Z2 * Z2);
    const aX2 = modP(X2 * a);
    const left = modP(Z2 * modP(aX2 + Y2));
    const right = modP(Z4 + modP(d * modP(X2 * Y2)));
    if (left !== right)
      throw new Error("bad point: equation left != right (1)");
    const XY = modP(X * Y);
    const ZT = modP(Z * T);
    if (XY !== ZT)
      throw new Error("bad point: equation left != right (2)");
    return true;
  });
  class Point {
    constructor(X, Y, Z, T) {
      this.X = acoord("x", X);
      this.Y = acoord("y", Y);
      this.Z = acoord("z", Z, true);
      this.T = acoord("t", T);
      Object.freeze(this);
    }
    static CURVE() {
      return CURVE;
    }
    static fromAffine(p) {
      if (p instanceof Point)
        throw new Error("extended point not allowed");
      const { x, y } = p || {};
      acoord("x", x);
      acoord("y", y);
      return new Point(x, y, _1n4, modP(x * y));
    }
    // Uses algo from RFC8032 5.1.3.
    static fromBytes(bytes, zip215 = false) {
      const len = Fp2.BYTES;
      const { a, d } = CURVE;
      bytes = copyBytes(_abytes2(bytes, len, "point"));
      _abool2(zip215, "zip215");
      const normed = copyBytes(bytes);
      const lastByte = bytes[len - 1];
      normed[len - 1] = lastByte & ~128;
      const y = bytesToNumberLE(normed);
      const max = zip215 ? MASK : Fp2.ORDER;
      aInRange("point.y", y, _0n4, max);
      const y2 = modP(y * y);
      const u = modP(y2 - _1n4);
      const v = modP(d * y2 - a);
      let { isValid, value: x } = uvRatio2(u, v);
      if (!isValid)
        throw new Error("bad point: invalid y coordinate");
      const isXOdd = (x & _1n4) === _1n4;
      const isLastByteOdd = (lastByte & 128) !== 0;
      if (!zip215 && x === _0n4 && isLastByteOdd)
        throw new Error("bad point: x=0 and x_0=1");
      if (isLastByteOdd !== isXOdd)
        x = modP(-x);
      return Point.fromAffine({ x, y });
    }
    static fromHex(bytes, zip215 = false) {
      return Point.fromBytes(ensureBytes("point", bytes), zip215);
    }
    get x() {
      return this.toAffine().x;
    }
    get y() {
      return this.toAffine().y;
    }
    precompute(windowSize = 8, isLazy = true) {
      wnaf.createCache(this, windowSize);
      if (!isLazy)
        this.multiply(_2n2);
      return this;
    }
    // Useful in fromAffine() - not for fromBytes(), which always created valid points.
    assertValidity() {
      assertValidMemo(this);
    }
    // Compare one point to another.
    equals(other) {
      aextpoint(other);
      const { X: X1, Y: Y1, Z: Z1 } = this;
      const { X: X2, Y: Y2, Z: Z2 } = other;
      const X1Z2 = modP(X1 * Z2);
      const X2Z1 = modP(X2 * Z1);
      const Y1Z2 = modP(Y1 * Z2);
      const Y2Z1 = modP(Y2 * Z1);
      return X1Z2 === X2Z1 && Y1Z2 === Y2Z1;
    }
    is0() {
      return this.equals(Point.ZERO);
    }
    negate() {
      return new Point(modP(-this.X), this.Y, this.Z, modP(-this.T));
    }
    // Fast algo for doubling Extended Point.
    // https://hyperelliptic.org/EFD/g1p/auto-twisted-extended.html#doubling-dbl-2008-hwcd
    // Cost: 4M + 4S + 1*a + 6add + 1*2.
    double() {
      const { a } = CURVE;
      const { X: X1, Y: Y1, Z: Z1 } = this;
      const A = modP(X1 * X1);
      const B = modP(Y1 * Y1);
      const C = modP(_2n2 * modP(Z1 * Z1));
      const D = modP(a * A);
      const x1y1 = X1 + Y1;
      const E = modP(modP(x1y1 * x1y1) - A - B);
      const G = D + B;
      const F = G - C;
      const H = D - B;
      const X3 = modP(E * F);
      const Y3 = modP(G * H);
      const T3 = modP(E * H);
      const Z3 = modP(F * G);
      return new Point(X3, Y3, Z3, T3);
    }
    // Fast algo for adding 2 Extended Points.
    // https://hyperelliptic.org/EFD/g1p/auto-twisted-extended.html#addition-add-2008-hwcd
    // Cost: 9M + 1*a + 1*d + 7add.
    add(other) {
      aextpoint(other);
      const { a, d } = CURVE;
      const { X: X1, Y: Y1, Z: Z1, T: T1 } = this;
      const { X: X2, Y: Y2, Z: Z2, T: T2 } = other;
      const A = modP(X1 * X2);
      const B = modP(Y1 * Y2);
      const C = modP(T1 * d * T2);
      const D = modP(Z1 * Z2);
      const E = modP((X1 + Y1) * (X2 + Y2) - A - B);
      const F = D - C;
      const G = D + C;
      const H = modP(B - a * A);
      const X3 = modP(E * F);
      const Y3 = modP(G * H);
      const T3 = modP(E * H);
      const Z3 = modP(F * G);
      return new Point(X3, Y3, Z3, T3);
    }
    subtract(other) {
      return this.add(other.negate());
    }
    // Constant-time multiplication.
    multiply(scalar) {
      if (!Fn2.isValidNot0(scalar))
        throw new Error("invalid scalar: expected 1 <= sc < curve.n");
      const { p, f } = wnaf.cached(this, scalar, (p2) => normalizeZ(Point, p2));
      return normalizeZ(Point, [p, f])[0];
    }
    // Non-constant-time multiplication. Uses double-and-add algorithm.
    // It's faster, but should only be used when you don't care about
    // an exposed private key e.g. sig verification.
    // Does NOT allow scalars higher than CURVE.n.
    // Accepts optional accumulator to merge with multiply (important for sparse scalars)
    multiplyUnsafe(scalar, acc = Point.ZERO) {
      if (!Fn2.isValid(scalar))
        throw new Error("invalid scalar: expected 0 <= sc < curve.n");
      if (scalar === _0n4)
        return Point.ZERO;
      if (this.is0() || scalar === _1n4)
        return this;
      return wnaf.unsafe(this, scalar, (p) => normalizeZ(Point, p), acc);
    }
    // Checks if point is of small order.
    // If you add something to small order point, you will have "dirty"
    // point with torsion component.
    // Multiplies point by cofactor and checks if the result is 0.
    isSmallOrder() {
      return this.multiplyUnsafe(cofactor).is0();
    }
    // Multiplies point by curve order and checks if the result is 0.
    // Returns `false` is the point is dirty.
    isTorsionFree() {
      return wnaf.unsafe(this, CURVE.n).is0();
    }
    // Converts Extended point to default (x, y) coordinates.
    // Can accept precomputed Z^-1 - for example, from invertBatch.
    toAffine(invertedZ) {
      return toAffineMemo(this, invertedZ);
    }
    clearCofactor() {
      if (cofactor === _1n4)
        return this;
      return this.multiplyUnsafe(cofactor);
    }
    toBytes() {
      const { x, y } = this.toAffine();
      const bytes = Fp2.toBytes(y);
      bytes[bytes.length - 1] |= x & _1n4 ? 128 : 0;
      return bytes;
    }
    toHex() {
      return bytesToHex(this.toBytes());
    }
    toString() {
      return `<Point ${this.is0() ? "ZERO" : this.toHex()}>`;
    }
    // TODO: remove
    get ex() {
      return this.X;
    }
    get ey() {
      return this.Y;
    }
    get ez() {
      return this.Z;
    }
    get et() {
      return this.T;
    }
    static normalizeZ(points) {
      return normalizeZ(Point, points);
    }
    static msm(points, scalars) {
      return pippenger(Point, Fn2, points, scalars);
    }
    _setWindowSize(windowSize) {
      this.precompute(windowSize);
    }
    toRawBytes() {
      return this.toBytes();
    }
  }
  Point.BASE = new Point(CURVE.Gx, CURVE.Gy, _1n4, modP(CURVE.Gx * CURVE.Gy));
  Point.ZERO = new Point(_0n4, _1n4, _1n4, _0n4);
  Point.Fp = Fp2;
  Point.Fn = Fn2;
  const wnaf = new wNAF(Point, Fn2.BITS);
  Point.BASE.precompute(8);
  return Point;
}
var PrimeEdwardsPoint = class {
  constructor(ep) {
    this.ep = ep;
  }
  // Static methods that must be implemented by subclasses
  static fromBytes(_bytes) {
    notImplemented();
  }
  static fromHex(_hex) {
    notImplemented();
  }
  get x() {
    return this.toAffine().x;
  }
  get y() {
    return this.toAffine().y;
  }
  // Common implementations
  clearCofactor() {
    return this;
  }
  assertValidity() {
    this.ep.assertValidity();
  }
  toAffine(invertedZ) {
    return this.ep.toAffine(invertedZ);
  }
  toHex() {
    return bytesToHex(this.toBytes());
  }
  toString() {
    return this.toHex();
  }
  isTorsionFree() {
    return true;
  }
  isSmallOrder() {
    return false;
  }
  add(other) {
    this.assertSame(other);
    return this.init(this.ep.add(other.ep));
  }
  subtract(other) {
    this.assertSame(other);
    return this.init(this.ep.subtract(other.ep));
  }
  multiply(scalar) {
    return this.init(this.ep.multiply(scalar));
  }
  multiplyUnsafe(scalar) {
    return this.init(this.ep.multiplyUnsafe(scalar));
  }
  double() {
    return this.init(this.ep.double());
  }
  negate() {
    return this.init(this.ep.negate());
  }
  precompute(windowSize, isLazy) {
    return this.init(this.ep.precompute(windowSize, isLazy));
  }
  /** @deprecated use `toBytes` */
  toRawBytes() {
    return this.toBytes();
  }
};
function eddsa(Point, cHash, eddsaOpts = {}) {
  if (typeof cHash !== "function")
    throw new Error('"hash" function param is required');
  _validateObject(eddsaOpts, {}, {
    adjustScalarBytes: "function",
    randomBytes: "function",
    domain: "function",
    prehash: "function",
    mapToCurve: "function"
  });
  const { prehash } = eddsaOpts;
  const { BASE: BASE2, Fp: Fp2, Fn: Fn2 } = Point;
  const randomBytes2 = eddsaOpts.randomBytes || randomBytes;
  const adjustScalarBytes2 = eddsaOpts.adjustScalarBytes || ((bytes) => bytes);
  const domain = eddsaOpts.domain || ((data, ctx, phflag) => {
    _abool2(phflag, "phflag");
    if (ctx.length || phflag)
      throw new Error("Contexts/pre-hash are not supported");
    return data;
  });
  function modN_LE(hash) {
    return Fn2.create(bytesToNumberLE(hash));
  }
  function getPrivateScalar(key) {
    const len = lengths.secretKey;
    key = ensureBytes("private key", key, len);
    const hashed = ensureBytes("hashed private key", cHash(key), 2 * len);
    const head = adjustScalarBytes2(hashed.slice(0, len));
    const prefix = hashed.slice(len, 2 * len);
    const scalar = modN_LE(head);
    return { head, prefix, scalar };
  }
  function getExtendedPublicKey(secretKey) {
    const { head, prefix, scalar } = getPrivateScalar(secretKey);
    const point = BASE2.multiply(scalar);
    const pointBytes = point.toBytes();
    return { head, prefix, scalar, point, pointBytes };
  }
  function getPublicKey(secretKey) {
    return getExtendedPublicKey(secretKey).pointBytes;
  }
  function hashDomainToScalar(context = Uint8Array.of(), ...msgs) {
    const msg = concatBytes(...msgs);
    return modN_LE(cHash(domain(msg, ensureBytes("context", context), !!prehash)));
  }
  function sign(msg, secretKey, options = {}) {
    msg = ensureBytes("message", msg);
    if (prehash)
      msg = prehash(msg);
    const { prefix, scalar, pointBytes } = getExtendedPublicKey(secretKey);
    const r = hashDomainToScalar(options.context, prefix, msg);
    const R = BASE2.multiply(r).toBytes();
    const k = hashDomainToScalar(options.context, R, pointBytes, msg);
    const s = Fn2.create(r + k * scalar);
    if (!Fn2.isValid(s))
      throw new Error("sign failed: invalid s");
    const rs = concatBytes(R, Fn2.toBytes(s));
    return _abytes2(rs, lengths.signature, "result");
  }
  const verifyOpts = { zip215: true };
  function verify(sig, msg, publicKey, options = verifyOpts) {
    const { context, zip215 } = options;
    const len = lengths.signature;
    sig = ensureBytes("signature", sig, len);
    msg = ensureBytes("message", msg);
    publicKey = ensureBytes("publicKey", publicKey, lengths.publicKey);
    if (zip215 !== void 0)
      _abool2(zip215, "zip215");
    if (prehash)
      msg = prehash(msg);
    const mid = len / 2;
    const r = sig.subarray(0, mid);
    const s = bytesToNumberLE(sig.subarray(mid, len));
    let A, R, SB;
    try {
      A = Point.fromBytes(publicKey, zip215);
      R = Point.fromBytes(r, zip215);
      SB = BASE2.multiplyUnsafe(s);
    } catch (error) {
      return false;
    }
    if (!zip215 && A.isSmallOrder())
      return false;
    const k = hashDomainToScalar(context, R.toBytes(), A.toBytes(), msg);
    const RkA = R.add(A.multiplyUnsafe(k));
    return RkA.subtract(SB).clearCofactor().is0();
  }
  const _size = Fp2.BYTES;
  const lengths = {
    secretKey: _size,
    publicKey: _size,
    signature: 2 * _size,
    seed: _size
  };
  function randomSecretKey(seed = randomBytes2(lengths.seed)) {
    return _abytes2(seed, lengths.seed, "seed");
  }
  function keygen(seed) {
    const secretKey = utils.randomSecretKey(seed);
    return { secretKey, publicKey: getPublicKey(secretKey) };
  }
  function isValidSecretKey(key) {
    return isBytes(key) && key.length === Fn2.BYTES;
  }
  function isValidPublicKey(key, zip215) {
    try {
      return !!Point.fromBytes(key, zip215);
    } catch (error) {
      return false;
    }
  }
  const utils = {
    getExtendedPublicKey,
    randomSecretKey,
    isValidSecretKey,
    isValidPublicKey,
    /**
     * Converts ed public key to x public key. Uses formula:
     * - ed25519:
     *   - `(u, v) = ((1+y)/(1-y), sqrt(-486664)*u/x)`
     *   - `(x, y) = (sqrt(-486664)*u/v, (u-1)/(u+1))`
     * - ed448:
     *   - `(u, v) = ((y-1)/(y+1), sqrt(156324)*u/x)`
     *   - `(x, y) = (sqrt(156324)*u/v, (1+u)/(1-u))`
     */
    toMontgomery(publicKey) {
      const { y } = Point.fromBytes(publicKey);
      const size = lengths.publicKey;
      const is25519 = size === 32;
      if (!is25519 && size !== 57)
        throw new Error("only defined for 25519 and 448");
      const u = is25519 ? Fp2.div(_1n4 + y, _1n4 - y) : Fp2.div(y - _1n4, y + _1n4);
      return Fp2.toBytes(u);
    },
    toMontgomerySecret(secretKey) {
      const size = lengths.secretKey;
      _abytes2(secretKey, size);
      const hashed = cHash(secretKey.subarray(0, size));
      return adjustScalarBytes2(hashed).subarray(0, size);
    },
    /** @deprecated */
    randomPrivateKey: randomSecretKey,
    /** @deprecated */
    precompute(windowSize = 8, point = Point.BASE) {
      return point.precompute(windowSize, false);
    }
  };
  return Object.freeze({
    keygen,
    getPublicKey,
    sign,
    verify,
    utils,
    Point,
    lengths
  });
}
function _eddsa_legacy_opts_to_new(c) {
  const CURVE = {
    a: c.a,
    d: c.d,
    p: c.Fp.ORDER,
    n: c.n,
    h: c.h,
    Gx: c.Gx,
    Gy: c.Gy
  };
  const Fp2 = c.Fp;
  const Fn2 = Field(CURVE.n, c.nBitLength, true);
  const curveOpts = { Fp: Fp2, Fn: Fn2, uvRatio: c.uvRatio };
  const eddsaOpts = {
    randomBytes: c.randomBytes,
    adjustScalarBytes: c.adjustScalarBytes,
    domain: c.domain,
    prehash: c.prehash,
    mapToCurve: c.mapToCurve
  };
  return { CURVE, curveOpts, hash: c.hash, eddsaOpts };
}
function _eddsa_new_output_to_legacy(c, eddsa2) {
  const Point = eddsa2.Point;
  const legacy = Object.assign({}, eddsa2, {
    ExtendedPoint: Point,
    CURVE: c,
    nBitLength: Point.Fn.BITS,
    nByteLength: Point.Fn.BYTES
  });
  return legacy;
}
function twistedEdwards(c) {
  const { CURVE, curveOpts, hash, eddsaOpts } = _eddsa_legacy_opts_to_new(c);
  const Point = edwards(CURVE, curveOpts);
  const EDDSA = eddsa(Point, hash, eddsaOpts);
  return _eddsa_new_output_to_legacy(c, EDDSA);
}

// node_modules/@noble/curves/esm/ed25519.js
/*! noble-curves - MIT License (c) 2022 Paul Miller (paulmillr.com) */
var _0n5 = /* @__PURE__ */ BigInt(0);
var _1n5 = BigInt(1);
var _2n3 = BigInt(2);
var _3n2 = BigInt(3);
var _5n2 = BigInt(5);
var _8n3 = BigInt(8);
var ed25519_CURVE_p = BigInt("0x7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffed");
var ed25519_CURVE = /* @__PURE__ */ (() => ({
  p: ed25519_CURVE_p,
  n: BigInt("0x1000000000000000000000000000000014def9dea2f79cd65812631a5cf5d3ed"),
  h: _8n3,
  a: BigInt("0x7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffec"),
  d: BigInt("0x52036cee2b6ffe738cc740797779e89800700a4d4141d8ab75eb4dca135978a3"),
  Gx: BigInt("0x216936d3cd6e53fec0a4e231fdd6dc5c692cc7609525a7b2c9562d608f25d51a"),
  Gy: BigInt("0x6666666666666666666666666666666666666666666666666666666666666658")
}))();
function ed25519_pow_2_252_3(x) {
  const _10n = BigInt(10), _20n = BigInt(20), _40n = BigInt(40), _80n = BigInt(80);
  const P = ed25519_CURVE_p;
  const x2 = x * x % P;
  const b2 = x2 * x % P;
  const b4 = pow2(b2, _2n3, P) * b2 % P;
  const b5 = pow2(b4, _1n5, P) * x % P;
  const b10 = pow2(b5, _5n2, P) * b5 % P;
  const b20 = pow2(b10, _10n, P) * b10 % P;
  const b40 = pow2(b20, _20n, P) * b20 % P;
  const b80 = pow2(b40, _40n, P) * b40 % P;
  const b160 = pow2(b80, _80n, P) * b80 % P;
  const b240 = pow2(b160, _80n, P) * b80 % P;
  const b250 = pow2(b240, _10n, P) * b10 % P;
  const pow_p_5_8 = pow2(b250, _2n3, P) * x % P;
  return { pow_p_5_8, b2 };
}
function adjustScalarBytes(bytes) {
  bytes[0] &= 248;
  bytes[31] &= 127;
  bytes[31] |= 64;
  return bytes;
}
var ED25519_SQRT_M1 = /* @__PURE__ */ BigInt("19681161376707505956807079304988542015446066515923890162744021073123829784752");
function uvRatio(u, v) {
  const P = ed25519_CURVE_p;
  const v3 = mod(v * v * v, P);
  const v7 = mod(v3 * v3 * v, P);
  const pow = ed25519_pow_2_252_3(u * v7).pow_p_5_8;
  let x = mod(u * v3 * pow, P);
  const vx2 = mod(v * x * x, P);
  const root1 = x;
  const root2 = mod(x * ED25519_SQRT_M1, P);
  const useRoot1 = vx2 === u;
  const useRoot2 = vx2 === mod(-u, P);
  const noRoot = vx2 === mod(-u * ED25519_SQRT_M1, P);
  if (useRoot1)
    x = root1;
  if (useRoot2 || noRoot)
    x = root2;
  if (isNegativeLE(x, P))
    x = mod(-x, P);
  return { isValid: useRoot1 || useRoot2, value: x };
}
var Fp = /* @__PURE__ */ (() => Field(ed25519_CURVE.p, { isLE: true }))();
var Fn = /* @__PURE__ */ (() => Field(ed25519_CURVE.n, { isLE: true }))();
var ed25519Defaults = /* @__PURE__ */ (() => ({
  ...ed25519_CURVE,
  Fp,
  hash: sha512,
  adjustScalarBytes,
  // dom2
  // Ratio of u to v. Allows us to combine inversion and square root. Uses algo from RFC8032 5.1.3.
  // Constant-time, u/√v
  uvRatio
}))();
var ed25519 = /* @__PURE__ */ (() => twistedEdwards(ed25519Defaults))();
var SQRT_M1 = ED25519_SQRT_M1;
var SQRT_AD_MINUS_ONE = /* @__PURE__ */ BigInt("25063068953384623474111414158702152701244531502492656460079210482610430750235");
var INVSQRT_A_MINUS_D = /* @__PURE__ */ BigInt("54469307008909316920995813868745141605393597292927456921205312896311721017578");
var ONE_MINUS_D_SQ = /* @__PURE__ */ BigInt("1159843021668779879193775521855586647937357759715417654439879720876111806838");
var D_MINUS_ONE_SQ = /* @__PURE__ */ BigInt("40440834346308536858101042469323190826248399146238708352240133220865137265952");
var invertSqrt = (number) => uvRatio(_1n5, number);
var MAX_255B = /* @__PURE__ */ BigInt("0x7fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff");
var bytes255ToNumberLE = (bytes) => ed25519.Point.Fp.create(bytesToNumberLE(bytes) & MAX_255B);
function calcElligatorRistrettoMap(r0) {
  const { d } = ed25519_CURVE;
  const P = ed25519_CURVE_p;
  const mod2 = (n) => Fp.create(n);
  const r = mod2(SQRT_M1 * r0 * r0);
  const Ns = mod2((r + _1n5) * ONE_MINUS_D_SQ);
  let c = BigInt(-1);
  const D = mod2((c - d * r) * mod2(r + d));
  let { isValid: Ns_D_is_sq, value: s } = uvRatio(Ns, D);
  let s_ = mod2(s * r0);
  if (!isNegativeLE(s_, P))
    s_ = mod2(-s_);
  if (!Ns_D_is_sq)
    s = s_;
  if (!Ns_D_is_sq)
    c = r;
  const Nt = mod2(c * (r - _1n5) * D_MINUS_ONE_SQ - D);
  const s2 = s * s;
  const W0 = mod2((s + s) * D);
  const W1 = mod2(Nt * SQRT_AD_MINUS_ONE);
  const W2 = mod2(_1n5 - s2);
  const W3 = mod2(_1n5 + s2);
  return new ed25519.Point(mod2(W0 * W3), mod2(W2 * W1), mod2(W1 * W3), mod2(W0 * W2));
}
function ristretto255_map(bytes) {
  abytes(bytes, 64);
  const r1 = bytes255ToNumberLE(bytes.subarray(0, 32));
  const R1 = calcElligatorRistrettoMap(r1);
  const r2 = bytes255ToNumberLE(bytes.subarray(32, 64));
  const R2 = calcElligatorRistrettoMap(r2);
  return new _RistrettoPoint(R1.add(R2));
}
var _RistrettoPoint = class __RistrettoPoint extends PrimeEdwardsPoint {
  constructor(ep) {
    super(ep);
  }
  static fromAffine(ap) {
    return new __RistrettoPoint(ed25519.Point.fromAffine(ap));
  }
  assertSame(other) {
    if (!(other instanceof __RistrettoPoint))
      throw new Error("RistrettoPoint expected");
  }
  init(ep) {
    return new __RistrettoPoint(ep);
  }
  /** @deprecated use `import { ristretto255_hasher } from '@noble/curves/ed25519.js';` */
  static hashToCurve(hex) {
    return ristretto255_map(ensureBytes("ristrettoHash", hex, 64));
  }
  static fromBytes(bytes) {
    abytes(bytes, 32);
    const { a, d } = ed25519_CURVE;
    const P = ed25519_CURVE_p;
    const mod2 = (n) => Fp.create(n);
    const s = bytes255ToNumberLE(bytes);
    if (!equalBytes2(Fp.toBytes(s), bytes) || isNegativeLE(s, P))
      throw new Error("invalid ristretto255 encoding 1");
    const s2 = mod2(s * s);
    const u1 = mod2(_1n5 + a * s2);
    const u2 = mod2(_1n5 - a * s2);
    const u1_2 = mod2(u1 * u1);
    const u2_2 = mod2(u2 * u2);
    const v = mod2(a * d * u1_2 - u2_2);
    const { isValid, value: I } = invertSqrt(mod2(v * u2_2));
    const Dx = mod2(I * u2);
    const Dy = mod2(I * Dx * v);
    let x = mod2((s + s) * Dx);
    if (isNegativeLE(x, P))
      x = mod2(-x);
    const y = mod2(u1 * Dy);
    const t = mod2(x * y);
    if (!isValid || isNegativeLE(t, P) || y === _0n5)
      throw new Error("invalid ristretto255 encoding 2");
    return new __RistrettoPoint(new ed25519.Point(x, y, _1n5, t));
  }
  /**
   * Converts ristretto-encoded string to ristretto point.
   * Described in [RFC9496](https://www.rfc-editor.org/rfc/rfc9496#name-decode).
   * @param hex Ristretto-encoded 32 bytes. Not every 32-byte string is valid ristretto encoding
   */
  static fromHex(hex) {
    return __RistrettoPoint.fromBytes(ensureBytes("ristrettoHex", hex, 32));
  }
  static msm(points, scalars) {
    return pippenger(__RistrettoPoint, ed25519.Point.Fn, points, scalars);
  }
  /**
   * Encodes ristretto point to Uint8Array.
   * Described in [RFC9496](https://www.rfc-editor.org/rfc/rfc9496#name-encode).
   */
  toBytes() {
    let { X, Y, Z, T } = this.ep;
    const P = ed25519_CURVE_p;
    const mod2 = (n) => Fp.create(n);
    const u1 = mod2(mod2(Z + Y) * mod2(Z - Y));
    const u2 = mod2(X * Y);
    const u2sq = mod2(u2 * u2);
    const { value: invsqrt } = invertSqrt(mod2(u1 * u2sq));
    const D1 = mod2(invsqrt * u1);
    const D2 = mod2(invsqrt * u2);
    const zInv = mod2(D1 * D2 * T);
    let D;
    if (isNegativeLE(T * zInv, P)) {
      let _x = mod2(Y * SQRT_M1);
      let _y = mod2(X * SQRT_M1);
      X = _x;
      Y = _y;
      D = mod2(D1 * INVSQRT_A_MINUS_D);
    } else {
      D = D2;
    }
    if (isNegativeLE(X * zInv, P))
      Y = mod2(-Y);
    let s = mod2((Z - Y) * D);
    if (isNegativeLE(s, P))
      s = mod2(-s);
    return Fp.toBytes(s);
  }
  /**
   * Compares two Ristretto points.
   * Described in [RFC9496](https://www.rfc-editor.org/rfc/rfc9496#name-equals).
   */
  equals(other) {
    this.assertSame(other);
    const { X: X1, Y: Y1 } = this.ep;
    const { X: X2, Y: Y2 } = other.ep;
    const mod2 = (n) => Fp.create(n);
    const one = mod2(X1 * Y2) === mod2(Y1 * X2);
    const two = mod2(Y1 * Y2) === mod2(X1 * X2);
    return one || two;
  }
  is0() {
    return this.equals(__RistrettoPoint.ZERO);
  }
};
_RistrettoPoint.BASE = /* @__PURE__ */ (() => new _RistrettoPoint(ed25519.Point.BASE))();
_RistrettoPoint.ZERO = /* @__PURE__ */ (() => new _RistrettoPoint(ed25519.Point.ZERO))();
_RistrettoPoint.Fp = /* @__PURE__ */ (() => Fp)();
_RistrettoPoint.Fn = /* @__PURE__ */ (() => Fn)();

// src/note.ts
var NoteError = class extends Error {
  constructor(message) {
    super(message);
    this.name = "NoteError";
  }
};
var EM_DASH_PREFIX = "— ";
var CONTROL = /[\u0000-\u0009\u000b-\u001f]/;
var DECIMAL = /^(0|[1-9][0-9]*)$/;
var KEY_ID_HEX = /^[0-9a-f]{8}$/;
var MAX_SIGNATURES = 100;
var MAX_NOTE_BYTES = 1e6;
function validKeyName(name) {
  return name !== "" && !name.includes("+") && !/\s/u.test(name);
}
function keyId(name, material) {
  const digest2 = sha256(concatBytes2([utf8(name), new Uint8Array([10]), material]));
  return new DataView(digest2.buffer, digest2.byteOffset).getUint32(0);
}
function splitVkey(vkey) {
  if (typeof vkey !== "string") throw new NoteError("a verifier key is a string");
  const first = vkey.indexOf("+");
  const second = first < 0 ? -1 : vkey.indexOf("+", first + 1);
  if (second < 0) throw new NoteError("a verifier key is <name>+<key ID>+<base64 key>");
  const name = vkey.slice(0, first);
  const hexId = vkey.slice(first + 1, second);
  const b64 = vkey.slice(second + 1);
  if (!validKeyName(name)) throw new NoteError("the verifier key's name is empty or holds a space or '+'");
  if (!KEY_ID_HEX.test(hexId)) throw new NoteError("the verifier key's key ID is not 8 lowercase hex digits");
  const material = base64DecodeStrict(b64);
  if (material === null) throw new NoteError("the verifier key's key is not canonical base64");
  if (!material.length) throw new NoteError("the verifier key's key is empty");
  if (keyId(name, material) !== parseInt(hexId, 16)) {
    throw new NoteError("the verifier key's key ID does not match its name and key");
  }
  return { name, keyId: parseInt(hexId, 16), material };
}
function parseVkey(vkey) {
  const { name, keyId: id, material } = splitVkey(vkey);
  if (material.length !== 33 || material[0] !== 1) {
    throw new NoteError("the verifier key is not an Ed25519 note key (type 0x01, 32 bytes)");
  }
  return { name, keyId: id, publicKey: material.slice(1), vkey };
}
function ed25519Verify(signature, message, publicKey) {
  try {
    return signature.length === 64 && ed25519.verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}
function parseSignatureLines(block) {
  const lines2 = block.slice(0, -1).split("\n");
  if (lines2.length > MAX_SIGNATURES) throw new NoteError(`there are more than ${MAX_SIGNATURES} signatures`);
  return lines2.map((line, i) => {
    const number = i + 1;
    if (!line.startsWith(EM_DASH_PREFIX)) {
      throw new NoteError(`signature line ${number} does not start with an em dash (U+2014) and a space`);
    }
    const rest = line.slice(EM_DASH_PREFIX.length);
    const space = rest.indexOf(" ");
    const name = space < 0 ? rest : rest.slice(0, space);
    const b64 = space < 0 ? "" : rest.slice(space + 1);
    if (space < 0 || !validKeyName(name) || !b64) {
      throw new NoteError(`signature line ${number} is not '— <key name> <base64 signature>'`);
    }
    const blob = base64DecodeStrict(b64);
    if (blob === null) throw new NoteError(`the signature on line ${number} is not canonical base64`);
    if (blob.length < 5) throw new NoteError(`the signature on line ${number} is shorter than a key ID and one byte`);
    return { name, keyId: new DataView(blob.buffer).getUint32(0), signature: blob.slice(4) };
  });
}
function parseNote(note) {
  if (typeof note !== "string") throw new NoteError("a note is text");
  if (utf8(note).length > MAX_NOTE_BYTES) throw new NoteError(`the note is larger than ${MAX_NOTE_BYTES} bytes`);
  if (/[\uD800-\uDFFF]/.test(note.replace(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g, ""))) {
    throw new NoteError("the note is not valid UTF-8 (a lone surrogate)");
  }
  if (CONTROL.test(note)) throw new NoteError("the note holds a control character other than newline (a CR, a tab...)");
  const split2 = note.lastIndexOf("\n\n");
  if (split2 < 0) throw new NoteError("no blank line separates the note's text from its signatures");
  const text = note.slice(0, split2 + 1);
  const block = note.slice(split2 + 2);
  if (!block) throw new NoteError("the note has no signature lines");
  if (!block.endsWith("\n")) throw new NoteError("the note's last signature line does not end with a newline");
  return { text, signatures: parseSignatureLines(block) };
}
function verifyNote(note, verifiers) {
  const trusted = /* @__PURE__ */ new Map();
  for (const v of verifiers) {
    const key = `${v.name}+${v.keyId}`;
    const known = trusted.get(key);
    if (known !== void 0 && !equalBytes(known.publicKey, v.publicKey)) {
      throw new NoteError(`two different trusted keys are named ${v.name}+${v.keyId.toString(16).padStart(8, "0")}`);
    }
    trusted.set(key, v);
  }
  if (trusted.size === 0) throw new NoteError("no trusted key was given to verify the note with");
  const parsed = parseNote(note);
  const message = utf8(parsed.text);
  let verified = 0;
  for (const sig of parsed.signatures) {
    const known = trusted.get(`${sig.name}+${sig.keyId}`);
    if (known === void 0) continue;
    if (!ed25519Verify(sig.signature, message, known.publicKey)) {
      throw new NoteError(
        `the signature of the trusted key ${sig.name}+${sig.keyId.toString(16).padStart(8, "0")} does not verify`
      );
    }
    verified++;
  }
  if (!verified) throw new NoteError("no trusted key signed the note");
  return parsed.text;
}
function parseCheckpoint(text) {
  if (!text.endsWith("\n")) throw new NoteError("a checkpoint text ends with a newline");
  const [origin, sizeLine, rootLine, ...extensions] = text.slice(0, -1).split("\n");
  if (origin === void 0 || sizeLine === void 0 || rootLine === void 0) {
    throw new NoteError("a checkpoint text has at least three lines: origin, tree size, root hash");
  }
  if (!origin) throw new NoteError("the checkpoint's origin line is empty");
  if (!DECIMAL.test(sizeLine)) throw new NoteError("the checkpoint's tree size is not a decimal number without leading zeros");
  const size = Number(sizeLine);
  if (!Number.isSafeInteger(size)) throw new NoteError("the checkpoint's tree size is larger than 2^53-1");
  const root = base64DecodeStrict(rootLine);
  if (root === null) throw new NoteError("the checkpoint's root hash is not canonical base64");
  if (root.length !== HASH_SIZE) throw new NoteError(`the checkpoint's root hash is not ${HASH_SIZE} bytes`);
  if (size === 0 && !equalBytes(root, EMPTY_ROOT)) {
    throw new NoteError("the checkpoint of the empty tree does not carry the empty tree's root hash");
  }
  if (extensions.some((line) => !line)) throw new NoteError("a checkpoint extension line is empty");
  return { origin, size, rootHash: root, extensions };
}
function verifyCheckpoint(note, verifiers, origin) {
  const checkpoint = parseCheckpoint(verifyNote(note, verifiers));
  if (origin !== void 0 && checkpoint.origin !== origin) {
    throw new NoteError(`the checkpoint is for the log ${JSON.stringify(checkpoint.origin)}, not ${JSON.stringify(origin)}`);
  }
  return checkpoint;
}

// src/trusted.ts
var MemoryTrustedState = class {
  #note;
  constructor(note = null) {
    this.#note = note;
  }
  load() {
    return this.#note;
  }
  save(note) {
    this.#note = note;
  }
};
var LocalStorageTrustedState = class {
  key;
  #storage;
  constructor(key, storage) {
    const found = storage ?? globalThis.localStorage;
    if (found === void 0) throw new TrustedStateError("no localStorage here: give LocalStorageTrustedState a storage");
    if (typeof key !== "string" || !key) throw new TrustedStateError("a localStorage trusted state needs a key");
    this.key = key;
    this.#storage = found;
  }
  toString() {
    return `LocalStorageTrustedState(${JSON.stringify(this.key)})`;
  }
  load() {
    let note;
    try {
      note = this.#storage.getItem(this.key);
    } catch (err) {
      throw new TrustedStateError(`${this}: cannot be read (${err.message})`);
    }
    if (note === "") throw new TrustedStateError(`${this}: is empty, not a checkpoint`);
    return note;
  }
  save(note) {
    const size = sizeOf(note);
    if (size === null) throw new TrustedStateError(`${this}: refusing to save something that is not a checkpoint note`);
    const current = this.load();
    if (current !== null) {
      const currentSize = sizeOf(current);
      if (currentSize !== null && currentSize > size) return;
    }
    try {
      this.#storage.setItem(this.key, note);
    } catch (err) {
      throw new TrustedStateError(`${this}: cannot be written (${err.message})`);
    }
  }
};
function sizeOf(note) {
  try {
    return parseCheckpoint(parseNote(note).text).size;
  } catch {
    return null;
  }
}
var TrustedLog = class {
  verifiers;
  origin;
  store;
  policy;
  #trusted = null;
  #loaded = false;
  #queue = Promise.resolve();
  constructor(verifiers, origin, store, policy) {
    if (!verifiers.length) throw new TrustedStateError("a trusted log needs at least one verifier key");
    this.verifiers = verifiers;
    this.origin = origin;
    this.store = store;
    this.policy = policy;
  }
  /** Run `fn` after every earlier locked call (the state moves one step at a time). */
  #locked(fn) {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => void 0);
    return run;
  }
  async #load(consistency) {
    const note = await this.store.load();
    if (note === null) {
      if (this.#trusted !== null) {
        throw new TrustedStateError(
          `${String(this.store)} lost the trusted checkpoint of size ${this.#trusted.checkpoint.size} this client saved (removed while in use?)`
        );
      }
      return null;
    }
    if (this.#trusted !== null && note === this.#trusted.note) return this.#trusted;
    let checkpoint;
    try {
      checkpoint = verifyCheckpoint(note, this.verifiers, this.origin);
    } catch (err) {
      throw new TrustedStateError(
        `${String(this.store)} does not hold a valid checkpoint of ${JSON.stringify(this.origin)} signed by the given keys: ${err.message} (restore it from a copy; never remove it to get past this without knowing why)`
      );
    }
    if (this.#trusted === null) {
      this.#trusted = { checkpoint, note };
      return this.#trusted;
    }
    const mine = this.#trusted.checkpoint;
    if (checkpoint.size === mine.size && !equalBytes(checkpoint.rootHash, mine.rootHash)) {
      throw new InconsistentLogError(
        `${String(this.store)} now holds a checkpoint of ${checkpoint.size} entries with root ${bytesToHex2(checkpoint.rootHash)}, but this client trusts ${bytesToHex2(mine.rootHash)} at that size: two histories under one key (a fork), seen by clients sharing the trusted state`
      );
    }
    if (checkpoint.size > mine.size && consistency !== void 0) {
      await this.#checkConsistent(mine, checkpoint, consistency);
      this.#trusted = { checkpoint, note };
    }
    return this.#trusted;
  }
  /** The trusted checkpoint (null before the first one was accepted). */
  async checkpoint() {
    return this.#locked(async () => {
      if (!this.#loaded) {
        await this.#load();
        this.#loaded = true;
      }
      return this.#trusted === null ? null : this.#trusted.checkpoint;
    });
  }
  /** `note` as a checkpoint of this log signed by a trusted key (CheckpointSignatureError otherwise). */
  verifyNote(note) {
    let checkpoint;
    try {
      checkpoint = verifyCheckpoint(note, this.verifiers, this.origin);
    } catch (err) {
      if (!(err instanceof NoteError)) throw err;
      throw new CheckpointSignatureError(
        `the checkpoint of ${JSON.stringify(this.origin)} the server sent is refused: ${err.message}`
      );
    }
    if (this.policy !== void 0) this.policy(note, checkpoint);
    return checkpoint;
  }
  /**
   * Verify `note` and relate it to the trusted checkpoint: a larger one must extend it and becomes
   * the trusted state; one of the same size must have the same root; a smaller one is a
   * RollbackError when `latest` (presented as the server's latest), else must be a prefix of the
   * trusted one. With no trusted state yet, the note becomes it on its signature alone.
   */
  async accept(note, consistency, latest = true) {
    const checkpoint = this.verifyNote(note);
    return this.#locked(async () => {
      const trusted = await this.#load(consistency);
      this.#loaded = true;
      if (trusted === null) {
        await this.#save(checkpoint, note);
        return checkpoint;
      }
      const old = trusted.checkpoint;
      if (checkpoint.size < old.size) {
        if (latest) {
          throw new RollbackError(
            `the server presents a tree of ${checkpoint.size} entries, smaller than the ${old.size} already trusted for ${JSON.stringify(this.origin)} (an older copy of the ledger, or entries removed)`,
            { trustedSize: old.size, presentedSize: checkpoint.size }
          );
        }
        await this.#checkConsistent(checkpoint, old, consistency);
      } else if (checkpoint.size === old.size) {
        if (!equalBytes(checkpoint.rootHash, old.rootHash)) {
          throw new InconsistentLogError(
            `the server presents a tree of ${checkpoint.size} entries with root ${bytesToHex2(checkpoint.rootHash)}, but the trusted checkpoint of that size has ${bytesToHex2(old.rootHash)}: two histories under one key (a fork or a rewrite)`
          );
        }
      } else {
        await this.#checkConsistent(old, checkpoint, consistency);
        await this.#save(checkpoint, note);
      }
      return checkpoint;
    });
  }
  async #checkConsistent(first, second, consistency) {
    const proof = first.size === 0 ? [] : await consistency(first.size, second.size);
    try {
      verifyConsistency(first.size, second.size, first.rootHash, second.rootHash, proof);
    } catch (err) {
      if (!(err instanceof ProofError)) throw err;
      throw new InconsistentLogError(
        `the checkpoint of ${second.size} entries is not consistent with the one of ${first.size} (${err.message}): the log forked or was rewritten, or the server shows different histories to different clients`
      );
    }
  }
  async #save(checkpoint, note) {
    await this.store.save(note);
    this.#trusted = { checkpoint, note };
  }
};

// src/cosignature.ts
var MAX_TIMESTAMP = 2n ** 63n - 1n;
function parseCosignatureVkey(vkey) {
  const { name, keyId: keyId2, material } = splitVkey(vkey);
  if (material.length !== 33 || material[0] !== 4) {
    throw new NoteError(
      "the verifier key is not an Ed25519 cosignature key (type 0x04, 32 bytes): a witness's key, not a log's (type 0x01)"
    );
  }
  return { name, keyId: keyId2, publicKey: material.slice(1), vkey };
}
function countCosignatures(note, witnesses) {
  const trusted = new Map(witnesses.map((w) => [`${w.name}+${w.keyId}`, w]));
  const parsed = parseNote(note);
  const found = /* @__PURE__ */ new Set();
  for (const line of parsed.signatures) {
    const key = `${line.name}+${line.keyId}`;
    const witness = trusted.get(key);
    if (witness === void 0) continue;
    if (line.signature.length !== 72) {
      throw new NoteError(
        `the cosignature of ${key} is not 72 bytes (a timestamp and an Ed25519 signature)`
      );
    }
    const view = new DataView(line.signature.buffer, line.signature.byteOffset);
    const timestamp = view.getBigUint64(0);
    if (timestamp > MAX_TIMESTAMP) throw new NoteError(`the cosignature of ${key} has a timestamp above 2^63-1`);
    const message = utf8(`cosignature/v1
time ${timestamp}
${parsed.text}`);
    if (!ed25519Verify(line.signature.subarray(8), message, witness.publicKey)) {
      throw new NoteError(`the cosignature of the trusted witness ${witness.vkey} does not verify`);
    }
    found.add(key);
  }
  return found.size;
}
var CosignaturePolicy = class _CosignaturePolicy {
  quorum;
  witnesses;
  constructor(quorum, witnesses) {
    const names = new Set(witnesses.map((w) => `${w.name}+${w.keyId}`));
    if (names.size !== witnesses.length) throw new NoteError("two trusted witness keys have one name and key ID");
    const keys = new Set(witnesses.map((w) => Array.from(w.publicKey).join(",")));
    if (keys.size !== witnesses.length) {
      throw new NoteError("two trusted witnesses share one public key (tlog-cosignature: one key per witness)");
    }
    if (!Number.isInteger(quorum) || quorum < 1 || quorum > witnesses.length) {
      throw new NoteError(
        `a cosignature policy requires from 1 to ${witnesses.length} (the witnesses listed) cosignatures, not ${quorum}`
      );
    }
    this.quorum = quorum;
    this.witnesses = witnesses;
  }
  /** The policy over the witnesses with these verifier keys. */
  static fromVkeys(quorum, vkeys) {
    return new _CosignaturePolicy(quorum, vkeys.map(parseCosignatureVkey));
  }
  /** How many of the policy's witnesses cosigned `note`; NoteError when fewer than the quorum or a line fails. */
  check(note) {
    const found = countCosignatures(note, this.witnesses);
    if (found < this.quorum) {
      throw new NoteError(
        `the checkpoint carries valid cosignatures by ${found} of the ${this.witnesses.length} trusted witnesses; the policy requires ${this.quorum}`
      );
    }
    return found;
  }
};

// src/handles.ts
var ProofStatus = { ISSUED: "issued", REVOKED: "revoked", EXPIRED: "expired" };
var ANY = { kind: "any" };
var NULL = { kind: "null" };
var STRING = { kind: "string" };
var INTEGER = { kind: "integer" };
var BOOLEAN = { kind: "boolean" };
var ENTRY = { kind: "entry" };
var optional = (inner) => ({ kind: "optional", inner });
var listOf = (items) => ({ kind: "array", items });
var mapOf = (values) => ({ kind: "map", values });
var attrsOf = (fields) => ({
  kind: "object",
  strict: true,
  fields: new Map(Object.entries(fields).map(([name, shape]) => [name, { shape, required: true }]))
});
var ENTRY_KEYS2 = ["seq", "hash", "prev_hash", "version", "appender", "auth_source", "committed_at", "record"];
var MAX_SCHEMA_DEPTH = 32;
function isObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
function isEntrySchema(schema) {
  const ref = schema["$ref"];
  if (typeof ref === "string") return /(^|\/)Entry$/.test(ref);
  if (schema["title"] !== void 0 && schema["title"] !== "Entry") return false;
  const properties = schema["properties"];
  if (!isObject(properties)) return false;
  const keys = Object.keys(properties);
  return keys.length === ENTRY_KEYS2.length && ENTRY_KEYS2.every((k) => k in properties);
}
function shapeOf(schema, depth = 0) {
  if (!isObject(schema) || depth > MAX_SCHEMA_DEPTH) return ANY;
  if (isEntrySchema(schema)) return ENTRY;
  const alternatives = schema["anyOf"] ?? schema["oneOf"];
  if (Array.isArray(alternatives)) {
    const others = alternatives.filter((s) => !(isObject(s) && s["type"] === "null"));
    if (others.length === 1) {
      const inner = shapeOf(others[0], depth + 1);
      return others.length === alternatives.length ? inner : optional(inner);
    }
    return ANY;
  }
  const type = schema["type"];
  if (Array.isArray(type)) {
    const others = type.filter((t) => t !== "null");
    if (others.length !== 1) return ANY;
    const inner = shapeOf({ ...schema, type: others[0] }, depth + 1);
    return others.length === type.length ? inner : optional(inner);
  }
  const values = schema["enum"];
  if (Array.isArray(values)) {
    const strings2 = values.filter((v) => typeof v === "string");
    if (strings2.length === values.length) return { kind: "enum", values: strings2 };
    if (strings2.length === values.length - 1 && values.includes(null)) return optional({ kind: "enum", values: strings2 });
    return ANY;
  }
  switch (type) {
    case "null":
      return NULL;
    case "string":
      return STRING;
    case "integer":
      return INTEGER;
    case "boolean":
      return BOOLEAN;
    case "array":
      return listOf(shapeOf(schema["items"], depth + 1));
    case "object": {
      const properties = schema["properties"];
      const extra = schema["additionalProperties"];
      if (isObject(properties)) {
        const required = Array.isArray(schema["required"]) ? schema["required"] : [];
        return {
          kind: "object",
          strict: extra === false,
          fields: new Map(Object.entries(properties).map(([name, s]) => [
            name,
            { shape: shapeOf(s, depth + 1), required: required.includes(name) }
          ]))
        };
      }
      return isObject(extra) ? mapOf(shapeOf(extra, depth + 1)) : ANY;
    }
    default:
      return ANY;
  }
}
function check(shape, value, where, entries) {
  const wrong = (what) => {
    throw new NucleusError(`the server's answer to ${where} is not ${what}`);
  };
  switch (shape.kind) {
    case "any":
      return;
    case "null":
      if (value !== null) wrong("null");
      return;
    case "string":
      if (typeof value !== "string") wrong("a string");
      return;
    case "integer":
      if (!Number.isSafeInteger(value)) wrong("an integer");
      return;
    case "boolean":
      if (typeof value !== "boolean") wrong("a boolean");
      return;
    case "entry":
      entries.push(value);
      return;
    case "enum":
      if (typeof value !== "string" || !shape.values.includes(value)) wrong(`one of ${shape.values.join(", ")}`);
      return;
    case "optional":
      if (value !== null) check(shape.inner, value, where, entries);
      return;
    case "array":
      if (!Array.isArray(value)) wrong("a list");
      value.forEach((item, i) => check(shape.items, item, `${where}[${i}]`, entries));
      return;
    case "map":
      if (!isObject(value)) wrong("an object");
      for (const [key, item] of Object.entries(value)) check(shape.values, item, `${where}[${JSON.stringify(key)}]`, entries);
      return;
    case "object": {
      if (!isObject(value)) wrong("an object");
      const doc = value;
      for (const [name, field] of shape.fields) {
        if (!Object.hasOwn(doc, name)) {
          if (field.required) wrong(`an object with a field ${JSON.stringify(name)}`);
          continue;
        }
        check(field.shape, doc[name], `${where}.${name}`, entries);
      }
      if (shape.strict) {
        const extra = Object.keys(doc).find((k) => !shape.fields.has(k));
        if (extra !== void 0) {
          throw new NucleusError(`the server's answer to ${where} has a field ${JSON.stringify(extra)} its type does not have`);
        }
      }
      return;
    }
  }
}
function build(shape, value, entries) {
  switch (shape.kind) {
    case "entry":
      return entries.next().value;
    case "optional":
      return value === null ? null : build(shape.inner, value, entries);
    case "array":
      return value.map((item) => build(shape.items, item, entries));
    case "map":
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, build(shape.values, v, entries)]));
    case "object":
      return Object.fromEntries(
        Object.entries(value).map(([k, v]) => {
          const field = shape.fields.get(k);
          return [k, field === void 0 ? v : build(field.shape, v, entries)];
        })
      );
    default:
      return value;
  }
}
function argumentKind(schema) {
  if (!isObject(schema)) return "any";
  const shape = shapeOf(schema);
  const inner = shape.kind === "optional" ? shape.inner : shape;
  return inner.kind === "string" || inner.kind === "integer" || inner.kind === "boolean" ? inner.kind : "any";
}
function checkArgument(where, param, value) {
  const problem = param.kind === "string" ? typeof value === "string" ? null : "must be a string" : param.kind === "integer" ? Number.isSafeInteger(value) && value >= 0 ? null : "must be a non-negative integer" : param.kind === "boolean" ? typeof value === "boolean" ? null : "must be true or false" : ["string", "number", "boolean"].includes(typeof value) ? null : "must be a string, a number or a boolean";
  if (problem !== null) throw new QueryError(`${where}: ${problem}`, { field: param.name });
  return value;
}
function callArguments(moduleId, operation, args) {
  const where = `${moduleId}.${operation.name}`;
  const required = operation.params.filter((p) => p.required);
  const optionalParams = operation.params.filter((p) => !p.required);
  let positional = args;
  let options = {};
  const last = args[args.length - 1];
  if (args.length > required.length && (isObject(last) || last === void 0)) {
    positional = args.slice(0, -1);
    options = last ?? {};
  }
  const names = operation.params.map((p) => p.name).join(", ") || "nothing";
  if (positional.length !== required.length) {
    const missing = required[positional.length];
    throw new ValidationError(
      `${where} takes ${required.length} argument${required.length === 1 ? "" : "s"} (${required.map((p) => p.name).join(", ")}${optionalParams.length ? `, then {${optionalParams.map((p) => p.name).join(", ")}}` : ""}), got ${positional.length}`,
      { field: missing?.name ?? "arguments" }
    );
  }
  const out = /* @__PURE__ */ new Map();
  required.forEach((param, i) => out.set(param.name, checkArgument(where, param, positional[i])));
  for (const [name, value] of Object.entries(options)) {
    const param = optionalParams.find((p) => p.name === name);
    if (param === void 0) {
      throw new QueryError(`${where} has no optional argument ${JSON.stringify(name)} (it takes: ${names})`, { field: name });
    }
    if (value !== null && value !== void 0) out.set(name, checkArgument(where, param, value));
  }
  return out;
}
function queryString(args) {
  const parts = [...args].map(([name, value]) => `${encodeURIComponent(name)}=${encodeURIComponent(String(value))}`);
  return parts.length ? `?${parts.join("&")}` : "";
}
function segment(value) {
  return value === "." || value === ".." ? value.replaceAll(".", "%2E") : encodeURIComponent(value);
}
function pyRepr(value) {
  return /^[\x20-\x7e]*$/.test(value) && !value.includes("'") && !value.includes("\\") ? `'${value}'` : JSON.stringify(value);
}
function moduleError(moduleId, message) {
  return new ModuleError(`module ${pyRepr(moduleId)}: ${message}`, { moduleId });
}
var shortName = (qualified) => qualified.slice(qualified.lastIndexOf(".") + 1);
var ModuleHandle = class {
  moduleId;
  /** What the server listed about the module when the handle was made. */
  moduleInfo;
  #transport;
  #operations;
  /** @internal Made by `client.runtime.getModule`. */
  constructor(info, transport, operations) {
    this.moduleId = info.id;
    this.moduleInfo = info;
    this.#transport = transport;
    this.#operations = new Map(operations.map((op2) => [op2.name, op2]));
  }
  /** The names of the operations this handle can call (those the server lists). */
  get operationNames() {
    return [...this.#operations.keys()];
  }
  /**
   * Call operation `name` (`handle.callOperation("balance", "t1", "oid:acme:user:alice")`). An
   * operation the server does not list is a ModuleError naming those it does; ill-typed or
   * missing arguments are refused before anything is sent.
   */
  async callOperation(name, ...args) {
    const operation = this.#operations.get(name);
    if (operation === void 0) {
      const known = [...this.#operations.keys()].sort().join(", ") || "none";
      throw moduleError(this.moduleId, `the server lists no handle operation ${pyRepr(String(name))} (it offers: ${known})`);
    }
    const query = callArguments(this.moduleId, operation, args);
    const where = `${this.moduleId}.${operation.name}`;
    const doc = await this.#transport.get(`/modules/${segment(this.moduleId)}/${segment(operation.name)}${queryString(query)}`);
    if (!isObject(doc) || !Object.hasOwn(doc, "result") || Object.keys(doc).length !== 1) {
      throw new NucleusError(`the server's answer to ${where} is not {"result": ...}`);
    }
    const found = [];
    check(operation.result, doc["result"], where, found);
    const entries = found.length ? await this.#transport.entries(found) : [];
    const result = build(operation.result, doc["result"], entries[Symbol.iterator]());
    if (this.#transport.verifying && operation.check !== void 0) operation.check(query, result);
    return result;
  }
};
var RESERVED = /* @__PURE__ */ new Set(["moduleId", "moduleInfo", "operationNames", "callOperation", "constructor", "then"]);
function genericHandle(info, transport) {
  const operations = info.operations.map((op2) => ({
    name: op2.name,
    params: op2.params.map((p) => ({ name: p.name, required: p.required, kind: argumentKind(p.schema) })),
    result: shapeOf(op2.result)
  }));
  const handle = new ModuleHandle(info, transport, operations);
  for (const op2 of operations) {
    if (RESERVED.has(op2.name) || op2.name in handle) continue;
    Object.defineProperty(handle, op2.name, {
      value: (...args) => handle.callOperation(op2.name, ...args),
      enumerable: true
    });
  }
  return handle;
}
var PROOF_INFO = attrsOf({
  proof_id: STRING,
  subject: STRING,
  issuer: STRING,
  proof_type: STRING,
  target: STRING,
  expires_at: optional(INTEGER),
  revoked: BOOLEAN,
  seq: INTEGER
});
var ASSET_INFO = attrsOf({
  asset_id: STRING,
  issuer: STRING,
  owner: STRING,
  asset_type: optional(STRING),
  status: STRING,
  seq: INTEGER
});
var GRANT_INFO = attrsOf({
  grant_id: STRING,
  subject: STRING,
  app: STRING,
  scopes: listOf(STRING),
  expires_at: optional(INTEGER),
  revoked: BOOLEAN,
  seq: INTEGER
});
var TOKEN_INFO = attrsOf({
  token_id: STRING,
  issuer: STRING,
  symbol: STRING,
  decimals: INTEGER,
  cap: optional(INTEGER),
  supply: INTEGER,
  seq: INTEGER
});
var req = (name, kind = "string") => ({ name, kind, required: true });
var opt = (name, kind) => ({ name, kind, required: false });
var op = (name, params, result, answerCheck) => ({
  name,
  params,
  result,
  check: answerCheck
});
function payloadOf(entry) {
  return isObject(entry.record.payload) ? entry.record.payload : {};
}
function historyCheck(where, stream, key, also) {
  return (args, result) => {
    let last = 0;
    for (const entry of result) {
      const asked = args.get(key);
      const payload = payloadOf(entry);
      const why = entry.seq <= last ? `it comes after entry ${last}` : entry.record.stream !== stream ? `its stream is ${JSON.stringify(entry.record.stream)}` : payload[key] !== asked ? `its ${key} is ${JSON.stringify(payload[key])}, not ${JSON.stringify(asked)}` : also?.(entry, args) ?? null;
      if (why !== null) {
        throw new AnswerMismatchError(`the server's answer to ${where} holds entry ${entry.seq}, which is not one asked for: ${why}`, {
          seq: entry.seq
        });
      }
      last = entry.seq;
    }
  };
}
function tokenParties(payload) {
  switch (payload["type"]) {
    case "created":
      return [payload["issuer"]];
    case "minted":
      return [payload["to"]];
    case "transferred":
      return [payload["from"], payload["to"]];
    default:
      return [payload["from"]];
  }
}
var BUILT_IN = {
  proof: {
    handleType: "nucleus_module_proof.module.ProofModule",
    operations: [
      op("get", [req("proof_id")], optional(PROOF_INFO)),
      op("status", [req("proof_id"), opt("now_ms", "integer")], optional({ kind: "enum", values: Object.values(ProofStatus) })),
      op("by_subject", [req("subject")], listOf(PROOF_INFO)),
      op("by_issuer", [req("issuer")], listOf(PROOF_INFO))
    ]
  },
  asset: {
    handleType: "nucleus_module_asset.module.AssetModule",
    operations: [
      op("get", [req("asset_id")], optional(ASSET_INFO)),
      op("owner", [req("asset_id")], optional(STRING)),
      op("history", [req("asset_id")], listOf(ENTRY), historyCheck("asset.history", "asset", "asset_id")),
      op("assets_of", [req("owner")], listOf(ASSET_INFO))
    ]
  },
  connect_grant: {
    handleType: "nucleus_module_connect_grant.module.ConnectGrantModule",
    operations: [
      op("get", [req("grant_id")], optional(GRANT_INFO)),
      op("active_for_subject", [req("subject"), opt("now_ms", "integer")], listOf(GRANT_INFO)),
      op("active_for_app", [req("app"), opt("now_ms", "integer")], listOf(GRANT_INFO))
    ]
  },
  token: {
    handleType: "nucleus_module_token.module.TokenModule",
    operations: [
      op("token", [req("token_id")], optional(TOKEN_INFO)),
      op("balance", [req("token_id"), req("holder")], INTEGER),
      op("holders", [req("token_id")], mapOf(INTEGER)),
      op("history", [req("token_id"), opt("holder", "string")], listOf(ENTRY), historyCheck(
        "token.history",
        "token",
        "token_id",
        (entry, args) => {
          const holder = args.get("holder");
          return holder === void 0 || tokenParties(payloadOf(entry)).includes(holder) ? null : `it does not involve ${JSON.stringify(holder)}`;
        }
      )),
      op("transaction", [req("tx_id")], optional(ENTRY), (args, result) => {
        const entry = result;
        if (entry === null) return;
        const payload = payloadOf(entry);
        if (entry.record.stream !== "token" || payload["tx_id"] !== args.get("tx_id")) {
          throw new AnswerMismatchError(
            `asked for transaction ${JSON.stringify(args.get("tx_id"))}, the server answered entry ${entry.seq} of transaction ${JSON.stringify(payload["tx_id"])}`,
            { seq: entry.seq }
          );
        }
      })
    ]
  }
};
var ProofHandle = class extends ModuleHandle {
  /** The proof, or null when unknown or unreadable. */
  get(proofId) {
    return this.callOperation("get", proofId);
  }
  /** The proof's status (at `now_ms`, default: the server's now), or null when unknown or unreadable. */
  status(proofId, options = {}) {
    return this.callOperation("status", proofId, options);
  }
  /** Readable proofs about `subject`, oldest first (revoked ones included). */
  by_subject(subject) {
    return this.callOperation("by_subject", subject);
  }
  /** Readable proofs issued by `issuer`, oldest first. */
  by_issuer(issuer) {
    return this.callOperation("by_issuer", issuer);
  }
};
var AssetHandle = class extends ModuleHandle {
  /** The asset (issuer, owner, type, status), or null when unknown or unreadable. */
  get(assetId) {
    return this.callOperation("get", assetId);
  }
  /** The current owner's OID (also for a revoked asset), or null when unknown or unreadable. */
  owner(assetId) {
    return this.callOperation("owner", assetId);
  }
  /** The asset's readable entries in seq order, verified. */
  history(assetId) {
    return this.callOperation("history", assetId);
  }
  /** The active assets `owner` holds now (readable ones), by asset id. */
  assets_of(owner) {
    return this.callOperation("assets_of", owner);
  }
};
var ConnectGrantHandle = class extends ModuleHandle {
  /** The grant, or null when unknown or unreadable. */
  get(grantId) {
    return this.callOperation("get", grantId);
  }
  /** Readable grants `subject` gave that are neither revoked nor expired (at `now_ms`), oldest first. */
  active_for_subject(subject, options = {}) {
    return this.callOperation("active_for_subject", subject, options);
  }
  /** Readable grants given to `app` that are neither revoked nor expired (at `now_ms`), oldest first. */
  active_for_app(app, options = {}) {
    return this.callOperation("active_for_app", app, options);
  }
};
var TokenHandle = class extends ModuleHandle {
  /** The token (issuer, symbol, decimals, cap, supply), or null. */
  token(tokenId) {
    return this.callOperation("token", tokenId);
  }
  /** `holder`'s balance of `tokenId` in the smallest unit (0 for an unknown or unreadable token). */
  balance(tokenId, holder) {
    return this.callOperation("balance", tokenId, holder);
  }
  /** Every holder with a positive balance, with the balance. */
  holders(tokenId) {
    return this.callOperation("holders", tokenId);
  }
  /** The token's readable entries in seq order (only those involving `holder` if given), verified. */
  history(tokenId, options = {}) {
    return this.callOperation("history", tokenId, options);
  }
  /** The entry that applied transaction `txId`, verified, or null. */
  transaction(txId) {
    return this.callOperation("transaction", txId);
  }
};
var HANDLE_CLASSES = {
  proof: ProofHandle,
  asset: AssetHandle,
  connect_grant: ConnectGrantHandle,
  token: TokenHandle
};
function strings(value) {
  return Array.isArray(value) && value.every((v) => typeof v === "string");
}
function operationFrom(doc) {
  if (!isObject(doc) || typeof doc["name"] !== "string" || !Array.isArray(doc["params"]) || !isObject(doc["result"])) return null;
  const params = [];
  for (const p of doc["params"]) {
    if (!isObject(p) || typeof p["name"] !== "string" || typeof p["required"] !== "boolean") return null;
    params.push({ name: p["name"], required: p["required"], schema: isObject(p["schema"]) ? p["schema"] : {} });
  }
  return {
    name: doc["name"],
    summary: typeof doc["summary"] === "string" ? doc["summary"] : "",
    path: typeof doc["path"] === "string" ? doc["path"] : "",
    params,
    result: doc["result"]
  };
}
function moduleFrom(doc) {
  const bad = () => {
    throw new NucleusError("the server's GET /modules answered a malformed module document");
  };
  if (!isObject(doc)) return bad();
  const { id, version, state, streams, depends_on: dependsOn, resource_kind: resourceKind } = doc;
  const handleTypes = doc["handle_types"] ?? [];
  const operations = doc["operations"] ?? [];
  if (typeof id !== "string" || typeof version !== "string" || typeof state !== "string" || !strings(streams) || !strings(dependsOn) || !(resourceKind === null || typeof resourceKind === "string") || !strings(handleTypes) || !Array.isArray(operations)) return bad();
  const ops = operations.map(operationFrom);
  if (ops.includes(null)) return bad();
  return { id, version, state, streams, dependsOn, resourceKind, handleTypes, operations: ops };
}
var ModuleRuntime = class {
  #transport;
  /** @internal Made by NucleusClient. */
  constructor(transport) {
    this.#transport = transport;
  }
  /** Every module of the served ledger, with its handle types and operations (`GET /modules`). */
  async listModules() {
    const doc = await this.#transport.get("/modules");
    if (!isObject(doc) || !Array.isArray(doc["modules"])) throw new NucleusError("the server's GET /modules answered no module list");
    return doc["modules"].map(moduleFrom);
  }
  /** The ids of the served ledger's modules. */
  async list() {
    return (await this.listModules()).map((m) => m.id);
  }
  async getModule(id, options = {}) {
    if (typeof id !== "string" || !id) throw new ValidationError("must be a non-empty module id", { field: "module_id" });
    if (!isObject(options)) throw new ValidationError("getModule's options must be an object", { field: "options" });
    const modules = await this.listModules();
    const info = modules.find((m) => m.id === id);
    if (info === void 0) {
      const known = modules.map((m) => m.id).sort().join(", ") || "none";
      throw moduleError(id, `is not enabled on this ledger (known modules: ${known})`);
    }
    const builtIn = Object.hasOwn(BUILT_IN, id) ? BUILT_IN[id] : void 0;
    const wanted = [options.handleType, builtIn?.handleType].filter((t) => t !== void 0);
    for (const kind of wanted) {
      if (!info.handleTypes.includes(kind)) {
        const actual = info.handleTypes[0];
        throw moduleError(
          id,
          actual === void 0 ? `the server lists no handle types for it (a server without module handles), not a ${shortName(kind)}` : `is a ${shortName(actual)}, not a ${shortName(kind)}`
        );
      }
    }
    if (builtIn === void 0) return genericHandle(info, this.#transport);
    const listed = new Set(info.operations.map((o) => o.name));
    const Handle = HANDLE_CLASSES[id];
    return new Handle(info, this.#transport, builtIn.operations.filter((o) => listed.has(o.name)));
  }
};

// src/client.ts
var MAX_PROOF_BATCH = 1e3;
var DEFAULT_CHECKPOINT_WAIT = 10;
var DEFAULT_QUERY_LIMIT = 100;
var MAX_QUERY_LIMIT = 1e3;
var MAX_FILTER_VALUES = 1e3;
var POLL_FIRST_MS = 20;
var POLL_MAX_MS = 500;
var CURSOR = /^s[0-9]{1,19}$/;
var SIGNS_NO_CHECKPOINTS = "signs no checkpoints";
function isObject2(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
function hexList(value) {
  if (!Array.isArray(value) || !value.every(isHash)) return null;
  return value.map((h) => hexToBytes2(h));
}
function inclusionProofFrom(doc) {
  if (!isObject2(doc) || Object.keys(doc).length !== 3) return null;
  const { leaf_index: leafIndex, tree_size: treeSize } = doc;
  const hashes = hexList(doc["hashes"]);
  if (!Number.isSafeInteger(leafIndex) || !Number.isSafeInteger(treeSize) || hashes === null) return null;
  return { leafIndex, treeSize, hashes };
}
function decodeCursor(cursor) {
  if (cursor === null || cursor === void 0) return 0;
  if (typeof cursor !== "string" || !CURSOR.test(cursor)) {
    throw new QueryError("is not a cursor returned by this ledger", { field: "cursor" });
  }
  return Number(cursor.slice(1));
}
function askedFrom(filters2) {
  const { stream, recordIds, since, until } = filters2;
  const limit = filters2.limit ?? DEFAULT_QUERY_LIMIT;
  let streams = null;
  if (stream !== void 0) {
    streams = typeof stream === "string" ? [stream] : stream;
    if (!Array.isArray(streams) || !streams.length || streams.length > MAX_FILTER_VALUES) {
      throw new QueryError(`must be a stream name or a list of 1-${MAX_FILTER_VALUES}`, { field: "stream" });
    }
  }
  if (recordIds !== void 0 && (!Array.isArray(recordIds) || !recordIds.length || recordIds.length > MAX_FILTER_VALUES)) {
    throw new QueryError(`must be a list of 1-${MAX_FILTER_VALUES} record ids`, { field: "record_ids" });
  }
  for (const [name, value] of [["since", since], ["until", until]]) {
    if (value !== void 0 && (!Number.isSafeInteger(value) || value < 0)) {
      throw new QueryError("must be a non-negative integer (Unix milliseconds)", { field: name });
    }
  }
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_QUERY_LIMIT) {
    throw new QueryError(`must be an integer from 1 to ${MAX_QUERY_LIMIT}`, { field: "limit" });
  }
  return {
    streams,
    recordIds: recordIds ?? null,
    since: since ?? null,
    until: until ?? null,
    afterSeq: decodeCursor(filters2.cursor),
    limit
  };
}
function filtersBody(filters2) {
  const body = {};
  if (filters2.stream !== void 0) body["stream"] = filters2.stream;
  if (filters2.recordIds !== void 0) body["record_ids"] = filters2.recordIds;
  if (filters2.since !== void 0) body["since"] = filters2.since;
  if (filters2.until !== void 0) body["until"] = filters2.until;
  if (filters2.limit !== void 0) body["limit"] = filters2.limit;
  if (filters2.cursor !== void 0) body["cursor"] = filters2.cursor;
  return body;
}
function checkPage(entries, nextCursor2, asked) {
  if (entries.length > asked.limit) {
    throw new AnswerMismatchError(`asked for at most ${asked.limit} entries, the server answered ${entries.length}`);
  }
  for (const entry of entries) {
    const { record } = entry;
    let why = null;
    if (entry.seq <= asked.afterSeq) why = `its seq is not after the cursor's entry ${asked.afterSeq}`;
    else if (asked.streams !== null && !asked.streams.includes(record.stream)) {
      why = `its stream ${JSON.stringify(record.stream)} is not one asked for`;
    } else if (asked.recordIds !== null && !asked.recordIds.includes(record.id)) {
      why = `its record id ${JSON.stringify(record.id)} is not one asked for`;
    } else if (asked.since !== null && record.timestamp < asked.since || asked.until !== null && record.timestamp >= asked.until) {
      why = `its timestamp ${record.timestamp} is outside the range asked for`;
    }
    if (why !== null) {
      throw new AnswerMismatchError(`the server's query page holds entry ${entry.seq}, which ${why}`, { seq: entry.seq });
    }
  }
  if (nextCursor2 !== null) {
    let after;
    try {
      if (typeof nextCursor2 !== "string") throw new QueryError("not a string");
      after = decodeCursor(nextCursor2);
    } catch {
      throw new AnswerMismatchError(`the server's next_cursor ${JSON.stringify(nextCursor2)} is not a cursor`);
    }
    const last = entries[entries.length - 1];
    const floor = last !== void 0 ? last.seq : asked.afterSeq;
    if (after < floor || last === void 0 && after === floor) {
      throw new AnswerMismatchError(
        `the server's next_cursor ${JSON.stringify(nextCursor2)} does not move past its page (entry ${floor})`
      );
    }
  }
}
function checkAscending(entries) {
  for (let i = 1; i < entries.length; i++) {
    const before = entries[i - 1].seq;
    const after = entries[i].seq;
    if (after <= before) {
      throw new LogVerificationError(`the server answered a page out of seq order (${before}, then ${after})`);
    }
  }
}
function checkRecords(entries, records) {
  if (entries.length !== records.length) {
    throw new LogVerificationError(`appended ${records.length} records, the server answered ${entries.length} entries`);
  }
  entries.forEach((entry, i) => {
    const record = records[i];
    if (!equalBytes(entry.canonical, canonicalBytes(record))) {
      throw new LogVerificationError(
        `the server answered the append of record ${JSON.stringify(record.id)} with entry ${entry.seq} of another record`,
        { seq: entry.seq }
      );
    }
    if (i && entry.seq !== entries[i - 1].seq + 1) {
      throw new LogVerificationError("the server answered a batch append with entries that are not consecutive");
    }
  });
}
function checkInclusion(entry, proof, checkpoint) {
  const { seq } = entry;
  if (proof === null) {
    throw new InclusionProofError(
      `entry ${seq}: the server returned it but gives no inclusion proof of it in the tree of ${checkpoint.size} entries`,
      { seq }
    );
  }
  if (proof.leafIndex !== seq - 1 || proof.treeSize !== checkpoint.size) {
    throw new InclusionProofError(
      `entry ${seq}: the server's inclusion proof is for leaf ${proof.leafIndex} of a tree of ${proof.treeSize}, not leaf ${seq - 1} of the trusted tree of ${checkpoint.size}`,
      { seq }
    );
  }
  try {
    verifyInclusion(leafHash(hexToBytes2(entry.hash)), seq - 1, checkpoint.size, proof.hashes, checkpoint.rootHash);
  } catch (err) {
    if (!(err instanceof ProofError)) throw err;
    throw new InclusionProofError(
      `entry ${seq} (hash ${entry.hash}) is not in the trusted tree of ${checkpoint.size} entries: ${err.message}`,
      { seq }
    );
  }
}
var sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
var NucleusClient = class {
  url;
  /** True when checkpoints and entries are verified (verifier keys were given). */
  verifying;
  #token;
  #fetch;
  #verifiers;
  #store;
  #origin;
  #checkpointWaitMs;
  /** The k-of-n witness policy every checkpoint must meet (undefined: none). */
  witnessPolicy;
  /** The ledger's modules and their handles, read-only (`listModules()`, `getModule(id)`). */
  runtime;
  #askCosigned = true;
  #ledgerId;
  #log;
  constructor(options) {
    if (!isObject2(options)) throw new ConfigurationError("createClient takes an options object");
    const { url, token, verifierKeys, trustedState, ledgerId, origin, checkpointWait, witnessPolicy: witnessPolicy2 } = options;
    if (typeof url !== "string" || !/^https?:\/\//.test(url)) {
      throw new ConfigurationError(`url must be an http:// or https:// URL, got ${JSON.stringify(url)}`);
    }
    if (token !== void 0 && (typeof token !== "string" || !token)) throw new ConfigurationError("token must be a non-empty string");
    if (verifierKeys !== void 0 && (typeof verifierKeys === "string" || !Array.isArray(verifierKeys))) {
      throw new ConfigurationError("verifierKeys is a list of verifier key strings, not one string");
    }
    this.verifying = verifierKeys !== void 0 && verifierKeys.length > 0;
    if (!this.verifying && (trustedState !== void 0 || witnessPolicy2 !== void 0)) {
      throw new ConfigurationError("trustedState and witnessPolicy are used by a verifying client only (give verifierKeys)");
    }
    if (witnessPolicy2 !== void 0 && !(witnessPolicy2 instanceof CosignaturePolicy)) {
      throw new ConfigurationError("witnessPolicy must be a CosignaturePolicy");
    }
    this.witnessPolicy = witnessPolicy2;
    const wait = checkpointWait ?? DEFAULT_CHECKPOINT_WAIT;
    if (typeof wait !== "number" || !(wait >= 0)) throw new ConfigurationError("checkpointWait must be a non-negative number of seconds");
    this.#verifiers = (verifierKeys ?? []).map((vkey) => {
      try {
        return parseVkey(vkey);
      } catch (err) {
        throw new ConfigurationError(`verifier key ${JSON.stringify(vkey)}: ${err.message}`);
      }
    });
    if (trustedState !== void 0 && (typeof trustedState.load !== "function" || typeof trustedState.save !== "function")) {
      throw new ConfigurationError("trustedState must be a TrustedStateStore (load and save)");
    }
    this.#store = trustedState ?? new MemoryTrustedState();
    this.url = url.replace(/\/+$/, "");
    this.#token = token;
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.#ledgerId = ledgerId;
    this.#origin = origin;
    this.#checkpointWaitMs = wait * 1e3;
    this.runtime = new ModuleRuntime({
      verifying: this.verifying,
      get: (path) => this.#json("GET", path),
      entries: async (docs) => this.#verified(await this.#entries(docs))
    });
  }
  // plumbing -------------------------------------------------------------------------------
  async #send(method, path, body, auth = true) {
    const headers = { accept: "application/json" };
    if (auth && this.#token !== void 0) headers["authorization"] = `Bearer ${this.#token}`;
    const init = { method, headers, redirect: "manual" };
    if (body !== void 0) {
      headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await this.#fetch(`${this.url}${path}`, init);
    } catch (err) {
      throw new StorageUnavailableError(`cannot reach the ledger server at ${this.url}: ${err.message}`);
    }
    if (response.status >= 400) {
      let doc;
      try {
        doc = JSON.parse(await response.text());
      } catch {
        doc = void 0;
      }
      throw rebuildError(doc, response.status);
    }
    return response;
  }
  async #json(method, path, body) {
    const response = await this.#send(method, path, body);
    const text = await response.text();
    try {
      return text ? JSON.parse(text) : null;
    } catch {
      throw new NucleusError(`the server's ${path} did not answer JSON`);
    }
  }
  async #text(path) {
    const response = await this.#send("GET", path);
    if (!(response.headers.get("content-type") ?? "").startsWith("text/plain")) {
      throw new NucleusError(`the server's ${path.split("?")[0]} did not answer text/plain`);
    }
    const raw = new Uint8Array(await response.arrayBuffer());
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(raw);
    } catch {
      throw new (this.verifying ? CheckpointSignatureError : NucleusError)("the server's checkpoint is not UTF-8");
    }
  }
  /** The ledger id (asked from the server once). */
  async ledgerId() {
    if (this.#ledgerId === void 0) {
      const doc = await this.#json("GET", "/ledger");
      if (!isObject2(doc) || typeof doc["ledger_id"] !== "string") throw new NucleusError("the server's /ledger has no ledger_id");
      this.#ledgerId = doc["ledger_id"];
    }
    return this.#ledgerId;
  }
  async #entries(docs) {
    if (!Array.isArray(docs)) throw new NucleusError("the server sent no entry list");
    const id = await this.ledgerId();
    return docs.map((doc) => entryFromJson(doc, id));
  }
  #requireVerifying() {
    if (!this.verifying) throw new ConfigurationError("this client does not verify (it was given no verifierKeys)");
  }
  // verification ---------------------------------------------------------------------------
  async #trustedLog() {
    if (this.#log === void 0) {
      const origin = this.#origin ?? `nucleus.invalid/${await this.ledgerId()}`;
      this.#log ??= new TrustedLog(this.#verifiers, origin, this.#store, this.#notePolicy());
    }
    return this.#log;
  }
  #notePolicy() {
    const policy = this.witnessPolicy;
    if (policy === void 0) return void 0;
    return (note, checkpoint) => {
      try {
        policy.check(note);
      } catch (err) {
        if (!(err instanceof NoteError)) throw err;
        throw new WitnessPolicyError(
          `the checkpoint of ${JSON.stringify(checkpoint.origin)} at size ${checkpoint.size} is refused: ${err.message}`
        );
      }
    };
  }
  /**
   * The server's latest checkpoint; with a witness policy the latest one cosigned by the policy's
   * quorum (`GET /checkpoint?cosigned=K`), null when there is none yet. A server refusing that
   * parameter (or with fewer witnesses than the quorum) is asked for its latest one instead, from
   * then on: the policy then decides.
   */
  async #latestNote() {
    const policy = this.witnessPolicy;
    if (policy === void 0 || !this.#askCosigned) return this.#text("/checkpoint");
    try {
      return await this.#text(`/checkpoint?cosigned=${policy.quorum}`);
    } catch (err) {
      if (err instanceof NotFoundError) {
        if (err.message.includes(SIGNS_NO_CHECKPOINTS)) throw err;
        return null;
      }
      if (err instanceof ValidationError && (err.field === "query" || err.field === "cosigned")) {
        this.#askCosigned = false;
        return this.#text("/checkpoint");
      }
      throw err;
    }
  }
  #noneCosigned() {
    return `the server has no checkpoint cosigned by ${this.witnessPolicy?.quorum ?? 0} of its witnesses yet (the policy's quorum)`;
  }
  /** The checkpoint this client trusts now (null before the first one). */
  async trustedCheckpoint() {
    this.#requireVerifying();
    return (await this.#trustedLog()).checkpoint();
  }
  /** Fetch the server's latest checkpoint, verify it against the trusted state and move that forward. */
  async refresh() {
    this.#requireVerifying();
    const log = await this.#trustedLog();
    const note = await this.#latestNote();
    if (note === null) throw new WitnessPolicyError(this.#noneCosigned());
    return this.#accept(log, note, true);
  }
  #accept(log, note, latest) {
    return log.accept(note, (from, to) => this.#consistencyHashes(from, to), latest);
  }
  async #consistencyHashes(from, to) {
    let doc;
    try {
      doc = await this.#json("GET", `/proof/consistency?from=${from}&to=${to}`);
    } catch (err) {
      if (err instanceof ValidationError || err instanceof NotFoundError) {
        throw new InconsistentLogError(
          `the server gives no consistency proof from its tree of ${from} entries to ${to}: ${err.message}`
        );
      }
      throw err;
    }
    const hashes = isObject2(doc) && Object.keys(doc).length === 3 ? hexList(doc["hashes"]) : null;
    if (!isObject2(doc) || hashes === null || !Number.isSafeInteger(doc["from"]) || !Number.isSafeInteger(doc["to"])) {
      throw new InconsistentLogError(`the server's consistency proof from ${from} to ${to} is malformed`);
    }
    if (doc["from"] !== from || doc["to"] !== to) {
      throw new InconsistentLogError(
        `asked for the consistency proof from ${from} to ${to}, the server answered one from ${String(doc["from"])} to ${String(doc["to"])}`
      );
    }
    return hashes;
  }
  /** A trusted checkpoint covering entry `seq`: the trusted one, or a newer one issued within checkpointWait. */
  async #covering(seq) {
    const log = await this.#trustedLog();
    const trusted = await log.checkpoint();
    if (trusted !== null && trusted.size >= seq) return trusted;
    const deadline = Date.now() + this.#checkpointWaitMs;
    let delay = POLL_FIRST_MS;
    for (; ; ) {
      const note = await this.#latestNote();
      const latest = note === null ? null : await this.#accept(log, note, true);
      if (latest !== null && latest.size >= seq) return latest;
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        const cosigned = this.witnessPolicy === void 0 ? "" : " cosigned as the policy requires";
        const size = latest === null ? "none" : `of size ${latest.size}`;
        throw new InclusionProofError(
          `entry ${seq} cannot be verified: no checkpoint covers it (the server's latest${cosigned} is ${size}, after waiting ${this.#checkpointWaitMs / 1e3} s); the server issues checkpoints at most once per its checkpoint interval, and never on a read-only ledger`,
          { seq, reason: "no_covering_checkpoint" }
        );
      }
      await sleep(Math.min(delay, remaining));
      delay = Math.min(delay * 2, POLL_MAX_MS);
    }
  }
  /** `entries`, each proven by an inclusion proof in a trusted checkpoint (unchanged when not verifying). */
  async #verified(entries) {
    if (!this.verifying || !entries.length) return entries;
    const checkpoint = await this.#covering(Math.max(...entries.map((e) => e.seq)));
    const seqs = [...new Set(entries.map((e) => e.seq))].sort((a, b) => a - b);
    const proofs = /* @__PURE__ */ new Map();
    for (let start2 = 0; start2 < seqs.length; start2 += MAX_PROOF_BATCH) {
      const chunk = seqs.slice(start2, start2 + MAX_PROOF_BATCH);
      const answered = await this.#inclusionBatch(chunk, checkpoint.size);
      chunk.forEach((seq, i) => proofs.set(seq, answered[i] ?? null));
    }
    for (const entry of entries) checkInclusion(entry, proofs.get(entry.seq) ?? null, checkpoint);
    return entries;
  }
  async #inclusionBatch(seqs, treeSize) {
    let doc;
    try {
      doc = await this.#json("POST", "/proof/inclusion", { tree_size: treeSize, seqs });
    } catch (err) {
      if (err instanceof ValidationError) return this.#cannotProve(treeSize, err);
      throw err;
    }
    const items = isObject2(doc) ? doc["proofs"] : void 0;
    if (!isObject2(doc) || !Array.isArray(items) || doc["tree_size"] !== treeSize || items.length !== seqs.length) {
      throw new InclusionProofError(
        `the server's POST /proof/inclusion did not answer ${seqs.length} proofs in the tree of ${treeSize}`
      );
    }
    return items.map((item, i) => {
      if (item === null) return null;
      const proof = inclusionProofFrom(item);
      if (proof === null) {
        throw new InclusionProofError(`entry ${seqs[i]}: the server sent a malformed inclusion proof`, { seq: seqs[i] });
      }
      return proof;
    });
  }
  /** The server refused to prove anything in the trusted tree: a rollback shows in its latest checkpoint. */
  async #cannotProve(treeSize, err) {
    const log = await this.#trustedLog();
    const note = await this.#latestNote();
    if (note !== null) await this.#accept(log, note, true);
    throw new InclusionProofError(`the server gives no inclusion proofs in the trusted tree of ${treeSize} entries: ${err.message}`);
  }
  // writes ---------------------------------------------------------------------------------
  /** Append one record; returns its entry (verified when the client verifies). */
  async append(record) {
    checkRecord(record);
    const entries = await this.#entries([await this.#json("POST", "/entries", record)]);
    if (this.verifying) checkRecords(entries, [record]);
    return (await this.#verified(entries))[0];
  }
  /** Append records atomically, in order: all are committed or none is. */
  async appendBatch(records) {
    if (!Array.isArray(records)) throw new ValidationError("appendBatch takes a list of records", { field: "records" });
    records.forEach(checkRecord);
    const doc = await this.#json("POST", "/entries/batch", { records });
    const entries = await this.#entries(isObject2(doc) ? doc["entries"] : void 0);
    if (this.verifying) checkRecords(entries, records);
    return this.#verified(entries);
  }
  // reads ----------------------------------------------------------------------------------
  /** The entry with this hash, or null when absent or not readable by the requester. */
  async get(hash) {
    if (typeof hash !== "string" || !hash) throw new ValidationError("must be 64 lowercase hex characters", { field: "hash" });
    const entry = await this.#getOne(`/entries/${segment(hash)}`);
    if (entry !== null && this.verifying && entry.hash !== hash) {
      throw new LogVerificationError(`asked for entry ${hash}, the server answered entry ${entry.hash}`);
    }
    return entry;
  }
  /** The entry of this record id, or null when absent or not readable by the requester. */
  async getById(recordId) {
    if (typeof recordId !== "string" || !recordId) throw new ValidationError("must be a non-empty string", { field: "record_id" });
    const entry = await this.#getOne(`/records/${segment(recordId)}`);
    if (entry !== null && this.verifying && entry.record.id !== recordId) {
      throw new LogVerificationError(
        `asked for record ${JSON.stringify(recordId)}, the server answered record ${JSON.stringify(entry.record.id)}`
      );
    }
    return entry;
  }
  async #getOne(path) {
    let doc;
    try {
      doc = await this.#json("GET", path);
    } catch (err) {
      if (err instanceof NotFoundError) return null;
      throw err;
    }
    return (await this.#verified(await this.#entries([doc])))[0];
  }
  /**
   * One page of the entries matching `filters` that the requester may read, in seq order. A
   * verifying client checks the page against the filters (AnswerMismatchError) and proves it with
   * the multi-proof that comes with it in the trusted tree (newer entries by POST /proof/inclusion).
   */
  async queryPage(filters2 = {}) {
    if (!isObject2(filters2)) throw new QueryError("filters must be an object", { field: "filters" });
    const asked = askedFrom(filters2);
    let body = filtersBody(filters2);
    const trusted = this.verifying ? await (await this.#trustedLog()).checkpoint() : null;
    if (trusted !== null && trusted.size > 0) body = { ...body, proof_tree_size: trusted.size };
    let doc;
    try {
      doc = await this.#json("POST", "/entries/query", body);
    } catch (err) {
      if (trusted !== null && err instanceof ValidationError && err.field === "proof_tree_size") {
        return this.#cannotProve(trusted.size, err);
      }
      throw err;
    }
    if (!isObject2(doc)) throw new NucleusError("the server's query answer is not an object");
    const entries = await this.#entries(doc["entries"]);
    const nextCursor2 = doc["next_cursor"] ?? null;
    if (this.verifying) {
      checkAscending(entries);
      checkPage(entries, nextCursor2, asked);
      await this.#verifiedPage(entries, doc["proof"], trusted);
    }
    if (nextCursor2 !== null && typeof nextCursor2 !== "string") throw new NucleusError("the server's next_cursor is not a string");
    return { entries, nextCursor: nextCursor2 };
  }
  async #verifiedPage(entries, proof, trusted) {
    const covered = trusted === null ? [] : entries.filter((e) => e.seq <= trusted.size);
    if (covered.length && trusted !== null) {
      const seqs = covered.map((e) => e.seq);
      const first = seqs[0];
      const sentSeqs = isObject2(proof) ? proof["seqs"] : void 0;
      if (!isObject2(proof) || proof["tree_size"] !== trusted.size || !Array.isArray(sentSeqs) || sentSeqs.length !== seqs.length || !sentSeqs.every((s, i) => s === seqs[i])) {
        throw new InclusionProofError(
          `the server's page came without the proof of entries ${first}..${seqs[seqs.length - 1]} in the trusted tree of ${trusted.size} entries`,
          { seq: first }
        );
      }
      const hashes = hexList(proof["hashes"]);
      if (hashes === null) throw new InclusionProofError("the server's page proof is malformed", { seq: first });
      try {
        verifyMultiInclusion(
          covered.map((e) => leafHash(hexToBytes2(e.hash))),
          seqs.map((s) => s - 1),
          trusted.size,
          hashes,
          trusted.rootHash
        );
      } catch (err) {
        if (!(err instanceof ProofError)) throw err;
        throw new InclusionProofError(
          `entries ${first}..${seqs[seqs.length - 1]} of the page are not all in the trusted tree of ${trusted.size} entries: ${err.message}`,
          { seq: first }
        );
      }
    }
    await this.#verified(entries.filter((e) => trusted === null || e.seq > trusted.size));
  }
  /**
   * The pages of the entries matching `filters`, following the cursor to the last page
   * (`for await (const page of client.query({stream: "notes"}))`). A verifying client refuses a
   * page whose seqs do not rise past the previous page's (AnswerMismatchError).
   */
  query(filters2 = {}) {
    const client = this;
    return {
      async *[Symbol.asyncIterator]() {
        let cursor = filters2.cursor;
        let last = decodeCursor(cursor);
        for (; ; ) {
          const page = await client.queryPage({ ...filters2, ...cursor === void 0 ? {} : { cursor } });
          const head = page.entries[0];
          if (client.verifying && head !== void 0 && head.seq <= last) {
            throw new AnswerMismatchError(
              `the server sent entry ${head.seq} after entry ${last} (entries again)`,
              { seq: head.seq }
            );
          }
          yield page;
          if (page.nextCursor === null) return;
          const tail = page.entries[page.entries.length - 1];
          if (tail !== void 0) last = tail.seq;
          cursor = page.nextCursor;
        }
      }
    };
  }
  // checkpoints and the server's verification ----------------------------------------------
  /**
   * The server's latest signed checkpoint (`GET /checkpoint`), or the one issued at `size`, as
   * text. A verifying client returns it only verified against its trusted state (the latest moves
   * it forward; an older one must be a prefix of the trusted tree; one of another size than
   * `size` is an AnswerMismatchError).
   */
  async checkpoint(size) {
    if (size !== void 0 && (!Number.isSafeInteger(size) || size < 0)) {
      throw new ValidationError(`size must be a non-negative integer, not ${String(size)}`, { field: "size" });
    }
    const note = await this.#text(size === void 0 ? "/checkpoint" : `/checkpoint?size=${size}`);
    if (this.verifying) {
      const log = await this.#trustedLog();
      if (size !== void 0) {
        const presented = log.verifyNote(note);
        if (presented.size !== size) {
          throw new AnswerMismatchError(
            `asked for the checkpoint issued at size ${size}, the server answered one of size ${presented.size}`
          );
        }
      }
      await this.#accept(log, note, size === void 0);
    }
    return note;
  }
  /** The server's checkpoint verifier keys (`GET /checkpoint/key`): compare them with keys obtained another way. */
  async checkpointKeys() {
    const text = await this.#text("/checkpoint/key");
    const keys = text.split("\n").filter((line) => line);
    for (const key of keys) {
      try {
        parseVkey(key);
      } catch (err) {
        if (err instanceof NoteError) throw new NucleusError(`the server sent a malformed verifier key: ${err.message}`);
        throw err;
      }
    }
    return keys;
  }
  /** Have the server re-verify its whole stored chain (`GET /verify`). */
  async verify() {
    const doc = await this.#json("GET", "/verify");
    if (!isObject2(doc) || typeof doc["ok"] !== "boolean" || !Number.isSafeInteger(doc["entries_checked"])) {
      throw new NucleusError("the server's /verify answered no verification report");
    }
    return {
      ok: doc["ok"],
      entriesChecked: doc["entries_checked"],
      firstBadSeq: doc["first_bad_seq"] ?? null,
      reason: doc["reason"] ?? null,
      headHash: doc["head_hash"] ?? null
    };
  }
};
function createClient(options) {
  return new NucleusClient(options);
}

// explorer/explorer.ts
var PAGE_SIZE = 50;
var HISTORY_LIMIT = 200;
var COVER_WAIT_MS = 1e4;
var TOKEN_KEY = "nucleus-explorer:token";
var PINNED_KEY = "nucleus-explorer:pinned-keys";
var ORIGIN_KEY = "nucleus-explorer:pinned-origin";
var WITNESSES_KEY = "nucleus-explorer:pinned-witnesses";
var digest = (...parts) => bytesToHex2(blake3(new TextEncoder().encode(JSON.stringify(parts)))).slice(0, 32);
var trustId = (origin, keys) => digest(origin, ...[...keys].sort());
var trustedKey = (trust) => `nucleus-explorer:trusted:${trust}`;
var historyKey = (trust) => `nucleus-explorer:history:${trust}`;
var identityKey = (keys) => `nucleus-explorer:identity:${digest(BASE, ...[...keys].sort())}`;
var defaultOrigin = (ledgerId) => `nucleus.invalid/${ledgerId}`;
var MAX_DATE_MS = 864e13;
var BASE = new URL(".", window.location.href).href.replace(/\/+$/, "");
var session = null;
var filters = {};
var nextCursor = null;
var streamsSeen = /* @__PURE__ */ new Set();
var generation = 0;
function byId(id) {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`the page has no #${id}`);
  return found;
}
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}
function setStatus(node, state, text) {
  node.dataset["state"] = state;
  node.className = `status ${state}`;
  node.textContent = text;
}
function show(id, visible) {
  byId(id).hidden = !visible;
}
function describe(err) {
  if (err instanceof NucleusError) return `${err.name}: ${err.message}`;
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}
var short = (hex) => `${hex.slice(0, 12)}…`;
function formatTime(ms) {
  return Number.isSafeInteger(ms) && ms >= 0 && ms <= MAX_DATE_MS ? new Date(ms).toISOString() : `${String(ms)} (ms)`;
}
var sleep2 = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
async function call(path, token, init = {}) {
  const headers = { accept: "application/json", authorization: `Bearer ${token}` };
  const request = { method: init.method ?? "GET", headers, redirect: "manual", credentials: "omit" };
  if (init.body !== void 0) {
    headers["content-type"] = "application/json";
    request.body = JSON.stringify(init.body);
  }
  const response = await fetch(`${BASE}${path}`, request);
  if (response.status >= 400) {
    let doc;
    try {
      doc = JSON.parse(await response.text());
    } catch {
      doc = void 0;
    }
    throw rebuildError(doc, response.status);
  }
  return response;
}
async function getJson(path, token, init = {}) {
  return (await call(path, token, init)).json();
}
function isObject3(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
async function signIn(token) {
  const error = byId("signin-error");
  error.hidden = true;
  let who;
  try {
    who = await getJson("/whoami", token);
  } catch (err) {
    sessionStorage.removeItem(TOKEN_KEY);
    error.hidden = false;
    error.textContent = err instanceof AuthenticationError ? `Sign-in failed: the server refused this token (${err.message}).` : `Sign-in failed: ${describe(err)}`;
    return;
  }
  const info = await getJson("/ledger", token);
  const oid = isObject3(who) && typeof who["oid"] === "string" ? who["oid"] : "?";
  const ledgerId = isObject3(info) && typeof info["ledger_id"] === "string" ? info["ledger_id"] : null;
  if (ledgerId === null) throw new NucleusError("the server's /ledger has no ledger_id");
  let serverKeys = [];
  try {
    serverKeys = (await (await call("/checkpoint/key", token)).text()).split("\n").filter((line) => line);
  } catch (err) {
    if (!(err instanceof NucleusError && err.status === 404)) throw err;
  }
  let serverWitnesses = null;
  let witnessesError = null;
  try {
    serverWitnesses = serverWitnessesFrom(await getJson("/checkpoint/witnesses", token));
  } catch (err) {
    if (!(err instanceof NucleusError && err.status === 404)) witnessesError = describe(err);
  }
  session = makeSession({ token, oid, ledgerId, serverKeys, serverWitnesses, witnessesError });
  sessionStorage.setItem(TOKEN_KEY, token);
  byId("whoami").textContent = oid;
  byId("ledger-id").textContent = ledgerId;
  show("signin", false);
  show("session", true);
  renderKeys();
  await route();
}
function serverWitnessesFrom(doc) {
  if (!isObject3(doc) || !Array.isArray(doc["witnesses"]) || !doc["witnesses"].every(isObject3)) {
    throw new NucleusError("the server's /checkpoint/witnesses is not a witness list");
  }
  return { quorum: doc["quorum"], witnesses: doc["witnesses"] };
}
function trySignIn(token) {
  signIn(token).catch((err) => {
    sessionStorage.removeItem(TOKEN_KEY);
    const error = byId("signin-error");
    error.hidden = false;
    error.textContent = `Sign-in failed: ${describe(err)}`;
  });
}
function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  session = null;
  filters = {};
  nextCursor = null;
  streamsSeen.clear();
  generation++;
  show("session", false);
  show("signin", true);
  byId("token").value = "";
}
function lines(text) {
  return text.split("\n").map((line) => line.trim()).filter((line) => line);
}
function pinnedKeys() {
  const keys = lines(localStorage.getItem(PINNED_KEY) ?? "");
  return keys.length ? keys : null;
}
function pinnedOrigin() {
  const origin = (localStorage.getItem(ORIGIN_KEY) ?? "").trim();
  return origin ? origin : null;
}
function pinnedWitnesses() {
  try {
    const doc = JSON.parse(localStorage.getItem(WITNESSES_KEY) ?? "null");
    if (!isObject3(doc) || typeof doc["quorum"] !== "number" || !Array.isArray(doc["vkeys"])) return null;
    return { quorum: doc["quorum"], vkeys: doc["vkeys"].map(String) };
  } catch {
    return null;
  }
}
function loadIdentity(keys) {
  try {
    const doc = JSON.parse(localStorage.getItem(identityKey(keys)) ?? "null");
    if (isObject3(doc) && typeof doc["ledgerId"] === "string" && typeof doc["origin"] === "string") {
      return { ledgerId: doc["ledgerId"], origin: doc["origin"] };
    }
  } catch {
  }
  return null;
}
function saveIdentity(keys, identity) {
  localStorage.setItem(identityKey(keys), JSON.stringify(identity));
}
function witnessPolicy(server) {
  const pinned = pinnedWitnesses();
  if (pinned !== null) {
    try {
      return { policy: CosignaturePolicy.fromVkeys(pinned.quorum, pinned.vkeys), source: "pinned", problem: null };
    } catch (err) {
      return { policy: null, source: "pinned", problem: `the pinned witness policy is not valid: ${err.message}` };
    }
  }
  if (server.witnessesError !== null) {
    return { policy: null, source: "server", problem: `the server's witness list could not be read: ${server.witnessesError}` };
  }
  const listed = server.serverWitnesses;
  if (listed === null) return { policy: null, source: "none", problem: null };
  try {
    const quorum = typeof listed.quorum === "number" ? listed.quorum : NaN;
    return { policy: CosignaturePolicy.fromVkeys(quorum, listed.witnesses.map((w) => String(w["vkey"]))), source: "server", problem: null };
  } catch (err) {
    return { policy: null, source: "server", problem: `the witness policy the server states is not valid: ${err.message}` };
  }
}
function makeSession(server) {
  const pinned = pinnedKeys();
  const keys = pinned ?? server.serverKeys;
  const fixedOrigin = pinnedOrigin();
  let origin = fixedOrigin ?? defaultOrigin(server.ledgerId);
  const problems = [];
  const known = keys.length ? loadIdentity(keys) : null;
  if (keys.length && known === null) saveIdentity(keys, { ledgerId: server.ledgerId, origin });
  if (known !== null && (known.ledgerId !== server.ledgerId || known.origin !== origin)) {
    problems.push(
      `the server now says it is another ledger: this browser trusted ledger ${JSON.stringify(known.ledgerId)} (origin ${JSON.stringify(known.origin)}) at this address with these keys, the server now says ${JSON.stringify(server.ledgerId)} (origin ${JSON.stringify(origin)}); "Forget what this browser trusted" to accept it as a new ledger`
    );
    if (fixedOrigin === null) origin = known.origin;
  }
  const witnesses = witnessPolicy(server);
  if (witnesses.problem !== null) problems.push(witnesses.problem);
  const trust = trustId(origin, keys);
  const store = new LocalStorageTrustedState(trustedKey(trust));
  const client = createClient({
    url: BASE,
    token: server.token,
    ledgerId: server.ledgerId,
    origin,
    verifierKeys: keys,
    ...keys.length ? { trustedState: store } : {},
    ...keys.length && witnesses.policy !== null ? { witnessPolicy: witnesses.policy } : {}
  });
  return {
    ...server,
    origin,
    originPinned: fixedOrigin !== null,
    keys,
    pinned: pinned !== null,
    policy: witnesses.policy,
    policySource: witnesses.source,
    problems,
    trust,
    store,
    client
  };
}
function renderKeys() {
  const s = session;
  if (s === null) return;
  const source = byId("key-source");
  const same = s.keys.length === s.serverKeys.length && s.keys.every((k) => s.serverKeys.includes(k));
  if (!s.keys.length) {
    setStatus(source, "bad", "none: this ledger signs no checkpoints, so nothing can be verified");
  } else if (s.pinned) {
    setStatus(source, same ? "ok" : "bad", same ? `${s.keys.length} pinned key(s), the same the server says it signs with` : `${s.keys.length} pinned key(s), NOT the ones the server says it signs with`);
  } else {
    setStatus(source, "info", "fetched from this server (proves consistency with what it says only; pin your operator's keys)");
  }
  byId("server-keys").textContent = s.serverKeys.join("\n") || "(none)";
  byId("pinned-keys").value = s.pinned ? s.keys.join("\n") : "";
  setStatus(byId("origin-source"), "info", s.originPinned ? `${s.origin} (pinned)` : `${s.origin} (the default for the ledger id${s.origin === defaultOrigin(s.ledgerId) ? " the server states" : " this browser trusted"})`);
  byId("origin-input").value = s.originPinned ? s.origin : "";
  byId("origin-input").placeholder = defaultOrigin(s.ledgerId);
  const witnessSource = byId("witness-source");
  const policy = s.policy;
  if (policy === null && s.policySource === "none") setStatus(witnessSource, "info", "none configured by the server or pinned");
  else if (policy === null) setStatus(witnessSource, "bad", s.problems[s.problems.length - 1] ?? "no valid witness policy");
  else if (s.policySource === "pinned") setStatus(witnessSource, "ok", `${policy.quorum} of ${policy.witnesses.length} pinned witness key(s)`);
  else {
    setStatus(
      witnessSource,
      "info",
      `${policy.quorum} of ${policy.witnesses.length} witnesses, as the server states it (its claim: pin your witnesses' keys)`
    );
  }
  const pinnedW = pinnedWitnesses();
  byId("pinned-witnesses").value = pinnedW === null ? "" : pinnedW.vkeys.join("\n");
  byId("witness-quorum").value = pinnedW === null ? "" : String(pinnedW.quorum);
  const identity = byId("identity-status");
  const changed = s.problems.find((p) => p.startsWith("the server now says it is another ledger"));
  identity.hidden = changed === void 0;
  if (changed !== void 0) setStatus(identity, "bad", changed);
}
function rebuildSession() {
  if (session === null) return;
  session = makeSession(session);
  renderKeys();
  void route();
}
function formError(id, message) {
  const error = byId(id);
  error.hidden = message === null;
  error.textContent = message ?? "";
}
function pinKeys() {
  formError("keys-error", null);
  const keys = lines(byId("pinned-keys").value);
  try {
    if (!keys.length) throw new Error("paste at least one key");
    for (const key of keys) {
      try {
        parseVkey(key);
      } catch (err) {
        throw new Error(`${JSON.stringify(key)} is not a checkpoint verifier key: ${err.message}`);
      }
    }
  } catch (err) {
    formError("keys-error", err.message);
    return;
  }
  localStorage.setItem(PINNED_KEY, keys.join("\n"));
  rebuildSession();
}
function pinOrigin() {
  const s = session;
  if (s === null) return;
  formError("origin-error", null);
  const origin = byId("origin-input").value.trim();
  if (/[\s\u0000-\u001f]/.test(origin)) {
    formError("origin-error", "an origin is one line without spaces (e.g. example.com/log)");
    return;
  }
  if (origin) localStorage.setItem(ORIGIN_KEY, origin);
  else localStorage.removeItem(ORIGIN_KEY);
  const known = s.keys.length ? loadIdentity(s.keys) : null;
  if (known !== null) saveIdentity(s.keys, { ...known, origin: origin || defaultOrigin(known.ledgerId) });
  rebuildSession();
}
function pinWitnesses() {
  formError("witness-error", null);
  const vkeys = lines(byId("pinned-witnesses").value);
  const quorum = Number(byId("witness-quorum").value.trim() || String(vkeys.length));
  try {
    if (!vkeys.length) throw new Error("paste at least one witness key");
    for (const key of vkeys) {
      try {
        parseCosignatureVkey(key);
      } catch (err) {
        throw new Error(`${JSON.stringify(key)} is not a witness cosignature key: ${err.message}`);
      }
    }
    CosignaturePolicy.fromVkeys(quorum, vkeys);
  } catch (err) {
    formError("witness-error", err.message);
    return;
  }
  localStorage.setItem(WITNESSES_KEY, JSON.stringify({ quorum, vkeys }));
  rebuildSession();
}
function sessionProblem(s) {
  if (!s.keys.length) return "this ledger signs no checkpoints: nothing can be verified";
  return s.problems.length ? s.problems.join("; ") : null;
}
function loadHistory(trust) {
  try {
    const doc = JSON.parse(localStorage.getItem(historyKey(trust)) ?? "[]");
    return Array.isArray(doc) ? doc : [];
  } catch {
    return [];
  }
}
async function recordTrusted(s) {
  if (!s.client.verifying) return null;
  const checkpoint = await s.client.trustedCheckpoint();
  const note = s.store.load();
  if (checkpoint === null || note === null) return checkpoint;
  const history = loadHistory(s.trust);
  const last = history[history.length - 1];
  if (last === void 0 || last.size !== checkpoint.size) {
    history.push({ size: checkpoint.size, root: bytesToHex2(checkpoint.rootHash), note, seen: Date.now() });
    localStorage.setItem(historyKey(s.trust), JSON.stringify(history.slice(-HISTORY_LIMIT)));
  }
  return checkpoint;
}
function askedFilters() {
  return { limit: PAGE_SIZE, ...filters.stream ? { stream: filters.stream } : {}, ...filters.cursor ? { cursor: filters.cursor } : {} };
}
async function showEntries() {
  const s = session;
  if (s === null) return;
  const mine = ++generation;
  const status = byId("page-status");
  const rows = byId("entry-rows");
  setStatus(status, "pending", "loading and verifying…");
  rows.replaceChildren();
  const problem = sessionProblem(s);
  let entries;
  let checkpoint = null;
  try {
    const page = await s.client.queryPage(askedFilters());
    checkpoint = await recordTrusted(s);
    entries = page.entries;
    nextCursor = page.nextCursor;
  } catch (err) {
    if (mine !== generation) return;
    nextCursor = null;
    byId("next-page").disabled = true;
    setStatus(
      status,
      "bad",
      `${problem === null ? "" : `verification FAILED: ${problem}; `}this page failed to verify (nothing of it is shown): ${describe(err)}`
    );
    return;
  }
  if (mine !== generation) return;
  for (const entry of entries) {
    streamsSeen.add(entry.record.stream);
    const link = el("a", { href: `#/entry/${entry.hash}`, "data-testid": "entry-link" }, entry.record.id);
    rows.append(el(
      "tr",
      { "data-testid": "entry-row", "data-record-id": entry.record.id, "data-seq": String(entry.seq) },
      el("td", {}, String(entry.seq)),
      el("td", {}, entry.record.stream),
      el("td", {}, link),
      el("td", { "data-testid": "entry-time" }, formatTime(entry.record.timestamp)),
      el("td", {}, el("code", {}, short(entry.hash)))
    ));
  }
  renderStreams();
  byId("next-page").disabled = nextCursor === null;
  if (problem !== null) setStatus(status, "bad", `verification FAILED: ${problem}`);
  else if (!entries.length) setStatus(status, "info", "no entries you may read here");
  else {
    setStatus(
      status,
      "ok",
      `verified: the ${entries.length} entries of this page, each hash recomputed and proven in the signed checkpoint of ${checkpoint?.size ?? "?"} entries${s.policy === null ? "" : ` cosigned by ${s.policy.quorum} witness(es)`}`
    );
  }
}
function renderStreams() {
  const list = byId("streams");
  list.replaceChildren();
  for (const stream of [...streamsSeen].sort()) {
    const link = el("a", { href: "#/entries", "data-testid": "stream-link", "data-stream": stream }, stream);
    link.addEventListener("click", () => {
      byId("stream-filter").value = stream;
      filters = { stream };
      void showEntries();
    });
    list.append(link, " ");
  }
}
function check2(name, label) {
  const result = el("td", { "data-testid": `check-${name}-state` });
  const detail = el("td", { "data-testid": `check-${name}-detail` });
  const row = el("tr", { "data-testid": `check-${name}` }, el("th", {}, label), result, detail);
  byId("entry-checks").append(row);
  const set = (state, text) => {
    row.dataset["state"] = state;
    result.className = `status ${state}`;
    result.textContent = { ok: "verified", bad: "FAILED", pending: "…", info: "—" }[state];
    detail.textContent = text;
  };
  set("pending", "");
  return { row, set };
}
function isRawEntry(value) {
  return isObject3(value) && typeof value["hash"] === "string" && typeof value["seq"] === "number" && isObject3(value["record"]);
}
async function showEntry(hash) {
  const s = session;
  if (s === null) return;
  const mine = ++generation;
  byId("entry-title").textContent = short(hash);
  const status = byId("entry-status");
  setStatus(status, "pending", "verifying…");
  byId("entry-checks").replaceChildren();
  byId("entry-record").textContent = "";
  byId("entry-fields").textContent = "";
  setStatus(byId("entry-shown"), "pending", "");
  byId("entry-witnesses").replaceChildren();
  const failed = [];
  const problem = sessionProblem(s);
  if (problem !== null) check2("session", "this ledger").set("bad", problem);
  if (s.problems.length) failed.push(...s.problems);
  const fail = (c, what, detail) => {
    c.set("bad", detail);
    failed.push(what);
  };
  let verified = null;
  const finish = () => {
    if (mine !== generation) return;
    if (verified === null) setStatus(byId("entry-shown"), "bad", "nothing shown: the client's verified read of this entry failed");
    if (failed.length) setStatus(status, "bad", `verification FAILED: ${failed.join("; ")}`);
    else setStatus(status, "ok", "verified");
  };
  const found = check2("entry", "entry read");
  let raw;
  try {
    const doc = await getJson(`/entries/${encodeURIComponent(hash)}`, s.token);
    if (!isRawEntry(doc)) throw new NucleusError("the server's answer is not an entry");
    raw = doc;
  } catch (err) {
    fail(found, "the entry could not be read", describe(err));
    finish();
    return;
  }
  if (mine !== generation) return;
  if (raw.hash !== hash) {
    fail(found, "the server answered another entry", `asked for entry ${hash}, the server answered entry ${raw.hash} (seq ${raw.seq})`);
  } else {
    found.set("ok", `entry ${raw.seq} of stream ${String(raw.record.stream)}, readable by ${s.oid}`);
  }
  const hashed = check2("hash", "hash recomputed");
  let recomputed = null;
  try {
    recomputed = entryHash(
      s.ledgerId,
      raw.seq,
      raw.prev_hash,
      canonicalBytes(raw.record),
      raw.version,
      raw.appender,
      raw.auth_source,
      raw.committed_at
    );
    if (recomputed === raw.hash) hashed.set("ok", `BLAKE3 of the record and fields gives ${raw.hash}`);
    else fail(hashed, "hash mismatch", `the record and fields give ${recomputed}, the server says ${raw.hash}: the entry was changed`);
  } catch (err) {
    fail(hashed, "hash not computable", describe(err));
  }
  const signed = check2("checkpoint", "signed checkpoint");
  let checkpoint = null;
  try {
    if (!s.keys.length) throw new NucleusError("this ledger signs no checkpoints: nothing proves the entry is in the log");
    const deadline = Date.now() + COVER_WAIT_MS;
    checkpoint = await s.client.refresh();
    while (checkpoint.size < raw.seq && Date.now() < deadline) {
      await sleep2(250);
      checkpoint = await s.client.refresh();
    }
    await recordTrusted(s);
    if (checkpoint.size < raw.seq) {
      fail(signed, "no checkpoint covers the entry", `the latest checkpoint has ${checkpoint.size} entries, not yet ${raw.seq}`);
      checkpoint = null;
    } else {
      signed.set(
        "ok",
        `tree of ${checkpoint.size} entries, root ${bytesToHex2(checkpoint.rootHash)}, origin ${s.origin}, signed by ${s.pinned ? "a pinned key" : "the server's key"}${policyWords(s)} and consistent with this browser's earlier checkpoints`
      );
    }
  } catch (err) {
    fail(signed, "checkpoint", describe(err));
    checkpoint = null;
  }
  const included = check2("inclusion", "inclusion proof");
  if (checkpoint === null || recomputed === null) {
    fail(included, "inclusion not proven", "no trusted checkpoint or entry hash to check it against");
  } else {
    try {
      const proof = await getJson(`/proof/inclusion?seq=${raw.seq}&size=${checkpoint.size}`, s.token);
      if (!isObject3(proof) || proof["leaf_index"] !== raw.seq - 1 || proof["tree_size"] !== checkpoint.size || !Array.isArray(proof["hashes"])) {
        throw new NucleusError(`the server's proof is not one of leaf ${raw.seq - 1} in the tree of ${checkpoint.size}`);
      }
      const path = proof["hashes"].map((h) => hexToBytes2(h));
      verifyInclusion(leafHash(hexToBytes2(recomputed)), raw.seq - 1, checkpoint.size, path, checkpoint.rootHash);
      included.set("ok", `${path.length} hashes lead from the entry to the root of the checkpoint of ${checkpoint.size} entries`);
    } catch (err) {
      fail(included, "inclusion proof", describe(err));
    }
  }
  const client = check2("client", "client read");
  try {
    if (!s.client.verifying) throw new NucleusError("no verifier keys: the client cannot verify");
    const entry = await s.client.get(hash);
    if (entry === null) throw new NucleusError("the verified read found no such entry");
    if (entry.hash !== hash) throw new NucleusError(`asked for entry ${hash}, the client read entry ${entry.hash}`);
    await recordTrusted(s);
    if (mine !== generation) return;
    verified = entry;
    client.set("ok", "createClient(...).get(hash) returned it verified: it is what is shown below");
    byId("entry-record").textContent = JSON.stringify(entry.record, null, 2);
    byId("entry-fields").textContent = JSON.stringify({
      seq: entry.seq,
      hash: entry.hash,
      prev_hash: entry.prevHash,
      version: entry.version,
      appender: entry.appender,
      auth_source: entry.authSource,
      committed_at: entry.committedAt
    }, null, 2);
    setStatus(byId("entry-shown"), failed.length ? "bad" : "ok", failed.length ? "as the client's verified read returned it (but the checks above failed)" : `as the client's verified read returned it (timestamp ${formatTime(entry.record.timestamp)})`);
  } catch (err) {
    fail(client, "client read", describe(err));
  }
  const witnessed = check2("witnesses", "witness cosignatures");
  try {
    const note = checkpoint === null || s.policy === null ? null : await s.client.checkpoint(checkpoint.size);
    const result = await renderWitnesses(byId("entry-witnesses"), note, s);
    if (result.state === "bad") fail(witnessed, "witness quorum", result.text);
    else witnessed.set(result.state, result.text);
  } catch (err) {
    fail(witnessed, "witnesses", describe(err));
  }
  finish();
}
function policyWords(s) {
  const policy = s.policy;
  if (policy === null) return "";
  return `, cosigned by ${policy.quorum} of ${policy.witnesses.length} witnesses (${policyLabel(s)})`;
}
function policyLabel(s) {
  return s.policySource === "pinned" ? "your pinned witness policy" : "the witness policy the server states: its claim, with the keys it lists; pin your witnesses' keys";
}
async function renderWitnesses(into, note, s) {
  into.replaceChildren();
  const summary = (state, text) => {
    into.dataset["summary"] = text;
    into.prepend(el("p", { "data-testid": "witness-summary", class: `status ${state}` }, text));
    return { state, text };
  };
  const policy = s.policy;
  if (policy === null) {
    if (s.policySource === "none") return summary("info", "this ledger has no witnesses configured, and none are pinned here");
    return summary("bad", `no witness quorum can be checked: ${s.problems.join("; ")}`);
  }
  let listed = [];
  try {
    listed = serverWitnessesFrom(await getJson("/checkpoint/witnesses", s.token)).witnesses;
  } catch {
    listed = [];
  }
  const byKey = new Map(listed.map((w) => [String(w["vkey"]), w]));
  const rows = el("tbody");
  let cosigned = 0;
  const broken = [];
  const row = (name, state, text, status) => {
    rows.append(el(
      "tr",
      { "data-testid": "witness-row", "data-state": state },
      el("td", {}, name),
      el("td", { class: `status ${state}` }, text),
      el("td", {}, status === void 0 ? "not listed by the server" : `cosigned up to ${String(status["cosigned_size"])}`),
      el("td", {}, status?.["last_error"] ? `last error: ${String(status["last_error"])}` : "")
    ));
  };
  for (const w of policy.witnesses) {
    const status = byKey.get(w.vkey);
    const name = status === void 0 ? w.name : String(status["name"]);
    let state = "info";
    let text = "no cosignature on the checkpoint";
    if (note === null) text = "no checkpoint meeting the policy was verified";
    else {
      try {
        if (countCosignatures(note, [w]) === 1) {
          state = "ok";
          text = "cosigned the checkpoint";
          cosigned++;
        }
      } catch (err) {
        state = "bad";
        text = `its cosignature does not verify: ${err.message}`;
        broken.push(`${name}: ${text}`);
      }
    }
    row(name, state, text, status);
  }
  for (const w of listed) {
    if (!policy.witnesses.some((p) => p.vkey === String(w["vkey"]))) {
      row(String(w["name"]), "info", "listed by the server, not in the pinned policy (not counted)", w);
    }
  }
  into.append(el("table", {}, rows));
  const label = policyLabel(s);
  if (broken.length) return summary("bad", broken.join("; "));
  if (note === null || cosigned < policy.quorum) {
    return summary(
      "bad",
      `quorum not met: ${note === null ? "no verified checkpoint" : `${cosigned} of the ${policy.witnesses.length} witnesses`} cosigned, ${policy.quorum} required (${label}); ${policy.quorum - cosigned} cosignature(s) short`
    );
  }
  return summary("ok", `${cosigned} of ${policy.witnesses.length} witnesses cosigned the checkpoint (quorum ${policy.quorum}: ${label})`);
}
async function showCheckpoints() {
  const s = session;
  if (s === null) return;
  const mine = ++generation;
  const status = byId("history-status");
  const rows = byId("history-rows");
  setStatus(status, "pending", "verifying…");
  rows.replaceChildren();
  byId("latest-note").textContent = "";
  const problems = [...s.problems];
  let latest = null;
  try {
    if (!s.keys.length) throw new NucleusError("this ledger signs no checkpoints");
    const checkpoint = await s.client.refresh();
    latest = await s.client.checkpoint(checkpoint.size);
    await recordTrusted(s);
    byId("latest-note").textContent = latest;
  } catch (err) {
    problems.push(`the latest checkpoint: ${describe(err)}`);
  }
  if (mine !== generation) return;
  const history = loadHistory(s.trust);
  const verifiers = s.keys.map((key) => parseVkey(key));
  for (let i = 0; i < history.length; i++) {
    const seen = history[i];
    let text = "signed";
    let state = "ok";
    try {
      const checkpoint = verifyCheckpoint(seen.note, verifiers, s.origin);
      if (checkpoint.size !== seen.size || bytesToHex2(checkpoint.rootHash) !== seen.root) throw new Error("the note is not the one recorded");
      const before = history[i - 1];
      if (before !== void 0) {
        if (before.size > 0) {
          const doc = await getJson(`/proof/consistency?from=${before.size}&to=${seen.size}`, s.token);
          const hashes = isObject3(doc) && Array.isArray(doc["hashes"]) ? doc["hashes"].map((h) => hexToBytes2(h)) : [];
          verifyConsistency(before.size, seen.size, hexToBytes2(before.root), hexToBytes2(seen.root), hashes);
        }
        text = `signed; extends the checkpoint of ${before.size} entries`;
      }
    } catch (err) {
      state = "bad";
      text = describe(err);
      problems.push(`the checkpoint of ${seen.size} entries: ${text}`);
    }
    rows.prepend(el(
      "tr",
      { "data-testid": "history-row", "data-size": String(seen.size), "data-state": state },
      el("td", {}, String(seen.size)),
      el("td", {}, el("code", {}, seen.root)),
      el("td", {}, formatTime(seen.seen)),
      el("td", { class: `status ${state}` }, text)
    ));
  }
  try {
    const result = await renderWitnesses(byId("history-witnesses"), latest, s);
    if (result.state === "bad") problems.push(result.text);
  } catch (err) {
    problems.push(`witnesses: ${describe(err)}`);
  }
  if (mine !== generation) return;
  if (problems.length) setStatus(status, "bad", `verification FAILED: ${problems.join("; ")}`);
  else setStatus(status, "ok", `verified: ${history.length} checkpoint(s) seen by this browser, each extending the one before`);
}
async function route() {
  if (session === null) return;
  const hash = window.location.hash;
  const entry = /^#\/entry\/([0-9a-f]{64})$/.exec(hash);
  show("entries-view", !entry && hash !== "#/checkpoints");
  show("entry-view", entry !== null);
  show("checkpoints-view", hash === "#/checkpoints");
  try {
    if (entry !== null) await showEntry(entry[1]);
    else if (hash === "#/checkpoints") await showCheckpoints();
    else await showEntries();
  } catch (err) {
    const status = byId(entry !== null ? "entry-status" : hash === "#/checkpoints" ? "history-status" : "page-status");
    setStatus(status, "bad", `verification FAILED: ${describe(err)}`);
  }
}
function start() {
  show("signin", true);
  byId("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    trySignIn(byId("token").value.trim());
  });
  byId("signout").addEventListener("click", signOut);
  byId("filter-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const stream = byId("stream-filter").value.trim();
    filters = stream ? { stream } : {};
    if (window.location.hash.startsWith("#/entries") || window.location.hash === "") void showEntries();
    else window.location.hash = "#/entries";
  });
  byId("first-page").addEventListener("click", () => {
    filters = { ...filters.stream ? { stream: filters.stream } : {} };
    void showEntries();
  });
  byId("next-page").addEventListener("click", () => {
    if (nextCursor === null) return;
    filters = { ...filters, cursor: nextCursor };
    void showEntries();
  });
  byId("pin-keys").addEventListener("click", pinKeys);
  byId("unpin-keys").addEventListener("click", () => {
    localStorage.removeItem(PINNED_KEY);
    rebuildSession();
  });
  byId("pin-origin").addEventListener("click", pinOrigin);
  byId("pin-witnesses").addEventListener("click", pinWitnesses);
  byId("unpin-witnesses").addEventListener("click", () => {
    localStorage.removeItem(WITNESSES_KEY);
    rebuildSession();
  });
  byId("forget-trusted").addEventListener("click", () => {
    const s = session;
    if (s === null) return;
    localStorage.removeItem(trustedKey(s.trust));
    localStorage.removeItem(historyKey(s.trust));
    if (s.keys.length) localStorage.removeItem(identityKey(s.keys));
    rebuildSession();
  });
  window.addEventListener("hashchange", () => void route());
  byId("loading").hidden = true;
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token !== null) {
    trySignIn(token);
  }
}
start();

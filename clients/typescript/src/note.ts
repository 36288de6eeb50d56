/**
 * C2SP signed-note (Ed25519, signature type 0x01) and tlog-checkpoint, as
 * nucleus_core/tlog_verify.py checks them: verifier keys `<name>+<key ID hex>+<base64(0x01 ||
 * public key)>`, the text split from the signatures at the last blank line, lines from untrusted
 * keys ignored, a trusted key's failing signature refusing the note. Every refusal is a
 * {@link NoteError}.
 */

import { ed25519 } from "@noble/curves/ed25519.js";
import { sha256 } from "@noble/hashes/sha2.js";

import { base64DecodeStrict, concatBytes, utf8 } from "./bytes.js";
import { EMPTY_ROOT, HASH_SIZE } from "./merkle.js";
import { equalBytes } from "./bytes.js";

export class NoteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NoteError";
  }
}

export interface NoteVerifier {
  name: string;
  keyId: number;
  publicKey: Uint8Array;
  vkey: string;
}

export interface NoteSignature {
  name: string;
  keyId: number;
  signature: Uint8Array;
}

export interface Checkpoint {
  origin: string;
  size: number;
  rootHash: Uint8Array;
  extensions: string[];
}

const EM_DASH_PREFIX = "\u2014 ";
const CONTROL = /[\u0000-\u0009\u000b-\u001f]/;
const DECIMAL = /^(0|[1-9][0-9]*)$/;
const KEY_ID_HEX = /^[0-9a-f]{8}$/;
const MAX_SIGNATURES = 100;
const MAX_NOTE_BYTES = 1_000_000;

function validKeyName(name: string): boolean {
  return name !== "" && !name.includes("+") && !/\s/u.test(name);
}

/** The signed-note key ID: the first 4 bytes, big-endian, of SHA-256(name || 0x0A || key material). */
export function keyId(name: string, material: Uint8Array): number {
  const digest = sha256(concatBytes([utf8(name), new Uint8Array([0x0a]), material]));
  return new DataView(digest.buffer, digest.byteOffset).getUint32(0);
}

/** Split a verifier key into name, key ID and key material (type byte first), the key ID checked. */
export function splitVkey(vkey: string): { name: string; keyId: number; material: Uint8Array } {
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

/** Parse an Ed25519 verifier key; NoteError when it is malformed or its key ID does not match. */
export function parseVkey(vkey: string): NoteVerifier {
  const { name, keyId: id, material } = splitVkey(vkey);
  if (material.length !== 33 || material[0] !== 0x01) {
    throw new NoteError("the verifier key is not an Ed25519 note key (type 0x01, 32 bytes)");
  }
  return { name, keyId: id, publicKey: material.slice(1), vkey };
}

/** Ed25519 verification as the Python code does it (RFC 8032, not ZIP 215); false on any error. */
export function ed25519Verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  try {
    return signature.length === 64 && ed25519.verify(signature, message, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

function parseSignatureLines(block: string): NoteSignature[] {
  const lines = block.slice(0, -1).split("\n");
  if (lines.length > MAX_SIGNATURES) throw new NoteError(`there are more than ${MAX_SIGNATURES} signatures`);
  return lines.map((line, i) => {
    const number = i + 1;
    if (!line.startsWith(EM_DASH_PREFIX)) {
      throw new NoteError(`signature line ${number} does not start with an em dash (U+2014) and a space`);
    }
    const rest = line.slice(EM_DASH_PREFIX.length);
    const space = rest.indexOf(" ");
    const name = space < 0 ? rest : rest.slice(0, space);
    const b64 = space < 0 ? "" : rest.slice(space + 1);
    if (space < 0 || !validKeyName(name) || !b64) {
      throw new NoteError(`signature line ${number} is not '\u2014 <key name> <base64 signature>'`);
    }
    const blob = base64DecodeStrict(b64);
    if (blob === null) throw new NoteError(`the signature on line ${number} is not canonical base64`);
    if (blob.length < 5) throw new NoteError(`the signature on line ${number} is shorter than a key ID and one byte`);
    return { name, keyId: new DataView(blob.buffer).getUint32(0), signature: blob.slice(4) };
  });
}

/** Split a signed note into its text (final newline included) and signature lines. */
export function parseNote(note: string): { text: string; signatures: NoteSignature[] } {
  if (typeof note !== "string") throw new NoteError("a note is text");
  if (utf8(note).length > MAX_NOTE_BYTES) throw new NoteError(`the note is larger than ${MAX_NOTE_BYTES} bytes`);
  if (/[\uD800-\uDFFF]/.test(note.replace(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g, ""))) {
    throw new NoteError("the note is not valid UTF-8 (a lone surrogate)");
  }
  if (CONTROL.test(note)) throw new NoteError("the note holds a control character other than newline (a CR, a tab...)");
  const split = note.lastIndexOf("\n\n");
  if (split < 0) throw new NoteError("no blank line separates the note's text from its signatures");
  const text = note.slice(0, split + 1);
  const block = note.slice(split + 2);
  if (!block) throw new NoteError("the note has no signature lines");
  if (!block.endsWith("\n")) throw new NoteError("the note's last signature line does not end with a newline");
  return { text, signatures: parseSignatureLines(block) };
}

/** Verify `note` with the trusted `verifiers`; returns its text once a trusted key's signature verified. */
export function verifyNote(note: string, verifiers: readonly NoteVerifier[]): string {
  const trusted = new Map<string, NoteVerifier>();
  for (const v of verifiers) {
    const key = `${v.name}+${v.keyId}`;
    const known = trusted.get(key);
    if (known !== undefined && !equalBytes(known.publicKey, v.publicKey)) {
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
    if (known === undefined) continue;
    if (!ed25519Verify(sig.signature, message, known.publicKey)) {
      throw new NoteError(
        `the signature of the trusted key ${sig.name}+${sig.keyId.toString(16).padStart(8, "0")} does not verify`,
      );
    }
    verified++;
  }
  if (!verified) throw new NoteError("no trusted key signed the note");
  return parsed.text;
}

/** Parse a checkpoint's note text (c2sp.org/tlog-checkpoint), strictly. */
export function parseCheckpoint(text: string): Checkpoint {
  if (!text.endsWith("\n")) throw new NoteError("a checkpoint text ends with a newline");
  const [origin, sizeLine, rootLine, ...extensions] = text.slice(0, -1).split("\n");
  if (origin === undefined || sizeLine === undefined || rootLine === undefined) {
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

/** Verify a signed checkpoint with `verifiers` and parse it; with `origin`, it must be that log's. */
export function verifyCheckpoint(note: string, verifiers: readonly NoteVerifier[], origin?: string): Checkpoint {
  const checkpoint = parseCheckpoint(verifyNote(note, verifiers));
  if (origin !== undefined && checkpoint.origin !== origin) {
    throw new NoteError(`the checkpoint is for the log ${JSON.stringify(checkpoint.origin)}, not ${JSON.stringify(origin)}`);
  }
  return checkpoint;
}

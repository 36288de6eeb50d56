/**
 * Witness cosignatures (c2sp.org/tlog-cosignature, Ed25519 `cosignature/v1`, type 0x04) and the
 * k-of-n witness policy, as nucleus_core/cosignature.py checks them: a trusted witness's line must
 * be a valid cosignature of the note's text (else the note is refused), other lines are ignored,
 * and at least `quorum` distinct trusted witnesses must have cosigned.
 */

import { utf8 } from "./bytes.js";
import { ed25519Verify, NoteError, parseNote, splitVkey } from "./note.js";

export interface CosignatureVerifier {
  name: string;
  keyId: number;
  publicKey: Uint8Array;
  vkey: string;
}

const MAX_TIMESTAMP = 2n ** 63n - 1n;

/** Parse a witness's verifier key `<name>+<key ID hex>+<base64(0x04 || public key)>`. */
export function parseCosignatureVkey(vkey: string): CosignatureVerifier {
  const { name, keyId, material } = splitVkey(vkey);
  if (material.length !== 33 || material[0] !== 0x04) {
    throw new NoteError(
      "the verifier key is not an Ed25519 cosignature key (type 0x04, 32 bytes): a witness's key, not a log's (type 0x01)",
    );
  }
  return { name, keyId, publicKey: material.slice(1), vkey };
}

/** How many distinct trusted `witnesses` validly cosigned `note`; NoteError when a trusted line fails. */
export function countCosignatures(note: string, witnesses: readonly CosignatureVerifier[]): number {
  const trusted = new Map(witnesses.map((w) => [`${w.name}+${w.keyId}`, w]));
  const parsed = parseNote(note);
  const found = new Set<string>();
  for (const line of parsed.signatures) {
    const key = `${line.name}+${line.keyId}`;
    const witness = trusted.get(key);
    if (witness === undefined) continue;
    if (line.signature.length !== 72) {
      throw new NoteError(
        `the cosignature of ${key} is not 72 bytes (a timestamp and an Ed25519 signature)`,
      );
    }
    const view = new DataView(line.signature.buffer, line.signature.byteOffset);
    const timestamp = view.getBigUint64(0);
    if (timestamp > MAX_TIMESTAMP) throw new NoteError(`the cosignature of ${key} has a timestamp above 2^63-1`);
    const message = utf8(`cosignature/v1\ntime ${timestamp}\n${parsed.text}`);
    if (!ed25519Verify(line.signature.subarray(8), message, witness.publicKey)) {
      throw new NoteError(`the cosignature of the trusted witness ${witness.vkey} does not verify`);
    }
    found.add(key);
  }
  return found.size;
}

/** A "`quorum` of these `witnesses`" policy: a checkpoint needs that many distinct valid cosignatures. */
export class CosignaturePolicy {
  readonly quorum: number;
  readonly witnesses: readonly CosignatureVerifier[];

  constructor(quorum: number, witnesses: readonly CosignatureVerifier[]) {
    const names = new Set(witnesses.map((w) => `${w.name}+${w.keyId}`));
    if (names.size !== witnesses.length) throw new NoteError("two trusted witness keys have one name and key ID");
    const keys = new Set(witnesses.map((w) => Array.from(w.publicKey).join(",")));
    if (keys.size !== witnesses.length) {
      throw new NoteError("two trusted witnesses share one public key (tlog-cosignature: one key per witness)");
    }
    if (!Number.isInteger(quorum) || quorum < 1 || quorum > witnesses.length) {
      throw new NoteError(
        `a cosignature policy requires from 1 to ${witnesses.length} (the witnesses listed) cosignatures, not ${quorum}`,
      );
    }
    this.quorum = quorum;
    this.witnesses = witnesses;
  }

  /** The policy over the witnesses with these verifier keys. */
  static fromVkeys(quorum: number, vkeys: readonly string[]): CosignaturePolicy {
    return new CosignaturePolicy(quorum, vkeys.map(parseCosignatureVkey));
  }

  /** How many of the policy's witnesses cosigned `note`; NoteError when fewer than the quorum or a line fails. */
  check(note: string): number {
    const found = countCosignatures(note, this.witnesses);
    if (found < this.quorum) {
      throw new NoteError(
        `the checkpoint carries valid cosignatures by ${found} of the ${this.witnesses.length} trusted witnesses; the ` +
        `policy requires ${this.quorum}`,
      );
    }
    return found;
  }
}

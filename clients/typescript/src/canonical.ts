/**
 * RFC 8785 (JSON Canonicalization Scheme) of I-JSON values, as docs/FORMAT.md section 2 fixes it:
 * members sorted by UTF-16 code units, no whitespace, ECMAScript number forms, strings escaped as
 * JSON.stringify does (which is RFC 8785's rule), lone surrogates and non-finite numbers refused.
 */

import { ValidationError } from "./errors.js";

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const MAX_DEPTH = 200;

function encodeString(value: string): string {
  if (LONE_SURROGATE.test(value)) {
    throw new ValidationError("a string holds a lone surrogate (not I-JSON)", { field: "record" });
  }
  return JSON.stringify(value);
}

function encode(value: unknown, depth: number, out: string[]): void {
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
    const obj = value as Record<string, unknown>;
    // Array.prototype.sort compares strings by UTF-16 code units: RFC 8785's order.
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

/** The RFC 8785 canonical text of `value`. */
export function canonicalize(value: unknown): string {
  const out: string[] = [];
  encode(value, 0, out);
  return out.join("");
}

const encoder = new TextEncoder();

/** The RFC 8785 canonical UTF-8 bytes of `value`. */
export function canonicalBytes(value: unknown): Uint8Array {
  return encoder.encode(canonicalize(value));
}

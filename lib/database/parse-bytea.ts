/** The type oid of `bytea`. */
export const BYTEA_OID = 17;

/**
 * A `bytea` column's text form as bytes: the hex form (`\x0a1b...`, PostgreSQL's default
 * `bytea_output`) decoded natively, the escape form (`bytea_output = escape`) byte by byte.
 */
export function parseBytea(text: string): Uint8Array {
  if (text.startsWith('\\x')) {
    const b = Buffer.from(text.slice(2), 'hex');
    return new Uint8Array(b.buffer, b.byteOffset, b.length);
  }
  const out: number[] = [];
  for (let i = 0; i < text.length; i++) {
    if (text[i] !== '\\') out.push(text.charCodeAt(i));
    else if (text[i + 1] === '\\') {
      out.push(0x5c);
      i++;
    } else {
      out.push(Number.parseInt(text.slice(i + 1, i + 4), 8));
      i += 3;
    }
  }
  return Uint8Array.from(out);
}

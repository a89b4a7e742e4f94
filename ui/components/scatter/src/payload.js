// The payload Python sends (gallery_core/app/scatter_payload.py writes it; keep the two in step):
//
//   bytes 0-3   "GCS1" (magic and version)
//   bytes 4-7   header length H, uint32 little-endian
//   bytes 8..   the header, H bytes of UTF-8 JSON
//   then        each blob the header lists in "blobs" ([{key, dtype, offset, length}]), at `offset` bytes from
//               the start of the payload, 8-byte aligned, raw little-endian values
//
// Blobs are named by a content key, so a blob the browser already holds is never sent again: the header
// names the blobs the map needs (coordinates, colour column, visibility mask, selection) and carries only
// those Python has not sent to this browser session before.

const MAGIC = "GCS1";
const TYPES = { float32: Float32Array, uint8: Uint8Array, uint16: Uint16Array, uint32: Uint32Array };

export function decodePayload(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = String.fromCharCode(bytes[0], bytes[1], bytes[2], bytes[3]);
  if (magic !== MAGIC) {
    throw new Error(`scatter payload: bad magic ${JSON.stringify(magic)}`);
  }
  const headerLength = view.getUint32(4, true);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
  const blobs = new Map();
  for (const blob of header.blobs || []) {
    const Type = TYPES[blob.dtype];
    if (!Type) {
      throw new Error(`scatter payload: unknown dtype ${blob.dtype}`);
    }
    const start = bytes.byteOffset + blob.offset;
    // A typed array needs an offset aligned to its element size; the protobuf decoder's buffer may not be:
    // copy then (once per blob, at most a few MB).
    const array = start % Type.BYTES_PER_ELEMENT === 0
      ? new Type(bytes.buffer, start, blob.length)
      : new Type(bytes.slice(blob.offset, blob.offset + blob.length * Type.BYTES_PER_ELEMENT).buffer);
    blobs.set(blob.key, array);
  }
  return { header, blobs };
}

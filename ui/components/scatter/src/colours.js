// Point colours from the colour column Python sends: a code per point and the legend's colours for
// categories, a float32 value per point and a colour scale for numbers (NaN: missing, grey).
// A colour is one uint32 holding the RGBA bytes as they lie in memory (little-endian: red in the low byte),
// so a point's colour is one read and one write, into a deck.gl attribute or a canvas's pixels.

const LUT_SIZE = 256;

export function packRgb([r, g, b]) {
  return ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0;
}

// The colour of a point outside a selection: the same colour, drawn at `alpha` (0-255) opacity.
export function faded(colour, alpha) {
  return ((colour & 0x00ffffff) | (alpha << 24)) >>> 0;
}

function scaleLut(stops) {
  // stops: [[t, [r, g, b]], ...] with t from 0 to 1, as plotly's colour scales are written
  const lut = new Uint32Array(LUT_SIZE);
  for (let i = 0; i < LUT_SIZE; i++) {
    const t = i / (LUT_SIZE - 1);
    let k = 0;
    while (k < stops.length - 2 && stops[k + 1][0] < t) k++;
    const [t0, c0] = stops[k];
    const [t1, c1] = stops[Math.min(k + 1, stops.length - 1)];
    const f = t1 > t0 ? Math.min(1, Math.max(0, (t - t0) / (t1 - t0))) : 0;
    lut[i] = packRgb([0, 1, 2].map((ch) => Math.round(c0[ch] + f * (c1[ch] - c0[ch]))));
  }
  return lut;
}

// The colour of every point (one uint32 each, opaque) for a colour column: computed once per colour option
// received, whatever the selection (a point outside it is faded as it is drawn).
export function pointColours(spec, values) {
  const n = values.length;
  const out = new Uint32Array(n);
  const grey = packRgb(spec.missing_colour);
  if (spec.kind === "category") {
    const palette = Uint32Array.from(spec.legend, (entry) => packRgb(entry.colour));
    for (let k = 0; k < n; k++) {
      const v = values[k];
      out[k] = v < palette.length ? palette[v] : grey;
    }
    return out;
  }
  const lut = scaleLut(spec.scale);
  const [lo, hi] = spec.domain;
  const span = hi > lo ? hi - lo : 1;
  for (let k = 0; k < n; k++) {
    const v = values[k];
    out[k] = Number.isNaN(v) ? grey : lut[Math.max(0, Math.min(LUT_SIZE - 1, Math.round(((v - lo) / span) * (LUT_SIZE - 1))))];
  }
  return out;
}

export function gradientCss(stops) {
  return `linear-gradient(to right, ${stops.map(([t, [r, g, b]]) => `rgb(${r},${g},${b}) ${t * 100}%`).join(", ")})`;
}

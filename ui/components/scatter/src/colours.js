// Point colours from the colour column Python sends: a code per point and the legend's colours for
// categories, a float32 value per point and a colour scale for numbers (NaN: missing, grey).

const LUT_SIZE = 256;

function scaleLut(stops) {
  // stops: [[t, [r, g, b]], ...] with t from 0 to 1, as plotly's colour scales are written
  const lut = new Uint8Array(LUT_SIZE * 3);
  for (let i = 0; i < LUT_SIZE; i++) {
    const t = i / (LUT_SIZE - 1);
    let k = 0;
    while (k < stops.length - 2 && stops[k + 1][0] < t) k++;
    const [t0, c0] = stops[k];
    const [t1, c1] = stops[Math.min(k + 1, stops.length - 1)];
    const f = t1 > t0 ? Math.min(1, Math.max(0, (t - t0) / (t1 - t0))) : 0;
    for (let ch = 0; ch < 3; ch++) lut[3 * i + ch] = Math.round(c0[ch] + f * (c1[ch] - c0[ch]));
  }
  return lut;
}

// RGBA of the drawn points. `rows`: the drawn rows (null: every row, in order); `selected`: 0/1 per row or
// null (no selection: every point opaque; with one, the others stay drawn, faded).
export function pointColours(spec, values, rows, selected, fadedAlpha) {
  const n = rows ? rows.length : values.length;
  const out = new Uint8Array(4 * n);
  const grey = spec.missing_colour;
  const categorical = spec.kind === "category";
  const legend = categorical ? spec.legend.map((entry) => entry.colour) : null;
  const lut = categorical ? null : scaleLut(spec.scale);
  const [lo, hi] = categorical ? [0, 1] : spec.domain;
  const span = hi > lo ? hi - lo : 1;
  for (let k = 0; k < n; k++) {
    const row = rows ? rows[k] : k;
    const v = values[row];
    let r, g, b;
    if (categorical) {
      [r, g, b] = legend[v] || grey;
    } else if (Number.isNaN(v)) {
      [r, g, b] = grey;
    } else {
      const i = Math.max(0, Math.min(LUT_SIZE - 1, Math.round(((v - lo) / span) * (LUT_SIZE - 1))));
      r = lut[3 * i];
      g = lut[3 * i + 1];
      b = lut[3 * i + 2];
    }
    out[4 * k] = r;
    out[4 * k + 1] = g;
    out[4 * k + 2] = b;
    out[4 * k + 3] = selected && !selected[row] ? fadedAlpha : 255;
  }
  return out;
}

export function gradientCss(stops) {
  return `linear-gradient(to right, ${stops.map(([t, [r, g, b]]) => `rgb(${r},${g},${b}) ${t * 100}%`).join(", ")})`;
}

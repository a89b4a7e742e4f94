// The dense views' drawing (src/index.js, level of detail): every row in view as a square of its colour, the
// size of its WebGL point, written into a canvas's pixels on the CPU; a selection's points written last, on
// top, the others faded.

import { faded } from "./colours.js";

// pixels: the canvas's Uint32Array (width x height, zeroed); rows: the rows in view (ascending is fastest);
// colours: a uint32 per row (colours.js); selected: 0/1 per row or null; [left, top]: the view's top-left
// corner in data units; scale: pixels per data unit; size: the square's side in pixels.
export function rasterise({ pixels, width, height, xy, rows, colours, selected, fadedAlpha, left, top, scale, size }) {
  const half = size / 2;
  const paint = (row, colour) => {
    const px = Math.floor((xy[2 * row] - left) * scale - half + 0.5);
    const py = Math.floor((top - xy[2 * row + 1]) * scale - half + 0.5);
    if (px >= 0 && py >= 0 && px + size <= width && py + size <= height) {
      for (let dy = 0, at = py * width + px; dy < size; dy++, at += width) {
        for (let dx = 0; dx < size; dx++) pixels[at + dx] = colour;
      }
      return;
    }
    for (let dy = 0; dy < size; dy++) { // a square across the canvas's edge: only its part inside
      const y = py + dy;
      if (y < 0 || y >= height) continue;
      for (let dx = 0; dx < size; dx++) {
        const x = px + dx;
        if (x >= 0 && x < width) pixels[y * width + x] = colour;
      }
    }
  };
  const n = rows.length;
  if (!selected) {
    for (let k = 0; k < n; k++) paint(rows[k], colours[rows[k]]);
    return;
  }
  for (let k = 0; k < n; k++) {
    const row = rows[k];
    if (!selected[row]) paint(row, faded(colours[row], fadedAlpha));
  }
  for (let k = 0; k < n; k++) {
    const row = rows[k];
    if (selected[row]) paint(row, colours[row]);
  }
}

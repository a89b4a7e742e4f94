// Points on the CPU: a uniform grid over the coordinates (for the point under the cursor without a GPU
// picking pass, which redraws every point in software WebGL), and the box/lasso membership tests.
// The membership tests are the ones gallery_core/app/map_selection.py runs on the server, written the same
// way in float64, so the highlight drawn at once and the ids Python selects agree point for point.

const GRID = 256; // cells per side: ~15 points per cell at 1M listings

export function buildGrid(xy, n) {
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let i = 0; i < n; i++) {
    const x = xy[2 * i], y = xy[2 * i + 1];
    if (x < x0) x0 = x;
    if (x > x1) x1 = x;
    if (y < y0) y0 = y;
    if (y > y1) y1 = y;
  }
  if (!(n > 0)) {
    x0 = y0 = 0;
    x1 = y1 = 1;
  }
  const sx = GRID / (x1 - x0 || 1), sy = GRID / (y1 - y0 || 1);
  const cellOf = new Uint32Array(n);
  const starts = new Uint32Array(GRID * GRID + 1);
  for (let i = 0; i < n; i++) {
    const cx = Math.min(GRID - 1, Math.floor((xy[2 * i] - x0) * sx));
    const cy = Math.min(GRID - 1, Math.floor((xy[2 * i + 1] - y0) * sy));
    const cell = cy * GRID + cx;
    cellOf[i] = cell;
    starts[cell + 1]++;
  }
  for (let c = 0; c < GRID * GRID; c++) starts[c + 1] += starts[c];
  const fill = starts.slice(0, GRID * GRID);
  const order = new Uint32Array(n); // rows sorted by cell (a counting sort)
  for (let i = 0; i < n; i++) order[fill[cellOf[i]]++] = i;
  return { xy, n, x0, x1, y0, y1, sx, sy, starts, order };
}

function cellRange(grid, lo, hi, origin, scale) {
  const a = Math.max(0, Math.floor((lo - origin) * scale));
  const b = Math.min(GRID - 1, Math.floor((hi - origin) * scale));
  return [a, b];
}

// The visible row nearest to (x, y) within `radius` (data units), or -1.
export function nearest(grid, visible, x, y, radius) {
  if (!Number.isFinite(radius)) radius = Math.max(grid.x1 - grid.x0, grid.y1 - grid.y0) * 2 + 1; // anywhere
  const [ax, bx] = cellRange(grid, x - radius, x + radius, grid.x0, grid.sx);
  const [ay, by] = cellRange(grid, y - radius, y + radius, grid.y0, grid.sy);
  let best = -1, bestD = radius * radius;
  for (let cy = ay; cy <= by; cy++) {
    for (let cx = ax; cx <= bx; cx++) {
      const cell = cy * GRID + cx;
      for (let k = grid.starts[cell]; k < grid.starts[cell + 1]; k++) {
        const row = grid.order[k];
        if (visible && !visible[row]) continue;
        const dx = grid.xy[2 * row] - x, dy = grid.xy[2 * row + 1] - y;
        const d = dx * dx + dy * dy;
        if (d <= bestD) {
          bestD = d;
          best = row;
        }
      }
    }
  }
  return best;
}

// The visible rows inside the view [left, bottom, right, top] (what is drawn: grid cells outside are skipped).
export function rowsInView(grid, visible, [left, bottom, right, top]) {
  const out = new Uint32Array(grid.n);
  let k = 0;
  const [ax, bx] = cellRange(grid, left, right, grid.x0, grid.sx);
  const [ay, by] = cellRange(grid, bottom, top, grid.y0, grid.sy);
  for (let cy = ay; cy <= by; cy++) {
    for (let cx = ax; cx <= bx; cx++) {
      const cell = cy * GRID + cx;
      for (let i = grid.starts[cell]; i < grid.starts[cell + 1]; i++) {
        const row = grid.order[i];
        if (visible && !visible[row]) continue;
        const x = grid.xy[2 * row], y = grid.xy[2 * row + 1];
        if (x >= left && x <= right && y >= bottom && y <= top) out[k++] = row;
      }
    }
  }
  return out.subarray(0, k);
}

// Even-odd rule, as map_selection.points_in_polygon computes it.
function inPolygon(polygon, px, py) {
  let inside = false;
  for (let i = 0, j = polygon.length - 1; i < polygon.length; j = i++) {
    const [xi, yi] = polygon[i];
    const [xj, yj] = polygon[j];
    if ((yi > py) !== (yj > py) && px < ((xj - xi) * (py - yi)) / (yj - yi) + xi) {
      inside = !inside;
    }
  }
  return inside;
}

// Rows inside a selection ({mode: "box", box: [x0, y0, x1, y1]} or {mode: "lasso", polygon}) as a 0/1 mask.
export function selectionMask(grid, visible, selection) {
  const mask = new Uint8Array(grid.n);
  let bx0, bx1, by0, by1;
  if (selection.mode === "box") {
    [bx0, by0, bx1, by1] = selection.box;
  } else {
    const xs = selection.polygon.map((p) => p[0]), ys = selection.polygon.map((p) => p[1]);
    [bx0, bx1, by0, by1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  }
  const [ax, bx] = cellRange(grid, bx0, bx1, grid.x0, grid.sx);
  const [ay, by] = cellRange(grid, by0, by1, grid.y0, grid.sy);
  for (let cy = ay; cy <= by; cy++) {
    for (let cx = ax; cx <= bx; cx++) {
      const cell = cy * GRID + cx;
      for (let k = grid.starts[cell]; k < grid.starts[cell + 1]; k++) {
        const row = grid.order[k];
        if (visible && !visible[row]) continue;
        const x = grid.xy[2 * row], y = grid.xy[2 * row + 1];
        if (x < bx0 || x > bx1 || y < by0 || y > by1) continue;
        if (selection.mode === "box" || inPolygon(selection.polygon, x, y)) mask[row] = 1;
      }
    }
  }
  return mask;
}

export function unpackBits(packed, n) {
  // numpy.packbits order: the first row in the most significant bit of the first byte
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (packed[i >> 3] >> (7 - (i & 7))) & 1;
  return out;
}

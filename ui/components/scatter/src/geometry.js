// Points on the CPU: a uniform grid over the coordinates (for the point under the cursor without a GPU
// picking pass, which redraws every point in software WebGL), the rows in a box (the view, a box selection)
// and the box/lasso membership tests.
// The membership tests are the ones gallery_core/app/map_selection.py runs on the server, written the same
// way in float64, so the highlight drawn at once and the ids Python selects agree point for point.

const GRID = 256; // cells per side: ~15 points per cell at 1M listings
// Reading rows in the grid's order jumps about the coordinate and colour arrays; reading them in row order
// streams them, several times faster per row (1M rows in grid order: ~1.3 s, in row order: ~0.15 s, on the
// loaded 2-core machine). So a box whose grid cells hold more than this share of the rows is scanned row by row.
const GATHER_SHARE = 0.25;
const BANDS = 256; // a lasso's edges are filed by horizontal band: a point is tested against its band's only

// The coordinates' bounds at once (what fitting the view needs); the grid's cells on first use (hover, a view or
// a box smaller than the map): a million points' first draw, zoomed out, needs no cells.
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
  return { xy, n, x0, x1, y0, y1, sx: GRID / (x1 - x0 || 1), sy: GRID / (y1 - y0 || 1), starts: null, order: null };
}

function buildCells(grid) {
  const { xy, n, x0, y0, sx, sy } = grid;
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
  grid.starts = starts;
  grid.order = order;
}

function cellRange(lo, hi, origin, scale) {
  const a = Math.max(0, Math.floor((lo - origin) * scale));
  const b = Math.min(GRID - 1, Math.floor((hi - origin) * scale));
  return [a, b];
}

// The grid cells a box [x0, y0, x1, y1] overlaps: every point inside the box is in one of them (the cell of a
// point and the range of a box come from the same monotonic arithmetic).
function cellsOf(grid, [x0, y0, x1, y1]) {
  if (grid.starts === null) buildCells(grid);
  const [ax, bx] = cellRange(x0, x1, grid.x0, grid.sx);
  const [ay, by] = cellRange(y0, y1, grid.y0, grid.sy);
  let held = 0; // how many rows those cells hold: a row of cells is one run of `order`
  for (let cy = ay; cy <= by && ax <= bx; cy++) held += grid.starts[cy * GRID + bx + 1] - grid.starts[cy * GRID + ax];
  return { ax, bx, ay, by, held };
}

// The visible rows inside the closed box [x0, y0, x1, y1] that pass `keep(x, y)` (when given): gathered from
// the box's grid cells when they hold few rows, else found by a scan of every row in order (then ascending).
export function rowsInBox(grid, visible, box, keep = null) {
  const { xy, n } = grid;
  const [x0, y0, x1, y1] = box;
  const whole = x0 <= grid.x0 && y0 <= grid.y0 && x1 >= grid.x1 && y1 >= grid.y1; // e.g. the fitted view
  const cells = whole ? null : cellsOf(grid, box);
  const gather = cells !== null && cells.held < GATHER_SHARE * n;
  const out = new Uint32Array(gather ? cells.held : n);
  let k = 0;
  const consider = (row) => {
    if (visible && !visible[row]) return;
    const x = xy[2 * row], y = xy[2 * row + 1];
    if (x < x0 || x > x1 || y < y0 || y > y1) return;
    if (keep === null || keep(x, y)) out[k++] = row;
  };
  if (gather) {
    const { starts, order } = grid;
    for (let cy = cells.ay; cy <= cells.by && cells.ax <= cells.bx; cy++) {
      const end = starts[cy * GRID + cells.bx + 1];
      for (let i = starts[cy * GRID + cells.ax]; i < end; i++) consider(order[i]);
    }
  } else {
    for (let row = 0; row < n; row++) consider(row);
  }
  return out.subarray(0, k);
}

// The visible row nearest to (x, y) within `radius` (data units), or -1.
export function nearest(grid, visible, x, y, radius) {
  if (!Number.isFinite(radius)) radius = Math.max(grid.x1 - grid.x0, grid.y1 - grid.y0) * 2 + 1; // anywhere
  const { ax, bx, ay, by } = cellsOf(grid, [x - radius, y - radius, x + radius, y + radius]);
  const { starts, order, xy } = grid;
  let best = -1, bestD = radius * radius;
  for (let cy = ay; cy <= by && ax <= bx; cy++) {
    const end = starts[cy * GRID + bx + 1];
    for (let k = starts[cy * GRID + ax]; k < end; k++) {
      const row = order[k];
      if (visible && !visible[row]) continue;
      const dx = xy[2 * row] - x, dy = xy[2 * row + 1] - y;
      const d = dx * dx + dy * dy;
      if (d <= bestD) {
        bestD = d;
        best = row;
      }
    }
  }
  return best;
}

// A lasso's edges filed by horizontal band. An edge can flip a point only when min(yi, yj) <= y < max(yi, yj)
// (the even-odd test's first condition); the band of a y is monotonic in y, so such an edge is filed under
// the point's band, and a point need only be tested against its band's edges: the same result as all of them.
function edgeBands(polygon, y0, y1) {
  const scale = BANDS / (y1 - y0 || 1);
  const bandOf = (y) => Math.min(BANDS - 1, Math.max(0, Math.floor((y - y0) * scale)));
  const bands = Array.from({ length: BANDS }, () => []);
  for (let i = 0, j = polygon.length - 1; i < polygon.length; j = i++) {
    const [xi, yi] = polygon[i];
    const [xj, yj] = polygon[j];
    if (yi === yj) continue; // a horizontal edge never flips a point
    for (let b = bandOf(Math.min(yi, yj)); b <= bandOf(Math.max(yi, yj)); b++) bands[b].push(xi, yi, xj, yj);
  }
  return { bandOf, bands: bands.map((edges) => Float64Array.from(edges)) };
}

// Even-odd rule, as map_selection.points_in_polygon computes it (the same expression, in float64).
function inPolygon({ bandOf, bands }, px, py) {
  const edges = bands[bandOf(py)];
  let inside = false;
  for (let e = 0; e < edges.length; e += 4) {
    const xi = edges[e], yi = edges[e + 1], xj = edges[e + 2], yj = edges[e + 3];
    if ((yi > py) !== (yj > py) && px < ((xj - xi) * (py - yi)) / (yj - yi) + xi) {
      inside = !inside;
    }
  }
  return inside;
}

// The rows inside a selection ({mode: "box", box: [x0, y0, x1, y1]} or {mode: "lasso", polygon}) among the
// visible ones: a 0/1 mask and how many.
export function selectionMask(grid, visible, selection) {
  let rows;
  if (selection.mode === "box") {
    rows = rowsInBox(grid, visible, selection.box);
  } else {
    let bx0 = Infinity, by0 = Infinity, bx1 = -Infinity, by1 = -Infinity;
    for (const [x, y] of selection.polygon) {
      bx0 = Math.min(bx0, x);
      bx1 = Math.max(bx1, x);
      by0 = Math.min(by0, y);
      by1 = Math.max(by1, y);
    }
    const bands = edgeBands(selection.polygon, by0, by1);
    rows = rowsInBox(grid, visible, [bx0, by0, bx1, by1], (x, y) => inPolygon(bands, x, y));
  }
  const mask = new Uint8Array(grid.n);
  for (let k = 0; k < rows.length; k++) mask[rows[k]] = 1;
  return { mask, count: rows.length };
}

export function unpackBits(packed, n) {
  // numpy.packbits order: the first row in the most significant bit of the first byte
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (packed[i >> 3] >> (7 - (i & 7))) & 1;
  return out;
}

export function countOnes(mask) {
  let count = 0;
  for (let i = 0; i < mask.length; i++) count += mask[i];
  return count;
}

export function sameMask(a, b) {
  if (a === b) return true;
  if (!a || !b || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

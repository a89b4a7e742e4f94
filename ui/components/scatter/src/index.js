// The Map page's WebGL scatter (ui/scatter_map.py mounts it with st.components.v2): every listing drawn by
// deck.gl's ScatterplotLayer from binary attributes, box and lasso selection reported to Python as
// geometry (Python selects the ids), a legend, pan/zoom and a keyboard-reachable reset.
//
// Streamlit imports this module once per page load and calls its default export again whenever the
// component's data changes; the Deck and everything received (coordinates, colour columns, masks) live at
// module level so that a rerun, or leaving the page and coming back, does not rebuild or resend them.

import { Deck, OrthographicView } from "@deck.gl/core";
import { ScatterplotLayer } from "@deck.gl/layers";

import { gradientCss, pointColours } from "./colours.js";
import { buildGrid, nearest, rowsInView, selectionMask, unpackBits } from "./geometry.js";
import { decodePayload } from "./payload.js";

const HOVER_RADIUS_PX = 6; // a point counts as hovered within this many pixels of the cursor
const CLICK_PX = 4; // a drag shorter than this is a click
const LASSO_STEP_PX = 3; // lasso vertices at least this far apart
const FADED_ALPHA = 64; // points outside a selection stay drawn at a quarter opacity (as plotly's map did)
const HOVER_EVENT = "gallery-core-scatter-hover"; // ui/components/scatter/hover.js listens to it

const map = {
  blobs: new Map(), // content key -> typed array, for the current coordinates
  coordsKey: null,
  grid: null, // geometry.buildGrid of the coordinates
  header: null, // the latest payload's header
  visible: null, // 0/1 per row (null: every row visible)
  colours: null, // RGBA of every row (colour column and selection applied)
  raster: null, // the 2D canvas the dense views are drawn into
  pending: false, // a redraw for a view change is scheduled
  selected: null, // 0/1 per row, or null: no selection
  report: null, // the current mount's setStateValue
  deck: null,
  plot: null, // the element the deck draws into
  viewState: null,
  fitted: null, // the coordinates key the view was last fitted to
  mode: "box",
  drag: null, // a box or lasso being drawn
  hovered: -1,
  nonce: 0,
  // what tests and benchmarks read (window.galleryCoreScatter): what is drawn, and when
  stats: { points: 0, colourKey: null, maskKey: null, selectionKey: null, selected: 0, version: 0,
    renderedVersion: -1, renders: 0, lod: "points", webgl2: null, error: null,
    // milliseconds (performance.now()) of the last data received, prepared and drawn: where a wait goes
    receivedAt: 0, preparedAt: 0, renderedAt: 0 },
};
window.galleryCoreScatter = map.stats;

// For profiling: frames per second of the page while idle, then while the deck redraws every frame.
map.stats.frameRates = (ms) => new Promise((done) => {
  const count = (redraw, then) => {
    let frames = 0;
    const start = performance.now();
    const tick = () => {
      frames++;
      if (redraw) map.deck.redraw("profile");
      if (performance.now() - start < ms) requestAnimationFrame(tick);
      else then((frames * 1000) / (performance.now() - start));
    };
    requestAnimationFrame(tick);
  };
  count(false, (idle) => count(true, (drawing) => done({ idle, drawing })));
});

// For the browser tests: the visible point nearest the plot's centre, with its position in the viewport.
map.stats.pointNearCentre = () => {
  const rect = map.plot.getBoundingClientRect();
  const [cx, cy] = map.viewState.target;
  const row = nearest(map.grid, map.visible, cx, cy, Infinity);
  const scale = 2 ** map.viewState.zoom;
  return { row, x: rect.left + rect.width / 2 + (map.grid.xy[2 * row] - cx) * scale,
    y: rect.top + rect.height / 2 - (map.grid.xy[2 * row + 1] - cy) * scale };
};

function hasWebgl2() {
  try {
    return !!document.createElement("canvas").getContext("webgl2");
  } catch {
    return false;
  }
}

function radiusPx(n) {
  // the diameters plotly's map used: 7 px up to 2k points, 5 to 20k, 3 to 200k, then 2
  return (n <= 2000 ? 7 : n <= 20000 ? 5 : n <= 200000 ? 3 : 2) / 2;
}

function fitView() {
  const g = map.grid;
  const width = map.plot.clientWidth || 600, height = map.plot.clientHeight || 400;
  const scale = 0.92 * Math.min(width / (g.x1 - g.x0 || 1), height / (g.y1 - g.y0 || 1));
  map.viewState = { target: [(g.x0 + g.x1) / 2, (g.y0 + g.y1) / 2, 0], zoom: Math.log2(scale), minZoom: -20, maxZoom: 40 };
  map.deck.setProps({ viewState: map.viewState });
  scheduleRender();
  map.stats.fit = { width, height, view: map.viewState, bounds: [g.x0, g.x1, g.y0, g.y1] };
}

// Data coordinates of a point given in pixels from the plot's top-left corner.
function unproject(px, py) {
  const { target, zoom } = map.viewState;
  const scale = 2 ** zoom;
  return [target[0] + (px - map.plot.clientWidth / 2) / scale, target[1] - (py - map.plot.clientHeight / 2) / scale];
}

function controller() {
  const pan = map.mode === "pan";
  return { dragPan: pan, dragRotate: false, scrollZoom: true, doubleClickZoom: pan, touchRotate: false, keyboard: true };
}

function createDeck() {
  map.deck = new Deck({
    parent: map.plot,
    width: "100%",
    height: "100%",
    views: new OrthographicView({ id: "map", flipY: false }),
    viewState: map.viewState || { target: [0, 0, 0], zoom: 0 },
    controller: controller(),
    onViewStateChange: ({ viewState }) => {
      map.viewState = viewState;
      map.deck.setProps({ viewState });
      scheduleRender(); // what is drawn depends on what is in view
    },
    onAfterRender: () => {
      map.stats.renders++;
      map.stats.renderedVersion = map.stats.version;
      map.stats.renderedAt = performance.now();
    },
    onError: (error) => {
      map.stats.error = String(error && error.message ? error.message : error);
    },
    getCursor: () => (map.mode === "pan" ? "grab" : "crosshair"),
  });
}

// Level of detail. WebGL points cost software rendering (SwiftShader, as in headless Chromium) about the same
// per point whether they are on screen or not, ~17 us each per frame measured here (2,000 points: 11 frames/s,
// 100,000: 0.6/s, on 2 shared cores): 1M points would take seconds per frame. So the map draws the points in
// view, and where more than POINT_BUDGET are in view (zoomed out on a large run) it draws every one of them as
// a pixel block of its colour into a 2D canvas, a CPU pass over the points in view each time the view
// changes; zoomed in to at most POINT_BUDGET points in view, deck.gl's ScatterplotLayer draws them. Either way
// every visible listing in view is drawn (none sampled), hover and selection work the same (on the CPU).
const POINT_BUDGET = 30000;

function viewBounds() {
  const { target, zoom } = map.viewState;
  const scale = 2 ** zoom;
  const w = map.plot.clientWidth / 2 / scale, h = map.plot.clientHeight / 2 / scale;
  return [target[0] - w, target[1] - h, target[0] + w, target[1] + h];
}

// Colours of every row for the current colour column and selection (RGBA), computed once per change of either.
function draw() {
  const h = map.header;
  map.colours = pointColours(h.colour, map.blobs.get(h.colour.key), null, map.selected, FADED_ALPHA);
  map.stats.colourKey = h.colour.key;
  map.stats.maskKey = h.mask;
  renderView();
}

function scheduleRender() {
  if (map.pending) return;
  map.pending = true;
  requestAnimationFrame(() => {
    map.pending = false;
    if (map.colours) renderView();
  });
}

function renderView() {
  const bounds = viewBounds();
  const rows = rowsInView(map.grid, map.visible, bounds);
  map.stats.version++;
  map.stats.points = rows.length;
  if (rows.length <= POINT_BUDGET) {
    map.stats.lod = "points";
    map.raster.hidden = true;
    drawPoints(rows);
  } else {
    map.stats.lod = "raster";
    map.deck.setProps({ layers: [] });
    rasterise(rows, bounds);
    map.raster.hidden = false;
    map.stats.renders++;
    map.stats.renderedVersion = map.stats.version; // drawn synchronously: on screen at the next frame
    map.stats.renderedAt = performance.now();
  }
}

function drawPoints(rows) {
  const positions = new Float32Array(2 * rows.length);
  const colours = new Uint8Array(4 * rows.length);
  const xy = map.grid.xy, all = new Uint32Array(map.colours.buffer), some = new Uint32Array(colours.buffer);
  for (let k = 0; k < rows.length; k++) {
    positions[2 * k] = xy[2 * rows[k]];
    positions[2 * k + 1] = xy[2 * rows[k] + 1];
    some[k] = all[rows[k]];
  }
  const layer = new ScatterplotLayer({
    id: "points",
    data: { length: rows.length, attributes: {
      getPosition: { value: positions, size: 2 },
      getFillColor: { value: colours, size: 4, normalized: true },
    } },
    radiusUnits: "pixels",
    getRadius: radiusPx(map.header.n),
    stroked: false,
    pickable: false, // the point under the cursor is found on the CPU (geometry.nearest)
  });
  map.deck.setProps({ layers: [layer] });
}

// Every row in view as a square of its colour, the size of its WebGL point; a selection's points last, on top.
function rasterise(rows, [left, , , top]) {
  const dpr = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(map.plot.clientWidth * dpr));
  const height = Math.max(1, Math.round(map.plot.clientHeight * dpr));
  const canvas = map.raster;
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  const context = canvas.getContext("2d");
  const image = context.createImageData(width, height);
  const pixels = new Uint32Array(image.data.buffer); // RGBA bytes, as map.colours holds them
  const colours = new Uint32Array(map.colours.buffer);
  const scale = 2 ** map.viewState.zoom * dpr;
  const size = Math.max(1, Math.round(2 * radiusPx(map.header.n) * dpr));
  const half = size / 2, xy = map.grid.xy, selected = map.selected;
  for (const pass of selected ? [0, 1] : [null]) {
    for (let k = 0; k < rows.length; k++) {
      const row = rows[k];
      if (pass !== null && selected[row] !== pass) continue;
      const px = Math.floor((xy[2 * row] - left) * scale - half + 0.5);
      const py = Math.floor((top - xy[2 * row + 1]) * scale - half + 0.5);
      const colour = colours[row];
      for (let dy = 0; dy < size; dy++) {
        const y = py + dy;
        if (y < 0 || y >= height) continue;
        for (let dx = 0; dx < size; dx++) {
          const x = px + dx;
          if (x >= 0 && x < width) pixels[y * width + x] = colour;
        }
      }
    }
  }
  context.putImageData(image, 0, 0);
}

function legend(root) {
  const h = map.header, spec = h.colour;
  const box = root.querySelector(".legend");
  box.replaceChildren();
  const title = document.createElement("div");
  title.className = "legend-title";
  title.textContent = spec.label;
  box.appendChild(title);
  const entry = (colour, text) => {
    const line = document.createElement("div");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = `rgb(${colour.join(",")})`;
    line.append(swatch, document.createTextNode(text));
    box.appendChild(line);
  };
  if (spec.kind === "category") {
    for (const item of spec.legend) entry(item.colour, `${item.label} (${item.count.toLocaleString()})`);
  } else {
    const bar = document.createElement("div");
    bar.className = "colour-bar";
    bar.style.background = gradientCss(spec.scale);
    const ends = document.createElement("div");
    ends.className = "colour-bar-ends";
    ends.innerHTML = "<span></span><span></span>";
    ends.children[0].textContent = spec.domain_text[0];
    ends.children[1].textContent = spec.domain_text[1];
    box.append(bar, ends);
    if (spec.missing > 0) entry(spec.missing_colour, `${spec.missing_label} (${spec.missing.toLocaleString()})`);
  }
}

function status(root) {
  const h = map.header;
  const n = map.visible ? map.visible.reduce((a, b) => a + b, 0) : map.grid.n;
  const selected = map.stats.selected;
  root.querySelector(".status").textContent =
    `${n.toLocaleString()} points` + (selected ? ` · ${selected.toLocaleString()} selected` : "") + (h.note ? ` · ${h.note}` : "");
}

function report(name, value) {
  if (map.report) map.report(name, value);
}

// --- selection and hover ---

function localPoint(event) {
  const rect = map.plot.getBoundingClientRect();
  return [event.clientX - rect.left, event.clientY - rect.top];
}

function outline(root) {
  const svg = root.querySelector(".outline");
  const path = svg.querySelector("path");
  const d = map.drag;
  if (!d) {
    path.setAttribute("d", "");
    return;
  }
  const pts = d.mode === "box"
    ? [d.start, [d.end[0], d.start[1]], d.end, [d.start[0], d.end[1]]]
    : d.points;
  path.setAttribute("d", "M" + pts.map((p) => `${p[0]},${p[1]}`).join("L") + "Z");
}

function finishDrag(root, event) {
  const d = map.drag;
  map.drag = null;
  outline(root);
  const [x, y] = localPoint(event);
  const moved = Math.hypot(x - d.start[0], y - d.start[1]);
  let selection;
  if (moved < CLICK_PX && d.mode === "box") {
    const row = hoveredRow(x, y);
    if (row < 0) return;
    selection = { mode: "point", row };
    map.selected = new Uint8Array(map.grid.n);
    map.selected[row] = 1;
  } else if (d.mode === "box") {
    const [ax, ay] = unproject(...d.start), [bx, by] = unproject(x, y);
    selection = { mode: "box", box: [Math.min(ax, bx), Math.min(ay, by), Math.max(ax, bx), Math.max(ay, by)] };
  } else {
    if (d.points.length < 3) return;
    selection = { mode: "lasso", polygon: d.points.map((p) => unproject(p[0], p[1])) };
  }
  if (selection.mode !== "point") {
    map.selected = selectionMask(map.grid, map.visible, selection); // drawn at once; Python's answer replaces it
  }
  map.stats.selected = map.selected.reduce((a, b) => a + b, 0);
  map.stats.selectionKey = null; // until Python's answer arrives
  draw();
  status(root);
  report("selection", { ...selection, nonce: ++map.nonce });
}

function hoveredRow(px, py) {
  const [x, y] = unproject(px, py);
  return nearest(map.grid, map.visible, x, y, HOVER_RADIUS_PX / 2 ** map.viewState.zoom);
}

function hover(row, event) {
  if (row === map.hovered) return;
  map.hovered = row;
  map.stats.hovered = row;
  window.dispatchEvent(new CustomEvent(HOVER_EVENT, {
    detail: { row: row < 0 ? null : row, clientX: event ? event.clientX : 0, clientY: event ? event.clientY : 0 },
  }));
}

function listen(root) {
  const plot = map.plot;
  plot.addEventListener("pointerdown", (event) => {
    if (map.mode === "pan" || event.button !== 0 || !map.grid) return;
    const p = localPoint(event);
    map.drag = { mode: map.mode, start: p, end: p, points: [p] };
    plot.setPointerCapture(event.pointerId);
    hover(-1);
  });
  plot.addEventListener("pointermove", (event) => {
    const p = localPoint(event);
    if (map.drag) {
      const d = map.drag;
      d.end = p;
      const last = d.points[d.points.length - 1];
      if (Math.hypot(p[0] - last[0], p[1] - last[1]) >= LASSO_STEP_PX) d.points.push(p);
      outline(root);
      return;
    }
    if (map.grid) hover(hoveredRow(...p), event);
  });
  plot.addEventListener("pointerup", (event) => {
    if (map.drag) finishDrag(root, event);
  });
  plot.addEventListener("pointerleave", () => {
    if (!map.drag) hover(-1);
  });
  plot.addEventListener("keydown", (event) => {
    if (event.key === "r" || event.key === "R" || event.key === "0") {
      fitView();
    } else if (event.key === "Escape" && map.drag) {
      map.drag = null;
      outline(root);
    }
  });
  root.querySelectorAll("button[data-mode]").forEach((button) => {
    button.addEventListener("click", () => setMode(root, button.dataset.mode));
  });
  root.querySelector("button[data-action=reset]").addEventListener("click", fitView);
  root.querySelector("button[data-action=clear]").addEventListener("click", () => {
    map.selected = null;
    map.stats.selected = 0;
    draw();
    status(root);
    report("selection", { mode: "clear", nonce: ++map.nonce });
  });
}

function setMode(root, mode) {
  map.mode = mode;
  root.querySelectorAll("button[data-mode]").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.mode === mode)));
  if (map.deck) map.deck.setProps({ controller: controller() });
}

// --- receiving data ---

function receive(bytes) {
  const { header, blobs } = decodePayload(bytes);
  if (header.coords !== map.coordsKey) {
    map.blobs.clear(); // a new run (or its coordinates): nothing held belongs to it
  }
  for (const [key, array] of blobs) map.blobs.set(key, array);
  const needed = [header.coords, header.colour.key, header.mask, header.selection].filter((k) => k !== null);
  const missing = needed.filter((k) => !map.blobs.has(k));
  if (missing.length) {
    // Python believed this browser holds them (the module was reloaded, or a message was lost): ask again
    report("missing", { keys: missing, nonce: ++map.nonce });
    return false;
  }
  if (header.coords !== map.coordsKey) {
    map.coordsKey = header.coords;
    map.grid = buildGrid(map.blobs.get(header.coords), header.n);
  }
  if (!map.header || header.mask !== map.header.mask || header.coords !== map.header.coords) {
    map.visible = header.mask === null ? null : unpackBits(map.blobs.get(header.mask), header.n);
  }
  if (!map.header || header.selection !== map.header.selection || header.coords !== map.header.coords
      || map.stats.selectionKey !== header.selection) {
    map.selected = header.selection === null ? null : unpackBits(map.blobs.get(header.selection), header.n);
    map.stats.selected = header.selected;
    map.stats.selectionKey = header.selection;
  }
  map.header = header;
  return true;
}

export default function (component) {
  const { data, parentElement, setStateValue } = component;
  map.stats.receivedAt = performance.now();
  map.report = setStateValue;
  const root = parentElement;
  const plot = root.querySelector(".plot");
  if (map.stats.webgl2 === null) map.stats.webgl2 = hasWebgl2();
  if (!map.stats.webgl2) {
    root.querySelector(".status").textContent = "This browser has no WebGL2.";
    report("webgl", "none"); // Python draws the plotly map instead
    return () => {};
  }
  if (plot !== map.plot) {
    // a new mount (first, or back on the page): a new deck in the new element, and our listeners on it
    if (map.deck) map.deck.finalize();
    map.plot = plot;
    map.raster = plot.querySelector(".raster");
    map.deck = null;
    map.fitted = null;
    createDeck();
    listen(root);
    setMode(root, map.mode);
  }
  if (!(data instanceof Uint8Array) || !receive(data)) {
    return () => {};
  }
  plot.style.height = `${map.header.height}px`;
  if (map.fitted !== map.coordsKey) {
    fitView();
    map.fitted = map.coordsKey;
  }
  draw();
  legend(root);
  status(root);
  map.stats.preparedAt = performance.now();
  return () => {
    if (map.report !== setStateValue) return; // the cleanup of an earlier call
    hover(-1);
    map.report = null;
  };
}

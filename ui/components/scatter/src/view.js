// What the scatter draws for the current view: the deck (pan/zoom, WebGL points) and the level of detail.

import { Deck, OrthographicView } from "@deck.gl/core";
import { ScatterplotLayer } from "@deck.gl/layers";

import { faded } from "./colours.js";
import { rowsInBox } from "./geometry.js";
import { rasterise } from "./raster.js";
import { map } from "./state.js";

const FADED_ALPHA = 64; // points outside a selection stay drawn at a quarter opacity (as plotly's map did)

// Level of detail. WebGL points cost software rendering (SwiftShader, as in headless Chromium) about the same
// per point whether they are on screen or not, ~17 us each per frame measured here (2,000 points: 11 frames/s,
// 100,000: 0.6/s, on 2 shared cores): 1M points would take seconds per frame. So the map draws the points in
// view, and where more than POINT_BUDGET are in view (zoomed out on a large run) it draws every one of them as
// a pixel block of its colour into a 2D canvas, a CPU pass over the points in view each time the view
// changes; zoomed in to at most POINT_BUDGET points in view, deck.gl's ScatterplotLayer draws them. Either way
// every visible listing in view is drawn (none sampled), hover and selection work the same (on the CPU).
export const POINT_BUDGET = 30000;

export function radiusPx(n) {
  // the diameters plotly's map used: 7 px up to 2k points, 5 to 20k, 3 to 200k, then 2
  return (n <= 2000 ? 7 : n <= 20000 ? 5 : n <= 200000 ? 3 : 2) / 2;
}

function controller() {
  const pan = map.mode === "pan";
  return { dragPan: pan, dragRotate: false, scrollZoom: true, doubleClickZoom: pan, touchRotate: false, keyboard: true };
}

export function setController() {
  if (map.deck) map.deck.setProps({ controller: controller() });
}

// The deck (its WebGL context, pan/zoom controller) is made on the first view drawn as points, or else once the
// browser is idle after the first dense view: its first frame costs software WebGL 0.2 to 2 s (load averages
// of 8 to 10 here), which would otherwise hold back the first paint of a million-point map. Hover and box or
// lasso selection need no deck; pan and zoom start with it.
function deckWhenIdle() {
  if (map.deck || map.deckSoon) return;
  map.deckSoon = true;
  const make = () => {
    map.deckSoon = false;
    ensureDeck();
  };
  if (window.requestIdleCallback) window.requestIdleCallback(make, { timeout: 2000 });
  else setTimeout(make, 200);
}

export function ensureDeck() {
  if (map.deck || !map.plot) return;
  map.stats.deckAt = performance.now();
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
  map.deckLayers = false;
}

export function dropDeck() {
  if (map.deck) map.deck.finalize();
  map.deck = null;
  map.deckLayers = false;
}

export function fitView() {
  const g = map.grid;
  const width = map.plot.clientWidth || 600, height = map.plot.clientHeight || 400;
  const scale = 0.92 * Math.min(width / (g.x1 - g.x0 || 1), height / (g.y1 - g.y0 || 1));
  map.viewState = { target: [(g.x0 + g.x1) / 2, (g.y0 + g.y1) / 2, 0], zoom: Math.log2(scale), minZoom: -20, maxZoom: 40 };
  if (map.deck) map.deck.setProps({ viewState: map.viewState });
  scheduleRender();
  map.stats.fit = { width, height, view: map.viewState, bounds: [g.x0, g.x1, g.y0, g.y1] };
}

// Data coordinates of a point given in pixels from the plot's top-left corner.
export function unproject(px, py) {
  const { target, zoom } = map.viewState;
  const scale = 2 ** zoom;
  return [target[0] + (px - map.plot.clientWidth / 2) / scale, target[1] - (py - map.plot.clientHeight / 2) / scale];
}

function viewBounds() {
  const { target, zoom } = map.viewState;
  const scale = 2 ** zoom;
  const w = map.plot.clientWidth / 2 / scale, h = map.plot.clientHeight / 2 / scale;
  return [target[0] - w, target[1] - h, target[0] + w, target[1] + h];
}

// Draw at the next frame, unless something draws before it (several view changes in a frame: one draw).
export function scheduleRender() {
  map.dirty = true;
  if (map.pending) return;
  map.pending = true;
  requestAnimationFrame(() => {
    map.pending = false;
    if (map.dirty && map.colours) renderView();
  });
}

// The visible rows in view, kept while neither the view nor the visibility changes (a colour change or a
// selection redraws the same rows).
function rowsInView(bounds) {
  const cached = map.inView;
  if (cached && cached.grid === map.grid && cached.visible === map.visible && cached.bounds.every((v, i) => v === bounds[i])) {
    return cached.rows;
  }
  const rows = rowsInBox(map.grid, map.visible, bounds);
  map.inView = { grid: map.grid, visible: map.visible, bounds, rows };
  return rows;
}

// Draw the current view with the current colours and selection.
export function renderView() {
  map.dirty = false;
  const bounds = viewBounds();
  const rows = rowsInView(bounds);
  map.stats.version++;
  map.stats.points = rows.length;
  if (rows.length <= POINT_BUDGET) {
    map.stats.lod = "points";
    map.raster.hidden = true;
    drawPoints(rows);
    return;
  }
  map.stats.lod = "raster";
  if (map.deck && map.deckLayers) {
    map.deck.setProps({ layers: [] }); // an empty deck draws no frame of its own until the view moves
    map.deckLayers = false;
  }
  drawRaster(rows, bounds);
  map.raster.hidden = false;
  map.stats.renders++;
  map.stats.renderedVersion = map.stats.version; // drawn synchronously: on screen at the next frame
  map.stats.renderedAt = performance.now();
  deckWhenIdle();
}

function drawPoints(rows) {
  ensureDeck();
  const positions = new Float32Array(2 * rows.length);
  const colours = new Uint32Array(rows.length);
  const xy = map.grid.xy, all = map.colours, selected = map.selected;
  for (let k = 0; k < rows.length; k++) {
    const row = rows[k];
    positions[2 * k] = xy[2 * row];
    positions[2 * k + 1] = xy[2 * row + 1];
    colours[k] = selected && !selected[row] ? faded(all[row], FADED_ALPHA) : all[row];
  }
  const layer = new ScatterplotLayer({
    id: "points",
    data: { length: rows.length, attributes: {
      getPosition: { value: positions, size: 2 },
      getFillColor: { value: new Uint8Array(colours.buffer), size: 4, normalized: true },
    } },
    radiusUnits: "pixels",
    getRadius: radiusPx(map.header.n),
    stroked: false,
    pickable: false, // the point under the cursor is found on the CPU (geometry.nearest)
  });
  map.deck.setProps({ layers: [layer] });
  map.deckLayers = true;
}

// Every row in view as a square of its colour, the size of its WebGL point (raster.js).
function drawRaster(rows, [left, , , top]) {
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
  rasterise({ pixels: new Uint32Array(image.data.buffer), width, height, xy: map.grid.xy, rows, colours: map.colours,
    selected: map.selected, fadedAlpha: FADED_ALPHA, left, top, scale: 2 ** map.viewState.zoom * dpr,
    size: Math.max(1, Math.round(2 * radiusPx(map.header.n) * dpr)) });
  context.putImageData(image, 0, 0);
}

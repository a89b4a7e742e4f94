// The Map page's WebGL scatter (ui/scatter_map.py mounts it with st.components.v2): every listing drawn by
// deck.gl's ScatterplotLayer from binary attributes, or into a canvas where the view holds too many for
// software WebGL (view.js), box and lasso selection reported to Python as geometry (interaction.js), a
// legend, pan/zoom and a keyboard-reachable reset.
//
// Each call of the default export (a rerun that changed the component's data) redoes only what its payload
// changed: colours for a new colour column, the visibility for a new mask, the selection for a new one, and
// draws only if one of them (or the coordinates, or the height) did. Python's answer to a selection drawn
// here holds the same rows, so it draws nothing.

import { gradientCss, pointColours } from "./colours.js";
import { buildGrid, countOnes, nearest, sameMask, unpackBits } from "./geometry.js";
import { clearHover, listen, setMode } from "./interaction.js";
import { decodePayload } from "./payload.js";
import { map, report } from "./state.js";
import { dropDeck, ensureDeck, fitView, renderView } from "./view.js";

// For profiling: frames per second of the page while idle, then while the deck redraws every frame.
map.stats.frameRates = (ms) => new Promise((done) => {
  ensureDeck();
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

function legend(root) {
  const spec = map.header.colour;
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
  const selected = map.stats.selected;
  root.querySelector(".status").textContent = `${map.visibleCount.toLocaleString()} points`
    + (selected ? ` · ${selected.toLocaleString()} selected` : "") + (map.header.note ? ` · ${map.header.note}` : "");
}

// A bits blob as 0/1 per row, unpacked once per key; only the last few are kept (a byte per row each, where
// the blob holds a bit), enough for the visibility and the selection in use.
const MASKS_KEPT = 4;

function maskOf(key, n) {
  let mask = map.masks.get(key);
  if (mask === undefined) {
    mask = unpackBits(map.blobs.get(key), n);
    if (map.masks.size >= MASKS_KEPT) map.masks.delete(map.masks.keys().next().value); // the oldest
  }
  map.masks.delete(key);
  map.masks.set(key, mask); // the most recent last
  return mask;
}

// Take a payload in; returns what it changed ({grid, colour, visible, selection, height}), or null when it
// names blobs this browser does not hold (then they are asked for again).
function receive(bytes) {
  const { header, blobs } = decodePayload(bytes);
  const before = map.header;
  if (header.coords !== map.coordsKey) {
    map.blobs.clear(); // a new run (or its coordinates): nothing held belongs to it
    map.masks.clear();
  }
  for (const [key, array] of blobs) map.blobs.set(key, array);
  const needed = [header.coords, header.colour.key, header.mask, header.selection].filter((k) => k !== null);
  const missing = needed.filter((k) => !map.blobs.has(k));
  if (missing.length) {
    // Python believed this browser holds them (the module was reloaded, or a message was lost): ask again
    report("missing", { keys: missing, nonce: ++map.nonce });
    return null;
  }
  const changed = { grid: false, colour: false, visible: false, selection: false, height: false };
  if (header.coords !== map.coordsKey) {
    map.coordsKey = header.coords;
    map.grid = buildGrid(map.blobs.get(header.coords), header.n);
    map.inView = null;
    changed.grid = true;
  }
  const spec = JSON.stringify(header.colour);
  if (spec !== map.colourSpec) {
    map.colourSpec = spec;
    map.colours = pointColours(header.colour, map.blobs.get(header.colour.key));
    changed.colour = true;
  }
  if (changed.grid || header.mask !== before.mask) {
    map.visible = header.mask === null ? null : maskOf(header.mask, header.n);
    map.visibleCount = map.visible ? countOnes(map.visible) : header.n;
    changed.visible = true;
  }
  if (header.selection !== map.stats.selectionKey || changed.grid) {
    const selected = header.selection === null ? null : maskOf(header.selection, header.n);
    // Python's answer to the selection drawn here is the same rows: kept as drawn, nothing redrawn
    changed.selection = !sameMask(selected, map.selected);
    map.selected = selected;
    map.stats.selected = header.selected;
    map.stats.selectionKey = header.selection;
  }
  changed.height = !before || header.height !== before.height;
  map.header = header;
  map.stats.colourKey = header.colour.key;
  map.stats.maskKey = header.mask;
  return changed;
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
  let mounted = false;
  if (plot !== map.plot) {
    // a new mount (first, or back on the page): a new deck in the new element, and our listeners on it
    dropDeck();
    map.plot = plot;
    map.raster = plot.querySelector(".raster");
    map.fitted = null;
    listen(root, () => status(root));
    setMode(root, map.mode);
    mounted = true;
  }
  const changed = data instanceof Uint8Array ? receive(data) : null;
  if (changed === null) {
    return () => {};
  }
  plot.style.height = `${map.header.height}px`;
  if (mounted || changed.colour) legend(root);
  status(root);
  if (map.fitted !== map.coordsKey) {
    map.fitted = map.coordsKey;
    fitView(); // schedules a draw for the next frame, which the one below makes unneeded
  }
  if (mounted || Object.values(changed).some(Boolean)) renderView();
  map.stats.preparedAt = performance.now();
  return () => {
    if (map.report !== setStateValue) return; // the cleanup of an earlier call
    clearHover();
    map.report = null;
  };
}

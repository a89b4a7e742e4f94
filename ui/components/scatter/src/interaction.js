// Selection and hover on the scatter: a box, lasso or clicked point is reported to Python as geometry (Python
// selects the ids, map_selection.py) and highlighted here at once with the same arithmetic (geometry.js); the
// row under the cursor is announced to the hover bridge (hover.js) with a window event.

import { nearest, selectionMask } from "./geometry.js";
import { map, report } from "./state.js";
import { fitView, renderView, setController, unproject } from "./view.js";

const HOVER_RADIUS_PX = 6; // a point counts as hovered within this many pixels of the cursor
const CLICK_PX = 4; // a drag shorter than this is a click
const LASSO_STEP_PX = 3; // lasso vertices at least this far apart
const HOVER_EVENT = "gallery-core-scatter-hover"; // ui/components/scatter/hover.js listens to it

function localPoint(event) {
  const rect = map.plot.getBoundingClientRect();
  return [event.clientX - rect.left, event.clientY - rect.top];
}

function outline(root) {
  const path = root.querySelector(".outline path");
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

function hoveredRow(px, py) {
  const [x, y] = unproject(px, py);
  return nearest(map.grid, map.visible, x, y, HOVER_RADIUS_PX / 2 ** map.viewState.zoom);
}

// The selection a finished drag means: a clicked point, a box or a lasso in data coordinates (null: none).
function dragSelection(d, [x, y]) {
  if (Math.hypot(x - d.start[0], y - d.start[1]) < CLICK_PX && d.mode === "box") {
    const row = hoveredRow(x, y);
    return row < 0 ? null : { mode: "point", row };
  }
  if (d.mode === "box") {
    const [ax, ay] = unproject(...d.start), [bx, by] = unproject(x, y);
    return { mode: "box", box: [Math.min(ax, bx), Math.min(ay, by), Math.max(ax, bx), Math.max(ay, by)] };
  }
  return d.points.length < 3 ? null : { mode: "lasso", polygon: d.points.map((p) => unproject(p[0], p[1])) };
}

// Python is told first: Streamlit sends the new state from a zero-delay timer, so the highlight is drawn from
// one queued after it, while Python's rerun runs; its answer (the same rows: geometry.js and
// map_selection.py agree point for point) then changes nothing on the map.
function select(selection, changed) {
  report("selection", { ...selection, nonce: ++map.nonce });
  map.stats.reportedAt = performance.now();
  map.stats.selectionKey = null; // until Python's answer arrives
  setTimeout(() => highlight(selection, changed));
}

function highlight(selection, changed) {
  if (selection.mode === "clear") {
    map.selected = null;
    map.stats.selected = 0;
  } else if (selection.mode === "point") {
    map.selected = new Uint8Array(map.grid.n);
    map.selected[selection.row] = 1;
    map.stats.selected = 1;
  } else {
    const { mask, count } = selectionMask(map.grid, map.visible, selection);
    map.selected = mask;
    map.stats.selected = count;
  }
  renderView();
  map.stats.highlightedAt = performance.now();
  changed();
}

function hover(row, event) {
  if (row === map.hovered) return;
  map.hovered = row;
  map.stats.hovered = row;
  window.dispatchEvent(new CustomEvent(HOVER_EVENT, {
    detail: { row: row < 0 ? null : row, clientX: event ? event.clientX : 0, clientY: event ? event.clientY : 0 },
  }));
}

export function clearHover() {
  hover(-1);
}

export function setMode(root, mode) {
  map.mode = mode;
  root.querySelectorAll("button[data-mode]").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.mode === mode)));
  setController();
}

// Listeners on a new mount's elements; `changed()` refreshes the status line after a selection.
export function listen(root, changed) {
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
    const d = map.drag;
    if (!d) return;
    map.drag = null;
    outline(root);
    const selection = dragSelection(d, localPoint(event));
    if (selection) select(selection, changed);
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
  root.querySelector("button[data-action=clear]").addEventListener("click", () => select({ mode: "clear" }, changed));
}

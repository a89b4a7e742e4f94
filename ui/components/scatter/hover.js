// The scatter's hover bridge (ui/scatter_map.py): the scatter (src/index.js) announces the row under the cursor
// with a window event; this reports it to Python as the bridge's state, after a short debounce, and shows the
// listing's photo strip that Python sends back in a floating box near the cursor. The bridge lives in a
// fragment of its own, so a hover reruns only that fragment, never the map.
//
// Imported once per page load; the default export runs again on every rerun that changes the bridge's data.

const DEBOUNCE_MS = 150; // report a point only once the cursor has rested on it this long
const GAP_PX = 14; // between the cursor and the box
const HOVER_EVENT = "gallery-core-scatter-hover";

const bridge = { hovered: null, cursor: { x: 0, y: 0 }, shown: null, report: null, box: null, timer: null,
  listening: false };

function onHover(event) {
  const { row, clientX, clientY } = event.detail;
  bridge.cursor = { x: clientX, y: clientY };
  clearTimeout(bridge.timer);
  bridge.hovered = row;
  render();
  if (row === null || (bridge.shown && bridge.shown.row === row)) {
    return; // nothing hovered, or Python has already sent this listing's photos
  }
  bridge.timer = setTimeout(() => {
    if (bridge.hovered === row && bridge.report) {
      bridge.report("row", row); // reruns the bridge's fragment, which sends back the photos
    }
  }, DEBOUNCE_MS);
}

// Show the box only while the listing Python sent photos for is the one under the cursor.
function render() {
  const box = bridge.box;
  if (!box) {
    return;
  }
  const shown = bridge.shown;
  const visible = bridge.hovered !== null && shown !== null && shown.row === bridge.hovered;
  if (visible) {
    const img = box.querySelector("img");
    if (img.getAttribute("src") !== shown.image) {
      img.setAttribute("src", shown.image);
    }
    box.querySelector("span").textContent = shown.listing_id;
    box.querySelector("small").textContent = shown.text;
  }
  box.hidden = !visible;
  place();
}

// Above and left of the cursor, flipped right or below where the viewport has no room.
function place() {
  const box = bridge.box;
  if (!box || box.hidden) {
    return;
  }
  const { x, y } = bridge.cursor;
  const left = x - GAP_PX - box.offsetWidth >= 0 ? x - GAP_PX - box.offsetWidth : x + GAP_PX;
  const top = y - GAP_PX - box.offsetHeight >= 0 ? y - GAP_PX - box.offsetHeight : y + GAP_PX;
  box.style.left = `${left}px`;
  box.style.top = `${top}px`;
}

export default function (component) {
  const { data, parentElement, setStateValue } = component;
  bridge.report = setStateValue;
  bridge.box = parentElement.querySelector(".hover-photos");
  bridge.box.querySelector("img").onload = place; // the strip's size is known once it has decoded
  bridge.shown = data && typeof data.listing_id === "string" ? data : null;
  if (!bridge.listening) {
    window.addEventListener(HOVER_EVENT, onHover);
    bridge.listening = true;
  }
  render();
  return () => {
    if (bridge.report !== setStateValue) {
      return; // the cleanup of an earlier call: a later one owns the bridge now
    }
    clearTimeout(bridge.timer);
    bridge.report = null;
    bridge.box = null;
  };
}

// The map's hover bridge (ui/hover_photos.py): reports the hovered point's listing id to Python and shows
// the photo strip Python sends back in a floating box near the cursor.
//
// This module is imported once per page load; Streamlit calls its default export again on every rerun that
// changes the bridge's data, and calls the cleanup it returns only when the bridge is unmounted (Streamlit
// 1.67 keeps just the latest call's cleanup). So what must outlive one call (the hovered id, the cursor, the
// pending report, the one timer looking for the chart) lives at module level; each call only refreshes it.

const DEBOUNCE_MS = 150; // report a point only once the cursor has rested on it this long
const FIND_EVERY_MS = 300; // look for the chart's graph div (drawn after us, or replaced by a rerun)
const GAP_PX = 14; // between the cursor and the box

const bridge = {
  hovered: null, // listing id under the cursor, or null
  cursor: { x: 0, y: 0 }, // last pointer position over the chart, in viewport pixels
  shown: null, // {listing_id, image} from Python's last run, or null
  report: null, // the current mount's setStateValue
  box: null, // the current mount's floating box
  timer: null, // the pending (debounced) report
  selector: "", // CSS selector of the chart's graph div
  attachedTo: null, // the graph div our handlers were last attached to
  finder: null, // the interval looking for the graph div
};

function onMouseMove(event) {
  bridge.cursor = { x: event.clientX, y: event.clientY };
  place();
}

function onHover(event) {
  const point = event && event.points && event.points[0];
  const id = point ? point.customdata : null;
  hover(typeof id === "string" ? id : null);
}

function onUnhover() {
  hover(null);
}

// Attach our handlers to a plotly graph div. Idempotent: the handlers are the same functions every time, so
// removing them first means a call never stacks a second copy (mounts, reruns, or a re-plotted div).
function attach(gd) {
  gd.removeListener("plotly_hover", onHover);
  gd.removeListener("plotly_unhover", onUnhover);
  gd.on("plotly_hover", onHover);
  gd.on("plotly_unhover", onUnhover);
  gd.addEventListener("mousemove", onMouseMove); // the DOM ignores a listener added twice
}

function hover(id) {
  clearTimeout(bridge.timer);
  bridge.hovered = id;
  render();
  if (id === null || (bridge.shown && bridge.shown.listing_id === id)) {
    return; // nothing hovered, or Python has already sent this listing's photos
  }
  bridge.timer = setTimeout(() => {
    if (bridge.hovered === id && bridge.report) {
      bridge.report("listing_id", id); // reruns the bridge's fragment, which sends back the photos
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
  const visible = bridge.hovered !== null && shown !== null && shown.listing_id === bridge.hovered;
  if (visible) {
    const img = box.querySelector("img");
    if (img.getAttribute("src") !== shown.image) {
      img.setAttribute("src", shown.image);
    }
    box.querySelector("span").textContent = shown.listing_id;
  }
  box.hidden = !visible;
  place();
}

// Above and left of the cursor: plotly draws its own hover label to the right of the point (left only at the
// chart's right edge), so both stay readable; flipped right or below where the viewport has no room.
function place() {
  const box = bridge.box;
  if (!box || box.hidden) {
    return;
  }
  const { x, y } = bridge.cursor;
  const width = box.offsetWidth;
  const height = box.offsetHeight;
  const left = x - GAP_PX - width >= 0 ? x - GAP_PX - width : x + GAP_PX;
  const top = y - GAP_PX - height >= 0 ? y - GAP_PX - height : y + GAP_PX;
  box.style.left = `${left}px`;
  box.style.top = `${top}px`;
}

function chartSelector(chartKey) {
  // Streamlit's class for a keyed element's container: st-key-<key>, other characters replaced by "-"
  return `.st-key-${chartKey.replace(/[^a-zA-Z0-9_-]/g, "-")} .js-plotly-plot`;
}

// Attach to the chart's graph div when there is one we have not attached to yet (or always, on a mount).
function find(always) {
  const gd = document.querySelector(bridge.selector);
  // gd.on exists once plotly has drawn into the div
  if (gd && typeof gd.on === "function" && (always || gd !== bridge.attachedTo)) {
    attach(gd);
    bridge.attachedTo = gd;
  }
}

export default function (component) {
  const { data, parentElement, setStateValue } = component;
  bridge.report = setStateValue;
  bridge.box = parentElement.querySelector(".hover-photos");
  // the strip's size is known only once it has decoded: place the box again then
  bridge.box.querySelector("img").onload = place;
  bridge.shown = data && typeof data.listing_id === "string" ? data : null;
  bridge.selector = chartSelector((data && data.chart_key) || "");
  find(true); // re-attach on every mount: a re-plotted div may have lost its listeners
  if (bridge.finder === null) {
    bridge.finder = setInterval(() => find(false), FIND_EVERY_MS);
  }
  render();

  return () => {
    if (bridge.report !== setStateValue) {
      return; // the cleanup of an earlier call: a later one owns the bridge now
    }
    clearInterval(bridge.finder);
    clearTimeout(bridge.timer);
    Object.assign(bridge, { report: null, box: null, finder: null, attachedTo: null });
  };
}

// The scatter's state, shared by its modules. Streamlit imports the bundle once per page load and calls its
// default export again whenever the component's data changes; the deck and everything received (coordinates,
// colour columns, masks) live here, at module level, so that a rerun, or leaving the page and coming back,
// neither rebuilds nor resends them.

export const map = {
  blobs: new Map(), // content key -> typed array as received, for the current coordinates
  masks: new Map(), // content key of a bits blob -> its 0/1 per row (unpacked once)
  coordsKey: null,
  grid: null, // geometry.buildGrid of the coordinates
  header: null, // the latest payload's header
  visible: null, // 0/1 per row (null: every row visible)
  visibleCount: 0,
  colourSpec: null, // JSON of the colour spec the colours and legend were made from
  colours: null, // uint32 RGBA of every row for the colour column (colours.pointColours)
  selected: null, // 0/1 per row, or null: no selection
  inView: null, // the rows in view and what they were found for (a view, a visibility mask)
  raster: null, // the 2D canvas the dense views are drawn into
  pending: false, // a draw is scheduled for the next frame
  dirty: false, // the view changed since the last draw
  report: null, // the current mount's setStateValue
  deck: null,
  deckLayers: false, // the deck draws points (else it is empty: a dense view, or not drawn yet)
  deckSoon: false, // the deck is to be made when the browser is idle
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
    // milliseconds (performance.now()) of the last data received, prepared and drawn, of the last selection
    // reported to Python and drawn here, and of the deck's creation: where a wait goes
    receivedAt: 0, preparedAt: 0, renderedAt: 0, reportedAt: 0, highlightedAt: 0, deckAt: 0 },
};
window.galleryCoreScatter = map.stats;

export function report(name, value) {
  if (map.report) map.report(name, value);
}

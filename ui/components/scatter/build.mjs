// Bundles src/index.js and its npm dependencies (deck.gl) into dist/scatter.js: one minified ES module that
// Streamlit hands the browser inline, so nothing is fetched at run time. `make scatter` runs `npm ci` and this.
import { build } from "esbuild";

await build({
  entryPoints: ["src/index.js"],
  outfile: "dist/scatter.js",
  bundle: true,
  format: "esm",
  minify: true,
  target: "es2020",
  legalComments: "external", // the bundled libraries' licence notices, in dist/scatter.js.LEGAL.txt,
  logLevel: "info",
});

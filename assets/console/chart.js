// A balance over time (uPlot, served by Keel): its balance, credit and debit totals as steps, each
// monitor's threshold as a dashed line, and each trigger as a marker where the balance stood.
// Amounts are minor units, as the API gives them; plotted as numbers (a picture, not a ledger), while
// every exact figure stays in the tables beside the chart.

import { h } from "./ui.js";

/** The totals a chart can draw, with their colours (WCAG AA against white). */
const SERIES = [
  ["balance", "#1f5fbf"],
  ["credit_balance", "#1a7f37"],
  ["debit_balance", "#b35900"],
];
const THRESHOLD = "#8b1a1a";
const MARKER = "#6f2dbd";

/** A chart's points: the balance at `from`, after each movement, and as it stands at `to`. */
function steps(history) {
  const seconds = (text) => new Date(text).getTime() / 1000;
  const rows = [[seconds(history.from), history.start]];
  for (const point of history.points) rows.push([seconds(point.at), point]);
  const last = rows[rows.length - 1][1];
  const end = Math.max(seconds(history.to), rows[rows.length - 1][0]);
  rows.push([end, last]);
  return [rows.map((r) => r[0]), ...SERIES.map(([name]) => rows.map((r) => Number(r[1][name])))];
}

/**
 * Draws the chart into a new element. `lines`: `[{label, field, value}]` thresholds (minor units);
 * `marks`: `[{label, field, at, value}]` triggers. The element's `data-thresholds` and
 * `data-markers` say how many of each were drawn (what the browser tests read), and a list under
 * the chart says the same in words for screen readers.
 */
export function balanceChart(history, lines, marks, width) {
  const data = steps(history);
  const drawn = { thresholds: 0, markers: 0 };
  const values = data
    .slice(1)
    .flat()
    .concat(
      lines.map((l) => Number(l.value)),
      marks.map((m) => Number(m.value)),
    );
  const low = Math.min(...values);
  const high = Math.max(...values);
  const pad = (high - low || Math.abs(high) || 1) * 0.08;
  const box = h("figure", { class: "chart" });
  const options = {
    width,
    height: 320,
    scales: { x: { time: true }, y: { range: () => [low - pad, high + pad] } },
    series: [
      {},
      ...SERIES.map(([name, stroke]) => ({
        label: name,
        stroke,
        width: name === "balance" ? 2.5 : 1.5,
        paths: uPlot.paths.stepped({ align: 1 }),
        points: { show: false },
        value: (_u, v) => (v === null || v === undefined ? "—" : String(v)),
      })),
    ],
    axes: [{}, { size: 80 }],
    hooks: {
      draw: [
        (u) => {
          const ctx = u.ctx;
          drawn.thresholds = 0;
          drawn.markers = 0;
          ctx.save();
          ctx.font = `${12 * devicePixelRatio}px sans-serif`;
          ctx.textAlign = "right";
          ctx.textBaseline = "bottom";
          for (const line of lines) {
            const y = u.valToPos(Number(line.value), "y", true);
            ctx.strokeStyle = THRESHOLD;
            ctx.setLineDash([8 * devicePixelRatio, 5 * devicePixelRatio]);
            ctx.lineWidth = 1.5 * devicePixelRatio;
            ctx.beginPath();
            ctx.moveTo(u.bbox.left, y);
            ctx.lineTo(u.bbox.left + u.bbox.width, y);
            ctx.stroke();
            ctx.fillStyle = THRESHOLD;
            ctx.fillText(line.label, u.bbox.left + u.bbox.width - 6 * devicePixelRatio, y - 5 * devicePixelRatio);
            drawn.thresholds += 1;
          }
          ctx.setLineDash([]);
          for (const mark of marks) {
            const x = u.valToPos(new Date(mark.at).getTime() / 1000, "x", true);
            const y = u.valToPos(Number(mark.value), "y", true);
            ctx.fillStyle = MARKER;
            ctx.strokeStyle = "#ffffff";
            ctx.lineWidth = 2 * devicePixelRatio;
            ctx.beginPath();
            ctx.arc(x, y, 6 * devicePixelRatio, 0, 2 * Math.PI);
            ctx.fill();
            ctx.stroke();
            drawn.markers += 1;
          }
          ctx.restore();
          box.dataset.thresholds = String(drawn.thresholds);
          box.dataset.markers = String(drawn.markers);
        },
      ],
    },
  };
  const plot = h("div", { role: "img", "aria-label": "Chart of the balance over time, with monitor thresholds" });
  box.append(plot);
  box.append(
    h(
      "figcaption",
      {},
      h(
        "span",
        { class: "key" },
        h("span", { class: "swatch dashed", style: `border-color:${THRESHOLD}` }),
        "threshold",
      ),
      h("span", { class: "key" }, h("span", { class: "swatch dot", style: `background:${MARKER}` }), "trigger"),
      lines.length ? null : " · no monitor of this balance watches a charted total",
    ),
  );
  // uPlot measures its container, so it is made once the figure is in the page.
  requestAnimationFrame(() => new uPlot(options, data, plot));
  return box;
}

// Spend per day as a bar chart (vendored uPlot, loaded by index.html as window.uPlot), plus the same
// numbers as a table: the chart's text alternative, readable by screen readers and tests.

import {h, table, usd} from "./dom.js";

function cssVar(name, fallback) {
  const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return value || fallback;
}

function money(v) {
  const n = Number(v);
  return "$" + (n === 0 ? "0" : Math.abs(n) >= 1 ? n.toFixed(2) : Number(n.toPrecision(2)).toString());
}

function options(days, width) {
  const ink = cssVar("--muted", "#666");
  const grid = cssVar("--line", "#ddd");
  const accent = cssVar("--accent", "#2563eb");
  const uPlot = window.uPlot;
  return {
    width,
    height: 220,
    legend: {show: false},
    cursor: {drag: {x: false, y: false}},
    scales: {x: {time: false, range: [-0.5, days.length - 0.5]}, y: {range: (u, min, max) => [0, max > 0 ? max * 1.15 : 1]}},
    series: [
      {},
      {label: "Spend (USD)", stroke: accent, fill: accent, width: 0, points: {show: false},
        paths: uPlot.paths.bars({size: [0.6, 64]})},
    ],
    axes: [
      {stroke: ink, grid: {show: false}, ticks: {show: false}, splits: () => days.map((_, i) => i),
        values: (u, splits) => splits.map((i) => (days[i] || "").slice(5))},
      {stroke: ink, grid: {stroke: grid}, ticks: {stroke: grid}, size: 70,
        values: (u, splits) => splits.map(money)},
    ],
  };
}

/** A <figure data-testid="spend-chart"> for the /v1/costs?group_by=day groups. */
export function spendChart(groups) {
  const days = groups.map((g) => g.group);
  const spend = groups.map((g) => Number(g.cost_micro_usd || 0) / 1e6);
  const plot = h("div", {class: "chart", role: "img",
    "aria-label": `Spend per day for ${days.length} day(s); the table below has the numbers`});
  const rows = groups.map((g) => h("tr", {testid: "spend-day", "data-day": g.group},
    h("td", {}, g.group), h("td", {class: "num"}, usd(g.cost_micro_usd, true)),
    h("td", {class: "num"}, String(g.requests)),
    h("td", {class: "num"}, String(Number(g.prompt_tokens || 0) + Number(g.completion_tokens || 0)))));
  const figure = h("figure", {testid: "spend-chart", class: "spend"},
    days.length ? plot : h("p", {class: "muted"}, "No spend recorded yet."),
    table("Spend per day (UTC)", ["Day", "Cost", "Requests", "Tokens"], rows, "No requests yet."));
  if (days.length && window.uPlot) {
    // drawn once the figure is in the document, so it knows its width
    // the figure's width, not the plot's: the plot is as wide as its canvas and would never shrink
    const width = () => Math.max(figure.clientWidth, 200);
    requestAnimationFrame(() => {
      const chart = new window.uPlot(options(days, width()), [days.map((_, i) => i), spend], plot);
      new ResizeObserver(() => chart.setSize({width: width(), height: 220})).observe(figure);
    });
  }
  return figure;
}

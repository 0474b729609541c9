/* The run report's interactive charts (uPlot, inlined above this script).
 * Data: the JSON in <script id="tm-chart-data"> (tm_app/report/charts.py), times in epoch
 * seconds UTC. Every chart zooms by dragging (double-click resets) and shows values on hover;
 * the charts of one section share the cursor and the zoom. window.tmCharts holds the uPlot
 * instances by name, window.tmReportData the data (the browser test reads both). */
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("tm-chart-data").textContent);
  const charts = {};
  window.tmReportData = data;
  window.tmCharts = charts;

  const COLOURS = ["#1c7ed6", "#e8590c", "#2f9e44", "#ae3ec9", "#f08c00", "#0c8599"];
  const REGIME_COLOURS = {Bull: "rgba(64,192,87,0.13)", Neutral: "rgba(134,142,150,0.08)",
                          Bear: "rgba(253,126,20,0.15)", Crisis: "rgba(250,82,82,0.18)"};
  const utc = (secs) => secs == null ? "–"
    : new Date(secs * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC";
  const num = (d) => (u, v) => v == null ? "–" : v.toLocaleString("en-US",
    {minimumFractionDigits: d, maximumFractionDigits: d});
  const pct = (d) => (u, v) => v == null ? "–" : v.toFixed(d) + " %";
  const NO_POINTS = {show: false};        // hover still marks the point under the cursor
  const ratioPct = (u, v) => v == null ? "–" : (v * 100).toFixed(1) + " %";

  // a flat run still gets readable axes: drawdown down to at least −1 %, positions ±25 %
  const ddRange = (u, min) => [Math.min(-1, (min == null ? 0 : min) * 1.1), 0];
  const posRange = (u, min, max) => {
    const m = 1.1 * Math.max(0.25, Math.abs(min || 0), Math.abs(max || 0));
    return [-m, m];
  };

  function width(el) {
    return Math.max(320, (el.clientWidth || 900) - 4);
  }

  function base(el, height, yLabel, syncKey, extra) {
    return Object.assign({
      width: width(el), height: height,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      cursor: {sync: {key: syncKey, setSeries: true}, drag: {x: true, y: false}},
      scales: {x: {time: true}},
      legend: {live: true},
      axes: [{}, {label: yLabel, size: 70}],
    }, extra || {});
  }

  // the charts of one cursor-sync group also share the zoom: a new x range on one is set on
  // the others
  const groups = {};
  let zooming = true;          // until every chart has drawn: their own first ranges stay theirs

  function make(name, el, opts, rows) {
    const group = groups[opts.cursor.sync.key] = groups[opts.cursor.sync.key] || [];
    opts.hooks = opts.hooks || {};
    opts.hooks.setScale = [(u, key) => {
      if (key !== "x" || zooming) return;
      zooming = true;
      try {
        for (const o of group) if (o !== u) o.setScale("x", {min: u.scales.x.min, max: u.scales.x.max});
      } finally {
        zooming = false;
      }
    }];
    const u = new uPlot(opts, rows, el);
    group.push(u);
    charts[name] = u;
    return u;
  }

  function timeSeries() {
    return {label: "time (UTC)", value: (u, v) => utc(v)};
  }

  // background: the regime of data.markers.regime_instrument; dashed lines: breaker transitions
  function markerHooks() {
    const mk = data.markers;
    return {
      drawClear: [(u) => {
        const {ctx, bbox} = u;
        const rs = mk.regimes;
        ctx.save();
        for (let i = 0; i < rs.length; i++) {
          const x0 = Math.max(bbox.left, u.valToPos(rs[i].t, "x", true));
          const end = i + 1 < rs.length ? rs[i + 1].t : u.scales.x.max;
          const x1 = Math.min(bbox.left + bbox.width, u.valToPos(end, "x", true));
          if (x1 <= x0) continue;
          ctx.fillStyle = REGIME_COLOURS[rs[i].label] || "rgba(0,0,0,0)";
          ctx.fillRect(x0, bbox.top, x1 - x0, bbox.height);
        }
        ctx.restore();
      }],
      draw: [(u) => {
        const {ctx, bbox} = u;
        ctx.save();
        ctx.setLineDash([5, 4]);
        ctx.lineWidth = 1.5 * devicePixelRatio;
        for (const b of mk.breaker) {
          const x = u.valToPos(b.t, "x", true);
          if (x < bbox.left || x > bbox.left + bbox.width) continue;
          ctx.strokeStyle = b.to === "OPEN" ? "#e03131" : "#f08c00";
          ctx.beginPath();
          ctx.moveTo(x, bbox.top);
          ctx.lineTo(x, bbox.top + bbox.height);
          ctx.stroke();
        }
        ctx.restore();
      }],
    };
  }

  function equityCharts() {
    const e = data.equity, el = document.getElementById("chart-equity");
    if (!el) return;
    make("equity", el, base(el, 330, "equity (USDT)", "equity", {
      hooks: markerHooks(),
      series: [timeSeries(),
        {label: "strategy", stroke: COLOURS[0], width: 2, value: num(2), points: NO_POINTS},
        {label: "buy & hold (equal weight)", stroke: "#868e96", width: 1.5, dash: [6, 3],
         value: num(2), points: NO_POINTS}],
    }), [e.t, e.strategy, e.buy_and_hold]);
    const dd = document.getElementById("chart-drawdown");
    make("drawdown", dd, base(dd, 150, "drawdown %", "equity", {
      scales: {x: {time: true}, y: {range: ddRange}},
      series: [timeSeries(),
        {label: "drawdown", stroke: "#e03131", fill: "rgba(250,82,82,0.25)", width: 1,
         value: pct(2), points: NO_POINTS}],
    }), [e.t, e.drawdown_pct]);
  }

  function positionsChart(name, elId, p, syncKey) {
    const el = document.getElementById(elId);
    if (!el) return;
    const insts = Object.keys(p.series);
    make(name, el, base(el, 230, "position / equity", syncKey, {
      scales: {x: {time: true}, y: {range: posRange}},
      series: [timeSeries()].concat(insts.map((i, k) => ({
        label: i, stroke: COLOURS[k % COLOURS.length], width: 1.5, value: ratioPct, points: NO_POINTS,
        paths: uPlot.paths.stepped({align: 1})}))),
      axes: [{}, {label: "position / equity", size: 70,
                  values: (u, vs) => vs.map((v) => (v * 100).toFixed(0) + "%")}],
    }), [p.t].concat(insts.map((i) => p.series[i])));
  }

  function tiersChart(name, elId, z, syncKey) {
    const el = document.getElementById(elId);
    if (!el) return;
    const insts = Object.keys(z.series), n = insts.length;
    const off = (k) => (k - (n - 1) / 2) * 0.12;       // instruments side by side per tier
    make(name, el, base(el, 230, "", syncKey, {
      scales: {x: {time: true}, y: {range: [-0.5, z.tiers.length - 0.5]}},
      series: [timeSeries()].concat(insts.map((i, k) => ({
        label: i, stroke: COLOURS[k % COLOURS.length], width: 0, paths: () => null,
        points: {show: true, size: 5, fill: COLOURS[k % COLOURS.length]},
        value: (u, v) => v == null ? "–" : z.tiers[Math.round(v)]}))),
      axes: [{}, {size: 140, splits: () => z.tiers.map((_, i) => i),
                  values: (u, vs) => vs.map((v) => z.tiers[v] || "")}],
    }), [z.t].concat(insts.map((i, k) => z.series[i].map((v) => v == null ? null : v + off(k)))));
  }

  function challengerCharts() {
    const ch = data.challenger;
    if (!ch) return;
    const c = ch.compare, el = document.getElementById("chart-compare");
    const name = "challenger " + ch.candidate + " (shadow)";
    make("compare", el, base(el, 300, "equity (USDT)", "compare", {
      series: [timeSeries(),
        {label: "production", stroke: COLOURS[0], width: 2, value: num(2), spanGaps: true, points: NO_POINTS},
        {label: name, stroke: COLOURS[1], width: 2, value: num(2), spanGaps: true, points: NO_POINTS}],
    }), [c.t, c.production, c.challenger]);
    const dd = document.getElementById("chart-compare-drawdown");
    make("compareDrawdown", dd, base(dd, 150, "drawdown %", "compare", {
      scales: {x: {time: true}, y: {range: ddRange}},
      series: [timeSeries(),
        {label: "production", stroke: COLOURS[0], width: 1, value: pct(2), spanGaps: true, points: NO_POINTS},
        {label: name, stroke: COLOURS[1], width: 1, value: pct(2), spanGaps: true, points: NO_POINTS}],
    }), [c.t, c.production_dd_pct, c.challenger_dd_pct]);
    positionsChart("challengerPositions", "chart-challenger-positions", ch.positions, "chpos");
    tiersChart("challengerTiers", "chart-challenger-tiers", ch.tiers, "chpos");
  }

  equityCharts();
  positionsChart("positions", "chart-positions", data.positions, "pos");
  tiersChart("tiers", "chart-tiers", data.tiers, "pos");
  challengerCharts();

  let pending = null;
  window.addEventListener("resize", () => {
    clearTimeout(pending);
    pending = setTimeout(() => {
      for (const u of Object.values(charts)) {
        u.setSize({width: width(u.root.parentElement), height: u.height});
      }
    }, 100);
  });
  setTimeout(() => { zooming = false; }, 0);
  document.body.dataset.charts = Object.keys(charts).length;
})();

/* The cabinet's report charts: drawn with plotly.js (served by the cabinet itself) from the JSON block
   #report-data of the page. Each chart has a table with the same figures under it. */
(function () {
  "use strict";
  function draw() {
    var block = document.getElementById("report-data");
    if (!block || typeof window.Plotly === "undefined") { return; }
    var data = JSON.parse(block.textContent);
    var config = { displayModeBar: false, responsive: true, locale: "ru" };
    var font = { family: "system-ui, sans-serif", size: 13, color: "#1b1f24" };
    var base = function (extra) {
      var layout = { font: font, margin: { l: 60, r: 20, t: 30, b: 40 }, height: 340,
        paper_bgcolor: "#ffffff", plot_bgcolor: "#ffffff", legend: { orientation: "h", y: -0.2 } };
      Object.keys(extra).forEach(function (key) { layout[key] = extra[key]; });
      return layout;
    };
    var short = function (names) {
      return names.map(function (name) { return name.length > 28 ? name.slice(0, 27) + "…" : name; });
    };
    var criteria = data.criteria;
    window.Plotly.newPlot("chart-criteria", [
      { type: "bar", name: "Средняя оценка (1–5)", x: short(criteria.names), y: criteria.mean,
        hovertext: criteria.names, marker: { color: "#0b5cad" } },
      { type: "bar", name: "Доля 4–5, %", x: short(criteria.names),
        y: criteria.positive.map(function (v) { return v === null ? null : Math.round(v * 1000) / 10; }),
        yaxis: "y2", hovertext: criteria.names, marker: { color: "#2e7d32" } }
    ], base({ barmode: "group", yaxis: { title: { text: "Средняя" }, range: [0, 5] },
      yaxis2: { title: { text: "%" }, overlaying: "y", side: "right", range: [0, 100] } }), config);
    var colours = ["#b3261e", "#e8710a", "#f2c94c", "#7cb342", "#2e7d32"];
    var dist = data.distribution;
    window.Plotly.newPlot("chart-distribution", ["1", "2", "3", "4", "5"].map(function (value, index) {
      return { type: "bar", orientation: "h", name: "Оценка " + value, y: short(dist.names), x: dist.values[value],
        marker: { color: colours[index] } };
    }), base({ barmode: "stack", margin: { l: 210, r: 20, t: 30, b: 40 }, yaxis: { automargin: true } }), config);
    var series = data.series;
    window.Plotly.newPlot("chart-series", [
      { type: "scatter", mode: "lines+markers", name: "Уведомлено", x: series.x, y: series.notified },
      { type: "scatter", mode: "lines+markers", name: "Ответов", x: series.x, y: series.responses },
      { type: "scatter", mode: "lines+markers", name: "Индекс удовлетворённости, %", x: series.x, yaxis: "y2",
        y: series.index.map(function (v) { return v === null ? null : Math.round(v * 1000) / 10; }) }
    ], base({ xaxis: { type: "date" }, yaxis: { title: { text: "Число" }, rangemode: "tozero" },
      yaxis2: { title: { text: "%" }, overlaying: "y", side: "right", range: [0, 100] } }), config);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();

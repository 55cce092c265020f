/* breachtrace report: draws the plotly figures from the JSON island, filters the timeline,
   sorts and filters tables. Data is only ever set as text (textContent), never as markup. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("bt-data").textContent);
  var config = { displaylogo: false, responsive: true, scrollZoom: true };
  var state = { timelineShown: 0, findingsShown: 0, ready: false };
  window.btReport = state;

  function draw(id, figure) {
    var el = document.getElementById(id);
    if (!el || !figure) return null;
    Plotly.newPlot(el, figure.data, figure.layout || {}, config);
    return el;
  }

  draw("graph", data.graph);

  // Timeline: keep the original traces; filtering rebuilds each trace from the rows it keeps.
  var timeline = data.timeline;
  var originals = timeline ? timeline.data.map(function (t) { return Object.assign({}, t); }) : [];
  var rows = data.rows || [];
  var selects = Array.prototype.slice.call(document.querySelectorAll("#timeline-filters select"));
  var columns = { host: 0, user: 1, kind: 2 };

  function keep(i) {
    return selects.every(function (s) {
      return !s.value || rows[i][columns[s.getAttribute("data-filter")]] === s.value;
    });
  }

  function pick(values, positions) {
    if (!Array.isArray(values)) return values;
    return positions.map(function (p) { return values[p]; });
  }

  function filterTimeline() {
    var shown = 0;
    var traces = originals.map(function (t) {
      var positions = [];
      (t.customdata || []).forEach(function (rowIndex, p) { if (keep(rowIndex)) positions.push(p); });
      shown += positions.length;
      var copy = Object.assign({}, t, {
        x: pick(t.x, positions), y: pick(t.y, positions), customdata: pick(t.customdata, positions),
        hovertext: pick(t.hovertext, positions)
      });
      if (t.marker) copy.marker = Object.assign({}, t.marker, { symbol: pick(t.marker.symbol, positions) });
      return copy;
    });
    state.timelineShown = shown;
    document.getElementById("timeline-count").textContent = String(shown);
    Plotly.react("timeline", traces, timeline.layout, config);
  }

  if (timeline && document.getElementById("timeline")) {
    draw("timeline", timeline);
    state.timelineShown = rows.length;
    selects.forEach(function (s) { s.addEventListener("change", filterTimeline); });
    document.getElementById("timeline-reset").addEventListener("click", function () {
      selects.forEach(function (s) { s.value = ""; });
      filterTimeline();
    });
  }

  // Tables: click a header to sort; the findings table filters by text and minimum severity.
  var severityRank = { informational: 0, low: 1, medium: 2, high: 3, critical: 4 };

  function cellValue(row, index, type) {
    var text = row.cells[index] ? row.cells[index].textContent.trim() : "";
    if (type === "num") { var n = parseFloat(text.replace(/,/g, "")); return isNaN(n) ? -Infinity : n; }
    if (type === "severity") return severityRank[text] === undefined ? -1 : severityRank[text];
    return text.toLowerCase();
  }

  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      th.addEventListener("click", function () {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(table.tHead.rows[0].cells, function (o) { o.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var type = th.getAttribute("data-type");
        var body = table.tBodies[0];
        var sorted = Array.prototype.slice.call(body.rows).sort(function (a, b) {
          var x = cellValue(a, index, type), y = cellValue(b, index, type);
          return (x < y ? -1 : x > y ? 1 : 0) * (ascending ? 1 : -1);
        });
        sorted.forEach(function (r) { body.appendChild(r); });
      });
    });
  });

  var findingsTable = document.getElementById("findings");
  var search = document.getElementById("findings-filter");
  var minimum = document.getElementById("findings-severity");

  function filterFindings() {
    var words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    var floor = minimum.value ? severityRank[minimum.value] : -1;
    var shown = 0;
    Array.prototype.forEach.call(findingsTable.tBodies[0].rows, function (row) {
      var text = row.textContent.toLowerCase();
      var ok = (severityRank[row.getAttribute("data-severity")] || 0) >= floor &&
        words.every(function (w) { return text.indexOf(w) >= 0; });
      row.hidden = !ok;
      if (ok) shown += 1;
    });
    state.findingsShown = shown;
    document.getElementById("findings-count").textContent = String(shown);
  }

  if (findingsTable) {
    state.findingsShown = findingsTable.tBodies[0].rows.length;
    search.addEventListener("input", filterFindings);
    minimum.addEventListener("change", filterFindings);
  }
  state.ready = true;
})();

/* The BPMN heatmap: bpmn-js NavigatedViewer with one overlay per element (entries, average duration). */
(function () {
  "use strict";
  var container = document.getElementById("heatmap");
  var status = document.getElementById("heatmap-status");
  if (!container) { return; }
  function say(text) { if (status) { status.textContent = text; } }
  // The sentences come from the page, in the reader's language ({count}, {average} filled in here).
  var texts = container.dataset;
  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (all, key) { return key in values ? String(values[key]) : all; });
  }
  if (typeof BpmnJS === "undefined") { say(texts.textUnavailable || "The diagram viewer could not be loaded; the table below has the figures."); return; }

  function fetchText(url) {
    return fetch(url, { credentials: "same-origin" }).then(function (r) {
      if (!r.ok) { throw new Error(r.status === 404 ? (texts.textMissing || "No BPMN diagram is available for this version.") : "HTTP " + r.status); }
      return r.text();
    });
  }

  function badge(figures) {
    var level = figures.entered ? 1 + Math.min(4, Math.floor(figures.heat * 4.999)) : 0;
    var el = document.createElement("div");
    el.className = "heat-badge heat-" + level;
    el.title = (figures.name ? figures.name + ": " : "") +
      fill(texts.textEntered || "{count} entered, average {average}", { count: figures.entered, average: figures.avg_label });
    el.textContent = String(figures.entered);
    var small = document.createElement("small");
    small.textContent = " · " + figures.avg_label;
    el.appendChild(small);
    return { el: el, level: level };
  }

  var viewer = new BpmnJS({ container: container });
  Promise.all([fetchText(container.dataset.xmlUrl), fetchText(container.dataset.dataUrl)])
    .then(function (answers) {
      var figures = JSON.parse(answers[1]);
      return viewer.importXML(answers[0]).then(function () { return figures; });
    })
    .then(function (figures) {
      var canvas = viewer.get("canvas");
      var overlays = viewer.get("overlays");
      var registry = viewer.get("elementRegistry");
      canvas.zoom("fit-viewport", "auto");
      var placed = 0;
      Object.keys(figures.elements).forEach(function (id) {
        if (!registry.get(id)) { return; }
        var b = badge(figures.elements[id]);
        b.el.dataset.element = id;
        overlays.add(id, "heatmap", { position: { top: -12, right: 12 }, html: b.el });
        if (b.level) { canvas.addMarker(id, "heat-fill-" + b.level); }
        placed += 1;
      });
      container.dataset.overlays = String(placed);
      say(fill(texts.textPlaced || ("Figures for " + figures.day_from + " – " + figures.day_to + " on {count} elements. Drag to move, scroll to zoom."), { count: placed }));
    })
    .catch(function (err) { container.dataset.overlays = "0"; say(err.message + " " + (texts.textTable || "The table below has the figures.")); });
})();

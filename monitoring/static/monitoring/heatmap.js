/* The BPMN heatmap: bpmn-js NavigatedViewer with one overlay per element (entries, average duration). */
(function () {
  "use strict";
  var container = document.getElementById("heatmap");
  var status = document.getElementById("heatmap-status");
  if (!container) { return; }
  function say(text) { if (status) { status.textContent = text; } }
  if (typeof BpmnJS === "undefined") { say("The diagram viewer could not be loaded; the table below has the figures."); return; }

  function fetchText(url) {
    return fetch(url, { credentials: "same-origin" }).then(function (r) {
      if (!r.ok) { throw new Error(r.status === 404 ? "No BPMN diagram is available for this version." : "HTTP " + r.status); }
      return r.text();
    });
  }

  function badge(figures) {
    var level = figures.entered ? 1 + Math.min(4, Math.floor(figures.heat * 4.999)) : 0;
    var el = document.createElement("div");
    el.className = "heat-badge heat-" + level;
    el.title = (figures.name ? figures.name + ": " : "") + figures.entered + " entered, average " + figures.avg_label;
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
      say("Figures for " + figures.day_from + " – " + figures.day_to + " on " + placed + " elements. Drag to move, scroll to zoom.");
    })
    .catch(function (err) { container.dataset.overlays = "0"; say(err.message + " The table below has the figures."); });
})();

/* Dashboard charts (Chart.js); the data comes from the page's json_script block, never inline JS. */
(function () {
  "use strict";
  var source = document.getElementById("dashboard-data");
  if (!source || typeof Chart === "undefined") { return; }
  var data = JSON.parse(source.textContent);
  var text = data.text || {};
  // Labels come from the page in the reader's language; numbers on the axes follow it too (1.234 / 1,234).
  var common = { responsive: true, maintainAspectRatio: false, animation: false, locale: data.locale || "en", plugins: { legend: { position: "bottom" } } };

  function draw(id, config) {
    var canvas = document.getElementById(id);
    if (canvas) { canvas.chart = new Chart(canvas, config); canvas.dataset.rendered = "1"; }
  }

  draw("chart-throughput", {
    type: "line",
    data: {
      labels: data.days,
      datasets: [
        { label: text.started || "Started", data: data.started, borderColor: "#0d6efd", backgroundColor: "rgba(13,110,253,.15)", fill: true, tension: .2 },
        { label: text.completed || "Completed", data: data.completed, borderColor: "#198754", backgroundColor: "rgba(25,135,84,.10)", fill: true, tension: .2 }
      ]
    },
    options: Object.assign({}, common, { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } })
  });

  draw("chart-basket", {
    type: "bar",
    data: {
      labels: data.roles,
      datasets: [
        { label: text.open || "Open", data: data.role_open, backgroundColor: "#0dcaf0" },
        { label: text.claimed || "Claimed", data: data.role_claimed, backgroundColor: "#6610f2" }
      ]
    },
    options: Object.assign({}, common, { indexAxis: "y", scales: { x: { stacked: true, beginAtZero: true, ticks: { precision: 0 } }, y: { stacked: true } } })
  });

  draw("chart-sla", {
    type: "bar",
    data: { labels: data.sla_labels, datasets: [{ label: text.on_time || "On time (%)", data: data.sla_percent, backgroundColor: "#20c997" }] },
    options: Object.assign({}, common, { scales: { y: { beginAtZero: true, max: 100 } } })
  });
})();

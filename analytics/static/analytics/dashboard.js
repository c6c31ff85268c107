"use strict";
// Draws the dashboard's charts from the figures the page embeds (#dashboard-charts).
(function () {
  const data = JSON.parse(document.getElementById("dashboard-charts").textContent);
  const colors = { jobs: "#417690", synced: "#4caf50", failed: "#ba2121", p50: "#79aec8", p95: "#f5a623", revenue: "#264b5d" };
  const common = {
    responsive: true,
    maintainAspectRatio: false,
    animation: false,
    interaction: { mode: "index", intersect: false },
    scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
  };

  function draw(id, config) {
    const canvas = document.getElementById(id);
    new Chart(canvas, config);
    canvas.dataset.rendered = "true";
  }

  function counts(series) {
    return [
      { label: "Jobs created", data: series.jobs_created, backgroundColor: colors.jobs },
      { label: "Routings synced", data: series.routings_synced, backgroundColor: colors.synced },
      { label: "Failed provider calls", data: series.failed_calls, backgroundColor: colors.failed },
    ];
  }

  draw("chart-hourly", { type: "bar", data: { labels: data.hourly.labels, datasets: counts(data.hourly) }, options: common });
  draw("chart-daily", { type: "bar", data: { labels: data.daily.labels, datasets: counts(data.daily) }, options: common });
  draw("chart-latency", {
    type: "line",
    data: {
      labels: data.daily.labels,
      datasets: [
        { label: "p50", data: data.daily.latency_p50, borderColor: colors.p50, backgroundColor: colors.p50, spanGaps: true },
        { label: "p95", data: data.daily.latency_p95, borderColor: colors.p95, backgroundColor: colors.p95, spanGaps: true },
      ],
    },
    options: common,
  });
  draw("chart-revenue", {
    type: "bar",
    data: { labels: data.daily.labels, datasets: [{ label: "Revenue ($)", data: data.daily.revenue, backgroundColor: colors.revenue }] },
    options: common,
  });
})();

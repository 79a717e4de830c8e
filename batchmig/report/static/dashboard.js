// batchmig dashboard: the report's views over a live run (see batchmig/web/app.py).
// The page carries the run's view as it was when served; server-sent events bring each
// new one. Cutover requests carry the page's CSRF token; the access token travels in
// the HttpOnly cookie the dashboard set, never in this script.
"use strict";
(function () {
  const app = document.getElementById("app");
  if (!app || app.dataset.mode !== "live") return;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const run = decodeURIComponent(location.pathname.split("/")[2]);
  const base = "/api/runs/" + encodeURIComponent(run);

  async function answer(response) {
    let body = null;
    try { body = await response.json(); } catch (error) { body = null; }
    if (!response.ok) throw new Error((body && body.error) || "HTTP " + response.status);
    return body;
  }

  const view = new window.BatchmigReport.ReportView(app, JSON.parse(document.getElementById("batchmig-data").textContent), {
    live: true,
    loadInstance: async (id) => answer(await fetch(base + "/instances/" + encodeURIComponent(id), { credentials: "same-origin" })),
    onCutover: async (request) => {
      const body = await answer(await fetch(base + "/cutover", {
        method: "POST", credentials: "same-origin", body: JSON.stringify(request),
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      }));
      return body.message;
    },
  });
  view.fromHash();

  const events = new EventSource(base + "/events");
  events.addEventListener("view", (event) => view.update(JSON.parse(event.data)));
  events.addEventListener("error", () => { app.dataset.connection = "lost"; });
  events.addEventListener("open", () => { app.dataset.connection = "open"; });
})();

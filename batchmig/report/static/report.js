// batchmig report: draws a run's view document (batchmig/report/view.py) into #app.
// The HTML report runs it over the data it carries; the dashboard runs it over data it
// fetches, again and again while the run works (then options.live is set). No network
// access of its own, no library: everything a page shows is built here with the DOM.
"use strict";
(function () {
  const VIEW_VERSION = 1;
  const PAGE_SIZE = 100;
  const ATTENTION = ["needs_attention", "failed", "skipped", "interrupted", "awaiting_cutover", "running", "pending", "succeeded"];

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  const svgNS = "http://www.w3.org/2000/svg";
  function svg(tag, attrs) {
    const node = document.createElementNS(svgNS, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    return node;
  }
  function colorOf(status) {
    return getComputedStyle(document.documentElement).getPropertyValue("--" + status).trim() || "#78909c";
  }
  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "";
    if (seconds < 60) return seconds.toFixed(seconds < 10 ? 1 : 0) + " s";
    const m = Math.floor(seconds / 60), s = Math.round(seconds % 60);
    if (m < 60) return m + " min " + s + " s";
    return Math.floor(m / 60) + " h " + (m % 60) + " min";
  }
  function when(iso) { return iso ? iso.replace("T", " ").replace(/\.\d+Z$/, "Z") : ""; }
  function badge(status) { return el("span", { class: "badge st-" + status, text: status.replace("_", " ") }); }

  class ReportView {
    constructor(root, data, options) {
      this.root = root;
      this.options = options || {};
      this.filter = { status: "", wave: "", provider: "", tag: "", text: "" };
      this.page = 0;
      this.selected = new Set();
      this.zoom = null;
      this.openInstance = null;
      this.colors = {};
      window.addEventListener("hashchange", () => this.fromHash());
      this.update(data);
    }

    update(data) {
      if (data.version !== VIEW_VERSION) throw new Error("report view version " + data.version + " is not " + VIEW_VERSION);
      this.data = data;
      for (const status of data.statuses) this.colors[status] = colorOf(status);
      this.render();
    }

    instance(row) {
      const d = this.data;
      return { id: row[0], provider: d.providers[row[1]], wave: d.wave_names[row[2]], status: d.statuses[row[3]],
               step: row[4], error: row[5], steps: row[6], tags: row[7] || {}, manual: row[8] === 1 };
    }

    errorOf(position) {
      const row = this.data.instances[position];
      if (row[5] < 0) return null;
      const [code, kind, members] = this.data.errors[row[5]];
      const member = members.find((m) => m[0] === position);
      return { code, kind, message: this.data.messages[member[1]], request_id: member[2], step: member[3] };
    }

    render() {
      const d = this.data;
      const scrollY = window.scrollY;
      this.root.replaceChildren(...[
        this.header(), this.detailPanel(), this.countsSection(), this.wavesSection(), this.timelineSection(),
        this.trafficSection(), this.errorsSection(), this.tableSection(), this.cutoverSection(),
        this.invocationsSection(), this.options.live ? this.cutoverBar() : null,
      ].filter((node) => node));
      this.drawTimeline();
      window.scrollTo(0, scrollY);
      this.root.dataset.rendered = d.generated;
    }

    header() {
      const d = this.data;
      const mode = d.sandbox ? el("span", { class: "badge sandbox", text: "sandbox rehearsal" })
        : el("span", { class: "badge cloud", text: "live cloud" });
      const who = d.invocations.length ? d.invocations[0] : null;
      return el("header", {},
        el("h1", {}, "batchmig run " + d.run + " ", badge(d.state), " ", mode,
          this.options.live ? el("span", { class: "badge live", text: "live" }) : null),
        el("div", { class: "meta" },
          el("span", {}, "plan ", el("b", { text: d.plan })),
          el("span", { title: d.plan_sha256, text: "sha256 " + (d.plan_sha256 || "").slice(0, 12) }),
          who ? el("span", { text: "started by " + (who[4] || "?") + "@" + (who[5] || "?") }) : null,
          el("span", { text: "created " + when(d.started) }),
          d.ended ? el("span", { text: "ended " + when(d.ended) }) : null,
          el("span", { text: "elapsed " + duration(d.elapsed_seconds !== null ? d.elapsed_seconds : d.now) }),
          el("span", { text: "runner time " + duration(d.duration_seconds) }),
          el("span", { text: (this.options.live ? "updated " : "report of ") + when(d.generated) })),
        d.start_error ? el("div", { class: "msg err", text: "not started: " + d.start_error }) : null);
    }

    countsSection() {
      const d = this.data;
      const total = d.instances.length;
      const tiles = [el("div", { class: "tile" }, el("b", { text: total }), "instances")];
      for (const status of ATTENTION) {
        const count = d.counts[status];
        if (!count) continue;
        tiles.push(el("div", { class: "tile", style: "border-left-color:" + this.colors[status] },
          el("b", { text: count }), el("a", { class: "inst", onclick: () => this.setFilter({ status }) }, status.replace("_", " "))));
      }
      const c = d.calls;
      tiles.push(el("div", { class: "tile" }, el("b", { text: c.calls }), "API calls"),
        el("div", { class: "tile" }, el("b", { text: c.throttled }), "throttled"),
        el("div", { class: "tile" }, el("b", { text: c.retries }), "retries"));
      return el("section", { id: "counts" }, el("h2", { text: "Instances" }), el("div", { class: "tiles" }, tiles));
    }

    wavesSection() {
      const rows = this.data.waves.map(([name, total, counts]) => {
        const bar = el("div", { class: "bar", title: JSON.stringify(counts) });
        for (const status of ATTENTION.slice().reverse()) {
          if (counts[status]) bar.append(el("span", { style: `width:${100 * counts[status] / total}%;background:${this.colors[status]}` }));
        }
        const done = (counts.succeeded || 0);
        return el("div", { class: "wave" }, el("a", { class: "inst", onclick: () => this.setFilter({ wave: name }) }, name), bar,
          el("span", { class: "muted", text: `${done} of ${total} succeeded` + (counts.failed ? `, ${counts.failed} failed` : "") }));
      });
      return el("section", { id: "waves" }, el("h2", { text: "Waves" }), rows);
    }

    // ------------------------------------------------------------- timeline

    timelineSection() {
      const canvas = el("canvas", { id: "timeline", "aria-label": "timeline of every instance's steps" });
      const tip = el("div", { class: "tip" });
      this.canvas = canvas;
      this.tip = tip;
      const legend = el("div", { class: "legend" }, ATTENTION.filter((s) => s !== "pending").map((s) =>
        el("span", {}, el("i", { style: "background:" + this.colors[s] }), s.replace("_", " "))));
      const controls = el("div", { class: "controls" },
        el("button", { onclick: () => this.zoomTime(0.5) }, "zoom in"),
        el("button", { onclick: () => this.zoomTime(2) }, "zoom out"),
        el("button", { onclick: () => this.zoomRows(2) }, "taller rows"),
        el("button", { onclick: () => this.zoomRows(0.5) }, "shorter rows"),
        el("button", { onclick: () => { this.zoom = null; this.drawTimeline(); } }, "fit"),
        el("span", { class: "muted", text: "wheel: zoom time · shift+wheel: scroll rows · drag: pan · click a bar: its instance" }));
      this.bindTimeline(canvas, tip);
      return el("section", { id: "timeline-section" },
        el("h2", { text: "Timeline (one row per instance, one bar per step; rows follow the table's filters)" }),
        controls, legend, el("div", { class: "timeline-box" }, canvas, tip));
    }

    timelineRows() { return this.filtered(); }

    fit(rows, height) {
      let end = this.data.now;
      for (const i of rows) for (const s of this.data.instances[i][6]) end = Math.max(end, s[1] + (s[2] === null ? 0 : s[2]));
      return { t0: 0, t1: Math.max(end, 1) * 1.01, top: 0, rowH: Math.max(height / Math.max(rows.length, 1), 0.05) };
    }

    drawTimeline() {
      const canvas = this.canvas;
      if (!canvas || !canvas.isConnected) return;
      const ratio = window.devicePixelRatio || 1;
      const width = canvas.clientWidth || 1000, height = canvas.clientHeight || 440;
      canvas.width = Math.round(width * ratio);
      canvas.height = Math.round(height * ratio);
      const g = canvas.getContext("2d");
      g.setTransform(ratio, 0, 0, ratio, 0, 0);
      g.clearRect(0, 0, width, height);
      const rows = this.timelineRows();
      const axis = 22, plotH = height - axis;
      const z = this.zoom || this.fit(rows, plotH);
      const labels = z.rowH >= 9;
      const left = labels ? 150 : 0, plotW = width - left;
      this.geometry = { rows, axis, left, plotW, plotH, z };
      const x = (t) => left + (t - z.t0) / (z.t1 - z.t0) * plotW;
      g.font = "11px system-ui, sans-serif";
      // time axis: about eight ticks at a round number of seconds
      const span = z.t1 - z.t0;
      const step = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400]
        .find((s) => span / s <= 8) || 86400;
      g.fillStyle = "#5f6b73";
      g.strokeStyle = "#e3e8eb";
      for (let t = Math.ceil(z.t0 / step) * step; t <= z.t1; t += step) {
        const px = x(t);
        g.beginPath(); g.moveTo(px, axis); g.lineTo(px, height); g.stroke();
        g.fillText("+" + duration(t), px + 2, 14);
      }
      const first = Math.max(0, Math.floor(z.top)), last = Math.min(rows.length, Math.ceil(z.top + plotH / z.rowH) + 1);
      const barH = z.rowH >= 3 ? z.rowH * 0.75 : Math.max(z.rowH, 1);
      let drawn = 0;
      // two passes so a failure is never painted over by a success in a crowded pixel row
      for (const pass of [0, 1]) {
        for (let r = first; r < last; r++) {
          const row = this.data.instances[rows[r]];
          const y = axis + (r - z.top) * z.rowH;
          for (const s of row[6]) {
            const status = this.data.statuses[s[3]];
            const bad = status !== "succeeded" && status !== "running";
            if ((pass === 0) === bad) continue;
            const end = s[2] === null ? this.data.now : s[1] + s[2];
            const x0 = x(s[1]), x1 = x(end);
            if (x1 < left || x0 > width) continue;
            g.fillStyle = this.colors[status];
            const w = x1 - Math.max(x0, left);
            g.fillRect(Math.max(x0, left), y, w > 3 ? w - 1 : Math.max(w, 1), barH);
            drawn++;
          }
        }
      }
      if (labels) {
        g.fillStyle = "#fff";
        g.fillRect(0, axis, left - 2, plotH);
        g.fillStyle = "#1d2327";
        for (let r = first; r < last; r++) {
          g.fillText(this.data.instances[rows[r]][0].slice(0, 24), 4, axis + (r - z.top) * z.rowH + Math.min(z.rowH, 12) - 2);
        }
      }
      canvas.dataset.rows = String(rows.length);
      canvas.dataset.bars = String(drawn);
    }

    zoomTime(factor, at) {
      const g = this.geometry;
      const z = Object.assign({}, this.zoom || g.z);
      const center = at !== undefined ? at : (z.t0 + z.t1) / 2;
      z.t0 = center - (center - z.t0) * factor;
      z.t1 = center + (z.t1 - center) * factor;
      if (z.t1 - z.t0 < 0.5) return;
      this.zoom = z;
      this.drawTimeline();
    }

    zoomRows(factor) {
      const g = this.geometry;
      const z = Object.assign({}, this.zoom || g.z);
      const middle = z.top + g.plotH / z.rowH / 2;
      z.rowH = Math.min(Math.max(z.rowH * factor, 0.05), 40);
      z.top = Math.max(0, middle - g.plotH / z.rowH / 2);
      this.zoom = z;
      this.drawTimeline();
    }

    hit(event) {
      const g = this.geometry;
      if (!g) return null;
      const rect = this.canvas.getBoundingClientRect();
      const px = event.clientX - rect.left, py = event.clientY - rect.top;
      if (py < g.axis || px < g.left) return null;
      const r = Math.floor(g.z.top + (py - g.axis) / g.z.rowH);
      if (r < 0 || r >= g.rows.length) return null;
      const t = g.z.t0 + (px - g.left) / g.plotW * (g.z.t1 - g.z.t0);
      const position = g.rows[r];
      const row = this.data.instances[position];
      const slack = 2 * (g.z.t1 - g.z.t0) / g.plotW;
      const step = row[6].find((s) => t >= s[1] - slack && t <= (s[2] === null ? this.data.now : s[1] + s[2]) + slack);
      return { position, row, step, px, py, t };
    }

    bindTimeline(canvas, tip) {
      let drag = null;
      canvas.addEventListener("wheel", (event) => {
        event.preventDefault();
        const g = this.geometry;
        if (event.shiftKey) {
          const z = Object.assign({}, this.zoom || g.z);
          z.top = Math.min(Math.max(0, z.top + Math.sign(event.deltaY || event.deltaX) * g.plotH / z.rowH / 10), Math.max(0, g.rows.length - 1));
          this.zoom = z;
          this.drawTimeline();
        } else {
          const rect = canvas.getBoundingClientRect();
          const t = g.z.t0 + (event.clientX - rect.left - g.left) / g.plotW * (g.z.t1 - g.z.t0);
          this.zoomTime(event.deltaY > 0 ? 1.25 : 0.8, t);
        }
      }, { passive: false });
      canvas.addEventListener("mousedown", (event) => { drag = { x: event.clientX, y: event.clientY, z: Object.assign({}, this.zoom || this.geometry.z), moved: false }; });
      window.addEventListener("mouseup", (event) => {
        if (drag && !drag.moved && event.target === canvas) {
          const found = this.hit(event);
          if (found) this.showInstance(found.row[0]);
        }
        drag = null;
      });
      canvas.addEventListener("mousemove", (event) => {
        const g = this.geometry;
        if (drag && g) {
          const dx = event.clientX - drag.x, dy = event.clientY - drag.y;
          if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
          if (drag.moved) {
            const z = Object.assign({}, drag.z), dt = dx / g.plotW * (z.t1 - z.t0);
            z.t0 -= dt; z.t1 -= dt;
            z.top = Math.max(0, z.top - dy / z.rowH);
            this.zoom = z;
            this.drawTimeline();
            return;
          }
        }
        const found = this.hit(event);
        if (!found) { tip.style.display = "none"; return; }
        const inst = this.instance(found.row);
        let text = `${inst.id} · ${inst.wave} · ${inst.status}`;
        if (found.step) {
          const s = found.step;
          text += `\n${this.data.step_names[s[0]]}: ${this.data.statuses[s[3]]}, +${duration(s[1])}` +
            (s[2] === null ? " (still going)" : `, ${duration(s[2])}`);
        }
        tip.textContent = text;
        tip.style.display = "block";
        tip.style.left = Math.min(found.px + 12, canvas.clientWidth - 260) + "px";
        tip.style.top = (found.py + 12) + "px";
      });
      canvas.addEventListener("mouseleave", () => { tip.style.display = "none"; });
      window.addEventListener("resize", () => this.drawTimeline());
    }

    // ------------------------------------------------------------- traffic

    trafficSection() {
      const keys = this.data.keys.filter((k) => k.series && k.admitted);
      const section = el("section", { id: "traffic" }, el("h2", { text: "Calls per second per key, against its cap" }));
      if (!keys.length) {
        section.append(el("p", { class: "muted", text: this.data.keys.length ? "No per-second figures in this report." : "No API calls yet." }));
        return section;
      }
      let end = 0;
      for (const k of keys) end = Math.max(end, k.series.start + k.series.calls.length * k.series.bucket);
      const totals = { throttled: [], retries: [], bucket: keys[0].series.bucket, start: keys[0].series.start };
      for (const k of keys) {
        k.series.throttled.forEach((n, i) => { totals.throttled[i] = (totals.throttled[i] || 0) + n; });
        k.series.retries.forEach((n, i) => { totals.retries[i] = (totals.retries[i] || 0) + n; });
      }
      section.append(el("div", { class: "legend" },
        el("span", {}, el("i", { style: "background:#1565c0" }), "calls/s"),
        el("span", {}, el("i", { style: "background:#e08600" }), "cap"),
        el("span", {}, el("i", { style: "background:#c62828" }), "throttled/s"),
        el("span", {}, el("i", { style: "background:#6d4c41" }), "retries/s")));
      const charts = el("div", { class: "charts" });
      charts.append(this.chart("throttles and retries, every key", [
        { values: totals.throttled, color: "#c62828" }, { values: totals.retries, color: "#6d4c41" }],
      totals.start, totals.bucket, end, null));
      keys.sort((a, b) => b.admitted - a.admitted);
      for (const k of keys) {
        const title = `${k.key} — ${k.admitted} calls, cap ${k.cap}/s, most in one second ${k.max_in_window}` +
          (k.throttled ? `, ${k.throttled} throttled` : "") + (k.rate !== null && k.rate < k.cap ? `, now ${k.rate.toFixed(1)}/s` : "");
        charts.append(this.chart(title, [
          { values: k.series.calls, color: "#1565c0" }, { values: k.series.throttled, color: "#c62828" },
          { values: k.series.retries, color: "#6d4c41" }], k.series.start, k.series.bucket, end, k.cap));
      }
      section.append(charts);
      return section;
    }

    chart(title, lines, start, bucket, end, cap) {
      const W = 320, H = 110, pad = 22;
      let top = cap || 0;
      for (const line of lines) for (const v of line.values) top = Math.max(top, v / bucket);
      top = top * 1.1 || 1;
      const box = svg("svg", { viewBox: `0 0 ${W} ${H + 14}`, preserveAspectRatio: "none", role: "img" });
      const x = (t) => pad + t / Math.max(end, 1) * (W - pad - 4);
      const y = (v) => H - v / top * (H - 8);
      box.append(svg("line", { x1: pad, y1: H, x2: W - 4, y2: H, stroke: "#b0bec5" }));
      const label = svg("text", { x: 0, y: 10, "font-size": 9, fill: "#5f6b73" });
      label.textContent = top >= 10 ? Math.round(top) : top.toFixed(1);
      box.append(label);
      const endLabel = svg("text", { x: W - 40, y: H + 12, "font-size": 9, fill: "#5f6b73" });
      endLabel.textContent = "+" + duration(end);
      box.append(endLabel);
      if (cap) box.append(svg("line", { x1: pad, x2: W - 4, y1: y(cap), y2: y(cap), stroke: "#e08600", "stroke-dasharray": "4 3" }));
      for (const line of lines) {
        if (!line.values.some((v) => v)) continue;
        const points = line.values.map((v, i) => `${x(start + (i + 0.5) * bucket).toFixed(1)},${y(v / bucket).toFixed(1)}`);
        box.append(svg("polyline", { points: points.join(" "), fill: "none", stroke: line.color, "stroke-width": 1.3 }));
      }
      return el("div", { class: "chart" }, el("div", { class: "t", text: title }), box);
    }

    // ------------------------------------------------------------- errors

    errorsSection() {
      const d = this.data;
      const section = el("section", { id: "errors" }, el("h2", { text: "Errors by the cloud's code" }));
      if (!d.errors.length) { section.append(el("p", { class: "muted", text: "No instance has an error." })); return section; }
      const groups = d.errors.map((g, index) => ({ index, code: g[0], kind: g[1], members: g[2] }))
        .sort((a, b) => b.members.length - a.members.length);
      for (const group of groups) {
        const sample = d.messages[group.members[0][1]];
        const details = el("details", { class: "error-group", "data-code": group.code },
          el("summary", {}, el("b", { text: group.code }), ` (${group.kind}) — ${group.members.length} instance(s): `,
            el("span", { class: "muted", text: sample.length > 160 ? sample.slice(0, 160) + "…" : sample })));
        details.addEventListener("toggle", () => {
          if (!details.open || details.querySelector("table")) return;
          details.append(el("table", {}, el("tr", {}, ["instance", "wave", "step", "message", "request id"].map((h) => el("th", { text: h }))),
            group.members.map((m) => {
              const row = d.instances[m[0]];
              return el("tr", {}, el("td", {}, this.link(row[0])), el("td", { text: d.wave_names[row[2]] }), el("td", { text: m[3] || "" }),
                el("td", { class: "wrap", text: d.messages[m[1]] }), el("td", { text: m[2] || "" }));
            })));
        });
        section.append(details);
      }
      return section;
    }

    // ------------------------------------------------------------- instances

    filtered() {
      const d = this.data, f = this.filter;
      const status = f.status ? d.statuses.indexOf(f.status) : -1;
      const wave = f.wave ? d.wave_names.indexOf(f.wave) : -1;
      const provider = f.provider ? d.providers.indexOf(f.provider) : -1;
      const [tagKey, tagValue] = f.tag.includes("=") ? f.tag.split("=", 2) : [f.tag, null];
      const text = f.text.toLowerCase();
      const result = [];
      d.instances.forEach((row, i) => {
        if (f.status && row[3] !== status) return;
        if (f.wave && row[2] !== wave) return;
        if (f.provider && row[1] !== provider) return;
        if (tagKey && !(row[7] && tagKey in row[7] && (tagValue === null || row[7][tagKey] === tagValue))) return;
        if (text && !row[0].toLowerCase().includes(text)) return;
        result.push(i);
      });
      return result;
    }

    setFilter(change) {
      Object.assign(this.filter, change);
      this.page = 0;
      this.zoom = null;
      this.render();
      const table = document.getElementById("instances");
      if (table && change.status !== undefined) table.scrollIntoView();
    }

    link(id) {
      return el("a", { class: "inst", href: "#instance=" + encodeURIComponent(id), text: id });
    }

    tableSection() {
      const d = this.data;
      const select = (name, values, counts) => el("label", {}, name + " ",
        el("select", { name: name, onchange: (e) => this.setFilter({ [name]: e.target.value }) },
          el("option", { value: "", text: "all" }),
          values.map((v) => el("option", { value: v, selected: this.filter[name] === v, text: counts ? `${v} (${counts[v] || 0})` : v }))));
      const input = (name, placeholder) => el("label", {}, name + " ",
        el("input", { name: name, value: this.filter[name], placeholder, size: 14,
          onchange: (e) => this.setFilter({ [name]: e.target.value.trim() }) }));
      const controls = el("div", { class: "controls" },
        select("status", d.statuses.filter((s) => d.counts[s]), d.counts), select("wave", d.wave_names),
        select("provider", d.providers), input("tag", "key=value"), input("text", "instance id"));
      const rows = this.filtered();
      const pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
      this.page = Math.min(this.page, pages - 1);
      const shown = rows.slice(this.page * PAGE_SIZE, (this.page + 1) * PAGE_SIZE);
      const live = this.options.live;
      const head = el("tr", {}, live ? el("th", {}, "") : null,
        ["instance", "provider", "wave", "status", "step", "took", "detail"].map((h) => el("th", { text: h })));
      const body = shown.map((position) => {
        const inst = this.instance(d.instances[position]);
        const error = this.errorOf(position);
        let took = 0;
        for (const s of inst.steps) took += s[2] === null ? d.now - s[1] : s[2];
        const detail = error ? `${error.code}: ${error.message}` + (error.request_id ? ` (request ${error.request_id})` : "")
          : (inst.status === "awaiting_cutover" ? "waits for its cutover" : "");
        const box = live && inst.status === "awaiting_cutover"
          ? el("input", { type: "checkbox", "data-instance": inst.id, checked: this.selected.has(inst.id),
            onchange: (e) => { if (e.target.checked) this.selected.add(inst.id); else this.selected.delete(inst.id); this.refreshCutoverBar(); } })
          : null;
        return el("tr", { "data-instance": inst.id, "data-status": inst.status },
          live ? el("td", {}, box) : null, el("td", {}, this.link(inst.id)), el("td", { text: inst.provider }),
          el("td", { text: inst.wave }), el("td", {}, badge(inst.status)), el("td", { text: inst.step }),
          el("td", { class: "num", text: duration(took) }), el("td", { class: "wrap", text: detail }));
      });
      const pager = el("div", { class: "pager" },
        el("button", { disabled: this.page === 0, onclick: () => { this.page--; this.render(); } }, "previous"),
        el("span", { id: "table-range", text: `${rows.length ? this.page * PAGE_SIZE + 1 : 0}–${this.page * PAGE_SIZE + shown.length} of ${rows.length}` +
          (rows.length !== d.instances.length ? ` (filtered from ${d.instances.length})` : "") }),
        el("button", { disabled: this.page >= pages - 1, onclick: () => { this.page++; this.render(); } }, "next"));
      return el("section", { id: "instances" }, el("h2", { text: "Instances" }), controls, pager,
        el("table", { id: "instance-table" }, el("thead", {}, head), el("tbody", {}, body)));
    }

    // ------------------------------------------------------------- one instance

    fromHash() {
      const match = /instance=([^&]+)/.exec(location.hash);
      this.openInstance = match ? decodeURIComponent(match[1]) : null;
      this.extra = null;
      this.render();
      if (this.openInstance) {
        document.getElementById("instance-detail")?.scrollIntoView();
        if (this.options.loadInstance) {
          const id = this.openInstance;
          this.options.loadInstance(id).then((extra) => {
            if (this.openInstance === id) { this.extra = extra; this.render(); }
          }).catch((error) => { this.extra = { error: String(error) }; this.render(); });
        }
      }
    }

    showInstance(id) { location.hash = "instance=" + encodeURIComponent(id); }

    detailPanel() {
      if (!this.openInstance) return null;
      const d = this.data;
      const position = d.instances.findIndex((row) => row[0] === this.openInstance);
      if (position < 0) return el("div", { class: "detail", id: "instance-detail", text: "No instance " + this.openInstance });
      const inst = this.instance(d.instances[position]);
      const error = this.errorOf(position);
      const kv = (pairs) => el("div", { class: "kv" }, pairs.filter((p) => p[1] !== null && p[1] !== "").flatMap(([k, v]) => [el("div", { text: k }), el("div", {}, v)]));
      const steps = el("table", {}, el("tr", {}, ["step", "status", "started", "took"].map((h) => el("th", { text: h }))),
        inst.steps.map((s) => el("tr", {}, el("td", { text: d.step_names[s[0]] }), el("td", {}, badge(d.statuses[s[3]])),
          el("td", { text: "+" + duration(s[1]) }), el("td", { text: s[2] === null ? "still going" : duration(s[2]) }))));
      const extra = this.extra || {};
      return el("div", { class: "detail", id: "instance-detail" },
        el("button", { class: "close", onclick: () => { history.pushState("", "", location.pathname + location.search); this.fromHash(); } }, "close"),
        el("h2", {}, "Instance " + inst.id + " ", badge(inst.status)),
        kv([["provider", inst.provider], ["wave", inst.wave], ["cutover", inst.manual ? "manual" : "auto"], ["step", inst.step],
          ["tags", Object.entries(inst.tags).map(([k, v]) => k + "=" + v).join(", ")],
          ["error", error ? `${error.code} (${error.kind}) in ${error.step || "?"}: ${error.message}` : null],
          ["request id", error && error.request_id ? error.request_id : null],
          ["remote ids", extra.remote_ids ? Object.entries(extra.remote_ids).map(([k, v]) => k + "=" + v).join(", ") : null]]),
        el("h3", { text: "Steps" }), steps,
        extra.calls ? [el("h3", { text: "Journaled calls (mutating; each with the cloud's request id)" }),
          el("table", { id: "instance-calls" }, el("tr", {}, ["action", "state", "sent", "took", "request id", "error"].map((h) => el("th", { text: h }))),
            extra.calls.map((c) => el("tr", {}, el("td", { text: c.action }), el("td", { text: c.state }), el("td", { text: when(c.sent) }),
              el("td", { text: c.seconds === null ? "" : duration(c.seconds) }), el("td", { text: c.request_id || "" }),
              el("td", { class: "wrap", text: c.error ? `${c.error.code || ""}: ${c.error.message || ""}` : "" }))))] : null,
        extra.error ? el("div", { class: "msg err", text: extra.error }) : null);
    }

    // ------------------------------------------------------------- audit

    cutoverSection() {
      const d = this.data;
      const section = el("section", { id: "cutover-audit" }, el("h2", { text: "Cutover audit" }));
      if (!d.requests.length) { section.append(el("p", { class: "muted", text: "No operator request yet." })); return section; }
      section.append(el("table", {}, el("tr", {}, ["#", "kind", "when", "who", "from", "selection", "instances"].map((h) => el("th", { text: h }))),
        d.requests.map((r) => el("tr", {}, el("td", { text: r[0] }), el("td", { text: r[1] }), el("td", { text: when(r[2]) }),
          el("td", { text: r[3] }), el("td", { text: r[4] }), el("td", { class: "wrap", text: r[5] }), el("td", { class: "num", text: r[6] })))));
      const released = el("details", {}, el("summary", { text: `${d.cutovers.length} cutover(s) released` }));
      released.append(el("table", {}, el("tr", {}, ["instance", "released", "who", "from", "request", "before its gate"].map((h) => el("th", { text: h }))),
        d.cutovers.map((c) => el("tr", {}, el("td", {}, this.link(c[0])), el("td", { text: when(c[1]) }), el("td", { text: c[2] }),
          el("td", { text: c[3] }), el("td", { text: "#" + c[4] }), el("td", { text: c[5] ? "yes" : "" })))));
      section.append(released);
      return section;
    }

    invocationsSection() {
      const d = this.data;
      const section = el("section", { id: "invocations" }, el("h2", { text: "Runner invocations and notifications" }));
      section.append(el("table", {}, el("tr", {}, ["command", "started", "ended", "took", "who", "host", "version", "exit", "stop reason"].map((h) => el("th", { text: h }))),
        d.invocations.map((i) => el("tr", {}, el("td", { text: i[0] }), el("td", { text: when(i[1]) }), el("td", { text: i[2] ? when(i[2]) : "running" }),
          el("td", { text: duration(i[3]) }), el("td", { text: i[4] || "" }), el("td", { text: i[5] || "" }), el("td", { text: i[6] || "" }),
          el("td", { text: i[7] === null ? "" : i[7] }), el("td", { text: i[8] || "" })))));
      if (d.notifications.length) {
        section.append(el("table", { id: "notifications" }, el("tr", {}, ["webhook", "events", "delivered", "failed", "dropped", "attempts", "last error"].map((h) => el("th", { text: h }))),
          d.notifications.map((n) => el("tr", {}, el("td", { text: n.name }), el("td", { class: "num", text: n.events }), el("td", { class: "num", text: n.delivered }),
            el("td", { class: "num", text: n.failed }), el("td", { class: "num", text: n.dropped }), el("td", { class: "num", text: n.attempts }),
            el("td", { class: "wrap", text: n.last_error || "" })))));
      }
      return section;
    }

    // ------------------------------------------------------------- cutover (dashboard)

    cutoverBar() {
      const waiting = this.data.counts.awaiting_cutover || 0;
      const waves = [...new Set(this.data.instances.filter((row) => this.data.statuses[row[3]] === "awaiting_cutover").map((row) => this.data.wave_names[row[2]]))];
      for (const id of [...this.selected]) {
        const row = this.data.instances.find((r) => r[0] === id);
        if (!row || this.data.statuses[row[3]] !== "awaiting_cutover") this.selected.delete(id);
      }
      const waveSelect = el("select", { id: "cutover-wave" }, waves.map((w) => el("option", { value: w, text: w })));
      this.bar = el("div", { class: "cutover-bar", id: "cutover-bar" },
        el("b", { text: `${waiting} instance(s) await a manual cutover` }),
        el("button", { class: "primary", id: "release-selected", disabled: !this.selected.size,
          onclick: () => this.confirmCutover({ instances: [...this.selected] }, `${this.selected.size} selected instance(s): ${[...this.selected].slice(0, 10).join(", ")}${this.selected.size > 10 ? "…" : ""}`) },
        `release ${this.selected.size} selected`),
        waves.length ? el("span", {}, "or every waiting instance of wave ", waveSelect, " ",
          el("button", { class: "primary", id: "release-wave", onclick: () => this.confirmCutover({ wave: waveSelect.value }, `every instance of wave ${waveSelect.value} that waits`) }, "release wave")) : null,
        this.message ? el("span", { class: "msg " + this.message.kind, id: "cutover-message", text: this.message.text }) : null);
      return this.bar;
    }

    refreshCutoverBar() { if (this.bar) this.bar.replaceWith(this.cutoverBar()); }

    confirmCutover(request, what) {
      const dialog = el("dialog", { id: "confirm-cutover" },
        el("h3", { text: "Release the cutover?" }),
        el("p", { text: `This lets ${what} of run ${this.data.run} switch over to the target now. It cannot be undone.` }),
        el("div", { class: "controls" },
          el("button", { id: "confirm-cancel", onclick: () => dialog.close() }, "cancel"),
          el("button", { class: "primary", id: "confirm-release", onclick: async () => {
            dialog.close();
            try {
              const result = await this.options.onCutover(request);
              this.selected.clear();
              this.message = { kind: "ok", text: result };
            } catch (error) {
              this.message = { kind: "err", text: String(error.message || error) };
            }
            this.refreshCutoverBar();
          } }, "release")));
      document.body.append(dialog);
      dialog.addEventListener("close", () => dialog.remove());
      dialog.showModal();
    }
  }

  window.BatchmigReport = { ReportView, el };
  const app = document.getElementById("app");
  if (app && app.dataset.mode === "report") {
    const view = new ReportView(app, JSON.parse(document.getElementById("batchmig-data").textContent), {});
    view.fromHash();
  }
})();

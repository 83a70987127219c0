// The live dashboard: /ws/events/ stream with filters, pause, clear, reconnect; overview cards; chart.
(function () {
  "use strict";
  const config = window.CHAMELEON_DASHBOARD;
  const $ = (id) => document.getElementById(id);
  const list = $("event-list");
  const state = {
    socket: null, attempts: 0, retryTimer: null, paused: false, held: [], rows: 0,
    topic: "#", source: "", minutes: [], // [{minute: ms, count}]
  };

  // --- connection indicator and websocket with backoff --------------------------------
  function setConnection(kind, label) {
    const el = $("connection");
    el.className = "conn conn-" + kind;
    el.dataset.state = kind;
    el.querySelector(".label").textContent = label || kind;
  }

  function connect() {
    clearTimeout(state.retryTimer);
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${scheme}//${location.host}${config.socketPath}?topics=${encodeURIComponent(state.topic)}`;
    setConnection(state.attempts ? "reconnecting" : "connecting", state.attempts ? `reconnecting (try ${state.attempts + 1})` : "connecting");
    const socket = new WebSocket(url);
    state.socket = socket;
    socket.onopen = () => { state.attempts = 0; setConnection("live", "live"); };
    socket.onmessage = (message) => handle(JSON.parse(message.data));
    socket.onclose = (close) => {
      if (state.socket !== socket) return; // replaced on purpose (new topic filter)
      if (close.code === 4401 || close.code === 4403) {
        setConnection("offline", close.code === 4401 ? "signed out" : "no permission");
        return;
      }
      // Exponential backoff with jitter: 0.5s, 1s, 2s … capped at 15s.
      const delay = Math.min(15000, 500 * 2 ** state.attempts) * (0.8 + Math.random() * 0.4);
      state.attempts += 1;
      setConnection("offline", `offline — retrying in ${Math.round(delay / 1000)}s`);
      state.retryTimer = setTimeout(connect, delay);
    };
  }

  function reconnectWithTopic(topic) {
    state.topic = topic || "#";
    const old = state.socket;
    state.socket = null;
    if (old) old.close();
    state.attempts = 0;
    connect();
  }

  // --- messages --------------------------------------------------------------------
  function handle(message) {
    if (message.type === "event") {
      countForChart(message.event, message.backlog);
      if (!matchesSource(message.event)) return;
      if (state.paused && !message.backlog) {
        state.held.push(message.event);
        showNotice(`Paused — ${state.held.length} new event(s) waiting.`);
        return;
      }
      addRow(message.event, message.backlog);
    } else if (message.type === "dropped") {
      showNotice(`This browser fell behind: ${message.count} event(s) skipped (${message.total} in total).`);
    } else if (message.type === "error") {
      showNotice(message.message);
    }
  }

  function matchesSource(event) {
    return !state.source || event.source === state.source || event.source.startsWith(state.source);
  }

  function showNotice(text) {
    const notice = $("notice");
    notice.textContent = text;
    notice.hidden = !text;
  }

  function cell(text, className, code) {
    const td = document.createElement("td");
    if (className) td.className = className;
    if (code) {
      const c = document.createElement("code");
      c.textContent = text;
      td.appendChild(c);
    } else {
      td.textContent = text;
    }
    return td;
  }

  function addRow(event, backlog) {
    const empty = list.querySelector("tr.empty");
    if (empty) empty.remove();
    const tr = document.createElement("tr");
    tr.className = backlog ? "backlog" : "fresh";
    tr.dataset.topic = event.topic;
    tr.dataset.id = event.id;
    const time = new Date(event.timestamp);
    tr.appendChild(cell(time.toLocaleTimeString([], {hour12: false}) + "." + String(time.getMilliseconds()).padStart(3, "0"), "time"));
    tr.appendChild(cell(event.topic, "topic", true));
    tr.appendChild(cell(event.source, "source"));
    tr.appendChild(cell(event.node || "—", "node muted"));
    const data = JSON.stringify(event.data);
    const td = cell(data.length > 160 ? data.slice(0, 160) + "…" : data, "data", true);
    td.title = data;
    tr.appendChild(td);
    list.insertBefore(tr, list.firstChild); // newest first
    state.rows += 1;
    while (state.rows > config.maxRows) {
      list.lastChild.remove();
      state.rows -= 1;
    }
  }

  // --- controls --------------------------------------------------------------------
  $("filters").addEventListener("submit", (e) => {
    e.preventDefault();
    const topic = $("filter-topic").value.trim() || "#";
    state.source = $("filter-source").value.trim();
    if (topic !== state.topic) {
      clearRows();
      reconnectWithTopic(topic); // the server filters by pattern and sends the matching backlog
    } else {
      for (const tr of Array.from(list.querySelectorAll("tr[data-topic]"))) {
        const source = tr.children[2].textContent;
        tr.hidden = !!state.source && !(source === state.source || source.startsWith(state.source));
      }
    }
  });

  $("pause").addEventListener("click", () => {
    state.paused = !state.paused;
    $("pause").textContent = state.paused ? "Resume" : "Pause";
    $("pause").classList.toggle("active", state.paused);
    if (!state.paused) {
      state.held.forEach((event) => addRow(event, false));
      state.held = [];
      showNotice("");
    } else {
      showNotice("Paused — new events are held until you resume.");
    }
  });

  function clearRows() {
    list.innerHTML = '<tr class="empty"><td colspan="5" class="muted">Cleared — waiting for events…</td></tr>';
    state.rows = 0;
    state.held = [];
  }
  $("clear").addEventListener("click", () => { clearRows(); showNotice(""); });

  const publishButton = $("publish-test");
  if (publishButton) {
    publishButton.addEventListener("click", async () => {
      try {
        await window.chameleon.api("/plugins/events/test", {method: "POST", body: JSON.stringify({message: "Hello from the dashboard"})});
      } catch (error) {
        showNotice(`Could not publish: ${error.message}`);
      }
    });
  }

  // --- overview cards and chart ----------------------------------------------------
  function minuteOf(timestamp) {
    const t = new Date(timestamp).getTime();
    return t - (t % 60000);
  }

  function countForChart(event, backlog) {
    if (backlog) return; // the server's figures already include stored events
    const minute = minuteOf(event.timestamp);
    let bucket = state.minutes.find((m) => m.minute === minute);
    if (!bucket) {
      bucket = {minute, count: 0};
      state.minutes.push(bucket);
      state.minutes.sort((a, b) => a.minute - b.minute);
      state.minutes = state.minutes.slice(-30);
    }
    bucket.count += 1;
    drawChart();
    $("events-rate").textContent = (state.minutes[state.minutes.length - 1] || {count: 0}).count;
  }

  function drawChart() {
    const canvas = $("rate-chart");
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth, height = 140;
    canvas.width = width * ratio;
    canvas.height = height * ratio;
    const ctx = canvas.getContext("2d");
    ctx.scale(ratio, ratio);
    ctx.clearRect(0, 0, width, height);
    const now = minuteOf(Date.now());
    const series = [];
    for (let i = 29; i >= 0; i -= 1) {
      const minute = now - i * 60000;
      const bucket = state.minutes.find((m) => m.minute === minute);
      series.push({minute, count: bucket ? bucket.count : 0});
    }
    const max = Math.max(1, ...series.map((s) => s.count));
    const left = 36, bottom = 18, top = 8;
    const plotW = width - left - 4, plotH = height - bottom - top;
    ctx.fillStyle = "#6b7483";
    ctx.font = "11px system-ui, sans-serif";
    ctx.textAlign = "right";
    ctx.fillText(String(max), left - 6, top + 8);
    ctx.fillText("0", left - 6, top + plotH);
    ctx.strokeStyle = "#dfe3ea";
    ctx.beginPath();
    ctx.moveTo(left, top + plotH + 0.5);
    ctx.lineTo(left + plotW, top + plotH + 0.5);
    ctx.stroke();
    const barW = plotW / series.length;
    series.forEach((s, i) => {
      const h = (s.count / max) * plotH;
      ctx.fillStyle = i === series.length - 1 ? "#2f855a" : "#68d391";
      ctx.fillRect(left + i * barW + 1, top + plotH - h, Math.max(1, barW - 2), h);
    });
    ctx.textAlign = "center";
    ctx.fillStyle = "#6b7483";
    [0, 10, 20, 29].forEach((i) => {
      const label = new Date(series[i].minute).toLocaleTimeString([], {hour: "2-digit", minute: "2-digit", hour12: false});
      ctx.fillText(label, left + i * barW + barW / 2, height - 4);
    });
  }

  function badge(text, kind) {
    const span = document.createElement("span");
    span.className = "badge badge-" + kind;
    span.textContent = text;
    return span;
  }

  async function refreshOverview() {
    try {
      const data = await window.chameleon.api(config.overviewUrl);
      if (data.plugins) {
        $("plugins-running").textContent = data.plugins.running;
        $("plugins-failed").textContent = `${data.plugins.failed} failed`;
        $("plugins-failed").className = data.plugins.failed ? "badge badge-failed" : "badge";
        $("plugins-total").textContent = `of ${data.plugins.total}`;
      } else {
        $("plugins-running").textContent = "n/a";
        $("plugins-failed").textContent = "no plugin runtime";
      }
      const statuses = $("tasks-statuses");
      statuses.textContent = "";
      if (data.tasks) {
        const entries = Object.entries(data.tasks.by_status);
        if (!entries.length) statuses.textContent = "no tasks";
        entries.forEach(([status, count]) => statuses.appendChild(badge(`${status} ${count}`, status)));
      } else {
        statuses.textContent = "no scheduler";
      }
      state.minutes = data.events.per_minute.map((m) => ({minute: minuteOf(m.minute), count: m.count}));
      $("events-rate").textContent = data.events.last_minute;
      $("events-stored").textContent = data.events.stored;
      drawChart();
      $("nodes-alive").textContent = data.nodes.alive;
      $("nodes-kinds").textContent = Object.entries(data.nodes.by_kind).map(([k, n]) => `${n} ${k}`).join(" · ");
      const lost = $("nodes-lost");
      lost.textContent = "";
      if (data.nodes.lost) lost.appendChild(badge(`${data.nodes.lost} lost`, "lost"));
      const health = $("services-health");
      health.textContent = "";
      if (data.services) {
        $("services-instances").textContent = data.services.instances;
        const entries = Object.entries(data.services.by_health).filter(([, count]) => count);
        if (!entries.length) health.textContent = "none registered";
        entries.forEach(([state, count]) => health.appendChild(badge(`${state} ${count}`, state)));
      } else {
        $("services-instances").textContent = "n/a";
        health.textContent = "registry unavailable";
      }
    } catch (error) {
      // The cards keep their last figures; the connection indicator shows trouble.
    }
  }

  window.addEventListener("resize", drawChart);
  connect();
  refreshOverview();
  setInterval(refreshOverview, 5000);
})();

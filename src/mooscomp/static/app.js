"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const form = $("form"), rate = $("rate"), rateOut = $("rate-out"), status = $("status");
  const tip = $("tip");

  rate.addEventListener("input", () => { rateOut.textContent = Number(rate.value).toFixed(2); });

  function setStatus(msg, isError) {
    status.textContent = msg;
    status.className = isError ? "error" : "";
  }

  function fmt(x) { return x === null || x === undefined ? "–" : Number(x).toFixed(3); }

  function renderOriginal(details) {
    const root = $("original");
    root.textContent = "";
    details.forEach((d, ci) => {
      if (ci > 0) root.appendChild(document.createTextNode("\n\n"));
      d.words.forEach((w, i) => {
        if (d.gaps && d.gaps[i]) root.appendChild(document.createTextNode(d.gaps[i]));
        else if (!d.gaps && i > 0) root.appendChild(document.createTextNode(" "));
        const s = document.createElement("span");
        s.className = "w " + (d.kept[i] ? "kept" : "dropped");
        s.textContent = w;
        s.dataset.p = d.keep_prob[i];
        s.dataset.z = d.outlier_z[i];
        s.dataset.score = d.score[i];
        s.style.setProperty("--p", d.keep_prob[i]);
        s.title = `keep-prob ${fmt(d.keep_prob[i])} · outlier z ${fmt(d.outlier_z[i])} · score ${fmt(d.score[i])}`;
        root.appendChild(s);
      });
    });
  }

  document.addEventListener("mouseover", (ev) => {
    const t = ev.target;
    if (!(t instanceof HTMLElement) || !t.classList.contains("w")) { tip.hidden = true; return; }
    tip.textContent = `${t.classList.contains("kept") ? "kept" : "dropped"} · keep-prob ${fmt(t.dataset.p)} · outlier z ${fmt(t.dataset.z)}`;
    const r = t.getBoundingClientRect();
    tip.style.left = `${r.left + window.scrollX}px`;
    tip.style.top = `${r.bottom + window.scrollY + 4}px`;
    tip.hidden = false;
  });

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const text = $("text").value;
    const body = { text, rate: Number(rate.value), return_scores: true };
    const q = $("question").value.trim();
    if (q) body.question = q;
    $("submit").disabled = true;
    setStatus("Compressing…", false);
    const t0 = performance.now();
    try {
      const headers = { "Content-Type": "application/json" };
      const key = $("apikey").value.trim();
      if (key) headers.Authorization = `Bearer ${key}`;
      const resp = await fetch("/v1/compress", {
        method: "POST",
        headers,
        body: JSON.stringify(body),
      });
      const data = await resp.json().catch(() => null);
      if (resp.status === 401) {
        // the service was started with an API key: show the field and ask for it
        document.querySelectorAll(".apikey").forEach((el) => { el.hidden = false; });
        $("apikey").focus();
        setStatus(key ? "Error: wrong API key." : "This service needs an API key: enter it and compress again.", true);
        return;
      }
      if (!resp.ok) {
        const msg = data && data.error ? data.error.message : `HTTP ${resp.status}`;
        setStatus(`Error: ${msg}`, true);
        return;
      }
      $("compressed").textContent = data.compressed_prompt;
      renderOriginal(data.details || []);
      const ms = Math.round(performance.now() - t0);
      $("stats").innerHTML = "";
      [["tokens", `${data.origin_tokens} → ${data.compressed_tokens}`],
       ["rate", Number(data.rate).toFixed(3)],
       ["ratio", data.ratio === null ? "–" : `${Number(data.ratio).toFixed(2)}x`],
       ["time", `${ms} ms`]].forEach(([k, v]) => {
        const s = document.createElement("span");
        s.innerHTML = `${k} <b></b>`;
        s.querySelector("b").textContent = v;
        s.dataset.stat = k;
        $("stats").appendChild(s);
      });
      $("result").hidden = false;
      setStatus("Done.", false);
    } catch (e) {
      setStatus(`Error: ${e}`, true);
    } finally {
      $("submit").disabled = false;
    }
  });
})();

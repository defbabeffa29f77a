// The page a person rates grids on (served by rating-server.ts). It knows only opaque ids: it asks the server for
// the state (progress and the next id), shows /images/<id>.png, and posts ratings. Keys 1–7 rate, Backspace or
// "u" undoes the last rating. The token travels in the query string of every request.

/** The rating page for a session token (the token is embedded so the page's own requests carry it). */
export function ratingPageHtml(token: string): string {
  const tokenJson = JSON.stringify(token).replace(/</g, "\\u003c");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="referrer" content="no-referrer">
<title>Blind interpretability test</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 0; padding: 12px; background: #fafafa; color: #222; }
  #question { font-size: 15px; margin: 4px 0 8px; }
  #grid { display: block; max-width: 100%; height: auto; min-height: 200px; image-rendering: pixelated; background: #eee; }
  #buttons { margin: 10px 0; display: flex; gap: 6px; flex-wrap: wrap; }
  #buttons button { font-size: 18px; width: 44px; height: 40px; cursor: pointer; }
  #undo { font-size: 14px; height: 40px; cursor: pointer; }
  #progress { font-size: 14px; color: #555; }
  progress { width: 240px; vertical-align: middle; }
  #done { display: none; font-size: 18px; color: #1a7f37; margin-top: 12px; }
  #error { color: #b42318; font-size: 14px; }
</style>
</head>
<body>
<div id="question">How visually consistent do the images of this grid look? 1 (not at all) … 7 (perfectly)</div>
<img id="grid" alt="grid to rate">
<div id="buttons">
  <button data-rating="1">1</button><button data-rating="2">2</button><button data-rating="3">3</button>
  <button data-rating="4">4</button><button data-rating="5">5</button><button data-rating="6">6</button>
  <button data-rating="7">7</button>
  <button id="undo" title="Backspace">undo last</button>
</div>
<div id="progress"><progress id="bar" max="1" value="0"></progress> <span id="count"></span></div>
<div id="done">All grids are rated. Thank you: you can close this page.</div>
<div id="error"></div>
<script>
(function () {
  var token = ${tokenJson};
  var q = "?token=" + encodeURIComponent(token);
  var current = null;
  var busy = false;
  var grid = document.getElementById("grid");
  function show(state) {
    document.getElementById("bar").max = state.total;
    document.getElementById("bar").value = state.rated;
    document.getElementById("count").textContent = state.rated + " of " + state.total + " rated";
    current = state.next;
    document.body.setAttribute("data-rated", String(state.rated));
    document.body.setAttribute("data-current", current || "");
    if (current) {
      grid.style.display = "block";
      grid.src = "/images/" + current + ".png" + q;
      document.getElementById("done").style.display = "none";
    } else {
      grid.style.display = "none";
      grid.removeAttribute("src");
      document.getElementById("done").style.display = "block";
    }
  }
  function call(method, path, body) {
    busy = true;
    return fetch(path + q, { method: method, headers: { "content-type": "application/json" }, body: body ? JSON.stringify(body) : undefined })
      .then(function (r) { return r.json().then(function (j) { if (!r.ok) throw new Error(j.error || r.statusText); return j; }); })
      .then(function (state) { document.getElementById("error").textContent = ""; show(state); })
      .catch(function (e) { document.getElementById("error").textContent = String(e.message || e); })
      .then(function () { busy = false; });
  }
  function rate(n) { if (!busy && current) call("POST", "/api/rate", { id: current, rating: n }); }
  function undo() { if (!busy) call("POST", "/api/undo"); }
  Array.prototype.forEach.call(document.querySelectorAll("button[data-rating]"), function (b) {
    b.addEventListener("click", function () { rate(Number(b.getAttribute("data-rating"))); });
  });
  document.getElementById("undo").addEventListener("click", undo);
  document.addEventListener("keydown", function (e) {
    if (e.key >= "1" && e.key <= "7") { rate(Number(e.key)); e.preventDefault(); }
    else if (e.key === "Backspace" || e.key === "u") { undo(); e.preventDefault(); }
  });
  call("GET", "/api/state");
})();
</script>
</body>
</html>
`;
}

// Refreshing the progress line is a convenience: without JavaScript a reload of the page shows it.
(function () {
  var EVERY_MS = 3000;

  function refresh() {
    var current = document.getElementById("full-sync");
    if (!current || !current.querySelector(".full-sync-running")) return;
    fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null) return;
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("full-sync");
        if (fresh) current.replaceWith(document.importNode(fresh, true));
      })
      .catch(function () {})
      .then(function () { setTimeout(refresh, EVERY_MS); });
  }

  setTimeout(refresh, EVERY_MS);
})();

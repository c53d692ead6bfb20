// The error summary is first after the heading either way; focusing it makes screen readers read it at once.
(function () {
  var summary = document.getElementById("error-summary");
  if (!summary) return;
  summary.focus();
  // Following a link to a field only scrolls to it; put the cursor in it too.
  summary.addEventListener("click", function (event) {
    var link = event.target.closest("a[href^='#']");
    var target = link && document.getElementById(link.getAttribute("href").slice(1));
    if (!target) return;
    event.preventDefault();
    target.focus();
    var field = target.closest(".field");
    (field || target).scrollIntoView({ block: "start" });
  });
})();

// Without scripts, "Show the fields of this method" re-renders the form for the chosen method;
// with them the field groups follow the radio at once and that button is not needed.
(function () {
  var form = document.querySelector("form[data-method-form]");
  if (!form) return;
  var switchButton = form.querySelector(".method-switch");
  // Removed rather than hidden, so that Enter in a field can never press it.
  if (switchButton) switchButton.remove();
  form.addEventListener("change", function (event) {
    if (event.target.name !== "auth_mode") return;
    form.querySelectorAll("[data-method]").forEach(function (group) {
      group.hidden = group.dataset.method !== event.target.value;
    });
  });
})();

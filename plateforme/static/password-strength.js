// Live update of the password strength meter (the server shows the same verdict when the form
// comes back; this script only saves a round trip). No inline script: CSP script-src 'self'.
(function () {
  "use strict";
  var field = document.querySelector("input[data-robustesse]");
  if (!field || !window.fetch) { return; }
  var meter = document.getElementById(field.getAttribute("data-robustesse"));
  if (!meter) { return; }
  var level = meter.querySelector("strong");
  var bar = meter.querySelector(".jauge span");
  var advice = meter.querySelector("ul");
  var timer = null;
  function value(name) {
    var input = document.querySelector("input[name='" + name + "']");
    return input ? input.value : "";
  }
  function update() {
    var body = new URLSearchParams();
    body.set("password", field.value);
    body.set("email", value("email") || value("username"));
    body.set("given_name", value("given_name"));
    body.set("family_name", value("family_name"));
    body.set("lang", document.documentElement.lang || "");
    fetch("/inscription/robustesse", {method: "POST", body: body, credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        level.textContent = field.value ? data.label
      : document.body.getAttribute("data-texte-a-saisir") || "à saisir";
        bar.className = field.value ? "jauge-" + data.score : "jauge-vide";
        advice.textContent = "";
        (field.value ? data.problems.concat(data.advice) : []).forEach(function (text) {
          var item = document.createElement("li");
          item.textContent = text;
          advice.appendChild(item);
        });
      })
      .catch(function () {});
  }
  field.addEventListener("input", function () {
    if (timer) { clearTimeout(timer); }
    timer = setTimeout(update, 500);
  });
}());

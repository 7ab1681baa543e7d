// Progress of an archive deposit (console): the form is sent by XMLHttpRequest so that its
// <progress> follows the upload. Without this script the form posts normally and works the
// same. Texts come from the page (data-* attributes), translated. CSP script-src 'self'.
(function () {
  "use strict";
  function enhance() {
    var form = document.querySelector("form[data-progression]");
    if (!form || !window.XMLHttpRequest || !window.FormData) { return; }
    var zone = document.getElementById(form.getAttribute("data-progression"));
    if (!zone) { return; }
    var bar = zone.querySelector("progress");
    var text = zone.querySelector("[data-texte]");
    var button = form.querySelector("button[type=submit]");
    form.addEventListener("submit", function (event) {
      if (!form.checkValidity()) { return; }
      event.preventDefault();
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("X-Progression", "xhr");
      xhr.upload.addEventListener("progress", function (e) {
        if (!e.lengthComputable) { return; }
        bar.max = e.total;
        bar.value = e.loaded;
        text.textContent = Math.floor(100 * e.loaded / e.total) + " % " + zone.getAttribute("data-envoye");
      });
      xhr.upload.addEventListener("load", function () {
        bar.value = bar.max;
        text.textContent = zone.getAttribute("data-traitement");
      });
      xhr.addEventListener("load", function () {
        var type = xhr.getResponseHeader("Content-Type") || "";
        if (xhr.status === 200 && type.indexOf("application/json") === 0) {
          window.location.assign(JSON.parse(xhr.responseText).location);
          return;
        }
        // a refusal: the server's page (errors tied to their fields) replaces this one
        var page = new DOMParser().parseFromString(xhr.responseText, "text/html");
        document.title = page.title;
        document.body.replaceWith(document.adoptNode(page.body));
        var heading = document.querySelector("h1");
        if (heading) { heading.setAttribute("tabindex", "-1"); heading.focus(); }
        enhance();
      });
      xhr.addEventListener("error", function () {
        text.textContent = zone.getAttribute("data-echec");
        button.disabled = false;
      });
      zone.hidden = false;
      bar.removeAttribute("value");
      text.textContent = zone.getAttribute("data-debut");
      button.disabled = true;
      xhr.send(new FormData(form));
    });
  }
  enhance();
})();

/* Passkeys (WebAuthn) for Martinique Connect's pages: sign-in without a password, passkey as
 * a second factor, and registration of a new passkey.
 *
 * Markup: a zone marked [data-passkey-zone] (hidden until this script finds WebAuthn usable)
 * holding a form with a hidden "credential" field and a button:
 *   <button type="button" data-passkey="get|create" data-options="/url/of/options"
 *           data-message="id-of-a-status-paragraph">
 * A click posts the form's fields (CSRF token…) to data-options, asks the browser for the
 * passkey with the options received, puts the result (JSON) in "credential" and submits the
 * form: the server checks everything; the page works without this script, minus passkeys.
 *
 * Passkey autofill (WebAuthn conditional mediation): when the page has a field marked
 * autocomplete="username webauthn" and the browser supports it, a passkey request waits
 * quietly from the start: the browser offers the passkeys among the field's suggestions, and
 * choosing one signs in with the form of the first data-passkey="get" button. Pressing that
 * button cancels the waiting request (a browser runs one request at a time).
 */
(function () {
  "use strict";

  // The page gives these sentences in its language (base.html, data-texte-*).
  function text(name, french) { return document.body.getAttribute("data-texte-" + name) || french; }
  var MESSAGES = {
    waiting: text("attente", "Suivez les instructions de votre navigateur ou de votre appareil…"),
    failed: text("echec", "La clé d'accès n'a pas pu être utilisée. Réessayez ou choisissez une autre méthode."),
    cancelled: text("annule", "Opération annulée. Vous pouvez réessayer."),
  };

  function toBytes(value) {
    var base64 = value.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) { base64 += "="; }
    var binary = atob(base64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) { bytes[i] = binary.charCodeAt(i); }
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) { binary += String.fromCharCode(bytes[i]); }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function decodeDescriptors(list) {
    return (list || []).map(function (item) {
      return Object.assign({}, item, { id: toBytes(item.id) });
    });
  }

  function creationOptions(json) {
    var options = Object.assign({}, json);
    options.challenge = toBytes(json.challenge);
    options.user = Object.assign({}, json.user, { id: toBytes(json.user.id) });
    options.excludeCredentials = decodeDescriptors(json.excludeCredentials);
    return options;
  }

  function requestOptions(json) {
    var options = Object.assign({}, json);
    options.challenge = toBytes(json.challenge);
    options.allowCredentials = decodeDescriptors(json.allowCredentials);
    return options;
  }

  function credentialJSON(credential) {
    var response = credential.response;
    var out = {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || null,
      clientExtensionResults: credential.getClientExtensionResults
        ? credential.getClientExtensionResults() : {},
      response: { clientDataJSON: toBase64url(response.clientDataJSON) },
    };
    if (response.attestationObject) {
      out.response.attestationObject = toBase64url(response.attestationObject);
      out.response.transports = response.getTransports ? response.getTransports() : [];
    } else {
      out.response.authenticatorData = toBase64url(response.authenticatorData);
      out.response.signature = toBase64url(response.signature);
      out.response.userHandle = response.userHandle ? toBase64url(response.userHandle) : null;
    }
    return out;
  }

  function supported() {
    return Boolean(window.PublicKeyCredential && navigator.credentials && window.isSecureContext);
  }

  function onIpAddress() {
    // WebAuthn needs a domain name: browsers refuse it on an IP address.
    var host = window.location.hostname;
    return /^[0-9.]+$/.test(host) || host.indexOf(":") !== -1 || host.charAt(0) === "[";
  }

  // The passkey request of the autofill, while it waits.
  var autofill = null;

  function fetchOptions(button) {
    var body = new URLSearchParams();
    new FormData(button.form).forEach(function (value, key) {
      if (key !== "credential" && typeof value === "string") { body.append(key, value); }
    });
    return fetch(button.getAttribute("data-options"), {
      method: "POST", body: body, credentials: "same-origin",
      headers: { Accept: "application/json" },
    }).then(function (response) {
      if (!response.ok) { throw new Error("options " + response.status); }
      return response.json();
    });
  }

  function send(form, credential) {
    if (!credential) { throw new Error("no credential"); }
    form.elements.namedItem("credential").value = JSON.stringify(credentialJSON(credential));
    form.submit();
  }

  function startAutofill() {
    var field = document.querySelector("input[autocomplete~='webauthn']");
    var button = document.querySelector("button[data-passkey='get']");
    var check = window.PublicKeyCredential.isConditionalMediationAvailable;
    if (!field || !button || !check || !window.AbortController) { return; }
    check.call(window.PublicKeyCredential).then(function (available) {
      if (!available) { return; }
      var controller = new AbortController();
      autofill = controller;
      return fetchOptions(button).then(function (json) {
        return navigator.credentials.get({
          mediation: "conditional", publicKey: requestOptions(json), signal: controller.signal,
        });
      }).then(function (credential) {
        if (autofill !== controller) { return; }
        autofill = null;
        send(button.form, credential);
      });
    }).catch(function () {
      // Cancelled or refused: the form and the button still work.
    });
  }

  function start(button) {
    var form = button.form;
    var message = document.getElementById(button.getAttribute("data-message"));
    function say(text) { if (message) { message.textContent = text; } }
    button.addEventListener("click", function () {
      if (autofill) { autofill.abort(); autofill = null; }
      button.disabled = true;
      say(MESSAGES.waiting);
      fetchOptions(button).then(function (json) {
        if (button.getAttribute("data-passkey") === "create") {
          return navigator.credentials.create({ publicKey: creationOptions(json) });
        }
        return navigator.credentials.get({ publicKey: requestOptions(json) });
      }).then(function (credential) {
        send(form, credential);
      }).catch(function (error) {
        button.disabled = false;
        say(error && error.name === "NotAllowedError" ? MESSAGES.cancelled : MESSAGES.failed);
        button.focus();
      });
    });
  }

  if (!supported()) { return; }
  if (onIpAddress()) {
    document.querySelectorAll("[data-passkey-ip-note]").forEach(function (note) {
      note.hidden = false;
    });
    return;
  }
  document.querySelectorAll("[data-passkey-zone]").forEach(function (zone) {
    zone.hidden = false;
  });
  document.querySelectorAll("button[data-passkey]").forEach(start);
  startAutofill();
})();

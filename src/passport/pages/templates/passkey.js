// Passkeys on Passport's pages (WebAuthn Level 3).  The only script of the hosted pages,
// served from Passport itself (CSP script-src 'self'); it asks /webauthn/options for a
// challenge, runs the browser's ceremony, and posts the answer in the page's own form,
// where the server checks everything (passport.services.factors).  Without it, or
// without WebAuthn, the forms without passkeys still work.
(function () {
  "use strict";

  function toBytes(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) b64 += "=";
    var raw = atob(b64), out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out.buffer;
  }

  function toText(buffer) {
    var bytes = new Uint8Array(buffer), raw = "";
    for (var i = 0; i < bytes.length; i++) raw += String.fromCharCode(bytes[i]);
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // PublicKeyCredential.parse*OptionsFromJSON where the browser has them, else by hand.
  function creationOptions(json) {
    if (PublicKeyCredential.parseCreationOptionsFromJSON) {
      return PublicKeyCredential.parseCreationOptionsFromJSON(json);
    }
    json.challenge = toBytes(json.challenge);
    json.user.id = toBytes(json.user.id);
    (json.excludeCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
    return json;
  }

  function requestOptions(json) {
    if (PublicKeyCredential.parseRequestOptionsFromJSON) {
      return PublicKeyCredential.parseRequestOptionsFromJSON(json);
    }
    json.challenge = toBytes(json.challenge);
    (json.allowCredentials || []).forEach(function (c) { c.id = toBytes(c.id); });
    return json;
  }

  function answer(credential) {
    if (credential.toJSON) return JSON.stringify(credential.toJSON());
    var r = credential.response, out = {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: { clientDataJSON: toText(r.clientDataJSON) }
    };
    if (r.attestationObject) {
      out.response.attestationObject = toText(r.attestationObject);
      out.response.transports = r.getTransports ? r.getTransports() : [];
    } else {
      out.response.authenticatorData = toText(r.authenticatorData);
      out.response.signature = toText(r.signature);
      if (r.userHandle) out.response.userHandle = toText(r.userHandle);
    }
    return JSON.stringify(out);
  }

  function options(form, purpose) {
    var body = new URLSearchParams();
    body.set("csrf", form.elements.csrf.value);
    body.set("purpose", purpose);
    // The sign-in this ceremony belongs to (its pending authorization), as the page has it.
    if (form.elements.authorization) body.set("authorization", form.elements.authorization.value);
    return fetch("/webauthn/options", {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "Accept": "application/json" }
    }).then(function (response) {
      return response.json().then(function (data) {
        if (!response.ok) throw new Error(data.error || "The passkey request was refused.");
        return data;
      });
    });
  }

  function say(form, message) {
    var box = form.querySelector("[data-passkey-status]");
    if (box) { box.textContent = message; box.hidden = false; }
  }

  function run(form, purpose, mediation, signal) {
    return options(form, purpose).then(function (json) {
      if (purpose === "register" || purpose === "enrol") {
        return navigator.credentials.create({ publicKey: creationOptions(json) });
      }
      var asked = { publicKey: requestOptions(json) };
      if (mediation) asked.mediation = mediation;
      if (signal) asked.signal = signal;
      return navigator.credentials.get(asked);
    }).then(function (credential) {
      if (!credential) return;
      form.elements.credential.value = answer(credential);
      form.submit();
    });
  }

  var supported = typeof window.PublicKeyCredential === "function";
  document.querySelectorAll("form[data-passkey]").forEach(function (form) {
    var purpose = form.getAttribute("data-passkey");
    if (!supported) {
      say(form, "This browser cannot use passkeys.");
      form.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
      return;
    }
    form.hidden = false;
    var autofill = null;  // the conditional request, aborted when the button is used
    form.addEventListener("submit", function (event) {
      if (form.elements.credential.value) return;  // the ceremony's answer: post it
      event.preventDefault();
      if (autofill) { autofill.abort(); autofill = null; }
      run(form, purpose).catch(function (error) {
        say(form, error && error.name === "NotAllowedError"
          ? "The passkey request was cancelled or timed out."
          : (error && error.message) || "The passkey request failed.");
      });
    });
    // Conditional UI (autofill): offer passkeys in the username field's suggestions.
    if (form.hasAttribute("data-passkey-autofill") &&
        PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then(function (available) {
        if (!available) return;
        autofill = new AbortController();
        run(form, purpose, "conditional", autofill.signal).catch(function () {});
      });
    }
  });
}());

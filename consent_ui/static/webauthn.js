// Easy Login in the browser: passkey sign-in and registration, and QR sign-in.
//
// Our own small script, served from /static under a CSP without inline
// script. Every state-changing request carries the page's CSRF token in
// X-CSRFToken. A passkey request that gets no answer is aborted after 60 s
// with a message, never left hanging.
"use strict";

(() => {
  const TIMEOUT_MS = 60000;
  const POLL_MS = 1000;

  const csrfToken = () => document.querySelector('meta[name="csrf-token"]').content;

  // Messages in the page's language: the page puts them in #js-messages
  // (data attributes, no inline script); the English here is the fallback.
  const t = (key, fallback) => {
    const box = document.getElementById("js-messages");
    return (box && box.dataset[key]) || fallback;
  };

  const b64urlToBuffer = (value) => {
    const base64 = value.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "=".repeat((4 - (base64.length % 4)) % 4);
    const binary = atob(padded);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  };

  const bufferToB64url = (buffer) => {
    const bytes = new Uint8Array(buffer);
    let binary = "";
    for (let i = 0; i < bytes.length; i += 1) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  };

  const creationOptions = (json) => ({
    ...json,
    challenge: b64urlToBuffer(json.challenge),
    user: { ...json.user, id: b64urlToBuffer(json.user.id) },
    excludeCredentials: (json.excludeCredentials || []).map((c) => ({ ...c, id: b64urlToBuffer(c.id) })),
  });

  const requestOptions = (json) => ({
    ...json,
    challenge: b64urlToBuffer(json.challenge),
    allowCredentials: (json.allowCredentials || []).map((c) => ({ ...c, id: b64urlToBuffer(c.id) })),
  });

  const credentialToJSON = (credential) => {
    const response = credential.response;
    const json = {
      id: credential.id,
      rawId: bufferToB64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: { clientDataJSON: bufferToB64url(response.clientDataJSON) },
    };
    if (response.attestationObject) {
      json.response.attestationObject = bufferToB64url(response.attestationObject);
      json.response.transports = response.getTransports ? response.getTransports() : [];
    } else {
      json.response.authenticatorData = bufferToB64url(response.authenticatorData);
      json.response.signature = bufferToB64url(response.signature);
      if (response.userHandle) json.response.userHandle = bufferToB64url(response.userHandle);
    }
    return json;
  };

  const postJSON = async (url, body) => {
    const reply = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body || {}),
    });
    let data = {};
    try {
      data = await reply.json();
    } catch (_) {
      data = { message: t("serverDown", "The server could not answer. Try again.") };
    }
    return { ok: reply.ok, status: reply.status, data };
  };

  const show = (element, message) => {
    if (!element) return;
    element.textContent = message;
    element.hidden = false;
  };

  // A ceremony that gets no answer ends after 60 s with a message.
  const withTimeout = (controller) => setTimeout(() => controller.abort("timeout"), TIMEOUT_MS);

  const explain = (error) => {
    if (error && (error === "timeout" || error.name === "AbortError")) {
      return t("timedOut", "The passkey request timed out. Try again.");
    }
    if (error && error.name === "NotAllowedError") {
      return t("notAllowed", "No passkey was used. Try again, or sign in another way.");
    }
    if (error && error.name === "InvalidStateError") {
      return t("alreadyRegistered", "This passkey is already registered.");
    }
    return t("unusable", "The passkey could not be used on this device. Sign in another way.");
  };

  const platformAvailable = async () => {
    if (!window.PublicKeyCredential) return false;
    try {
      return await PublicKeyCredential.isUserVerifyingPlatformAuthenticatorAvailable();
    } catch (_) {
      return false;
    }
  };

  // --- sign-in page --------------------------------------------------------------

  const setUpSignIn = (button) => {
    const errorBox = document.getElementById("easy-login-error");
    const remember = document.querySelector('input[name="remember"]');
    let pending = null;

    const finish = async (credential) => {
      const result = await postJSON("/login/passkey", {
        credential: credentialToJSON(credential),
        interaction: button.dataset.interaction || "",
        next: button.dataset.next || "",
        remember: Boolean(remember && remember.checked),
      });
      if (result.ok && result.data.redirect) {
        window.location.assign(result.data.redirect);
        return;
      }
      show(errorBox, result.data.message || t("refused", "The passkey was refused."));
    };

    const ask = async (mediation, stillWanted) => {
      if (pending) pending.abort("replaced");
      const controller = new AbortController();
      controller.conditional = Boolean(mediation);
      pending = controller;
      const options = await postJSON("/login/passkey/options", {});
      if (controller.signal.aborted || (stillWanted && !stillWanted())) {
        if (pending === controller) pending = null;
        return;
      }
      if (!options.ok) {
        show(errorBox, options.data.message || t("unavailable", "Easy Login is not available now. Try again."));
        return;
      }
      const timer = mediation ? null : withTimeout(controller);
      try {
        const credential = await navigator.credentials.get({
          publicKey: requestOptions(options.data.publicKey),
          signal: controller.signal,
          ...(mediation ? { mediation } : {}),
        });
        if (credential) await finish(credential);
      } catch (error) {
        if (controller.signal.reason !== "replaced" && !mediation) show(errorBox, explain(controller.signal.reason || error));
      } finally {
        if (timer) clearTimeout(timer);
        if (pending === controller) pending = null;
      }
    };

    button.addEventListener("click", async () => {
      errorBox.hidden = true;
      if (!(await platformAvailable())) {
        // No passkey on this device: sign in with the registered phone instead.
        window.location.assign(button.dataset.qrUrl);
        return;
      }
      ask(null);
    });

    // Conditional UI: where the browser offers it, passkeys appear in the
    // user-ID field's autofill.  It starts when the person focuses the empty
    // field and stops as soon as they type, so a browser that answers such a
    // request on its own (automation, some password managers) never signs
    // anyone in who did not choose a passkey.
    const userField = document.querySelector('input[name="username"]');
    if (userField && window.PublicKeyCredential && PublicKeyCredential.isConditionalMediationAvailable) {
      PublicKeyCredential.isConditionalMediationAvailable().then((available) => {
        if (!available) return;
        userField.addEventListener("focus", () => {
          if (!userField.value && !pending) ask("conditional", () => userField.value === "");
        });
        userField.addEventListener("input", () => {
          if (pending && pending.conditional) pending.abort("replaced");
        });
      }).catch(() => {});
    }
  };

  // --- account passkeys page ---------------------------------------------------------

  const setUpRegistration = (button) => {
    const errorBox = document.getElementById("passkey-error");
    const nameInput = document.getElementById("passkey-name");
    button.addEventListener("click", async () => {
      errorBox.hidden = true;
      const options = await postJSON("/account/passkeys/options", {});
      if (!options.ok) {
        if (options.data.redirect) {
          window.location.assign(options.data.redirect);
          return;
        }
        show(errorBox, options.data.message || t("cannotAdd", "A passkey cannot be added now."));
        return;
      }
      const controller = new AbortController();
      const timer = withTimeout(controller);
      try {
        const credential = await navigator.credentials.create({
          publicKey: creationOptions(options.data.publicKey),
          signal: controller.signal,
        });
        const result = await postJSON("/account/passkeys", {
          credential: credentialToJSON(credential),
          name: nameInput ? nameInput.value : "",
        });
        if (result.ok) {
          window.location.assign(result.data.redirect);
          return;
        }
        show(errorBox, result.data.message || t("notRegistered", "The passkey could not be registered."));
      } catch (error) {
        show(errorBox, explain(controller.signal.reason || error));
      } finally {
        clearTimeout(timer);
      }
    });
  };

  // --- QR: the device that wants to sign in -------------------------------------------

  const setUpQrWaiting = (statusBox) => {
    const publicId = statusBox.dataset.publicId;
    const errorBox = document.getElementById("qr-error");
    const messages = {
      pending: t("qrPending", "Waiting for your phone…"),
      approved: t("qrApproved", "Approved. Signing you in…"),
      denied: t("qrDenied", "The sign-in request was denied on your phone."),
      expired: t("qrExpired", "The code has expired. Go back and start again."),
    };
    const setState = (state) => {
      statusBox.dataset.state = state;
      statusBox.textContent = messages[state] || state;
    };
    const poll = async () => {
      let state = "pending";
      try {
        const reply = await fetch(`/login/qr/${publicId}/status`, { credentials: "same-origin" });
        const data = await reply.json();
        state = reply.ok ? data.state : "expired";
      } catch (_) {
        setTimeout(poll, POLL_MS);
        return;
      }
      if (state === "pending") {
        setTimeout(poll, POLL_MS);
        return;
      }
      setState(state);
      if (state === "approved") {
        const result = await postJSON(`/login/qr/${publicId}/collect`, {});
        if (result.ok && result.data.redirect) {
          window.location.assign(result.data.redirect);
          return;
        }
        show(errorBox, result.data.message || t("approvalUnusable", "The approval could not be used."));
        return;
      }
      show(errorBox, messages[state] || t("requestUnusable", "This sign-in request cannot be used."));
    };
    setTimeout(poll, POLL_MS);
    // The code is a link so that its context menu copies the URL; a click here
    // would leave the page that waits for the phone, so it selects the URL instead.
    const link = document.getElementById("qr-link");
    const urlField = document.getElementById("qr-url");
    if (link && urlField) {
      link.addEventListener("click", (event) => {
        event.preventDefault();
        urlField.focus();
        urlField.select();
      });
    }
  };

  // --- QR: the registered device that approves -----------------------------------------

  const setUpQrApproval = (form) => {
    const token = form.dataset.token;
    const errorBox = document.getElementById("qr-approve-error");
    const done = document.getElementById("qr-done");
    const deny = document.getElementById("qr-deny");
    const closeForms = () => {
      form.hidden = true;
      if (deny) deny.closest("form").hidden = true;
    };
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const match = event.submitter ? event.submitter.value : "";
      errorBox.hidden = true;
      const picked = await postJSON(`/qr/${token}/match`, { match });
      if (!picked.ok) {
        closeForms();
        show(errorBox, picked.data.message || t("requestDenied", "The request was denied."));
        return;
      }
      const controller = new AbortController();
      const timer = withTimeout(controller);
      try {
        const credential = await navigator.credentials.get({
          publicKey: requestOptions(picked.data.publicKey),
          signal: controller.signal,
        });
        const result = await postJSON(`/qr/${token}/approve`, {
          credential: credentialToJSON(credential),
        });
        closeForms();
        if (result.ok) {
          done.hidden = false;
          return;
        }
        show(errorBox, result.data.message || t("refused", "The passkey was refused."));
      } catch (error) {
        closeForms();
        show(errorBox, explain(controller.signal.reason || error));
      } finally {
        clearTimeout(timer);
      }
    });
  };

  const start = () => {
    const signIn = document.getElementById("passkey-login");
    if (signIn) setUpSignIn(signIn);
    const register = document.getElementById("passkey-register");
    if (register) setUpRegistration(register);
    const waiting = document.getElementById("qr-status");
    if (waiting) setUpQrWaiting(waiting);
    const approval = document.getElementById("qr-match-form");
    if (approval) setUpQrApproval(approval);
  };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

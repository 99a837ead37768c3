// A single-page application built on oidc-client-ts (its browser build, global `oidc`):
// a public client of Passport with PKCE, as Passport's documentation tells SPAs to be.
// The test drives it in Chromium: the buttons for what a user does, `window.rp` for the
// rest (silent renew, revocation), each answering what the application now holds.
// Pages: "/" (the application), "/callback" (the redirect URI), "/silent" (the redirect
// URI of a silent renewal in a hidden iframe, when the application holds no refresh
// token), "/signed-out" (the post_logout_redirect_uri, registered as one, not as a
// redirect URI).
"use strict";

const show = (id, text) => { document.getElementById(id).textContent = text; };

function held(user) {
  if (!user) return null;
  return {
    access_token: user.access_token,
    refresh_token: user.refresh_token ?? null,
    id_token: user.id_token ?? null,
    expires_at: user.expires_at ?? null,
    scope: user.scope ?? null,
    profile: user.profile,
  };
}

function render(user) {
  if (user) {
    const p = user.profile;
    show("status", "signed in");
    show("profile", JSON.stringify({ sub: p.sub, preferred_username: p.preferred_username, email: p.email }));
  } else {
    show("status", "signed out");
    show("profile", "");
  }
}

async function main() {
  const config = await (await fetch("/config.json")).json();
  const origin = window.location.origin;
  const manager = new oidc.UserManager({
    authority: config.authority,
    client_id: config.client_id,
    redirect_uri: `${origin}/callback`,
    silent_redirect_uri: `${origin}/silent`,
    post_logout_redirect_uri: `${origin}/signed-out`,
    response_type: "code",
    scope: "openid profile email",
    loadUserInfo: true, // the UserInfo endpoint, through CORS (a preflight: Authorization)
    automaticSilentRenew: false,
    userStore: new oidc.WebStorageStateStore({ store: window.sessionStorage }),
  });

  document.getElementById("signin").addEventListener("click", () => manager.signinRedirect());
  document.getElementById("signout").addEventListener("click", () => manager.signoutRedirect());

  window.rp = {
    user: async () => held(await manager.getUser()),
    renew: async () => { const user = await manager.signinSilent(); render(user); return held(user); },
    revoke: async () => { await manager.revokeTokens(["access_token", "refresh_token"]); return true; },
  };

  const path = window.location.pathname;
  if (path === "/silent") {
    await manager.signinSilentCallback();
  } else if (path === "/callback") {
    const user = await manager.signinRedirectCallback();
    window.history.replaceState({}, "", "/");  // the code is spent: off the address bar
    render(user);
  } else if (path === "/signed-out") {
    await manager.signoutRedirectCallback();
    await manager.removeUser();
    render(null);
  } else {
    render(await manager.getUser());
  }
  document.body.dataset.ready = "true";
}

main().catch((error) => {
  show("error", String(error));
  console.error("oidc-client-ts:", error);
  document.body.dataset.ready = "failed";
});

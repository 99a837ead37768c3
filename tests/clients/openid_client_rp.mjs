// A relying party built on panva's openid-client (v6), driven by the test suite one step
// at a time: `node openid_client_rp.mjs <step>` reads a JSON object on stdin and writes
// one JSON object on stdout.  The test plays the browser between the steps (it follows
// the authorization URL that "start" prints and hands the callback URL to "finish") and
// carries what the relying party must remember (state, nonce, PKCE verifier) from one
// step to the next, as a real RP keeps it in its session.
//
// Input, every step:
//   issuer      Passport's issuer URL (discovery is fetched from it)
//   client      {id, secret, auth: "basic" | "post" | "none"}
// and what the step reads (see each below).  The answer is {"ok": ...} with exit status
// 0, or {"error": {...}} with exit status 2 when openid-client or Passport refused —
// the tests assert on refusals too.  Anything else (a bug here) exits 1 with a stack.
//
// One step answers more than once: "device" (RFC 8628) prints the device authorization
// response on its first line, then a line per answer of the token endpoint while it
// polls, then its answer — the test reads the user_code and plays the user on /device
// while openid-client polls (node_clients.start).
//
// More flows are one more entry in STEPS.
import * as client from "openid-client";

const AUTH = {
  basic: (c) => client.ClientSecretBasic(c.secret),
  post: (c) => client.ClientSecretPost(c.secret),
  none: () => client.None(),
};

async function configure(input) {
  const c = input.client;
  const auth = AUTH[c.auth];
  if (!auth) throw new Error(`unknown client auth ${c.auth}`);
  const config = await client.discovery(new URL(input.issuer), c.id, undefined, auth(c), {
    // Passport runs on http://127.0.0.1 in the tests; openid-client insists on https.
    execute: [client.allowInsecureRequests],
    timeout: 10,
  });
  // Verify the ID token's signature against the JWK Set too (OIDC Core §3.1.3.7 makes it
  // optional for a token received over TLS from the token endpoint; we want it checked).
  client.enableNonRepudiationChecks(config);
  return config;
}

// One line of output now (the "device" step prints several).
function emit(object) {
  process.stdout.write(JSON.stringify(object) + "\n");
}

// Every request openid-client sends from now on, as {method, url, at} (`at`: seconds
// since `since`, when it was sent): the tests check which endpoint it used (discovery's
// pushed_authorization_request_endpoint) and when (the device grant's interval).
// `seen(url, response, at)`, if given, is shown each answer before openid-client reads it.
function record(config, since = Date.now(), seen = undefined) {
  const sent = [];
  config[client.customFetch] = async (url, options) => {
    const at = (Date.now() - since) / 1000;
    sent.push({ method: options.method, url: String(url), at });
    const response = await fetch(url, options);
    if (seen) await seen(String(url), response, at);
    return response;
  };
  return sent;
}

function tokenOf(response) {
  const out = { ...response };
  delete out.claims;
  return out;
}

const STEPS = {
  // Discovery, then the authorization URL with PKCE (S256), state and nonce — with
  // `par`, pushed first (RFC 9126, buildAuthorizationUrlWithPAR: the parameters go to
  // the pushed_authorization_request_endpoint with the client's authentication, and
  // the URL carries client_id and the request_uri Passport answered).
  // Reads: redirect_uri, scope, params (extra authorization parameters, e.g. max_age),
  // par (optional).  Answers the URL, what to remember, the server metadata and the
  // requests sent (`sent`).
  async start(input) {
    const config = await configure(input);
    const sent = record(config);
    const codeVerifier = client.randomPKCECodeVerifier();
    const remember = {
      code_verifier: codeVerifier,
      state: client.randomState(),
      nonce: client.randomNonce(),
      max_age: input.params?.max_age,
    };
    const parameters = {
      redirect_uri: input.redirect_uri,
      scope: input.scope ?? "openid",
      state: remember.state,
      nonce: remember.nonce,
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: "S256",
      ...(input.params ?? {}),
    };
    const url = input.par
      ? await client.buildAuthorizationUrlWithPAR(config, parameters)
      : client.buildAuthorizationUrl(config, parameters);
    return { url: url.href, remember, server: config.serverMetadata(), sent };
  },

  // The callback: the authorization response is checked (state, RFC 9207 `iss`, errors),
  // the code exchanged (PKCE verifier, client authentication) and the ID token validated
  // (signature, iss, aud, azp, exp, iat, nonce, auth_time against max_age).
  // Reads: callback (the URL the browser reached), remember (from "start").
  async finish(input) {
    const config = await configure(input);
    const r = input.remember;
    const checks = {
      pkceCodeVerifier: r.code_verifier,
      expectedState: r.state,
      expectedNonce: r.nonce,
      idTokenExpected: true,
    };
    if (r.max_age !== undefined) checks.maxAge = Number(r.max_age);
    const tokens = await client.authorizationCodeGrant(config, new URL(input.callback), checks);
    return { token: tokenOf(tokens), claims: tokens.claims() };
  },

  // Reads: access_token, sub (the ID token's, which the UserInfo sub must equal).
  async userinfo(input) {
    const config = await configure(input);
    return client.fetchUserInfo(config, input.access_token, input.sub);
  },

  // Reads: refresh_token.
  async refresh(input) {
    const config = await configure(input);
    const tokens = await client.refreshTokenGrant(config, input.refresh_token);
    return { token: tokenOf(tokens), claims: tokens.claims() ?? null };
  },

  // Reads: token.
  async introspect(input) {
    const config = await configure(input);
    return client.tokenIntrospection(config, input.token);
  },

  // Reads: token, token_type_hint (optional).
  async revoke(input) {
    const config = await configure(input);
    const params = input.token_type_hint ? { token_type_hint: input.token_type_hint } : {};
    await client.tokenRevocation(config, input.token, params);
    return { revoked: true };
  },

  // Reads: scope (optional).
  async client_credentials(input) {
    const config = await configure(input);
    const params = input.scope ? { scope: input.scope } : {};
    return { token: tokenOf(await client.clientCredentialsGrant(config, params)) };
  },

  // The Device Authorization Grant (RFC 8628): initiateDeviceAuthorization, then
  // pollDeviceAuthorizationGrant, which waits `interval` seconds before each poll, keeps
  // polling on authorization_pending and adds 5 seconds to its interval at each
  // slow_down (§3.5), and ends with the tokens (the ID token validated as in "finish",
  // but for nonce) or the error that ended the grant (access_denied, expired_token...).
  // Lines printed: first {"device": <the device authorization response>} (or the
  // step's error), then {"poll": {at, status, error}} for each answer of the token
  // endpoint (`at`: seconds after the device authorization response that the poll was
  // sent), then the step's answer: {token, claims, sent}.
  // Reads: scope; deadline (seconds the polling may last, default 60); interval
  // (optional: poll every `interval` seconds instead of Passport's — a client that
  // polls too fast).
  async device(input) {
    const config = await configure(input);
    const started = await client.initiateDeviceAuthorization(config, {
      scope: input.scope ?? "openid",
    });
    const tokenEndpoint = config.serverMetadata().token_endpoint;
    const sent = record(config, Date.now(), async (url, response, at) => {
      if (url !== tokenEndpoint) return;
      const body = await response.clone().json().catch(() => ({}));
      emit({ poll: { at, status: response.status, error: body.error ?? null } });
    });
    emit({ device: started });
    const polled =
      input.interval === undefined ? started : { ...started, interval: input.interval };
    const tokens = await client.pollDeviceAuthorizationGrant(config, polled, undefined, {
      signal: AbortSignal.timeout((input.deadline ?? 60) * 1000),
    });
    return { token: tokenOf(tokens), claims: tokens.claims() ?? null, sent };
  },

  // RP-Initiated Logout 1.0: the end_session_endpoint URL.
  // Reads: params (id_token_hint, post_logout_redirect_uri, state, ...).
  async end_session(input) {
    const config = await configure(input);
    return { url: client.buildEndSessionUrl(config, input.params ?? {}).href };
  },
};

function describe(error) {
  const out = { name: error.name, message: error.message };
  for (const key of ["code", "error", "error_description", "status"]) {
    if (error[key] !== undefined) out[key] = error[key];
  }
  if (error.cause !== undefined) {
    out.cause = error.cause instanceof Error ? describe(error.cause) : error.cause;
  }
  return out;
}

async function main() {
  const step = STEPS[process.argv[2]];
  if (!step) {
    process.stderr.write(`unknown step ${process.argv[2]}; steps: ${Object.keys(STEPS)}\n`);
    process.exit(1);
  }
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const input = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  let answer;
  try {
    answer = { ok: await step(input) };
  } catch (error) {
    if (!(error instanceof client.ClientError || error instanceof client.ResponseBodyError
      || error instanceof client.AuthorizationResponseError
      || error instanceof client.WWWAuthenticateChallengeError)) {
      throw error;
    }
    emit({ error: describe(error) });
    process.exit(2);
  }
  emit(answer);
}

await main();

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
// More flows are one more entry in STEPS (device authorization, RFC 8628:
// initiateDeviceAuthorization / pollDeviceAuthorizationGrant; pushed authorization
// requests, RFC 9126: buildAuthorizationUrlWithPAR).
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

function tokenOf(response) {
  const out = { ...response };
  delete out.claims;
  return out;
}

const STEPS = {
  // Discovery, then the authorization URL with PKCE (S256), state and nonce.
  // Reads: redirect_uri, scope, params (extra authorization parameters, e.g. max_age).
  async start(input) {
    const config = await configure(input);
    const codeVerifier = client.randomPKCECodeVerifier();
    const remember = {
      code_verifier: codeVerifier,
      state: client.randomState(),
      nonce: client.randomNonce(),
      max_age: input.params?.max_age,
    };
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: input.redirect_uri,
      scope: input.scope ?? "openid",
      state: remember.state,
      nonce: remember.nonce,
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: "S256",
      ...(input.params ?? {}),
    });
    return { url: url.href, remember, server: config.serverMetadata() };
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
    process.stdout.write(JSON.stringify({ error: describe(error) }) + "\n");
    process.exit(2);
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}

await main();

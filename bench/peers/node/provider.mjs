// node-oidc-provider peer for Passport's side-by-side benchmark (driven by bench/peers.py).
//
//   node bench/peers/node/provider.mjs --port P --fixtures FILE \
//        --adapter memory|redis|postgresql [--database-url URL] [--redis-url URL]
//
// Prepares the chosen store, creates a user access token in it, writes FILE (JSON, the peer
// contract in bench/peers.py), then listens on 127.0.0.1:P until SIGTERM.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { parseArgs } from 'node:util';

// Koa (under oidc-provider) reads NODE_ENV when the app is built; set it before importing.
process.env.NODE_ENV ??= 'production';

const { default: Provider, errors } = await import('oidc-provider');
const { memoryAdapter, postgresAdapter, redisAdapter } = await import('./adapters.mjs');

const CLIENT_ID = 'bench-client';
const ACCOUNT_ID = 'bench-user';
const JWT_RESOURCE = 'https://api.bench.example/';
const ACCESS_TOKEN_TTL = 3600;

function parseCommandLine() {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      fixtures: { type: 'string' },
      adapter: { type: 'string', default: 'memory' },
      'database-url': { type: 'string' },
      'redis-url': { type: 'string' },
    },
    strict: true,
  });
  const port = Number.parseInt(values.port ?? '', 10);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new Error('--port P is required');
  if (!values.fixtures) throw new Error('--fixtures FILE is required');
  if (!['memory', 'redis', 'postgresql'].includes(values.adapter)) {
    throw new Error('--adapter must be memory, redis or postgresql');
  }
  if (values.adapter === 'postgresql' && !values['database-url']) {
    throw new Error('--adapter postgresql needs --database-url URL');
  }
  if (values.adapter === 'redis' && !values['redis-url']) {
    // Required, not defaulted: the peer flushes that database at startup.
    throw new Error('--adapter redis needs --redis-url URL (redis://HOST:PORT/DB, flushed at startup)');
  }
  return {
    port,
    fixtures: values.fixtures,
    adapter: values.adapter,
    databaseUrl: values['database-url'],
    redisUrl: values['redis-url'],
  };
}

// --- the provider ------------------------------------------------------------------------------
function signingKey() {
  const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: crypto.randomBytes(8).toString('base64url'), alg: 'ES256', use: 'sig' };
}

const ACCOUNT_CLAIMS = {
  sub: ACCOUNT_ID,
  name: 'Bench User',
  preferred_username: 'bench',
  email: 'bench@bench.example',
  email_verified: true,
};

function configuration(adapter, clientSecret) {
  return {
    adapter,
    clients: [{
      client_id: CLIENT_ID,
      client_secret: clientSecret,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials', 'authorization_code'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback'],
      scope: 'openid profile email api:read',
    }],
    clientDefaults: { id_token_signed_response_alg: 'ES256' },
    jwks: { keys: [signingKey()] },
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    scopes: ['openid', 'profile', 'email', 'api:read'],
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username'],
      email: ['email', 'email_verified'],
    },
    async findAccount(_ctx, id) {
      if (id !== ACCOUNT_ID) return undefined;
      return { accountId: id, claims: async () => ({ ...ACCOUNT_CLAIMS }) };
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        // RFC 7662 leaves this to policy; like Passport, a client may introspect its own tokens.
        allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
      },
      revocation: {
        enabled: true,
        allowedPolicy: async (_ctx, client, token) => token.clientId === client.clientId,
      },
      userinfo: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // No resource requested: no default one, so the token is opaque (stored in the adapter).
        defaultResource: async (_ctx, _client, oneOf) => oneOf,
        useGrantedResource: async () => false,
        async getResourceServerInfo(_ctx, resourceIndicator) {
          if (resourceIndicator !== JWT_RESOURCE) throw new errors.InvalidTarget();
          return {
            scope: 'api:read',
            audience: JWT_RESOURCE,
            accessTokenTTL: ACCESS_TOKEN_TTL,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'ES256' } },
          };
        },
      },
    },
    ttl: {
      AccessToken: ACCESS_TOKEN_TTL,
      ClientCredentials: ACCESS_TOKEN_TTL,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: 14 * 24 * 3600,
      Grant: 14 * 24 * 3600,
      Session: 14 * 24 * 3600,
      Interaction: 3600,
    },
  };
}

// A user's access token for "openid profile email", made the way the authorization code grant
// would leave it: a Grant for the account and client, and an opaque AccessToken bound to it.
async function userinfoToken(provider) {
  const client = await provider.Client.find(CLIENT_ID);
  const grant = new provider.Grant({ accountId: ACCOUNT_ID, clientId: CLIENT_ID });
  grant.addOIDCScope('openid profile email');
  const grantId = await grant.save();
  const token = new provider.AccessToken({
    accountId: ACCOUNT_ID,
    client,
    grantId,
    gty: 'authorization_code',
    scope: 'openid profile email',
  });
  return token.save();
}

function writeFixtures(file, fixtures) {
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  fs.writeFileSync(temporary, `${JSON.stringify(fixtures, null, 2)}\n`);
  fs.renameSync(temporary, file);
}

async function main() {
  const options = parseCommandLine();
  const issuer = `http://127.0.0.1:${options.port}`;

  let store;
  if (options.adapter === 'redis') store = await redisAdapter(options.redisUrl);
  else if (options.adapter === 'postgresql') store = await postgresAdapter(options.databaseUrl);
  else store = await memoryAdapter();

  const clientSecret = crypto.randomBytes(32).toString('base64url');
  const provider = new Provider(issuer, configuration(store.factory, clientSecret));
  provider.on('server_error', (_ctx, err) => console.error('server_error:', err));

  writeFixtures(options.fixtures, {
    issuer,
    client_id: CLIENT_ID,
    client_secret: clientSecret,
    jwt_resource: JWT_RESOURCE,
    userinfo_token: await userinfoToken(provider),
  });

  const server = http.createServer(provider.callback());
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, '127.0.0.1', resolve);
  });

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    server.close();
    server.closeAllConnections();
    await store.close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

try {
  await main();
} catch (err) {
  console.error(err);
  process.exit(1);
}

// Storage adapters for the node-oidc-provider peer (provider.mjs): each creator prepares its
// store and returns {factory, close}; factory(modelName) gives the adapter oidc-provider calls
// (upsert, find, findByUid, findByUserCode, consume, destroy, revokeByGrantId).

// Models whose instances get consume()d (single use codes and rotated refresh tokens).
const CONSUMABLE = new Set([
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

// --- memory: oidc-provider's own in-memory adapter -------------------------------------------
// Its default store is an LRU of 1000 entries, which the token benchmark overflows within a
// second (evicting the userinfo fixture token). Same adapter class and LRU, larger capacity.
export async function memoryAdapter() {
  const { default: MemoryAdapter } = await import('oidc-provider/lib/adapters/memory_adapter.js');
  const { default: LRU } = await import('oidc-provider/lib/helpers/lru.js');
  const store = new LRU({ maxSize: 1_000_000 });
  return { factory: (model) => new MemoryAdapter(model, store), close: async () => {} };
}

// --- redis: one key per stored model instance, TTL = expiresIn ---------------------------------
// Plain models: a string key holding the JSON payload (GET/SET EX). Consumable models: a hash
// {payload, consumed} so consume() is one HSET. Secondary indexes: grant -> set of token keys,
// user code -> id, session uid -> id.
class RedisAdapter {
  constructor(model, redis) {
    this.model = model;
    this.redis = redis;
    this.consumable = CONSUMABLE.has(model);
  }

  key(id) {
    return `oidc:${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const json = JSON.stringify(payload);
    const ttl = typeof expiresIn === 'number' && expiresIn > 0 ? Math.ceil(expiresIn) : undefined;
    const { grantId, userCode, uid } = payload;
    if (!this.consumable && !grantId && !userCode && !uid) {
      await (ttl ? this.redis.set(key, json, 'EX', ttl) : this.redis.set(key, json));
      return;
    }
    const multi = this.redis.multi();
    if (this.consumable) {
      multi.del(key).hset(key, 'payload', json);
      if (ttl) multi.expire(key, ttl);
    } else {
      if (ttl) multi.set(key, json, 'EX', ttl);
      else multi.set(key, json);
    }
    if (grantId) {
      const grantKey = `oidc:index:grant:${grantId}`;
      multi.sadd(grantKey, key);
      if (ttl) multi.expire(grantKey, ttl, 'NX').expire(grantKey, ttl, 'GT');
    }
    for (const [kind, value] of [['userCode', userCode], ['uid', uid]]) {
      if (value) {
        if (ttl) multi.set(`oidc:index:${kind}:${value}`, id, 'EX', ttl);
        else multi.set(`oidc:index:${kind}:${value}`, id);
      }
    }
    await multi.exec();
  }

  async find(id) {
    const key = this.key(id);
    if (!this.consumable) {
      const json = await this.redis.get(key);
      return json ? JSON.parse(json) : undefined;
    }
    const [json, consumed] = await this.redis.hmget(key, 'payload', 'consumed');
    if (!json) return undefined;
    const payload = JSON.parse(json);
    if (consumed) payload.consumed = Number(consumed);
    return payload;
  }

  async findByIndex(kind, value) {
    const id = await this.redis.get(`oidc:index:${kind}:${value}`);
    return id ? this.find(id) : undefined;
  }

  findByUserCode(userCode) {
    return this.findByIndex('userCode', userCode);
  }

  findByUid(uid) {
    return this.findByIndex('uid', uid);
  }

  async consume(id) {
    await this.redis.hset(this.key(id), 'consumed', Math.floor(Date.now() / 1000));
  }

  async destroy(id) {
    await this.redis.del(this.key(id));
  }

  async revokeByGrantId(grantId) {
    const grantKey = `oidc:index:grant:${grantId}`;
    const keys = await this.redis.smembers(grantKey);
    await this.redis.del(...keys, grantKey);
  }
}

export async function redisAdapter(url) {
  const { default: Redis } = await import('ioredis');
  const redis = new Redis(url, { lazyConnect: true });
  await redis.connect();
  await redis.flushdb(); // the runner hands us a database number of our own
  return {
    factory: (model) => new RedisAdapter(model, redis),
    close: async () => {
      await redis.quit();
    },
  };
}

// --- postgresql: one table for every model, parameterised named (prepared) statements ---------
const SCHEMA = `
CREATE TABLE IF NOT EXISTS oidc_models (
  model       text        NOT NULL,
  id          text        NOT NULL,
  payload     jsonb       NOT NULL,
  grant_id    text,
  user_code   text,
  uid         text,
  expires_at  timestamptz,
  consumed_at timestamptz,
  PRIMARY KEY (model, id)
);
CREATE INDEX IF NOT EXISTS oidc_models_grant_id ON oidc_models (grant_id) WHERE grant_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS oidc_models_user_code ON oidc_models (user_code) WHERE user_code IS NOT NULL;
CREATE INDEX IF NOT EXISTS oidc_models_uid ON oidc_models (uid) WHERE uid IS NOT NULL;
`;

const SELECT = `SELECT payload, floor(extract(epoch FROM consumed_at))::bigint AS consumed
  FROM oidc_models WHERE model = $1 AND %s AND (expires_at IS NULL OR expires_at > now())`;

const SQL = {
  upsert: {
    name: 'oidc_upsert',
    text: `INSERT INTO oidc_models (model, id, payload, grant_id, user_code, uid, expires_at)
      VALUES ($1, $2, $3, $4, $5, $6, $7)
      ON CONFLICT (model, id) DO UPDATE SET payload = excluded.payload, grant_id = excluded.grant_id,
        user_code = excluded.user_code, uid = excluded.uid, expires_at = excluded.expires_at`,
  },
  find: { name: 'oidc_find', text: SELECT.replace('%s', 'id = $2') },
  findByUid: { name: 'oidc_find_uid', text: SELECT.replace('%s', 'uid = $2') },
  findByUserCode: { name: 'oidc_find_user_code', text: SELECT.replace('%s', 'user_code = $2') },
  consume: {
    name: 'oidc_consume',
    text: 'UPDATE oidc_models SET consumed_at = now() WHERE model = $1 AND id = $2',
  },
  destroy: { name: 'oidc_destroy', text: 'DELETE FROM oidc_models WHERE model = $1 AND id = $2' },
  revokeByGrantId: { name: 'oidc_revoke_grant', text: 'DELETE FROM oidc_models WHERE grant_id = $1' },
};

class PostgresAdapter {
  constructor(model, pool) {
    this.model = model;
    this.pool = pool;
  }

  async upsert(id, payload, expiresIn) {
    const expiresAt = typeof expiresIn === 'number' ? new Date(Date.now() + expiresIn * 1000) : null;
    await this.pool.query({
      ...SQL.upsert,
      values: [this.model, id, JSON.stringify(payload), payload.grantId ?? null,
        payload.userCode ?? null, payload.uid ?? null, expiresAt],
    });
  }

  async findBy(statement, value) {
    const { rows } = await this.pool.query({ ...statement, values: [this.model, value] });
    if (rows.length === 0) return undefined;
    const { payload, consumed } = rows[0];
    if (consumed !== null) payload.consumed = Number(consumed);
    return payload;
  }

  find(id) {
    return this.findBy(SQL.find, id);
  }

  findByUid(uid) {
    return this.findBy(SQL.findByUid, uid);
  }

  findByUserCode(userCode) {
    return this.findBy(SQL.findByUserCode, userCode);
  }

  async consume(id) {
    await this.pool.query({ ...SQL.consume, values: [this.model, id] });
  }

  async destroy(id) {
    await this.pool.query({ ...SQL.destroy, values: [this.model, id] });
  }

  async revokeByGrantId(grantId) {
    await this.pool.query({ ...SQL.revokeByGrantId, values: [grantId] });
  }
}

export async function postgresAdapter(url) {
  const { default: pg } = await import('pg');
  const pool = new pg.Pool({ connectionString: url, max: 8 });
  pool.on('error', (err) => console.error('postgresql pool error:', err.message));
  await pool.query(SCHEMA);
  return {
    factory: (model) => new PostgresAdapter(model, pool),
    close: () => pool.end(),
  };
}

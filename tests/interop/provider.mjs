// oidc-provider (pinned in package.json) as a generic OpenID Connect
// provider for poolgate's interoperability test, on loopback TLS.
//
//   node provider.mjs CERT.pem KEY.pem
//
// Listens on 127.0.0.1, an ephemeral port; the issuer is
// https://localhost:PORT and is printed as the first line on stdout once the
// server accepts connections.  Environment (set by run_provider.py):
//   PG_IDP_PASSWORD   the password of both accounts
//   PG_IDP_TENANT     the tid claim of every user token
//
// Everything protocol-related is oidc-provider's own code with its defaults,
// except where a comment says why.  The harness adds, over the same HTTPS
// listener:
//   /interaction/:uid            login and consent pages (HTML forms), as a
//                                real deployment must provide them
//   GET  /_test/log              every token request (time, grant_type,
//                                status, error code, hashes of the device
//                                code / refresh token) and every JWKS fetch
//   POST /_test/rotate           sign with a new RS256 key from now on; the
//                                old key stays published
//   POST /_test/config           id_token_ttl, access_token_ttl (seconds, for
//                                tokens issued afterwards); resource_policy
//                                (strict | scope, see defaultResource below);
//                                jwks_content_type (empty: the provider's own)
//   GET  /_test/jwks             the published key set (same as jwks_uri, not logged)
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as https from 'node:https';
import { performance } from 'node:perf_hooks';

import Provider, { errors } from 'oidc-provider';

const [certFile, keyFile] = process.argv.slice(2);
if (!certFile || !keyFile) {
  process.stderr.write('usage: node provider.mjs CERT.pem KEY.pem\n');
  process.exit(2);
}
const PASSWORD = process.env.PG_IDP_PASSWORD;
const TENANT = process.env.PG_IDP_TENANT;
if (!PASSWORD || !TENANT) {
  process.stderr.write('provider.mjs: PG_IDP_PASSWORD and PG_IDP_TENANT must be set\n');
  process.exit(2);
}

const RESOURCE = 'https://enroll.poolgate.test';
const RESOURCE_SCOPE = 'agentpool.enroll';
const CLIENT_RS256 = 'poolgate-rs256';
const CLIENT_ES256 = 'poolgate-es256';

// ---- accounts -----------------------------------------------------------

const ACCOUNTS = {
  olga: {
    sub: 'olga', oid: '0b5e3c1a-0000-4e8b-9a61-3c4d5e6f7a8b', name: 'Olga Operator',
    roles: ['AgentPool.Enroll'],
  },
  nina: {
    sub: 'nina', oid: '7d1f2e3a-1111-4c2b-8e4f-5a6b7c8d9e0f', name: 'Nina Norole',
    roles: ['Docs.Reader'],
  },
};

function identityClaims(acct) {
  return {
    tid: TENANT,
    oid: acct.oid,
    name: acct.name,
    preferred_username: `${acct.sub}@contoso.example`,
    roles: [...acct.roles],
    // Keycloak's shape of realm roles.
    realm_access: { roles: [...acct.roles] },
  };
}

async function findAccount(ctx, sub) {
  const acct = ACCOUNTS[sub];
  if (!acct) return undefined;
  return {
    accountId: sub,
    // oidc-provider masks these by the granted scopes and claims.
    async claims() {
      return { sub, ...identityClaims(acct) };
    },
  };
}

// ---- keys -----------------------------------------------------------------

function newKey(alg) {
  const { privateKey } = alg === 'RS256'
    ? crypto.generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 65537 })
    : crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: `${alg.toLowerCase()}-${crypto.randomBytes(4).toString('hex')}`, alg, use: 'sig' };
}

// oidc-provider signs with the first key of the wanted algorithm; a rotation
// puts the new RS256 key first and keeps the old one published after it.
let signingKeys = [newKey('RS256'), newKey('ES256')];

// ---- test knobs ---------------------------------------------------------

const knobs = {
  idTokenTTL: 3600,
  accessTokenTTL: 3600,
  // 'strict': oidc-provider's own default: a JWT access token for RESOURCE
  // only when the client asks for it with the RFC 8707 `resource`
  // parameter; without one, the access token is an opaque one for userinfo.
  // 'scope': the provider maps the resource's scope to the resource when the
  // client sends no `resource` (the documented defaultResource and
  // useGrantedResource helpers), the way Entra maps api://.../.default.
  resourcePolicy: 'strict',
  // null: the key set is served as oidc-provider serves it
  // (application/jwk-set+json, RFC 7517 §8.5).  A media type here replaces
  // that, so that the rest of poolgate can be tested while poolgate accepts
  // only application/json (see README.md); the test sets it only after
  // recording the failure.
  jwksContentType: null,
};

// ---- request log --------------------------------------------------------

const log = [];
const hash = (v) => (typeof v === 'string' && v
  ? crypto.createHash('sha256').update(v).digest('hex').slice(0, 16) : undefined);

async function logRequests(ctx, next) {
  const t = performance.now() / 1000;
  await next();
  const route = ctx.oidc?.route;
  if (route === 'token') {
    const params = ctx.oidc?.params || {};
    const body = ctx.oidc?.body || {};
    const grantType = params.grant_type || body.grant_type;
    log.push({
      kind: 'token', path: ctx.path, t, wall: Date.now() / 1000, method: ctx.method,
      grant_type: grantType,
      client_id: ctx.oidc?.client?.clientId || body.client_id,
      status: ctx.status,
      error: ctx.body && typeof ctx.body === 'object' ? ctx.body.error : undefined,
      device_code: hash(params.device_code || body.device_code),
      refresh_token: hash(params.refresh_token || body.refresh_token),
      scope: params.scope || body.scope,
      resource: params.resource || body.resource,
      issued_refresh_token: hash(ctx.body?.refresh_token),
    });
  } else if (route === 'jwks') {
    if (knobs.jwksContentType) ctx.type = knobs.jwksContentType;
    log.push({ kind: 'jwks', path: ctx.path, t, wall: Date.now() / 1000, method: ctx.method, status: ctx.status });
  } else if (route === 'discovery') {
    log.push({ kind: 'discovery', path: ctx.path, t, wall: Date.now() / 1000, method: ctx.method, status: ctx.status });
  } else if (route === 'device_authorization') {
    const params = ctx.oidc?.params || {};
    log.push({
      kind: 'device_authorization', path: ctx.path, t, wall: Date.now() / 1000,
      method: ctx.method, status: ctx.status, client_id: ctx.oidc?.client?.clientId,
      // as sent (oidc-provider drops scopes it cannot grant from params.scope)
      scope: ctx.oidc?.body?.scope, resource: ctx.oidc?.body?.resource,
      effective_scope: params.scope,
      error: ctx.body && typeof ctx.body === 'object' ? ctx.body.error : undefined,
      interval: ctx.body && typeof ctx.body === 'object' ? ctx.body.interval : undefined,
      issued_device_code: hash(ctx.body?.device_code),
      answer_members: ctx.body && typeof ctx.body === 'object' ? Object.keys(ctx.body).sort() : undefined,
    });
  }
}

// ---- the provider -------------------------------------------------------

const COOKIE_KEYS = [crypto.randomBytes(32).toString('hex')];

function makeProvider(issuer) {
  const configuration = {
    // The in-memory adapter keeps its store at module level, so a second
    // Provider instance made at /_test/rotate sees every grant, session,
    // device code and refresh token the first one issued.
    clients: [CLIENT_RS256, CLIENT_ES256].map((clientId) => ({
      client_id: clientId,
      client_name: `poolgate (${clientId})`,
      application_type: 'native',
      token_endpoint_auth_method: 'none', // public client, as poolgate is
      grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
      response_types: [],
      redirect_uris: [],
      id_token_signed_response_alg: clientId === CLIENT_ES256 ? 'ES256' : 'RS256',
    })),
    jwks: { keys: signingKeys },
    cookies: { keys: COOKIE_KEYS },
    findAccount,
    // tid, oid and the roles come with the openid scope (Entra puts them in
    // every token); name and preferred_username with profile.
    claims: {
      openid: ['sub', 'tid', 'oid', 'roles', 'realm_access'],
      profile: ['name', 'preferred_username'],
    },
    // poolgate verifies the id_token and shows its name: with the default
    // (true), profile claims would go to userinfo only.  The only relaxation.
    conformIdTokenClaims: false,
    // Rotation on every use, whatever the client type (the default rotates
    // public clients' tokens too; stated here because the test depends on it).
    rotateRefreshToken: true,
    // JWT access tokens for the resource carry the identity as well.
    async extraTokenClaims(ctx, token) {
      if (token.kind !== 'AccessToken' || !token.resourceServer) return undefined;
      const acct = ACCOUNTS[token.accountId];
      return acct ? identityClaims(acct) : undefined;
    },
    ttl: {
      AccessToken: (ctx, token) => knobs.accessTokenTTL,
      IdToken: () => knobs.idTokenTTL,
      DeviceCode: 600,
      RefreshToken: 14 * 24 * 3600,
      Grant: 14 * 24 * 3600,
      Session: 14 * 24 * 3600,
      Interaction: 3600,
      AuthorizationCode: 60,
    },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false }, // our own login checks passwords
      deviceFlow: { enabled: true },
      resourceIndicators: {
        enabled: true,
        async defaultResource(ctx, client, oneOf) {
          if (oneOf) return oneOf;
          if (knobs.resourcePolicy === 'scope'
              && (ctx.oidc.params.scope || '').split(' ').includes(RESOURCE_SCOPE)) {
            return RESOURCE;
          }
          return undefined;
        },
        async useGrantedResource() {
          return knobs.resourcePolicy === 'scope';
        },
        async getResourceServerInfo(ctx, resourceIndicator, client) {
          if (resourceIndicator !== RESOURCE) throw new errors.InvalidTarget();
          return {
            scope: RESOURCE_SCOPE,
            audience: RESOURCE,
            accessTokenTTL: knobs.accessTokenTTL,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: client.clientId === CLIENT_ES256 ? 'ES256' : 'RS256' } },
          };
        },
      },
    },
  };
  const provider = new Provider(issuer, configuration);
  provider.use(logRequests);
  return provider;
}

// ---- the operator's pages (login and consent) -----------------------------

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(res, status, title, body) {
  const html = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${esc(title)}</title></head>
<body><h1>${esc(title)}</h1>
${body}
</body></html>`;
  res.writeHead(status, {
    'Content-Type': 'text/html; charset=utf-8',
    'Cache-Control': 'no-store',
    'Content-Length': Buffer.byteLength(html),
  });
  res.end(html);
}

function readForm(req) {
  return new Promise((resolve, reject) => {
    const type = (req.headers['content-type'] || '').split(';')[0].trim();
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > 65536) reject(new Error('form too large'));
      else chunks.push(c);
    });
    req.on('end', () => {
      if (type !== 'application/x-www-form-urlencoded') return resolve(null);
      return resolve(Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString())));
    });
    req.on('error', reject);
  });
}

async function interaction(provider, req, res, url) {
  const m = url.pathname.match(/^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|confirm|abort))?$/);
  if (!m) return page(res, 404, 'Not found', '');
  const [, uid, action] = m;
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (e) {
    return page(res, 400, 'Session expired', `<p>${esc(e.message)}</p>`);
  }
  if (details.uid !== uid) return page(res, 400, 'Wrong interaction', '');
  const { prompt, params } = details;
  const client = await provider.Client.find(params.client_id);

  if (req.method === 'GET' && !action) {
    if (prompt.name === 'login') {
      return page(res, 200, 'Sign in', `
<p>Sign in to continue to <b>${esc(client?.clientName || params.client_id)}</b>.</p>
<form method="post" action="/interaction/${uid}/login" id="login">
<input type="text" name="username" autocomplete="username">
<input type="password" name="password" autocomplete="current-password">
<button type="submit">Sign in</button>
</form>
<form method="post" action="/interaction/${uid}/abort" id="abort"><button type="submit">Cancel</button></form>`);
    }
    if (prompt.name === 'consent') {
      const d = prompt.details;
      const scopes = [...(d.missingOIDCScope || []), ...Object.values(d.missingResourceScopes || {}).flat()];
      return page(res, 200, 'Authorize', `
<p><b>${esc(client?.clientName || params.client_id)}</b> asks for: ${esc(scopes.join(' ') || '(no new scopes)')}</p>
<form method="post" action="/interaction/${uid}/confirm" id="consent"><button type="submit">Allow</button></form>
<form method="post" action="/interaction/${uid}/abort" id="abort"><button type="submit">Deny</button></form>`);
    }
    return page(res, 400, 'Unknown prompt', `<p>${esc(prompt.name)}</p>`);
  }
  if (req.method !== 'POST' || !action) return page(res, 405, 'Method not allowed', '');
  const form = await readForm(req);
  if (form === null) return page(res, 400, 'Bad form', '');

  if (action === 'abort') {
    return provider.interactionFinished(req, res, {
      error: 'access_denied', error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
  }
  if (action === 'login') {
    if (prompt.name !== 'login') return page(res, 400, 'Not a login prompt', '');
    const acct = ACCOUNTS[form.username];
    const ok = acct && typeof form.password === 'string'
      && crypto.timingSafeEqual(crypto.createHash('sha256').update(form.password).digest(),
        crypto.createHash('sha256').update(PASSWORD).digest());
    if (!ok) {
      return page(res, 401, 'Sign in', `<p class="error">Wrong user name or password.</p>
<form method="post" action="/interaction/${uid}/login" id="login">
<input type="text" name="username"><input type="password" name="password">
<button type="submit">Sign in</button></form>`);
    }
    return provider.interactionFinished(req, res, { login: { accountId: form.username } },
      { mergeWithLastSubmission: false });
  }
  // confirm
  if (prompt.name !== 'consent') return page(res, 400, 'Not a consent prompt', '');
  const { accountId } = details.session;
  let grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId, clientId: params.client_id });
  const d = prompt.details;
  if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
  if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(d.missingResourceScopes || {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  const consent = details.grantId ? {} : { grantId };
  return provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
}

// ---- test controls --------------------------------------------------------

function json(res, status, obj) {
  const data = JSON.stringify(obj);
  res.writeHead(status, {
    'Content-Type': 'application/json', 'Cache-Control': 'no-store',
    'Content-Length': Buffer.byteLength(data),
  });
  res.end(data);
}

let current;
let currentCallback;
let issuer;

function install(provider) {
  current = provider;
  currentCallback = provider.callback();
}

async function control(req, res, url) {
  const what = url.pathname.slice('/_test/'.length);
  if (req.method === 'GET' && what === 'log') return json(res, 200, log);
  if (req.method === 'GET' && what === 'jwks') {
    return json(res, 200, {
      keys: signingKeys.map(({ kty, kid, alg, use, n, e, crv, x, y }) => (
        { kty, kid, alg, use, n, e, crv, x, y })),
    });
  }
  if (req.method !== 'POST') return json(res, 405, { error: 'method' });
  const form = (await readForm(req)) || {};
  if (what === 'rotate') {
    const fresh = newKey('RS256');
    signingKeys = [fresh, ...signingKeys];
    install(makeProvider(issuer));
    return json(res, 200, { ok: true, kid: fresh.kid });
  }
  if (what === 'config') {
    if (form.id_token_ttl) knobs.idTokenTTL = parseInt(form.id_token_ttl, 10);
    if (form.access_token_ttl) knobs.accessTokenTTL = parseInt(form.access_token_ttl, 10);
    if (form.jwks_content_type !== undefined) knobs.jwksContentType = form.jwks_content_type || null;
    if (form.resource_policy) {
      if (!['strict', 'scope'].includes(form.resource_policy)) return json(res, 400, { error: 'resource_policy' });
      knobs.resourcePolicy = form.resource_policy;
    }
    return json(res, 200, { ok: true, ...knobs });
  }
  return json(res, 404, { error: 'not_found' });
}

// ---- the listener -----------------------------------------------------------

const server = https.createServer({
  cert: fs.readFileSync(certFile),
  key: fs.readFileSync(keyFile),
}, (req, res) => {
  const url = new URL(req.url, issuer);
  const fail = (e) => {
    process.stderr.write(`provider.mjs: ${e.stack || e}\n`);
    if (!res.headersSent) json(res, 500, { error: 'server_error' });
    else res.destroy();
  };
  if (url.pathname.startsWith('/_test/')) return control(req, res, url).catch(fail);
  if (url.pathname.startsWith('/interaction/')) return interaction(current, req, res, url).catch(fail);
  return currentCallback(req, res);
});

server.listen(0, '127.0.0.1', () => {
  issuer = `https://localhost:${server.address().port}`;
  install(makeProvider(issuer));
  process.stdout.write(`${issuer}\n`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => { server.close(() => process.exit(0)); server.closeAllConnections(); });
}

// A real OpenID Connect provider for the tests: npm's `oidc-provider` (an OpenID Certified
// implementation), with a login form of its own, the test's users and groups, and a switch that
// spoils the next ID token so that tagward's checks can be seen refusing it.
//
// Environment: OIDC_MODULES (a node_modules holding oidc-provider), PORT, CLIENT_ID, CLIENT_SECRET,
// REDIRECT_URI, POST_LOGOUT_URI, ACCOUNTS_FILE (JSON: {"alice": {"groups": ["shop-devs"]}}, read
// at every sign-in so a test can change groups between two). A new signing key is made at every
// start: restarting the provider rotates its key.
//
// Test-only routes: POST /_test/mischief with one of `tamper` (a claim changed after signing),
// `nonce`, `audience`, `expired` (re-signed with the provider's own key, so only that check fails):
// applied to the next token response only.

import { createServer } from 'node:http';
import { generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const port = Number(env('PORT'));
const issuer = `http://127.0.0.1:${port}`;
const { default: Provider } = await import(
  pathToFileURL(join(env('OIDC_MODULES'), 'oidc-provider', 'lib', 'index.js')).href
);

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const kid = randomUUID();
const jwk = { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };

const accounts = () => JSON.parse(readFileSync(env('ACCOUNTS_FILE'), 'utf8'));

const provider = new Provider(issuer, {
  clients: [{
    client_id: env('CLIENT_ID'),
    client_secret: env('CLIENT_SECRET'),
    redirect_uris: [env('REDIRECT_URI')],
    post_logout_redirect_uris: [env('POST_LOGOUT_URI')],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [jwk] },
  cookies: { keys: ['tagward-test-provider'] },
  claims: { openid: ['sub'], profile: ['preferred_username', 'name'], email: ['email'], groups: ['groups'] },
  // The scopes' claims go in the ID token, not only to UserInfo; with CONFORM_ID_TOKEN_CLAIMS=1,
  // oidc-provider's default (OpenID Connect Core 5.4): only to UserInfo, as an access token is issued.
  conformIdTokenClaims: process.env.CONFORM_ID_TOKEN_CLAIMS === '1',
  features: { devInteractions: { enabled: false }, rpInitiatedLogout: { enabled: true } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  // Consent is given once the person logs in: the test's client is the organisation's own.
  async loadExistingGrant(ctx) {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid profile email groups');
    await grant.save();
    return grant;
  },
  async findAccount(ctx, id) {
    const account = accounts()[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        const current = accounts()[id] ?? {};
        return {
          sub: current.sub ?? `subject-${id}`,
          preferred_username: current.username ?? id,
          name: current.name ?? id,
          email: `${id}@example.test`,
          // Entra ID's groups overage: the groups are left out, and said to be elsewhere.
          ...(current.overage
            ? { _claim_names: { groups: 'src1' }, _claim_sources: { src1: { endpoint: 'https://graph.example.test/v1.0/me/memberOf' } } }
            : { groups: current.groups ?? [] }),
        };
      },
    };
  },
});
provider.proxy = false;

let mischief = null;
const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
const unb64 = (part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
function spoil(token, kind) {
  const [head, body, signature] = token.split('.');
  const claims = unb64(body);
  const now = Math.floor(Date.now() / 1000);
  if (kind === 'tamper') {
    claims.groups = ['platform-admins'];
    return `${head}.${b64(claims)}.${signature}`;
  }
  if (kind === 'nonce') claims.nonce = 'not-the-nonce-tagward-sent';
  if (kind === 'audience') claims.aud = 'another-client';
  if (kind === 'expired') { claims.iat = now - 7200; claims.exp = now - 3600; claims.auth_time = now - 7200; }
  const input = `${head}.${b64(claims)}`;
  return `${input}.${sign('sha256', Buffer.from(input), privateKey).toString('base64url')}`;
}
provider.use(async (ctx, next) => {
  await next();
  if (ctx.path === '/token' && mischief && ctx.body && ctx.body.id_token) {
    ctx.body = { ...ctx.body, id_token: spoil(ctx.body.id_token, mischief) };
    mischief = null;
  }
});

const page = (title, body) => `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title}</title></head>` +
  `<body><main><h1>${title}</h1>${body}</main></body></html>`;
const loginForm = (uid, error) => page('Test identity provider', `${error ? `<p role="alert">${error}</p>` : ''}` +
  `<form method="post" action="/interaction/${uid}/login"><label for="login">Login</label>` +
  `<input id="login" name="login" autofocus><button type="submit">Sign in</button></form>`);
const readBody = (req) => new Promise((resolve, reject) => {
  let data = '';
  req.on('data', (chunk) => { data += chunk; });
  req.on('end', () => resolve(data));
  req.on('error', reject);
});

const callback = provider.callback();
createServer(async (req, res) => {
  try {
    const path = new URL(req.url, issuer).pathname;
    let match;
    if (req.method === 'POST' && path === '/_test/mischief') {
      mischief = (await readBody(req)).trim();
      res.writeHead(204).end();
    } else if (req.method === 'GET' && (match = path.match(/^\/interaction\/([^/]+)$/))) {
      await provider.interactionDetails(req, res);
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(loginForm(match[1]));
    } else if (req.method === 'POST' && (match = path.match(/^\/interaction\/([^/]+)\/login$/))) {
      const login = new URLSearchParams(await readBody(req)).get('login') ?? '';
      if (!accounts()[login]) {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(loginForm(match[1], 'unknown login'));
      } else {
        await provider.interactionFinished(req, res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
      }
    } else {
      callback(req, res);
    }
  } catch (error) {
    res.writeHead(500, { 'content-type': 'text/plain' }).end(String(error));
  }
}).listen(port, '127.0.0.1', () => console.log(`test identity provider at ${issuer}`));

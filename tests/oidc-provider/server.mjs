// A certified third-party OpenID provider (the npm package oidc-provider) for the
// interop tests in tests/oidc_provider.rs. Started on loopback by the test:
//   node server.mjs PORT GATEWAY_ORIGIN
// Two clients ("confidential" with a secret, "public" without) whose callback is
// GATEWAY_ORIGIN/auth/callback; PKCE required; refresh tokens always issued and rotated
// on every use (oidc-provider revokes the whole grant when a rotated token is reused);
// 3-second access tokens; RP-initiated logout and revocation on. Back-channel logout on:
// both clients register GATEWAY_ORIGIN/auth/backchannel-logout with a session required,
// so ID tokens carry a sid (one per client) and ending the session at /session/end POSTs
// a logout token (typ logout+jwt, with sid) there. GET /test/counters reports the grants,
// revocations and logout tokens it performed or sent, so tests can count them.
import Provider from 'oidc-provider';

const [port, gateway] = [Number(process.argv[2]), process.argv[3]];
const issuer = `http://127.0.0.1:${port}`;
// grants_revoked counts oidc-provider revoking a whole grant: on reuse of a rotated
// refresh token (what the gateway must never cause) and on explicit revocation.
// backchannel_logouts counts logout tokens POSTed to a gateway; backchannel_statuses
// holds the gateway's HTTP status for each, in order (0: no answer, e.g. the 2.5-second
// timeout oidc-provider sets, or connection refused).
const counters = {
  authorization_code: 0, refresh_token: 0, revocations: 0, grants_revoked: 0,
  backchannel_logouts: 0, backchannel_statuses: [],
};
const client = (id, secret) => ({
  client_id: id,
  ...(secret ? { client_secret: secret } : { token_endpoint_auth_method: 'none' }),
  redirect_uris: [`${gateway}/auth/callback`],
  post_logout_redirect_uris: [`${gateway}/`],
  backchannel_logout_uri: `${gateway}/auth/backchannel-logout`,
  backchannel_logout_session_required: true,
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
});

const provider = new Provider(issuer, {
  clients: [client('confidential', 'confidential-secret'), client('public')],
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    revocation: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    backchannelLogout: { enabled: true },
  },
  // oidc-provider sends outgoing requests (here only logout tokens) with an undici
  // dispatcher that destroys connections to special-use addresses, loopback included;
  // the gateway is on loopback, so drop it.
  async fetch(url, options) {
    delete options.dispatcher;
    const logout = options.body instanceof URLSearchParams && options.body.has('logout_token');
    if (logout) counters.backchannel_logouts += 1;
    try {
      const response = await globalThis.fetch(url, options);
      if (logout) counters.backchannel_statuses.push(response.status);
      return response;
    } catch (err) {
      if (logout) counters.backchannel_statuses.push(0);
      throw err;
    }
  },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'] },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@example.com`, email_verified: true, preferred_username: id, name: id };
      },
    };
  },
  issueRefreshToken: async () => true,
  rotateRefreshToken: () => true,
  ttl: { AccessToken: 3, IdToken: 3600, RefreshToken: 3600, Grant: 3600, Session: 3600, Interaction: 600 },
  cookies: { keys: ['interop-test-cookie-key'] },
});

provider.on('grant.success', (ctx) => {
  const grant = ctx.oidc.params.grant_type;
  if (grant in counters) counters[grant] += 1;
});
provider.on('grant.revoked', () => { counters.grants_revoked += 1; });
// oidc-provider ignores a failed delivery (a non-2xx answer included) and logs nothing.
provider.on('backchannel.error', (ctx, err, client) => {
  console.error(`back-channel logout to ${client.clientId} failed: ${err.message}`);
});
provider.use(async (ctx, next) => {
  if (ctx.path === '/test/counters') {
    ctx.body = counters;
    return;
  }
  await next();
  if (ctx.path === '/token/revocation' && ctx.method === 'POST' && ctx.status === 200) counters.revocations += 1;
});

provider.listen(port, '127.0.0.1', () => console.log(`listening ${issuer}`));

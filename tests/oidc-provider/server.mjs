// A certified third-party OpenID provider (the npm package oidc-provider) for the
// interop tests in tests/oidc_provider.rs. Started on loopback by the test:
//   node server.mjs PORT GATEWAY_ORIGIN
// Two clients ("confidential" with a secret, "public" without) whose callback is
// GATEWAY_ORIGIN/auth/callback; PKCE required; refresh tokens always issued and rotated
// on every use (oidc-provider revokes the whole grant when a rotated token is reused);
// 3-second access tokens; RP-initiated logout and revocation on. GET /test/counters
// reports the grants and revocations it performed, so tests can count them.
import Provider from 'oidc-provider';

const [port, gateway] = [Number(process.argv[2]), process.argv[3]];
const issuer = `http://127.0.0.1:${port}`;
// grants_revoked counts oidc-provider revoking a whole grant: on reuse of a rotated
// refresh token (what the gateway must never cause) and on explicit revocation.
const counters = { authorization_code: 0, refresh_token: 0, revocations: 0, grants_revoked: 0 };
const client = (id, secret) => ({
  client_id: id,
  ...(secret ? { client_secret: secret } : { token_endpoint_auth_method: 'none' }),
  redirect_uris: [`${gateway}/auth/callback`],
  post_logout_redirect_uris: [`${gateway}/`],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
});

const provider = new Provider(issuer, {
  clients: [client('confidential', 'confidential-secret'), client('public')],
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true }, revocation: { enabled: true }, rpInitiatedLogout: { enabled: true } },
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
provider.use(async (ctx, next) => {
  if (ctx.path === '/test/counters') {
    ctx.body = counters;
    return;
  }
  await next();
  if (ctx.path === '/token/revocation' && ctx.method === 'POST' && ctx.status === 200) counters.revocations += 1;
});

provider.listen(port, '127.0.0.1', () => console.log(`listening ${issuer}`));

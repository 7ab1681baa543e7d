#!/usr/bin/env node
// A relying party on panva's openid-client (OpenID Certified), used unmodified to check that
// Martinique Connect interoperates with an independent OpenID Connect implementation.
//
// Two stateless steps, each reading one JSON object on stdin and printing one on stdout:
//
//   node rp.mjs start   -> discovery, then an authorization URL with PKCE S256, state, nonce
//                          (the caller drives the browser part and keeps verifier/state/nonce)
//   node rp.mjs finish  -> code exchange (authorization response + ID token validated, the ID
//                          token signature checked against jwks_uri), UserInfo, refresh,
//                          introspection, revocation, refresh-token replay, end-session URL
//
// Input: {issuer, client_id, client_secret?, auth_method, private_jwk?,
//         id_token_signed_response_alg?, redirect_uri, post_logout_redirect_uri, scope,
//         timeout_seconds?}, plus for "finish": {callback_url, code_verifier, state, nonce,
//         logout_state}.
// Every step of "finish" is recorded as {ok: true, ...} or {ok: false, error: {...}} so that
// one failure does not hide the others. The exit code is 0 whenever the JSON was printed.

import * as client from 'openid-client';

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

function describe(err) {
  const out = { name: err?.name, message: err?.message };
  for (const key of ['code', 'error', 'error_description', 'status']) {
    if (err?.[key] !== undefined) out[key] = err[key];
  }
  if (err?.cause && typeof err.cause === 'object') {
    const cause = err.cause;
    if (cause instanceof Response) {
      out.cause = { status: cause.status };
    } else if (Array.isArray(cause)) {
      out.cause = cause.map((c) => ({ scheme: c?.scheme, parameters: c?.parameters }));
    } else {
      out.cause = { name: cause.name, message: cause.message, code: cause.code,
                    error: cause.error, status: cause.status };
    }
  }
  return out;
}

async function step(fn) {
  try {
    return { ok: true, ...(await fn()) };
  } catch (err) {
    return { ok: false, error: describe(err) };
  }
}

async function clientAuth(input) {
  switch (input.auth_method) {
    case 'client_secret_basic':
      return client.ClientSecretBasic(input.client_secret);
    case 'client_secret_post':
      return client.ClientSecretPost(input.client_secret);
    case 'none':
      return client.None();
    case 'private_key_jwt': {
      const jwk = input.private_jwk;
      const algorithm = jwk.kty === 'EC'
        ? { name: 'ECDSA', namedCurve: jwk.crv }
        : { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
      const { kid, alg, use, ...material } = jwk;
      const key = await crypto.subtle.importKey('jwk', material, algorithm, false, ['sign']);
      return client.PrivateKeyJwt({ key, kid });
    }
    default:
      throw new Error(`unknown auth_method ${input.auth_method}`);
  }
}

async function configure(input) {
  const metadata = { redirect_uris: [input.redirect_uri] };
  if (input.id_token_signed_response_alg) {
    metadata.id_token_signed_response_alg = input.id_token_signed_response_alg;
  }
  const config = await client.discovery(
    new URL(input.issuer), input.client_id, metadata, await clientAuth(input),
    {
      // The test provider listens on plain HTTP on the loopback interface; the library
      // refuses non-HTTPS endpoints unless told otherwise. Non-repudiation checks make the
      // library verify the ID token signature against the published jwks_uri.
      execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks],
      timeout: input.timeout_seconds ?? 10,
    },
  );
  config.timeout = input.timeout_seconds ?? 10;
  return config;
}

async function start(input) {
  const config = await configure(input);
  const code_verifier = client.randomPKCECodeVerifier();
  const code_challenge = await client.calculatePKCECodeChallenge(code_verifier);
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: input.redirect_uri,
    scope: input.scope,
    code_challenge,
    code_challenge_method: 'S256',
    state,
    nonce,
  });
  return {
    issuer: config.serverMetadata().issuer,
    authorization_url: url.href,
    code_verifier,
    state,
    nonce,
  };
}

async function finish(input) {
  const config = await configure(input);
  const out = { issuer: config.serverMetadata().issuer };
  let tokens;
  out.code_exchange = await step(async () => {
    tokens = await client.authorizationCodeGrant(config, new URL(input.callback_url), {
      pkceCodeVerifier: input.code_verifier,
      expectedState: input.state,
      expectedNonce: input.nonce,
      idTokenExpected: true,
    });
    return {
      access_token: tokens.access_token,
      id_token: tokens.id_token,
      refresh_token: tokens.refresh_token,
      token_type: tokens.token_type,
      expires_in: tokens.expiresIn(),
      scope: tokens.scope,
      claims: tokens.claims(),
    };
  });
  if (!out.code_exchange.ok) return out;
  const sub = out.code_exchange.claims.sub;

  out.userinfo = await step(async () => ({
    claims: await client.fetchUserInfo(config, tokens.access_token, sub),
  }));

  let refreshed;
  out.refresh = await step(async () => {
    refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
    return {
      access_token: refreshed.access_token,
      refresh_token: refreshed.refresh_token,
      id_token: refreshed.id_token,
      token_type: refreshed.token_type,
      expires_in: refreshed.expiresIn(),
    };
  });
  const current = refreshed?.access_token ?? tokens.access_token;
  const currentRefresh = refreshed?.refresh_token ?? tokens.refresh_token;

  out.introspect_active = await step(async () => ({
    response: await client.tokenIntrospection(config, current),
  }));
  out.introspect_refresh_active = await step(async () => ({
    response: await client.tokenIntrospection(config, currentRefresh,
                                              { token_type_hint: 'refresh_token' }),
  }));
  out.revoke = await step(async () => {
    await client.tokenRevocation(config, current, { token_type_hint: 'access_token' });
    return {};
  });
  out.introspect_revoked = await step(async () => ({
    response: await client.tokenIntrospection(config, current),
  }));
  out.userinfo_after_revocation = await step(async () => ({
    claims: await client.fetchUserInfo(config, current, sub),
  }));
  // RFC 9700 §4.14.2: the rotated refresh token must now be refused.
  out.refresh_replay = await step(async () => {
    const again = await client.refreshTokenGrant(config, tokens.refresh_token);
    return { access_token: again.access_token };
  });
  out.end_session = await step(async () => ({
    url: client.buildEndSessionUrl(config, {
      id_token_hint: tokens.id_token,
      post_logout_redirect_uri: input.post_logout_redirect_uri,
      state: input.logout_state,
    }).href,
  }));
  return out;
}

const command = process.argv[2];
const input = JSON.parse(await readStdin());
let result;
try {
  if (command === 'start') result = await start(input);
  else if (command === 'finish') result = await finish(input);
  else throw new Error(`usage: node rp.mjs start|finish < input.json (got ${command})`);
} catch (err) {
  result = { fatal: describe(err) };
}
process.stdout.write(JSON.stringify(result) + '\n');

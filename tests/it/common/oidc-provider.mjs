// A real OpenID Connect provider on loopback for the sign-in tests: the
// certified `oidc-provider` package (installed by scripts/test-deps.sh),
// with its development login screens (any login name signs in as that
// person; the ID token carries preferred_username and email).
//
//   node oidc-provider.mjs PORT REDIRECT_URI CLIENT_SECRET
import Provider from "oidc-provider";

const [port, redirect, secret] = process.argv.slice(2);
const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [
    {
      client_id: "tmuxd",
      client_secret: secret,
      redirect_uris: [redirect],
      response_types: ["code"],
      grant_types: ["authorization_code"],
      token_endpoint_auth_method: "client_secret_post",
    },
  ],
  pkce: { required: () => true },
  cookies: { keys: ["test-cookie-key"] },
  conformIdTokenClaims: false,
  claims: { openid: ["sub"], profile: ["preferred_username"], email: ["email"] },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, email: `${id}@example.test` };
      },
    };
  },
});
provider.listen(Number(port), "127.0.0.1", () => console.log("ready"));

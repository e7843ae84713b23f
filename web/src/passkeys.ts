// Passkeys (WebAuthn): adding one when signed in, signing in with one.
// The server's options carry base64url strings; the browser wants bytes.
import { api, errorText } from "./ui";

const b64 = {
  decode(s: string): ArrayBuffer {
    const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/"));
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  },
  encode(buf: ArrayBuffer): string {
    let bin = "";
    for (const b of new Uint8Array(buf)) bin += String.fromCharCode(b);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  },
};

type Options = {
  challenge: string;
  rp: { id: string; name: string };
  user: { id: string; name: string; displayName: string };
  pubKeyCredParams: { type: "public-key"; alg: number }[];
  authenticatorSelection: AuthenticatorSelectionCriteria;
  excludeCredentials: string[];
  attestation: AttestationConveyancePreference;
};

/// Registers a passkey for the signed-in user; "" or why it failed.
export async function addPasskey(): Promise<string> {
  const r = await api("POST", "/api/passkeys/register/start");
  if (!r.ok) return errorText(r);
  const o: Options = await r.json();
  const cred = (await navigator.credentials.create({
    publicKey: {
      challenge: b64.decode(o.challenge),
      rp: o.rp,
      user: { ...o.user, id: new TextEncoder().encode(o.user.id) },
      pubKeyCredParams: o.pubKeyCredParams,
      authenticatorSelection: o.authenticatorSelection,
      excludeCredentials: o.excludeCredentials.map((id) => ({ type: "public-key", id: b64.decode(id) })),
      attestation: o.attestation,
    },
  })) as PublicKeyCredential | null;
  if (!cred) return "no passkey was made";
  const res = cred.response as AuthenticatorAttestationResponse;
  const done = await api("POST", "/api/passkeys/register/finish", {
    clientDataJson: b64.encode(res.clientDataJSON),
    attestationObject: b64.encode(res.attestationObject),
  });
  return done.ok ? "" : errorText(done);
}

/// Asks the daemon for a challenge at `/api/passkeys/WHAT/start`, has the
/// browser sign it with a passkey, and sends it to `.../WHAT/finish`; ""
/// or why it failed.
async function assertPasskey(what: "login" | "reauth"): Promise<string> {
  const r = await api("POST", `/api/passkeys/${what}/start`);
  if (!r.ok) return errorText(r);
  const o: { challenge: string; rpId: string; userVerification: UserVerificationRequirement; allowCredentials?: string[] } =
    await r.json();
  const cred = (await navigator.credentials.get({
    publicKey: {
      challenge: b64.decode(o.challenge),
      rpId: o.rpId,
      userVerification: o.userVerification,
      allowCredentials: (o.allowCredentials ?? []).map((id) => ({ type: "public-key", id: b64.decode(id) })),
    },
  })) as PublicKeyCredential | null;
  if (!cred) return "no passkey was chosen";
  const res = cred.response as AuthenticatorAssertionResponse;
  const done = await api("POST", `/api/passkeys/${what}/finish`, {
    id: cred.id,
    clientDataJson: b64.encode(res.clientDataJSON),
    authenticatorData: b64.encode(res.authenticatorData),
    signature: b64.encode(res.signature),
  });
  return done.ok ? "" : errorText(done);
}

/// Signs in with a passkey of this server's; "" or why it failed.
export const signInWithPasskey = (): Promise<string> => assertPasskey("login");

/// Shows the user's passkey again (the daemon asks before a risky answer
/// or confirmation); "" or why it failed.
export const reauthenticate = (): Promise<string> => assertPasskey("reauth");

/// `call`, and once more after the passkey is shown when the daemon asks
/// for it (a risky answer or confirmation).
export async function withReauth(call: () => Promise<Response>): Promise<Response> {
  const r = await call();
  if (r.status !== 403) return r;
  const body = await r.clone().json().catch(() => ({}));
  if (!body.reauth) return r;
  const why = await reauthenticate().catch((e: Error) => e.message);
  return why ? new Response(JSON.stringify({ error: `Not confirmed: ${why}` }), { status: 403 }) : call();
}

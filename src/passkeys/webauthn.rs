//! The WebAuthn checks a relying party makes (Level 2, ES256 keys, no
//! attestation: `none` is what passkeys send): what the browser signed
//! (its client data: type, our challenge, our origin), what the
//! authenticator says (our RP id's hash, user present and verified, the
//! signature counter), and for a sign-in the signature itself.

use base64::Engine;
use ring::signature;
use sha2::Digest;

/// A registered passkey's public key and counter.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PublicKey {
    /// The P-256 point, uncompressed (0x04 || x || y), base64url.
    pub point: String,
    pub sign_count: u32,
}

/// What a check needs to know.
pub struct Expect<'a> {
    pub rp_id: &'a str,
    pub origin: &'a str,
    pub challenge: &'a [u8],
}

fn b64(s: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| "not base64url".to_owned())
}

/// The client data must be of `kind`, for our challenge and origin.
fn client_data(json: &[u8], kind: &str, expect: &Expect) -> Result<(), String> {
    let data: serde_json::Value =
        serde_json::from_slice(json).map_err(|_| "client data that is not JSON")?;
    if data["type"].as_str() != Some(kind) {
        return Err(format!("client data of type {:?}", data["type"]));
    }
    let challenge = b64(data["challenge"].as_str().unwrap_or(""))?;
    if challenge != expect.challenge {
        return Err("another challenge".into());
    }
    if data["origin"].as_str() != Some(expect.origin) {
        return Err(format!("from origin {:?}", data["origin"]));
    }
    Ok(())
}

/// The authenticator data's fixed part: our RP id, user present and
/// verified; returns the counter and what follows.
fn auth_data<'d>(data: &'d [u8], expect: &Expect) -> Result<(u32, u8, &'d [u8]), String> {
    if data.len() < 37 {
        return Err("short authenticator data".into());
    }
    if data[..32] != sha2::Sha256::digest(expect.rp_id.as_bytes())[..] {
        return Err("for another relying party".into());
    }
    let flags = data[32];
    if flags & 0x01 == 0 || flags & 0x04 == 0 {
        return Err("the user was not present and verified".into());
    }
    let count = u32::from_be_bytes([data[33], data[34], data[35], data[36]]);
    Ok((count, flags, &data[37..]))
}

/// A registration (`navigator.credentials.create`): the credential's id
/// and public key.
pub fn register(
    client_data_json: &str,
    attestation_object: &str,
    expect: &Expect,
) -> Result<(String, PublicKey), String> {
    client_data(&b64(client_data_json)?, "webauthn.create", expect)?;
    let att = super::cbor::decode(&b64(attestation_object)?)?;
    let data = att
        .get_text("authData")
        .and_then(|v| v.bytes())
        .ok_or("no authData")?;
    let (count, flags, rest) = auth_data(data, expect)?;
    if flags & 0x40 == 0 || rest.len() < 18 {
        return Err("no credential in the authenticator data".into());
    }
    let id_len = u16::from_be_bytes([rest[16], rest[17]]) as usize;
    let id = rest.get(18..18 + id_len).ok_or("short credential id")?;
    let key = super::cbor::decode(&rest[18 + id_len..])?;
    // COSE: kty 2 (EC2), alg -7 (ES256), crv 1 (P-256), x, y.
    let (kty, alg, crv) = (key.get_int(1), key.get_int(3), key.get_int(-1));
    if (
        kty.and_then(|v| v.int()),
        alg.and_then(|v| v.int()),
        crv.and_then(|v| v.int()),
    ) != (Some(2), Some(-7), Some(1))
    {
        return Err("not an ES256 (P-256) key".into());
    }
    let x = key.get_int(-2).and_then(|v| v.bytes()).ok_or("no x")?;
    let y = key.get_int(-3).and_then(|v| v.bytes()).ok_or("no y")?;
    let mut point = vec![4u8];
    point.extend_from_slice(x);
    point.extend_from_slice(y);
    let enc = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    Ok((
        enc(id),
        PublicKey {
            point: enc(&point),
            sign_count: count,
        },
    ))
}

/// A sign-in (`navigator.credentials.get`) with `key`: its new counter.
pub fn authenticate(
    key: &PublicKey,
    client_data_json: &str,
    authenticator_data: &str,
    signature_b64: &str,
    expect: &Expect,
) -> Result<u32, String> {
    let client = b64(client_data_json)?;
    client_data(&client, "webauthn.get", expect)?;
    let data = b64(authenticator_data)?;
    let (count, _, _) = auth_data(&data, expect)?;
    let mut signed = data.clone();
    signed.extend_from_slice(&sha2::Sha256::digest(&client));
    let public =
        signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_ASN1, b64(&key.point)?);
    public
        .verify(&signed, &b64(signature_b64)?)
        .map_err(|_| "the signature does not verify".to_owned())?;
    // A counter that does not grow: a cloned authenticator (0 and 0: a
    // passkey that keeps none).
    if (count != 0 || key.sign_count != 0) && count <= key.sign_count {
        return Err("the signature counter went back: a cloned authenticator?".into());
    }
    Ok(count)
}

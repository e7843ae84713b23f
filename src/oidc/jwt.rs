//! ID tokens: a JWS (compact form) signed RS256 or ES256 by one of the
//! provider's keys (its JWKS), whose claims must name the provider, this
//! client, the nonce of this sign-in, and a time that has not passed.
//! Anything else (`none`, HMAC algorithms, unknown keys) is refused.

use base64::Engine;
use ring::signature;
use serde::Deserialize;

/// One key of the provider's JWKS.
#[derive(Clone, Debug, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub n: Option<String>,
    #[serde(default)]
    pub e: Option<String>,
    #[serde(default)]
    pub crv: Option<String>,
    #[serde(default)]
    pub x: Option<String>,
    #[serde(default)]
    pub y: Option<String>,
}

/// What the ID token must say.
pub struct Expect<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
    /// Unix seconds.
    pub now: u64,
}

/// Clock difference tolerated between us and the provider.
const SKEW_S: u64 = 60;

fn b64(part: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| "not base64url".to_owned())
}

/// The token's claims, if it is valid; else why not.
pub fn verify(token: &str, keys: &[Jwk], expect: &Expect) -> Result<serde_json::Value, String> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a signed JWT".into());
    };
    let header: serde_json::Value =
        serde_json::from_slice(&b64(h)?).map_err(|_| "a header that is not JSON")?;
    let alg = header["alg"].as_str().unwrap_or("");
    let kid = header["kid"].as_str();
    let signed = format!("{h}.{p}");
    let sig = b64(s)?;
    let candidates = keys
        .iter()
        .filter(|k| kid.is_none() || k.kid.as_deref() == kid);
    let mut verified = false;
    for key in candidates {
        if check(alg, key, signed.as_bytes(), &sig)? {
            verified = true;
            break;
        }
    }
    if !verified {
        return Err("the signature does not verify with the provider's keys".into());
    }
    let claims: serde_json::Value =
        serde_json::from_slice(&b64(p)?).map_err(|_| "claims that are not JSON")?;
    if claims["iss"].as_str() != Some(expect.issuer) {
        return Err("issued by another provider".into());
    }
    let aud_ok = match &claims["aud"] {
        serde_json::Value::String(a) => a == expect.client_id,
        serde_json::Value::Array(list) => {
            list.iter().any(|a| a.as_str() == Some(expect.client_id))
                && (list.len() == 1 || claims["azp"].as_str() == Some(expect.client_id))
        }
        _ => false,
    };
    if !aud_ok {
        return Err("issued for another client (aud)".into());
    }
    let exp = claims["exp"].as_u64().ok_or("no expiry")?;
    if exp + SKEW_S <= expect.now {
        return Err("expired".into());
    }
    if claims["iat"]
        .as_u64()
        .is_some_and(|iat| iat > expect.now + SKEW_S)
    {
        return Err("issued in the future".into());
    }
    if claims["nonce"].as_str() != Some(expect.nonce) {
        return Err("not for this sign-in (nonce)".into());
    }
    Ok(claims)
}

/// Whether `sig` over `msg` verifies with `key` under `alg`; an error for
/// algorithms never accepted.
fn check(alg: &str, key: &Jwk, msg: &[u8], sig: &[u8]) -> Result<bool, String> {
    match (alg, key.kty.as_str()) {
        ("RS256", "RSA") => {
            let (Some(n), Some(e)) = (&key.n, &key.e) else {
                return Ok(false);
            };
            let public = signature::RsaPublicKeyComponents {
                n: b64(n)?,
                e: b64(e)?,
            };
            Ok(public
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, msg, sig)
                .is_ok())
        }
        ("ES256", "EC") if key.crv.as_deref() == Some("P-256") => {
            let (Some(x), Some(y)) = (&key.x, &key.y) else {
                return Ok(false);
            };
            let mut point = vec![4u8];
            point.extend(b64(x)?);
            point.extend(b64(y)?);
            let public =
                signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point);
            Ok(public.verify(msg, sig).is_ok())
        }
        ("RS256" | "ES256", _) => Ok(false),
        (alg, _) => Err(format!(
            "signed with {alg:?}, which is not accepted (RS256, ES256)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

    fn enc(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A provider's key pair, its JWK, and a signer.
    fn provider() -> (EcdsaKeyPair, Jwk) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let point = pair.public_key().as_ref();
        let jwk = Jwk {
            kty: "EC".into(),
            kid: Some("k1".into()),
            n: None,
            e: None,
            crv: Some("P-256".into()),
            x: Some(enc(&point[1..33])),
            y: Some(enc(&point[33..65])),
        };
        (pair, jwk)
    }

    fn token(pair: &EcdsaKeyPair, header: serde_json::Value, claims: serde_json::Value) -> String {
        let signed = format!(
            "{}.{}",
            enc(header.to_string().as_bytes()),
            enc(claims.to_string().as_bytes())
        );
        let sig = pair.sign(&SystemRandom::new(), signed.as_bytes()).unwrap();
        format!("{signed}.{}", enc(sig.as_ref()))
    }

    const NOW: u64 = 1_800_000_000;

    fn claims() -> serde_json::Value {
        serde_json::json!({
            "iss": "https://id.example.test", "aud": "tmuxd", "sub": "1",
            "preferred_username": "alice", "nonce": "n-1", "exp": NOW + 300, "iat": NOW,
        })
    }

    fn expect() -> Expect<'static> {
        Expect {
            issuer: "https://id.example.test",
            client_id: "tmuxd",
            nonce: "n-1",
            now: NOW,
        }
    }

    #[test]
    fn a_valid_token_verifies_and_every_flaw_is_refused() {
        let (pair, jwk) = provider();
        let keys = [jwk];
        let head = serde_json::json!({"alg": "ES256", "kid": "k1"});
        let good = token(&pair, head.clone(), claims());
        assert_eq!(
            verify(&good, &keys, &expect()).unwrap()["preferred_username"],
            "alice"
        );

        let with = |k: &str, v: serde_json::Value| {
            let mut c = claims();
            c[k] = v;
            token(&pair, head.clone(), c)
        };
        let cases = [
            (with("aud", "someone-else".into()), "aud"),
            (with("aud", serde_json::json!(["tmuxd", "other"])), "aud"),
            (
                with("iss", "https://evil.example".into()),
                "another provider",
            ),
            (with("exp", (NOW - 120).into()), "expired"),
            (with("iat", (NOW + 3600).into()), "future"),
            (with("nonce", "n-2".into()), "nonce"),
        ];
        for (t, why) in cases {
            let e = verify(&t, &keys, &expect()).unwrap_err();
            assert!(e.contains(why), "{why}: {e}");
        }
        // Tampered claims: the signature no longer matches.
        let mut parts: Vec<String> = good.split('.').map(String::from).collect();
        let mut c = claims();
        c["preferred_username"] = "bob".into();
        parts[1] = enc(c.to_string().as_bytes());
        let e = verify(&parts.join("."), &keys, &expect()).unwrap_err();
        assert!(e.contains("signature"), "{e}");
        // Another provider's key, no signature, HMAC: refused.
        let (other, _) = provider();
        let e = verify(&token(&other, head.clone(), claims()), &keys, &expect()).unwrap_err();
        assert!(e.contains("signature"), "{e}");
        let unsigned = format!(
            "{}.{}.",
            enc(br#"{"alg":"none"}"#),
            enc(claims().to_string().as_bytes())
        );
        assert!(verify(&unsigned, &keys, &expect())
            .unwrap_err()
            .contains("not accepted"));
        let hs = token(
            &pair,
            serde_json::json!({"alg": "HS256", "kid": "k1"}),
            claims(),
        );
        assert!(verify(&hs, &keys, &expect())
            .unwrap_err()
            .contains("not accepted"));
    }
}

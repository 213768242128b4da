//! RS256 JSON Web Tokens: the signing keys every replica shares (kept in the store), signing, and
//! strict verification. Only `alg: RS256` with a known `kid` is accepted, so `alg: none` and
//! HS256-with-the-public-key tokens are refused before any signature check.

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{
    RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair, RsaPublicKeyComponents,
};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::traits::PublicKeyParts;
use serde_json::{Map, Value, json};
use store::Timestamp;
use store::identity::{PrivateKey, SigningKeyRecord};

use crate::kek::Kek;

/// Seconds of clock difference tolerated on `exp` and `nbf`.
pub const CLOCK_SKEW_SECONDS: i64 = 60;

/// Why a token was refused. The messages are safe to show: they never contain the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is not a JWT (three base64url parts)")]
    Malformed,
    #[error("the token's algorithm {alg:?} is not accepted; only RS256 is")]
    UnsupportedAlgorithm { alg: String },
    #[error("the token's signing key {kid:?} is not known")]
    UnknownKey { kid: String },
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token expired at {exp}")]
    Expired { exp: i64 },
    #[error("the token is not valid before {nbf}")]
    NotYetValid { nbf: i64 },
    #[error("the token has no {claim:?} claim")]
    MissingClaim { claim: &'static str },
    #[error("the token is from the wrong issuer {iss:?}")]
    WrongIssuer { iss: String },
}

/// A key that signs and verifies.
pub struct SigningKey {
    kid: String,
    key_pair: RsaKeyPair,
    public: PublicKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

/// The public half of a signing key, as JWKS publishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub kid: String,
    /// Modulus, big-endian without leading zeros.
    pub n: Vec<u8>,
    /// Public exponent, big-endian without leading zeros.
    pub e: Vec<u8>,
    /// When it stops verifying; `None` for the active key.
    pub retire_at: Option<Timestamp>,
}

impl PublicKey {
    /// The JWKS entry.
    pub fn jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(&self.n),
            "e": URL_SAFE_NO_PAD.encode(&self.e),
        })
    }
}

/// Generates a new RSA-2048 signing key record, its private half sealed with `kek`.
pub fn generate_key(
    rng: &mut (impl rand::CryptoRng + rand::RngCore),
    now: Timestamp,
    kek: &Kek,
) -> SigningKeyRecord {
    let private =
        rsa::RsaPrivateKey::new(rng, 2048).expect("RSA-2048 key generation does not fail");
    let der = private.to_pkcs8_der().expect("a fresh RSA key encodes as PKCS#8");
    let public = public_parts(&private);
    let kid = kid_of(&public.0, &public.1);
    SigningKeyRecord {
        private_key: PrivateKey::Sealed(kek.seal(der.as_bytes(), &kid)),
        kid,
        created_at: now,
        retire_at: None,
    }
}

fn public_parts(private: &rsa::RsaPrivateKey) -> (Vec<u8>, Vec<u8>) {
    (private.n().to_bytes_be(), private.e().to_bytes_be())
}

/// A key id derived from the public key (a SHA-256 thumbprint, shortened).
fn kid_of(n: &[u8], e: &[u8]) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(n);
    context.update(e);
    URL_SAFE_NO_PAD.encode(&context.finish().as_ref()[..20])
}

impl SigningKey {
    /// Loads a stored key, opening its private half with `kek`.
    pub fn from_record(record: &SigningKeyRecord, kek: &Kek) -> Result<SigningKey, String> {
        let der = match &record.private_key {
            PrivateKey::Plain(der) => der.clone(),
            PrivateKey::Sealed(sealed) => {
                kek.open(sealed, &record.kid).map_err(|error| error.to_string())?
            }
        };
        let private =
            rsa::RsaPrivateKey::from_pkcs8_der(&der).map_err(|error| error.to_string())?;
        let (n, e) = public_parts(&private);
        let key_pair = RsaKeyPair::from_pkcs8(&der).map_err(|error| error.to_string())?;
        Ok(SigningKey {
            kid: record.kid.clone(),
            key_pair,
            public: PublicKey { kid: record.kid.clone(), n, e, retire_at: record.retire_at },
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// Signs `claims` into a compact JWT.
    pub fn sign(&self, claims: &Map<String, Value>) -> String {
        let header = json!({ "typ": "JWT", "alg": "RS256", "kid": self.kid });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(Value::Object(claims.clone()).to_string())
        );
        let mut signature = vec![0; self.key_pair.public().modulus_len()];
        self.key_pair
            .sign(
                &RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .expect("signing with a valid RSA key and a right-sized buffer does not fail");
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// The keys a verifier trusts, by kid, and the tokens whose signatures it has checked.
#[derive(Debug, Default)]
pub struct Verifier {
    keys: HashMap<String, PublicKey>,
    // A client sends the same token for up to an hour; checking its RSA signature again on each
    // request was a tenth of a loaded server's CPU time (docs/benchmarks.md). A verified token's
    // SHA-256 maps to its key and claims; the key's retirement, `exp` and `nbf` are still
    // checked on every use. A new key set starts with an empty cache.
    verified: Mutex<HashMap<[u8; 32], Verified>>,
}

/// A token whose signature checked out.
#[derive(Debug)]
struct Verified {
    kid: String,
    claims: Map<String, Value>,
}

/// Verified tokens remembered at most; a full cache starts over.
const MAX_VERIFIED: usize = 4096;

impl Verifier {
    pub fn new(keys: impl IntoIterator<Item = PublicKey>) -> Verifier {
        Verifier {
            keys: keys.into_iter().map(|key| (key.kid.clone(), key)).collect(),
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// The key with this kid, if it is trusted at `now`.
    fn key(&self, kid: &str, now: Timestamp) -> Result<&PublicKey, TokenError> {
        self.keys
            .get(kid)
            .filter(|key| key.retire_at.is_none_or(|at| at > now))
            .ok_or_else(|| TokenError::UnknownKey { kid: kid.to_owned() })
    }

    /// The keys JWKS publishes at `now`: the active one and those not yet retired.
    pub fn published(&self, now: Timestamp) -> Vec<&PublicKey> {
        let mut keys: Vec<&PublicKey> =
            self.keys.values().filter(|key| key.retire_at.is_none_or(|at| at > now)).collect();
        keys.sort_by(|a, b| a.kid.cmp(&b.kid));
        keys
    }

    /// Checks the token's form, algorithm, key, signature, `exp` and `nbf`, and returns its
    /// claims. The caller checks `iss`, `aud` and what the token is for.
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<Map<String, Value>, TokenError> {
        let digest: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
            .as_ref()
            .try_into()
            .expect("SHA-256 digests are 32 bytes");
        let cached = {
            let verified = self.verified.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            verified.get(&digest).map(|hit| (hit.kid.clone(), hit.claims.clone()))
        };
        if let Some((kid, claims)) = cached {
            self.key(&kid, now)?;
            check_times(&claims, now)?;
            return Ok(claims);
        }
        let (kid, claims) = self.verify_signature(token, now)?;
        check_times(&claims, now)?;
        let mut verified = self.verified.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if verified.len() >= MAX_VERIFIED {
            verified.clear();
        }
        verified.insert(digest, Verified { kid, claims: claims.clone() });
        Ok(claims)
    }

    /// Checks the token's form, algorithm and signature by a key trusted at `now`; returns the
    /// key's kid and the claims.
    fn verify_signature(
        &self,
        token: &str,
        now: Timestamp,
    ) -> Result<(String, Map<String, Value>), TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header: Value = decode_json(header)?;
        let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
        if alg != "RS256" {
            return Err(TokenError::UnsupportedAlgorithm { alg: alg.to_owned() });
        }
        let kid = header
            .get("kid")
            .and_then(Value::as_str)
            .ok_or(TokenError::MissingClaim { claim: "kid" })?;
        let key = self.key(kid, now)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Malformed)?;
        let signing_input = &token[..header_and_payload_len(token)];
        RsaPublicKeyComponents { n: &key.n, e: &key.e }
            .verify(&RSA_PKCS1_2048_8192_SHA256, signing_input.as_bytes(), &signature)
            .map_err(|_| TokenError::BadSignature)?;
        let claims: Value = decode_json(payload)?;
        let Value::Object(claims) = claims else { return Err(TokenError::Malformed) };
        Ok((key.kid.clone(), claims))
    }
}

/// Checks `exp` and `nbf` against `now`, with the allowed clock skew.
fn check_times(claims: &Map<String, Value>, now: Timestamp) -> Result<(), TokenError> {
    let now_seconds = now.0 / 1000;
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .ok_or(TokenError::MissingClaim { claim: "exp" })?;
    if now_seconds > exp + CLOCK_SKEW_SECONDS {
        return Err(TokenError::Expired { exp });
    }
    if let Some(nbf) = claims.get("nbf").and_then(Value::as_i64)
        && now_seconds + CLOCK_SKEW_SECONDS < nbf
    {
        return Err(TokenError::NotYetValid { nbf });
    }
    Ok(())
}

fn header_and_payload_len(token: &str) -> usize {
    token.rfind('.').expect("a token with three parts has a last dot")
}

fn decode_json(part: &str) -> Result<Value, TokenError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

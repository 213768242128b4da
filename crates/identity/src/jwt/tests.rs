//! Tests for `jwt`: what the verifier accepts and everything it refuses.

use std::sync::OnceLock;

use super::*;

/// One key for all tests: generating RSA keys is slow.
fn key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let kek = crate::kek::Kek::parse(&crate::kek::Kek::generate_text()).unwrap();
        SigningKey::from_record(&generate_key(&mut rand::rngs::OsRng, Timestamp(0), &kek), &kek)
            .unwrap()
    })
}

fn verifier() -> Verifier {
    Verifier::new([key().public().clone()])
}

const NOW: Timestamp = Timestamp(1_800_000_000_000);

fn claims(exp: i64, nbf: i64) -> Map<String, Value> {
    let Value::Object(claims) = json!({ "aud": "x", "exp": exp, "nbf": nbf, "tid": "t" }) else {
        unreachable!()
    };
    claims
}

fn forge(header: Value, payload: &Map<String, Value>, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(Value::Object(payload.clone()).to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

#[test]
fn a_signed_token_verifies_and_keeps_its_claims() {
    let token = key().sign(&claims(1_800_000_100, 1_799_999_900));
    let verified = verifier().verify(&token, NOW).unwrap();
    assert_eq!(verified.get("tid"), Some(&json!("t")));
}

#[test]
fn alg_none_is_refused() {
    let token = forge(json!({ "alg": "none", "kid": key().kid() }), &claims(1_800_000_100, 0), b"");
    assert_eq!(
        verifier().verify(&token, NOW),
        Err(TokenError::UnsupportedAlgorithm { alg: "none".to_owned() })
    );
}

#[test]
fn hs256_signed_with_the_public_key_is_refused() {
    // The classic confusion: an HMAC keyed with the public modulus.
    let mac_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key().public().n);
    let header = json!({ "alg": "HS256", "kid": key().kid() });
    let payload = claims(1_800_000_100, 0);
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(Value::Object(payload.clone()).to_string())
    );
    let tag = ring::hmac::sign(&mac_key, input.as_bytes());
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
    assert_eq!(
        verifier().verify(&token, NOW),
        Err(TokenError::UnsupportedAlgorithm { alg: "HS256".to_owned() })
    );
}

#[test]
fn an_unknown_kid_is_refused() {
    let token = key().sign(&claims(1_800_000_100, 0));
    let other = Verifier::new([PublicKey { kid: "other".to_owned(), ..key().public().clone() }]);
    assert_eq!(
        other.verify(&token, NOW),
        Err(TokenError::UnknownKey { kid: key().kid().to_owned() })
    );
}

#[test]
fn a_changed_payload_breaks_the_signature() {
    let token = key().sign(&claims(1_800_000_100, 0));
    let mut parts: Vec<&str> = token.split('.').collect();
    let mut forged = claims(1_800_000_100, 0);
    forged.insert("tid".to_owned(), json!("attacker"));
    let payload = URL_SAFE_NO_PAD.encode(Value::Object(forged).to_string());
    parts[1] = &payload;
    assert_eq!(verifier().verify(&parts.join("."), NOW), Err(TokenError::BadSignature));
}

#[test]
fn expired_and_not_yet_valid_tokens_are_refused_beyond_the_skew() {
    let now_seconds = NOW.0 / 1000;
    let expired = key().sign(&claims(now_seconds - CLOCK_SKEW_SECONDS - 1, 0));
    assert_eq!(
        verifier().verify(&expired, NOW),
        Err(TokenError::Expired { exp: now_seconds - CLOCK_SKEW_SECONDS - 1 })
    );
    let within_skew = key().sign(&claims(now_seconds - CLOCK_SKEW_SECONDS + 1, 0));
    assert!(verifier().verify(&within_skew, NOW).is_ok());
    let early = key().sign(&claims(now_seconds + 3600, now_seconds + CLOCK_SKEW_SECONDS + 1));
    assert!(matches!(verifier().verify(&early, NOW), Err(TokenError::NotYetValid { .. })));
}

#[test]
fn a_retired_key_stops_verifying_and_publishing() {
    let token = key().sign(&claims(1_900_000_000, 0));
    let retiring = Verifier::new([PublicKey {
        retire_at: Some(Timestamp(NOW.0 + 1)),
        ..key().public().clone()
    }]);
    assert!(retiring.verify(&token, NOW).is_ok());
    assert_eq!(retiring.published(NOW).len(), 1);
    let later = Timestamp(NOW.0 + 2);
    assert!(matches!(retiring.verify(&token, later), Err(TokenError::UnknownKey { .. })));
    assert!(retiring.published(later).is_empty());
}

#[test]
fn garbage_is_malformed() {
    for token in ["", "a.b", "a.b.c.d", "!!!.###.$$$", "e30.e30.e30"] {
        let result = verifier().verify(token, NOW);
        assert!(
            matches!(result, Err(TokenError::Malformed | TokenError::UnsupportedAlgorithm { .. })),
            "{token}: {result:?}"
        );
    }
}

#[test]
fn a_remembered_token_is_still_checked_for_expiry_and_only_its_exact_text_is_remembered() {
    let verifier = verifier();
    let now_seconds = NOW.0 / 1000;
    let token = key().sign(&claims(now_seconds + 60, 0));
    assert!(verifier.verify(&token, NOW).is_ok());
    assert!(verifier.verify(&token, NOW).is_ok(), "the second use is answered from memory");
    // The same payload under another signature is checked afresh, and fails.
    let (signed, _) = token.rsplit_once('.').unwrap();
    let resigned = format!("{signed}.{}", URL_SAFE_NO_PAD.encode([0u8; 256]));
    assert_eq!(verifier.verify(&resigned, NOW), Err(TokenError::BadSignature));
    let later = Timestamp(NOW.0 + (60 + CLOCK_SKEW_SECONDS + 1) * 1000);
    assert!(matches!(verifier.verify(&token, later), Err(TokenError::Expired { .. })));
}

//! Secrets: client secrets (random, shown once, stored as SHA-256) and user passwords (Argon2id).

use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};

/// A new client secret: 32 random bytes, base64url, with a `~` like Entra's. High entropy, so a
/// fast hash is enough to store it. It starts with a letter or digit: a leading `-` would make
/// `az login --password <secret>` read it as an option.
pub fn new_client_secret() -> String {
    loop {
        let mut bytes = [0u8; 32];
        SystemRandom::new().fill(&mut bytes).expect("the system random source works");
        let encoded = URL_SAFE_NO_PAD.encode(bytes);
        if encoded.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return format!("{}~{}", &encoded[..3], &encoded[3..]);
        }
    }
}

/// The stored form of a client secret.
pub fn client_secret_hash(secret: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, secret.as_bytes()).as_ref().to_vec()
}

/// Whether `secret` hashes to `stored`, compared in constant time.
pub fn client_secret_matches(secret: &str, stored: &[u8]) -> bool {
    let candidate = client_secret_hash(secret);
    candidate.len() == stored.len()
        && candidate.iter().zip(stored).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// An Argon2id hash of a password (PHC string with its salt and parameters).
pub fn password_hash(password: &str) -> String {
    let mut salt_bytes = [0u8; 16];
    SystemRandom::new().fill(&mut salt_bytes).expect("the system random source works");
    let salt = SaltString::encode_b64(&salt_bytes).expect("16 bytes make a valid salt");
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("Argon2id with default parameters hashes any password")
        .to_string()
}

/// Whether `password` matches an Argon2id PHC string (constant time inside argon2).
pub fn password_matches(password: &str, stored: &str) -> bool {
    argon2::password_hash::PasswordHash::new(stored).is_ok_and(|hash| {
        argon2::Argon2::default().verify_password(password.as_bytes(), &hash).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_secrets_never_start_like_an_option() {
        for _ in 0..2000 {
            let secret = new_client_secret();
            assert!(secret.starts_with(|c: char| c.is_ascii_alphanumeric()), "{secret}");
        }
    }

    #[test]
    fn client_secrets_match_only_themselves() {
        let secret = new_client_secret();
        let stored = client_secret_hash(&secret);
        assert!(client_secret_matches(&secret, &stored));
        assert!(!client_secret_matches(&format!("{secret}x"), &stored));
        assert!(!client_secret_matches("", &stored));
        assert_ne!(new_client_secret(), secret);
    }

    #[test]
    fn passwords_are_argon2id_and_match_only_themselves() {
        let stored = password_hash("Correct-Horse-1");
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(!stored.contains("Correct-Horse-1"));
        assert!(password_matches("Correct-Horse-1", &stored));
        assert!(!password_matches("correct-horse-1", &stored));
        assert!(!password_matches("Correct-Horse-1", "not a hash"));
    }
}

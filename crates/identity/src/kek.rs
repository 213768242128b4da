//! The key-encryption key (KEK): 32 random bytes kept outside the database, which seal the
//! signing keys' private halves in the store with AES-256-GCM. A database dump or backup alone
//! therefore mints no token. Every replica of one store needs the same KEK.
//!
//! Sealed form: `CPK1` ‖ the KEK's id (8 bytes of its SHA-256) ‖ a 12-byte random nonce ‖ the
//! ciphertext and tag; the key id is the associated data, so a sealed key cannot be moved to
//! another key's row.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

const MAGIC: &[u8; 4] = b"CPK1";
const ID_LEN: usize = 8;

/// Why a KEK or a sealed key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KekError {
    #[error("a key-encryption key is 32 bytes in base64 (44 characters); this one is not")]
    BadKek,
    #[error(
        "it was sealed with another key-encryption key (id {sealed_with}; this server's is {ours}); give every replica the same KEK"
    )]
    WrongKek { sealed_with: String, ours: String },
    #[error("the sealed key is damaged or was not sealed for this row")]
    Damaged,
}

/// A key-encryption key.
#[derive(Clone)]
pub struct Kek {
    key: LessSafeKey,
    id: [u8; ID_LEN],
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek").field("id", &hex(&self.id)).finish_non_exhaustive()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

impl Kek {
    /// A new random KEK in its text form (base64 of 32 bytes), as kept in a file or
    /// `CROSSPOOL_KEK`.
    pub fn generate_text() -> String {
        let mut bytes = [0u8; 32];
        SystemRandom::new().fill(&mut bytes).expect("the system random source works");
        STANDARD.encode(bytes)
    }

    /// Reads a KEK from its text form; surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<Kek, KekError> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| KekError::BadKek)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| KekError::BadKek)?;
        let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
        let mut id = [0u8; ID_LEN];
        id.copy_from_slice(&digest.as_ref()[..ID_LEN]);
        let key = LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &bytes).expect("32 bytes make an AES-256 key"),
        );
        Ok(Kek { key, id })
    }

    /// The KEK's id, which sealed keys carry: hex of 8 bytes of its SHA-256.
    pub fn id(&self) -> String {
        hex(&self.id)
    }

    /// Seals `plaintext` for the row named `label` (a signing key's kid).
    pub fn seal(&self, plaintext: &[u8], label: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).expect("the system random source works");
        let mut in_out = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(label.as_bytes()),
                &mut in_out,
            )
            .expect("AES-GCM seals any input shorter than 64 GiB");
        let mut sealed = Vec::with_capacity(MAGIC.len() + ID_LEN + NONCE_LEN + in_out.len());
        sealed.extend_from_slice(MAGIC);
        sealed.extend_from_slice(&self.id);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&in_out);
        sealed
    }

    /// Opens what `seal` made for the same `label`.
    pub fn open(&self, sealed: &[u8], label: &str) -> Result<Vec<u8>, KekError> {
        let header = MAGIC.len() + ID_LEN + NONCE_LEN;
        if sealed.len() < header || &sealed[..MAGIC.len()] != MAGIC {
            return Err(KekError::Damaged);
        }
        let sealed_with = &sealed[MAGIC.len()..MAGIC.len() + ID_LEN];
        if sealed_with != self.id {
            return Err(KekError::WrongKek { sealed_with: hex(sealed_with), ours: self.id() });
        }
        let nonce: [u8; NONCE_LEN] =
            sealed[MAGIC.len() + ID_LEN..header].try_into().map_err(|_| KekError::Damaged)?;
        let mut in_out = sealed[header..].to_vec();
        let plaintext = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(label.as_bytes()),
                &mut in_out,
            )
            .map_err(|_| KekError::Damaged)?;
        Ok(plaintext.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_with_their_kek_and_label() {
        let kek = Kek::parse(&Kek::generate_text()).unwrap();
        let sealed = kek.seal(b"private key", "kid-1");
        assert!(!sealed.windows(11).any(|window| window == b"private key"));
        assert_eq!(kek.open(&sealed, "kid-1").unwrap(), b"private key");
        assert_eq!(kek.open(&sealed, "kid-2"), Err(KekError::Damaged));
        let other = Kek::parse(&Kek::generate_text()).unwrap();
        assert!(matches!(other.open(&sealed, "kid-1"), Err(KekError::WrongKek { .. })));
        let mut damaged = sealed.clone();
        *damaged.last_mut().unwrap() ^= 1;
        assert_eq!(kek.open(&damaged, "kid-1"), Err(KekError::Damaged));
        assert_eq!(kek.open(b"CPK1", "kid-1"), Err(KekError::Damaged));
    }

    #[test]
    fn a_kek_is_32_bytes_of_base64() {
        assert_eq!(Kek::parse("c2hvcnQ=").unwrap_err(), KekError::BadKek);
        assert_eq!(Kek::parse("not base64!").unwrap_err(), KekError::BadKek);
        let text = Kek::generate_text();
        assert_eq!(
            Kek::parse(&format!(" {text}\n")).unwrap().id(),
            Kek::parse(&text).unwrap().id()
        );
    }
}

//! Identifier formats (SPEC 1): app and client ids, client secrets, internal ids, and the pairwise `user_id`
//! that apps see, derived with a keyed hash so apps of different developers cannot link a customer.

use crate::secret::{KeyedHasher, Kind, Secret};
use rand::RngCore;

fn random_hex(rng: &mut impl RngCore, bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rng.fill_bytes(&mut buf);
    data_encoding::HEXLOWER.encode(&buf)
}

/// `lk1.application.<32 lowercase hex>`.
pub fn new_app_id(rng: &mut impl RngCore) -> String {
    format!("lk1.application.{}", random_hex(rng, 16))
}

/// `lk1.application-oa2-client.<32 lowercase hex>`.
pub fn new_client_id(rng: &mut impl RngCore) -> String {
    format!("lk1.application-oa2-client.{}", random_hex(rng, 16))
}

/// A client secret: 64 lowercase hex characters (256 bits).
pub fn new_client_secret(rng: &mut impl RngCore) -> Secret {
    Secret::new(random_hex(rng, 32))
}

/// An internal primary key (customers, token families): 32 lowercase hex characters, never shown to apps.
pub fn new_internal_id(rng: &mut impl RngCore) -> String {
    random_hex(rng, 16)
}

/// Whether `s` looks like a client id we could have issued (cheap pre-check before any lookup).
/// A new token family id. (A plain function, so no `ThreadRng` is held across an `.await` by its caller.)
pub fn new_family_id() -> String {
    new_internal_id(&mut rand::thread_rng())
}

pub fn is_client_id(s: &str) -> bool {
    s.strip_prefix("lk1.application-oa2-client.")
        .is_some_and(|hex| {
            hex.len() == 32
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// The `user_id` a developer's apps see for a customer: `lk1.account.<26 uppercase base32>`.
/// Same developer, same customer: same id. Different developers: unlinkable ids.
pub fn pairwise_user_id(hasher: &KeyedHasher, developer: &str, internal_user_id: &str) -> String {
    let digest = hasher.hash(
        Kind::Pairwise,
        &[developer.as_bytes(), internal_user_id.as_bytes()],
    );
    let mut out = String::with_capacity(12 + 26);
    out.push_str("lk1.account.");
    out.push_str(&data_encoding::BASE32_NOPAD.encode(&digest[..16]));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::mock::StepRng;

    #[test]
    fn formats() {
        let mut rng = StepRng::new(0xdead_beef, 7);
        let c = new_client_id(&mut rng);
        assert!(is_client_id(&c), "{c}");
        assert!(new_app_id(&mut rng).starts_with("lk1.application."));
        assert_eq!(new_client_secret(&mut rng).expose().len(), 64);
        assert!(!is_client_id("lk1.application-oa2-client.XYZ"));
        assert!(!is_client_id(
            "lk1.application-oa2-client.0123456789abcdef0123456789ABCDEF"
        ));
    }

    #[test]
    fn pairwise_ids_are_stable_per_developer_and_unlinkable_across() {
        let h = KeyedHasher::new(&[3; 32]);
        let a1 = pairwise_user_id(&h, "dev-a", "user-1");
        assert_eq!(a1, pairwise_user_id(&h, "dev-a", "user-1"));
        assert_ne!(a1, pairwise_user_id(&h, "dev-b", "user-1"));
        assert_ne!(a1, pairwise_user_id(&h, "dev-a", "user-2"));
        let suffix = a1.strip_prefix("lk1.account.").unwrap();
        assert_eq!(suffix.len(), 26);
        assert!(suffix
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
        assert!(!a1.contains("user-1"));
    }
}

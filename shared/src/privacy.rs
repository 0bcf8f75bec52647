//! Pseudonyms: keyed hashes (HMAC-SHA256 with `PARLEY_PSEUDONYM_KEY`) that let a brand prove past
//! consent or spot repeated sources without keeping the number or the IP address. A plain hash of
//! a phone number could be reversed by trying every number; a keyed one cannot without the key.
use crate::domain::ContactId;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

fn keyed(key: &str, data: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(data.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The pseudonym of a contact (what erased consent proof is kept under).
pub fn contact_pseudonym(key: &str, contact: &ContactId) -> String {
    keyed(key, &format!("contact:{contact}"))
}

/// A short pseudonym of a client IP address for the opt-in audit trail.
pub fn ip_pseudonym(key: &str, ip: &str) -> String {
    keyed(key, &format!("ip:{}", ip.trim()))[..32].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Address, Channel};

    #[test]
    fn pseudonyms_are_stable_keyed_and_distinct() {
        let c = ContactId::new(Channel::WhatsApp, Address::parse("4915123456789").unwrap());
        let a = contact_pseudonym("k1", &c);
        assert_eq!(a, contact_pseudonym("k1", &c));
        assert_ne!(a, contact_pseudonym("k2", &c));
        assert!(!a.contains("4915123456789"));
        assert_eq!(a.len(), 64);
        assert_eq!(ip_pseudonym("k1", "203.0.113.7").len(), 32);
        assert_ne!(ip_pseudonym("k1", "203.0.113.7"), ip_pseudonym("k1", "203.0.113.8"));
    }
}

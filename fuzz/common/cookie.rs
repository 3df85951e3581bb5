//! What `cookie_open` and `make_seeds` agree on: the cookie, the key, and the one
//! plaintext ever sealed under that key.

/// The session cookie's name as the gateway sets it (`CookieJar::new("portcullis", false)`).
pub const SESSION: &str = "__Host-portcullis";

/// The fixed key the target opens with. Only `make_seeds` seals under it, and only
/// [`genuine_plaintext`], so any other plaintext that opens is a forgery.
pub const KEY: [u8; 32] = *b"portcullis-fuzz-cookie-key-0001!";

/// The round trip seals under a different key, so nothing sealed inside the target can
/// ever count as a genuine value for [`KEY`].
pub const ROUND_TRIP_KEY: [u8; 32] = *b"portcullis-fuzz-round-trip-key-2";

/// Mode byte of an input: odd = the rest is Cookie header text, even = round trip.
pub const MODE_HEADER: u8 = b'1';

/// Long enough that its sealed form needs two chunks (`NAME.0`, `NAME.1`).
pub fn genuine_plaintext() -> Vec<u8> {
    let mut plain = br#"{"sid":"fuzz-seed","sub":"seed-user","profile":{"note":""#.to_vec();
    plain.extend(std::iter::repeat_n(b'x', 3000));
    plain.extend_from_slice(br#""}}"#);
    plain
}

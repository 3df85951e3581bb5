//! `proxy::path::normalize` on arbitrary UTF-8 paths. Checks: it never panics, and
//! whatever it accepts starts with `/`, has no `//`, no `\`, no ASCII control
//! character, only well-formed upper-case escapes of reserved bytes, is a fixed point
//! (normalizing it again borrows it unchanged), and has no `.` or `..` segment once
//! its escapes are decoded (also when followed by `;` parameters). An upstream that
//! decodes it again, up to `MORE_DECODES` more times, finds no slash the gateway did
//! not see, no backslash and no dot segment either (`%252e%252e` is `..` to it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::proxy::path::{MORE_DECODES, normalize};
use std::borrow::Cow;

/// `%XY` as a byte, when `XY` is upper-case hex.
fn upper_hex(pair: &[u8]) -> Option<u8> {
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    Some(digit(*pair.first()?)? * 16 + digit(*pair.get(1)?)?)
}

/// The bytes an upstream sees once the escapes of `normal` are decoded.
fn decode(normal: &str) -> Vec<u8> {
    let bytes = normal.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let value = upper_hex(&bytes[i + 1..]).unwrap_or_else(|| panic!("{normal:?}: malformed escape at {i}"));
            assert!(
                !(value.is_ascii_alphanumeric() || b"-._~".contains(&value)),
                "{normal:?}: unreserved byte {value:#04x} left encoded"
            );
            out.push(value);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// One more decode, as a lenient server does it: a `%` without two hex digits (any
/// case) stays as it is.
fn decode_again(bytes: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

/// Panics when `decoded` has a `.` or `..` segment, also before `;` parameters.
fn assert_no_dot_segment(path: &str, normal: &str, decoded: &[u8]) {
    for segment in decoded.split(|&b| b == b'/') {
        let name = segment.split(|&b| b == b';').next().unwrap_or_default();
        assert!(name != b"." && name != b"..", "{path:?} -> {normal:?}: dot segment {segment:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path: Cow<str> = if text.starts_with('/') { Cow::Borrowed(text) } else { Cow::Owned(format!("/{text}")) };
    let Ok(normal) = normalize(&path) else { return };

    assert!(normal.starts_with('/'), "{path:?} -> {normal:?}: no leading slash");
    assert!(!normal.contains("//"), "{path:?} -> {normal:?}: repeated slash");
    assert!(!normal.contains('\\'), "{path:?} -> {normal:?}: backslash");
    assert!(!normal.bytes().any(|b| b.is_ascii_control()), "{path:?} -> {normal:?}: control character");

    match normalize(&normal) {
        Ok(Cow::Borrowed(again)) => assert_eq!(again, &*normal, "{path:?}: not idempotent"),
        Ok(Cow::Owned(again)) => panic!("{path:?} -> {normal:?} -> {again:?}: changed again"),
        Err(err) => panic!("{path:?} -> {normal:?}: refused the second time ({err:?})"),
    }

    let decoded = decode(&normal);
    let slashes = |bytes: &[u8]| bytes.iter().filter(|&&b| b == b'/').count();
    assert_eq!(slashes(&decoded), slashes(normal.as_bytes()), "{path:?} -> {normal:?}: an escape decodes to a slash");
    assert_no_dot_segment(&path, &normal, &decoded);

    let mut again = decoded;
    for round in 2..=MORE_DECODES + 1 {
        again = decode_again(&again);
        let seen = slashes(normal.as_bytes());
        assert_eq!(slashes(&again), seen, "{path:?} -> {normal:?}: decode {round} gives another slash");
        assert!(!again.contains(&b'\\'), "{path:?} -> {normal:?}: decode {round} gives a backslash");
        assert_no_dot_segment(&path, &normal, &again);
    }
});

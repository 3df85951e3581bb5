//! Splitting a sealed value across cookies, and putting it back together strictly.
//!
//! Browsers keep at most about 4096 bytes per cookie (name, value and attributes), and
//! Cognito's three tokens alone are around 4.5 KB, so a session usually needs several
//! cookies. Rules:
//! 1. A value that fits is one cookie, `NAME`.
//! 2. A longer one is `NAME.0` … `NAME.{n-1}`; the value of `NAME.0` starts with the
//!    count and a dot (`3.`), which base64url never contains, so it cannot be confused.
//! 3. Reassembly needs exactly the announced chunks; a missing one means no value. The
//!    sealed blob is authenticated, so reordered or swapped chunks fail to open later.
//! 4. Chunks the browser still holds from an older, longer value are listed by
//!    [`stale`] so the writer can expire them.

/// Value bytes per cookie: leaves room under 4096 for the name and the attributes
/// (`; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=…`).
pub const CHUNK_LEN: usize = 3800;
/// More chunks than this is never ours (and would crowd out every other cookie).
pub const MAX_CHUNKS: usize = 8;
const _: () = assert!(MAX_CHUNKS < 10, "chunk indexes are single digits");

pub fn chunk_name(name: &str, index: usize) -> String {
    format!("{name}.{index}")
}

/// The cookies (name, value) that carry `value`, or `None` when it needs more than
/// [`MAX_CHUNKS`] cookies.
pub fn split(name: &str, value: &str) -> Option<Vec<(String, String)>> {
    if value.len() <= CHUNK_LEN {
        return Some(vec![(name.to_owned(), value.to_owned())]);
    }
    // The count prefix ("N.") eats into the first chunk; it is at most 2 bytes.
    let count = (value.len() + 2).div_ceil(CHUNK_LEN);
    if count > MAX_CHUNKS {
        return None;
    }
    let prefix = format!("{count}.");
    let mut rest = value;
    let mut cookies = Vec::with_capacity(count);
    for index in 0..count {
        let room = if index == 0 { CHUNK_LEN - prefix.len() } else { CHUNK_LEN };
        let (part, tail) = rest.split_at(room.min(rest.len()));
        let value = if index == 0 { format!("{prefix}{part}") } else { part.to_owned() };
        cookies.push((chunk_name(name, index), value));
        rest = tail;
    }
    Some(cookies)
}

/// The value carried under `name`, from a lookup of the request's cookies.
pub fn join<'a>(name: &str, cookie: impl Fn(&str) -> Option<&'a str>) -> Option<String> {
    parts(name, cookie).map(|parts| parts.concat())
}

/// The pieces of the value carried under `name`, in order, borrowed from the request:
/// one for a single cookie, else the chunks' values (the first without its count).
/// Whoever only compares the value need not copy kilobytes together.
pub fn parts<'a>(name: &str, cookie: impl Fn(&str) -> Option<&'a str>) -> Option<Vec<&'a str>> {
    if let Some(single) = cookie(name) {
        return Some(vec![single]);
    }
    // `NAME.i`, rewritten in place for each chunk (this runs on every request).
    let mut chunk = String::with_capacity(name.len() + 2);
    chunk.push_str(name);
    chunk.push_str(".0");
    let first = cookie(&chunk)?;
    let (count, part) = first.split_once('.')?;
    let count: usize = count.parse().ok()?;
    if !(2..=MAX_CHUNKS).contains(&count) {
        return None;
    }
    let mut parts = Vec::with_capacity(count);
    parts.push(part);
    for index in 1..count {
        chunk.truncate(name.len() + 1);
        chunk.push(char::from_digit(index as u32, 10).expect("MAX_CHUNKS is a single digit"));
        parts.push(cookie(&chunk)?);
    }
    Some(parts)
}

/// Cookies of the request that belong to `name` but are not among `kept`: expire them
/// when writing, so an old longer value cannot linger.
pub fn stale<'a>(name: &str, present: impl IntoIterator<Item = &'a str>, kept: &[(String, String)]) -> Vec<String> {
    present
        .into_iter()
        .filter(|cookie| {
            *cookie == name
                || cookie
                    .strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix('.'))
                    .is_some_and(|index| index.parse::<usize>().is_ok())
        })
        .filter(|cookie| !kept.iter().any(|(kept, _)| kept == cookie))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(cookies: &[(String, String)]) -> HashMap<String, String> {
        cookies.iter().cloned().collect()
    }

    #[test]
    fn short_values_are_one_cookie_and_long_ones_chunks() {
        let short = split("s", "abc").unwrap();
        assert_eq!(short, [("s".to_owned(), "abc".to_owned())]);

        let long: String = "x".repeat(9000);
        let chunks = split("s", &long).unwrap();
        assert_eq!(chunks.len(), 3);
        assert!(chunks.iter().all(|(_, v)| v.len() <= CHUNK_LEN));
        assert!(chunks[0].1.starts_with("3."));
        let jar = lookup(&chunks);
        assert_eq!(join("s", |n| jar.get(n).map(String::as_str)).unwrap(), long);
    }

    #[test]
    fn reassembly_is_strict() {
        let long: String = "y".repeat(8000);
        let chunks = split("s", &long).unwrap();
        let mut jar = lookup(&chunks);
        jar.remove("s.2");
        assert!(join("s", |n| jar.get(n).map(String::as_str)).is_none(), "missing chunk");
        let bad_count = HashMap::from([("s.0".to_owned(), "99.abc".to_owned())]);
        assert!(join("s", |n| bad_count.get(n).map(String::as_str)).is_none());
        let no_count = HashMap::from([("s.0".to_owned(), "abc".to_owned())]);
        assert!(join("s", |n| no_count.get(n).map(String::as_str)).is_none());
        assert!(split("s", &"z".repeat(CHUNK_LEN * MAX_CHUNKS + 1)).is_none(), "too large to carry");
    }

    #[test]
    fn stale_chunks_are_listed_for_expiry() {
        let kept = split("s", &"x".repeat(5000)).unwrap();
        let present = ["s.0", "s.1", "s.2", "s.3", "s", "other", "s.x", "session"];
        let mut stale = stale("s", present, &kept);
        stale.sort();
        assert_eq!(stale, ["s", "s.2", "s.3"]);
    }

    proptest::proptest! {
        #[test]
        fn split_then_join_is_the_identity(length in 0usize..(CHUNK_LEN * MAX_CHUNKS + 100), fill in "[A-Za-z0-9_-]{1,64}") {
            let value: String = fill.chars().cycle().take(length).collect();
            match split("s", &value) {
                Some(cookies) => {
                    proptest::prop_assert!(cookies.iter().all(|(_, v)| v.len() <= CHUNK_LEN));
                    let jar = lookup(&cookies);
                    proptest::prop_assert_eq!(join("s", |n| jar.get(n).map(String::as_str)), Some(value));
                }
                None => proptest::prop_assert!(length > CHUNK_LEN * MAX_CHUNKS - 2),
            }
        }
    }
}

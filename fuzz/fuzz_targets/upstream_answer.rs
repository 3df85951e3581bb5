//! `proxy::read_answer`: arbitrary bytes read as an upstream's answer to a GET (first
//! byte even) or a HEAD (odd), the way the gateway's own HTTP/1.1 exchange reads them
//! (`src/proxy/bodiless.rs`: head, framing, chunked decoding, trailers). Checks: no
//! panic, no endless loop; the body never holds more bytes than the input; a HEAD
//! answer has no body; a complete head has a status the `http` crate accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::proxy::read_answer;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else { return };
    let head_request = mode % 2 == 1;
    if let Ok(Some((status, body, ended))) = read_answer(bytes, head_request) {
        assert!(body.len() <= bytes.len(), "more body bytes than input");
        assert!((200..1000).contains(&status.as_u16()), "interim or invalid status {status}");
        if head_request {
            assert!(body.is_empty() && ended, "an answer to HEAD has no body");
        }
    }
});

//! The client end of a connection, and what the proxy derives from it: once per
//! connection, not once per request (keep-alive connections carry thousands).

use http::HeaderValue;
use std::net::SocketAddr;

pub struct Peer {
    pub addr: SocketAddr,
    /// The client's IP as `X-Forwarded-For` carries it.
    pub ip_header: HeaderValue,
    /// The scheme the client used, as `X-Forwarded-Proto` carries it.
    pub proto: &'static str,
}

impl Peer {
    pub fn new(addr: SocketAddr, tls: bool) -> Self {
        let ip_header = HeaderValue::from_str(&addr.ip().to_string()).expect("an IP is a valid header value");
        Self { addr, ip_header, proto: if tls { "https" } else { "http" } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_header_is_the_address_without_the_port() {
        assert_eq!(Peer::new("10.1.2.3:4567".parse().unwrap(), false).ip_header, "10.1.2.3");
        assert_eq!(Peer::new("[2001:db8::1]:80".parse().unwrap(), true).ip_header, "2001:db8::1");
    }
}
